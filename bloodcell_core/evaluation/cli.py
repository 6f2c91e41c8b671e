"""``python -m bloodcell_core evaluate DATA [--model DIR] --out report.json``."""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="metrics of a model on a labelled dataset")
    parser.add_argument("data", help="folder of class folders, .npz or CSV manifest")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--split", default=None, help="npz split (default: all splits)")
    parser.add_argument("--out", required=True, help="report JSON path")
    parser.set_defaults(func=run)

    calibrator = subparsers.add_parser(
        "calibrate", help="fit a model's probability temperature and needs-review thresholds on labelled images",
        description="Temperature scaling: shown probabilities match how often the model is right, no prediction "
                    "changes. On the model's own training data the card's held-out validation images are used.")
    calibrator.add_argument("data", help="folder of class folders, .npz or CSV manifest")
    calibrator.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    calibrator.add_argument("--out", default=None, help="write the calibrated model folder here (default: update "
                                                          "the model's card in place)")
    calibrator.add_argument("--tta", default=None, metavar="VIEWS",
                            help="test-time views to average, e.g. identity,rot180 (see bloodcell_core.inference."
                                 "tta); stored in the card and used for the fit (default: keep the card's)")
    calibrator.set_defaults(func=run_calibrate)


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.evaluation.evaluate import evaluate
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.outputs import output_file, write_text
    from bloodcell_core.progress import tqdm_progress

    out = output_file(args.out)
    predictor = Predictor.load(args.model)
    dataset = load_dataset(args.data, args.split)
    report = evaluate(dataset, predictor, tqdm_progress()).report
    write_text(out, json.dumps(report, indent=2) + "\n")
    ig_mo = report["ig_to_monocyte"]
    print(f"{report['n_images']} images: accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}, "
          f"ECE {report['ece']:.4f}" + (f", IG->monocyte {ig_mo:.4f}" if ig_mo is not None else "")
          + f"; {len(report['unreadable'])} unreadable, "
          f"{report['unknown_class_images']['n_images']} of classes the model lacks -> {out}", file=sys.stderr)
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.evaluation.recalibrate import recalibrate_model
    from bloodcell_core.inference.tta import parse_views
    from bloodcell_core.models.store import resolve_model_dir, save_model, write_card
    from bloodcell_core.outputs import output_file, output_folder
    from bloodcell_core.progress import tqdm_progress

    tta = None if args.tta is None else parse_views(args.tta)
    model_dir = resolve_model_dir(args.model)
    if args.out:
        output_folder(args.out)
    else:  # the card is rewritten in place: check that before the fit
        output_file(model_dir / "card.json")
    predictor, card = recalibrate_model(load_dataset(args.data), model_dir, tqdm_progress(), tta)
    out = save_model(predictor.model, card, args.out) if args.out else write_card(card, model_dir)
    calibration = card["calibration"]
    print(f"temperature {calibration['temperature']} fitted on {calibration['n_images']} images "
          f"({calibration['fitted_on']}): ECE {calibration['ece_before']:.4f} -> "
          f"{calibration['ece_after_crossfitted']:.4f} (cross-fitted); needs-review confidence threshold "
          f"{card['review'].get('confidence_threshold')}; test-time views "
          f"{','.join(predictor.tta_views)}; validation accuracy "
          f"{card.get('validation', {}).get('accuracy', float('nan')):.4f} -> {out}", file=sys.stderr)
    return 0
