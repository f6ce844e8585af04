"""Distillation targets: what one teacher, or an ensemble of them, says about each training face.

A teacher's ten-crop pass over FER2013's train split takes ~6.5 minutes on a 2-core CPU, so an
ensemble of four costs ~26 minutes before the student's first step. The probabilities are kept
twice, both keyed by content (the teacher file's bytes, the training faces, the crop size), so a
changed teacher or split is never served stale:

- per teacher in the shared cache (:func:`fer.data.cache_dir`), for any later run that names it;
- averaged in the run's ``teacher_probs.npz``, which ``python -m fer pack`` carries, so a run
  resumed on another machine does not pay the pass again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fer import runs
from fer.atomic import atomic_savez, atomic_write
from fer.config import TrainConfig
from fer.data import CLASSES, Split, cache_dir

log = logging.getLogger("fer.teachers")

PROBS_FILE = "teacher_probs.npz"
_VERSION = 1  # bump when the teacher pass changes (views, averaging), to drop old caches
_TTA = "tencrop"  # a teacher's best guess: ten-crop beats one view on val


def teacher_targets(
    config: TrainConfig, split: Split, run_dir: Path | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Distillation targets: ``distill`` x the teachers' ten-crop probabilities (averaged over
    the teachers when ``teacher`` names several, an ensemble) plus the rest of the one-hot
    label.

    Args:
        config: names the teacher or teachers (``teacher``, comma-separated) and their share
            (``distill``).
        split: the training images and labels.
        run_dir: the run's directory, whose ``teacher_probs.npz`` is read when it matches and
            written otherwise (None: neither).
        check: called before each teacher's view of the faces (~40 s apart on FER2013); it
            raises to abandon the pass, e.g. when the run is asked to stop.

    Returns:
        ``(N, 7)`` float32 targets whose rows sum to 1.

    Raises:
        FileNotFoundError: a teacher's weights are missing.
        ValueError: a teacher does not predict the 7 FER2013 classes.
    """
    probs = teacher_probs(config, split, run_dir, check)
    log.info("targets take %.0f%% from the teacher", 100 * config.distill)
    onehot = np.eye(len(CLASSES), dtype=np.float32)[split.labels]
    return (config.distill * probs + (1 - config.distill) * onehot).astype(np.float32)


def teacher_probs(
    config: TrainConfig, split: Split, run_dir: Path | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """The teachers' averaged ten-crop probabilities ``(N, 7)`` for ``split``'s faces, from
    the caches described in the module docstring when they hold them.

    The run's own ``teacher_probs.npz`` also serves when a teacher file is no longer there
    (a run resumed on another machine from its packed checkpoint): it was made from the same
    faces and the same ``teacher`` field, and a resumed run keeps the targets it started with.
    """
    from fer.evaluate import compute_metrics

    # What the pass saw: these faces and labels, cut into these views, by this version.
    faces = (f"{_digest(split.images.tobytes(), split.labels.tobytes())}|{config.crop_size}|"
             f"{_TTA}|v{_VERSION}")
    saved = Path(run_dir) / PROBS_FILE if run_dir else None
    stored = _read_saved(saved, config, faces) if saved else None
    try:
        paths = runs.teacher_weights(config.teacher)
    except FileNotFoundError as exc:
        if stored is None:
            raise
        log.warning("%s: using the probabilities this run saved in %s", exc, saved.name)
        return stored["probs"]
    keys = [_digest(_file_digest(p).encode(), faces.encode()) for p in paths]
    if stored is not None and stored["keys"] == keys:
        log.info("teacher probabilities from %s (ten-crop pass skipped)", saved.name)
        return stored["probs"]
    total = np.zeros((len(split.labels), len(CLASSES)), np.float64)
    for weights, key in zip(paths, keys):
        one = _one_teacher(weights, key, split, config, check)
        log.info("teacher %s: ten-crop accuracy %.4f on this run's train split", weights,
                 compute_metrics(split.labels, one)["accuracy"])
        total += one / len(paths)
    probs = total.astype(np.float32)
    if len(paths) > 1:
        log.info("ensemble of %d teachers: ten-crop accuracy %.4f on this run's train split",
                 len(paths), compute_metrics(split.labels, probs)["accuracy"])
    if saved:
        atomic_savez(saved, probs=probs, keys=np.array(keys), faces=np.array(faces),
              teacher=np.array(config.teacher))
    return probs


def _read_saved(path: Path, config: TrainConfig, faces: str) -> dict | None:
    """The run's saved probabilities when they were made for these faces and this ``teacher``
    field, else None (absent, unreadable, or from an older format)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            if str(f["faces"]) != faces or str(f["teacher"]) != config.teacher:
                return None
            return {"probs": f["probs"], "keys": [str(k) for k in f["keys"]]}
    except (OSError, ValueError, KeyError):
        return None


def _one_teacher(
    weights: Path, key: str, split: Split, config: TrainConfig, check: Callable[[], None] | None
) -> np.ndarray:
    cached = cache_dir() / f"teacher-{key}.npy"
    if cached.exists():
        try:
            probs = np.load(cached)
            if probs.shape == (len(split.labels), len(CLASSES)):
                log.info("teacher %s: probabilities from the cache", weights)
                return probs
        except (OSError, ValueError):
            pass  # unreadable: computed again below and replaced
    import keras

    import fer.model  # noqa: F401  (registers the custom layers a teacher file holds)
    from fer.evaluate import predict_probs

    teacher = keras.models.load_model(weights)
    if teacher.output_shape[-1] != len(CLASSES):
        raise ValueError(f"teacher: {weights} predicts {teacher.output_shape[-1]} classes, "
                         f"not the {len(CLASSES)} of FER2013")
    runs.warn_if_other_split(weights, config, "teacher")
    t0 = time.time()
    probs = predict_probs(teacher, split.images, _TTA, config.crop_size,
                          before_view=check).astype(np.float32)
    log.info("teacher %s: ten-crop pass over %d faces in %.0fs", weights, len(split.labels),
             time.time() - t0)
    try:
        atomic_write(cached, lambda tmp: np.save(tmp, probs), suffix=".npy")
    except OSError as exc:  # a read-only or full cache only costs the pass next time
        log.warning("could not cache the teacher's probabilities: %s", exc)
    return probs


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:20]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
