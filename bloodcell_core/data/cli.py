"""``python -m bloodcell_core download NAME --out DIR``: fetch a public dataset (needs internet)."""
from __future__ import annotations

import argparse
import sys

from bloodcell_core.cli_args import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    from bloodcell_core.data.download import PBC_PAGE, SOURCES

    listing = "; ".join(f"{name}: {source.about}" for name, source in SOURCES.items())
    parser = add_command(
        subparsers, "download", run, help="download a public blood-cell dataset (BloodMNIST npz files)",
        description=f"Download a public dataset, checked against its published MD5. {listing}. "
                    f"The full-size PBC images come from {PBC_PAGE} (a browser download).")
    parser.add_argument("name", choices=list(SOURCES), help="which dataset")
    parser.add_argument("--out", default="data/datasets", help="folder to save it in (default: data/datasets)")


def run(args: argparse.Namespace) -> int:
    from bloodcell_core.data.download import download
    from bloodcell_core.outputs import output_folder
    from bloodcell_core.progress import tqdm_progress

    output_folder(args.out)
    path = download(args.name, args.out, tqdm_progress())
    print(f"{path} (verified); train on it with: python -m bloodcell_core train {path} --split train "
          "--out models/mine", file=sys.stderr)
    return 0
