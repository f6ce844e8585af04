"""Calibration: ECE, NLL, the fitted temperature and the layer that carries it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fer import calibration


def test_ece_and_reliability_on_a_hand_worked_case():
    # Two faces at confidence 0.9 (one right, one wrong) and two at 0.58 (both right).
    # 15 bins of width 1/15: 0.9 falls in (13/15, 14/15], 0.58 in (8/15, 9/15].
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.58, 0.42, 0.0], [0.42, 0.58, 0.0]])
    labels = np.array([0, 0, 0, 1])
    r = calibration.reliability(labels, probs)
    assert r.count[13] == 2 and r.count[8] == 2 and sum(r.count) == 4
    assert r.accuracy[13] == 0.5 and r.accuracy[8] == 1.0
    assert r.confidence[13] == pytest.approx(0.9) and r.confidence[8] == pytest.approx(0.58)
    assert r.accuracy[0] is None  # empty bins say so rather than claim 0
    # ECE = (2 * |0.5 - 0.9| + 2 * |1 - 0.58|) / 4 = 0.41
    assert calibration.ece(labels, probs) == pytest.approx(0.41)


def test_nll_by_hand():
    probs = np.array([[0.5, 0.5], [0.75, 0.25]])
    labels = np.array([0, 1])
    # -(ln 0.5 + ln 0.25) / 2 = 1.5 ln 2
    assert calibration.nll(labels, probs) == pytest.approx(1.5 * math.log(2))


def test_apply_temperature_by_hand():
    # T = 0.5 squares the probabilities before renormalising: [.25, .0625, .0625] / .375
    out = calibration.apply_temperature(np.array([[0.5, 0.25, 0.25]]), 0.5)
    np.testing.assert_allclose(out, [[2 / 3, 1 / 6, 1 / 6]], atol=1e-9)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    # Labels drawn from softmax(z / 2) while the "model" says softmax(z): over-confident by a
    # factor of 2, so the NLL-optimal temperature is 2 (up to sampling noise).
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20000, 7))
    true_p = calibration.apply_temperature(np.exp(z), 2.0)
    labels = np.array([rng.choice(7, p=p) for p in true_p])
    model_p = calibration.apply_temperature(np.exp(z), 1.0)
    t = calibration.fit_temperature(labels, model_p)
    assert t == pytest.approx(2.0, abs=0.1)
    before = calibration.ece(labels, model_p)
    after = calibration.ece(labels, calibration.apply_temperature(model_p, t))
    assert before > 0.1 and after < 0.02


def test_calibration_layer_by_hand_and_through_save_load(tmp_path):
    import keras

    from fer.model import Calibration, build_model, model_temperature

    out = Calibration(0.5)(np.array([[0.5, 0.25, 0.25]], np.float32))
    np.testing.assert_allclose(np.asarray(out), [[2 / 3, 1 / 6, 1 / 6]], atol=1e-6)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Calibration(0.0)

    plain = build_model("vgg_gap")
    calibrated = build_model("vgg_gap", temperature=0.7)
    calibrated.set_weights(plain.get_weights())  # the layer has no weights: they transfer
    path = tmp_path / "m.keras"
    calibrated.save(path)
    loaded = keras.models.load_model(path)
    assert model_temperature(loaded) == 0.7 and model_temperature(plain) == 1.0
    x = np.random.default_rng(1).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    p, q = plain.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert (p.argmax(1) == q.argmax(1)).all()  # a temperature never changes the winner
    assert (q.max(1) > p.max(1)).all()  # T < 1 sharpens


def test_export_fits_a_temperature_on_val_and_reexports_a_shipped_model(fer_folder, tmp_path):
    from test_train import TOY

    from fer.checkpoint import export_run
    from fer.config import TrainConfig
    from fer.model import model_temperature
    from fer.predict import load_model
    from fer.train import train

    run = train(TrainConfig(data=str(fer_folder), **TOY), tmp_path / "run")
    out = export_run(run, tmp_path / "toy.keras", data=str(fer_folder), tta="flip")
    meta = json.loads(out.with_suffix(".json").read_text())
    cal = meta["calibration"]
    assert cal["temperature"] > 0
    assert model_temperature(load_model(out).model) == pytest.approx(cal["temperature"])
    for split in ("val", "test"):
        for mode in ("none", "flip"):
            assert set(cal[split][mode]) == {"before", "after"}
    # Temperature fitted by minimum NLL on val: val NLL cannot get worse without TTA.
    assert cal["val"]["none"]["after"]["nll"] <= cal["val"]["none"]["before"]["nll"] + 1e-4
    ev = meta["evaluation"]
    assert ev["correct"] == round(ev["accuracy"] * ev["n"]) and "ece" in ev and "nll" in ev
    assert meta["validation"]["n"] == 7  # round(12 train faces x 0.1) = 1 per class

    # Re-export the shipped file itself (no run directory needed): the record carries over.
    again = export_run(out, tmp_path / "again.keras", data=str(fer_folder), calibrate=False)
    meta2 = json.loads(again.with_suffix(".json").read_text())
    assert meta2["history"] == meta["history"] and meta2["training"] == meta["training"]
    assert meta2["calibration"] is None and model_temperature(load_model(again).model) == 1.0
