"""How the shipped model was made, from one source: ``docs/model_history.json``.

    python scripts/model_history.py --readme            # render the README's ablation table from it
    python scripts/model_history.py --record [--model DIR]   # copy it into the model card ('history')

The file holds the lineage (the command of each run, in order, with what it made) and the
ablation (one row per variant compared, with its PBC held-out, LISC and Bio-Net figures and
time). Add a row there, then run both; ``tests/test_model_history.py`` fails while the README
or the shipped card disagree with it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bloodcell_core.errors import BloodcellError  # noqa: E402
from bloodcell_core.models.store import record_in_card  # noqa: E402
from bloodcell_core.reporting.history import ablation_markdown, read_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ROOT / "docs" / "model_history.json"
README = ROOT / "README.md"
TABLE_START = ("<!-- ablation table: rendered from docs/model_history.json by "
               "`python scripts/model_history.py --readme` -->")
TABLE_END = "<!-- end of ablation table -->"


def readme_with_table(readme: str, table: str) -> str:
    """``readme`` with the text between the table markers replaced by ``table``."""
    if readme.count(TABLE_START) != 1 or readme.count(TABLE_END) != 1:
        raise BloodcellError(f"{README.name}: needs the ablation table markers once each")
    head, rest = readme.split(TABLE_START)
    _, tail = rest.split(TABLE_END)
    return f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="render the README's ablation table")
    parser.add_argument("--record", action="store_true", help="copy the history into the model card")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    args = parser.parse_args(argv)
    try:
        history = read_history(HISTORY)
        if args.readme:
            README.write_text(readme_with_table(README.read_text(encoding="utf-8"), ablation_markdown(history)),
                              encoding="utf-8")
            print(f"wrote the ablation table ({len(history['ablation']['rows'])} rows) into {README}")
        if args.record:
            card_path = record_in_card(args.model, "history", history)
            print(f"recorded the history in {card_path}")
    except BloodcellError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
