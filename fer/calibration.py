"""Calibration of class probabilities: reliability bins, expected calibration error (ECE),
negative log-likelihood (NLL), and fitting one softmax temperature.

Pure numpy: the dashboard and the tests use it without TensorFlow.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

BINS = 15  # the usual choice (Guo et al. 2017), so figures compare with published ones


class Reliability(NamedTuple):
    """Top-1 confidence against accuracy in equal-width confidence bins."""

    edges: list[float]  # bins + 1 edges from 0 to 1
    confidence: list[float | None]  # mean top-1 probability per bin (None: empty bin)
    accuracy: list[float | None]  # share correct per bin (None: empty bin)
    count: list[int]  # faces per bin

    def to_dict(self) -> dict:
        return self._asdict()


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> Reliability:
    """Bins faces by their top-1 probability.

    Args:
        labels: ``(N,)`` true class indices.
        probs: ``(N, K)`` probabilities.
        bins: equal-width bins over [0, 1]; a confidence on an edge goes to the lower bin
            (the bins are (a, b], the first one [0, b]).

    Returns:
        A :class:`Reliability`.
    """
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    right_sum = np.bincount(idx, weights=right.astype(float), minlength=bins)
    mean = lambda s: [float(v / n) if n else None for v, n in zip(s, count)]  # noqa: E731
    return Reliability([float(e) for e in edges], mean(conf_sum), mean(right_sum),
                       [int(n) for n in count])


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    r = reliability(labels, probs, bins)
    n = max(1, sum(r.count))
    return float(sum(c * abs(a - p) for c, a, p in zip(r.count, r.accuracy, r.confidence) if c)
                 / n)


def nll(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (natural log)."""
    p = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)``, as :class:`fer.model.Calibration` computes it."""
    z = np.log(np.maximum(probs.astype(np.float64), 1e-12)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(
    labels: np.ndarray, probs: np.ndarray, low: float = 0.05, high: float = 20.0
) -> float:
    """The temperature that minimises the NLL of ``probs`` (fit it on the validation split).

    The NLL of temperature-scaled probabilities is convex in 1/temperature, so a golden-section
    search over log(temperature) finds the minimum.

    Args:
        labels: ``(N,)`` true class indices.
        probs: ``(N, K)`` probabilities of the model without calibration.
        low: smallest temperature considered.
        high: largest temperature considered.

    Returns:
        The fitted temperature, rounded to 4 decimals.
    """
    if len(labels) == 0:
        raise ValueError("fit_temperature needs at least one labelled face")
    f = lambda t: nll(labels, apply_temperature(probs, float(np.exp(t))))  # noqa: E731
    a, b = np.log(low), np.log(high)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return round(float(np.exp((a + b) / 2)), 4)


def summary(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """ECE (15 bins, top-1) and NLL of one set of predictions, JSON-ready."""
    return {"ece": round(ece(labels, probs), 4), "nll": round(nll(labels, probs), 4)}
