"""Training runs on a toy set: every run file, resume, stop, failure, config and CLI."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from conftest import ROOT, stop_after_epoch

from fer import runs
from fer.config import TrainConfig
from fer.data import load_fer2013
from fer.train import train

TOY = dict(epochs=2, batch_size=16, patience=0, crop_size=40, preset="vgg_gap")


def test_short_train_writes_every_run_file(fer_folder, tmp_path):
    config = TrainConfig(data=str(fer_folder), **TOY)
    run = train(config, tmp_path / "run")
    for name in ("config.json", "history.csv", "best.keras", "last.keras", "status.json",
                 "metrics.json", "train.log"):
        assert (run / name).exists(), name
    status = runs.read_json(run / "status.json")
    assert status["state"] == "finished" and status["epoch"] == 2
    history = runs.read_history(run / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"} <= set(
        history[0])
    metrics = runs.read_json(run / "metrics.json")
    assert metrics["n"] == 21 and "tta" in metrics and len(metrics["confusion_matrix"]) == 7
    saved = TrainConfig.load(run / "config.json")
    assert saved == config
    assert not list(run.glob(".*tmp*")), "temporary files left behind"


def test_resume_continues_at_the_next_epoch(fer_folder, tmp_path, monkeypatch):
    data = load_fer2013(fer_folder, quiet=True)
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 3})
    run = tmp_path / "run"
    # Train 1 of 3 epochs by asking for a stop right after the first epoch is recorded.
    with monkeypatch.context() as m:
        stop_after_epoch(m, 1)
        train(config, run, dataset=data)
    assert runs.read_json(run / "status.json")["state"] == "stopped"
    assert len(runs.read_history(run / "history.csv")) == 1
    optimizer_steps = int(keras.models.load_model(run / "last.keras").optimizer.iterations)
    train(config, run, resume=True, dataset=data)
    history = runs.read_history(run / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert runs.read_json(run / "status.json")["state"] == "finished"
    assert optimizer_steps == 77 // 16  # one epoch of steps (77 train images) carried over


def test_resume_with_fewer_epochs_replans_the_cosine_to_its_end(fer_folder, tmp_path,
                                                                 monkeypatch):
    data = load_fer2013(fer_folder, quiet=True)
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 6, "warmup_epochs": 0.0})
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        stop_after_epoch(m)  # one epoch per call
        train(config, run, dataset=data)
    # The run was planned for 6 epochs; finish it after 2 instead (python -m fer train
    # --resume RUN --epochs 2): the last epoch must end on the schedule's floor, 1% of the peak.
    train(TrainConfig.from_dict({**config.to_dict(), "epochs": 2}), run, resume=True,
          dataset=data)
    history = runs.read_history(run / "history.csv")
    assert [r["epoch"] for r in history] == [1, 2]
    assert history[-1]["learning_rate"] == pytest.approx(0.01 * config.learning_rate, rel=1e-3)
    assert history[0]["learning_rate"] > 0.5 * config.learning_rate


def test_stop_request_mid_epoch_leaves_status_stopped(fer_folder, tmp_path, monkeypatch):
    data = load_fer2013(fer_folder, quiet=True)
    run = tmp_path / "run"
    run.mkdir()
    from fer import train as train_mod

    original = train_mod.RunRecorder.on_train_batch_end

    def on_batch_end(self, batch, logs=None):
        if batch == 1:
            runs.request_stop(self.run_dir)
        original(self, batch, logs)

    monkeypatch.setattr(train_mod.RunRecorder, "on_train_batch_end", on_batch_end)
    train(TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 5}), run, dataset=data)
    status = runs.read_json(run / "status.json")
    assert status["state"] == "stopped"
    assert runs.read_history(run / "history.csv") == []  # the partial epoch is not recorded
    assert not (run / "metrics.json").exists()


def test_failure_is_recorded(tmp_path):
    config = TrainConfig(data=str(tmp_path / "missing"), **TOY)
    with pytest.raises(Exception, match="not found"):
        train(config, tmp_path / "run")
    status = runs.read_json(tmp_path / "run" / "status.json")
    assert status["state"] == "failed" and "not found" in status["error"]


def test_launching_a_run_does_not_import_tensorflow(tmp_path):
    # The Train page and the dashboard run in the app's process: loading TensorFlow there to
    # write a config would cost seconds and memory on a free Streamlit Cloud instance.
    code = (
        "import subprocess, sys\n"
        "import os\n"
        "class P:\n    pid = os.getpid()\n    def __init__(self, *a, **k): pass\n"
        "    def wait(self): return 0\n"
        "subprocess.Popen = P  # the training process itself is not under test here\n"
        "from fer import charts, launch, runs\n"
        "from fer.config import TrainConfig\n"
        f"run = launch.start_run(TrainConfig(epochs=1), runs_dir=r'{tmp_path}')\n"
        "assert (run.path / 'config.json').is_file()\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_resume_run_refuses_what_cannot_be_resumed(tmp_path):
    from fer import launch

    finished, early = tmp_path / "finished", tmp_path / "early"
    runs.write_status(finished, "finished")
    runs.write_status(early, "stopped")  # stopped before its first epoch: no last.keras
    with pytest.raises(launch.LaunchError, match="only a stopped or failed run"):
        launch.resume_run(finished, runs_dir=tmp_path)
    with pytest.raises(launch.LaunchError, match="nothing to resume"):
        launch.resume_run(early, runs_dir=tmp_path)


def test_the_pack_destination_is_not_ignored_by_git():
    # `python -m fer pack` writes models/checkpoints/<run>.ckpt.zip so that a long run survives
    # a new machine through a commit; an ignore rule there would drop it silently.
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "check-ignore", "-q", "models/checkpoints/run.ckpt.zip"],
                         cwd=ROOT)
    assert res.returncode == 1, "models/checkpoints/*.ckpt.zip is ignored by .gitignore"


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop").validated()
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validated()
    with pytest.raises(ValueError, match="48x48"):
        TrainConfig(preset="seed", crop_size=40).validated()
    seed = TrainConfig.for_preset("seed")
    assert seed.optimizer == "adam" and seed.crop_size == 48
    assert TrainConfig.for_preset("seed", epochs=3).epochs == 3
    assert TrainConfig.from_dict({"epochs": 5, "unknown": 1}).epochs == 5


def test_cli_help_lists_every_config_field():
    out = subprocess.run([sys.executable, "-m", "fer", "train", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out


def test_cli_train_and_evaluate(fer_zip, tmp_path):
    run = tmp_path / "cli-run"
    subprocess.run([sys.executable, "-m", "fer", "train", "--data", str(fer_zip), "--epochs",
                    "1", "--batch-size", "16", "--run-dir", str(run)], cwd=ROOT, check=True,
                   capture_output=True)
    assert runs.read_json(run / "status.json")["state"] == "finished"
    out = tmp_path / "eval.json"
    res = subprocess.run([sys.executable, "-m", "fer", "evaluate", "--model",
                          str(run / "best.keras"), "--data", str(fer_zip), "--tta", "flip",
                          "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "flip TTA" in res.stdout
    assert json.loads(out.read_text())["n"] == 21
    # --split val re-carves the run's own validation split (its val_fraction and seed).
    from fer.data import stratified_split

    val = stratified_split(load_fer2013(fer_zip)["train"], 0.1, 42)[1]
    res = subprocess.run([sys.executable, "-m", "fer", "evaluate", "--model",
                          str(run / "best.keras"), "--data", str(fer_zip), "--split", "val",
                          "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["n"] == len(val.labels) > 0
    res = subprocess.run([sys.executable, "-m", "fer", "evaluate", "--model",
                          str(run / "best.keras"), "--data", str(fer_zip), "--split", "nope"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "no 'nope' split" in res.stderr
    ckpt = tmp_path / "run.ckpt.zip"
    res = subprocess.run([sys.executable, "-m", "fer", "pack", str(run), "--output", str(ckpt)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    import zipfile

    assert {"config.json", "history.csv", "last.keras", "best.keras"} <= set(
        zipfile.ZipFile(ckpt).namelist())


def test_cli_bad_value_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "fer", "train", "--epochs", "0", "--data",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "epochs must be" in res.stderr
    assert "Traceback" not in res.stderr


def test_export_writes_model_and_metadata_and_a_resumable_checkpoint(fer_folder, tmp_path):
    from fer.checkpoint import export_run, prepare_resume
    from fer.predict import load_model

    data = load_fer2013(fer_folder, quiet=True)
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 2})
    run = train(config, tmp_path / "run", dataset=data)
    out = export_run(run, tmp_path / "models" / "toy.keras", data=str(fer_folder), pack=True)
    meta = json.loads(out.with_suffix(".json").read_text())
    # The Kaggle folders' order, which the shipped model's outputs follow.
    assert meta["classes"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert meta["evaluation"]["n"] == 21 and meta["evaluation"]["tta"]["mode"] == "flip"
    # Exact counts of right answers, for a test that compares counts rather than rounded
    # accuracies: counted here from the model's own argmax on the 21 test faces.
    import numpy as np

    model = load_model(out).model
    test = data["test"]
    right = int((np.argmax(model.predict(test.images[..., None], verbose=0), 1)
                 == test.labels).sum())
    assert meta["evaluation"]["correct"] == right
    mirrored = model.predict(test.images[:, :, ::-1, None], verbose=0)
    flip_right = int((np.argmax(model.predict(test.images[..., None], verbose=0) + mirrored, 1)
                      == test.labels).sum())
    assert meta["evaluation"]["tta"]["correct"] == flip_right
    assert meta["training"]["epochs_done"] == 2 and len(meta["history"]) == 2
    assert "--epochs 2" in meta["training"]["command"]
    assert load_model(out).model.count_params() == meta["params"]
    # The checkpoint zip resumes elsewhere and continues at epoch 3.
    ckpt = tmp_path / "models" / "toy.ckpt.zip"
    moved = prepare_resume(ckpt, tmp_path / "elsewhere")
    assert (moved / "last.keras").exists()
    more = TrainConfig.from_dict({**config.to_dict(), "epochs": 3})
    train(more, moved, resume=True, dataset=data)
    assert [r["epoch"] for r in runs.read_history(moved / "history.csv")] == [1, 2, 3]


def test_export_and_evaluate_with_inference_smoothing(fer_folder, tmp_path):
    from fer.checkpoint import export_run
    from fer.model import Smoothing
    from fer.predict import load_model

    run = train(TrainConfig(data=str(fer_folder), **TOY), tmp_path / "run")
    out = export_run(run, tmp_path / "toy.keras", data=str(fer_folder), smoothing=(1.0, 0.35))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["smoothing"]["sigma"] == 1.0 and meta["smoothing"]["weight"] == 0.35
    assert "--smoothing 0.35" in meta["evaluation"]["command"]
    layer = load_model(out).model.get_layer("smoothing")
    assert isinstance(layer, Smoothing) and layer.weight == 0.35
    res = subprocess.run([sys.executable, "-m", "fer", "evaluate", "--model", str(out), "--data",
                          str(fer_folder), "--smoothing", "0.35"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "accuracy" in res.stdout, res.stderr
    res = subprocess.run([sys.executable, "-m", "fer", "evaluate", "--model", str(out), "--data",
                          str(fer_folder), "--smoothing", "2"], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "smoothing needs" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.fer2013
def test_two_real_epochs_learn(tmp_path):
    """Two epochs of the shipped recipe on the real FER2013 (~4 min on 2 cores)."""
    from conftest import shared_zip_or_skip

    config = TrainConfig(data=str(shared_zip_or_skip()), epochs=2, warmup_epochs=0.5,
                         patience=0)
    run = train(config, tmp_path / "real")
    history = runs.read_history(run / "history.csv")
    assert history[-1]["val_accuracy"] > 0.3  # always answering "happy" scores 0.25
    assert runs.read_json(run / "metrics.json")["accuracy"] > 0.3


def test_a_stale_stop_file_does_not_stop_a_new_run(fer_folder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    runs.request_stop(run)  # left over from an earlier run in the same directory
    train(TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}), run,
          dataset=load_fer2013(fer_folder, quiet=True))
    assert runs.read_json(run / "status.json")["state"] == "finished"


def test_init_from_starts_from_a_runs_weights_and_export_reports_both_stages(fer_folder,
                                                                            tmp_path):
    from fer.checkpoint import export_run

    data = load_fer2013(fer_folder, quiet=True)
    # The parent's seed differs from the child's, so their random initial weights differ too.
    parent = train(TrainConfig(data=str(fer_folder), **TOY, seed=1), tmp_path / "parent",
                   dataset=data)
    # A near-zero learning rate: the child's conv kernels must still be the parent's.
    child_config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1},
                               init_from=str(parent), learning_rate=1e-6, warmup_epochs=0.0)
    child = train(child_config, tmp_path / "child", dataset=data)
    log = (child / "train.log").read_text()
    assert "starting from the weights of" in log and "val accuracy is optimistic" in log

    def kernels(path):
        model = keras.models.load_model(path)
        return [v.numpy() for v in model.weights if "kernel" in v.path]

    start, end = kernels(parent / "best.keras"), kernels(child / "last.keras")
    assert all(abs(a - b).max() < 1e-3 for a, b in zip(start, end, strict=True))
    fresh = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}, learning_rate=1e-6)
    scratch = kernels(train(fresh, tmp_path / "scratch", dataset=data) / "last.keras")
    assert any(abs(a - b).max() > 1e-2 for a, b in zip(start, scratch, strict=True))

    out = export_run(child, tmp_path / "models" / "ft.keras", data=str(fer_folder))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2, 3]
    assert [s["epochs"] for s in meta["training"]["stages"]] == [2, 1]
    assert meta["training"]["stages"][0]["config"]["seed"] == 1
    assert meta["training"]["best_epoch"] == 3  # the child's own (only) epoch
    (shipped,) = runs.shipped_models(tmp_path / "models")  # the dashboard's row: 3 of 3 epochs
    assert (shipped.status["epoch"], shipped.status["epochs"]) == (3, 3)
    first, second = meta["training"]["command"].split(" && ")
    assert f"--run-dir {parent}" in first and f"--init-from {parent}" in second


def test_init_from_errors_are_clear(fer_folder, tmp_path):
    from fer import launch

    data = load_fer2013(fer_folder, quiet=True)
    missing = TrainConfig(data=str(fer_folder), **TOY, init_from=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no .keras weights"):
        train(missing, tmp_path / "missing", dataset=data)
    assert runs.read_json(tmp_path / "missing" / "status.json")["state"] == "failed"
    with pytest.raises(launch.LaunchError, match="no .keras weights"):
        launch.start_run(missing, runs_dir=tmp_path / "runs")

    parent = train(TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}),
                   tmp_path / "parent", dataset=data)
    other = TrainConfig(data=str(fer_folder), **{**TOY, "preset": "resnet"},
                        init_from=str(parent))
    with pytest.raises(launch.LaunchError, match="trained as vgg_gap"):
        launch.start_run(other, runs_dir=tmp_path / "runs")
    with pytest.raises(ValueError, match="does not fit the resnet network"):
        train(other, tmp_path / "other", dataset=data)
    assert not list((tmp_path / "runs").glob("*/config.json"))  # nothing half-started


def _constant_teacher(path, probs):
    """A teacher that answers ``probs`` for every face and every crop (zero kernel, bias
    log p): its ten-crop average is ``probs`` too, known without running the code under test."""
    import numpy as np

    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(7, activation="softmax")])
    model.layers[-1].set_weights([np.zeros((1, 7), "float32"), np.log(probs).astype("float32")])
    model.save(path)
    return path


def test_a_teacher_softens_the_targets_with_its_tencrop_probabilities(fer_folder, tmp_path):
    import numpy as np

    from fer.data import stratified_split
    from fer.pipeline import make_dataset
    from fer.train import teacher_targets

    data = load_fer2013(fer_folder, quiet=True)
    teacher = _constant_teacher(tmp_path / "teacher.keras",
                                np.array([0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1]))
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}, teacher=str(teacher),
                         distill=0.7)
    split = stratified_split(data["train"], config.val_fraction, config.seed)[0]
    targets = teacher_targets(config, split)
    # By hand for a happy face (label 3): 0.7 * teacher + 0.3 * one-hot
    # = [0.07, 0.14, 0.21, 0.07 + 0.3, 0.07, 0.07, 0.07].
    happy = int(np.flatnonzero(split.labels == 3)[0])
    np.testing.assert_allclose(targets[happy], [0.07, 0.14, 0.21, 0.37, 0.07, 0.07, 0.07],
                               atol=1e-5)
    # and for an angry face (label 0): [0.07 + 0.3, 0.14, 0.21, 0.07, 0.07, 0.07, 0.07].
    angry = int(np.flatnonzero(split.labels == 0)[0])
    np.testing.assert_allclose(targets[angry], [0.37, 0.14, 0.21, 0.07, 0.07, 0.07, 0.07],
                               atol=1e-5)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
    (_, y), = make_dataset(split, len(split.labels), targets=targets).take(1)
    np.testing.assert_allclose(y.numpy(), targets)  # and they are what the student fits

    student = train(config, tmp_path / "student", dataset=data)
    assert runs.read_json(student / "status.json")["state"] == "finished"
    log = (student / "train.log").read_text()
    # The constant teacher always answers "fear" (its largest probability): right on exactly
    # the fear faces.
    assert f"ten-crop accuracy {np.mean(split.labels == 2):.4f}" in log


def test_several_teachers_are_averaged_into_an_ensemble(fer_folder, tmp_path):
    import numpy as np

    from fer.data import stratified_split
    from fer.train import teacher_targets

    data = load_fer2013(fer_folder, quiet=True)
    one = _constant_teacher(tmp_path / "one.keras", np.array([0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1]))
    two = _constant_teacher(tmp_path / "two.keras", np.array([0.3, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1]))
    config = TrainConfig(data=str(fer_folder), **TOY, teacher=f"{one}, {two}", distill=0.5)
    split = stratified_split(data["train"], config.val_fraction, config.seed)[0]
    targets = teacher_targets(config, split)
    # By hand for a happy face (label 3): the teachers' mean is
    # [0.2, 0.15, 0.2, 0.1, 0.15, 0.1, 0.1]; half of it plus half the one-hot label.
    happy = int(np.flatnonzero(split.labels == 3)[0])
    np.testing.assert_allclose(targets[happy], [0.1, 0.075, 0.1, 0.55, 0.075, 0.05, 0.05],
                               atol=1e-5)
    with pytest.raises(FileNotFoundError, match="teacher: no .keras weights"):
        runs.teacher_weights(f"{one},{tmp_path / 'missing.keras'}")


def test_teacher_probabilities_are_cached_by_content_and_travel_with_a_packed_run(
        fer_folder, tmp_path, monkeypatch):
    # The ten-crop pass costs ~6.5 min per teacher on FER2013: a resume (here or from a packed
    # checkpoint elsewhere) or a new run with the same teachers must not pay it again, and a
    # changed teacher file must never be answered from the cache.
    import numpy as np

    from fer import teachers
    from fer.checkpoint import pack_run, prepare_resume
    from fer.data import stratified_split

    data = load_fer2013(fer_folder, quiet=True)
    teacher = _constant_teacher(tmp_path / "t.keras", np.array([0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1]))
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}, teacher=str(teacher),
                         distill=0.5)
    split = stratified_split(data["train"], config.val_fraction, config.seed)[0]
    happy = int(np.flatnonzero(split.labels == 3)[0])
    # By hand: half the teacher plus half the one-hot "happy".
    by_hand = [0.05, 0.1, 0.15, 0.55, 0.05, 0.05, 0.05]
    run = train(config, tmp_path / "run", dataset=data)
    assert (run / teachers.PROBS_FILE).exists()

    loads = []
    real_load = keras.models.load_model
    monkeypatch.setattr(keras.models, "load_model",
                        lambda path, *a, **k: (loads.append(Path(path).name),
                                               real_load(path, *a, **k))[1])
    # A second run with the same teacher: from the shared cache, the teacher never loaded.
    np.testing.assert_allclose(teachers.teacher_targets(config, split, tmp_path / "new")[happy],
                               by_hand, atol=1e-5)
    assert "t.keras" not in loads
    # Another machine (empty shared cache) resuming the packed run: from teacher_probs.npz.
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "other-machine-cache"))
    moved = prepare_resume(pack_run(run, tmp_path / "run.ckpt.zip"), tmp_path / "elsewhere")
    assert (moved / teachers.PROBS_FILE).exists()
    more = TrainConfig.from_dict({**config.to_dict(), "epochs": 2})
    train(more, moved, resume=True, dataset=data)
    assert "t.keras" not in loads
    assert "ten-crop pass skipped" in (moved / "train.log").read_text()
    # A machine without the teacher's file: the run keeps the targets it started with.
    teacher.unlink()
    np.testing.assert_allclose(teachers.teacher_targets(config, split, moved)[happy], by_hand,
                               atol=1e-5)
    with pytest.raises(FileNotFoundError, match="teacher: no .keras weights"):
        teachers.teacher_targets(config, split, tmp_path / "a-new-run")
    # The same path with other weights: computed afresh, in both caches.
    _constant_teacher(teacher, np.array([0.3, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1]))
    np.testing.assert_allclose(teachers.teacher_targets(config, split, moved)[happy],
                               [0.15, 0.05, 0.05, 0.55, 0.1, 0.05, 0.05], atol=1e-5)
    assert "t.keras" in loads


def test_a_stop_during_the_teachers_pass_ends_the_run_there(fer_folder, tmp_path, monkeypatch):
    # Four teachers take ~26 min before the first epoch: a stop asked for then (the Train
    # page's button writes STOP) must end the run then, not after that pass and an epoch.
    import numpy as np

    from fer import runs as runs_mod

    data = load_fer2013(fer_folder, quiet=True)
    teacher = _constant_teacher(tmp_path / "t.keras", np.full(7, 1 / 7))
    config = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}, teacher=str(teacher))
    run = tmp_path / "run"
    real_load = keras.models.load_model

    def load_then_stop(path, *a, **k):
        if Path(path).name == "t.keras":  # the teacher is loaded: its pass is about to start
            (run / runs_mod.STOP_FILE).touch()
        return real_load(path, *a, **k)

    monkeypatch.setattr(keras.models, "load_model", load_then_stop)
    train(config, run, dataset=data)
    assert runs.read_json(run / "status.json")["state"] == "stopped"
    assert not (run / "last.keras").exists() and runs.read_history(run / "history.csv") == []
    # The pass itself was abandoned: nothing of it was cached, here or in the shared cache.
    from fer import teachers
    from fer.data import cache_dir

    assert not (run / teachers.PROBS_FILE).exists() and not list(cache_dir().glob("teacher-*"))


def test_teacher_errors_are_clear(fer_folder, tmp_path):
    from fer import launch

    data = load_fer2013(fer_folder, quiet=True)
    missing = TrainConfig(data=str(fer_folder), **TOY, teacher=str(tmp_path / "nope"))
    with pytest.raises(launch.LaunchError, match="teacher: no .keras weights"):
        launch.start_run(missing, runs_dir=tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="teacher: no .keras weights"):
        train(missing, tmp_path / "missing", dataset=data)
    assert runs.read_json(tmp_path / "missing" / "status.json")["state"] == "failed"
    assert not list((tmp_path / "runs").glob("*/config.json"))  # nothing half-started

    from fer.data import stratified_split
    from fer.train import teacher_targets

    six = keras.Sequential([keras.Input((None, None, 1)), keras.layers.GlobalAveragePooling2D(),
                            keras.layers.Dense(6, activation="softmax")])
    six.save(tmp_path / "six.keras")
    other = TrainConfig(data=str(fer_folder), **TOY, teacher=str(tmp_path / "six.keras"))
    with pytest.raises(ValueError, match="predicts 6 classes, not the 7"):
        teacher_targets(other, stratified_split(data["train"], 0.1, 42)[0])


def test_each_epoch_writes_last_then_best_then_history(fer_folder, tmp_path, monkeypatch):
    # A kill between two of these writes must never leave a history that lists an epoch whose
    # checkpoints are not on disk: history.csv goes last.
    from fer import train as train_mod

    order = []
    real_save, real_history = train_mod._atomic_save, runs.write_history
    monkeypatch.setattr(train_mod, "_atomic_save",
                        lambda model, path: (order.append(path.name), real_save(model, path)))
    monkeypatch.setattr(runs, "write_history",
                        lambda path, rows: (order.append(path.name), real_history(path, rows)))
    train(TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}), tmp_path / "run",
          dataset=load_fer2013(fer_folder, quiet=True))
    assert order == ["last.keras", "best.keras", "history.csv"]


def test_a_terminal_gets_a_batch_progress_bar_and_the_log_one_line_per_epoch(
        fer_folder, tmp_path, monkeypatch):
    import io

    from fer import train as train_mod

    terminal = io.StringIO()
    monkeypatch.setattr(train_mod, "_progress_stream", lambda: terminal)
    run = train(TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 2}), tmp_path / "run",
                dataset=load_fer2013(fer_folder, quiet=True))
    bar = terminal.getvalue()
    # 77 training faces in batches of 16: 4 full batches an epoch.
    assert "epoch 1/2" in bar and "epoch 2/2" in bar and "4/4" in bar and "loss=" in bar
    assert "batch" in bar  # the unit, with a rate and time left
    log = (run / "train.log").read_text()
    assert log.count("epoch 1/2") == 1 and "4/4" not in log


def test_without_a_terminal_there_is_no_progress_bar(monkeypatch):
    import io

    from fer import train as train_mod

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a log file or the Train page's pipe
    assert train_mod._progress_stream() is None


def test_a_fine_tune_of_a_shipped_model_reports_the_shipped_models_history_too(fer_folder,
                                                                              tmp_path):
    from fer.checkpoint import export_run

    data = load_fer2013(fer_folder, quiet=True)
    base = train(TrainConfig(data=str(fer_folder), **TOY), tmp_path / "base", dataset=data)
    shipped = export_run(base, tmp_path / "models" / "base.keras", data=str(fer_folder))
    # The base run's directory is gone, as on a fresh clone: only the shipped .json tells.
    import shutil

    shutil.rmtree(base)
    tune = TrainConfig(data=str(fer_folder), **{**TOY, "epochs": 1}, init_from=str(shipped))
    out = export_run(train(tune, tmp_path / "tune", dataset=data),
                     tmp_path / "models" / "tuned.keras", data=str(fer_folder))
    meta = json.loads(out.with_suffix(".json").read_text())
    assert [r["epoch"] for r in meta["history"]] == [1, 2, 3]  # 2 shipped + 1 fine-tune
    assert [s["epochs"] for s in meta["training"]["stages"]] == [2, 1]
    assert meta["training"]["best_epoch"] == 3
    first, second = meta["training"]["command"].split(" && ")
    assert "--epochs 2" in first and f"--init-from {shipped}" in second
