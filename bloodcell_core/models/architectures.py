"""Flat functional Keras models (no Sequential, no nested base) so tf-keras-vis works.

Every model takes an (S, S, 3) float32 image in 0..255 and does its own scaling, so a
saved model file plus its card is all serving needs.  The last convolutional feature
map is named ``last_conv`` and the pooled features ``features`` (used for embeddings).
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers, ops

from bloodcell_core.errors import BloodcellError

# keras.applications constructor and the input scaling it expects from 0..255 pixels.
# "none": the application rescales internally (EfficientNet, MobileNetV3, ConvNeXt).
BACKBONES: dict[str, tuple[Callable[..., keras.Model], str]] = {
    "efficientnetb0": (keras.applications.EfficientNetB0, "none"),
    "efficientnetb3": (keras.applications.EfficientNetB3, "none"),
    "xception": (keras.applications.Xception, "tf"),
    "resnet50": (keras.applications.ResNet50, "caffe"),
    "vgg16": (keras.applications.VGG16, "caffe"),
    "mobilenetv3small": (keras.applications.MobileNetV3Small, "none"),
    "mobilenetv3large": (keras.applications.MobileNetV3Large, "none"),
    "convnexttiny": (keras.applications.ConvNeXtTiny, "none"),
}
ARCHITECTURES: tuple[str, ...] = ("compact", *BACKBONES)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="bloodcell")
class ChannelReverse(layers.Layer):
    """RGB -> BGR for caffe-style backbones (a named layer, so models reload in safe mode)."""

    def call(self, inputs):
        return ops.flip(inputs, axis=-1)


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, name: str | None = None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("swish", name=name)(x)


def _residual_block(x, filters: int, strides: int):
    """Depthwise-separable residual block: cheap on CPU, keeps spatial detail."""
    shortcut = x
    y = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.Activation("swish")(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut)
        shortcut = layers.BatchNormalization()(shortcut)
    return layers.Activation("swish")(layers.Add()([y, shortcut]))


def _compact_trunk(x, width: float = 1.0):
    """A small CNN designed for a 2-core CPU: plain 3x3 stem, separable residual stages."""
    def ch(n: int) -> int:
        return max(8, int(n * width))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(x)
    x = _conv_bn(x, ch(24), strides=2, name="stem")
    x = _conv_bn(x, ch(32), name="stem2")
    for filters, strides, repeats in ((48, 2, 2), (96, 2, 2), (160, 2, 3), (256, 2, 2)):
        for i in range(repeats):
            x = _residual_block(x, ch(filters), strides if i == 0 else 1)
    return _conv_bn(x, ch(384), kernel=1, name="last_conv")


def _scale_for(x, mode: str):
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(x)
    if mode == "caffe":
        x = ChannelReverse(name="rgb_to_bgr")(x)
        mean = [-m for m in _CAFFE_MEAN_BGR]
        return layers.Rescaling(1.0, offset=mean, name="scale")(x)
    return x


def _backbone_trunk(x, arch: str, weights: str | None):
    constructor, mode = BACKBONES[arch]
    base = constructor(include_top=False, weights=weights, input_tensor=_scale_for(x, mode))
    features = base.output
    return layers.Activation("linear", name="last_conv")(features), base


def build_model(arch: str, n_classes: int, input_size: int, crop_size: int | None = None,
                dropout: float = 0.2, weights: str | None = None, width: float = 1.0) -> keras.Model:
    """Build a flat functional classifier.

    ``crop_size`` is the side of the cell crop the model receives; when it differs from
    ``input_size`` a Resizing layer inside the model does the resize.  ``weights`` is a
    local ImageNet weights file (no top) for the keras.applications backbones.
    """
    arch = arch.lower()
    if arch not in ARCHITECTURES:
        raise BloodcellError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if weights is not None and arch == "compact":
        raise BloodcellError("--weights applies to keras.applications backbones, not the compact CNN")
    inputs = keras.Input((crop_size or input_size, crop_size or input_size, 3), name="image")
    x = inputs
    if crop_size and crop_size != input_size:
        x = layers.Resizing(input_size, input_size, name="resize")(x)
    if arch == "compact":
        x = _compact_trunk(x, width)
    else:
        x, _ = _backbone_trunk(x, arch, weights)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"bloodcell_{arch}")


def backbone_layer_names(model: keras.Model) -> list[str]:
    """Names of the pretrained-backbone layers (everything between scaling and the head)."""
    head = {"image", "resize", "scale", "rgb_to_bgr", "last_conv", "features", "dropout", "probabilities"}
    return [layer.name for layer in model.layers if layer.name not in head]


@keras.saving.register_keras_serializable(package="bloodcell")
class LabGatedHead(layers.Layer):
    """The softmax layer of a model adapted to one laboratory (``adapt``): two heads, one gate.

    ``home_*`` is the parent's softmax layer, ``lab_*`` the one refitted on the laboratory's
    cells.  Each image goes to the head of the nearer domain: its pooled features' Mahalanobis
    distance (in the parent card's PCA space, with its shrinkage precision) to the nearest home
    class mean versus the nearest laboratory class mean.  So the home laboratory keeps the
    parent's answers while the new laboratory gets its own.  ``activation`` stays an attribute
    so tf-keras-vis can swap the softmax for a linear output (Grad-CAM of the chosen head).
    """

    def __init__(self, n_classes: int, n_features: int, n_dims: int, n_home: int, n_lab: int,
                 activation: str = "softmax", **kwargs):
        super().__init__(**kwargs)
        self.sizes = dict(n_classes=n_classes, n_features=n_features, n_dims=n_dims, n_home=n_home, n_lab=n_lab)
        self.activation = keras.activations.get(activation)
        shapes = {"home_kernel": (n_features, n_classes), "home_bias": (n_classes,),
                  "lab_kernel": (n_features, n_classes), "lab_bias": (n_classes,), "mean": (n_features,),
                  "basis": (n_features, n_dims), "precision": (n_dims, n_dims), "home_means": (n_home, n_dims),
                  "lab_means": (n_lab, n_dims)}
        self.tables = {name: self.add_weight(name=name, shape=shape, initializer="zeros", trainable=False)
                       for name, shape in shapes.items()}

    def _nearest(self, z, means):
        diff = ops.expand_dims(z, 1) - ops.expand_dims(means, 0)
        squared = ops.einsum("nkd,de,nke->nk", diff, self.tables["precision"], diff)
        return ops.min(squared, axis=1)

    def uses_lab_head(self, features):
        z = ops.matmul(features - self.tables["mean"], self.tables["basis"])
        return self._nearest(z, self.tables["lab_means"]) < self._nearest(z, self.tables["home_means"])

    def call(self, features):
        home = ops.matmul(features, self.tables["home_kernel"]) + self.tables["home_bias"]
        lab = ops.matmul(features, self.tables["lab_kernel"]) + self.tables["lab_bias"]
        logits = ops.where(ops.expand_dims(self.uses_lab_head(features), 1), lab, home)
        return self.activation(logits)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.sizes["n_classes"])

    def get_config(self):
        return {**super().get_config(), **self.sizes, "activation": keras.activations.serialize(self.activation)}
