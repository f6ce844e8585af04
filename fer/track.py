"""Following faces from frame to frame: IoU association with a short memory, and per-track
probability smoothing.

A video analyses only some frames and the detector misses a face now and then (a turned head,
motion blur). The tracker keeps a lost face's id for ``max_missed`` analysed frames, so a face
missed once comes back under the same number, and smooths each face's probabilities with an
exponential moving average, so one odd frame does not flip the label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h


class TrackedFace(NamedTuple):
    """One face in one analysed frame, as the tracker reports it."""

    track: int  # 1, 2, ... in order of first appearance
    box: Box
    probs: np.ndarray  # (7,) smoothed probabilities
    raw: np.ndarray  # (7,) this frame's probabilities


@dataclass
class _Track:
    id: int
    box: Box
    probs: np.ndarray
    missed: int = 0
    hits: int = 1


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either is empty)."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class IouTracker:
    """Greedy IoU tracker.

    Args:
        iou_threshold: the least overlap between a track's last box and a new box for the two to
            be the same face. Analysing every 6th frame of a 30 fps clip, a face that crosses the
            frame in 2 s still overlaps its previous box by ~0.5, so 0.2 leaves room.
        max_missed: how many analysed frames in a row a face may be missing before its id is
            retired (5 = one second at 5 analysed frames per second).
        smoothing: weight of the newest frame in the moving average (1 = no smoothing).
    """

    iou_threshold: float = 0.2
    max_missed: int = 5
    smoothing: float = 0.5
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    @property
    def active(self) -> list[TrackedFace]:
        """The faces seen in the latest analysed frame (for drawing the frames in between)."""
        return [TrackedFace(t.id, t.box, t.probs, t.probs) for t in self._tracks if t.missed == 0]

    def update(self, boxes: list[Box], probs: list[np.ndarray] | np.ndarray) -> list[TrackedFace]:
        """Associates one analysed frame's faces with the tracks.

        Args:
            boxes: the detected faces' boxes.
            probs: their probabilities, one ``(7,)`` row per box.

        Returns:
            One :class:`TrackedFace` per input box, in input order.
        """
        probs = [np.asarray(p, np.float64) for p in probs]
        # Highest-overlap pairs first; each track and each box is used at most once.
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self._tracks)
             for bi, b in enumerate(boxes)),
            reverse=True,
        )
        track_of: dict[int, _Track] = {}
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used or bi in track_of:
                continue
            used.add(ti)
            track_of[bi] = self._tracks[ti]
        for ti, t in enumerate(self._tracks):
            if ti not in used:
                t.missed += 1
        out = []
        for bi, (box, p) in enumerate(zip(boxes, probs)):
            t = track_of.get(bi)
            if t is None:
                t = _Track(self._next_id, tuple(box), p)
                self._next_id += 1
                self._tracks.append(t)
            else:
                t.box, t.missed, t.hits = tuple(box), 0, t.hits + 1
                t.probs = self.smoothing * p + (1 - self.smoothing) * t.probs
            out.append(TrackedFace(t.id, t.box, t.probs, p))
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return out
