"""Live-video frame logic, independent of Streamlit so it can be tested as a plain function.

The webrtc callback hands each frame to :meth:`LiveProcessor.process`, which detects and
classifies faces, smooths each face's probabilities over time and draws the result. What the
page shows beside the video leaves through a one-slot queue (the newest result wins).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from fer.data import CLASSES
from fer.detect import FaceDetector
from fer.predict import Face, FaceSearch, Predictor
from fer.render import draw_faces


@lru_cache(maxsize=2)
def shared_detector(model: str) -> FaceDetector:
    """One detector per variant for every live session (it is thread-safe)."""
    return FaceDetector(model)


@dataclass
class LiveResult:
    """What one processed frame produced: smoothed faces and the processing rate."""

    faces: list[Face]
    fps: float
    latency_ms: float


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / max(aw * ah + bw * bh - inter, 1)


class LiveProcessor:
    """Annotates video frames; smooths each face's probabilities with an exponential average.

    Args:
        predictor: the shared :class:`Predictor`.
        smoothing: 0 shows each frame's raw prediction; 0.9 averages over ~10 frames.
        max_side: frames are downscaled to this before detection (webcam frames are small).
        detector: BlazeFace variant for frames: ``short`` (default), made for faces within ~2 m
            of the camera, which is what a webcam sees, and faster than ``full``.
    """

    def __init__(self, predictor: Predictor, smoothing: float = 0.6, max_side: int = 640,
                 detector: str = "short"):
        self.predictor = predictor
        self.detector = shared_detector(detector)
        self.smoothing = smoothing
        self.max_side = max_side
        self.results: queue.Queue[LiveResult] = queue.Queue(maxsize=1)
        self._tracks: list[tuple[tuple[int, int, int, int], np.ndarray]] = []
        self._times: deque[float] = deque(maxlen=30)
        self._lock = threading.Lock()

    def _smooth(self, faces: list[Face]) -> list[Face]:
        alpha = float(np.clip(self.smoothing, 0.0, 0.99))
        out, tracks = [], []
        for face in faces:
            match = max(self._tracks, key=lambda t: _iou(t[0], face.box), default=None)
            probs = face.probs
            if match is not None and _iou(match[0], face.box) > 0.3:
                probs = alpha * match[1] + (1 - alpha) * face.probs
            tracks.append((face.box, probs))
            out.append(face._replace(probs=probs, label=CLASSES[int(np.argmax(probs))]))
        self._tracks = tracks
        return out

    def process(self, rgb: np.ndarray) -> tuple[np.ndarray, LiveResult]:
        """Annotates one RGB frame ``(H, W, 3)`` uint8; returns the frame and its result."""
        t0 = time.perf_counter()
        image = Image.fromarray(rgb)
        scale = 1.0
        if max(image.size) > self.max_side:
            scale = self.max_side / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)))
        # One detector pass per frame: no tiles, no padded retry (the next frame comes soon).
        found = self.detector.detect(image)
        search = FaceSearch.of(found)
        result = self.predictor.classify_search(image, search)
        with self._lock:
            faces = self._smooth(result.faces)
            now = time.perf_counter()
            self._times.append(now)
            span = self._times[-1] - self._times[0]
            fps = (len(self._times) - 1) / span if span > 0 else 0.0
        drawn = draw_faces(image, faces, copy=False)  # image is this call's own
        if scale != 1.0:
            drawn = drawn.resize((rgb.shape[1], rgb.shape[0]))
            faces = [f._replace(box=tuple(round(v / scale) for v in f.box)) for f in faces]
        live = LiveResult(faces, fps, (time.perf_counter() - t0) * 1000)
        try:  # keep only the newest result for the page
            self.results.get_nowait()
        except queue.Empty:
            pass
        self.results.put_nowait(live)
        return np.asarray(drawn), live
