"""Run every registered check over a dataset and assemble the report (CLI and app alike).

``cached_audit`` keeps reports in ``data_dir()/cache/audit-<fingerprint>-<model>.json`` so a
page that reopens the same dataset with the same model and settings gets the report back
without hashing or embedding again.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bloodcell_core.audit.base import AuditContext, AuditSettings, FeatureSource
from bloodcell_core.audit.registry import CHECKS
from bloodcell_core.data.datasets import Dataset
from bloodcell_core.errors import BloodcellError
from bloodcell_core.models.card import ModelCard
from bloodcell_core.paths import data_dir
from bloodcell_core.progress import ProgressFn

if TYPE_CHECKING:
    from bloodcell_core.inference.predictor import Predictor


def load_predictor(model_dir: str | Path | None = None) -> tuple[Predictor | None, str | None]:
    """``(predictor, None)``, or ``(None, reason)`` when no model can be loaded (never raises)."""
    where = str(model_dir) if model_dir is not None else "the default model"
    try:
        from bloodcell_core.inference.predictor import Predictor

        return Predictor.load(model_dir), None
    except (BloodcellError, ImportError, OSError, ValueError) as exc:
        return None, f"no model could be loaded from {where}: {exc}"


def run_audit(dataset: Dataset, predictor: Predictor | None = None, against: Dataset | None = None,
              settings: AuditSettings | None = None, progress: ProgressFn | None = None,
              no_model_reason: str | None = None, features: FeatureSource | None = None) -> dict[str, Any]:
    """Every check in :data:`CHECKS`; a check that can't run is listed under ``skipped`` with why.

    ``no_model_reason`` says why ``predictor`` is None (e.g. from :func:`load_predictor`); ``features``,
    where the model's features come from when they are already computed (default: embed here).
    """
    settings = settings or AuditSettings()
    context = AuditContext(dataset, settings, predictor, against, progress, no_model_reason, features)
    findings: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name, check in CHECKS.items():
        reason = check.skip_reason(context)
        if reason is None:
            try:
                findings.update(check.run(context))
            except BloodcellError as exc:
                reason = str(exc)
        if reason is not None:
            skipped[name] = reason
    return {
        "n_images": len(dataset),
        "source": dataset.source,
        "dataset_fingerprint": dataset.fingerprint(),
        "model": predictor.name if predictor is not None else None,
        "settings": settings.to_dict(),
        "skipped": skipped,
        **findings,
        "unreadable": list(dataset.unreadable) + context.hashes.failures,
    }


def model_key(predictor: Predictor | None) -> str:
    """Short file-name-safe identity of a model: its name plus a hash of its card."""
    if predictor is None:
        return "nomodel"
    card = json.dumps(ModelCard.of(predictor.card).to_json(), sort_keys=True, default=str)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", predictor.name)[:40]
    return f"{name}-{hashlib.sha256(card.encode()).hexdigest()[:8]}"


def audit_cache_path(dataset: Dataset, predictor: Predictor | None = None) -> Path:
    return data_dir() / "cache" / f"audit-{dataset.fingerprint()}-{model_key(predictor)}.json"


def cached_audit(dataset: Dataset, predictor: Predictor | None = None, against: Dataset | None = None,
                 settings: AuditSettings | None = None, progress: ProgressFn | None = None,
                 no_model_reason: str | None = None, refresh: bool = False,
                 features: FeatureSource | None = None) -> dict[str, Any]:
    """:func:`run_audit`, reusing the cached report when dataset, model, settings and OTHER match."""
    settings = settings or AuditSettings()
    path = audit_cache_path(dataset, predictor)
    key = {"settings": settings.to_dict(), "against": against.fingerprint() if against is not None else None,
           "no_model_reason": no_model_reason if predictor is None else None}
    if not refresh:
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                return stored["report"]
        except (OSError, ValueError, AttributeError, KeyError):
            pass  # missing or unusable cache entry: compute afresh
    report = run_audit(dataset, predictor, against, settings, progress, no_model_reason, features)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"key": key, "report": report}))
    os.replace(temporary, path)
    return report
