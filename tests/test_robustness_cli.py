"""Robustness and shift benchmarks: metrics logic (fake predictor), real tiny model, CLI end to end."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.data.sampling import stratified_sample
from bloodcell_core.robustness.benchmark import classification_scores, run_robustness, run_shift_bench
from bloodcell_core.robustness.corruptions import CORRUPTIONS, GAUSSIAN_SIGMAS
from bloodcell_core.robustness.shifts import SHIFTS

MODEL_CLASSES = ["lymphocyte", "neutrophil"]


def write_dataset(root: Path, per_class: dict[str, int], side: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for name, count in per_class.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    # 12 images the model knows plus 4 of a class it doesn't (excluded and counted).
    return write_dataset(tmp_path / "data", {"lymphocyte": 6, "neutrophil": 6, "basophil": 4})


@dataclass
class FakePrediction:
    predicted: str
    needs_review: bool


@dataclass
class FakePredictor:
    """Always answers the first class; flags everything for review."""

    classes: list[str] = field(default_factory=lambda: list(MODEL_CLASSES))
    card: dict = field(default_factory=lambda: {"name": "fake"})

    def predict_proba(self, images, batch_size=64, progress=None):
        probabilities = np.zeros((len(images), len(self.classes)))
        probabilities[:, 0] = 1.0
        return probabilities

    def predict_images(self, images, batch_size=64, progress=None):
        return [FakePrediction(self.classes[0], True) for _ in images]


def tiny_model(side: int = 32):
    import keras

    inputs = keras.Input((side, side, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(len(MODEL_CLASSES), activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_stratified_sample_is_proportional_deterministic_and_covers_classes():
    labels = np.array([0] * 80 + [1] * 18 + [2] * 2)
    sample = stratified_sample(labels, 20, seed=1)
    assert len(sample) == 20 and len(set(sample)) == 20
    np.testing.assert_array_equal(sample, stratified_sample(labels, 20, seed=1))
    assert np.bincount(labels[sample]).tolist() == [15, 4, 1]  # 16/3.6/0.4 -> one image for the rare class
    np.testing.assert_array_equal(stratified_sample(labels, None, 0), np.arange(100))
    np.testing.assert_array_equal(stratified_sample(labels, 500, 0), np.arange(100))


def test_classification_scores():
    scores = classification_scores(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 0]), ["a", "b"])
    assert scores["accuracy"] == pytest.approx(0.5)
    assert scores["per_class_recall"] == {"a": pytest.approx(2 / 3), "b": 0.0}
    assert scores["balanced_accuracy"] == pytest.approx(1 / 3)


def test_robustness_metrics_with_fake_predictor(dataset_dir):
    report = run_robustness(load_dataset(dataset_dir), FakePredictor(), severities=(1, 5))
    assert report["n_images"] == 12 and report["n_excluded_unknown_class"] == 4
    assert report["model"] == "fake" and report["classes"] == MODEL_CLASSES
    assert report["clean"]["accuracy"] == pytest.approx(0.5)
    assert report["clean"]["balanced_accuracy"] == pytest.approx(0.5)
    assert report["clean"]["per_class_recall"] == {"lymphocyte": 1.0, "neutrophil": 0.0}
    assert set(report["corruptions"]) == set(CORRUPTIONS) | {"gaussian_noise"}
    assert [e["severity"] for e in report["corruptions"]["bubble"]] == [1, 5]
    assert [e["sigma"] for e in report["corruptions"]["gaussian_noise"]] == list(GAUSSIAN_SIGMAS)
    assert report["mean_corrupted_balanced_accuracy"] == pytest.approx(0.5)
    assert report["relative_drop"] == pytest.approx(0.0)


def test_shift_bench_metrics_with_fake_predictor(dataset_dir):
    report = run_shift_bench(load_dataset(dataset_dir), FakePredictor(), max_images=8)
    assert report["n_images"] == 8 and report["held_out"] == "stratified_sample"
    assert set(report["shifts"]) == set(SHIFTS)
    for row in report["shifts"].values():
        assert row["accuracy"] == pytest.approx(0.5) and row["delta_accuracy"] == pytest.approx(0.0)
        assert row["errors"] == 4 and row["errors_flagged_fraction"] == 1.0 and row["flagged_fraction"] == 1.0
    abstention = report["abstention"]
    assert abstention["min_errors_caught_fraction"] == 1.0
    assert abstention["clean_flagged_fraction"] == 1.0
    assert abstention["targets_met"] is False  # flagging every clean image is not a solution


def test_benchmarks_with_a_real_tiny_model(dataset_dir):
    from bloodcell_core.inference.predictor import Predictor

    dataset = load_dataset(dataset_dir)
    validation = [item for item in dataset.items if item.endswith(("_0.png", "_1.png"))]
    predictor = Predictor.from_model(tiny_model(), MODEL_CLASSES, card={"validation_items": validation})
    robust = run_robustness(dataset, predictor, max_images=6, severities=(1, 5))
    assert robust["n_images"] == 6 and robust["model"] == "tiny"
    assert 0.0 <= robust["mean_corrupted_balanced_accuracy"] <= 1.0
    calls: list[tuple[int, int, str]] = []
    shift = run_shift_bench(dataset, predictor, progress=lambda d, t, label: calls.append((d, t, label)))
    assert shift["held_out"] == "validation_items" and shift["n_images"] == 4  # basophil_* is not a model class
    assert calls[-1] == (1 + len(SHIFTS), 1 + len(SHIFTS), "Domain shifts")


def test_cli_commands_write_every_key(dataset_dir, tmp_path, capsys):
    from bloodcell_core.cli import main
    from bloodcell_core.models.store import save_model

    model_dir = save_model(tiny_model(), {"name": "tiny-cli", "classes": MODEL_CLASSES, "input_size": 32,
                                          "crop_size": 32, "architecture": "test"}, tmp_path / "model")
    robust_out = tmp_path / "reports" / "robust.json"
    assert main(["robustness", str(dataset_dir), "--model", str(model_dir), "--max-images", "4",
                 "--out", str(robust_out)]) == 0
    robust = json.loads(robust_out.read_text())
    assert {"clean", "corruptions", "mean_corrupted_balanced_accuracy", "relative_drop", "classes", "n_images",
            "model", "n_excluded_unknown_class"} <= set(robust)
    assert robust["model"] == "tiny-cli" and robust["n_images"] == 4 and robust["n_excluded_unknown_class"] == 4
    assert len(robust["corruptions"]) == 12
    for name in CORRUPTIONS:
        assert [e["severity"] for e in robust["corruptions"][name]] == [1, 2, 3, 4, 5]
        assert {"accuracy", "balanced_accuracy", "per_class_recall"} <= set(robust["corruptions"][name][0])
    assert "relative drop" in capsys.readouterr().out

    shift_out = tmp_path / "shift.json"
    assert main(["shift-bench", str(dataset_dir), "--model", str(model_dir), "--max-images", "4",
                 "--out", str(shift_out)]) == 0
    shift = json.loads(shift_out.read_text())
    assert {"clean", "shifts", "abstention", "n_images", "classes"} <= set(shift)
    assert {"accuracy", "balanced_accuracy", "flagged_fraction"} <= set(shift["clean"])
    assert {"clean_flagged_fraction", "min_errors_caught_fraction", "targets_met"} <= set(shift["abstention"])
    for row in shift["shifts"].values():
        assert {"accuracy", "balanced_accuracy", "delta_accuracy", "errors", "errors_flagged_fraction",
                "flagged_fraction"} <= set(row)
    assert "abstention targets" in capsys.readouterr().out
    assert "shift_bench" not in json.loads((model_dir / "card.json").read_text())  # only with --record


def test_record_stores_summaries_in_the_model_card(dataset_dir, tmp_path, capsys):
    from bloodcell_core.cli import main
    from bloodcell_core.models.store import save_model

    model_dir = save_model(tiny_model(), {"name": "tiny-rec", "classes": MODEL_CLASSES, "input_size": 32,
                                          "crop_size": 32, "architecture": "test"}, tmp_path / "model")
    model_bytes = (model_dir / "model.keras").read_bytes()
    for command in ("robustness", "shift-bench"):
        assert main([command, str(dataset_dir), "--model", str(model_dir), "--max-images", "4", "--record",
                     "--out", str(tmp_path / f"{command}.json")]) == 0
    card = json.loads((model_dir / "card.json").read_text())
    robust = json.loads((tmp_path / "robustness.json").read_text())
    assert card["name"] == "tiny-rec"  # the rest of the card kept
    assert card["robustness"]["mean_corrupted_balanced_accuracy"] == round(robust["mean_corrupted_balanced_accuracy"], 4)
    assert set(card["robustness"]["mean_balanced_accuracy_per_corruption"]) == set(robust["corruptions"])
    shift = card["shift_bench"]
    assert set(shift["conditions"]) == {"clean", *json.loads((tmp_path / "shift-bench.json").read_text())["shifts"]}
    assert {"accuracy", "flagged_fraction"} <= set(shift["conditions"]["clean"]) and "targets_met" in shift["abstention"]
    assert (model_dir / "model.keras").read_bytes() == model_bytes
    assert capsys.readouterr().out.count("recorded in") == 2


def test_cli_errors_are_one_line(dataset_dir, tmp_path, capsys):
    from bloodcell_core.cli import main

    assert main(["robustness", str(tmp_path / "missing"), "--out", str(tmp_path / "r.json")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["shift-bench", str(dataset_dir), "--model", str(tmp_path / "nomodel"),
                 "--out", str(tmp_path / "s.json")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["robustness", str(dataset_dir), "--max-images", "-3", "--out", str(tmp_path / "r.json")]) == 2
