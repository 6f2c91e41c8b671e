"""``python -m bloodcell_core evaluate DATA [--model DIR] --out report.json``, ``calibrate`` and
``crosslab DATA [DATA ...] --out crosslab.json`` (one section per laboratory)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bloodcell_core.cli_args import add_command, add_held_out_argument, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "evaluate", run, help="metrics of a model on a labelled dataset")
    parser.add_argument("data", help="folder of class folders, .npz or CSV manifest")
    add_model_argument(parser)
    parser.add_argument("--split", default=None, help="npz split (default: all splits)")
    parser.add_argument("--out", required=True, help="report JSON path")
    add_held_out_argument(parser)

    crosslab = add_command(
        subparsers, "crosslab", run_crosslab, help="accuracy and needs-review flags of a model on other laboratories' datasets",
        description="One section per dataset (folder, .npz or CSV manifest): accuracy and balanced accuracy "
                    "over the classes it has, confusion matrix, per-class scores, how many errors the "
                    "needs-review flag catches, whether the model saw it in training, and its errors.")
    crosslab.add_argument("data", nargs="+", help="datasets: folders of class folders, .npz or CSV manifests")
    add_model_argument(crosslab)
    crosslab.add_argument("--out", required=True, help="report JSON path")
    add_held_out_argument(crosslab)
    crosslab.add_argument("--record", action="store_true",
                          help="also store each laboratory's headline figures in the model's card (key 'crosslab'), "
                               "shown on Home and checked by the real-data regression test")

    calibrator = add_command(
        subparsers, "calibrate", run_calibrate, help="fit a model's probability temperature and needs-review thresholds on labelled images",
        description="Temperature scaling: shown probabilities match how often the model is right, no prediction "
                    "changes. On the model's own training data the card's held-out validation images are used.")
    calibrator.add_argument("data", help="folder of class folders, .npz or CSV manifest")
    add_model_argument(calibrator)
    calibrator.add_argument("--out", default=None, help="write the calibrated model folder here (default: update "
                                                          "the model's card in place)")
    calibrator.add_argument("--tta", default=None, metavar="VIEWS",
                            help="test-time views to average, e.g. identity,rot180 (see bloodcell_core.inference."
                                 "tta); stored in the card and used for the fit (default: keep the card's)")
    calibrator.add_argument("--tta-extra", default=None, metavar="VIEWS",
                            help="views added only for crops the --tta views leave unsure, e.g. rot90,rot270; "
                                 "'none' removes them (default: keep the card's)")
    calibrator.add_argument("--tta-extra-below", type=float, default=None, metavar="P",
                            help="a crop is unsure when its top probability over the --tta views (before the "
                                 "temperature) is below P, e.g. 0.7 (required with --tta-extra)")


def write_report(out: Path, report: dict[str, Any]) -> None:
    """The JSON report through the one output writer (a folder or unwritable place: one-line error)."""
    from bloodcell_core.outputs import write_text

    write_text(out, json.dumps(report, indent=2) + "\n")


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.data.subsets import choose_held_out
    from bloodcell_core.evaluation.evaluate import evaluate
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.outputs import output_file
    from bloodcell_core.progress import tqdm_progress

    out = output_file(args.out)
    predictor = Predictor.load(args.model)
    dataset, split, warning = choose_held_out(predictor.card, load_dataset(args.data, args.split),
                                              args.held_out_only)
    if warning:
        print(warning, file=sys.stderr)
    report = evaluate(dataset, predictor, tqdm_progress()).report
    report.update({"seen_in_training": split.seen,
                   "training_images_scored": 0 if warning is None else split.n_training})
    write_report(out, report)
    ig_mo = report["ig_to_monocyte"]
    print(f"{report['n_images']} images: accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}, "
          f"ECE {report['ece']:.4f}" + (f", IG->monocyte {ig_mo:.4f}" if ig_mo is not None else "")
          + f"; {len(report['unreadable'])} unreadable, "
          f"{report['unknown_class_images']['n_images']} of classes the model lacks -> {out}", file=sys.stderr)
    return 0


def run_crosslab(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.evaluation.crosslab import crosslab, summary_line
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.progress import tqdm_progress

    from bloodcell_core.outputs import output_file

    out = output_file(args.out)
    datasets = [load_dataset(path) for path in args.data]  # every path checked before the model loads
    predictor = Predictor.load(args.model)
    report = crosslab(datasets, predictor, tqdm_progress(), args.held_out_only,
                      warn=lambda line: print(line, file=sys.stderr))
    write_report(out, report)
    for name, section in report["datasets"].items():
        print(summary_line(name, section), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    if args.record:
        from bloodcell_core.evaluation.crosslab import card_summary
        from bloodcell_core.models.store import record_in_card

        print(f"recorded in {record_in_card(args.model, 'crosslab', card_summary(report)) / 'card.json'}",
              file=sys.stderr)
    return 0


def _extra_views(args: argparse.Namespace) -> tuple[list[str], float | None] | None:
    """(views, threshold) for the card's tta_extra from --tta-extra/--tta-extra-below; None: keep the card's."""
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.models.card import parse_views

    if args.tta_extra is None:
        if args.tta_extra_below is not None:
            raise BloodcellError("--tta-extra-below needs --tta-extra (the views to add)")
        return None
    if args.tta_extra.strip().lower() == "none":
        return [], None
    if args.tta_extra_below is None or not 0.0 < args.tta_extra_below <= 1.0:
        raise BloodcellError("--tta-extra needs --tta-extra-below P, a probability in (0, 1]")
    return list(parse_views(args.tta_extra)), float(args.tta_extra_below)


def run_calibrate(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.evaluation.recalibrate import recalibrate_model
    from bloodcell_core.models.card import parse_views
    from bloodcell_core.models.store import resolve_model_dir, save_model, write_card
    from bloodcell_core.outputs import output_file, output_folder
    from bloodcell_core.progress import tqdm_progress

    tta = None if args.tta is None else parse_views(args.tta)
    extra = _extra_views(args)
    model_dir = resolve_model_dir(args.model)
    if args.out:
        output_folder(args.out)
    else:  # the card is rewritten in place: check that before the fit
        output_file(model_dir / "card.json")
    predictor, card = recalibrate_model(load_dataset(args.data), model_dir, tqdm_progress(), tta, extra)
    out = save_model(predictor.model, card, args.out) if args.out else write_card(card, model_dir)
    calibration = card.calibration
    print(f"temperature {calibration.temperature} fitted on {calibration.n_images} images "
          f"({calibration.fitted_on}): ECE {calibration.ece_before:.4f} -> "
          f"{calibration.ece_after_crossfitted:.4f} (cross-fitted); needs-review confidence threshold "
          f"{card.review.confidence_threshold}; prediction {card.inference.describe()}; validation accuracy "
          f"{card.validation.get('accuracy', float('nan')):.4f} -> {out}", file=sys.stderr)
    return 0
