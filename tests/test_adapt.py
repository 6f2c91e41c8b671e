"""adapt: a few labelled cells of a colour-shifted 'laboratory' make a new model that is right there."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.cli import main
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.evaluation.evaluate import evaluate
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.models.store import save_model
from tests.helpers_images import write_class_folders

CLASSES = ["ig", "monocyte", "neutrophil"]


def _parent_model(home, tmp):
    """A small flat model whose softmax layer is fitted on the home images (no training run: fast and
    deterministic), with a card like train writes: sources, held-out items, review policy."""
    import keras
    from sklearn.linear_model import LogisticRegression

    from bloodcell_core.inference.review_flags import fit_review_policy

    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    x = keras.layers.Conv2D(16, 5, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    x = keras.layers.Dropout(0.0, name="dropout")(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    dataset = load_dataset(home)
    probe = Predictor.from_model(model, CLASSES)
    images = [dataset.load(i) for i in range(len(dataset))]
    _, features = probe.predict_outputs(images)
    head = LogisticRegression(C=100, max_iter=2000).fit(features, dataset.labels)
    model.get_layer("probabilities").set_weights([head.coef_.T.astype("float32"), head.intercept_.astype("float32")])
    probabilities, features = Predictor.from_model(model, CLASSES).predict_outputs(images)
    held_out = np.arange(len(dataset)) % 3 == 0
    card = {"name": "home-parent", "classes": CLASSES, "input_size": 32, "crop_size": 32, "architecture": "test",
            "data": {"source": str(home), "fingerprint": dataset.fingerprint(), "n_images": len(dataset)},
            "validation_items": [dataset.items[i] for i in np.flatnonzero(held_out)],
            "review": fit_review_policy(probabilities, dataset.labels, features, len(CLASSES))}
    return save_model(model, card, tmp / "parent")


def _recolour(root, gains) -> None:
    """Another laboratory's stain and light: strong per-channel gains and a blue cast."""
    for path in root.rglob("*.png"):
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
        Image.fromarray(np.clip(pixels[..., [1, 2, 0]] * gains, 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def parent_and_lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("adapt")
    home = write_class_folders(base / "home", CLASSES, per_class=12)
    parent_dir = _parent_model(home, base)
    lab = write_class_folders(base / "lab-all", CLASSES, per_class=12, size=56)
    _recolour(lab, np.array([1.1, 0.8, 1.3]))
    few, rest = base / "lab-few", base / "lab-rest"
    for folder in lab.iterdir():
        for i, path in enumerate(sorted(folder.iterdir())):
            target = (few if i < 5 else rest) / folder.name
            target.mkdir(parents=True, exist_ok=True)
            path.rename(target / path.name)
    return parent_dir, few, rest


def test_adapt_raises_accuracy_on_the_lab_and_leaves_the_parent(parent_and_lab, tmp_path) -> None:
    parent_dir, few, rest = parent_and_lab
    before_files = {p.name: p.stat().st_mtime_ns for p in parent_dir.iterdir()}
    out = tmp_path / "adapted"
    assert main(["adapt", str(few), "--model", str(parent_dir), "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in parent_dir.iterdir()} == before_files
    rest_data = load_dataset(rest)
    parent_acc = evaluate(rest_data, Predictor.load(parent_dir)).report["accuracy"]
    adapted_acc = evaluate(rest_data, Predictor.load(out)).report["accuracy"]
    assert adapted_acc > parent_acc
    card = json.loads((out / "card.json").read_text())
    info = card["adaptation"]
    assert info["parent"]["name"] == json.loads((parent_dir / "card.json").read_text())["name"]
    assert info["data"]["fingerprint"] == load_dataset(few).fingerprint()
    assert info["data"]["class_counts"] == {c: 5 for c in CLASSES}
    assert "head" in info["method"] and info["cross_validation"]["folds"] >= 2
    for side in ("before", "after"):
        assert {"accuracy", "balanced_accuracy", "per_class_recall"} <= set(info["cross_validation"][side])
    assert info["home_check"]["n_images"] > 0  # the parent's held-out images were readable
    assert card["classes"] == CLASSES and "batch_shift" in card["review"]
    assert main(["adapt", str(few), "--model", str(parent_dir), "--out", str(out)]) == 2  # never overwrites


def test_the_adapted_card_leaves_out_reports_measured_on_the_parent(parent_and_lab, tmp_path) -> None:
    from bloodcell_core.models.store import record_in_card

    parent_dir, few, _ = parent_and_lab
    measured_parent = tmp_path / "measured-parent"
    measured_parent.mkdir()
    for path in parent_dir.iterdir():
        (measured_parent / path.name).write_bytes(path.read_bytes())
    reports = {"crosslab": {"datasets": {"lab": {"accuracy": 0.5}}}, "robustness": {"n_images": 3},
               "shift_bench": {"conditions": {}}, "adaptation_curve": {"laboratories": {"lab": {"ks": [1]}}},
               "history": {"lineage": [{"command": "python -m bloodcell_core train x"}],
                           "ablation": {"columns": ["variant"], "rows": [["parent"]]}}}
    for key, report in reports.items():
        record_in_card(measured_parent, key, report)
    out = tmp_path / "adapted"
    assert main(["adapt", str(few), "--model", str(measured_parent), "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert all(not card.get(key) for key in reports)  # the parent's figures would misdescribe it
    parent_card = json.loads((measured_parent / "card.json").read_text())
    assert all(parent_card[key] for key in reports)  # the parent keeps its own


def test_adapt_with_unlabelled_cells_only_records_its_method(parent_and_lab, tmp_path) -> None:
    parent_dir, few, rest = parent_and_lab
    out = tmp_path / "unlabelled-only"
    assert main(["adapt", "--unlabelled", str(rest), "--model", str(parent_dir), "--out", str(out)]) == 0
    info = json.loads((out / "card.json").read_text())["adaptation"]
    assert info["method"]["batchnorm"]["applied"] is True and info["data"] is None
    assert info["unlabelled"]["n_images"] == 21


def test_adapt_bad_input_is_one_line(parent_and_lab, tmp_path, capsys) -> None:
    parent_dir, few, _rest = parent_and_lab
    wrong = write_class_folders(tmp_path / "wrong", ["platelet", "ig"], per_class=2)
    single = write_class_folders(tmp_path / "single", ["ig"], per_class=1)
    for args in (["adapt", str(wrong)], ["adapt", str(single)], ["adapt", str(tmp_path / "missing")], ["adapt"]):
        capsys.readouterr()
        assert main([*args, "--model", str(parent_dir), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip().splitlines()[-1]]
        assert "Traceback" not in err


def test_adaptation_scores_cells_the_way_the_adapted_model_serves_them(parent_and_lab, tmp_path) -> None:
    """Cross-validation and the k-shot curve score from cached per-view features; that must agree
    with the served model, extra views for unsure crops included."""
    from bloodcell_core.adaptation.adapt import FIT_VIEWS, served_probabilities

    parent_dir, few, rest = parent_and_lab
    out = tmp_path / "adapted"
    assert main(["adapt", str(few), "--model", str(parent_dir), "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    model = Predictor.load(out).model
    data = load_dataset(rest)
    two_views = Predictor(model, {**card, "inference": {"tta": ["identity", "rot180"]},
                                  "calibration": {"temperature": 1.0}})
    crops = two_views.prepare_batch([data.load(i) for i in range(len(data))])
    below = float(np.median(two_views.run_prepared(crops)[0].max(axis=1)))  # half the crops unsure
    served = Predictor(model, {**card, "inference": {"tta": ["identity", "rot180"], "tta_extra": ["rot90", "rot270"],
                                                     "tta_extra_below": below},
                               "calibration": {"temperature": 0.8}})
    features = served.features_per_view(crops, FIT_VIEWS)
    scored = served_probabilities(model.get_layer("probabilities"), features, served)
    np.testing.assert_allclose(scored, served.run_prepared(crops)[0], atol=1e-5)
    assert not np.allclose(scored, Predictor(model, {**card, "inference": {"tta": ["identity", "rot180"]},
                                                     "calibration": {"temperature": 0.8}}).run_prepared(crops)[0])
