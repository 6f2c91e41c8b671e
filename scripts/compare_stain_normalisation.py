"""Measure whether Reinhard stain normalisation helps a model trained with stain augmentation.

Runs the model's held-out validation images (from its card) clean and under the stain-related
shifts, once as shipped and once with Reinhard normalisation to the training crops' Lab
statistics (of 300 training crops) added at inference, and prints accuracy / balanced accuracy for each.

    python scripts/compare_stain_normalisation.py ../shared/data/pbc-dev [--model DIR] [--max-images N]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, no install

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402

from bloodcell_core.data.datasets import load_dataset  # noqa: E402
from bloodcell_core.inference.predictor import Predictor  # noqa: E402
from bloodcell_core.preprocess.stain import lab_statistics  # noqa: E402
from bloodcell_core.robustness.shifts import apply_shift  # noqa: E402

CONDITIONS = ("clean", "stain_shift", "yellow_background_blur", "jpeg_lowres")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-images", type=int, default=800)
    args = parser.parse_args()
    shipped = Predictor.load(args.model)
    dataset = load_dataset(args.data)
    held_out = set(shipped.card.validation_items)
    rng = np.random.default_rng(0)
    chosen = [i for i, item in enumerate(dataset.items) if item in held_out]
    chosen = sorted(rng.choice(chosen, min(args.max_images, len(chosen)), replace=False))
    images = [dataset.load(i) for i in chosen]
    labels = np.array([shipped.classes.index(dataset.label_names[i]) for i in chosen])
    training = [i for i, item in enumerate(dataset.items) if item not in held_out]
    reference_images = [dataset.load(i) for i in rng.choice(training, min(300, len(training)), replace=False)]
    reference = lab_statistics(np.stack([shipped.prepare(img)[0].astype(np.uint8) for img in reference_images]))
    preprocessing = dataclasses.replace(shipped.card.preprocessing, stain_normalisation=reference)
    normalised = Predictor(shipped.model, shipped.card.replace(preprocessing=preprocessing))
    results = {}
    for condition in CONDITIONS:
        shifted = images if condition == "clean" else [apply_shift(img, condition, k) for k, img in enumerate(images)]
        for name, predictor in (("augmentation only", shipped), ("augmentation + Reinhard", normalised)):
            predicted = predictor.predict_proba(shifted).argmax(axis=1)
            results[f"{condition} / {name}"] = {
                "accuracy": round(float((predicted == labels).mean()), 4),
                "balanced_accuracy": round(float(balanced_accuracy_score(labels, predicted)), 4)}
            print(condition, name, results[f"{condition} / {name}"], flush=True)
    print(json.dumps({"n_images": len(chosen), "results": results}, indent=2))


if __name__ == "__main__":
    main()
