"""The audit over the real dev set (skipped where ../shared/data/pbc-dev isn't present)."""
from __future__ import annotations

from pathlib import Path

import pytest

from bloodcell_core.audit import run_audit
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.paths import SHARED_DEV_DATA

pytestmark = pytest.mark.skipif(not SHARED_DEV_DATA.exists(),
                                reason="../shared/data/pbc-dev not present (real-data test)")


@pytest.fixture(scope="module")
def dev_report() -> dict:
    return run_audit(load_dataset(SHARED_DEV_DATA), no_model_reason="hashing checks only")


def test_dev_set_cross_class_byte_identical_group_is_listed_first(dev_report: dict) -> None:
    first = dev_report["conflicting_label_groups"][0]
    assert first["kind"] == "exact" and first["match"] == "bytes"
    in_folders = sorted(f"{Path(p).parent.name}/{Path(p).name}" for p in first["paths"])
    assert in_folders == ["eosinophil/EO_225902.jpg", "neutrophil/BNE_191112.jpg"]
    assert sorted(first["labels"]) == ["eosinophil", "neutrophil"]


def test_dev_set_exact_duplicate_groups(dev_report: dict) -> None:
    assert len(dev_report["exact_duplicates"]) >= 14
    assert dev_report["n_images"] == 13520 and dev_report["unreadable"] == []
