"""Training runs: ``runs/<run-id>/`` with config, history, checkpoints, status, metrics and a log.

A run is resumable from ``last.keras`` (weights, optimizer state and step count, so the learning
rate schedule continues where it stopped) and stoppable: a ``STOP`` file in the run directory,
SIGTERM or Ctrl-C end it after the current batch with status ``stopped``.
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fer import runs
from fer.atomic import atomic_write, clean_temporaries
from fer.averaging import WeightAverage, recompute_batch_norm
from fer.config import TrainConfig
from fer.data import CLASSES, Dataset, load_fer2013, stratified_split
from fer.model import build_model
from fer.pipeline import build_augmenter, make_dataset
from fer.teachers import teacher_targets  # noqa: F401  (re-exported: fer.train.teacher_targets)

log = logging.getLogger("fer.train")


class StopRequested(Exception):
    """Raised internally when a run was asked to stop."""


def _atomic_save(model: keras.Model, path: Path) -> None:
    atomic_write(path, model.save, suffix=".keras")  # Keras wants a .keras suffix


def _class_weights(config: TrainConfig, labels: np.ndarray) -> dict[int, float] | None:
    if config.class_weight == "none":
        return None
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    weights = counts.sum() / (len(CLASSES) * np.maximum(counts, 1))
    if config.class_weight == "sqrt":
        weights = np.sqrt(weights)
    return {i: float(w) for i, w in enumerate(weights)}


def _strategy(config: TrainConfig) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if config.distribute == "mirrored" or (config.distribute == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build_schedule(
    config: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate, or its schedule over ``config.epochs``, from the config."""
    if config.schedule == "cyclic":
        # A restart every epoch (no warm-up): the weights each epoch ends on are a converged
        # point of their own, the snapshots weight averaging wants (Izmailov et al., 2018).
        return keras.optimizers.schedules.CosineDecayRestarts(
            config.learning_rate, first_decay_steps=steps_per_epoch, t_mul=1.0, m_mul=1.0,
            alpha=0.01)
    if config.schedule != "cosine":
        return config.learning_rate
    warmup = int(config.warmup_epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.01 if warmup else config.learning_rate,
        decay_steps=max(1, config.epochs * steps_per_epoch - warmup),
        alpha=0.01,  # end at 1% of the peak, not exactly 0
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer with its learning-rate schedule, from the config."""
    lr = build_schedule(config, steps_per_epoch)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> None:
    """Compiles with the configured optimizer, label-smoothed cross-entropy and accuracy."""
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )


class RunRecorder(keras.callbacks.Callback):
    """Writes history, checkpoints and status after every complete epoch; honours stop requests."""

    def __init__(self, run_dir: Path, config: TrainConfig, history: list[dict[str, float]]):
        super().__init__()
        self.run_dir, self.config = run_dir, config
        self.rows = list(history)
        self.best = max((r.get("val_accuracy", -1.0) for r in self.rows), default=-1.0)
        self.stop_requested = False
        self._interrupted_epoch = False
        self._t0 = time.time()

    def request_stop(self, *_args) -> None:
        self.stop_requested = True

    def stopping(self) -> bool:
        """Whether a stop was asked for: a signal, or the run's ``STOP`` file."""
        if not self.stop_requested and (self.run_dir / runs.STOP_FILE).exists():
            self.stop_requested = True
        return self.stop_requested

    def raise_if_stopping(self) -> None:
        """For work before ``fit`` (the teachers' pass, minutes long): stop there too."""
        if self.stopping():
            raise StopRequested

    def _check_stop(self) -> None:
        if self.stopping():
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.time()
        self._check_stop()

    def on_train_batch_end(self, batch, logs=None):
        self._check_stop()
        if self.stop_requested:
            self._interrupted_epoch = True

    def epoch_interrupted(self) -> bool:
        """Whether the epoch now ending was cut short by a stop request (not recorded)."""
        return self._interrupted_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self._interrupted_epoch:
            return  # a partial epoch is neither recorded nor checkpointed: resume redoes it
        logs = logs or {}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1, "learning_rate": lr, "seconds": time.time() - self._t0}
        row |= {k: float(logs[k]) for k in runs.HISTORY_FIELDS if k in logs}
        self.rows.append(row)
        # last.keras, then best.keras, then history.csv: a kill between any two leaves a
        # history that the checkpoints cover (a reader that sees epoch N in history.csv finds
        # last.keras at epoch N or later, and best.keras at the best epoch it lists); a resume
        # redoes an epoch the history does not list.
        _atomic_save(self.model, self.run_dir / "last.keras")
        val = row.get("val_accuracy", -1.0)
        if val > self.best:
            self.best = val
            _atomic_save(self.model, self.run_dir / "best.keras")
        runs.write_history(self.run_dir / "history.csv", self.rows)
        mean_s = float(np.mean([r["seconds"] for r in self.rows[-5:]]))
        eta = mean_s * (self.config.epochs - epoch - 1)
        runs.write_status(self.run_dir, "running", epoch=epoch + 1, epochs=self.config.epochs,
                          eta_seconds=eta, best_val_accuracy=self.best)
        log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.0fs  "
            "ETA %dm", epoch + 1, self.config.epochs, row.get("loss", float("nan")),
            row.get("accuracy", float("nan")), row.get("val_loss", float("nan")), val, lr,
            row["seconds"], eta // 60,
        )


class BatchProgress(keras.callbacks.Callback):
    """A progress bar per epoch (batches done, loss, accuracy, time left), for a terminal; the
    log keeps one line per epoch."""

    def __init__(self, steps: int, epochs: int, stream):
        super().__init__()
        self.steps, self.epochs, self.stream = steps, epochs, stream
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
                        file=self.stream, leave=False, dynamic_ncols=True,
                        mininterval=0, miniters=1)  # every batch: a fast epoch still shows

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{float(logs[k]):.4f}" for k in ("loss", "accuracy")
                              if k in logs}, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()  # before RunRecorder prints the epoch's line
            self.bar = None

    def on_train_end(self, logs=None):
        self.on_epoch_end(None)


def _progress_stream():
    """Where the batch progress bar goes: the terminal, or nowhere (a log file, the Train page's
    background process) so logs stay one line per epoch."""
    return sys.stdout if sys.stdout.isatty() else None


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("fer").addHandler(handler)
    logging.getLogger("fer").setLevel(logging.INFO)
    if not any(isinstance(h, logging.StreamHandler) and h.stream is sys.stdout
               for h in logging.getLogger("fer").handlers):
        out = logging.StreamHandler(sys.stdout)
        out.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("fer").addHandler(out)
    return handler


def train(
    config: TrainConfig,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    dataset: Dataset | None = None,
) -> Path:
    """Trains a model and records the run; evaluates the best checkpoint on ``test`` at the end.

    Args:
        config: the hyperparameters.
        run_dir: the run's directory; a new one under ``runs/`` when None. With ``resume``, an
            existing run whose ``last.keras`` and ``history.csv`` are continued.
        resume: continue from ``last.keras`` at the epoch after the last recorded one.
        dataset: an already loaded dataset (tests); otherwise ``config.data`` is loaded.

    Returns:
        The run directory. Its ``status.json`` says finished, stopped or failed.
    """
    config.validated()
    run_dir = Path(run_dir) if run_dir else runs.new_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _setup_logging(run_dir)
    history = runs.read_history(run_dir / "history.csv") if resume else []
    if not resume:
        runs.write_config(run_dir, config)
    (run_dir / runs.STOP_FILE).unlink(missing_ok=True)
    for leftover in clean_temporaries(run_dir):  # of a trainer killed mid-write
        log.info("removed %s, left by an interrupted write", leftover.name)
    runs.write_status(run_dir, "running", **runs.process_identity(), epoch=len(history),
                      epochs=config.epochs, started=time.time(), error=None, finished=None,
                      host=platform.node(), cpu=runs.cpu_name(), cores=os.cpu_count())
    recorder = RunRecorder(run_dir, config, history)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, recorder.request_stop)
    try:
        _fit(config, run_dir, recorder, history, resume, dataset)
        if recorder.stop_requested:
            raise StopRequested
        runs.write_status(run_dir, "finished", finished=time.time())
        log.info("finished: %s", run_dir)
    except StopRequested:
        runs.write_status(run_dir, "stopped", finished=time.time())
        log.info("stopped on request after epoch %d: %s", len(recorder.rows), run_dir)
    except BaseException as exc:
        log.error("failed: %s\n%s", exc, traceback.format_exc())
        runs.write_status(run_dir, "failed", finished=time.time(),
                          error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for sig, handler_fn in previous.items():
            signal.signal(sig, handler_fn)
        logging.getLogger("fer").removeHandler(handler)
        handler.close()
    return run_dir


def _load_init_weights(model: keras.Model, config: TrainConfig) -> None:
    weights = runs.init_weights(config.init_from)
    try:
        with warnings.catch_warnings():
            # Keras only warns when a group of layers is missing from the file, and those
            # layers would then train from random weights: a partial start is a wrong start.
            warnings.filterwarnings("error", message="Skipping nested container")
            model.load_weights(weights)
    except (UserWarning, ValueError) as exc:
        detail = "its layers differ" if isinstance(exc, UserWarning) else exc
        raise ValueError(f"init_from: {weights} does not fit the {config.preset} network "
                         f"({detail})") from None
    log.info("starting from the weights of %s", weights)
    runs.warn_if_other_split(weights, config, "init_from")


def _fit(config, run_dir, recorder, history, resume, dataset) -> None:
    keras.utils.set_random_seed(config.seed + len(history))
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    data = dataset or load_fer2013(config.data)
    log.info(data.report.summary())
    train_split, val_split = stratified_split(data["train"], config.val_fraction, config.seed)
    log.info("train %d / val %d (seed %d)", len(train_split.labels), len(val_split.labels),
             config.seed)
    targets = (teacher_targets(config, train_split, run_dir, check=recorder.raise_if_stopping)
               if config.teacher else None)
    augmenter = build_augmenter(config.augment, config.crop_size, config.erasing, config.seed,
                                start_epoch=len(history), robust=config.robust)
    train_ds = make_dataset(train_split, config.batch_size, training=True, augmenter=augmenter,
                            mixup=config.mixup, seed=config.seed + len(history), targets=targets)
    val_ds = make_dataset(val_split, 256)
    steps = max(1, len(train_split.labels) // config.batch_size)
    initial_epoch = len(history)
    with _strategy(config).scope():
        if resume and (run_dir / "last.keras").exists():
            model = keras.models.load_model(run_dir / "last.keras")
            log.info("resuming at epoch %d from %s", initial_epoch + 1, run_dir / "last.keras")
            if config.schedule == "cosine":
                # Re-plan the cosine over the config's epochs (changed with --epochs on resume);
                # the optimizer's step count, and so the position on it, carries over.
                model.optimizer.learning_rate = build_schedule(config, steps)
        else:
            if resume:
                log.info("no last.keras in %s: starting from epoch 1", run_dir)
            initial_epoch, recorder.rows[:] = 0, []
            model = build_model(config.preset, dropout=config.dropout)
            if config.init_from:
                _load_init_weights(model, config)
            compile_model(model, config, steps)
    stream = _progress_stream()
    averager = (WeightAverage(run_dir, config.average_from, initial_epoch,
                              skip_epoch=recorder.epoch_interrupted)
                if config.average_from else None)
    # The average is saved before RunRecorder records the epoch (see fer.averaging.load_state).
    callbacks = (([BatchProgress(steps, config.epochs, stream)] if stream else [])
                 + ([averager] if averager else []) + [recorder])
    if config.patience:
        # Stops on a stalled val accuracy; on resume its counter starts again from zero.
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience))
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_accuracy", mode="max", factor=0.5, patience=max(2, config.patience // 3),
            min_lr=1e-6))
    if initial_epoch < config.epochs:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,  # resumes the epoch count and the schedule's position
            class_weight=_class_weights(config, train_split.labels),
            callbacks=callbacks,
            verbose=0,  # RunRecorder logs one line per epoch; BatchProgress draws the bar
        )
    if recorder.stop_requested:
        return
    if averager and averager.count:
        _finish_average(config, run_dir, recorder, averager, train_ds, val_split, steps)
    if "test" in data.splits and (run_dir / "best.keras").exists():
        from fer.evaluate import evaluate, write_metrics

        best = keras.models.load_model(run_dir / "best.keras")
        result = evaluate(best, data["test"], tta="flip", crop_size=config.crop_size)
        write_metrics(run_dir / "metrics.json", result, split="test", source=config.data)
        log.info("test accuracy %.4f, macro-F1 %.4f; with flip TTA %.4f and %.4f",
                 result["accuracy"], result["macro_f1"], result["tta"]["accuracy"],
                 result["tta"]["macro_f1"])


def _finish_average(config, run_dir, recorder, averager, train_ds, val_split, steps) -> None:
    """Scores the averaged weights on val (batch-norm statistics measured again) and makes them
    the run's ``best.keras`` if they beat its best epoch."""
    model = build_model(config.preset, dropout=config.dropout)
    model.set_weights(averager.mean)
    recompute_batch_norm(model, train_ds, steps)
    probs = model.predict(val_split.images[..., None], batch_size=256, verbose=0)
    val = float((probs.argmax(1) == val_split.labels).mean())
    first, last = averager.epochs
    selected = val > recorder.best
    _atomic_save(model, run_dir / "average.keras")
    if selected:
        _atomic_save(model, run_dir / "best.keras")
    runs.write_status(run_dir, "running", best_val_accuracy=max(val, recorder.best), average={
        "epochs": [first, last], "val_accuracy": val, "best_epoch_val_accuracy": recorder.best,
        "selected": selected})
    log.info("weight average of epochs %d-%d: val_acc %.4f against %.4f for the best epoch; "
             "best.keras is %s", first, last, val, recorder.best,
             "the average" if selected else "still the best epoch")
