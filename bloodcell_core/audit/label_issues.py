"""Likely label errors by confident learning (cleanlab.filter.find_label_issues).

Probabilities are out-of-fold (see :attr:`AuditContext.out_of_fold_probs`); an image is
flagged when confident learning counts it among the examples whose given label the
classifier confidently contradicts.  Issues are ranked by self-confidence, the
out-of-fold probability of the given label (lower = more likely wrong).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bloodcell_core.audit.base import AuditCheck, AuditContext


class LabelIssues(AuditCheck):
    name = "label_issues"
    requires_model = True

    def run(self, context: AuditContext) -> dict[str, Any]:
        from cleanlab.filter import find_label_issues

        indices, probs, classes = context.out_of_fold_probs
        given = np.searchsorted(classes, context.dataset.labels[indices])
        ranked = find_label_issues(labels=given, pred_probs=probs,
                                   return_indices_ranked_by="self_confidence", n_jobs=1)
        names = context.dataset.classes
        return {"label_issues": [
            {"path": context.path(indices[r]), "given_label": names[classes[given[r]]],
             "suggested_label": names[classes[int(np.argmax(probs[r]))]],
             "score": float(f"{probs[r, given[r]]:.6g}")}
            for r in ranked]}
