"""The app part of the benchmark: ``scripts/app_timing.py`` run as a subprocess, its JSON as the report's ``app``.

The timing drives the dashboard in a browser and so knows its pages; the core doesn't import the
app, so it only starts the script, relays its ``progress <done> <total>`` lines and reads its result.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bloodcell_core.paths import PROJECT_ROOT
from bloodcell_core.progress import ProgressFn

APP_TIMING_SCRIPT = PROJECT_ROOT / "scripts" / "app_timing.py"


def app_command(script: Path, model_dir: Path, image_files: list[Path], scratch: Path, out: Path,
                screenshot_dir: Path | None, batch_files: list[Path]) -> list[str]:
    command = [sys.executable, str(script), *map(str, image_files), "--model", str(model_dir),
               "--scratch", str(scratch), "--out", str(out)]
    if batch_files:
        command += ["--batch", *map(str, batch_files)]
    if screenshot_dir is not None:
        command += ["--screenshots", str(screenshot_dir)]
    return command


def _relay_progress(process: subprocess.Popen, progress: ProgressFn | None) -> list[str]:
    """Pass the script's progress lines on; the other lines of its output, for a failure's reason."""
    other = []
    for line in process.stdout:  # type: ignore[union-attr]
        words = line.split()
        if len(words) == 3 and words[0] == "progress" and words[1].isdigit() and words[2].isdigit():
            if progress is not None:
                progress(int(words[1]), int(words[2]), "App timing")
        elif line.strip():
            other.append(line.strip())
    return other


def time_app(model_dir: Path, image_files: list[Path], scratch: Path, progress: ProgressFn | None = None,
             screenshot_dir: Path | None = None, batch_files: list[Path] | None = None,
             script: Path = APP_TIMING_SCRIPT) -> dict[str, Any]:
    """The ``app`` section of the report (``status`` measured, skipped or failed, with the timings)."""
    if not script.is_file():
        return {"status": "skipped", "reason": f"{script.name} not found (the app timing lives in scripts/)"}
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / "app-timing.json"
    command = app_command(script, model_dir, image_files, scratch, out, screenshot_dir, batch_files or [])
    with subprocess.Popen(command, cwd=script.parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        try:
            other = _relay_progress(process, progress)  # until the script ends (it has its own step timeouts)
        except BaseException:  # interrupted: don't leave the script (and its app) running
            process.kill()
            raise
    if process.returncode == 0 and out.is_file():
        return json.loads(out.read_text())
    last = other[-1][:300] if other else "no output"
    return {"status": "failed", "reason": f"{script.name} exited with code {process.returncode}: {last}"}
