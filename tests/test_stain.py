"""Reinhard stain normalisation, and the Predictor applying it only when its card asks."""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2lab

from bloodcell_core.preprocess.stain import lab_statistics, reinhard
from tests.helpers_images import synthetic_cell


def test_reinhard_moves_an_image_to_the_reference_lab_statistics():
    reference_images = np.stack([synthetic_cell(64, seed=s) for s in range(4)])
    reference = lab_statistics(reference_images)
    tinted = np.clip(synthetic_cell(64, seed=9).astype(int) + (30, 25, -40), 0, 255).astype(np.uint8)
    normalised = reinhard(tinted, reference)
    assert normalised.shape == tinted.shape and normalised.dtype == np.uint8
    before = np.abs(rgb2lab(tinted).reshape(-1, 3).mean(0) - reference["mean"]).sum()
    after = np.abs(rgb2lab(normalised).reshape(-1, 3).mean(0) - reference["mean"]).sum()
    assert after < before / 4


def test_predictor_normalises_only_when_the_card_says_so(tiny_model_dir):
    from bloodcell_core.inference.predictor import Predictor

    plain = Predictor.load(tiny_model_dir)
    image = np.clip(synthetic_cell(64, seed=1).astype(int) + (40, 0, -40), 0, 255).astype(np.uint8)
    card = {**plain.card.to_json(), "preprocessing": {"stain_normalisation": lab_statistics(synthetic_cell(32)[None])}}
    normalising = Predictor(plain.model, card)
    assert not np.array_equal(plain.prepare(image)[0], normalising.prepare(image)[0])
    np.testing.assert_array_equal(plain.prepare(image)[0], Predictor(plain.model, plain.card).prepare(image)[0])
