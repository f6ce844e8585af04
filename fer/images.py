"""Decoding any picture a user may hand over into one upright RGB working image, with size
guards and messages in the user's terms.

Big photos are decoded small: a JPEG is asked for its reduced DCT scale (Pillow's ``draft``), so
a 48 MP phone photo is decoded at 1/2-1/8 of its size instead of costing ~150 MB of pixels, and
every image is then brought down to :data:`MAX_SIDE`. The original size is kept, so faces can be
reported in the user's own pixels.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # a 50 MP photo is plenty; larger is refused before decoding
MAX_SIDE = 1920  # the working copy for detection and display is at most this
MIN_SIDE = 24
FORMATS = "JPEG, PNG, WebP, BMP, GIF, TIFF"
# EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSED = {5, 6, 7, 8}


class ImageError(ValueError):
    """An input that cannot be used as an image; the message says why and what to try."""


class Decoded(NamedTuple):
    """A decoded picture: the working copy and what the user's file really was."""

    image: Image.Image  # upright RGB, longest side at most the requested maximum
    original_size: tuple[int, int]  # (width, height) of the upright original
    notes: tuple[str, ...] = ()  # what was done that the user should know (frame used, ...)

    @property
    def scale(self) -> float:
        """Working-copy pixels per original pixel (1.0 when not reduced)."""
        return self.image.width / self.original_size[0]


def _describe(source: Any) -> str:
    # Never the repr of a buffer ("<_io.BytesIO object at 0x...>"): a path, or "the upload".
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source)) or os.fspath(source)
    name = getattr(source, "name", None)
    return os.path.basename(name) if isinstance(name, str) else "the upload"


def _clean(message: str) -> str:
    # Pillow's messages can carry object reprs and paths; keep only the human part.
    message = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the file", message)
    message = re.sub(r"(/[^\s'\"]+)+", "the file", message)
    return message.strip().rstrip(".")


def _from_array(arr: np.ndarray) -> tuple[Image.Image, list[str]]:
    notes: list[str] = []
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape "
                         f"{tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"the image array is empty: {arr.shape[1]} pixels wide and "
                         f"{arr.shape[0]} high")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise ImageError(f"an image array must hold numbers; got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        if not finite.any():
            raise ImageError("the image array holds no numbers (every pixel is NaN or infinite)")
        if not finite.all():
            notes.append(f"{(~finite).sum()} pixels that were NaN or infinite were drawn black")
            arr = np.where(finite, arr, 0.0)
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 1.0:
            arr = arr * 255.0  # floats in 0..1
        elif lo < 0 or hi > 255:
            arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0  # any other range
        arr = np.clip(arr, 0, 255).round().astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr)), notes


def _open(source: Any, name: str) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(f"{name} is empty (0 bytes): nothing to read")
        data: Any = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise ImageError(f"no such file: {os.fspath(source)}")
        if os.path.isdir(source):
            raise ImageError(f"{name} is a folder, not an image")
        if os.path.getsize(source) == 0:
            raise ImageError(f"{name} is empty (0 bytes): nothing to read")
        data = source
    else:
        data = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} has too many pixels to decode safely (the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} MP); resize it and try again") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image, or not in a format this app reads "
                         f"({FORMATS})") from None
    except (OSError, ValueError, SyntaxError, TypeError) as exc:
        raise ImageError(f"{name} could not be read as an image: {_clean(str(exc))}") from None


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block raises anything; it is optional
        return 1


def decode_image(source: Any, max_side: int | None = MAX_SIDE) -> Decoded:
    """Opens any picture as an upright RGB working image no bigger than ``max_side``.

    Args:
        source: a path, bytes, a file-like object, a ``PIL.Image`` or a numpy array
            (``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; integer, bool or float;
            floats in 0..1 are taken as such, other ranges are stretched to 0..255).
        max_side: longest side of the working copy (None: full size).

    Returns:
        A :class:`Decoded`: EXIF orientation applied, transparency flattened on white, the first
        frame of an animation or multi-page file (said in ``notes``), and the original size.

    Raises:
        ImageError: empty, not an image, unreadable, or more than :data:`MAX_PIXELS` pixels.
    """
    notes: list[str] = []
    name = _describe(source)
    if isinstance(source, np.ndarray):
        im, notes = _from_array(source)
    elif isinstance(source, Image.Image):
        im = source
    else:
        im = _open(source, name)
    if im.width == 0 or im.height == 0:
        raise ImageError(f"{name} has no pixels ({im.width}x{im.height})")
    if im.width * im.height > MAX_PIXELS:
        raise ImageError(f"{name} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} MP);"
                         f" the limit is {MAX_PIXELS / 1e6:.0f} MP. Resize it and try again.")
    frames = getattr(im, "n_frames", 1) or 1
    if frames > 1:
        im.seek(0)
        kind = "animation" if im.format in ("GIF", "PNG", "WEBP") else "multi-page file"
        notes.append(f"{name} is an {kind} of {frames} frames; the first frame is used")
    orientation = _orientation(im)
    w, h = im.size
    original = (h, w) if orientation in _TRANSPOSED else (w, h)
    if max_side and im.format == "JPEG" and max(w, h) > max_side:
        # Decode at the smallest DCT scale (1/2, 1/4, 1/8) still at least max_side long.
        scale = max_side / max(w, h)
        im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
    try:
        im.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{name} could not be decoded; the file looks damaged or cut short "
                         f"({_clean(str(exc))})") from None
    if orientation != 1:
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # noqa: BLE001 - a corrupt EXIF block must not lose the photo
            notes.append(f"{name}'s EXIF orientation could not be read; it is shown as stored")
            original = im.size
    im = _to_rgb(im)
    if max_side and max(im.size) > max_side:
        im = im.copy() if im is source else im
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return Decoded(im, original, tuple(notes))


def load_image(source: Any) -> Image.Image:
    """Opens any picture as an upright RGB image at full size (see :func:`decode_image`).

    Raises:
        ImageError: not an image, an unreadable file, or more than :data:`MAX_PIXELS` pixels.
    """
    return decode_image(source, max_side=None).image


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        arr = np.where(np.isfinite(arr), arr, 0.0)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        im = Image.fromarray(arr.astype(np.uint8))
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")
