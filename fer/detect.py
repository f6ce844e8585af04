"""Face detection with MediaPipe's BlazeFace models, run by the TFLite interpreter TensorFlow ships.

Why this detector: BlazeFace finds frontal and tilted faces in ~2-5 ms on 2 CPU cores (see
``benchmarks/detect_latency.py``), where OpenCV's Haar cascade takes ~45 ms and misses more.
The two ``.tflite`` files (Apache-2.0, taken unchanged from the ``mediapipe`` 0.10.21 wheel) are
committed under ``fer/assets/``; running them needs only TensorFlow, already a dependency, whereas
the ``mediapipe`` package would add ~480 MB (a GUI OpenCV build that needs libGL on Streamlit
Cloud, matplotlib, sounddevice) and 15 s of import time. What mediapipe's graph adds around the
model, SSD anchors, box decoding and weighted non-maximum suppression, is reproduced here with
its published parameters.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

ASSETS = Path(__file__).resolve().parent / "assets"


class Detection(NamedTuple):
    """One face: pixel box ``(x, y, w, h)`` in the input image and the detector's score."""

    box: tuple[int, int, int, int]
    score: float


@dataclass(frozen=True)
class _Spec:
    file: str
    size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]


# Parameters of mediapipe's face_detection_{short,full}_range graphs (SsdAnchorsCalculator).
MODELS = {
    # Faces within ~2 m of the camera (selfies, webcams): 128x128 input.
    "short": _Spec("face_detection_short_range.tflite", 128, (8, 16), (2, 6)),
    # Faces up to ~5 m (group photos, smaller faces): 192x192 input.
    "full": _Spec("face_detection_full_range_sparse.tflite", 192, (4,), (1,)),
}


def _anchors(spec: _Spec) -> np.ndarray:
    centers = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell):
        n = spec.size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centers).astype(np.float32)


def _interpreter(path: Path):
    try:  # LiteRT is TFLite's successor; use it when a user has it installed
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice, once per detector
        interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    return interp


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple]:
    # mediapipe's WEIGHTED overlap handling: overlapping candidates are averaged by score,
    # which steadies boxes from frame to frame better than plain NMS.
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    while len(scores):
        overlap = _iou(boxes[0], boxes) >= iou
        w = scores[overlap][:, None]
        out.append(((boxes[overlap] * w).sum(0) / w.sum(), float(scores[0])))
        boxes, scores = boxes[~overlap], scores[~overlap]
    return out


class FaceDetector:
    """BlazeFace detector; thread-safe (one interpreter, calls serialised by a lock).

    Args:
        model: ``full`` (default: faces near and far, several per photo) or ``short`` (faster,
            faces close to the camera).
        min_score: detections below this confidence are dropped.
        iou_threshold: overlap above which candidates merge into one face.
    """

    def __init__(self, model: str = "full", min_score: float = 0.5, iou_threshold: float = 0.3):
        if model not in MODELS:
            raise ValueError(f"unknown detector model {model!r}; choose one of {list(MODELS)}")
        self.spec = MODELS[model]
        self.min_score, self.iou_threshold = min_score, iou_threshold
        self._anchors = _anchors(self.spec)
        self._interp = _interpreter(ASSETS / self.spec.file)
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores_idx, self._boxes_idx = outputs[0]["index"], outputs[1]["index"]
        self._lock = threading.Lock()

    def detect(self, image: Image.Image | np.ndarray) -> list[Detection]:
        """Finds faces.

        Args:
            image: an RGB ``PIL.Image`` or ``(H, W, 3)`` uint8 array (grayscale is repeated).

        Returns:
            Detections sorted by box area, largest first, boxes clipped to the image.
        """
        rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        h, w = rgb.shape[:2]
        side, size = max(h, w), self.spec.size
        # Letterbox to a square so faces keep their shape, as mediapipe's FIT scaling does;
        # resizing before padding keeps the cost independent of the photo's size.
        scale = size / side
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        small = Image.fromarray(rgb[..., :3]).resize((rw, rh), Image.Resampling.BILINEAR)
        small = np.asarray(small)
        x = np.zeros((1, size, size, 3), np.float32)
        top, left = (size - rh) // 2, (size - rw) // 2
        x[0, top : top + rh, left : left + rw] = small.astype(np.float32) / 127.5 - 1.0
        with self._lock:
            self._interp.set_tensor(self._input, x)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._boxes_idx)[0]
            logits = self._interp.get_tensor(self._scores_idx)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        bw, bh = raw[:, 2] / size, raw[:, 3] / size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        faces = []
        for (x1, y1, x2, y2), score in _weighted_nms(boxes, scores, self.iou_threshold):
            x1, x2 = (x1 * size - left) / scale, (x2 * size - left) / scale
            y1, y2 = (y1 * size - top) / scale, (y2 * size - top) / scale
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w), x2), min(float(h), y2)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                box = (round(x1), round(y1), round(x2 - x1), round(y2 - y1))
                faces.append(Detection(box, score))
        return sorted(faces, key=lambda d: -d.box[2] * d.box[3])


def square_crop_box(
    box: tuple[int, int, int, int], margin: float, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The square region fed to the classifier: the detector box grown by ``margin`` per side.

    Args:
        box: ``(x, y, w, h)`` from the detector.
        margin: fraction of the box's longer side added on each side.
        image_size: ``(width, height)``; the square may extend past the image (padded later).

    Returns:
        ``(left, top, side, side)``.
    """
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    return (round(cx - side / 2), round(cy - side / 2), round(side), round(side))
