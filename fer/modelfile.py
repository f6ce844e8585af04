"""Model files and their metadata: one loader for ``.keras`` and ``.tflite`` classifiers.

A model file is usable only with its metadata (the class order above all): ``<name>.json``
beside it, as ``python -m fer export`` writes it, or a training run's ``config.json``. A
``.tflite`` shares the ``.json`` of the ``.keras`` it was converted from (same stem), whose
``tflite`` entry records the SHA-256 of that ``.keras``: :func:`serving_path` serves the
``.tflite`` only while it still matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer.data import CLASSES

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "fer_vgg.keras"
FORMATS = (".keras", ".tflite")


class ModelError(ValueError):
    """A model file that cannot serve: missing, unreadable, or without matching metadata."""


@dataclass(frozen=True)
class LoadedModel:
    """A classifier with the metadata that says how to use it.

    ``model`` is a ``keras.Model`` for a ``.keras`` file and a
    :class:`fer.litert.TFLiteClassifier` for a ``.tflite``; both take ``(N, H, W, 1)`` raw
    0..255 faces and have ``input_shape`` and ``predict``.
    """

    model: Any
    meta: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.stem)

    @property
    def format(self) -> str:
        """``keras`` or ``tflite``."""
        return self.path.suffix.lstrip(".")

    @property
    def test_accuracy(self) -> float | None:
        return (self.meta.get("evaluation") or {}).get("accuracy")


def read_model_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a model file: ``<name>.json`` beside it, or a run's ``config.json``.

    Raises:
        ModelError: no metadata, or classes that differ from :data:`fer.data.CLASSES`.
    """
    path = Path(path)
    candidates = [path.with_suffix(".json"), path.parent / "config.json"]
    meta_path = next((p for p in candidates if p.exists()), None)
    if meta_path is None:
        raise ModelError(
            f"{path.name} has no metadata ({candidates[0].name} or config.json beside it), so "
            f"its class order is unknown; export it with `python -m fer export`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {meta_path.name}: {exc}") from None
    if meta_path.name == "config.json":
        metrics = path.parent / "metrics.json"
        meta = {"name": path.parent.name, "config": meta, "classes": meta.get("classes"),
                "evaluation": json.loads(metrics.read_text()) if metrics.exists() else None}
    if list(meta.get("classes") or []) != list(CLASSES):
        raise ModelError(
            f"{path.name} predicts classes {meta.get('classes')}, but this app shows "
            f"{list(CLASSES)}; retrain or re-export it with this version of fer"
        )
    return meta


def load_keras(path: str | os.PathLike) -> Any:
    """A ``.keras`` model, with the custom layers of :mod:`fer.model` registered (imports
    TensorFlow).

    Raises:
        ModelError: an unreadable file.
    """
    import keras

    import fer.model  # noqa: F401 - registers fer.model.Smoothing etc., which a model may hold

    path = Path(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelError(f"cannot load {path.name}: {exc}") from None


def serving_path(path: str | os.PathLike | None = None) -> Path:
    """The file to serve for a model: its ``.tflite`` when one was converted from exactly this
    ``.keras`` (see :func:`fer.tflite.convert`), else the file itself.

    Args:
        path: a ``.keras`` or ``.tflite`` file (default: the shipped model).
    """
    from fer.tflite import file_sha256, tflite_path

    path = Path(path or DEFAULT_MODEL)
    if path.suffix != ".keras":
        return path
    candidate = tflite_path(path)
    if not candidate.exists() or not path.exists():
        return path
    try:
        recorded = (read_model_meta(path).get("tflite") or {}).get("source_sha256")
    except ModelError:
        return path
    return candidate if recorded and recorded == file_sha256(path) else path


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Loads a ``.keras`` or ``.tflite`` classifier after checking its metadata.

    A ``.tflite`` runs through LiteRT (:mod:`fer.litert`) and does not import TensorFlow where
    LiteRT is installed; a ``.keras`` imports TensorFlow.

    Args:
        path: the model file (default: the shipped ``models/fer_vgg.keras``).

    Raises:
        ModelError: missing file, unknown format, missing or mismatched metadata, or an
            unreadable model.
    """
    path = Path(path or DEFAULT_MODEL)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.suffix not in FORMATS:
        raise ModelError(f"{path.name} is not a model file this app reads ({', '.join(FORMATS)})")
    meta = read_model_meta(path)
    if path.suffix == ".tflite":
        from fer.litert import TFLiteClassifier

        try:
            model = TFLiteClassifier(path)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {path.name}: {exc}") from None
    else:
        model = load_keras(path)
    return LoadedModel(model, meta, path)
