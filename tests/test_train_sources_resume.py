"""Several training sources (per-source balancing, card lists each) and resumable runs."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.models.store import load_model
from bloodcell_core.training.train import TrainConfig, balance_sources, train
from tests.helpers_images import write_class_folders

TINY = dict(input_size=32, epochs=1, batch_size=8, patience=3, domain_variants=0, corruption_variants=0,
            workers=1, width=0.25, warmup_epochs=0)
CLASSES = ["ig", "monocyte", "neutrophil"]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "appdata"))


def _tinted(folder, factor):
    """Recolour a generated lab's images: another stain."""
    from PIL import Image
    for path in folder.rglob("*.png"):
        pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
        Image.fromarray(np.clip(pixels * factor, 0, 255).astype(np.uint8)).save(path)
    return folder


def test_balance_sources_repeats_the_small_source_to_its_share() -> None:
    source = np.array([0] * 90 + [1] * 10)
    balanced = balance_sources(np.arange(100), source, 0.2)
    assert (source[balanced] == 1).sum() >= 20
    assert (source[balanced] == 0).sum() == 90
    assert np.array_equal(balance_sources(np.arange(90), source, 0.2), np.arange(90))  # one source: unchanged


def test_train_on_two_sources_lists_both_in_the_card(tmp_path) -> None:
    home = write_class_folders(tmp_path / "home", CLASSES, per_class=8)
    other = _tinted(write_class_folders(tmp_path / "other", ["ig", "neutrophil"], per_class=4, size=56),
                    np.array([0.8, 1.05, 1.2]))
    out = tmp_path / "model"
    assert main(["train", str(home), str(other), "--out", str(out), "--input-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--domain-variants", "0", "--corruption-variants", "0", "--workers", "1",
                 "--width", "0.25", "--warmup-epochs", "0", "--min-source-share", "0.3"]) == 0
    _, card = load_model(out)
    sources = card.data.sources
    assert [s["source"] for s in sources] == [str(home), str(other)]
    assert sources[1]["fingerprint"] == load_dataset(other).fingerprint()
    assert sources[1]["n_train"] + sources[1]["n_validation"] == 8
    assert set(card.validation_by_source) <= {"home", "other"} and "home" in card.validation_by_source
    assert card.classes == CLASSES
    assert card.name == "home+other-compact-32px"  # named after every source, not the last one


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_resume_continues_an_interrupted_run(tmp_path) -> None:
    data = write_class_folders(tmp_path / "data", CLASSES, per_class=8)
    run_dir = tmp_path / "run"
    config = TrainConfig(**{**TINY, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        train(load_dataset(data), config, run_dir=run_dir, callbacks=[_StopAfterFirstEpoch()])
    metadata = json.loads((run_dir / "checkpoint" / "phase0" / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1
    model, card = train(load_dataset(data), config, run_dir=run_dir)
    assert card.training["resumed"]["from_epoch"] == 1
    assert card.training["epochs_run"] == 3  # 1 before the stop + 2 after it
    assert int(model.optimizer.iterations.numpy()) > 0


def test_resume_command_reads_the_run_settings(tmp_path) -> None:
    data = write_class_folders(tmp_path / "data", CLASSES, per_class=8)
    run_dir = tmp_path / "run"
    args = [str(data), "--out", str(run_dir), "--input-size", "32", "--epochs", "2", "--batch-size", "8",
            "--domain-variants", "0", "--corruption-variants", "0", "--workers", "1", "--width", "0.25",
            "--warmup-epochs", "0"]
    assert main(["train", *args]) == 0
    assert main(["train", "--resume", str(run_dir)]) == 0  # finished phase: nothing left but the card
    _, card = load_model(run_dir)
    assert card.training["resumed"]["skipped_finished_phases"] == [0]
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
