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


def build_augmenter(
    strength: float, crop_size: int, erasing: float, seed: int, start_epoch: int = 0
) -> keras.Sequential:
    """Random geometric and photometric changes that keep a face a face.

    Args:
        strength: 0 turns everything but the crop off; 1 is the default recipe (rotation
            +-10 degrees, shift and zoom 10%, contrast 20%); values above 1 scale it up.
        crop_size: side of the random square crop taken from the 48x48 face (48 = no crop).
        erasing: probability of erasing one random rectangle (0 = off).
        seed: the run's seed; each layer gets its own stream derived from it.
        start_epoch: epochs already trained, so a resumed run continues with fresh draws.

    Returns:
        A ``keras.Sequential`` to map over uint8 batches of shape (B, 48, 48, 1).
    """
    # Fixed slots (the 8th is mixup's) whichever layers are on: no stream depends on the others.
    flip, rot, shift, zoom, contrast, crop, erase = layer_seeds(seed, start_epoch, 7)
    aug: list[layers.Layer] = [layers.RandomFlip("horizontal", seed=flip)]
    if strength > 0:
        aug += [
            layers.RandomRotation(10 / 360 * strength, fill_mode="reflect", seed=rot),
            layers.RandomTranslation(0.1 * strength, 0.1 * strength, "reflect", seed=shift),
            layers.RandomZoom(0.1 * strength, fill_mode="reflect", seed=zoom),
            layers.RandomContrast(min(0.2 * strength, 0.9), seed=contrast),
        ]
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
