"""The shipped model on real other laboratories (skipped only where ../shared/data is missing).

Regression guards for the figures the card and the README report: accuracy on each laboratory
the model never trained on, and what adapting on 10 labelled cells per class gives there.
"""
from __future__ import annotations

import json

import pytest

from bloodcell_core.paths import DEFAULT_MODEL_DIR, PROJECT_ROOT, SHARED_DEV_DATA

SHARED = SHARED_DEV_DATA.parent
LABS = [SHARED / "lisc", SHARED / "bionet"]
pytestmark = pytest.mark.skipif(not all(lab.exists() for lab in LABS),
                                reason="../shared/data/lisc and bionet not present (real-data test)")


@pytest.fixture(scope="module")
def predictor():
    from bloodcell_core.inference.predictor import Predictor

    return Predictor.load(DEFAULT_MODEL_DIR)


def _unseen(predictor):
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.data.subsets import seen_in_training

    unseen = [lab for lab in LABS if not seen_in_training(predictor.card, load_dataset(lab))]
    assert unseen, "the shipped model must leave at least one laboratory unseen"
    return unseen


def test_accuracy_on_each_unseen_laboratory_matches_the_card(predictor) -> None:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.evaluation.crosslab import crosslab_section

    recorded = predictor.card.crosslab["datasets"]
    for lab in _unseen(predictor):
        section = crosslab_section(load_dataset(lab), predictor)
        assert not section["seen_in_training"]
        assert abs(section["accuracy"] - recorded[lab.name]["accuracy"]) <= 0.02, lab.name


def test_adapting_on_ten_cells_per_class_of_an_unseen_laboratory(predictor) -> None:
    from bloodcell_core.adaptation.kshot import kshot_curve
    from bloodcell_core.data.datasets import load_dataset

    reported = json.loads((PROJECT_ROOT / "docs" / "adaptation.json").read_text())["laboratories"]
    lab = _unseen(predictor)[0]
    curve = kshot_curve(predictor, load_dataset(lab), ks=[10], draws=5)["curve"]["10"]
    assert curve["adapted"]["mean"] >= curve["parent"]["mean"] + 0.05
    assert abs(curve["adapted"]["mean"] - reported[lab.name]["curve"]["10"]["adapted"]["mean"]) <= 0.03
