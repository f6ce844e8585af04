"""Stochastic weight averaging (Izmailov et al., 2018): the mean of the weights at the end of
several epochs, usually a flatter and more accurate point than any one of them.

The running mean lives in the run directory as ``average.npz`` so that a resumed run continues
it. After averaging, the batch-norm statistics no longer match the averaged weights (a mean of
weights is not the mean of their activations), so they are measured again with one forward pass
over the training data before the averaged network is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from fer.atomic import atomic_savez

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger("fer.train")

AVERAGE_STATE = "average.npz"


class WeightAverage(keras.callbacks.Callback):
    """Keeps the running mean of the model's weights at the end of every epoch from
    ``first_epoch`` (1-based) on, saved after each such epoch for a resume.

    Args:
        run_dir: where ``average.npz`` is written.
        first_epoch: the first epoch whose weights enter the mean.
        done_epochs: epochs the run's history already lists (a resume); the saved mean is
            brought back to exactly those epochs.
        skip_epoch: says whether the epoch that just ended was cut short (a stop request);
            such an epoch is not averaged, as the run's history does not list it either.
    """

    def __init__(self, run_dir: Path, first_epoch: int, done_epochs: int = 0,
                 skip_epoch: Callable[[], bool] = lambda: False):
        super().__init__()
        self.path = Path(run_dir) / AVERAGE_STATE
        self.first_epoch, self.skip_epoch = first_epoch, skip_epoch
        self.mean, self.previous, self.count, self.through = load_state(self.path, done_epochs)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.first_epoch or self.skip_epoch():
            return
        weights = [np.asarray(w, dtype=np.float64) for w in self.model.get_weights()]
        self.previous = self.mean
        self.count += 1
        self.mean = (weights if self.previous is None else
                     [m + (w - m) / self.count for m, w in zip(self.previous, weights)])
        self.through = epoch + 1
        save_state(self.path, self.mean, self.previous, self.count, self.through)

    @property
    def epochs(self) -> tuple[int, int] | None:
        """First and last epoch in the mean (None before the first)."""
        return (self.through - self.count + 1, self.through) if self.count else None


def save_state(path: Path, mean, previous, count: int, through: int) -> None:
    """Writes the mean and the one before it, so a resume can step back one epoch."""
    arrays = {f"mean_{i}": m for i, m in enumerate(mean)}
    if previous is not None:
        arrays |= {f"previous_{i}": p for i, p in enumerate(previous)}
    atomic_savez(path, count=np.int64(count), through=np.int64(through), **arrays)


def load_state(path: Path, done_epochs: int):
    """The running mean as of ``done_epochs`` epochs: ``(mean, previous, count, through)``.

    A trainer killed after saving the mean of epoch N but before recording epoch N in its
    history redoes epoch N on resume; the mean then steps back to the one before it.
    """
    if not path.exists():
        return None, None, 0, 0
    with np.load(path) as npz:
        count, through = int(npz["count"]), int(npz["through"])
        mean = _arrays(npz, "mean")
        previous = _arrays(npz, "previous") or None
    if through == done_epochs + 1:
        mean, count, through, previous = previous, count - 1, done_epochs, None
    elif through != done_epochs:
        raise ValueError(f"{path.name} holds a weight average through epoch {through}, but the "
                         f"run's history lists {done_epochs} epochs: delete {path.name} to "
                         "start the average again")
    return (mean if count else None), previous, count, through


def _arrays(npz, prefix: str) -> list[np.ndarray]:
    names = sorted((k for k in npz.files if k.startswith(prefix + "_")),
                   key=lambda k: int(k.rsplit("_", 1)[1]))
    return [npz[k] for k in names]


def recompute_batch_norm(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> None:
    """Measures the batch-norm statistics again for the model's current weights.

    Runs ``steps`` training batches forward in training mode, weights untouched. Each
    batch-norm layer's momentum is set to 1 - 1/n for the n-th batch, so its moving mean and
    variance become the plain average over all the batches (the first batch replaces the stale
    values entirely), as PyTorch's ``update_bn`` does.
    """
    norms = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    if not norms:
        return
    saved = [l.momentum for l in norms]
    try:
        # Eager calls: the layers read their momentum afresh on each call (a tf.function
        # would freeze the first value).
        for n, (x, _) in enumerate(dataset.take(steps)):
            for layer in norms:
                layer.momentum = n / (n + 1)  # new = old * n/(n+1) + batch / (n+1)
            model(x, training=True)
    finally:
        for layer, momentum in zip(norms, saved):
            layer.momentum = momentum
