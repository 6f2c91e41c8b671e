"""Reading a model card (``card.json``): helpers that need nothing but the card itself.

Low in the layers on purpose: :mod:`bloodcell_core.models.store` (which checks a card before
loading TensorFlow), :mod:`bloodcell_core.inference` and :mod:`bloodcell_core.reporting` all
read the card through these, and this module imports nothing above :mod:`bloodcell_core.errors`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bloodcell_core.errors import BloodcellError

# Test-time views a card may name (card["inference"]["tta"]); bloodcell_core.inference.tta implements them.
VIEW_NAMES: tuple[str, ...] = ("identity", "rot180", "hflip", "vflip", "transpose", "rot90", "rot270")
NO_TTA: tuple[str, ...] = ("identity",)


def parse_views(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'identity,rot180' (or a list) -> a validated tuple of view names; empty means no TTA."""
    if text is None:
        return NO_TTA
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in VIEW_NAMES]
    if unknown:
        raise BloodcellError(f"unknown test-time view(s) {', '.join(unknown)}; choose from {', '.join(VIEW_NAMES)}")
    if len(set(names)) != len(names):
        raise BloodcellError(f"test-time views listed twice: {','.join(names)}")
    return tuple(names) or NO_TTA


def card_views(card: Mapping[str, Any]) -> tuple[str, ...]:
    """The views a model card asks for (older cards have none: a single pass)."""
    return parse_views((card.get("inference") or {}).get("tta"))
