"""``tf.data`` input pipelines: shuffle, batch, Keras augmentation layers, mixup, prefetch."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from fer.data import CLASSES, Split

AUTOTUNE = tf.data.AUTOTUNE


def layer_seeds(seed: int, start_epoch: int, count: int) -> list[int]:
    """One independent seed per random layer, for a run segment starting at ``start_epoch``.

    Keras random layers given the same integer seed draw the same stream, so a single seed for
    every layer makes their draws coincide (every mirrored face also rotated the same way).
    ``numpy.random.SeedSequence`` spawns statistically independent seeds instead. Mixing in
    ``start_epoch`` makes a resumed run draw new augmentations rather than replay those of
    epoch 1 (the layers' generator state lives in the pipeline, not in ``last.keras``).

    Args:
        seed: the run's seed.
        start_epoch: epochs already trained (0 for a new run).
        count: how many seeds.

    Returns:
        ``count`` distinct non-negative 31-bit integers.
    """
    state = np.random.SeedSequence([seed, start_epoch]).generate_state(count)
    return [int(s) & 0x7FFFFFFF for s in state]


@keras.saving.register_keras_serializable(package="fer")
class RealPhoto(layers.Layer):
    """Training-time corruptions that real photos show and FER2013 rarely does.

    Each face independently gets, each with probability 0.5: an exposure change (gamma drawn
    log-uniformly in [1/g, g], g = 1 + strength), a blur (blended with its sigma-1.2 Gaussian
    blur at a random share up to ``strength``), camera noise (Gaussian, std up to 12 grey
    levels x strength) and a loss of resolution (down to 24 px and back up). Inputs and
    outputs are floats in 0..255; a no-op outside training.

    Args:
        strength: 0 = off; 1 = the ranges above; up to 2.
        seed: seeds the layer's own stream.
    """

    def __init__(self, strength: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.strength, self.seed = float(strength), seed
        self.generator = keras.random.SeedGenerator(seed)
        t = np.arange(-4, 5, dtype=np.float64)
        g = np.exp(-0.5 * (t / 1.2) ** 2)
        self.kernel = (np.outer(g, g) / g.sum() ** 2)[:, :, None, None].astype("float32")

    def _coin(self, n):
        return keras.ops.cast(
            keras.random.uniform((n, 1, 1, 1), seed=self.generator) < 0.5, "float32")

    def call(self, x, training=True):
        if not training or self.strength == 0:
            return x
        ops = keras.ops
        x = ops.cast(x, "float32")
        n, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        u = lambda: keras.random.uniform((n, 1, 1, 1), seed=self.generator)  # noqa: E731
        # Exposure: gamma in [1/g, g], log-uniform.
        log_g = np.log1p(self.strength)
        gamma = ops.exp((2 * u() - 1) * log_g)
        on = self._coin(n)
        x = on * 255.0 * ops.power(ops.clip(x / 255.0, 1e-6, 1.0), gamma) + (1 - on) * x
        # Blur: blend with a fixed Gaussian blur at a random share.
        blurred = ops.depthwise_conv(ops.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]], "symmetric"),
                                     ops.convert_to_tensor(self.kernel), 1, "valid")
        share = self._coin(n) * ops.minimum(u() * self.strength, 1.0)
        x = (1 - share) * x + share * blurred
        # Camera noise.
        std = self._coin(n) * u() * 12.0 * self.strength
        x = x + std * keras.random.normal(ops.shape(x), seed=self.generator)
        # Lower resolution: down to 24 px and back.
        low = ops.image.resize(ops.image.resize(x, (24, 24), "bilinear", antialias=True),
                               (h, w), "bilinear")
        on = self._coin(n)
        x = on * low + (1 - on) * x
        return ops.clip(x, 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "strength": self.strength, "seed": self.seed}


def build_augmenter(
    strength: float, crop_size: int, erasing: float, seed: int, start_epoch: int = 0,
    robust: float = 0.0,
) -> keras.Sequential:
    """Random geometric and photometric changes that keep a face a face.

    Args:
        strength: 0 turns everything but the crop off; 1 is the default recipe (rotation
            +-10 degrees, shift and zoom 10%, contrast 20%); values above 1 scale it up.
        crop_size: side of the random square crop taken from the 48x48 face (48 = no crop).
        erasing: probability of erasing one random rectangle (0 = off).
        seed: the run's seed; each layer gets its own stream derived from it.
        start_epoch: epochs already trained, so a resumed run continues with fresh draws.
        robust: strength of :class:`RealPhoto` corruptions (0 = off).

    Returns:
        A ``keras.Sequential`` to map over uint8 batches of shape (B, 48, 48, 1).
    """
    # Fixed slots (the 8th is mixup's) whichever layers are on: no stream depends on the others.
    flip, rot, shift, zoom, contrast, crop, erase, _, real = layer_seeds(seed, start_epoch, 9)
    aug: list[layers.Layer] = [layers.RandomFlip("horizontal", seed=flip)]
    if strength > 0:
        aug += [
            layers.RandomRotation(10 / 360 * strength, fill_mode="reflect", seed=rot),
            layers.RandomTranslation(0.1 * strength, 0.1 * strength, "reflect", seed=shift),
            layers.RandomZoom(0.1 * strength, fill_mode="reflect", seed=zoom),
            layers.RandomContrast(min(0.2 * strength, 0.9), seed=contrast),
        ]
    if robust > 0:
        aug.append(RealPhoto(robust, seed=real, name="real_photo"))
    if crop_size < 48:
        aug.append(layers.RandomCrop(crop_size, crop_size, seed=crop))
    if erasing > 0:
        aug.append(layers.RandomErasing(factor=erasing, scale=(0.02, 0.25), seed=erase))
    return keras.Sequential(aug, name="augment")


def make_dataset(
    split: Split,
    batch_size: int,
    *,
    training: bool = False,
    augmenter: keras.Sequential | None = None,
    mixup: float = 0.0,
    seed: int = 0,
    targets: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Turns a split into batches of ``(uint8 images (B, H, W, 1), one-hot float labels)``.

    Args:
        split: images and labels.
        batch_size: images per batch.
        training: shuffle every epoch, and apply ``augmenter`` and ``mixup``.
        augmenter: from :func:`build_augmenter`; ignored unless ``training``.
        mixup: Beta(alpha, alpha) mixup strength; 0 turns it off.
        seed: seeds the shuffle and (through its own derived stream) mixup.
        targets: ``(N, 7)`` soft labels to train on instead of the one-hot labels
            (distillation).

    Returns:
        A prefetched ``tf.data.Dataset``.
    """
    images = split.images[..., None] if split.images.ndim == 3 else split.images
    # One-hot labels: label smoothing and mixup both need them.
    labels = np.eye(len(CLASSES), dtype=np.float32)[split.labels]
    if targets is not None:
        if targets.shape != labels.shape:
            raise ValueError(f"targets must be shaped {labels.shape}, got {targets.shape}")
        labels = targets.astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training and len(images) >= batch_size)
    if training and augmenter is not None:
        # Augmentation layers output floats in 0..255; the model's Rescaling handles both.
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
    if training and mixup > 0:
        # Its own stream: sharing the shuffle's or a layer's seed would correlate the draws.
        mix = layers.MixUp(alpha=mixup, seed=layer_seeds(seed, 0, 8)[7])

        def _mix(x, y):
            out = mix({"images": x, "labels": y}, training=True)
            return out["images"], out["labels"]

        ds = ds.map(_mix, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
