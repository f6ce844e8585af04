"""Stochastic weight averaging: the running mean, its resume, batch-norm re-measurement, a run."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import stop_after_epoch

from fer import runs
from fer.averaging import AVERAGE_STATE, WeightAverage, load_state, recompute_batch_norm
from fer.checkpoint import pack_run
from fer.config import TrainConfig
from fer.data import load_fer2013
from fer.train import train


def _one_weight_model() -> keras.Model:
    inputs = keras.Input(shape=(1,))
    return keras.Model(inputs, keras.layers.Dense(1, use_bias=False)(inputs))


def _end_epochs(callback, model, values, first_epoch=0):
    for epoch, value in enumerate(values, start=first_epoch):
        model.set_weights([np.full((1, 1), value, dtype="float32")])
        callback.on_epoch_end(epoch)


def test_the_running_mean_covers_the_epochs_from_the_first_on(tmp_path):
    model = _one_weight_model()
    averager = WeightAverage(tmp_path, first_epoch=2)
    averager.set_model(model)
    _end_epochs(averager, model, [100.0, 1.0, 2.0, 6.0])  # epoch 1 (100) is before the first
    assert averager.epochs == (2, 4)
    assert averager.mean[0].item() == pytest.approx(3.0)  # (1 + 2 + 6) / 3


def test_a_resume_continues_the_mean_and_steps_back_over_an_unrecorded_epoch(tmp_path):
    model = _one_weight_model()
    averager = WeightAverage(tmp_path, first_epoch=1)
    averager.set_model(model)
    _end_epochs(averager, model, [1.0, 2.0, 6.0])
    # Killed after saving epoch 3's mean but before the history listed epoch 3: the resume
    # redoes epoch 3, so the mean it continues is that of epochs 1-2.
    mean, _, count, through = load_state(tmp_path / AVERAGE_STATE, done_epochs=2)
    assert (mean[0].item(), count, through) == (pytest.approx(1.5), 2, 2)
    resumed = WeightAverage(tmp_path, first_epoch=1, done_epochs=2)
    resumed.set_model(model)
    _end_epochs(resumed, model, [3.0], first_epoch=2)  # epoch 3 redone, now 3.0
    assert resumed.epochs == (1, 3)
    assert resumed.mean[0].item() == pytest.approx(2.0)  # (1 + 2 + 3) / 3
    with pytest.raises(ValueError, match="through epoch 3.*lists 7 epochs"):
        load_state(tmp_path / AVERAGE_STATE, done_epochs=7)


def test_an_epoch_cut_short_is_not_averaged(tmp_path):
    model = _one_weight_model()
    cut = iter([False, True])
    averager = WeightAverage(tmp_path, first_epoch=1, skip_epoch=lambda: next(cut))
    averager.set_model(model)
    _end_epochs(averager, model, [4.0, 10.0])
    assert averager.epochs == (1, 1) and averager.mean[0].item() == pytest.approx(4.0)


def test_batch_norm_statistics_become_the_plain_mean_over_the_batches():
    inputs = keras.Input(shape=(1,))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, bn(inputs))
    # Batch 1 is {0, 2} (mean 1, variance 1), batch 2 is {4, 6} (mean 5, variance 1). The
    # stale statistics (mean 0, variance 1) must vanish: the plain mean is 3, variance 1.
    x = np.array([[0.0], [2.0], [4.0], [6.0]], dtype="float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(4))).batch(2)
    recompute_batch_norm(model, dataset, steps=2)
    assert float(bn.moving_mean.numpy()[0]) == pytest.approx(3.0)
    assert float(bn.moving_variance.numpy()[0]) == pytest.approx(1.0)
    assert bn.momentum == 0.99  # restored for any later training


def test_average_from_after_the_last_epoch_is_a_clear_error():
    with pytest.raises(ValueError, match="average_from \\(5\\) is after the last epoch \\(4\\)"):
        TrainConfig(epochs=4, average_from=5).validated()


def test_a_run_averages_its_last_epochs_and_keeps_the_mean_only_if_val_prefers_it(
        fer_folder, tmp_path, monkeypatch):
    data = load_fer2013(fer_folder, quiet=True)
    config = TrainConfig(data=str(fer_folder), epochs=3, batch_size=16, patience=0,
                         average_from=2, schedule="constant", learning_rate=5e-4)
    run = tmp_path / "run"
    # Stop after epoch 2, then resume: the average must span epochs 2-3 across the two.
    with monkeypatch.context() as m:
        stop_after_epoch(m, 2)
        train(config, run, dataset=data)
    assert "average" not in runs.read_json(run / "status.json")  # scored only at the end
    assert load_state(run / AVERAGE_STATE, done_epochs=2)[1:] == (None, 1, 2)
    assert AVERAGE_STATE in zipfile.ZipFile(pack_run(run, tmp_path / "run.zip")).namelist()
    train(config, run, resume=True, dataset=data)

    status = runs.read_json(run / "status.json")
    average = status["average"]
    assert status["state"] == "finished" and average["epochs"] == [2, 3]
    best_epoch = max(r["val_accuracy"] for r in runs.read_history(run / "history.csv"))
    assert average["best_epoch_val_accuracy"] == pytest.approx(best_epoch)
    assert average["selected"] == (average["val_accuracy"] > best_epoch)
    kept = keras.models.load_model(run / "best.keras", compile=False).get_weights()
    mean = keras.models.load_model(run / "average.keras", compile=False).get_weights()
    same = all(np.array_equal(a, b) for a, b in zip(kept, mean))
    assert same == average["selected"]
    # The averaged kernels are the mean kept in average.npz (batch norm only re-measured).
    saved_mean = load_state(run / AVERAGE_STATE, done_epochs=3)[0]
    assert np.allclose(mean[0], saved_mean[0], atol=1e-6)


def test_the_cyclic_schedule_runs_a_cosine_to_one_percent_within_every_epoch():
    from fer.train import build_schedule

    schedule = build_schedule(TrainConfig(schedule="cyclic", learning_rate=1e-3), 10)
    rate = [float(schedule(step)) for step in (0, 5, 9, 10, 15, 29)]
    # Within an epoch of 10 steps: 1e-3 * (0.01 + 0.99 * (1 + cos(pi * step / 10)) / 2).
    expected = [1e-3, 0.505e-3, 1e-3 * (0.01 + 0.99 * (1 + np.cos(0.9 * np.pi)) / 2)]
    assert rate == pytest.approx(expected + expected, rel=1e-4)
