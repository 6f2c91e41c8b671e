"""Code shape: no function in the project is longer than MAX_LINES lines (split it into named steps)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 60
CHECKED = ("bloodcell_core", "dashboard", "pages", "scripts")


def _sources() -> list[Path]:
    return [*(path for folder in CHECKED for path in sorted((ROOT / folder).rglob("*.py"))), ROOT / "app.py"]


def long_functions(path: Path, root: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    """``file:line name (N lines)`` for each function or method in ``path`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    offenders = [entry for path in _sources() for entry in long_functions(path)]
    assert offenders == [], f"functions longer than {MAX_LINES} lines: " + "; ".join(offenders)


def test_the_check_finds_a_long_function(tmp_path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "sample.py").write_text(f"def short():\n    pass\n\n\ndef too_long():\n{body}\n")
    assert long_functions(tmp_path / "sample.py", tmp_path) == [f"sample.py:5 too_long ({MAX_LINES + 1} lines)"]
