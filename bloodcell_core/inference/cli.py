"""``python -m bloodcell_core predict PATH... [--model DIR] --out preds.csv``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bloodcell_core.cli_args import add_command, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "predict", run, help="classify image files or folders (recursive)")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    add_model_argument(parser)
    parser.add_argument("--out", required=True, help="CSV path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--summary", default=None, metavar="FILE",
                        help="also write a JSON summary: n_images, n_flagged, batch_shift (does the batch as a "
                             "whole look unlike the training laboratory's images?)")


def prediction_rows(paths: list[str], predictor, batch_size: int = 64, progress=None,
                    predictions: list | None = None) -> list[dict]:
    """One row per file: path, predicted, confidence, p_<class>..., needs_review, reasons, status,
    final_label, error.  ``predictions``, when given, collects the Prediction objects (batch summary)."""
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
    """A CSV row; ``status`` and ``final_label`` follow the one rule of :func:`review_status`
    (nobody has reviewed here, so a flagged image is ``awaiting review`` with no final label)."""
    from bloodcell_core.reporting.batch import final_label_of, review_status

    row = {"path": path, "predicted": "", "confidence": ""}
    row.update({f"p_{c}": "" for c in classes})
    row.update({"needs_review": "", "review_reasons": "", "status": "", "final_label": "", "error": error})
    if prediction is not None:
        row.update({"predicted": prediction.predicted, "confidence": f"{prediction.confidence:.4f}",
                    "needs_review": str(prediction.needs_review).lower(),
                    "review_reasons": "; ".join(prediction.review_reasons),
                    "status": review_status(prediction), "final_label": final_label_of(prediction)})
        row.update({f"p_{c}": f"{p:.4f}" for c, p in prediction.probabilities.items()})
    return row


def _check_paths(paths: list[str]) -> None:
    """A path that does not exist is a user error (BloodcellError), not a row in the CSV."""
    from bloodcell_core.errors import BloodcellError

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise BloodcellError(f"{', '.join(missing)}: no such file or folder")


def _check_rows(rows: list[dict], paths: list[str]) -> None:
    """BloodcellError when nothing could be classified (no image files, or none readable)."""
    from bloodcell_core.errors import BloodcellError

    if not rows:
        raise BloodcellError(f"no image files found in {', '.join(paths)}")
    if all(row["error"] for row in rows):
        first = " ".join(rows[0]["error"].split())
        raise BloodcellError(f"no readable image in {', '.join(paths)} ({len(rows)} file(s), e.g. {first}; "
                             "predict takes image files or folders of them)")


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.outputs import output_file, write_csv, write_text
    from bloodcell_core.progress import tqdm_progress

    out = output_file(args.out)
    summary_out = output_file(args.summary) if args.summary else None
    _check_paths(args.paths)
    predictor = Predictor.load(args.model)
    predictions: list = []
    rows = prediction_rows(args.paths, predictor, args.batch_size, tqdm_progress(), predictions)
    _check_rows(rows, args.paths)
    write_csv(out, rows, list(rows[0]))
    errors = sum(1 for r in rows if r["error"])
    print(f"{len(rows)} rows ({errors} with errors) -> {out}", file=sys.stderr)
    summary = batch_summary(predictor, predictions)
    shift = summary["batch_shift"]
    if shift and shift["detected"]:
        from bloodcell_core.inference.feature_density import batch_warning_text

        print(f"warning: {batch_warning_text(summary['n_images'], summary['n_flagged'], shift)}", file=sys.stderr)
    if args.summary:
        write_text(summary_out, json.dumps(summary, indent=2) + "\n")
    return 0


def batch_summary(predictor, predictions: list) -> dict:
    """``{"n_images", "n_flagged", "batch_shift"}`` for one predicted batch (batch_shift None below 20)."""
    return {"n_images": len(predictions), "n_flagged": sum(p.needs_review for p in predictions),
            "batch_shift": predictor.batch_shift(predictions)}
