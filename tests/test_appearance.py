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


def test_stain_density_keeps_the_background_and_lightens_or_darkens_the_stain() -> None:
    from bloodcell_core.training.appearance import random_stain_density

    tf.random.set_seed(5)
    images = np.full((6, 8, 8, 3), 250.0, np.float32)
    images[:, 2:6, 2:6] = (60.0, 40.0, 100.0)  # a dark PBC-like nucleus on white
    lighter = random_stain_density(tf.constant(images), low=0.3, high=0.3, channel_spread=(1.0, 1.0)).numpy()
    darker = random_stain_density(tf.constant(images), low=1.2, high=1.2, channel_spread=(1.0, 1.0)).numpy()
    assert np.allclose(lighter[:, 0, 0], 255 * (250 / 255) ** 0.3, atol=0.5)  # background stays near white
    assert (lighter[:, 3, 3] > images[:, 3, 3] + 40).all()  # the nucleus gets much lighter
    assert (darker[:, 3, 3] < images[:, 3, 3]).all()
    expected_red = 255 * (60 / 255) ** 0.3  # optical density scaled by s is transmittance ** s
    assert np.allclose(lighter[:, 3, 3, 0], expected_red, atol=0.5)


def test_density_is_an_augmentation_name() -> None:
    labels = tf.one_hot(np.zeros(8, np.int64), 3)
    images = tf.constant(_batch(8))
    out, _, _ = build_augmenter(("density",), seed=0)(images, labels, tf.ones(8))
    assert out.shape == images.shape and float(tf.reduce_max(out)) <= 255


def test_grayscale_share_one_turns_every_changed_image_grey() -> None:
    labels = tf.one_hot(np.zeros(8, np.int64), 3)
    grey, _, _ = build_augmenter(("appearance",), seed=0, appearance_share=1.0, grayscale_share=1.0)(
        tf.constant(_batch(8)), labels, tf.ones(8))
    channels = grey.numpy()
    assert np.allclose(channels[..., 0], channels[..., 1], atol=1e-3) and np.allclose(channels[..., 1], channels[..., 2], atol=1e-3)
