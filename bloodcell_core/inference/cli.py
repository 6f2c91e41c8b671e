"""``python -m bloodcell_core predict PATH... [--model DIR] --out preds.csv``."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="classify image files or folders (recursive)")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--out", required=True, help="CSV path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--summary", default=None, metavar="FILE",
                        help="also write a JSON summary: n_images, n_flagged, batch_shift (does the batch as a "
                             "whole look unlike the training laboratory's images?)")
    parser.set_defaults(func=run)


def prediction_rows(paths: list[str], predictor, batch_size: int = 64, progress=None,
                    predictions: list | None = None) -> list[dict]:
    """One row per file: path, predicted, confidence, p_<class>..., needs_review, reasons, error.

    ``predictions``, when given, collects the Prediction objects (for the batch summary)."""
    from bloodcell_core.data.datasets import expand_image_paths
    from bloodcell_core.data.images import load_image
    from bloodcell_core.errors import UnreadableImageError

    files, missing = expand_image_paths(paths)
    rows = [_row(m["path"], predictor.classes, error=m["reason"]) for m in missing]
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images, good = [], []
        for path in chunk:
            try:
                images.append(load_image(path))
                good.append(path)
            except UnreadableImageError as exc:
                rows.append(_row(str(path), predictor.classes, error=str(exc)))
        for path, prediction in zip(good, predictor.predict_images(images, batch_size)):
            rows.append(_row(str(path), predictor.classes, prediction=prediction))
            if predictions is not None:
                predictions.append(prediction)
        if progress is not None:
            progress(min(start + batch_size, len(files)), len(files), "Predicting")
    return rows


def _row(path: str, classes: list[str], prediction=None, error: str = "") -> dict:
    row = {"path": path, "predicted": "", "confidence": ""}
    row.update({f"p_{c}": "" for c in classes})
    row.update({"needs_review": "", "review_reasons": "", "error": error})
    if prediction is not None:
        row.update({"predicted": prediction.predicted, "confidence": f"{prediction.confidence:.4f}",
                    "needs_review": str(prediction.needs_review).lower(),
                    "review_reasons": "; ".join(prediction.review_reasons)})
        row.update({f"p_{c}": f"{p:.4f}" for c, p in prediction.probabilities.items()})
    return row


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.progress import tqdm_progress

    predictor = Predictor.load(args.model)
    predictions: list = []
    rows = prediction_rows(args.paths, predictor, args.batch_size, tqdm_progress(), predictions)
    if not rows:
        raise BloodcellError(f"no image files found in {', '.join(args.paths)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    errors = sum(1 for r in rows if r["error"])
    print(f"{len(rows)} rows ({errors} with errors) -> {out}", file=sys.stderr)
    summary = batch_summary(predictor, predictions)
    shift = summary["batch_shift"]
    if shift and shift["detected"]:
        print(f"warning: {batch_warning_text(summary)}", file=sys.stderr)
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def batch_summary(predictor, predictions: list) -> dict:
    """``{"n_images", "n_flagged", "batch_shift"}`` for one predicted batch (batch_shift None below 20)."""
    return {"n_images": len(predictions), "n_flagged": sum(p.needs_review for p in predictions),
            "batch_shift": predictor.batch_shift(predictions)}


def batch_warning_text(summary: dict) -> str:
    """The one sentence shown for a batch that looks unlike the training laboratory's images."""
    share = summary["n_flagged"] / max(summary["n_images"], 1)
    return (f"these {summary['n_images']} images look unlike the training laboratory's "
            f"({summary['batch_shift']['score']:.0%} unlike the training images, {share:.0%} flagged for review): "
            "predictions on them are unreliable until the model is adapted to this laboratory (adapt command / "
            "Adapt to your lab page)")
