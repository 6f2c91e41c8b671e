"""Appearance randomisation: make one laboratory's crops look like many laboratories'.

Another laboratory's cells differ from Barcelona's in stain recipe (hue, saturation),
illumination (background colour, brightness, gamma), camera (per-channel gains,
resolution, sharpening) and focus.  Each batch image gets an independent random draw of
all of these, vectorised in TensorFlow so it runs inside ``tf.data``.  JPEG, motion blur and
exposure changes were measured too and did not pay (README, ablation round 7).

The ranges were chosen by measuring accuracy on real other laboratories (LISC, Bio-Net),
not synthetic benchmarks; see the README's ablation.  Images are float 0..255, NHWC.
"""
from __future__ import annotations

import tensorflow as tf


def _uniform(n: tf.Tensor, low: float, high: float, shape: tuple[int, ...] = (1, 1, 1)) -> tf.Tensor:
    return tf.random.uniform(tf.concat([[n], shape], 0), low, high)


def _chance(n: tf.Tensor, probability: float) -> tf.Tensor:
    return tf.random.uniform([n, 1, 1, 1]) < probability


def _stain_and_gains(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """Hue rotation, saturation, per-channel gains: a different stain recipe and white balance."""
    hsv = tf.image.rgb_to_hsv(x / 255.0)
    hue = tf.math.floormod(hsv[..., 0:1] + _uniform(n, -0.12, 0.12), 1.0)
    saturation = tf.clip_by_value(hsv[..., 1:2] * _uniform(n, 0.4, 1.8), 0.0, 1.0)
    x = tf.image.hsv_to_rgb(tf.concat([hue, saturation, hsv[..., 2:3]], -1)) * 255.0
    return x * _uniform(n, 0.8, 1.2, (1, 1, 3))


def _background_tint(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """Blend a colour from anywhere on the hue circle into the bright (background) pixels."""
    luminance = tf.reduce_mean(x, axis=-1, keepdims=True) / 255.0
    level = tf.reduce_mean(luminance, axis=[1, 2, 3], keepdims=True)
    weight = tf.clip_by_value((luminance - level) / 0.2, 0.0, 1.0) * _uniform(n, 0.0, 0.7)
    tint_hsv = tf.concat([_uniform(n, 0.0, 1.0), _uniform(n, 0.05, 0.45), _uniform(n, 0.7, 1.0)], -1)
    tint = tf.image.hsv_to_rgb(tint_hsv) * 255.0
    return x * (1.0 - weight) + tint * weight


def _tone(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """Brightness, contrast and gamma: another lamp, exposure and camera curve."""
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * _uniform(n, 0.6, 1.4) + mean + _uniform(n, -25.0, 25.0)
    x = tf.clip_by_value(x, 0.0, 255.0) / 255.0
    return tf.pow(x + 1e-6, _uniform(n, 0.65, 1.5)) * 255.0


def _grayscale(x: tf.Tensor, n: tf.Tensor, probability: float) -> tf.Tensor:
    grey = tf.repeat(tf.reduce_mean(x, axis=-1, keepdims=True), 3, axis=-1)
    return tf.where(_chance(n, probability), grey, x)


def _resolution_loss(x: tf.Tensor, n: tf.Tensor, probability: float) -> tf.Tensor:
    """Down to 24-64 px and back: a lower-magnification objective or a small camera sensor."""
    side = tf.shape(x)[1]
    low = tf.random.uniform([], 24, 65, dtype=tf.int32)
    degraded = tf.image.resize(tf.image.resize(x, [low, low], antialias=True), [side, side], method="bilinear")
    return tf.where(_chance(n, probability), degraded, x)


def _gaussian_kernel(sigma: tf.Tensor, radius: int = 3) -> tf.Tensor:
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(offsets ** 2) / (2.0 * sigma ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    kernel_2d = kernel[:, None] * kernel[None, :]
    return tf.tile(kernel_2d[:, :, None, None], [1, 1, 3, 1])


def _blur_or_sharpen(x: tf.Tensor, n: tf.Tensor, blur_p: float, sharpen_p: float) -> tf.Tensor:
    """Defocus (Gaussian blur) or an over-sharpening camera (unsharp mask), one sigma per batch."""
    sigma = tf.random.uniform([], 0.6, 2.0)
    blurred = tf.nn.depthwise_conv2d(tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC"),
                                     _gaussian_kernel(sigma), [1, 1, 1, 1], "VALID")
    sharpened = x + (x - blurred) * _uniform(n, 0.5, 1.5)
    draw = tf.random.uniform([n, 1, 1, 1])
    x = tf.where(draw < blur_p, blurred, x)
    return tf.where((draw >= blur_p) & (draw < blur_p + sharpen_p), sharpened, x)


def random_appearance(images: tf.Tensor, grayscale_p: float = 0.15, resolution_p: float = 0.3,
                      blur_p: float = 0.25, sharpen_p: float = 0.1) -> tf.Tensor:
    """A laboratory drawn at random for every image of the batch (float 0..255 in and out)."""
    n = tf.shape(images)[0]
    x = _stain_and_gains(images, n)
    x = _background_tint(tf.clip_by_value(x, 0.0, 255.0), n)
    x = _tone(x, n)
    x = _grayscale(x, n, grayscale_p)
    x = _resolution_loss(x, n, resolution_p)
    x = _blur_or_sharpen(x, n, blur_p, sharpen_p)
    return tf.clip_by_value(x, 0.0, 255.0)


def random_stain_density(images: tf.Tensor, low: float = 0.25, high: float = 1.2,
                         channel_spread: tuple[float, float] = (0.75, 1.3)) -> tf.Tensor:
    """Another stain concentration: optical density (Beer-Lambert, -log transmittance) scaled per image.

    Transmittance to the power s scales every pixel's optical density by s, so the white
    background stays white while the nucleus gets lighter (s < 1) or darker (s > 1): LISC's
    Giemsa-Wright nuclei carry a fifth to a half of PBC's density.  s is log-uniform in
    [low, high], times a per-channel factor (the dyes absorb the three channels differently).
    """
    n = tf.shape(images)[0]
    scale = tf.exp(_uniform(n, tf.math.log(low), tf.math.log(high))) * _uniform(n, *channel_spread, (1, 1, 3))
    transmittance = tf.clip_by_value(images, 1.0, 255.0) / 255.0
    return tf.pow(transmittance, scale) * 255.0
