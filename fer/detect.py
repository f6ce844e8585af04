"""Face detection with MediaPipe's BlazeFace models, run by LiteRT (:mod:`fer.litert`).

Why this detector: BlazeFace finds frontal and tilted faces in ~2-5 ms on 2 CPU cores (see
``benchmarks/detect_latency.py``), where OpenCV's Haar cascade takes ~45 ms and misses more.
The two ``.tflite`` files (Apache-2.0, taken unchanged from the ``mediapipe`` 0.10.21 wheel) are
committed under ``fer/assets/``; running them needs only LiteRT (or TensorFlow's interpreter),
whereas the ``mediapipe`` package would add ~480 MB (a GUI OpenCV build that needs libGL on
Streamlit Cloud, matplotlib, sounddevice) and 15 s of import time. What mediapipe's graph adds
around the model, SSD anchors, box decoding and weighted non-maximum suppression, is reproduced
here with its published parameters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

from fer.litert import make_interpreter

ASSETS = Path(__file__).resolve().parent / "assets"


Point = tuple[float, float]


class Detection(NamedTuple):
    """One face: pixel box ``(x, y, w, h)`` in the input image, the detector's score, and the
    centres of the eyes in the same pixels, the person's right eye first (the one on the
    image's left when they face the camera)."""

    box: tuple[int, int, int, int]
    score: float
    eyes: tuple[Point, Point] | None = None

    def moved(self, dx: float, dy: float, box: tuple[int, int, int, int]) -> Detection:
        """The same face with a new box, its eyes shifted by ``(dx, dy)``."""
        eyes = None if self.eyes is None else tuple((x + dx, y + dy) for x, y in self.eyes)
        return Detection(box, self.score, eyes)


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


# Tiling (group photos): 640 px tiles overlapping by a quarter, for images longer than 960 px.
# A tile becomes one 192 px detector input, so faces down to ~35 px of the working image are
# found; faces larger than the overlap are found by the whole-image pass.
TILE = 640
TILE_OVERLAP = 0.25
TILE_ABOVE = 960


def _anchors(spec: _Spec) -> np.ndarray:
    centers = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell):
        n = spec.size // stride
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centers).astype(np.float32)


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
    # which steadies boxes from frame to frame better than plain NMS. Each row is a box
    # (x1, y1, x2, y2) followed by any columns to average alike (the eyes).
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
        num_threads: CPU threads per call (default :data:`fer.litert.DEFAULT_THREADS`).
    """

    def __init__(self, model: str = "full", min_score: float = 0.5, iou_threshold: float = 0.3,
                 num_threads: int | None = None):
        if model not in MODELS:
            raise ValueError(f"unknown detector model {model!r}; choose one of {list(MODELS)}")
        self.spec = MODELS[model]
        self.min_score, self.iou_threshold = min_score, iou_threshold
        self._anchors = _anchors(self.spec)
        self._interp = make_interpreter(ASSETS / self.spec.file, num_threads)
        self._input = self._interp.get_input_details()[0]["index"]
        outputs = sorted(self._interp.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores_idx, self._boxes_idx = outputs[0]["index"], outputs[1]["index"]
        self._lock = threading.Lock()
        self._min_logit = float(np.log(min_score / (1 - min_score))) if 0 < min_score < 1 else (
            -np.inf if min_score <= 0 else np.inf)

    def detect(self, image: Image.Image | np.ndarray) -> list[Detection]:
        """Finds faces in one detector pass over the whole image.

        Args:
            image: an RGB ``PIL.Image`` or ``(H, W, 3)`` uint8 array (grayscale is repeated).

        Returns:
            Detections sorted by box area, largest first, boxes clipped to the image.
        """
        if isinstance(image, np.ndarray):
            arr = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
            image = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
        elif image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        side, size = max(h, w), self.spec.size
        # Letterbox to a square so faces keep their shape, as mediapipe's FIT scaling does;
        # resizing before padding keeps the cost independent of the photo's size. A box
        # reduce() by the whole factor first, then one bilinear pass for the rest: 0.4 ms
        # instead of 1.3 ms for a 640x480 frame to 128 px (reducing_gap=2 filtered the whole
        # frame with a wide kernel), and as many faces found (tests/test_predict.py).
        scale = size / side
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(image.resize((rw, rh), Image.Resampling.BILINEAR, reducing_gap=1.0))
        x = np.zeros((1, size, size, 3), np.float32)
        top, left = (size - rh) // 2, (size - rw) // 2
        x[0, top : top + rh, left : left + rw] = small * np.float32(1 / 127.5) - 1.0
        with self._lock:
            self._interp.set_tensor(self._input, x)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._boxes_idx)[0]
            logits = self._interp.get_tensor(self._scores_idx)[0, :, 0]
        keep = logits >= self._min_logit  # the sigmoid only for the few candidates kept
        if not keep.any():
            return []
        raw, anchors = raw[keep], self._anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80, 80)))
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        bw, bh = raw[:, 2] / size, raw[:, 3] / size
        # Keypoints 0 and 1 of BlazeFace's six are the right and left eye, as (x, y) offsets
        # from the anchor; they are averaged by the weighted NMS along with the box.
        eyes = raw[:, 4:8] / size + np.tile(anchors, 2)
        boxes = np.concatenate(
            [np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1), eyes], 1)
        faces = []
        for merged, score in _weighted_nms(boxes, scores, self.iou_threshold):
            x1, y1, x2, y2 = ((merged[:4] * size - (left, top, left, top)) / scale).tolist()
            ex1, ey1, ex2, ey2 = ((merged[4:8] * size - (left, top, left, top)) / scale).tolist()
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(w), x2), min(float(h), y2)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                box = (round(x1), round(y1), round(x2 - x1), round(y2 - y1))
                faces.append(Detection(box, score, ((ex1, ey1), (ex2, ey2))))
        return sorted(faces, key=lambda d: -d.box[2] * d.box[3])

    def detect_tiles(self, image: Image.Image, tile: int = TILE,
                     overlap: float = TILE_OVERLAP) -> list[Detection]:
        """Detections on overlapping square tiles, in the image's pixels, not yet merged.

        A face that touches a tile's inner edge is dropped: the overlap (larger than the faces
        tiling is for) shows it whole in a neighbouring tile.
        """
        w, h = image.size
        stride = max(1, round(tile * (1 - overlap)))
        found = []
        for top in _starts(h, tile, stride):
            for left in _starts(w, tile, stride):
                right, bottom = min(w, left + tile), min(h, top + tile)
                edge = max(2, round(0.01 * tile))
                for d in self.detect(image.crop((left, top, right, bottom))):
                    x, y, bw, bh = d.box
                    if ((left > 0 and x <= edge) or (top > 0 and y <= edge)
                            or (right < w and x + bw >= right - left - edge)
                            or (bottom < h and y + bh >= bottom - top - edge)):
                        continue
                    found.append(d.moved(left, top, (x + left, y + top, bw, bh)))
        return found

    def search(self, image: Image.Image, tiles: bool = True,
               pad_retry: bool = True) -> list[Detection]:
        """Every face: one pass over the whole image, plus overlapping tiles when the image is
        large enough for faces to be small in it, plus a padded copy when nothing was found.

        Args:
            image: an RGB image.
            tiles: detect on overlapping tiles too when the longest side exceeds
                :data:`TILE_ABOVE` (a whole photo is shrunk to one 128-192 px input, where a
                face smaller than ~1/12 of the photo vanishes); merged by non-maximum
                suppression.
            pad_retry: when nothing is found, retry on a copy padded by half its longest side
                with grey (BlazeFace misses faces that fill the frame; measured on tight crops,
                REFERENCE: 125 -> 209 of 212 found).

        Returns:
            Detections sorted by box area, largest first.
        """
        if image.mode != "RGB":
            image = image.convert("RGB")
        found = self.detect(image)
        if tiles and max(image.size) > TILE_ABOVE:
            whole = set(found)
            found = [d if d in whole else self._verify(image, d)
                     for d in _merge(found + self.detect_tiles(image))]
            found = [d for d in found if d is not None]
        if not found and pad_retry:
            w, h = image.size
            pad = max(w, h) // 2
            padded = ImageOps.expand(image, border=pad, fill=(128, 128, 128))
            for d in self.detect(padded):
                x, y, bw, bh = d.box
                x1, y1 = max(0, x - pad), max(0, y - pad)
                x2, y2 = min(w, x - pad + bw), min(h, y - pad + bh)
                if x2 - x1 >= 2 and y2 - y1 >= 2:
                    found.append(d.moved(-pad, -pad, (x1, y1, x2 - x1, y2 - y1)))
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])


    def _verify(self, image: Image.Image, d: Detection) -> Detection | None:
        """Re-detects a tile's face on a crop three times its size around it, or drops it.

        Magnified tiles also surface face-like texture (measured: a 0.62 "face" on the
        astronaut's suit); in a crop where a real face fills a third, BlazeFace confirms it
        (0.82 or more on 53 tiled faces) and the texture scores nothing.
        """
        x, y, w, h = d.box
        side = 3 * max(w, h)
        left, top = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
        crop = image.crop((left, top, left + side, top + side))  # outside: black, as letterbox
        best = None
        for c in self.detect(crop):
            cx, cy = c.box[0] + c.box[2] / 2, c.box[1] + c.box[3] / 2
            if abs(cx - side / 2) < side / 4 and abs(cy - side / 2) < side / 4 and (
                    best is None or c.score > best.score):
                best = c
        if best is None:
            return None
        bx, by, bw, bh = best.box
        x1, y1 = max(0, bx + left), max(0, by + top)
        x2, y2 = min(image.width, bx + left + bw), min(image.height, by + top + bh)
        return best.moved(left, top, (x1, y1, x2 - x1, y2 - y1)) if x2 - x1 >= 2 and \
            y2 - y1 >= 2 else None


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _merge(found: list[Detection], iou: float = 0.3, inside: float = 0.6) -> list[Detection]:
    """Non-maximum suppression across passes: the higher score wins over a box that overlaps
    it (IoU above ``iou``) or mostly lies inside it or around it (``inside`` of the smaller)."""
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: -d.score):
        x, y, w, h = d.box
        for k in kept:
            kx, ky, kw, kh = k.box
            iw = max(0, min(x + w, kx + kw) - max(x, kx))
            ih = max(0, min(y + h, ky + kh) - max(y, ky))
            inter = iw * ih
            if (inter / max(w * h + kw * kh - inter, 1) > iou
                    or inter / max(min(w * h, kw * kh), 1) > inside):
                break
        else:
            kept.append(d)
    return kept


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
