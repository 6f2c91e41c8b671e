"""A model on disk is a folder: ``model.keras`` plus ``card.json`` (the model card).

The card carries everything serving needs besides the weights (classes, crop size,
needs-review thresholds, out-of-distribution reference) and everything a reader needs
to trust or reproduce the model (command, config, data fingerprint, metrics, versions).
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from bloodcell_core.errors import BloodcellError, ModelLoadError, one_line
from bloodcell_core.models.card import ModelCard
from bloodcell_core.outputs import OutputError, ensure_folder, output_folder, write_text
from bloodcell_core.paths import default_model_dir, model_search_dirs

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scikit-learn", "pillow", "scipy", "scikit-image")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def save_model(model: Any, card: ModelCard | dict[str, Any], out_dir: str | Path) -> Path:
    """Write model.keras and card.json atomically enough: temp files, then rename."""
    missing = ModelCard.of(card).missing_keys()
    if missing:
        raise ValueError(f"model card lacks {missing}")
    out = ensure_folder(output_folder(out_dir))
    try:
        with tempfile.NamedTemporaryFile(dir=out, suffix=".keras", delete=False) as handle:
            tmp_model = Path(handle.name)
        model.save(tmp_model)
        tmp_model.chmod(_file_mode())  # NamedTemporaryFile creates 0600; a model is meant to be shared
        os.replace(tmp_model, out / MODEL_FILE)
    except OSError as exc:
        raise OutputError(f"{out / MODEL_FILE}: can't be written ({exc.strerror or exc})") from None
    return write_card(card, out)


def write_card(card: ModelCard | dict[str, Any], model_dir: str | Path) -> Path:
    """Replace ``model_dir``/card.json atomically (temp file, then rename); returns the folder."""
    out = Path(model_dir)
    write_text(out / CARD_FILE, json.dumps(ModelCard.of(card).to_json(), indent=2, default=_json_default) + "\n")
    return out


def _file_mode() -> int:
    """0666 less the process umask: the mode a plainly created file would get."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_card(model_dir: str | Path) -> ModelCard:
    """The folder's card; a missing or unreadable one, or one of the wrong shape, is a one-line ModelLoadError."""
    path = Path(model_dir) / CARD_FILE
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{model_dir}: no {CARD_FILE} (a model folder holds {MODEL_FILE} and {CARD_FILE})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: model card is not valid JSON ({exc})") from None
    try:
        card = ModelCard.from_json(mapping)
    except BloodcellError as exc:
        raise ModelLoadError(f"{path}: {exc}") from None
    missing = card.missing_keys()
    if missing:
        raise ModelLoadError(f"{path}: model card lacks {', '.join(missing)}")
    return card


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """None means the default (``$BLOODCELL_MODEL`` or models/default); a model.keras path means its folder."""
    path = Path(model_dir) if model_dir is not None else default_model_dir()
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model folder")
    if not (path / MODEL_FILE).is_file():
        raise ModelLoadError(f"{path}: no {MODEL_FILE} in this folder")
    return path


def _corrupt(path: Path, exc: BaseException) -> ModelLoadError:
    detail = one_line(exc, limit=160) if str(exc) else ""
    return ModelLoadError(f"{path / MODEL_FILE}: corrupt or unreadable model file ({type(exc).__name__}: {detail})")


def check_model_folder(model_dir: str | Path | None = None) -> tuple[Path, ModelCard]:
    """(folder, card) after the checks that need no TensorFlow: the card, and model.keras's archive.

    Catches a missing folder, an unreadable card (or one naming unknown test-time views) and a
    truncated or non-zip model file in a few milliseconds, so the dashboard can report them before (or without) importing TensorFlow.
    A card that doesn't match its model is only found by :func:`load_model`.
    """
    path = resolve_model_dir(model_dir)
    card = read_card(path)
    try:
        card.inference.check()
    except BloodcellError as exc:
        raise ModelLoadError(f"{path / CARD_FILE}: {exc}") from None
    try:
        with zipfile.ZipFile(path / MODEL_FILE) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ValueError("no config.json in the archive; not a Keras 3 .keras file")
            damaged = archive.testzip()
            if damaged is not None:
                raise ValueError(f"damaged archive member {damaged}")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _corrupt(path, exc) from None
    return path, card


def load_model(model_dir: str | Path | None = None) -> tuple[Any, ModelCard]:
    """Load (keras model, card); any corruption or mismatch is a one-line ModelLoadError."""
    import keras

    import bloodcell_core.models.architectures  # noqa: F401  (registers custom layers)

    path, card = check_model_folder(model_dir)
    try:
        model = keras.saving.load_model(path / MODEL_FILE, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise _corrupt(path, exc) from None
    _check_card_matches(model, card, path)
    return model, card


def _check_card_matches(model: Any, card: ModelCard, path: Path) -> None:
    n_outputs = int(model.outputs[0].shape[-1])
    if n_outputs != len(card.classes):
        raise ModelLoadError(f"{path}: model card lists {len(card.classes)} classes but the model "
                             f"outputs {n_outputs}")
    side = model.inputs[0].shape[1]
    if side is not None and int(side) != card.crop_size:
        raise ModelLoadError(f"{path}: model card says crop size {card.crop_size} but the model "
                             f"takes {side} px input")


def list_models() -> list[Path]:
    """Every model folder (holding model.keras + card.json) under the model search dirs."""
    found: list[Path] = []
    for root in model_search_dirs():
        if not root.is_dir():
            continue
        candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        found += [p for p in candidates if (p / MODEL_FILE).is_file() and (p / CARD_FILE).is_file()]
    return found


def record_in_card(model_dir: str | Path | None, key: str, summary: dict[str, Any]) -> Path:
    """Store a measured summary (robustness, shift bench, other laboratories) as the card's ``key`` section."""
    from datetime import datetime, timezone

    folder = resolve_model_dir(model_dir)
    card = read_card(folder)
    measured = {**summary, "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return write_card(card.replace(**{key: measured}), folder)
