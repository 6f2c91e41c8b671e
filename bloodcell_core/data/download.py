"""Download public blood-cell datasets (for users with internet; no test touches the network).

Each source is a URL with its published MD5 (from the MedMNIST v2 release on Zenodo), so a
partial or tampered download is refused.  The file is written under a temporary name and
renamed into place only once its checksum matches: an interrupted download leaves nothing
that looks like a dataset.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bloodcell_core.errors import DatasetError
from bloodcell_core.outputs import ensure_folder
from bloodcell_core.progress import ProgressFn

CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    url: str
    md5: str
    filename: str
    about: str


_ZENODO = "https://zenodo.org/records/10519652/files"
_BLOODMNIST_ABOUT = ("BloodMNIST (MedMNIST v2, CC BY 4.0): the PBC images centre-cropped and resized, "
                     "train/val/test splits, labels in the canonical 8-class order")
SOURCES: dict[str, Source] = {
    "bloodmnist": Source(f"{_ZENODO}/bloodmnist.npz?download=1", "7053d0359d879ad8a5505303e11de1dc",
                         "bloodmnist.npz", f"{_BLOODMNIST_ABOUT}, 28x28"),
    "bloodmnist_64": Source(f"{_ZENODO}/bloodmnist_64.npz?download=1", "2b94928a2ae4916078ca51e05b6b800b",
                            "bloodmnist_64.npz", f"{_BLOODMNIST_ABOUT}, 64x64"),
    "bloodmnist_128": Source(f"{_ZENODO}/bloodmnist_128.npz?download=1", "adace1e0ed228fccda1f39692059dd4c",
                             "bloodmnist_128.npz", f"{_BLOODMNIST_ABOUT}, 128x128"),
    "bloodmnist_224": Source(f"{_ZENODO}/bloodmnist_224.npz?download=1", "b718ff6835fcbdb22ba9eacccd7b2601",
                             "bloodmnist_224.npz", f"{_BLOODMNIST_ABOUT}, 224x224"),
}
PBC_PAGE = "https://data.mendeley.com/datasets/snkd93bnjr/1"  # the full-size PBC set (a browser download)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, out_dir: str | Path, progress: ProgressFn | None = None, timeout_s: float = 60.0) -> Path:
    """Fetch dataset ``name`` into ``out_dir``; returns its path (skips a verified existing copy)."""
    if name not in SOURCES:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCES)} "
                           f"(the full-size PBC set is downloaded from {PBC_PAGE})")
    source = SOURCES[name]
    target = Path(out_dir) / source.filename
    if target.is_file() and md5_of(target) == source.md5:
        return target
    ensure_folder(target.parent)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        _fetch(source.url, partial, progress, timeout_s)
        if md5_of(partial) != source.md5:
            raise DatasetError(f"{source.url}: download corrupt (MD5 mismatch); nothing was kept, try again")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _fetch(url: str, to: Path, progress: ProgressFn | None, timeout_s: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, to.open("wb") as handle:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            for chunk in iter(lambda: response.read(CHUNK), b""):
                handle.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, max(total, done), f"Downloading {to.name.split('.part')[0].lstrip('.')}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise DatasetError(f"{url}: download failed ({reason})") from None
