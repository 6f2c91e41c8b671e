"""Temperature scaling: the fit, what it leaves alone, and the calibrate command."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.evaluation.calibration import apply_temperature, calibrate, fit_temperature
from bloodcell_core.evaluation.metrics import expected_calibration_error
from tests.helpers_dashboard import write_cell_dataset


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def underconfident_outputs(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from calibrated logits divided by 3 (too flat), and labels drawn from the truth."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    return softmax(logits / 3.0), labels


def test_fit_recovers_the_temperature_and_lowers_ece():
    probabilities, labels = underconfident_outputs()
    temperature = fit_temperature(probabilities, labels)
    assert temperature == pytest.approx(1 / 3, rel=0.1)
    result = calibrate(probabilities, labels)
    assert result["ece_after_crossfitted"] < result["ece_before"] / 3
    assert result["ece_before"] == pytest.approx(expected_calibration_error(probabilities, labels), abs=1e-4)


def test_temperature_never_changes_a_prediction():
    probabilities, _ = underconfident_outputs(500)
    for temperature in (0.2, 1.0, 4.0):
        scaled = apply_temperature(probabilities, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(scaled.argmax(axis=1), probabilities.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(probabilities, 1.0), probabilities, rtol=1e-6)


def test_calibrate_command_writes_temperature_and_review_thresholds(tmp_path, tiny_model_dir, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = tmp_path / "cells"
    write_cell_dataset(data)
    before = (model / "model.keras").read_bytes()
    assert main(["calibrate", str(data), "--model", str(model)]) == 0
    card = json.loads((model / "card.json").read_text())
    assert card["calibration"]["method"] == "temperature scaling" and card["calibration"]["temperature"] > 0
    assert card["calibration"]["fitted_on"].startswith("every image of")
    assert "confidence_threshold" in card["review"]
    assert (model / "model.keras").read_bytes() == before  # in place: only the card is rewritten
    assert "temperature" in capsys.readouterr().err

    from bloodcell_core.inference.predictor import Predictor

    assert Predictor.load(model).temperature == card["calibration"]["temperature"]


def test_calibrate_command_needs_two_known_classes(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "cells" / "not-a-blood-class"
    data.mkdir(parents=True)
    from tests.helpers_dashboard import png_bytes, synthetic_cell

    (data / "a.png").write_bytes(png_bytes(synthetic_cell(64)))
    assert main(["calibrate", str(tmp_path / "cells"), "--model", str(tiny_model_dir), "--out",
                 str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
