"""Presets: shapes, softmax, raw uint8 input, and a save/load round trip."""

import keras
import numpy as np
import pytest

from fer.model import PRESETS, Smoothing, build_model, with_smoothing


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_outputs_a_softmax_over_7(preset):
    model = build_model(preset)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("uint8")
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert isinstance(model.layers[1], keras.layers.Rescaling)


def test_seed_matches_the_original_readme_network():
    model = build_model("seed")
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    assert [c.filters for c in convs] == [64, 128, 256]
    assert [d.units for d in dense] == [256, 128, 7]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in model.layers) == 5
    assert model.count_params() == pytest.approx(2.77e6, rel=0.02)


def test_global_pooling_presets_take_crops_of_any_size():
    model = build_model("vgg_gap")
    x = np.zeros((2, 40, 40, 1), "uint8")
    assert model(x).shape == (2, 7)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("transformer")


def test_save_load_round_trip(tmp_path):
    model = build_model("vgg_gap")
    x = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 1)).astype("uint8")
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), before, atol=1e-6)


def _reference_blend(x: np.ndarray, sigma: float, weight: float) -> np.ndarray:
    # Gaussian blur written out in numpy: separable kernel, border reflected as in scipy.ndimage.
    r = int(4 * sigma + 0.5)
    t = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    pad = np.pad(x.astype(np.float64), [(0, 0), (r, r), (r, r), (0, 0)], mode="symmetric")
    rows = sum(g[i] * pad[:, i:i + x.shape[1], :, :] for i in range(2 * r + 1))
    blur = sum(g[i] * rows[:, :, i:i + x.shape[2], :] for i in range(2 * r + 1))
    return (1 - weight) * x + weight * blur


@pytest.mark.parametrize("sigma,weight", [(1.0, 0.35), (0.6, 1.0)])
def test_smoothing_blends_with_a_gaussian_blur_at_inference_only(sigma, weight):
    x = np.random.default_rng(2).integers(0, 256, (2, 40, 44, 1)).astype("uint8")
    layer = Smoothing(sigma, weight)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(out, _reference_blend(x, sigma, weight), atol=1e-3)
    assert np.abs(out - x).max() > 1  # it did change the image
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=True)), x)


def test_smoothing_rejects_bad_settings():
    with pytest.raises(ValueError, match="smoothing needs"):
        Smoothing(1.0, 1.5)
    with pytest.raises(ValueError, match="smoothing needs"):
        Smoothing(0.0, 0.5)


def test_smoothing_survives_save_load_and_keeps_weights_transferable(tmp_path):
    plain = build_model("vgg_gap")
    smooth = build_model("vgg_gap", smoothing=(1.0, 0.35))
    assert isinstance(smooth.layers[1], Smoothing) and isinstance(smooth.layers[2],
                                                                  keras.layers.Rescaling)
    smooth.set_weights(plain.get_weights())  # no weights of its own: the lists line up
    x = np.random.default_rng(3).integers(0, 256, (4, 48, 48, 1)).astype("uint8")
    smooth.save(tmp_path / "s.keras")
    again = keras.models.load_model(tmp_path / "s.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), smooth.predict(x, verbose=0),
                               atol=1e-6)
    # The same as the plain network fed blurred faces, and the wrapper agrees.
    blurred = _reference_blend(x, 1.0, 0.35).astype("float32")
    np.testing.assert_allclose(smooth.predict(x, verbose=0), plain.predict(blurred, verbose=0),
                               atol=1e-4)
    np.testing.assert_allclose(with_smoothing(plain, 1.0, 0.35).predict(x, verbose=0),
                               smooth.predict(x, verbose=0), atol=1e-5)
    assert with_smoothing(plain, 1.0, 0.0) is plain
