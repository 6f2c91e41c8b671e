"""What the command modules' ``register`` functions share: a command's sub-parser, and the arguments and
wording several commands use alike (so ``--model`` and the review database read the same everywhere)."""
from __future__ import annotations

import argparse
from collections.abc import Callable

SHIPPED_MODEL = "(default: the shipped model)"
REVIEW_DATABASE = "$BLOODCELL_DB_URL, $BLOODCELL_DB or data/review.sqlite"


def add_command(subparsers: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
                help: str, description: str | None = None) -> argparse.ArgumentParser:
    """The sub-parser of command ``name``, which runs ``func(args)``."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


def add_model_argument(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup,
                       what: str = "model folder") -> None:
    """``--model DIR``, None meaning the shipped model."""
    parser.add_argument("--model", default=None, help=f"{what} {SHIPPED_MODEL}")


def add_held_out_argument(parser: argparse.ArgumentParser) -> None:
    """``--held-out-only``, shared by evaluate, crosslab, robustness and shift-bench."""
    parser.add_argument("--held-out-only", action="store_true",
                        help="when DATA is (or contains) one of the model's training sources, score only the "
                             "card's held-out validation images (without it, a warning says the scores "
                             "include training images)")
