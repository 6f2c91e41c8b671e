"""Test-time augmentation: the views, the averaging, the card setting and the calibrate option."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bloodcell_core.cli import main
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.temperature import apply_temperature
from bloodcell_core.inference.tta import VIEWS, run_views, run_views_where_unsure
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
    assert "prediction averaged over 2 views (identity, hflip)" in capsys.readouterr().err
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


def _corner_model(batch: np.ndarray):
    """Two-class "probabilities" from the top-left pixel (orientation-sensitive), and that pixel as a feature."""
    top = batch[:, 0, 0, 0] / 100.0
    return np.stack([top, 1 - top], axis=1), batch[:, 0, 0, 0:1]


def test_extra_views_are_added_only_for_the_unsure_crops():
    calls = []

    def run(batch: np.ndarray):
        calls.append(len(batch))
        return _corner_model(batch)

    batch = np.zeros((3, 4, 4, 3), np.float32)
    batch[:, 0, 0, 0] = [100.0, 60.0, 0.0]  # identity+rot180 average: 0.5/0.5 (unsure), 0.3/0.7, 0/1 (sure)
    batch[2, -1, -1, 0] = 0.0
    probabilities, features = run_views_where_unsure(run, batch, ("identity", "rot180"), ("rot90", "rot270"), 0.6)
    assert calls == [6, 2]  # both base views of all three, then the two extra views of the one unsure crop
    base, base_features = run_views(_corner_model, batch, ("identity", "rot180"))
    extra, extra_features = run_views(_corner_model, batch[:1], ("rot90", "rot270"))
    np.testing.assert_allclose(probabilities[0], (base[0] * 2 + extra[0] * 2) / 4)
    np.testing.assert_allclose(features[0], (base_features[0] * 2 + extra_features[0] * 2) / 4)
    np.testing.assert_allclose(probabilities[1:], base[1:])  # the sure crops keep the base average
    calls.clear()
    unchanged = run_views_where_unsure(run, batch, ("identity", "rot180"), ("rot90",), None)
    assert calls == [6] and np.array_equal(unchanged[0], base)  # no threshold: no extra pass


def test_a_card_with_extra_views_is_checked_and_served(tmp_path, tiny_model_dir, capsys):
    from bloodcell_core.errors import ModelLoadError
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.models.store import check_model_folder

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = tmp_path / "cells"
    write_cell_dataset(data)
    assert main(["calibrate", str(data), "--model", str(model), "--tta", "identity,rot180",
                 "--tta-extra", "rot90,rot270", "--tta-extra-below", "1.0"]) == 0
    card = json.loads((model / "card.json").read_text())
    assert card["inference"] == {"tta": ["identity", "rot180"], "tta_extra": ["rot90", "rot270"],
                                 "tta_extra_below": 1.0}
    assert "plus rot90, rot270 where the top probability over those is below 1.00" in capsys.readouterr().err
    served = Predictor.load(model)
    assert served.extra_views == ("rot90", "rot270")
    crop = served.prepare(np.zeros((64, 64, 3), np.uint8))[0][np.newaxis]
    every_view = Predictor(served.model, {**card, "inference": {"tta": ["identity", "rot180", "rot90", "rot270"]}})
    np.testing.assert_allclose(served.run_prepared(crop)[0], every_view.run_prepared(crop)[0], atol=1e-5)  # all unsure
    assert main(["calibrate", str(data), "--model", str(model), "--tta-extra", "rot90"]) == 2
    assert "--tta-extra needs --tta-extra-below" in capsys.readouterr().err
    assert main(["calibrate", str(data), "--model", str(model), "--tta-extra", "none"]) == 0
    assert not json.loads((model / "card.json").read_text())["inference"].get("tta_extra")
    assert Predictor.load(model).extra_views == ()
    (model / "card.json").write_text(json.dumps({**card, "inference": {**card["inference"], "tta_extra": ["rot180"]}}))
    with pytest.raises(ModelLoadError, match=r"rot180 both in tta and tta_extra"):
        check_model_folder(model)
    (model / "card.json").write_text(json.dumps({**card, "inference": {"tta": ["identity"], "tta_extra": ["spin"]}}))
    with pytest.raises(ModelLoadError, match=r"unknown test-time view\(s\) spin"):
        check_model_folder(model)  # named without a threshold: still a broken card


@pytest.mark.parametrize(("inference", "averages"), [
    ({}, False),  # an older card: one pass
    ({"tta": ["identity", "rot180"]}, True),
    ({"tta": ["identity"], "tta_extra": ["rot90"], "tta_extra_below": 0.7}, True),  # only for unsure crops
    ({"tta": ["identity"], "tta_extra": ["rot90"]}, False),  # extra views without a threshold never run
])
def test_a_card_says_whether_its_predictions_average_views(inference: dict, averages: bool) -> None:
    from bloodcell_core.models.card import Inference

    assert Inference.from_json(inference).averages_views is averages
