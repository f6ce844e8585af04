"""From any picture to faces with boxes and emotion probabilities.

:class:`Predictor` loads a model once and is safe to share between Streamlit sessions and the
webcam thread. ``predict(image)`` accepts a path, bytes, a PIL image or a numpy array. Serving
runs the model's ``.tflite`` through LiteRT, so answering a photo does not import TensorFlow;
TensorFlow is imported only for a ``.keras`` without a matching ``.tflite`` and, lazily, for
Grad-CAM heatmaps. Image decoding lives in :mod:`fer.images`, model files in
:mod:`fer.modelfile`, the TTA views in :mod:`fer.tta`.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from fer.data import CLASSES, IMAGE_SIZE
from fer.detect import FaceDetector, square_crop_box
from fer.images import MAX_PIXELS, MAX_SIDE, MIN_SIDE, ImageError, decode_image, load_image
from fer.modelfile import (
    DEFAULT_MODEL,
    MODELS_DIR,
    LoadedModel,
    ModelError,
    load_keras,
    load_model,
    read_model_meta,
    serving_path,
)
from fer.tta import tta_views

__all__ = [
    "DEFAULT_MARGIN", "DEFAULT_MODEL", "FACE_SIZED", "MAX_PIXELS", "MAX_SIDE", "MIN_SIDE",
    "MODELS_DIR", "Face", "FaceSearch", "ImageError", "LoadedModel", "ModelError", "Predictor",
    "Result", "crop_face", "load_image", "load_model", "read_model_meta", "serving_path",
]

# Measured by benchmarks/crop_margin.py: on FER2013 test faces BlazeFace's box spans a median
# 87.5% of the FER frame (IQR 80-95%), so growing it by 7% per side reproduces that framing.
DEFAULT_MARGIN = 0.07
# An image at most this long on each side, and not much longer than wide, in which no face is
# found even on a padded copy, is taken to be a face crop (FER-style crops, profile pictures).
FACE_SIZED = 256
WHOLE_IMAGE_NOTE = ("no face was detected, and the image is small and roughly square, so the "
                    "whole image was classified as one face")


class Face(NamedTuple):
    """One face found in an image."""

    box: tuple[int, int, int, int]  # x, y, w, h in the ORIGINAL image's pixels
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
    """All faces of one image, largest first; ``reason`` says why there are none.

    Boxes are in the original image's pixels; ``image`` is the working copy (at most
    :data:`fer.images.MAX_SIDE` long), ``scale`` its pixels per original pixel.
    """

    image: Image.Image
    faces: list[Face] = field(default_factory=list)
    reason: str | None = None
    scale: float = 1.0
    original_size: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.original_size is None:
            self.original_size = (round(self.image.width / self.scale),
                                  round(self.image.height / self.scale))

    @property
    def label(self) -> str | None:
        return self.faces[0].label if self.faces else None

    @property
    def reduced(self) -> bool:
        """Whether ``image`` is smaller than the original."""
        return self.image.size != tuple(self.original_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the image's size, its faces (original pixels), and any notes."""
        return {"width": int(self.original_size[0]), "height": int(self.original_size[1]),
                "faces": [f.to_dict() for f in self.faces], "label": self.label,
                "reason": self.reason, "notes": list(self.notes)}


class FaceSearch(NamedTuple):
    """Where the faces of one working image are (its pixels), before classification.

    Cheap to keep: the UI caches it per image so that a toggle change only re-classifies.
    """

    boxes: tuple[tuple[int, int, int, int], ...]
    scores: tuple[float, ...]
    notes: tuple[str, ...] = ()
    reason: str | None = None
    whole_image: bool = False  # the box is the image itself: crop it without a margin
    eyes: tuple = ()  # per box, the detector's eye centres (right, left) or None

    @classmethod
    def of(cls, found) -> FaceSearch:
        """From :class:`fer.detect.Detection` objects."""
        return cls(tuple(d.box for d in found), tuple(d.score for d in found),
                   eyes=tuple(d.eyes for d in found))


# Eye lines steeper than this are left alone: the keypoints of a face on its side are unreliable.
MAX_ROLL = 45.0
# The side, in pixels, at which a face is turned level (three times the classifier's input).
ROTATE_SIDE = 3 * IMAGE_SIZE


def eye_roll(eyes) -> float:
    """Degrees the eye line is tilted in the image (positive: the person's left eye, on the
    image's right, is lower), from the detector's ``(right_eye, left_eye)`` centres."""
    (rx, ry), (lx, ly) = eyes
    return math.degrees(math.atan2(ly - ry, lx - rx))


def _rotation_margin(side: float) -> int:
    """Pixels to add on each side of a square so that it still covers the square turned by
    any angle (its diagonal is side * sqrt(2))."""
    return math.ceil(side * (math.sqrt(2) - 1) / 2)


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], margin: float,
              eyes=None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The 48x48 classifier input for a detector box: a square grown by ``margin``, edge-padded
    where it leaves the image, resized with an antialiasing filter.

    Args:
        gray: the working image as a ``(H, W)`` uint8 array.
        box: ``(x, y, w, h)`` from the detector.
        margin: fraction of the box's longer side added on each side.
        eyes: the detector's ``(right_eye, left_eye)`` centres: the square is rotated about its
            centre so that the eye line is level, as in FER2013's faces (None: no rotation).
        origin: where ``gray``'s top-left pixel lies in the image that ``box`` and ``eyes``
            refer to, when ``gray`` is only a region of it (see :func:`gray_region`).
    """
    h, w = gray.shape
    left, top, side, _ = square_crop_box(box, margin, (w, h))
    left, top = left - origin[0], top - origin[1]
    angle = eye_roll(eyes) if eyes is not None else 0.0
    if abs(angle) > MAX_ROLL:
        angle = 0.0
    # Rotating needs the corners of a larger square: side * sqrt(2) covers any angle.
    grow = _rotation_margin(side) if angle else 0
    left, top, big = left - grow, top - grow, side + 2 * grow
    pad = max(0, -left, -top, left + big - w, top + big - h)
    if pad:
        gray = np.pad(gray, pad, mode="edge")
        left, top = left + pad, top + pad
    region = Image.fromarray(np.ascontiguousarray(gray[top : top + big, left : left + big]))
    if not angle:
        return np.asarray(region.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS))
    # Shrink a large face by a whole factor (box averaging, cheap) before rotating, so that the
    # rotation's cost stops growing with the face (benchmarks/inference.py, "crop_aligned_ms");
    # at least ROTATE_SIDE pixels across the face go through the rotation.
    k = max(1, int(side // ROTATE_SIDE))
    if k > 1:
        region = region.reduce(k)  # pixel i covers [i k, (i + 1) k): coordinates divide by k
    g, s = grow / k, side / k
    # PIL turns counter-clockwise on screen for a positive angle, which levels a line that
    # falls to the right (image y points down).
    return np.asarray(region.rotate(angle, Image.Resampling.BILINEAR).resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS, box=(g, g, g + s, g + s)))


def gray_region(image: Image.Image, boxes, margin: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The grayscale part of ``image`` that :func:`crop_face` reads for these boxes, and its
    origin. Converting only the faces' surroundings instead of the whole working image cut
    classifying the astronaut's face from 1.7 to 1.4 ms in a 640x480 frame and from 9.8 to
    3.0 ms in a 1920x1440 photo (measured side by side, 2026-12-07).

    The region covers each box's square grown for any rotation, clipped to the image; where a
    square leaves the image it also leaves the region there, so edge padding is unchanged.
    """
    x1 = y1 = math.inf
    x2 = y2 = -math.inf
    for box in boxes:
        left, top, side, _ = square_crop_box(box, margin, image.size)
        grow = _rotation_margin(side) + 1
        x1, y1 = min(x1, left - grow), min(y1, top - grow)
        x2, y2 = max(x2, left + side + grow), max(y2, top + side + grow)
    # Detector boxes lie inside the image, so the clipped region is never empty.
    x1, y1 = max(0, int(x1)), max(0, int(y1))
    x2, y2 = min(image.width, int(x2)), min(image.height, int(y2))
    return np.asarray(image.crop((x1, y1, x2, y2)).convert("L")), (x1, y1)


def _tta_of(meta: dict[str, Any], model: Any) -> tuple[str, int | None]:
    """The TTA mode a model was evaluated with (``flip`` when unsaid) and its crop side."""
    mode = ((meta.get("evaluation") or {}).get("tta") or {}).get("mode", "flip")
    crop = (meta.get("config") or {}).get("crop_size")
    if mode == "tencrop" and model.input_shape[1] is not None:
        mode = "flip"  # a fixed-size network (the seed) cannot take the smaller crops
    return (mode if mode in ("flip", "tencrop") else "flip"), crop


def _to_original(box, scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = (v / scale for v in box)
    x1, y1 = max(0, round(x)), max(0, round(y))
    x2, y2 = min(size[0], round(x + w)), min(size[1], round(y + h))
    return (x1, y1, max(1, x2 - x1), max(1, y2 - y1))


class Predictor:
    """Detects faces and classifies their expressions; one instance serves every thread.

    Args:
        model_path: a ``.keras`` (served through its ``.tflite`` when that was converted from
            it, see :func:`fer.modelfile.serving_path`) or a ``.tflite``, with metadata
            (default: the shipped model).
        detector: BlazeFace variant, ``full`` or ``short`` (see :mod:`fer.detect`).
        margin: crop margin around each detected face (fraction of the box side per side).
        min_score: detector confidence threshold.
        prefer_tflite: serve a ``.keras`` through its matching ``.tflite`` (False: run Keras,
            e.g. to compare the two).
        align: rotate each face so its eyes are level before classifying (measured on the
            validation split by ``benchmarks/alignment.py``).
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        detector: str = "full",
        margin: float = DEFAULT_MARGIN,
        min_score: float = 0.5,
        prefer_tflite: bool = True,
        align: bool = True,
    ):
        self.source_path = Path(model_path or DEFAULT_MODEL)
        self.loaded = load_model(serving_path(self.source_path) if prefer_tflite
                                 else self.source_path)
        self.model = self.loaded.model
        self.margin = margin
        self.align = align
        self.detector = FaceDetector(detector, min_score=min_score)
        self.tta_mode, self.tta_crop = _tta_of(self.loaded.meta, self.model)
        self._lock = threading.Lock()
        self._keras = self.model if self.loaded.format == "keras" else None
        self._infer = None if self._keras is None else self._keras_function(self._keras)
        self._gradcam_model = None

    @staticmethod
    def _keras_function(model):
        import tensorflow as tf

        # One traced graph for any batch size (and for TTA's smaller crops): ~1 ms per face
        # instead of ~25 ms eager.
        return tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                           input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])

    @property
    def meta(self) -> dict[str, Any]:
        return self.loaded.meta

    @property
    def runtime(self) -> str:
        """What runs the classifier: ``tflite`` or ``keras``."""
        return self.loaded.format

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
        if self._infer is None:
            probs = self.model(x)  # the TFLite classifier serialises its own calls
        else:
            with self._lock:
                probs = self._infer(x).numpy()
        return probs.reshape(len(views), len(crops), -1).mean(axis=0)

    def locate(self, image: Image.Image, detect: bool = True, fast: bool = False) -> FaceSearch:
        """Where the faces of a working image are (no classification).

        Args:
            image: an RGB working image (see :func:`fer.images.decode_image`).
            detect: False takes the central square of the whole image as the one face.
            fast: one detector pass only (live video): no tiles, no padded retry, no fallback.
        """
        w, h = image.size
        if min(w, h) < MIN_SIDE:
            return FaceSearch((), (), (), f"the image is only {w}x{h} pixels; at least "
                              f"{MIN_SIDE}x{MIN_SIDE} is needed")
        if not detect:
            side = min(w, h)
            return FaceSearch((((w - side) // 2, (h - side) // 2, side, side),), (1.0,),
                              whole_image=True)
        found = self.detector.search(image, tiles=not fast, pad_retry=not fast)
        if found:
            return FaceSearch.of(found)
        if not fast and max(w, h) <= FACE_SIZED and max(w, h) <= 1.6 * min(w, h):
            side = min(w, h)
            return FaceSearch((((w - side) // 2, (h - side) // 2, side, side),), (1.0,),
                              (WHOLE_IMAGE_NOTE,), whole_image=True)
        return FaceSearch((), (), (), "no face found: try a brighter, frontal photo where the "
                          "face is not too small, or say the photo is a face crop (the home "
                          "page's toggle, the CLI's --no-detect)")

    def classify_search(self, image: Image.Image, search: FaceSearch, tta: bool = False,
                        scale: float = 1.0, original_size: tuple[int, int] | None = None,
                        notes: tuple[str, ...] = ()) -> Result:
        """Classifies the faces a :meth:`locate` found in ``image`` (its working copy)."""
        original_size = original_size or image.size
        notes = tuple(notes) + search.notes
        if not search.boxes:
            return Result(image, [], search.reason, scale, original_size, notes)
        margin = 0.0 if search.whole_image else self.margin
        gray, origin = gray_region(image, search.boxes, margin)
        eyes = search.eyes if self.align and search.eyes else (None,) * len(search.boxes)
        crops = np.stack([crop_face(gray, b, margin, e, origin)
                          for b, e in zip(search.boxes, eyes)])
        probs = self.classify(crops, tta=tta)
        faces = [Face(_to_original(b, scale, original_size), float(s), p,
                      CLASSES[int(np.argmax(p))], c)
                 for b, s, p, c in zip(search.boxes, search.scores, probs, crops)]
        return Result(image, faces, None, scale, original_size, notes)

    def predict(self, image: Any, detect: bool = True, tta: bool = False,
                fast: bool = False) -> Result:
        """Finds the faces in an image and classifies each one.

        Args:
            image: anything :func:`fer.images.decode_image` accepts.
            detect: False treats the whole image as one face (for inputs already cropped).
            tta: average over the model's TTA views (slower, usually more accurate).
            fast: one detector pass, for live video (see :meth:`locate`).

        Returns:
            A :class:`Result` with boxes in the original image's pixels; with no usable face,
            ``faces`` is empty and ``reason`` says why.

        Raises:
            ImageError: the input is not a usable image.
        """
        decoded = decode_image(image)
        search = self.locate(decoded.image, detect=detect, fast=fast)
        return self.classify_search(decoded.image, search, tta, decoded.scale,
                                    decoded.original_size, decoded.notes)

    def _keras_model(self):
        if self._keras is None:
            keras_path = self.loaded.path.with_suffix(".keras")
            if not keras_path.exists():
                raise ModelError(f"heatmaps need the Keras model {keras_path.name} beside "
                                 f"{self.loaded.path.name}")
            self._keras = load_keras(keras_path)  # TensorFlow is imported here, on first use
        return self._keras

    def gradcam(self, crop: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """Grad-CAM heatmap (48x48, 0..1) of what drove the prediction for one face crop.

        The first call imports TensorFlow and loads the ``.keras`` model (a few seconds).

        Args:
            crop: a ``(48, 48)`` uint8 face.
            class_index: the class to explain (default: the predicted one).

        Raises:
            ModelError: a ``.tflite`` served without its ``.keras``.
        """
        with self._lock:
            model = self._keras_model()
        import keras
        import tensorflow as tf

        with self._lock:
            if self._gradcam_model is None:
                # The last 4-D activation is the finest map that still "sees" whole-face parts.
                last = next(l for l in reversed(model.layers)
                            if len(getattr(l.output, "shape", ())) == 4)
                self._gradcam_model = keras.Model(model.inputs, [last.output, model.output])
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
