"""Emotions over time in a video file: decode, analyse every N-th frame, track, annotate.

:func:`analyse_video` decodes any file PyAV reads (mp4, mov, webm, avi, mkv...), runs a
:class:`fer.predict.Predictor` on every ``every``-th frame, follows each face with
:class:`fer.track.IouTracker`, and optionally writes an annotated copy (same frame count and
rate, audio dropped, H.264 when PyAV's FFmpeg has an encoder for it, so browsers play it).
Rows (one per analysed face per frame) go to CSV with :func:`write_csv`;
:func:`summarise` turns them into one summary per person.

The only thing used from the predictor is ``predict(rgb_array)`` returning a result with
``faces`` (each with ``box`` and ``probs``) and ``scale``: see :func:`_faces_of`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer.data import CLASSES
from fer.render import EMOTION_COLORS
from fer.track import Box, IouTracker, TrackedFace

COLUMNS = ["time", "frame", "track", "x", "y", "w", "h", "label", *CLASSES]
ANALYSED_PER_SECOND = 5  # the default --every analyses at least this many frames a second
MAX_SIDE = 1280  # frames are downscaled to this (720p) for analysis and for the output
MAX_INPUT_PIXELS = 7680 * 4320  # 8K; beyond that a file is refused rather than decoded
# Browser-playable first (st.video needs it): H.264 from either encoder, then MPEG-4 part 2.
ENCODERS = ("libx264", "libopenh264", "h264", "mpeg4")


class VideoError(ValueError):
    """A file that cannot be analysed as a video; the message says why and what to try."""


class VideoInfo(NamedTuple):
    """What a video's header says."""

    width: int
    height: int
    fps: float
    frames: int  # declared or estimated from the duration; 0 when unknown
    duration: float  # seconds; 0.0 when unknown
    codec: str


@dataclass
class VideoResult:
    """The outcome of :func:`analyse_video`.

    ``stopped`` is None when the whole clip (or the first ``max_seconds``) was read; otherwise it
    says, in the user's terms, where and why reading stopped. Everything before that point is in
    ``rows`` and in the output video.
    """

    info: VideoInfo
    every: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0  # frames decoded (and written to the output video)
    analysed: int = 0  # frames run through the predictor
    size: tuple[int, int] = (0, 0)  # analysed and output frame size (width, height)
    output: Path | None = None
    encoder: str | None = None
    stopped: str | None = None
    limited: str | None = None  # set when max_seconds cut the clip short

    @property
    def seconds(self) -> float:
        """Duration read, in seconds."""
        return self.frames / self.info.fps if self.info.fps else 0.0

    @property
    def tracks(self) -> list[int]:
        return sorted({r["track"] for r in self.rows})


class TrackSummary(NamedTuple):
    """One person (track) over the clip."""

    track: int
    first: float  # seconds
    last: float
    analysed: int  # analysed frames the face was in
    shares: dict[str, float]  # emotion -> share of those frames it was the label
    dominant: str


def _open(source: Any):
    import av

    name = str(source) if isinstance(source, (str, os.PathLike)) else "the upload"
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        container = av.open(source, metadata_errors="ignore")
    except FileNotFoundError:
        raise VideoError(f"no such file: {name}") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{Path(name).name} is not a video this app can read (mp4, mov, webm, "
                         f"avi, mkv...): {getattr(exc, 'strerror', None) or exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{Path(name).name} has no video stream (is it an audio file?)")
    return container


def _info(container) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 25.0
    if not 1.0 <= fps <= 240.0:  # broken headers: fall back to a common rate
        fps = 25.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    frames = stream.frames or (round(duration * fps) if duration else 0)
    return VideoInfo(ctx.width, ctx.height, fps, int(frames), duration, ctx.name or "?")


def probe(source: Any) -> VideoInfo:
    """Reads a video's header.

    Args:
        source: a path, bytes or a binary file object.

    Raises:
        VideoError: not a video PyAV can open, or no video stream.
    """
    container = _open(source)
    try:
        return _info(container)
    finally:
        container.close()


def default_every(fps: float) -> int:
    """The largest step that still analyses :data:`ANALYSED_PER_SECOND` frames a second."""
    return max(1, int(fps // ANALYSED_PER_SECOND))


def output_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``(width, height)`` scaled down to ``max_side`` and rounded to even numbers (H.264's
    4:2:0 colour needs even sides)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@lru_cache(maxsize=1)
def pick_encoder() -> str:
    """The first of :data:`ENCODERS` this PyAV build can encode with."""
    import av

    for name in ENCODERS:
        try:
            av.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        return name
    raise VideoError("this PyAV build has no H.264 or MPEG-4 encoder; reinstall `av` from PyPI")


class VideoWriter:
    """An mp4 writer for RGB frames at a fixed rate (used for the output and for sample clips).

    Args:
        path: the ``.mp4`` to write.
        fps: frames per second (fractions such as 29.97 are kept exact to 1/1000).
        size: ``(width, height)``, even numbers.
        crf: quality for x264 (lower is better, 23 is its default).
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int],
                 crf: int = 23):
        import av

        self.encoder = pick_encoder()
        # "faststart" puts the index first, so a browser starts playing before the download ends.
        self._container = av.open(str(path), "w", format="mp4",
                                  options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        options = {}
        if self.encoder == "libx264":
            # superfast: ~1.3x the speed of veryfast for ~2x the file size (at 720p on 2 busy
            # cores, 32 vs 43 ms a frame), which is what keeps a 720p clip faster than real time.
            options = {"preset": "superfast", "crf": str(crf)}
        self._stream = self._container.add_stream(self.encoder, rate=rate, options=options)
        self._time_base = Fraction(1) / rate
        self._stream.codec_context.time_base = self._time_base
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        if self.encoder == "mpeg4":
            self._stream.bit_rate = 2_000_000
        self._stream.codec_context.thread_type = "AUTO"
        self._n = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._n  # in 1/fps units: the stream's time base is set from its rate
        frame.time_base = self._time_base
        self._n += 1
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _hex(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], np.uint8)


@lru_cache(maxsize=256)
def _label_patch(text: str, label: str, size: int, pad: int) -> np.ndarray:
    # Rendered once per distinct label text: drawing with PIL on the whole 720p frame would
    # cost two full-frame copies per frame (~15 ms), a small patch costs ~0.1 ms.
    font = _font(size)
    l, t, r, b = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    im = Image.new("RGB", (r - l + 2 * pad, b - t + 2 * pad), EMOTION_COLORS[label])
    dark = label in ("happy", "surprise")  # light fills need dark text
    ImageDraw.Draw(im).text((pad - l, pad - t), text, fill="black" if dark else "white",
                            font=font)
    return np.asarray(im)


def draw_tracks(rgb: np.ndarray, faces: list[TrackedFace]) -> np.ndarray:
    """The frame with each tracked face boxed in its emotion's colour and labelled
    ``#id label 87%``; the label stays inside the frame even at its edges.

    Draws into ``rgb`` in place (frames come fresh from the decoder) and returns it.
    """
    if not faces:
        return rgb
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    height, width = rgb.shape[:2]
    base = max(width, height)
    line = max(2, base // 320)
    for f in faces:
        label = CLASSES[int(np.argmax(f.probs))]
        color = _hex(EMOTION_COLORS[label])
        x, y, w, h = f.box
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + w), min(height, y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        rgb[y0 : min(y1, y0 + line), x0:x1] = color
        rgb[max(y0, y1 - line) : y1, x0:x1] = color
        rgb[y0:y1, x0 : min(x1, x0 + line)] = color
        rgb[y0:y1, max(x0, x1 - line) : x1] = color
        size = max(12, min(base // 45, max(12, w // 5)))
        patch = _label_patch(f"#{f.track} {label} {float(np.max(f.probs)):.0%}", label, size,
                             max(2, line))
        ph, pw = patch.shape[:2]
        ph, pw = min(ph, height), min(pw, width)
        ty = y0 - ph if y0 - ph >= 0 else (y1 if y1 + ph <= height else y0)
        tx = min(x0, width - pw)
        rgb[ty : ty + ph, tx : tx + pw] = patch[:ph, :pw]
    return rgb


def _faces_of(predictor: Any, rgb: np.ndarray) -> tuple[list[Box], list[np.ndarray]]:
    """The narrow adapter to the predictor: boxes (in ``rgb``'s pixels) and probabilities."""
    # One detector pass a frame, as the live webcam does: tiles (for photos over 960 px) and
    # the padded retry would triple the detector's cost on 720p frames, and a face missed in
    # one frame keeps its track. Boxes come back in ``rgb``'s own pixels.
    result = predictor.predict(rgb, fast=True)
    boxes = [tuple(int(v) for v in f.box) for f in result.faces]
    return boxes, [np.asarray(f.probs, np.float64) for f in result.faces]


def analyse_video(
    source: Any,
    predictor: Any,
    output: str | os.PathLike | None = None,
    every: int | None = None,
    max_seconds: float | None = None,
    max_side: int = MAX_SIDE,
    progress: Callable[[int, int], None] | None = None,
    tracker: IouTracker | None = None,
) -> VideoResult:
    """Analyses a video's faces over time.

    Args:
        source: a path, bytes or binary file object holding a video.
        predictor: a :class:`fer.predict.Predictor` (anything with the same ``predict``).
        output: where to write the annotated ``.mp4`` (None: no video is written).
        every: analyse every N-th frame (default: :func:`default_every` of the clip's rate).
        max_seconds: read at most this much of the clip.
        max_side: frames larger than this (e.g. 4K) are downscaled for analysis and output.
        progress: called as ``progress(frames_done, frames_expected)`` after each frame.
        tracker: the tracker to use (default: :class:`IouTracker` with its defaults).

    Returns:
        A :class:`VideoResult`. A stream that breaks mid-way is not an error: the result holds
        what came before, and ``stopped`` says where it ended.

    Raises:
        VideoError: not a readable video, no video stream, or a frame larger than 8K.
    """
    import av

    container = _open(source)
    try:
        info = _info(container)
        if info.width * info.height > MAX_INPUT_PIXELS:
            raise VideoError(f"the video is {info.width}x{info.height}; the limit is 8K "
                             f"(7680x4320). Downscale it first.")
        if info.width < 2 or info.height < 2:
            raise VideoError("the video stream has no picture size; the file may be damaged")
        every = every or default_every(info.fps)
        if every < 1:
            raise VideoError("every must be 1 or more")
        size = output_size(info.width, info.height, max_side)
        scale_back = info.width / size[0]
        limit = math.ceil(max_seconds * info.fps) if max_seconds else None
        expected = min(info.frames or 0, limit or info.frames or 0) or (limit or 0)
        result = VideoResult(info, every, size=size)
        tracker = tracker or IouTracker()
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-threaded decoding: ~2x on 2 cores
        writer = VideoWriter(output, info.fps, size) if output else None
        result.encoder = writer.encoder if writer else None
        start = None
        try:
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except (av.FFmpegError, OSError) as exc:
                    result.stopped = (
                        f"the video is damaged after {result.seconds:.1f} s (frame "
                        f"{result.frames}): {getattr(exc, 'strerror', None) or exc}. "
                        f"The analysis covers the part before that.")
                    break
                if limit is not None and result.frames >= limit:
                    result.limited = (f"only the first {max_seconds:g} s of the "
                                      f"{info.duration:.0f} s clip were analysed")
                    break
                i = result.frames
                if frame.time is not None and start is None:
                    start = frame.time
                t = frame.time - start if frame.time is not None and start is not None \
                    else i / info.fps
                analyse = i % every == 0
                # Without an output video, frames in between are decoded but never converted.
                rgb = frame.to_ndarray(width=size[0], height=size[1], format="rgb24") \
                    if analyse or writer else None
                if analyse:
                    boxes, probs = _faces_of(predictor, rgb)
                    result.analysed += 1
                    for face in tracker.update(boxes, probs):
                        x, y, w, h = (round(v * scale_back) for v in face.box)
                        row = {"time": round(t, 3), "frame": i, "track": face.track,
                               "x": x, "y": y, "w": w, "h": h,
                               "label": CLASSES[int(np.argmax(face.probs))]}
                        row |= {c: round(float(p), 4) for c, p in zip(CLASSES, face.probs)}
                        result.rows.append(row)
                if writer:
                    writer.write(draw_tracks(rgb, tracker.active))
                result.frames += 1
                if progress:
                    progress(result.frames, max(expected, result.frames))
        finally:
            if writer:
                writer.close()
                result.output = Path(output)
        if (result.stopped is None and result.limited is None and info.frames
                and result.frames < 0.9 * info.frames):
            result.stopped = (f"the file ends at {result.seconds:.1f} s, but its header says "
                              f"{info.duration:.1f} s: it looks truncated. The analysis covers "
                              f"the part that is there.")
        if result.frames == 0:
            raise VideoError("no frame could be decoded: the file is empty or damaged")
        return result
    finally:
        container.close()


def write_csv(rows: list[dict[str, Any]], path: str | os.PathLike | None = None) -> str:
    """Writes rows as CSV with the :data:`COLUMNS` header; returns the CSV text as well."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buf.getvalue()
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def summarise(rows: list[dict[str, Any]], min_frames: int = 1) -> list[TrackSummary]:
    """One summary per track with at least ``min_frames`` analysed frames, most seen first.

    A track's share of an emotion is the fraction of its analysed frames whose (smoothed) label
    was that emotion; the dominant emotion is the one with the largest share.
    """
    by_track: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_track.setdefault(int(r["track"]), []).append(r)
    out = []
    for track, rs in by_track.items():
        if len(rs) < min_frames:
            continue
        counts = {c: 0 for c in CLASSES}
        for r in rs:
            counts[r["label"]] += 1
        shares = {c: n / len(rs) for c, n in counts.items()}
        dominant = max(CLASSES, key=lambda c: (shares[c], -CLASSES.index(c)))
        out.append(TrackSummary(track, float(rs[0]["time"]), float(rs[-1]["time"]), len(rs),
                                shares, dominant))
    return sorted(out, key=lambda s: (-s.analysed, s.track))


def track_series(rows: list[dict[str, Any]], track: int) -> tuple[np.ndarray, np.ndarray]:
    """``(times, probs)`` of one track: ``(n,)`` seconds and ``(n, 7)`` smoothed probabilities."""
    rs = [r for r in rows if int(r["track"]) == track]
    times = np.array([float(r["time"]) for r in rs])
    probs = np.array([[float(r[c]) for c in CLASSES] for r in rs]).reshape(len(rs), len(CLASSES))
    return times, probs


# --- the app's Video page -------------------------------------------------------------------

PAGE_MAX_MB = 50  # uploads above this are refused before decoding
PAGE_MAX_SECONDS = 60  # longer clips: only the first minute is analysed (keeps a rerun bounded)
PAGE_MAX_SIDE = 960  # the page's output size; a smaller video encodes ~1.8x faster than 720p


@dataclass
class ClipAnalysis:
    """What the Video page shows: the result, the annotated video and CSV as bytes, or an error
    in the user's terms (``result`` is None then)."""

    name: str
    result: VideoResult | None = None
    video: bytes | None = None
    csv: str = ""
    error: str | None = None

    @property
    def notes(self) -> list[str]:
        """Warnings to show beside the result (clip shortened, stream damaged, no face)."""
        if self.result is None:
            return []
        notes = [n[0].upper() + n[1:] for n in (self.result.limited, self.result.stopped) if n]
        if not self.result.rows:
            notes.append(f"No face was found in the {self.result.analysed} analysed frames: "
                         "try a clip where faces are larger, frontal and well lit.")
        return notes


def analyse_clip(data: bytes, name: str, predictor: Any,
                 progress: Callable[[int, int], None] | None = None,
                 max_mb: float = PAGE_MAX_MB, max_seconds: float = PAGE_MAX_SECONDS,
                 max_side: int = PAGE_MAX_SIDE) -> ClipAnalysis:
    """Analyses an uploaded clip within the page's limits; never raises for bad input.

    Args:
        data: the file's bytes.
        name: its file name, for messages and downloads.
        predictor: as for :func:`analyse_video`.
        progress: as for :func:`analyse_video`.
        max_mb: larger uploads are refused.
        max_seconds: only this much of a longer clip is analysed (the notes say so).
        max_side: frames are downscaled to this.
    """
    import tempfile

    if len(data) > max_mb * 1e6:
        return ClipAnalysis(name, error=f"{name} is {len(data) / 1e6:.0f} MB; the limit here is "
                            f"{max_mb:g} MB. Trim or compress it, or use `python -m fer video` "
                            "on your own machine, which has no limit.")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "annotated.mp4"
        try:
            result = analyse_video(data, predictor, output=out, max_seconds=max_seconds,
                                   max_side=max_side, progress=progress)
        except VideoError as exc:
            return ClipAnalysis(name, error=str(exc).replace("the upload", name))
        video = out.read_bytes()
    return ClipAnalysis(name, result, video, write_csv(result.rows))
