"""Layers point down: a low module never imports (even lazily) one of the layers above it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# module -> packages it must not import (docs/architecture.md)
FORBIDDEN = {
    "bloodcell_core/models/card.py": ("bloodcell_core.inference", "bloodcell_core.evaluation",
                                      "bloodcell_core.models.store", "numpy"),
    "bloodcell_core/models/store.py": ("bloodcell_core.inference", "bloodcell_core.evaluation"),
    "bloodcell_core/inference/predictor.py": ("bloodcell_core.evaluation", "bloodcell_core.reporting"),
    "bloodcell_core/inference/warmup.py": ("bloodcell_core.reporting", "bloodcell_core.evaluation"),
    "bloodcell_core/inference/temperature.py": ("bloodcell_core.evaluation",),
    "bloodcell_core/data/duplicates.py": ("bloodcell_core.audit", "bloodcell_core.training"),
    "bloodcell_core/data/sampling.py": ("bloodcell_core.reporting", "bloodcell_core.robustness",
                                        "bloodcell_core.training"),
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_module_does_not_import_a_higher_layer(module: str) -> None:
    imports = imported_modules(ROOT / module)
    bad = sorted(name for name in imports for prefix in FORBIDDEN[module]
                 if name == prefix or name.startswith(prefix + "."))
    assert not bad, f"{module} imports {bad}"


def test_no_core_module_imports_streamlit_or_the_dashboard() -> None:
    offenders = []
    for path in sorted((ROOT / "bloodcell_core").rglob("*.py")):
        names = imported_modules(path)
        if any(n == "streamlit" or n.startswith(("streamlit.", "dashboard", "pages", "scripts")) for n in names):
            offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []
