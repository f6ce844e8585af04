"""CNN presets for 48x48 grayscale faces, all built by :func:`build_model`.

Every model takes raw uint8 pixels (``Rescaling`` is its first layer) and ends in a 7-way softmax
in :data:`fer.data.CLASSES` order.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fer.data import CLASSES, IMAGE_SIZE


@keras.saving.register_keras_serializable(package="fer")
class Smoothing(layers.Layer):
    """At inference, blends each face with its Gaussian blur: ``(1 - weight) x + weight blur(x)``.

    Every training face passes through bilinear rotation, shift and zoom, which soften it, so raw
    faces at inference are sharper than anything the network trained on; a mild blur closes that
    gap (measured on the validation split, README). A no-op while training. The blur reflects at
    the border (``scipy.ndimage.gaussian_filter``'s default) and is one fixed depthwise kernel.

    Args:
        sigma: Gaussian standard deviation in pixels.
        weight: share of the blurred image (0 = off, 1 = blur only).
    """

    def __init__(self, sigma: float = 1.0, weight: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if sigma <= 0 or not 0.0 <= weight <= 1.0:
            raise ValueError(f"smoothing needs sigma > 0 and 0 <= weight <= 1, got {sigma}, "
                             f"{weight}")
        self.sigma, self.weight = float(sigma), float(weight)
        self.radius = max(1, int(4 * self.sigma + 0.5))  # scipy's truncate=4
        t = np.arange(-self.radius, self.radius + 1, dtype=np.float64)
        g = np.exp(-0.5 * (t / self.sigma) ** 2)
        kernel = self.weight * np.outer(g, g) / g.sum() ** 2
        kernel[self.radius, self.radius] += 1.0 - self.weight
        self.kernel = kernel[:, :, None, None].astype("float32")  # (k, k, 1 channel, 1)

    def call(self, inputs, training=None):
        x = keras.ops.cast(inputs, self.compute_dtype)
        if training or self.weight == 0.0:
            return x
        r = self.radius
        x = keras.ops.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="symmetric")
        return keras.ops.depthwise_conv(x, keras.ops.convert_to_tensor(self.kernel), 1, "valid")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "weight": self.weight}


@keras.saving.register_keras_serializable(package="fer")
class Calibration(layers.Layer):
    """Temperature scaling of class probabilities: ``softmax(log(p) / temperature)``.

    Label smoothing and mixup train a network to under-state its confidence; one temperature
    fitted on the validation split (:func:`fer.calibration.fit_temperature`) corrects that
    without changing which class wins. ``log(p)`` equals the logits up to a per-face constant,
    which the softmax cancels, so this is exactly softmax(logits / temperature). Living inside
    the model, it applies wherever the model's probabilities are shown or written.

    Args:
        temperature: > 1 softens, < 1 sharpens, 1 = no change.
    """

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def call(self, inputs):
        p = keras.ops.cast(inputs, "float32")
        logp = keras.ops.log(keras.ops.maximum(p, 1e-12))
        return keras.ops.softmax(logp / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def _seed(x, dropout: float):
    # The original README's network, kept layer for layer as the reference.
    for filters in (64, 128, 256):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    for units in (256, 128):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Dropout(dropout)(x)
    return x


def _conv_bn_relu(x, filters: int):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)  # BN supplies the bias
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _vgg_gap(x, dropout: float, widths: tuple[int, ...], convs: int):
    # Two 3x3 convs per stage as in VGG, but global average pooling instead of big dense layers:
    # most of the seed's parameters sit in one Dense(256) over a flattened map.
    for i, filters in enumerate(widths):
        for _ in range(convs):
            x = _conv_bn_relu(x, filters)
        if i < len(widths) - 1:
            x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(dropout)(x)


def _resnet(x, dropout: float, widths: tuple[int, ...]):
    # Pre-activation-free basic residual blocks; the shortcut lets the deeper net train fast.
    x = _conv_bn_relu(x, widths[0])
    for i, filters in enumerate(widths):
        if i:
            x = layers.MaxPooling2D()(x)
        shortcut = x
        if shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, use_bias=False)(shortcut)
            shortcut = layers.BatchNormalization()(shortcut)
        y = _conv_bn_relu(x, filters)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.Activation("relu")(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(dropout)(x)


PRESETS: dict[str, str] = {
    "seed": "original README CNN: 3 conv blocks 64-128-256, dense 256-128 (2.8M params)",
    "vgg_gap": "2 convs per stage 32-64-128-256, global pooling (1.2M params), fully convolutional",
    "vgg_gap_wide": "2 convs per stage 48-96-192-384, global pooling (2.6M params)",
    "resnet": "residual stages 32-64-128-256, global pooling (1.2M params)",
}


def build_model(
    preset: str = "vgg_gap", num_classes: int = len(CLASSES), dropout: float = 0.4,
    smoothing: tuple[float, float] | None = None, temperature: float | None = None,
) -> keras.Model:
    """Builds a preset CNN that maps uint8 grayscale faces to class probabilities.

    Args:
        preset: one of :data:`PRESETS`.
        num_classes: output classes (7 for FER2013).
        dropout: dropout before the classifier (the seed uses it after each dense layer).
        smoothing: ``(sigma, weight)`` of an inference-only :class:`Smoothing` layer before
            ``Rescaling`` (None = none); it has no weights, so weights transfer either way.
        temperature: a :class:`Calibration` layer after the softmax (None = none; no weights
            either).

    Returns:
        An uncompiled ``keras.Model``. ``seed`` takes exactly 48x48 inputs; the global-pooling
        presets take any size, so they can train on random crops and predict on full faces.

    Raises:
        ValueError: an unknown preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    side = IMAGE_SIZE if preset == "seed" else None
    inputs = keras.Input(shape=(side, side, 1), name="face")
    x = inputs
    if smoothing and smoothing[1] > 0:
        x = Smoothing(*smoothing, name="smoothing")(x)
    x = layers.Rescaling(1.0 / 255)(x)
    if preset == "seed":
        x = _seed(x, dropout)
    elif preset == "vgg_gap":
        x = _vgg_gap(x, dropout, (32, 64, 128, 256), convs=2)
    elif preset == "vgg_gap_wide":
        x = _vgg_gap(x, dropout, (48, 96, 192, 384), convs=2)
    else:
        x = _resnet(x, dropout, (32, 64, 128, 256))
    # float32 softmax keeps probabilities exact under a bfloat16 mixed-precision policy.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    if temperature is not None and temperature != 1.0:
        outputs = Calibration(temperature, name="calibration")(outputs)
    return keras.Model(inputs, outputs, name=preset)


def with_smoothing(model: keras.Model, sigma: float, weight: float) -> keras.Model:
    """``model`` behind an inference-only :class:`Smoothing` layer (for measuring it on val).

    Args:
        model: any model that takes uint8 faces.
        sigma: Gaussian standard deviation in pixels.
        weight: share of the blurred image; 0 returns ``model`` unchanged.
    """
    if weight == 0:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="face")
    return keras.Model(inputs, model(Smoothing(sigma, weight)(inputs)), name=model.name)


def model_temperature(model: keras.Model) -> float:
    """The temperature of a model's :class:`Calibration` layer (1.0 when it has none)."""
    found = [l.temperature for l in model.layers if isinstance(l, Calibration)]
    return found[-1] if found else 1.0
