"""The augmentation pipeline: each random layer draws from its own stream.

Keras random layers built with the same integer seed draw identical numbers, so a pipeline that
seeds every layer alike mirrors exactly the faces it rotates one way. These tests mark one image
so that each layer's draw can be read off its output, and check that draws of different layers
are independent (agreement near 0.5), not identical (agreement 1.0).
"""

from __future__ import annotations

import numpy as np
import pytest

N = 512  # faces per draw: the agreement of two fair coins has a standard error of 0.022


def _marked() -> np.ndarray:
    """48x48: a bright dot left of centre (reveals flips and shifts) and a long horizontal bar
    (reveals the sign of a rotation)."""
    img = np.zeros((48, 48), np.float32)
    img[23:26, 4:44] = 200.0  # the bar
    img[10:14, 8:12] = 255.0  # the dot, left half
    return np.repeat(img[None, :, :, None], N, axis=0)


def _layer(augmenter, name: str):
    (layer,) = [l for l in augmenter.layers if type(l).__name__ == name]
    return layer


def _flipped(out: np.ndarray) -> np.ndarray:
    top = out[:, 6:18, :, 0]  # the dot's rows, clear of the bar
    return top[:, :, 24:].sum((1, 2)) > top[:, :, :24].sum((1, 2))


def _rotation_sign(out: np.ndarray) -> np.ndarray:
    """+1 or -1 by which end of the bar moved up; 0 if it did not tilt measurably."""
    bar = out[:, 18:31, :, 0]  # the bar's rows
    rows = np.arange(18, 31, dtype=np.float32)[None, :]

    def centroid(cols):
        mass = bar[:, :, cols].sum(2)
        return (mass * rows).sum(1) / np.maximum(mass.sum(1), 1e-6)

    tilt = centroid(slice(4, 16)) - centroid(slice(32, 44))
    return np.where(np.abs(tilt) < 0.05, 0, np.sign(tilt))


def _shift_sign(out: np.ndarray) -> np.ndarray:
    top = out[:, 6:18, :, 0]
    cols = np.arange(48, dtype=np.float32)
    x = (top.sum(1) * cols).sum(1) / np.maximum(top.sum((1, 2)), 1e-6)
    return np.sign(x - 9.5)  # the dot's centre column is 9.5


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    keep = (a != 0) & (b != 0)
    assert keep.sum() > N * 0.8, "too few faces with a measurable draw"
    return float(np.mean(a[keep] == b[keep]))


def _draws(augmenter):
    x = _marked()
    flip = _flipped(np.asarray(_layer(augmenter, "RandomFlip")(x, training=True)))
    rot = _rotation_sign(np.asarray(_layer(augmenter, "RandomRotation")(x, training=True)))
    shift = _shift_sign(np.asarray(_layer(augmenter, "RandomTranslation")(x, training=True)))
    return np.where(flip, 1, -1), rot, shift


def test_the_marks_read_back_each_layers_draw():
    # The readers themselves, on known transforms: a mirror, a tilt each way, a shift each way.
    x = _marked()[:2]
    assert list(_flipped(x)) == [False, False]
    assert list(_flipped(x[:, :, ::-1])) == [True, True]
    from PIL import Image

    face = Image.fromarray(x[0, :, :, 0], mode="F")
    tilted = np.stack([np.asarray(face.rotate(a, Image.BILINEAR)) for a in (8, -8)])[..., None]
    signs = _rotation_sign(tilted)
    assert signs[0] == -signs[1] != 0
    shifted = np.stack([np.roll(x[0], 3, axis=1), np.roll(x[0], -3, axis=1)])
    assert list(_shift_sign(shifted)) == [1, -1]


def test_random_layers_draw_independently():
    from fer.pipeline import build_augmenter

    flip, rot, shift = _draws(build_augmenter(1.0, 40, 0.5, seed=42))
    # Each draw is itself a fair coin...
    for d in (flip, rot, shift):
        assert 0.4 < np.mean(d[d != 0] == 1) < 0.6
    # ...and no two layers agree more than chance allows (4.5 standard errors).
    assert abs(_agreement(flip, rot) - 0.5) < 0.1
    assert abs(_agreement(flip, shift) - 0.5) < 0.1
    assert abs(_agreement(rot, shift) - 0.5) < 0.1


def test_a_resumed_segment_draws_new_augmentations_not_a_replay():
    from fer.pipeline import build_augmenter

    first, _, _ = _draws(build_augmenter(1.0, 40, 0.5, seed=42, start_epoch=0))
    again, _, _ = _draws(build_augmenter(1.0, 40, 0.5, seed=42, start_epoch=0))
    resumed, _, _ = _draws(build_augmenter(1.0, 40, 0.5, seed=42, start_epoch=37))
    assert np.array_equal(first, again)  # seeded: a run is reproducible
    assert abs(_agreement(first, resumed) - 0.5) < 0.1


def test_layer_seeds_are_distinct_and_valid():
    from fer.pipeline import layer_seeds

    seeds = layer_seeds(42, 0, 8)
    assert len(set(seeds)) == 8
    assert all(0 <= s < 2**31 for s in seeds)
    assert layer_seeds(42, 0, 7) == seeds[:7]
    assert layer_seeds(42, 1, 8) != seeds


@pytest.mark.parametrize("epochs", [2])
def test_the_pipeline_augments_differently_every_epoch(epochs):
    from fer.data import Split
    from fer.pipeline import build_augmenter, make_dataset

    x = _marked()[:64, :, :, 0].astype(np.uint8)
    split = Split(x, np.zeros(64, np.int64))
    ds = make_dataset(split, 64, training=True, augmenter=build_augmenter(1.0, 48, 0.0, seed=1))
    batches = [next(iter(ds))[0].numpy() for _ in range(epochs)]
    # The same 64 faces in both epochs (one label, shuffled): sort-free comparison of the sets
    # of outputs; identical augmentation would give identical multisets.
    a = np.sort(batches[0].reshape(64, -1).sum(1))
    b = np.sort(batches[1].reshape(64, -1).sum(1))
    assert not np.allclose(a, b)


def test_real_photo_corruptions_are_independent_per_face_and_off_at_inference():
    from fer.pipeline import RealPhoto

    rng = np.random.default_rng(0)
    x = np.repeat(rng.integers(40, 216, (1, 48, 48, 1)).astype("float32"), N, axis=0)
    layer = RealPhoto(1.0, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    out = np.asarray(layer(x, training=True))
    assert out.min() >= 0 and out.max() <= 255
    unchanged = np.all(np.abs(out - x) < 1e-3, axis=(1, 2, 3))
    # Four corruptions, each on with probability 1/2 and drawn per face: 1/16 of the faces
    # (32 of 512) come out untouched; shared draws would leave 1/2 untouched.
    assert 12 <= unchanged.sum() <= 60
    # Changed faces changed differently (per-face draws, not one draw per batch); only those
    # that got nothing but the deterministic low-resolution step (1/16 of all) coincide.
    changed = out[~unchanged].reshape(int((~unchanged).sum()), -1)
    assert len(np.unique(changed.round(2), axis=0)) > 0.8 * len(changed)


def test_the_robust_option_reaches_the_training_pipeline():
    from fer.config import TrainConfig
    from fer.data import Split
    from fer.pipeline import build_augmenter, make_dataset

    # Off by default, so that the shipped recipe's command still reproduces the shipped model.
    assert TrainConfig().robust == 0.0
    aug = build_augmenter(1.0, 40, 0.0, seed=1, robust=1.0)
    assert "real_photo" in [l.name for l in aug.layers]
    assert "real_photo" not in [l.name for l in build_augmenter(1.0, 40, 0.0, seed=1).layers]
    x = _marked()[:32, :, :, 0].astype(np.uint8)
    ds = make_dataset(Split(x, np.zeros(32, np.int64)), 16, training=True, augmenter=aug)
    images, _ = next(iter(ds))
    assert images.shape == (16, 40, 40, 1)
