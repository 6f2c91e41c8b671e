"""Where things live: the shipped models, extra model folders, the writable data directory."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_MODEL_DIR = SHIPPED_MODELS_DIR / "default"
SHARED_DEV_DATA = PROJECT_ROOT.parent / "shared" / "data" / "pbc-dev"


def default_model_dir() -> Path:
    """The model used when none is named: ``$BLOODCELL_MODEL`` or the shipped ``models/default``."""
    configured = os.environ.get("BLOODCELL_MODEL")
    return Path(configured) if configured else DEFAULT_MODEL_DIR


def _data_dir_path() -> Path:
    return Path(os.environ.get("BLOODCELL_DATA_DIR", PROJECT_ROOT / "data"))


def data_dir() -> Path:
    """The one writable folder (review database, caches): ``$BLOODCELL_DATA_DIR`` or ``./data``.

    Created on first use, so the app writes nothing outside it.
    """
    path = _data_dir_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def adapted_models_dir() -> Path:
    """``data_dir()/models``: where the app writes models adapted to a laboratory (not created here)."""
    return _data_dir_path() / "models"


def model_search_dirs() -> list[Path]:
    """``models/``, every folder in ``$BLOODCELL_MODELS_DIR`` (os.pathsep-separated), then the adapted models."""
    extra = [Path(p) for p in os.environ.get("BLOODCELL_MODELS_DIR", "").split(os.pathsep) if p]
    return [SHIPPED_MODELS_DIR, *extra, adapted_models_dir()]


def data_roots() -> list[Path]:
    """Folders the app may open datasets from: ``$BLOODCELL_DATA_ROOTS`` or the shared dev data."""
    configured = [Path(p) for p in os.environ.get("BLOODCELL_DATA_ROOTS", "").split(os.pathsep) if p]
    roots = configured or [SHARED_DEV_DATA.parent]
    return [r.resolve() for r in roots if r.exists()]
