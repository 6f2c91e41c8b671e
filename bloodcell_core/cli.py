"""``python -m bloodcell_core <command>``: every command is a module with ``register(subparsers)``.

A command module's ``register`` adds its sub-parser and sets ``func=run``; ``run(args)``
returns the exit code.  User errors (:class:`BloodcellError`) become one line on stderr
and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# One table of commands: (name shown in help order, module path).
COMMANDS: list[str] = [
    "bloodcell_core.data.cli",
    "bloodcell_core.training.cli",
    "bloodcell_core.evaluation.cli",
    "bloodcell_core.inference.cli",
    "bloodcell_core.robustness.cli",
    "bloodcell_core.adaptation.cli",
    "bloodcell_core.review.cli",
    "bloodcell_core.audit.cli",
    "bloodcell_core.bench.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bloodcell_core",
                                     description="Blood-cell classifier: train, evaluate, predict, audit, stress-test.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bloodcell_core.errors import BloodcellError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BloodcellError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
