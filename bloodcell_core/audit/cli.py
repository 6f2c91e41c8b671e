"""``audit`` (data-quality report as JSON) and ``export`` (manifest with review decisions applied)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from bloodcell_core.audit.base import OUTLIER_METHODS, AuditSettings
from bloodcell_core.cli_args import REVIEW_DATABASE, add_command, add_model_argument
from bloodcell_core.outputs import output_file, write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    audit = add_command(
        subparsers, "audit", run, help="find duplicates, conflicting labels, outliers, label errors, leakage",
        description="Audit a dataset (folder of class folders, .npz or .csv) and write a JSON report. "
                    "Outliers and label issues need a model; without one they are skipped with the reason.")
    audit.add_argument("data", help="dataset to audit")
    model = audit.add_mutually_exclusive_group()
    add_model_argument(model, "model folder for the model-based checks")
    model.add_argument("--no-model", action="store_true", help="skip the model-based checks")
    audit.add_argument("--against", help="second dataset (e.g. the test set) to check for leaked duplicates")
    audit.add_argument("--hamming", type=int, help="near-duplicate threshold in bits of the 64-bit "
                                                   "perceptual hash (default 4)")
    audit.add_argument("--outlier-method", choices=tuple(OUTLIER_METHODS), default=AuditSettings.outlier_method)
    audit.add_argument("--out", required=True, help="where to write the JSON report")

    export = add_command(
        subparsers, "export", run_export, help="write a path,label manifest with review decisions applied",
        description="Write DATA as a CSV manifest (path,label,original_label,decision,reviewer): "
                    "dropped images left out, relabels applied.")
    export.add_argument("data", help="dataset to export (folder of class folders or .csv)")
    export.add_argument("--out", required=True, help="manifest CSV to write")
    export.add_argument("--db", help=f"review database URL (default: {REVIEW_DATABASE})")
    export.add_argument("--dataset-name", help="apply only decisions recorded for this dataset name")


def _summary(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['n_images']} images, {len(report['unreadable'])} unreadable",
             f"exact-duplicate groups: {len(report['exact_duplicates'])}",
             f"near-duplicate groups (<= {report['settings']['hamming']} bits): {len(report['near_duplicates'])}",
             f"conflicting-label groups: {len(report['conflicting_label_groups'])}"]
    for key in ("outliers", "label_issues"):
        if key in report:
            lines.append(f"{key.replace('_', ' ')}: {len(report[key])}")
    if "leakage" in report:
        lines.append(f"images also in {report['leakage']['against']}: {report['leakage']['n_images_leaked']}")
    lines += [f"skipped {name}: {reason}" for name, reason in report["skipped"].items()]
    return lines


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.audit.runner import load_predictor, run_audit
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.progress import tqdm_progress

    out = output_file(args.out)  # before the slow part
    options: dict[str, Any] = {"outlier_method": args.outlier_method}
    if args.hamming is not None:
        options["hamming"] = args.hamming
    settings = AuditSettings(**options)
    dataset = load_dataset(args.data)
    against = load_dataset(args.against) if args.against else None
    if args.no_model:
        predictor, reason = None, "--no-model given"
    else:
        predictor, reason = load_predictor(args.model)
    report = run_audit(dataset, predictor, against, settings, tqdm_progress(), reason)
    write_text(out, json.dumps(report, indent=1) + "\n")
    print("\n".join(_summary(report)))
    print(f"report written to {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bloodcell_core.audit.export import export_reviewed
    from bloodcell_core.progress import tqdm_progress

    summary = export_reviewed(args.data, output_file(args.out), args.db, args.dataset_name, tqdm_progress())
    for problem in summary.problems:
        print(f"warning: {problem}")
    print(summary.describe())
    return 0
