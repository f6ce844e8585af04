"""Synthetic video clips made from the public-domain astronaut photo: the bundled sample clip,
the clips the tests and benchmarks analyse, and the browser tests' fake camera.

``python -m fer.clip`` regenerates ``fer/assets/samples/astronaut.mp4``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fer.samples import ASTRONAUT, SAMPLES_DIR

SAMPLE_CLIP = SAMPLES_DIR / "astronaut.mp4"


def _head() -> Image.Image:
    # The astronaut's head and shoulders, the part BlazeFace sees as one face.
    return Image.open(ASTRONAUT).convert("RGB").crop((100, 0, 360, 300))


def _background(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    bg = np.stack([150 + 40 * xs / w, 160 + 30 * ys / h, 175 + 0 * xs], -1)
    return bg.astype(np.uint8)


def frames(seconds: float = 6.0, fps: float = 24.0, size: tuple[int, int] = (640, 360),
           faces: int = 1):
    """Yields RGB frames: ``faces`` copies of the astronaut's head gliding and zooming across a
    plain background (the first moves left to right, the second, mirrored, right to left).

    Args:
        seconds: clip length.
        fps: frame rate.
        size: ``(width, height)``.
        faces: 1 or 2.
    """
    head, bg = _head(), _background(size)
    w, h = size
    n = round(seconds * fps)
    for i in range(n):
        u = i / max(1, n - 1)
        canvas = Image.fromarray(bg)
        for k in range(faces):
            side = round(h * (0.6 + 0.1 * np.sin(2 * np.pi * u)) * (0.85 if k else 1.0))
            img = head.resize((round(side * 260 / 300), side), Image.Resampling.BILINEAR)
            if k:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            travel = w - img.width
            # Each face keeps to its own half, so neither hides the other.
            x = round(travel * (0.25 * u) if k == 0 else travel * (1.0 - 0.25 * u))
            y = round((h - img.height) * (0.5 + 0.3 * np.sin(2 * np.pi * (u + k / 2))))
            canvas.paste(img, (x, y))
        yield np.asarray(canvas)


def make_clip(path: str | os.PathLike, seconds: float = 6.0, fps: float = 24.0,
              size: tuple[int, int] = (640, 360), faces: int = 1, crf: int = 28) -> Path:
    """Writes :func:`frames` as an H.264 mp4 and returns its path."""
    from fer.video import VideoWriter

    with VideoWriter(path, fps, size, crf=crf) as writer:
        for frame in frames(seconds, fps, size, faces):
            writer.write(frame)
    return Path(path)


def write_y4m(path: str | os.PathLike, frames: int = 30, fps: int = 15) -> Path:
    """A fake camera for Chromium (``--use-file-for-fake-video-capture``): the astronaut's
    smiling face drifting sideways on a dark 640x480 frame, as uncompressed YUV4MPEG2 (Chromium
    loops it)."""
    base = Image.open(ASTRONAUT).convert("RGB").resize((480, 480))
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            canvas = Image.new("RGB", (640, 480), (40, 40, 40))
            canvas.paste(base, (40 + 2 * i, 0))
            y, cb, cr = canvas.convert("YCbCr").split()
            fh.write(b"FRAME\n" + np.asarray(y).tobytes()
                     + np.asarray(cb.resize((320, 240))).tobytes()
                     + np.asarray(cr.resize((320, 240))).tobytes())
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the bundled sample clip.")
    parser.add_argument("--output", default=str(SAMPLE_CLIP))
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    path = make_clip(args.output, args.seconds, faces=2)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
