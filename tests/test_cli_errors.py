"""The CLI's error contract: a user error is one ``error: ...`` line on stderr and exit code 2, never a
traceback -- for every command that writes, and for ``predict`` on paths that yield no image.

The bad ``--out`` cases fail at the output check, before any model or dataset is loaded, so most of
this runs in-process in well under a second per case; two cases go through a real subprocess.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bloodcell_core.cli import COMMANDS, build_parser, main
from bloodcell_core.outputs import OutputError, output_file, output_folder, write_text
from tests.helpers_dashboard import TINY_MODEL_CLASS, png_bytes, synthetic_cell, write_cell_dataset

REPO = Path(__file__).resolve().parent.parent

# command -> (argv before the output option, the output option, "file" or "folder" output)
WRITING_COMMANDS: dict[str, tuple[list[str], str, str]] = {
    "predict": (["predict", "{image}", "--model", "{model}"], "--out", "file"),
    "evaluate": (["evaluate", "{data}", "--model", "{model}"], "--out", "file"),
    "calibrate": (["calibrate", "{data}", "--model", "{model}"], "--out", "folder"),
    "review-export": (["review-export"], "--out", "file"),
    "archive-export": (["archive-export"], "--out", "folder"),
    "export": (["export", "{data}", "--db", "{db}"], "--out", "file"),
    "audit": (["audit", "{data}", "--no-model"], "--out", "file"),
    "robustness": (["robustness", "{data}", "--model", "{model}"], "--out", "file"),
    "shift-bench": (["shift-bench", "{data}", "--model", "{model}"], "--out", "file"),
    "bench": (["bench", "--skip-app", "--model", "{model}", "--data", "{data}"], "--out-dir", "folder"),
    "train": (["train", "{data}"], "--out", "folder"),
    "crosslab": (["crosslab", "{data}", "--model", "{model}"], "--out", "file"),
    "adapt": (["adapt", "{data}", "--model", "{model}"], "--out", "folder"),
    "download": (["download", "bloodmnist"], "--out", "folder"),
}
READ_ONLY_COMMANDS = {"hash-password"}  # prints a hash; writes no file


@pytest.fixture
def places(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Inputs for every command plus the bad outputs: a folder, a file, and a path under a file."""
    data = tmp_path / "data"
    write_cell_dataset(data)
    image = next(data.rglob("*.png"))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file.txt").write_text("not a folder\n")
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "appdata"))
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "appdata" / "review.sqlite"))
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    return {"data": str(data), "image": str(image), "model": str(tiny_model_dir),
            "db": f"sqlite:///{tmp_path / 'review.sqlite'}", "folder": str(tmp_path / "a-folder"),
            "file": str(tmp_path / "a-file.txt"), "under_file": str(tmp_path / "a-file.txt" / "out.csv")}


def argv_for(command: str, places: dict[str, str], out: str) -> list[str]:
    before, option, _ = WRITING_COMMANDS[command]
    return [part.format(**places) for part in before] + [option, out]


def assert_one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err


def test_every_command_that_writes_is_in_the_table():
    registered = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    assert len(COMMANDS) >= 8
    assert registered == set(WRITING_COMMANDS) | READ_ONLY_COMMANDS


def bad_outputs() -> list[tuple[str, str]]:
    """(command, which bad output): a file command gets a folder and a path under a file; a folder
    command gets an existing file and a path under a file."""
    cases = []
    for command, (_, _, kind) in WRITING_COMMANDS.items():
        cases += [(command, "folder" if kind == "file" else "file"), (command, "under_file")]
    return cases


@pytest.mark.parametrize(("command", "bad"), bad_outputs())
def test_a_bad_output_path_is_one_line_and_exit_2(command: str, bad: str, places, capsys):
    code = main(argv_for(command, places, places[bad]))
    assert_one_line_error(code, capsys.readouterr().err)


def test_predict_on_a_missing_path_is_an_error_not_a_row(places, tmp_path: Path, capsys):
    out = tmp_path / "p.csv"
    code = main(["predict", "/nonexistent/path", "--model", places["model"], "--out", str(out)])
    assert_one_line_error(code, capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("what", ["npz without arrays", "empty folder", "only unreadable files"])
def test_predict_on_paths_that_yield_no_image_is_an_error(what: str, places, tmp_path: Path, capsys, monkeypatch):
    # Here the files are opened before the error is known, so a progress bar would precede it; the
    # contract is about the error itself, so the bar is switched off.
    monkeypatch.setattr("bloodcell_core.progress.tqdm_progress", lambda: None)
    target = tmp_path / "input"
    if what == "npz without arrays":
        target = tmp_path / "empty.npz"
        np.savez(target)
    else:
        target.mkdir()
        if what == "only unreadable files":
            (target / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "p.csv"
    code = main(["predict", str(target), "--model", places["model"], "--out", str(out)])
    assert_one_line_error(code, capsys.readouterr().err)
    assert not out.exists()


DATA_COMMANDS = ["evaluate", "calibrate", "export", "audit", "robustness", "shift-bench", "train"]


@pytest.mark.parametrize("data", ["missing", "npz without arrays", "empty folder", "only unreadable images"])
@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_a_dataset_that_yields_nothing_is_one_line_and_exit_2(command: str, data: str, places, tmp_path: Path,
                                                              capsys, monkeypatch):
    if data == "only unreadable images" and command in ("audit", "export"):
        pytest.skip("audit reports unreadable files (that is its job); export writes what is readable")
    monkeypatch.setattr("bloodcell_core.progress.tqdm_progress", lambda: None)  # see above
    target = tmp_path / "input"
    if data == "npz without arrays":
        target = tmp_path / "empty.npz"
        np.savez(target)
    elif data == "empty folder":
        target.mkdir()
    elif data == "only unreadable images":
        (target / TINY_MODEL_CLASS).mkdir(parents=True)
        (target / TINY_MODEL_CLASS / "broken.png").write_bytes(b"not a png")
    kind = WRITING_COMMANDS[command][2]
    out = str(tmp_path / ("out" if kind == "folder" else "out.json"))
    argv = [str(target) if part == "{data}" else part.format(**places) for part in WRITING_COMMANDS[command][0]]
    assert_one_line_error(main([*argv, WRITING_COMMANDS[command][1], out]), capsys.readouterr().err)


def test_predict_with_some_unreadable_files_still_writes_rows(places, tmp_path: Path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes(png_bytes(synthetic_cell(64)))
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--model", places["model"], "--out", str(out)]) == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert rows["broken.png"]["error"] and not rows["good.png"]["error"]
    assert rows["good.png"]["status"] in ("auto", "awaiting review")
    expected_final = "" if rows["good.png"]["status"] == "awaiting review" else TINY_MODEL_CLASS
    assert rows["good.png"]["final_label"] == expected_final


@pytest.mark.parametrize("argv", [["predict", "/nonexistent/path", "--out", "{out}"],
                                  ["evaluate", "/nonexistent/data", "--out", "{folder}"]])
def test_errors_through_a_real_process(argv: list[str], places, tmp_path: Path):
    args = [a.format(out=tmp_path / "p.csv", **places) for a in argv]
    result = subprocess.run([sys.executable, "-m", "bloodcell_core", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert_one_line_error(result.returncode, result.stderr)


def test_output_checks_create_nothing_and_the_writer_is_atomic(tmp_path: Path):
    deep = tmp_path / "new" / "deeper" / "report.json"
    assert output_file(deep) == deep and not (tmp_path / "new").exists()
    assert output_folder(tmp_path / "new-folder") and not (tmp_path / "new-folder").exists()
    write_text(deep, "{}\n")
    assert deep.read_text() == "{}\n" and [p.name for p in deep.parent.iterdir()] == ["report.json"]
    with pytest.raises(OutputError, match="is a folder"):
        write_text(tmp_path / "new", "x")


def test_every_train_option_says_what_it_does() -> None:
    """``train --help`` explains each flag, not only its default (an ML engineer reads it to tune a run)."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        if action.option_strings and action.dest != "help":
            text = (action.help or "").split("(default:")[0].strip()
            assert len(text) >= 10, f"{action.option_strings[0]} has no help of its own: {action.help!r}"


def test_train_augment_help_names_every_augmentation() -> None:
    """The --augment help is written by hand (the CLI must not import TensorFlow to build it): it must
    still name every augmentation the train command accepts."""
    from bloodcell_core.training.augment import AUGMENTATIONS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    augment_help = next(a.help for a in train._actions if a.dest == "augment")
    assert all(name in augment_help for name in AUGMENTATIONS), augment_help
