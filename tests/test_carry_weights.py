"""Carrying a compact CNN's weights to another crop size or a wider copy keeps what it computes."""
from __future__ import annotations

import numpy as np
import pytest

from bloodcell_core.errors import BloodcellError
from bloodcell_core.models.architectures import build_model
from bloodcell_core.models.carry import carry_weights


def _trained_like(model):
    """Random weights and BatchNorm statistics, as after training (not the fresh initialisation)."""
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) if w.ndim else w
                       for w in model.get_weights()])
    return model


def _images(side: int, count: int = 4) -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (count, side, side, 3)).astype(np.float32)


def test_a_wider_copy_starts_as_the_trained_network() -> None:
    narrow = _trained_like(build_model("compact", 3, 32, width=0.25))
    wide = carry_weights(narrow, build_model("compact", 3, 32, width=0.5))
    assert wide.count_params() > narrow.count_params()
    images = _images(32)
    assert np.allclose(narrow.predict_on_batch(images), wide.predict_on_batch(images), atol=1e-5)


def test_the_same_network_on_another_crop_size_keeps_its_weights() -> None:
    small = _trained_like(build_model("compact", 3, 32, width=0.25))
    large = carry_weights(small, build_model("compact", 3, 48, width=0.25))
    for before, after in zip(small.get_weights(), large.get_weights()):
        assert np.array_equal(before, after)


def test_a_narrower_or_different_network_is_refused() -> None:
    wide = build_model("compact", 3, 32, width=0.5)
    with pytest.raises(BloodcellError, match="does not fit"):
        carry_weights(wide, build_model("compact", 3, 32, width=0.25))
    with pytest.raises(BloodcellError, match="depth"):
        carry_weights(wide, build_model("mobilenetv3small", 3, 32))
