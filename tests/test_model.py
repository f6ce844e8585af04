"""Presets: shapes, softmax, raw uint8 input, and a save/load round trip."""

import keras
import numpy as np
import pytest

from fer.model import PRESETS, build_model


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
