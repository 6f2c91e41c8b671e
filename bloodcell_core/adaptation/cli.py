"""``python -m bloodcell_core adapt DATA --out DIR [--model DIR] [--unlabelled DIR]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bloodcell_core.cli_args import add_command, add_model_argument
from bloodcell_core.models.card import ModelCard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "adapt", run, help="adapt a model to your laboratory from a few labelled (and/or unlabelled) cells",
        description="Writes a NEW model folder (never overwrites one) whose card names the parent, the data, the "
                    "method, cross-validated before/after accuracy on DATA and the cost on the parent's home images.")
    parser.add_argument("data", nargs="?", default=None,
                        help="the laboratory's labelled cells: folder of class folders, .npz or CSV manifest "
                             "(any subset of the model's classes)")
    parser.add_argument("--out", required=True, help="new model folder (must not exist yet, or be empty)")
    add_model_argument(parser, "parent model folder")
    parser.add_argument("--unlabelled", default=None, metavar="DIR",
                        help="the laboratory's unlabelled cells (folder, searched recursively): BatchNorm "
                             "statistics move toward them")


def _unlabelled_dataset(path: str):
    """A folder of images without class folders, as a Dataset with one placeholder label."""
    from bloodcell_core.data.datasets import Dataset, expand_image_paths
    from bloodcell_core.errors import DatasetError

    import numpy as np

    files, missing = expand_image_paths([path])
    if missing:
        raise DatasetError(f"{path}: no such file or folder")
    if not files:
        raise DatasetError(f"{path}: no image files found")
    return Dataset(str(path), ["unlabelled"], [str(f) for f in files], np.zeros(len(files), np.int64))


def check_new_folder(out: str | Path) -> Path:
    """The adapted model's folder: new or empty, never an existing model."""
    from bloodcell_core.outputs import new_folder

    return new_folder(out, "adapt writes a new model folder and never overwrites one")


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.adaptation.adapt import adapt
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.models.store import resolve_model_dir, save_model
    from bloodcell_core.progress import tqdm_progress

    out = check_new_folder(args.out)
    parent_dir = resolve_model_dir(args.model)
    parent = Predictor.load(parent_dir)
    labelled = load_dataset(args.data) if args.data else None
    unlabelled = _unlabelled_dataset(args.unlabelled) if args.unlabelled else None
    model, card = adapt(parent, labelled, unlabelled, progress=tqdm_progress(), parent_dir=parent_dir)
    save_model(model, card, out)
    print(adaptation_line(card, out), file=sys.stderr)
    return 0


def adaptation_line(card: ModelCard, out: Path) -> str:
    """One line: what the adaptation did, measured."""
    info = card.adaptation
    parts = [f"adapted {info['parent']['name']} -> {out}"]
    cv = info.get("cross_validation")
    if cv:
        parts.append(f"cross-validated accuracy on the lab's cells {cv['before']['accuracy']:.1%} -> "
                     f"{cv['after']['accuracy']:.1%} ({cv['folds']} folds)")
    home = info.get("home_check")
    if home:
        parts.append(f"home held-out {home['accuracy_before']:.1%} -> {home['accuracy_after']:.1%}")
    return "; ".join(parts)
