"""How the shipped model was made: one source (docs/model_history.json) for the README's ablation
table and the model card's ``history``; neither may drift from it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bloodcell_core.errors import BloodcellError
from bloodcell_core.reporting.history import (ablation_frame, ablation_markdown, card_history, check_history,
                                              lineage_script, read_history)
from scripts.model_history import HISTORY, README, TABLE_END, TABLE_START, readme_with_table

SHIPPED_CARD = Path(__file__).resolve().parent.parent / "models" / "default" / "card.json"
HISTORY_TEXT = {"lineage": [{"note": "a", "command": "python -m bloodcell_core train x --out a"},
                            {"command": "python -m bloodcell_core calibrate x --model a"}],
                "ablation": {"columns": ["variant", "PBC held-out", "LISC"],
                             "rows": [["*Round 1*", "", ""], ["**shipped** (`--tta`)", "96.6%", "81.1% unseen"]]}}


def test_the_readme_table_is_the_history_file_rendered() -> None:
    readme = README.read_text(encoding="utf-8")
    assert readme_with_table(readme, ablation_markdown(read_history(HISTORY))) == readme


def test_the_shipped_card_holds_the_history_file() -> None:
    history = card_history(json.loads(SHIPPED_CARD.read_text(encoding="utf-8")))
    expected = read_history(HISTORY)
    assert history is not None
    assert history["lineage"] == expected["lineage"] and history["ablation"] == expected["ablation"]
    assert any("unseen" in cell for row in history["ablation"]["rows"] for cell in row)
    assert all(step["command"].startswith("python ") for step in history["lineage"])


def test_markdown_table_frame_and_script() -> None:
    table = ablation_markdown(HISTORY_TEXT).splitlines()
    assert table == ["| Variant | PBC held-out | LISC |", "| --- | ---: | ---: |", "| *Round 1* | | |",
                     "| **shipped** (`--tta`) | 96.6% | 81.1% unseen |"]
    assert ablation_frame(HISTORY_TEXT).iloc[1].tolist() == ["shipped (--tta)", "96.6%", "81.1% unseen"]
    assert lineage_script(HISTORY_TEXT) == ("# a\npython -m bloodcell_core train x --out a\n"
                                            "python -m bloodcell_core calibrate x --model a")
    assert card_history({"name": "no history", "classes": ["a"]}) is None


def test_readme_rendering_replaces_only_the_marked_table() -> None:
    readme = f"intro\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n"
    assert readme_with_table(readme, "| new |") == f"intro\n{TABLE_START}\n| new |\n{TABLE_END}\nafter\n"
    with pytest.raises(BloodcellError, match="markers"):
        readme_with_table("no markers here", "| new |")


@pytest.mark.parametrize("history, message", [
    ([], "JSON object"),
    ({"lineage": [{"note": "no command"}], "ablation": {"columns": [], "rows": []}}, "'command'"),
    ({"lineage": [], "ablation": {"rows": []}}, "'columns'"),
    ({"lineage": [], "ablation": {"columns": ["a", "b"], "rows": [["only one"]]}}, "row 1 is not 2 strings"),
])
def test_a_malformed_history_is_one_line(history, message) -> None:
    with pytest.raises(BloodcellError, match=message):
        check_history(history)


def test_an_unreadable_history_file_is_one_line(tmp_path) -> None:
    broken = tmp_path / "history.json"
    broken.write_text("{not json")
    with pytest.raises(BloodcellError, match="cannot read the model history"):
        read_history(broken)
    with pytest.raises(BloodcellError, match="cannot read"):
        read_history(tmp_path / "missing.json")
