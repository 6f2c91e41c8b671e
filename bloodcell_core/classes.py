"""Class names: the canonical 8 PBC classes and alias mapping for folder/label names."""
from __future__ import annotations

import re

CANONICAL_CLASSES: tuple[str, ...] = (
    "basophil", "eosinophil", "erythroblast", "ig",
    "lymphocyte", "monocyte", "neutrophil", "platelet",
)

# Lower-cased, punctuation-stripped alias -> canonical name.  Names not found here are
# kept (normalised), so 4- or 9-class sets with other classes still train.
_ALIASES: dict[str, str] = {
    "basophils": "basophil", "baso": "basophil",
    "eosinophils": "eosinophil", "eos": "eosinophil",
    "erythroblasts": "erythroblast", "nrbc": "erythroblast",
    "nucleatedredbloodcell": "erythroblast", "nucleatedredbloodcells": "erythroblast",
    "immaturegranulocyte": "ig", "immaturegranulocytes": "ig", "immaturegranulocites": "ig",
    "lymphocytes": "lymphocyte", "lympho": "lymphocyte", "lymph": "lymphocyte",
    "monocytes": "monocyte", "mono": "monocyte",
    "neutrophils": "neutrophil", "neut": "neutrophil",
    "platelets": "platelet", "thrombocyte": "platelet", "thrombocytes": "platelet",
    "plt": "platelet",
}


# The abbreviations haematology reports use, for labels where a full name does not fit (thumbnails).
SHORT_NAMES: dict[str, str] = {
    "basophil": "baso", "eosinophil": "eos", "erythroblast": "NRBC", "ig": "IG",
    "lymphocyte": "lymph", "monocyte": "mono", "neutrophil": "neut", "platelet": "plt",
}
SHORT_NAME_MAX = 6  # a class without an abbreviation is cut to this many characters


def short_class_name(name: str) -> str:
    """A class's usual abbreviation (``"lymphocyte"`` -> ``"lymph"``), else its name cut short."""
    return SHORT_NAMES.get(name, name[:SHORT_NAME_MAX])


def normalise_class_name(name: str) -> str:
    """Map a folder or label name to its class name (case-insensitive, aliases applied).

    >>> normalise_class_name("Immature Granulocytes")
    'ig'
    """
    key = re.sub(r"[^a-z0-9]", "", str(name).strip().lower())
    if key in CANONICAL_CLASSES:
        return key
    return _ALIASES.get(key, key)


def order_classes(names: set[str] | list[str]) -> list[str]:
    """Canonical classes first in canonical order, then any others alphabetically."""
    unique = set(names)
    known = [c for c in CANONICAL_CLASSES if c in unique]
    return known + sorted(unique - set(known))
