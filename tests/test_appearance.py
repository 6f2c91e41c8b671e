"""Appearance randomisation: another laboratory's look per image, inside tf.data."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from bloodcell_core.training.appearance import random_appearance
from bloodcell_core.training.augment import build_augmenter
from tests.helpers_images import synthetic_cell


def _batch(n: int = 16) -> np.ndarray:
    return np.stack([synthetic_cell(48, seed=i) for i in range(n)]).astype(np.float32)


def test_every_image_gets_its_own_look_within_range() -> None:
    tf.random.set_seed(3)
    images = _batch()
    out = random_appearance(tf.constant(images)).numpy()
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    mean_colours = out.reshape(len(out), -1, 3).mean(axis=1)
    assert np.ptp(mean_colours, axis=0).max() > 20  # images differ from each other in colour cast
    assert np.abs(out - images).mean() > 5


def test_appearance_share_zero_leaves_the_source_look() -> None:
    labels = tf.one_hot(np.zeros(8, np.int64), 3)
    weights = tf.ones(8)
    images = tf.constant(_batch(8))
    unchanged, _, _ = build_augmenter(("appearance",), seed=0, appearance_share=0.0)(images, labels, weights)
    changed, _, _ = build_augmenter(("appearance",), seed=0, appearance_share=1.0)(images, labels, weights)
    assert np.allclose(unchanged.numpy(), images.numpy())
    assert not np.allclose(changed.numpy(), images.numpy())
