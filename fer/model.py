"""CNN presets for 48x48 grayscale faces, all built by :func:`build_model`.

Every model takes raw uint8 pixels (``Rescaling`` is its first layer) and ends in a 7-way softmax
in :data:`fer.data.CLASSES` order.
"""

from __future__ import annotations

import keras
from keras import layers

from fer.data import CLASSES, IMAGE_SIZE


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
    preset: str = "vgg_gap", num_classes: int = len(CLASSES), dropout: float = 0.4
) -> keras.Model:
    """Builds a preset CNN that maps uint8 grayscale faces to class probabilities.

    Args:
        preset: one of :data:`PRESETS`.
        num_classes: output classes (7 for FER2013).
        dropout: dropout before the classifier (the seed uses it after each dense layer).

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
    x = layers.Rescaling(1.0 / 255)(inputs)
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
    return keras.Model(inputs, outputs, name=preset)
