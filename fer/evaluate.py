"""Evaluation: accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix, with
optional test-time augmentation (TTA)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fer.data import CLASSES, Split
from fer.tta import TTA_MODES, tta_views  # noqa: F401 - re-exported for callers


def predict_probs(
    model, images: np.ndarray, tta: str = "none", crop_size: int | None = None,
    batch_size: int = 256, before_view: Callable[[], None] | None = None,
) -> np.ndarray:
    """Class probabilities ``(N, 7)``, averaged over the TTA views.

    Views smaller than a fixed-size model's input (the ``seed`` preset) are resized up to it.
    ``before_view``, when given, is called before each view (it may raise to abandon them).
    """
    import tensorflow as tf

    fixed = model.input_shape[1:3]
    total = 0.0
    views = tta_views(images, tta, crop_size)
    for view in views:
        if before_view:
            before_view()
        if fixed[0] is not None and tuple(view.shape[1:3]) != tuple(fixed):
            view = tf.image.resize(view, fixed).numpy()
        total = total + model.predict(view, batch_size=batch_size, verbose=0)
    return total / len(views)


def compute_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, the confusion matrix, and
    the calibration of the probabilities (ECE over 15 bins, NLL, reliability bins).

    Args:
        labels: ``(N,)`` true class indices.
        probs: ``(N, 7)`` probabilities.

    Returns:
        A JSON-ready dict. ``confusion_matrix[i][j]`` counts true class i predicted as j;
        ``correct`` is the exact count behind ``accuracy``.
    """
    from fer import calibration

    k = len(CLASSES)
    pred = np.argmax(probs, axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros(k), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros(k), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=(precision + recall) > 0)
    return {
        "n": int(len(labels)),
        "correct": int(tp.sum()),
        "accuracy": float(tp.sum() / max(1, len(labels))),
        "macro_f1": float(f1.mean()),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]),
                "f1": float(f1[i]), "support": int(cm[i].sum())}
            for i, c in enumerate(CLASSES)
        },
        "confusion_matrix": cm.tolist(),
        **calibration.summary(labels, probs),
        "reliability": calibration.reliability(labels, probs).to_dict(),
    }


def evaluate(
    model, split: Split, tta: str = "none", crop_size: int | None = None
) -> dict[str, Any]:
    """Evaluates a model on a split, without TTA and, if asked, with it.

    Args:
        model: a loaded Keras model (uint8 faces in, probabilities out).
        split: the faces and labels.
        tta: ``none``, ``flip`` or ``tencrop``; with TTA the result holds both figures.
        crop_size: crop side for ``tencrop`` (the training crop size is the natural choice).

    Returns:
        :func:`compute_metrics` without TTA, plus ``tta`` with the TTA result when requested.
    """
    t0 = time.time()
    result = compute_metrics(split.labels, predict_probs(model, split.images))
    result["seconds"] = round(time.time() - t0, 2)
    if tta != "none":
        tta_result = compute_metrics(
            split.labels, predict_probs(model, split.images, tta, crop_size)
        )
        result["tta"] = {"mode": tta, **tta_result}
    return result


def write_metrics(path: Path, result: dict[str, Any], **extra: Any) -> None:
    """Writes an evaluation result (plus context such as split and source) atomically."""
    from fer.runs import atomic_write_json

    atomic_write_json(Path(path), {**extra, **result})


def format_report(result: dict[str, Any]) -> str:
    """A readable table of an evaluation result."""
    def line(r: dict[str, Any], what: str) -> str:
        cal = (f"   ECE {r['ece']:.4f}   NLL {r['nll']:.4f}" if "ece" in r else "")
        return (f"accuracy {r['accuracy']:.4f}   macro-F1 {r['macro_f1']:.4f}{cal}   "
                f"(n={r['n']}, {what})")

    lines = [line(result, "no TTA")]
    if "tta" in result:
        lines.append(line(result["tta"], f"{result['tta']['mode']} TTA"))
    lines.append(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for c, m in result["per_class"].items():
        lines.append(f"{c:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}"
                     f"{m['support']:>9d}")
    return "\n".join(lines)
