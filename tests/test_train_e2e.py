"""End to end: train one epoch on a tiny generated set, save, reload, predict identically."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.errors import BloodcellError
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.models.store import load_model, save_model
from bloodcell_core.training.train import TrainConfig, train
from tests.helpers_images import synthetic_cell, write_class_folders

TINY = dict(input_size=32, epochs=1, batch_size=8, patience=1, domain_variants=1, corruption_variants=1,
            workers=1, width=0.25, warmup_epochs=0)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "appdata"))


def test_train_save_reload_predicts_identically(tmp_path) -> None:
    data = write_class_folders(tmp_path / "data", ["ig", "monocyte", "neutrophil"], per_class=8)
    model, card = train(load_dataset(data), TrainConfig(**TINY), command="pytest")
    assert card.classes == ["ig", "monocyte", "neutrophil"]
    for key in ("input_size", "crop_size", "architecture", "config", "command", "data", "validation",
                "review", "training", "versions"):
        assert key in card.to_json()
    assert card.data.fingerprint == load_dataset(data).fingerprint()
    assert card.training["batchnorm_recalibration"] == {"applied": False, "reason": "off"}
    out = save_model(model, card, tmp_path / "model")
    reloaded, reloaded_card = load_model(out)
    assert reloaded_card.classes == card.classes
    images = [synthetic_cell(64, seed=s) for s in range(4)]
    before = Predictor(model, card).predict_proba(images)
    after = Predictor.load(out).predict_proba(images)
    np.testing.assert_allclose(before, after, atol=1e-5)


def test_cli_train_then_evaluate_and_predict(tmp_path) -> None:
    data = write_class_folders(tmp_path / "data", ["lymphocyte", "platelet"], per_class=6)
    (data / "platelet" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    model_dir = tmp_path / "m"
    args = ["train", str(data), "--out", str(model_dir), "--input-size", "32", "--epochs", "1",
            "--batch-size", "8", "--workers", "1", "--width", "0.25", "--augment", "flip,rot90,noise,cutmix",
            "--tta", "identity,rot180"]
    assert main(args) == 0
    card = json.loads((model_dir / "card.json").read_text())
    assert card["inference"] == {"tta": ["identity", "rot180"]} and card["config"]["tta"] == "identity,rot180"
    assert main(["evaluate", str(data), "--model", str(model_dir), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("classes", "n_images", "accuracy", "balanced_accuracy", "macro_auc", "ece", "per_class",
                "confusion_matrix", "ig_to_monocyte", "monocyte_to_ig"):
        assert key in report
    assert report["n_images"] == 12 and len(report["unreadable"]) == 1
    assert set(report["per_class"]["platelet"]) == {"precision", "recall", "f1", "specificity", "support"}
    assert main(["predict", str(data), "--model", str(model_dir), "--out", str(tmp_path / "p.csv")]) == 0
    text = (tmp_path / "p.csv").read_text()
    assert text.startswith("path,predicted,confidence,p_lymphocyte,p_platelet")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 13
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 1 and errors[0]["path"].endswith("corrupt.png") and errors[0]["predicted"] == ""


def test_train_refuses_an_unknown_test_time_view_before_training(tmp_path, capsys) -> None:
    data = write_class_folders(tmp_path / "data", ["lymphocyte", "platelet"], per_class=2)
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--tta", "identity,mirror"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown test-time view")
    assert not (tmp_path / "m").exists()


def test_train_refuses_a_share_outside_0_to_1_before_training(tmp_path, capsys) -> None:
    data = write_class_folders(tmp_path / "data", ["lymphocyte", "platelet"], per_class=2)
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--grayscale-share", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --grayscale-share is a share: give a number from 0 to 1"
    assert not (tmp_path / "m").exists()


def test_images_of_unknown_classes_are_reported_apart(tmp_path) -> None:
    data = write_class_folders(tmp_path / "train", ["ig", "monocyte"], per_class=6)
    model, card = train(load_dataset(data), TrainConfig(**TINY))
    other = write_class_folders(tmp_path / "other", ["ig", "blast"], per_class=3)
    from bloodcell_core.evaluation.evaluate import evaluate
    report = evaluate(load_dataset(other), Predictor(model, card)).report
    assert report["n_images"] == 3
    assert report["unknown_class_images"]["n_images"] == 3


def test_two_phase_fine_tuning_from_local_weights_file(tmp_path) -> None:
    import keras
    base = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3),
                                               include_preprocessing=True)
    weights = tmp_path / "mobilenet_notop.weights.h5"
    base.save_weights(weights)
    data = write_class_folders(tmp_path / "data", ["ig", "monocyte"], per_class=6)
    config = TrainConfig(**{**TINY, "arch": "mobilenetv3small", "weights": str(weights), "head_epochs": 1,
                            "domain_variants": 0, "corruption_variants": 0})
    model, card = train(load_dataset(data), config)
    assert card.training["epochs_run"] == 2  # one head epoch, one fine-tuning epoch
    first_conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    source = next(layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D))
    assert first_conv.get_weights()[0].shape == source.get_weights()[0].shape


def test_training_can_continue_from_a_trained_model(tmp_path) -> None:
    data = write_class_folders(tmp_path / "data", ["ig", "monocyte"], per_class=6)
    model, card = train(load_dataset(data), TrainConfig(**TINY, precise_bn_batches=3), command="pytest first")
    recalibration = card.training["batchnorm_recalibration"]  # precise BN, kept only if val loss drops
    assert 1 <= recalibration["batches"] <= 3 and recalibration["applied"] == (
        recalibration["val_loss_after"] <= recalibration["val_loss_before"])
    first = save_model(model, card, tmp_path / "first")
    second_model, second = train(load_dataset(data), TrainConfig(**{**TINY, "init_model": str(first)}),
                                 command="pytest second")
    assert second.training["initialised_from"]["command"] == "pytest first"
    assert second.validation_items == card.validation_items  # same split: validation stays unseen
    other = write_class_folders(tmp_path / "other", ["ig", "monocyte", "neutrophil"], per_class=4)
    with pytest.raises(BloodcellError, match="classes"):
        train(load_dataset(other), TrainConfig(**{**TINY, "init_model": str(first)}))
    with pytest.raises(BloodcellError, match="grows wider"):
        train(load_dataset(data), TrainConfig(**{**TINY, "init_model": str(first), "input_size": 48, "width": 0.125}))


def test_a_compact_model_continues_on_another_crop_size_and_width(tmp_path) -> None:
    """Fully convolutional: 32 px weights carry over to a wider 48 px network, the card says so."""
    data = write_class_folders(tmp_path / "data", ["ig", "monocyte"], per_class=6)
    model, card = train(load_dataset(data), TrainConfig(**TINY), command="pytest first")
    first = save_model(model, card, tmp_path / "first")
    bigger, bigger_card = train(load_dataset(data), TrainConfig(**{**TINY, "init_model": str(first), "input_size": 48,
                                                                   "width": 0.5, "learning_rate": 1e-9}))
    assert bigger.input_shape[1:3] == (48, 48) and bigger_card.crop_size == 48
    assert bigger_card.training["initialised_from"]["crop_size"] == 32
    assert bigger_card.training["initialised_from"]["width"] == 0.25
    before, after = (m.get_layer("stem_conv").get_weights()[0] for m in (model, bigger))
    assert after.shape[-1] > before.shape[-1]
    assert np.allclose(before, after[..., :before.shape[-1]], atol=1e-4)  # learning rate ~0: still the parent's
