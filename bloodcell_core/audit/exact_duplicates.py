"""Exact duplicates: the same image stored more than once (identical bytes or identical pixels).

How identity is decided, and why pixel identity is confirmed by a full decode only for
candidates, is explained in :mod:`bloodcell_core.audit.hashing`.
"""
from __future__ import annotations

from typing import Any

from bloodcell_core.audit.base import AuditCheck, AuditContext


def has_conflict(group: dict[str, Any]) -> bool:
    return len(set(group["labels"])) > 1


def conflicts_first(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups whose images carry different labels first (stable otherwise)."""
    return sorted(groups, key=lambda group: not has_conflict(group))


class ExactDuplicates(AuditCheck):
    name = "exact_duplicates"

    def run(self, context: AuditContext) -> dict[str, Any]:
        groups = [{**context.describe_group(members), "match": match}
                  for members, match in context.exact_groups]
        return {"exact_duplicates": conflicts_first(groups)}
