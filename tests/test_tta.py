"""Test-time augmentation: the views, the averaging, the card setting and the calibrate option."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.temperature import apply_temperature
from bloodcell_core.inference.tta import VIEWS, run_views
from bloodcell_core.models.card import NO_TTA, VIEW_NAMES, card_views, parse_views
from tests.helpers_dashboard import write_cell_dataset


def test_every_view_keeps_the_shape_and_is_a_symmetry_of_the_square():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 255, (3, 8, 8, 3)).astype(np.float32)
    for name, view in VIEWS.items():
        out = view(batch)
        assert out.shape == batch.shape, name
        # a rotation or mirror only moves pixels: per-image values are a permutation of the input
        np.testing.assert_array_equal(np.sort(out.reshape(3, -1), axis=1), np.sort(batch.reshape(3, -1), axis=1))
        if name != "identity":
            assert not np.array_equal(out, batch), name


def test_parse_views_validates_names():
    assert parse_views("identity, rot180") == ("identity", "rot180")
    assert parse_views(None) == ("identity",) and parse_views("") == ("identity",)
    with pytest.raises(BloodcellError, match="unknown test-time view"):
        parse_views("identity,sideways")
    with pytest.raises(BloodcellError, match="twice"):
        parse_views("rot180,rot180")
    assert card_views({}) == ("identity",) == NO_TTA
    assert card_views({"inference": {"tta": ["identity", "hflip"]}}) == ("identity", "hflip")
    assert set(VIEW_NAMES) == set(VIEWS)  # every name a card may give is a view the predictor can run


def test_run_views_averages_each_output_over_the_views_in_one_call():
    calls = []

    def run(batch: np.ndarray):
        calls.append(len(batch))
        # an orientation-sensitive "model": the value of the top-left pixel, and its negative
        corner = batch[:, 0, 0, 0:1]
        return corner, -corner

    batch = np.zeros((2, 4, 4, 3), np.float32)
    batch[:, 0, 0, 0] = [10.0, 20.0]  # top-left; bottom-right stays 0
    first, second = run_views(run, batch, ("identity", "rot180"))
    assert calls == [4]  # both views in one stacked call
    np.testing.assert_allclose(first[:, 0], [5.0, 10.0])  # (corner + 0) / 2
    np.testing.assert_allclose(second, -first)
    assert run_views(run, batch, NO_TTA)[0][:, 0].tolist() == [10.0, 20.0]


def test_predictor_with_views_averages_the_model_over_them(tiny_model_dir):
    from bloodcell_core.inference.predictor import Predictor
    from tests.helpers_dashboard import synthetic_cell

    single = Predictor.load(tiny_model_dir)
    card = {**single.card.to_json(), "inference": {"tta": ["identity", "rot180"]}}
    averaged = Predictor(single.model, card)
    assert averaged.tta_views == ("identity", "rot180")
    image = synthetic_cell(64)
    crop = single.prepare(image)[0][np.newaxis]
    expected = (single.model.predict_on_batch(crop) + single.model.predict_on_batch(crop[:, ::-1, ::-1].copy())) / 2
    np.testing.assert_allclose(averaged.predict_proba([image]), apply_temperature(expected, single.temperature),
                               atol=1e-5)
    prediction = averaged.predict_images([image])[0]
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_calibrate_with_tta_stores_the_views_and_fits_on_them(tmp_path, tiny_model_dir, capsys):
    from bloodcell_core.inference.predictor import Predictor

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = tmp_path / "cells"
    write_cell_dataset(data)
    assert main(["calibrate", str(data), "--model", str(model), "--tta", "identity,hflip"]) == 0
    card = json.loads((model / "card.json").read_text())
    assert card["inference"]["tta"] == ["identity", "hflip"]
    assert Predictor.load(model).tta_views == ("identity", "hflip")
    assert "test-time views identity,hflip" in capsys.readouterr().err
    assert main(["calibrate", str(data), "--model", str(model), "--tta", "upside"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown test-time view")


def test_a_card_naming_an_unknown_view_is_refused_before_tensorflow_loads(tmp_path, tiny_model_dir):
    from bloodcell_core.errors import ModelLoadError
    from bloodcell_core.models.store import check_model_folder

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    card = json.loads((model / "card.json").read_text())
    (model / "card.json").write_text(json.dumps({**card, "inference": {"tta": ["identity", "upside"]}}))
    with pytest.raises(ModelLoadError, match=r"card\.json: unknown test-time view\(s\) upside"):
        check_model_folder(model)
