"""Class balance: images per class and how uneven they are."""
from __future__ import annotations

from typing import Any

import numpy as np

from bloodcell_core.audit.base import AuditCheck, AuditContext


class ClassBalance(AuditCheck):
    name = "class_balance"

    def run(self, context: AuditContext) -> dict[str, Any]:
        classes = context.dataset.classes
        counts = np.bincount(context.dataset.labels, minlength=len(classes))
        present = np.flatnonzero(counts)
        summary: dict[str, Any] = {"n_classes": len(classes),
                                   "empty_classes": [classes[i] for i in np.flatnonzero(counts == 0)]}
        if len(present):
            largest, smallest = present[np.argmax(counts[present])], present[np.argmin(counts[present])]
            summary.update({
                "largest": {"class": classes[largest], "count": int(counts[largest])},
                "smallest": {"class": classes[smallest], "count": int(counts[smallest])},
                "imbalance_ratio": round(float(counts[largest] / counts[smallest]), 2),
                "fractions": {classes[i]: round(float(counts[i] / counts.sum()), 4) for i in present},
            })
        return {"class_counts": {c: int(n) for c, n in zip(classes, counts)}, "class_balance": summary}
