"""From any picture to faces with boxes and emotion probabilities.

:class:`Predictor` loads a model once and is safe to share between Streamlit sessions and the
webcam thread. ``predict(image)`` accepts a path, bytes, a PIL image or a numpy array.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer.data import CLASSES, IMAGE_SIZE
from fer.detect import FaceDetector, square_crop_box
from fer.evaluate import tta_views

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "fer_vgg.keras"
# Measured by benchmarks/crop_margin.py: on FER2013 test faces BlazeFace's box spans a median
# 87.5% of the FER frame (IQR 80-95%), so growing it by 7% per side reproduces that framing.
DEFAULT_MARGIN = 0.07
MAX_PIXELS = 50_000_000  # a 50 MP photo is plenty; larger is refused before decoding
MAX_SIDE = 1920  # photos are downscaled to this before detection and display
MIN_SIDE = 24


class ImageError(ValueError):
    """An input that cannot be used as an image; the message says why and what to try."""


class ModelError(ValueError):
    """A model file that cannot serve: missing, unreadable, or without matching metadata."""


class Face(NamedTuple):
    """One face found in an image."""

    box: tuple[int, int, int, int]  # x, y, w, h in the (possibly downscaled) image
    score: float  # detector confidence (1.0 when the whole image is the face)
    probs: np.ndarray  # (7,) probabilities in CLASSES order
    label: str
    crop: np.ndarray  # (48, 48) uint8, what the classifier saw

    @property
    def confidence(self) -> float:
        return float(self.probs.max())

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "probs": {c: round(float(p), 4) for c, p in zip(CLASSES, self.probs)},
            "label": self.label,
        }


@dataclass
class Result:
    """All faces of one image, largest first; ``reason`` says why there are none."""

    image: Image.Image
    faces: list[Face] = field(default_factory=list)
    reason: str | None = None
    scale: float = 1.0  # displayed image size / original size

    @property
    def label(self) -> str | None:
        return self.faces[0].label if self.faces else None


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model with the metadata that says how to use it."""

    model: Any
    meta: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.stem)

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
        raise ModelError(f"cannot read {meta_path}: {exc}") from None
    if meta_path.name == "config.json":
        meta = {"name": path.parent.name, "config": meta, "classes": meta.get("classes"),
                "evaluation": json.loads((path.parent / "metrics.json").read_text())
                if (path.parent / "metrics.json").exists() else None}
    if list(meta.get("classes") or []) != list(CLASSES):
        raise ModelError(
            f"{path.name} predicts classes {meta.get('classes')}, but this app shows "
            f"{list(CLASSES)}; retrain or re-export it with this version of fer"
        )
    return meta


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Loads a ``.keras`` model after checking its metadata.

    Args:
        path: the model file (default: the shipped ``models/fer_vgg.keras``).

    Raises:
        ModelError: missing file, missing or mismatched metadata, or an unreadable model.
    """
    path = Path(path or DEFAULT_MODEL)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    meta = read_model_meta(path)
    import keras

    import fer.model  # noqa: F401 - registers fer.model.Smoothing, which a model may contain

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelError(f"cannot load {path.name}: {exc}") from None
    return LoadedModel(model, meta, path)


def load_image(source: Any) -> Image.Image:
    """Opens any picture as an upright RGB image.

    Args:
        source: a path, bytes, a file-like object, a ``PIL.Image`` or a numpy array
            (``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``; any integer or float dtype).

    Returns:
        An RGB ``PIL.Image`` with EXIF orientation applied and transparency flattened on white.

    Raises:
        ImageError: not an image, an unreadable file, or more than :data:`MAX_PIXELS` pixels.
    """
    if isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float64)
            hi = arr.max() if arr.size else 1.0
            arr = np.clip(arr / (hi if hi > 1.0 else 1.0) * 255.0, 0, 255).astype(np.uint8)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ImageError(
                f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got {arr.shape}")
        im = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    elif isinstance(source, Image.Image):
        im = source
    else:
        name = str(source) if isinstance(source, (str, os.PathLike)) else "the upload"
        data = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(data)
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(
                        f"{name} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} MP); "
                        f"the limit is {MAX_PIXELS / 1e6:.0f} MP. Resize it and try again."
                    )
                im.load()
        except ImageError:
            raise
        except FileNotFoundError:
            raise ImageError(f"no such file: {name}") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                f"{name} has too many pixels to decode safely (the limit is "
                f"{MAX_PIXELS / 1e6:.0f} MP); resize it and try again"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageError(
                f"{name} is not an image Pillow can read (JPEG, PNG, WebP, BMP, GIF, TIFF...): "
                f"{exc}"
            ) from None
    im = ImageOps.exif_transpose(im)
    return _to_rgb(im)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        im = Image.fromarray(arr.astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """The 48x48 classifier input for a detector box: a square grown by ``margin``, edge-padded
    where it leaves the image, resized with an antialiasing filter."""
    h, w = gray.shape
    left, top, side, _ = square_crop_box(box, margin, (w, h))
    pad = max(0, -left, -top, left + side - w, top + side - h)
    if pad:
        gray = np.pad(gray, pad, mode="edge")
        left, top = left + pad, top + pad
    region = Image.fromarray(gray[top : top + side, left : left + side])
    return np.asarray(region.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS))


def _tta_of(meta: dict[str, Any], model: Any) -> tuple[str, int | None]:
    """The TTA mode a model was evaluated with (``flip`` when unsaid) and its crop side."""
    mode = ((meta.get("evaluation") or {}).get("tta") or {}).get("mode", "flip")
    crop = (meta.get("config") or {}).get("crop_size")
    if mode == "tencrop" and model.input_shape[1] is not None:
        mode = "flip"  # a fixed-size network (the seed) cannot take the smaller crops
    return (mode if mode in ("flip", "tencrop") else "flip"), crop


class Predictor:
    """Detects faces and classifies their expressions; one instance serves every thread.

    Args:
        model_path: a ``.keras`` model with metadata (default: the shipped model).
        detector: BlazeFace variant, ``full`` or ``short`` (see :mod:`fer.detect`).
        margin: crop margin around each detected face (fraction of the box side per side).
        min_score: detector confidence threshold.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        detector: str = "full",
        margin: float = DEFAULT_MARGIN,
        min_score: float = 0.5,
    ):
        import tensorflow as tf

        self.loaded = load_model(model_path)
        self.model = self.loaded.model
        self.margin = margin
        self.detector = FaceDetector(detector, min_score=min_score)
        self.tta_mode, self.tta_crop = _tta_of(self.loaded.meta, self.model)
        # One traced graph for any batch size (and for TTA's smaller crops): ~1 ms per face
        # instead of ~25 ms eager.
        self._infer = tf.function(
            lambda x: self.model(x, training=False), reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        self._lock = threading.Lock()
        self._gradcam_model = None

    @property
    def meta(self) -> dict[str, Any]:
        return self.loaded.meta

    @property
    def tta_description(self) -> str:
        """What ``tta=True`` averages over, in words for the UI."""
        if self.tta_mode == "tencrop":
            return (f"ten views: four corner and one centre {self.tta_crop}x{self.tta_crop} "
                    "crop, each with its mirror image")
        return "the face and its mirror image"

    def classify(self, crops: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities ``(N, 7)`` for ``(N, 48, 48)`` uint8 face crops, in one batch.

        With ``tta`` the prediction is averaged over the views of the model's own TTA mode
        (:attr:`tta_mode`: the one its metadata reports, e.g. ten crops and their mirrors).
        """
        if len(crops) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        views = tta_views(np.asarray(crops), self.tta_mode if tta else "none", self.tta_crop)
        x = np.concatenate(views).astype(np.float32)  # every view of a mode has one shape
        with self._lock:
            probs = self._infer(x).numpy()
        return probs.reshape(len(views), len(crops), -1).mean(axis=0)

    def predict(self, image: Any, detect: bool = True, tta: bool = False) -> Result:
        """Finds the faces in an image and classifies each one.

        Args:
            image: anything :func:`load_image` accepts.
            detect: False treats the whole image as one face (for inputs already cropped).
            tta: average over the model's TTA views (slower, usually more accurate).

        Returns:
            A :class:`Result`; with no usable face, ``faces`` is empty and ``reason`` says why.

        Raises:
            ImageError: the input is not a usable image.
        """
        im = load_image(image)
        original = im.size
        if max(im.size) > MAX_SIDE:
            im = im.copy()
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        scale = im.width / original[0]
        if min(im.size) < MIN_SIDE:
            return Result(im, [], f"the image is only {original[0]}x{original[1]} pixels; "
                          f"at least {MIN_SIDE}x{MIN_SIDE} is needed", scale)
        gray = np.asarray(im.convert("L"))
        if detect:
            detections = self.detector.detect(im)
            if not detections:
                return Result(im, [], "no face found: try a brighter, frontal photo where the "
                              "face is not too small, or treat the whole image as one face", scale)
            boxes = [d.box for d in detections]
            scores = [d.score for d in detections]
            crops = np.stack([crop_face(gray, b, self.margin) for b in boxes])
        else:
            side = min(im.size)
            boxes = [((im.width - side) // 2, (im.height - side) // 2, side, side)]
            scores = [1.0]
            crops = np.stack([crop_face(gray, boxes[0], 0.0)])
        probs = self.classify(crops, tta=tta)
        faces = [
            Face(tuple(int(v) for v in b), float(s), p, CLASSES[int(np.argmax(p))], c)
            for b, s, p, c in zip(boxes, scores, probs, crops)
        ]
        return Result(im, faces, None, scale)

    def gradcam(self, crop: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """Grad-CAM heatmap (48x48, 0..1) of what drove the prediction for one face crop.

        Args:
            crop: a ``(48, 48)`` uint8 face.
            class_index: the class to explain (default: the predicted one).
        """
        import keras
        import tensorflow as tf

        with self._lock:
            if self._gradcam_model is None:
                # The last 4-D activation is the finest map that still "sees" whole-face parts.
                last = next(l for l in reversed(self.model.layers)
                            if len(getattr(l.output, "shape", ())) == 4)
                self._gradcam_model = keras.Model(self.model.inputs,
                                                  [last.output, self.model.output])
            x = tf.constant(np.asarray(crop, np.float32)[None, ..., None])
            with tf.GradientTape() as tape:
                fmap, probs = self._gradcam_model(x, training=False)
                idx = int(np.argmax(probs[0])) if class_index is None else class_index
                target = probs[:, idx]
            grads = tape.gradient(target, fmap)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))[0].numpy()
        cam = np.asarray(Image.fromarray(cam.astype(np.float32), mode="F").resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
        return cam / cam.max() if cam.max() > 0 else cam
