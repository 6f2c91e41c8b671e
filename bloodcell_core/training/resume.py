"""Resumable training runs: epoch checkpoints in ``RUN_DIR/checkpoint``.

A training run longer than one sitting (a laptop that sleeps, a session that ends) keeps,
after every epoch, the model's and optimizer's state (Keras' ``BackupAndRestore``) and the
epoch logs.  ``train ... --resume RUN_DIR`` rebuilds the same data split from the run's
saved settings (``run.json``) and continues at the next epoch: same optimizer state and
learning-rate schedule position (the step counter is part of the optimizer state), and the
same per-epoch data order (seeded by seed and epoch number).  A finished phase of a
two-phase fine-tune is stored whole and skipped.  Early stopping's patience counter starts
again on resume (documented limitation).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"


class RunCheckpoints:
    """The checkpoint folder of one run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.resumed: dict[str, Any] = {}

    def _phase_dir(self, phase: int) -> Path:
        return self.folder / f"phase{phase}"

    def _log_path(self, phase: int) -> Path:
        return self.folder / f"phase{phase}.epochs.json"

    def _done_path(self, phase: int) -> Path:
        return self.folder / f"phase{phase}.done.weights.h5"

    def epoch_logs(self, phase: int) -> dict[str, list[float]]:
        path = self._log_path(phase)
        return json.loads(path.read_text()) if path.exists() else {}

    def resume_epoch(self, phase: int, first_epoch: int) -> int:
        """Epochs of this phase already finished by an earlier, interrupted run (0 for a new run)."""
        metadata = self._phase_dir(phase) / "training_metadata.json"
        if not metadata.exists():
            return 0
        done = int(json.loads(metadata.read_text())["epoch"]) - first_epoch
        if done > 0:
            self.resumed = {"phase": phase, "from_epoch": done + first_epoch}
        return max(done, 0)

    def phase_done(self, phase: int, model: Any) -> bool:
        """True (and the phase's final weights loaded) when an earlier run finished this phase."""
        if not self._done_path(phase).exists():
            return False
        model.load_weights(self._done_path(phase))
        self.resumed.setdefault("skipped_finished_phases", []).append(phase)
        return True

    def callback(self, phase: int) -> list[Any]:
        """Keras callbacks: the state backup and an append-only epoch log."""
        import keras

        folder, log_path = self.folder, self._log_path(phase)

        class EpochLog(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                merged = json.loads(log_path.read_text()) if log_path.exists() else {}
                for key, value in (logs or {}).items():
                    merged.setdefault(key, []).append(float(value))
                folder.mkdir(parents=True, exist_ok=True)
                log_path.write_text(json.dumps(merged))

        return [keras.callbacks.BackupAndRestore(str(self._phase_dir(phase))), EpochLog()]

    def finish_phase(self, phase: int, model: Any) -> dict[str, list[float]]:
        """Store the phase's final weights; returns its full epoch log (across resumes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model.save_weights(self._done_path(phase))
        return self.epoch_logs(phase)


def save_run(run_dir: str | Path, settings: dict[str, Any]) -> None:
    """The settings a resume needs (data paths, split, config, command), written at the start."""
    folder = Path(run_dir) / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_FILE).write_text(json.dumps(settings, indent=2))


def load_run(run_dir: str | Path) -> dict[str, Any]:
    from bloodcell_core.errors import BloodcellError

    path = Path(run_dir) / "checkpoint" / RUN_FILE
    if not path.is_file():
        raise BloodcellError(f"{run_dir}: no interrupted training run to resume (missing checkpoint/{RUN_FILE})")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BloodcellError(f"{path}: unreadable run settings ({exc})") from None
