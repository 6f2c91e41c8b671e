"""``python -m bloodcell_core bench [--model DIR] [--data DIR] [--skip-app] [--repeats N] [--out-dir docs]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from bloodcell_core.bench.runner import BenchSettings
from bloodcell_core.cli_args import add_command, add_model_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "bench", run,
        help="measure latency, throughput, audit time and app responsiveness against the targets",
        description="Times the default (or given) model, localisation, Grad-CAM, batch and end-to-end "
                    "throughput, the data audit's hashing and duplicate search, an EfficientNetB3 baseline "
                    "and the app in headless Chromium; writes benchmarks.md and benchmarks.json.")
    add_model_argument(parser)
    parser.add_argument("--data", default=None,
                        help="class-folder dataset to time on (default: ../shared/data/pbc-dev when present, "
                             "else generated images, labelled as such)")
    parser.add_argument("--skip-app", action="store_true", help="don't start the app in a browser")
    parser.add_argument("--repeats", type=int, default=50, help="calls per latency figure (default 50)")
    parser.add_argument("--out-dir", default="docs", help="where benchmarks.md and benchmarks.json go")
    parser.add_argument("--note", default="", help="a remark printed in the report (e.g. what else was running)")
    parser.add_argument("--screenshots", default=None, metavar="DIR",
                        help="save a screenshot of the app after each timed step (to check what was timed)")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.outputs import output_folder

    if args.repeats < 1:
        raise BloodcellError(f"--repeats must be at least 1, got {args.repeats}")
    output_folder(args.out_dir)  # before minutes of timing
    if args.screenshots:
        output_folder(args.screenshots)
    return BenchSettings(model_dir=Path(args.model) if args.model else None,
                         data_dir=Path(args.data) if args.data else None,
                         repeats=args.repeats, skip_app=args.skip_app, note=args.note,
                         screenshot_dir=Path(args.screenshots) if args.screenshots else None)


def summary_lines(report: dict) -> list[str]:
    """One line per target for the terminal."""
    from bloodcell_core.bench.report import format_value

    lines = []
    for check in report["checks"]:
        verdict = {True: "pass", False: "FAIL", None: "not measured"}[check["passed"]]
        lines.append(f"{verdict:>12}  {check['label']}: {format_value(check['measured'], check['unit'])} "
                     f"(target {check['comparator']} {format_value(check['threshold'], check['unit'])})")
    return lines


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.bench.report import write_reports
    from bloodcell_core.bench.runner import run_benchmarks
    from bloodcell_core.progress import tqdm_progress

    settings = settings_from_args(args)
    report = run_benchmarks(settings, progress=tqdm_progress())
    markdown_path, json_path = write_reports(report, args.out_dir)
    print("\n".join(summary_lines(report)))
    print(f"wrote {markdown_path} and {json_path}")
    return 0
