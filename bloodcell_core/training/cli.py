"""``python -m bloodcell_core train DATA --out DIR [options]``."""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from bloodcell_core.cli_args import add_command
from bloodcell_core.training.train import TrainConfig


_HELP = {f.name: f.metadata["help"] for f in fields(TrainConfig)}


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = add_command(subparsers, "train", run, help="train a model on a folder, .npz or CSV manifest",
                         description="Train a classifier; writes DIR/model.keras and DIR/card.json.")
    parser.add_argument("data", nargs="*", help="one or more datasets: folder of class folders, .npz or CSV manifest "
                                                "(path,label); several sources are balanced (--min-source-share)")
    parser.add_argument("--out", default=None, help="output model folder (also the run folder for --resume)")
    parser.add_argument("--resume", default=None, metavar="RUN_DIR",
                        help="continue an interrupted run from its last epoch checkpoint (RUN_DIR/checkpoint); "
                             "data and options come from the run")
    parser.add_argument("--split", default=None, help="npz split to train on (default: all splits)")
    parser.add_argument("--arch", default=defaults.arch, help=_HELP["arch"])
    parser.add_argument("--augment", default=",".join(defaults.augment),
                        help="comma-separated online augmentations (flip,rot90,zoom,colour,appearance,density,"
                             "blur,noise,randaugment,augmix,mixup,cutmix); '' for none")
    for f in fields(TrainConfig):
        if f.name in ("arch", "augment"):
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        kind = type(value) if value is not None else (str if f.name in ("weights", "init_model") else int)
        shown = "" if value is None else f" (default: {value})"
        parser.add_argument(flag, type=kind, default=value, help=_HELP[f.name] + shown)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "augment"}
    values["augment"] = [a.strip() for a in args.augment.split(",") if a.strip()]
    return TrainConfig(**values)


def _check_config(config: TrainConfig) -> None:
    from pathlib import Path

    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.models.card import parse_views
    from bloodcell_core.training.augment import check_augmentations

    parse_views(config.tta)  # an unknown view name fails now, not after training
    check_augmentations(config.augment)
    if config.weights and not Path(config.weights).is_file():
        raise BloodcellError(f"{config.weights}: no such weights file")
    for name in ("appearance_share", "grayscale_share", "clean_fraction", "min_source_share"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise BloodcellError(f"--{name.replace('_', '-')} is a share: give a number from 0 to 1")
    if config.init_model and config.weights:
        raise BloodcellError("give --init-model (a trained model) or --weights (ImageNet weights), not both")


def _run_settings(args: argparse.Namespace) -> dict:
    """What a run is made of: from the command line, or from the interrupted run being resumed."""
    from dataclasses import asdict

    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.training.resume import load_run

    if args.resume:
        settings = load_run(args.resume)
        settings["out"] = args.out or settings.get("out") or args.resume
        return settings
    if not args.data or not args.out:
        raise BloodcellError("train needs DATA and --out (or --resume RUN_DIR)")
    config = _config_from_args(args)
    command = "python -m bloodcell_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return {"data": list(args.data), "split": args.split, "config": asdict(config), "command": command,
            "out": args.out}


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.models.store import save_model
    from bloodcell_core.progress import tqdm_progress
    from bloodcell_core.training.resume import save_run
    from bloodcell_core.training.train import train

    from bloodcell_core.outputs import output_folder

    settings = _run_settings(args)
    output_folder(settings["out"])  # before hours of training
    config = TrainConfig(**settings["config"])
    _check_config(config)
    datasets = [load_dataset(path, settings.get("split")) for path in settings["data"]]
    for dataset in datasets:
        for item in dataset.unreadable:
            print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    run_dir = args.resume or settings["out"]
    save_run(run_dir, settings)
    model, card = train(datasets, config, settings["command"], tqdm_progress(), run_dir=run_dir)
    out = save_model(model, card, settings["out"])
    val = card.validation
    resumed = card.training.get("resumed")
    print(f"saved {out}: validation accuracy {val['accuracy']:.4f}, balanced {val['balanced_accuracy']:.4f}, "
          f"{card.training['seconds']:.0f} s" + (f" (resumed at epoch {resumed.get('from_epoch')})"
                                                      if resumed else ""))
    return 0
