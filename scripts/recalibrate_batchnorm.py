"""Apply the train command's precise-BN step to a model trained before that step existed.

    python scripts/recalibrate_batchnorm.py DATA MODEL_DIR [--out DIR]

Rebuilds the same prepared arrays (from the cache) and the same train/validation split
(the card's validation items), runs :func:`bloodcell_core.training.train._recalibrate`
(kept only if validation loss drops), recomputes the card's validation figures and
review policy, and saves the model with a note in its card.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install

import argparse  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

from bloodcell_core.data.datasets import load_dataset  # noqa: E402
from bloodcell_core.models.store import load_model, save_model  # noqa: E402
from bloodcell_core.progress import tqdm_progress  # noqa: E402
from bloodcell_core.training.prepare import prepare_arrays  # noqa: E402
from bloodcell_core.training.train import TrainConfig, _make_card, _recalibrate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("model")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model, card = load_model(args.model)
    config = TrainConfig(**card.config)
    dataset = load_dataset(args.data)
    crop = config.crop_size or config.input_size
    prepared = prepare_arrays(dataset, crop, config.domain_variants, config.corruption_variants, config.seed,
                              config.workers, tqdm_progress())
    held_out = set(card.validation_items)
    is_val = np.array([item in held_out for item in dataset.items])
    val_idx = np.flatnonzero(is_val & prepared.readable)
    train_idx = np.flatnonzero(~is_val & prepared.readable)
    onehot = np.eye(len(dataset.classes), dtype=np.float32)[dataset.labels]
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    weights = np.ones(len(dataset), np.float32)
    val_data = (prepared.crops[val_idx].astype(np.float32), onehot[val_idx])
    result = _recalibrate(model, prepared, train_idx, onehot, weights, val_data, config)
    print(result, file=sys.stderr)
    history = SimpleNamespace(history=card.training["history"])
    new_card = _make_card(model, dataset, prepared, config, train_idx, val_idx, [history], card.command,
                          card.training["seconds"], ([dataset], np.zeros(len(dataset), np.int64)))
    new_card.created = card.created
    new_card.training["batchnorm_recalibration"] = {
        **result, "note": "applied after training by scripts/recalibrate_batchnorm.py, the same step the "
                          "train command now runs at its end"}
    out = save_model(model, new_card, args.out or args.model)
    print(f"{out}: validation accuracy {card.validation['accuracy']:.4f} -> {new_card.validation['accuracy']:.4f}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
