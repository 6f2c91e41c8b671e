"""How a model was made: the commands of each run in order (its lineage) and the ablation that
chose its recipe, the rows of variants compared on the real laboratories.

One source, ``docs/model_history.json``: the README's ablation table is rendered from it
(:func:`ablation_markdown`, by ``scripts/model_history.py --readme``), ``--record`` copies it into
the model card's ``history`` section, and Home shows the card's copy (:func:`ablation_frame`,
:func:`lineage_script`), so a model folder carries how it was made wherever it goes.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bloodcell_core.errors import BloodcellError
from bloodcell_core.models.card import ModelCard

NUMERIC_FROM = 1  # ablation columns from this one on hold figures: right-aligned in the README
_EMPHASIS = re.compile(r"(\*\*|\*|`)(.+?)\1")


def check_history(history: Any, source: str = "model history") -> dict[str, Any]:
    """``history`` itself when it has a lineage of {note, command} steps and an ablation whose rows
    match its columns; otherwise a one-line :class:`BloodcellError` naming ``source``."""
    if not isinstance(history, Mapping):
        raise BloodcellError(f"{source}: expected a JSON object with 'lineage' and 'ablation'")
    lineage, ablation = history.get("lineage"), history.get("ablation")
    if not isinstance(lineage, list) or not all(isinstance(step, Mapping) and isinstance(step.get("command"), str)
                                                 for step in lineage):
        raise BloodcellError(f"{source}: 'lineage' must be a list of steps, each with a 'command'")
    if not isinstance(ablation, Mapping) or not isinstance(ablation.get("columns"), list):
        raise BloodcellError(f"{source}: 'ablation' must have 'columns' and 'rows'")
    width = len(ablation["columns"])
    for number, row in enumerate(ablation.get("rows") or [], start=1):
        if not isinstance(row, list) or len(row) != width or not all(isinstance(cell, str) for cell in row):
            raise BloodcellError(f"{source}: ablation row {number} is not {width} strings")
    return dict(history)


def read_history(path: str | Path) -> dict[str, Any]:
    """The history file, checked (:func:`check_history`); a missing or broken file is one line."""
    try:
        history = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BloodcellError(f"{path}: cannot read the model history ({error})") from None
    return check_history(history, str(path))


def ablation_markdown(history: Mapping[str, Any]) -> str:
    """The ablation as the README's Markdown table (no trailing newline)."""
    columns = history["ablation"]["columns"]
    header = _markdown_row([name[:1].upper() + name[1:] for name in columns])
    rule = _markdown_row(["---" if i < NUMERIC_FROM else "---:" for i in range(len(columns))])
    return "\n".join([header, rule, *(_markdown_row(row) for row in history["ablation"]["rows"])])


def _markdown_row(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def plain(text: str) -> str:
    """``text`` without Markdown emphasis or code marks (the README bolds shipped rows, italicises
    round headers and marks options as code)."""
    return _EMPHASIS.sub(r"\2", text)


def card_history(card: ModelCard | Mapping[str, Any]) -> dict[str, Any] | None:
    """The card's ``history`` section, or None when it has none (older cards, adapted models)."""
    history = ModelCard.of(card).history
    return check_history(history, "the model card's history") if history else None


def ablation_frame(history: Mapping[str, Any]) -> pd.DataFrame:
    """The ablation rows as a table to show, emphasis removed."""
    ablation = history["ablation"]
    return pd.DataFrame([[plain(cell) for cell in row] for row in ablation["rows"]], columns=ablation["columns"])


def lineage_script(history: Mapping[str, Any]) -> str:
    """The lineage as a shell script to read or rerun: each command under a comment saying what it made."""
    lines = []
    for step in history["lineage"]:
        if step.get("note"):
            lines.append(f"# {step['note']}")
        lines.append(step["command"])
    return "\n".join(lines)
