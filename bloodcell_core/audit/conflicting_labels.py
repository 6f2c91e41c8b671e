"""Conflicting labels: duplicate groups (exact first, then near) whose images carry different labels.

The same cell filed under two classes is at best a wasted training image and at worst
a wrong label the model learns; these groups are the first thing a reviewer should see.
"""
from __future__ import annotations

from typing import Any

from bloodcell_core.audit.base import AuditCheck, AuditContext
from bloodcell_core.audit.exact_duplicates import has_conflict
from bloodcell_core.audit.near_duplicates import near_duplicate_groups


class ConflictingLabels(AuditCheck):
    name = "conflicting_label_groups"

    def run(self, context: AuditContext) -> dict[str, Any]:
        exact = [{"kind": "exact", **context.describe_group(members), "match": match}
                 for members, match in context.exact_groups]
        near = [{"kind": "near", **group} for group in near_duplicate_groups(context)]
        return {"conflicting_label_groups": [g for g in exact + near if has_conflict(g)]}
