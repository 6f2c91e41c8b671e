"""Online (per-batch, in tf.data) augmentation of cell crops.

Names usable in ``--augment``: the microscopy set (flip, rot90, zoom, colour, blur, noise),
``appearance`` (another laboratory's stain, light, camera and focus, drawn per image:
:mod:`bloodcell_core.training.appearance`), ``density`` (another stain concentration: optical
density scaled, after ``appearance``) and the published set (randaugment, augmix, mixup, cutmix; noise is shared).  Offline
raw-image shifts and corruptions live in :mod:`bloodcell_core.training.prepare`.
"""
from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from bloodcell_core.training.appearance import random_appearance, random_stain_density

AUGMENTATIONS = ("flip", "rot90", "zoom", "colour", "appearance", "density", "blur", "noise", "randaugment", "augmix",
                 "mixup", "cutmix")
APPEARANCE_SHARE = 0.75  # with "appearance", this share of images gets another laboratory's look
GRAYSCALE_SHARE = 0.15  # of the images "appearance" changes, this share is turned grey
DENSITY_SHARE = 0.5  # with "density", this share of images gets another stain concentration
DEFAULT_AUGMENT = ("flip", "rot90", "zoom", "colour", "noise", "mixup")

Batch = tuple[tf.Tensor, tf.Tensor, tf.Tensor]  # images (float 0..255), one-hot labels, sample weights


def _dihedral(images: tf.Tensor, rot90: bool) -> tf.Tensor:
    """Random flips, and with rot90 a random transpose: together all 8 square symmetries."""
    images = tf.image.random_flip_left_right(images)
    images = tf.image.random_flip_up_down(images)
    if rot90:
        transpose = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
        images = tf.where(transpose, tf.transpose(images, [0, 2, 1, 3]), images)
    return images


def check_augmentations(names: tuple[str, ...] | list[str]) -> None:
    """BloodcellError (one line) for a name not in AUGMENTATIONS; the train command checks before preparing data."""
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        from bloodcell_core.errors import BloodcellError
        raise BloodcellError(f"unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}")


def build_augmenter(names: tuple[str, ...] | list[str], seed: int, zoom: float = 0.2,
                    appearance_share: float = APPEARANCE_SHARE, grayscale_share: float = GRAYSCALE_SHARE
                    ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], Batch]:
    check_augmentations(names)
    image_layers: list[keras.layers.Layer] = []
    if "zoom" in names:
        image_layers.append(keras.layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seed))
    if "colour" in names:
        image_layers.append(keras.layers.RandomColorJitter(value_range=(0, 255), brightness_factor=0.1,
                                                           contrast_factor=0.2, saturation_factor=(0.35, 0.65),
                                                           hue_factor=0.04, seed=seed))
    if "blur" in names:
        image_layers.append(keras.layers.RandomGaussianBlur(factor=0.5, kernel_size=5, sigma=(0.1, 1.5), seed=seed))
    if "randaugment" in names:
        image_layers.append(keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.3, seed=seed))
    if "augmix" in names:
        image_layers.append(keras.layers.AugMix(value_range=(0, 255), factor=0.3, seed=seed))
    noise = keras.layers.GaussianNoise(0.025, seed=seed) if "noise" in names else None  # on 0..1 scale
    mixers = [keras.layers.MixUp(alpha=0.2, seed=seed)] if "mixup" in names else []
    mixers += [keras.layers.CutMix(factor=0.5, seed=seed)] if "cutmix" in names else []
    flip, rot90, appearance, density = "flip" in names, "rot90" in names, "appearance" in names, "density" in names

    def augment(images: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor) -> Batch:
        images = tf.cast(images, tf.float32)
        if flip or rot90:
            images = _dihedral(images, rot90)
        for layer in image_layers:
            images = layer(images, training=True)
        if appearance:
            keep = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) >= appearance_share
            images = tf.where(keep, images, random_appearance(images, grayscale_p=grayscale_share))
        if density:
            change = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < DENSITY_SHARE
            images = tf.where(change, random_stain_density(images), images)
        if noise is not None:
            images = noise(images / 255.0, training=True) * 255.0
        for mixer in mixers:  # together they mix half of the batches; the rest stay unmixed
            mixed = mixer({"images": images, "labels": labels}, training=True)
            apply = tf.random.uniform([]) < 0.5 / len(mixers)
            images = tf.where(apply, mixed["images"], images)
            labels = tf.where(apply, tf.cast(mixed["labels"], labels.dtype), labels)
        return tf.clip_by_value(images, 0.0, 255.0), labels, weights

    return augment
