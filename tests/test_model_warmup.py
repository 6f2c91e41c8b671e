"""The dashboard's model warm-up: the first page draws without TensorFlow, the model loads once."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bloodcell_core.errors import ModelLoadError
from bloodcell_core.models.store import check_model_folder

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_the_first_page_imports_no_tensorflow():
    """What app.py and Home import must stay light, or the first render waits for TensorFlow or sklearn."""
    code = ("import sys, dashboard.state, dashboard.charts, bloodcell_core.explain, "
            "bloodcell_core.reporting.performance\n"
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras_vis', 'sklearn') if m in sys.modules)\n"
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "", f"imported at start-up: {result.stdout.strip()}"


def test_the_lazy_explain_names_still_resolve():
    import bloodcell_core.explain as explain

    assert tuple(explain.METHODS) == explain.METHOD_NAMES
    assert explain.get_explainer.__module__ == "bloodcell_core.explain.registry"
    with pytest.raises(AttributeError):
        explain.no_such_name  # noqa: B018


def test_check_model_folder_catches_a_broken_archive_without_tensorflow(tmp_path, tiny_model_dir):
    folder, card = check_model_folder(tiny_model_dir)
    assert folder == tiny_model_dir and card.name == "tiny-dashboard-test"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text((tiny_model_dir / "card.json").read_text())
    (broken / "model.keras").write_bytes((tiny_model_dir / "model.keras").read_bytes()[:300])  # truncated
    with pytest.raises(ModelLoadError, match="corrupt or unreadable model file"):
        check_model_folder(broken)
    (broken / "card.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        check_model_folder(broken)


def test_warmer_loads_each_model_once_even_when_asked_concurrently(tiny_model_dir, monkeypatch):
    from bloodcell_core.inference import predictor as predictor_module
    from bloodcell_core.inference.warmup import ModelWarmer
    from dashboard.state import model_key

    loads = []
    real_load = predictor_module.Predictor.load

    def counting_load(model_dir):
        loads.append(model_dir)
        return real_load(model_dir)

    monkeypatch.setattr(predictor_module.Predictor, "load", staticmethod(counting_load))
    warmer = ModelWarmer()
    key = model_key(tiny_model_dir)
    assert warmer.status(key) == "not started"
    assert warmer.warm_in_background(key, str(tiny_model_dir)) is True
    assert warmer.warm_in_background(key, str(tiny_model_dir)) is False  # once per model
    results = []
    threads = [threading.Thread(target=lambda: results.append(warmer.predictor(key, str(tiny_model_dir))))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(loads) == 1 and len({id(p) for p in results}) == 1
    for thread in threading.enumerate():  # let the warm-up's prediction and Grad-CAM finish
        if thread.name == "bloodcell-model-warmup":
            thread.join(60)
    assert warmer.status(key) == "ready"


def test_warmer_reports_a_model_that_fails_to_load(tmp_path, tiny_model_dir):
    from bloodcell_core.inference.warmup import ModelWarmer
    from dashboard.state import model_key

    folder = tmp_path / "mismatch"
    folder.mkdir()
    (folder / "model.keras").write_bytes((tiny_model_dir / "model.keras").read_bytes())
    card = json.loads((tiny_model_dir / "card.json").read_text())
    card["classes"] = card["classes"][:3]  # the model outputs 8
    (folder / "card.json").write_text(json.dumps(card))
    warmer = ModelWarmer()
    key = model_key(folder)
    warmer.warm(key, str(folder))
    status = warmer.status(key)
    assert status.startswith("failed: ") and "3 classes" in status and "\n" not in status


def test_saved_model_files_get_the_same_mode_as_the_card(tiny_model_dir):
    """save_model writes through a 0600 temporary file; the model must not stay private to its owner."""
    model_mode = (tiny_model_dir / "model.keras").stat().st_mode & 0o777
    assert model_mode == (tiny_model_dir / "card.json").stat().st_mode & 0o777


def test_selected_card_checks_each_model_version_once(tmp_path, tiny_model_dir, monkeypatch):
    """Home and Adapt call selected_card on every rerun: the card read and CRC check run once per version."""
    import streamlit as st

    from dashboard import state

    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, folder)
    checks = []
    real_check = state.check_model_folder
    monkeypatch.setattr(state, "check_model_folder", lambda path: checks.append(path) or real_check(path))
    monkeypatch.setattr(state, "selected_model_dir", lambda: folder)
    state._checked_card.clear()
    first_dir, first = state.selected_card()
    first.name = "edited by a page"
    _, second = state.selected_card()
    assert len(checks) == 1 and first_dir == folder.resolve()
    assert second.name == "tiny-dashboard-test"  # each caller gets its own copy
    card_file = folder / "card.json"
    card_file.write_text(card_file.read_text().replace("tiny-dashboard-test", "tiny-renamed"))
    stamp = card_file.stat().st_mtime_ns + 10_000_000
    os.utime(card_file, ns=(stamp, stamp))
    assert state.selected_card()[1].name == "tiny-renamed" and len(checks) == 2
    (folder / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError):
        state.selected_card()
    with pytest.raises(ModelLoadError):  # errors are not cached: checked again
        state.selected_card()
    assert len(checks) == 4
    st.cache_data.clear()


def test_streamlit_does_not_reset_keras_after_each_run(dashboard_env, monkeypatch):
    """Streamlit clears the Keras session after every run (0.3 s here: gc and TF's kernel cache); app.py stops it."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=30)
    app.secrets.update({"access": {"read_only_open": True}})
    app.run()
    app.run()
    assert not app.exception and cleared == []
    from dashboard import state

    assert script_runner._clean_problem_modules is state._close_matplotlib_figures
    state.keep_keras_state_between_runs()  # idempotent
    assert script_runner._clean_problem_modules is state._close_matplotlib_figures


def test_streamlit_reads_the_shipped_config_without_a_full_gc_after_each_run(monkeypatch):
    """.streamlit/config.toml turns off Streamlit's gc.collect(2) after every run (about 0.3 s with
    TensorFlow loaded, in front of the run's last messages); a misspelt key would be ignored silently."""
    from streamlit import config

    monkeypatch.chdir(PROJECT_ROOT)
    try:
        config.get_config_options(force_reparse=True)
        assert config.get_option("runner.postScriptGC") is False
        assert config.get_option("server.maxUploadSize") == 20  # the file is the project's
    finally:
        monkeypatch.undo()
        config.get_config_options(force_reparse=True)
