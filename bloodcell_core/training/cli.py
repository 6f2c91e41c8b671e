"""``python -m bloodcell_core train DATA --out DIR [options]``."""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields

from bloodcell_core.training.train import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = subparsers.add_parser("train", help="train a model on a folder, .npz or CSV manifest",
                                   description="Train a classifier; writes DIR/model.keras and DIR/card.json.")
    parser.add_argument("data", help="dataset: folder of class folders, .npz, or CSV manifest (path,label)")
    parser.add_argument("--out", required=True, help="output model folder")
    parser.add_argument("--split", default=None, help="npz split to train on (default: all splits)")
    parser.add_argument("--arch", default=defaults.arch,
                        help="compact (default) or a keras.applications backbone, e.g. efficientnetb0")
    parser.add_argument("--augment", default=",".join(defaults.augment),
                        help="comma-separated online augmentations (flip,rot90,zoom,colour,blur,noise,"
                             "randaugment,augmix,mixup,cutmix); '' for none")
    for f in fields(TrainConfig):
        if f.name in ("arch", "augment"):
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        kind = type(value) if value is not None else (str if f.name in ("weights", "init_model") else int)
        parser.add_argument(flag, type=kind, default=value, help=f"(default: {value})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.outputs import output_folder
    from bloodcell_core.progress import tqdm_progress

    output_folder(args.out)  # before hours of training
    dataset = load_dataset(args.data, args.split)
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "augment"}
    values["augment"] = [a.strip() for a in args.augment.split(",") if a.strip()]
    config = TrainConfig(**values)
    from bloodcell_core.inference.tta import parse_views
    parse_views(config.tta)  # an unknown view name fails now, not after training
    if config.weights:
        from pathlib import Path

        from bloodcell_core.errors import BloodcellError
        if not Path(config.weights).is_file():
            raise BloodcellError(f"{config.weights}: no such weights file")
    if config.init_model and config.weights:
        from bloodcell_core.errors import BloodcellError
        raise BloodcellError("give --init-model (a trained model) or --weights (ImageNet weights), not both")
    for item in dataset.unreadable:
        print(f"skipped {item['path']}: {item['reason']}", file=sys.stderr)
    command = "python -m bloodcell_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    from bloodcell_core.models.store import save_model
    from bloodcell_core.training.train import train

    model, card = train(dataset, config, command, tqdm_progress())
    out = save_model(model, card, args.out)
    val = card["validation"]
    print(f"saved {out}: validation accuracy {val['accuracy']:.4f}, balanced {val['balanced_accuracy']:.4f}, "
          f"{card['training']['seconds']:.0f} s")
    return 0
