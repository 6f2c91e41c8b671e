"""``python -m bloodcell_core robustness DATA --out robust.json`` and ``... shift-bench DATA --out shift.json``."""
from __future__ import annotations

import argparse
import json
from typing import Any

from bloodcell_core.cli_args import add_command, add_held_out_argument, add_model_argument
from bloodcell_core.models.card import ModelCard

ROBUSTNESS_DEFAULT_MAX = 1000  # 62 corrupted copies of each image: keep CPU runs to minutes
SHIFT_DEFAULT_MAX = 2000


def _common_arguments(parser: argparse.ArgumentParser, default_max: int) -> None:
    parser.add_argument("data", help="dataset: folder of class folders, .npz, or CSV manifest (path,label)")
    add_model_argument(parser)
    parser.add_argument("--split", default=None, help="npz split to use (default: all splits)")
    parser.add_argument("--max-images", type=int, default=default_max,
                        help=f"stratified sample size (default: {default_max}; 0 = every image)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and corruption seed (default: 0)")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--record", action="store_true",
                        help="also store a summary of the report in the model's card (so the card carries "
                             "the figures the README quotes)")
    add_held_out_argument(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    robustness = add_command(
        subparsers, "robustness", run, help="accuracy under MedMNIST-C blood corruptions and Gaussian noise",
        description="Corrupt every image with the 11 MedMNIST-C blood corruptions at 5 severities "
                    "and with Gaussian noise; report accuracy, balanced accuracy and per-class recall.")
    _common_arguments(robustness, ROBUSTNESS_DEFAULT_MAX)
    robustness.set_defaults(bench="robustness")
    shift = add_command(
        subparsers, "shift-bench", run, help="accuracy and needs-review flags under synthetic domain shifts",
        description="Apply 5 domain shifts (zoom out off-centre, zoom in, yellow blurred background, "
                    "stain shift, low-res JPEG) to held-out images; report accuracy and how many errors "
                    "the needs-review flag catches.")
    _common_arguments(shift, SHIFT_DEFAULT_MAX)
    shift.set_defaults(bench="shift-bench")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def robustness_card_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The card's ``robustness`` entry: clean, the suite mean and each corruption's mean over severities."""
    per_corruption = {name: _rounded(sum(r["balanced_accuracy"] for r in rows) / len(rows))
                      for name, rows in report["corruptions"].items() if rows}
    return {"n_images": report["n_images"], "seed": report["seed"], "data": report.get("data"),
            "clean_balanced_accuracy": _rounded(report["clean"]["balanced_accuracy"]),
            "mean_corrupted_balanced_accuracy": _rounded(report["mean_corrupted_balanced_accuracy"]),
            "relative_drop": _rounded(report["relative_drop"]),
            "mean_balanced_accuracy_per_corruption": per_corruption}


def shift_card_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The card's ``shift_bench`` entry: accuracy, and the needs-review figures, per condition."""
    keys = ("accuracy", "balanced_accuracy", "errors_flagged_fraction", "flagged_fraction", "confident_error_rate")
    conditions = {"clean": report["clean"], **report["shifts"]}
    batch = {name: (row.get("batch_shift") or {}).get("detected") for name, row in conditions.items()}
    return {"n_images": report["n_images"], "held_out": report["held_out"], "seed": report["seed"],
            "data": report.get("data"), "batch_warning_fired": batch,
            "conditions": {name: {k: _rounded(row.get(k)) for k in keys} for name, row in conditions.items()},
            "abstention": report["abstention"]}


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


def robustness_summary(report: dict[str, Any]) -> str:
    lines = [f"{'corruption':<20} {'mean bal.acc':>12} {'worst level':>11}"]
    for name, entries in report["corruptions"].items():
        mean = sum(e["balanced_accuracy"] for e in entries) / len(entries)
        lines.append(f"{name:<20} {mean:>12.3f} {entries[-1]['balanced_accuracy']:>11.3f}")
    lines += [f"clean balanced accuracy           {report['clean']['balanced_accuracy']:.3f}",
              f"mean corrupted balanced accuracy  {report['mean_corrupted_balanced_accuracy']:.3f} "
              "(Gaussian noise excluded)",
              f"relative drop                     {_fmt(report['relative_drop'])}",
              f"images {report['n_images']}, excluded (class unknown to the model) "
              f"{report['n_excluded_unknown_class']}, unreadable {report['n_unreadable']}"]
    return "\n".join(lines)


def shift_summary(report: dict[str, Any]) -> str:
    lines = [f"{'condition':<24} {'acc':>6} {'Δacc':>7} {'bal.acc':>8} {'errors':>7} {'caught':>7} {'flagged':>8}"]
    rows = [("clean", {**report["clean"], "delta_accuracy": 0.0}), *report["shifts"].items()]
    for name, row in rows:
        lines.append(f"{name:<24} {row['accuracy']:>6.3f} {row['delta_accuracy']:>+7.3f} "
                     f"{row['balanced_accuracy']:>8.3f} {row['errors']:>7d} "
                     f"{_fmt(row['errors_flagged_fraction']):>7} {row['flagged_fraction']:>8.3f}")
    abstention = report["abstention"]
    lines.append(f"abstention targets (errors caught >= {abstention['errors_caught_target']:.0%} on every shift, "
                 f"clean flagged <= {abstention['clean_flagged_limit']:.0%}): "
                 f"{'met' if abstention['targets_met'] else 'NOT met'}")
    lines.append(f"images {report['n_images']} ({report['held_out']})")
    return "\n".join(lines)


def _held_out_rule(args: argparse.Namespace, dataset: Any, card: ModelCard) -> Any:
    """``--held-out-only`` and the training-overlap warning (stderr).  The shift bench already
    scores the card's held-out images of a training source, so it warns only when there are none."""
    import sys

    from bloodcell_core.data.subsets import choose_held_out

    scored, split, warning = choose_held_out(card, dataset, args.held_out_only)
    if warning and not (args.bench == "shift-bench" and len(split.held_out)):
        print(warning, file=sys.stderr)
    return scored


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.outputs import output_file, write_text
    from bloodcell_core.progress import tqdm_progress
    from bloodcell_core.robustness.benchmark import run_robustness, run_shift_bench

    if args.max_images < 0:
        raise BloodcellError(f"--max-images must be >= 0, got {args.max_images}")
    out = output_file(args.out)
    dataset = load_dataset(args.data, args.split)
    predictor = Predictor.load(args.model)
    dataset = _held_out_rule(args, dataset, predictor.card)
    max_images = args.max_images or None
    if args.bench == "robustness":
        report = run_robustness(dataset, predictor, max_images, args.seed, progress=tqdm_progress())
        summary = robustness_summary(report)
    else:
        report = run_shift_bench(dataset, predictor, max_images, args.seed, progress=tqdm_progress())
        summary = shift_summary(report)
    report["data"] = str(args.data)
    write_text(out, json.dumps(report, indent=2) + "\n")
    print(summary)
    print(f"wrote {out}")
    if args.record:
        key, card_summary = (("robustness", robustness_card_summary(report)) if args.bench == "robustness"
                             else ("shift_bench", shift_card_summary(report)))
        from bloodcell_core.models.store import record_in_card

        print(f"recorded in {record_in_card(args.model, key, card_summary) / 'card.json'} under {key!r}")
    return 0
