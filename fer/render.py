"""Drawing results: numbered, labelled face boxes and Grad-CAM overlays, readable at any size."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fer.data import CLASSES

# One colour per emotion, used by every chart and box in the app (colour-blind-safe-ish, and
# legible on both light and dark themes).
EMOTION_COLORS: dict[str, str] = {
    "angry": "#D62728",
    "disgust": "#8C564B",
    "fear": "#9467BD",
    "happy": "#F2B701",
    "neutral": "#7F7F7F",
    "sad": "#1F77B4",
    "surprise": "#17BECF",
}
EMOJI = {"angry": "😠", "disgust": "🤢", "fear": "😨", "happy": "😄", "neutral": "😐",
         "sad": "😢", "surprise": "😮"}


_fonts = threading.local()  # FreeType faces are not to be shared between threads


def _font(size: int) -> ImageFont.ImageFont:
    # Cached per thread and size: a live video frame need not load the font again.
    cache = _fonts.__dict__.setdefault("by_size", {})
    if size not in cache:
        try:
            cache[size] = ImageFont.load_default(size=size)  # Pillow's bundled scalable font
        except TypeError:  # Pillow without FreeType
            cache[size] = ImageFont.load_default()
    return cache[size]


def draw_faces(image: Image.Image, faces, numbered: bool = True,
               scale: float = 1.0, copy: bool = True) -> Image.Image:
    """Returns a copy of ``image`` with each face boxed in its emotion's colour and labelled
    ``#n label 87%``; line width and text size follow the image size.

    Args:
        image: the picture to draw on.
        faces: :class:`fer.predict.Face` objects.
        numbered: prefix each label with the face's number.
        scale: ``image`` pixels per box pixel (boxes are in the original photo's pixels; the
            image may be a reduced or enlarged copy).
        copy: False draws on ``image`` itself when it is RGB (live video frames the caller
            owns: saves a frame copy).

    A label goes above its box, else below it, else inside its top edge, and is shifted left
    to stay inside the image: it is never cut off.
    """
    out = image if image.mode == "RGB" and not copy else image.convert("RGB")  # a new image
    draw = ImageDraw.Draw(out)
    base = max(out.size)
    width = max(2, base // 300)
    for i, face in enumerate(faces, 1):
        x, y, w, h = (round(v * scale) for v in face.box)
        color = EMOTION_COLORS[face.label]
        draw.rectangle([x, y, x + w, y + h], outline=color, width=width)
        text = f"{f'#{i} ' if numbered else ''}{face.label} {face.confidence:.0%}"
        font = _font(max(14, min(base // 40, w // 4)))
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        pad = max(2, width)
        tw, th = (r - l) + 2 * pad, (b - t) + 2 * pad
        if y - th >= 0:
            ty = y - th  # above the box
        elif y + h + th <= out.height:
            ty = y + h  # below it
        else:
            ty = min(max(0, y), out.height - th)  # inside its top edge
        tx = max(0, min(x, out.width - tw))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=color)
        draw.text((tx + pad - l, ty + pad - t), text, fill="black" if face.label in (
            "happy", "surprise") else "white", font=font)
    return out


MIN_DRAW_SIDE = 320  # smaller pictures are enlarged for drawing, so a label fits inside


def annotate(result) -> tuple[Image.Image, str | None]:
    """The annotated picture of a :class:`fer.predict.Result` and, when its size differs from
    the user's photo, a note saying so.

    Photos larger than the working copy are drawn on the working copy (reduced); small ones
    (a 48x48 crop) are enlarged by a whole factor with crisp pixels so the labels fit.
    """
    image, scale = result.image, result.scale
    ow, oh = result.original_size
    note = None
    if max(image.size) < MIN_DRAW_SIDE:
        factor = -(-MIN_DRAW_SIDE // max(image.size))
        image = image.resize((image.width * factor, image.height * factor),
                             Image.Resampling.NEAREST)
        scale = scale * factor
        note = f"enlarged {factor}x from {ow}x{oh} so the labels fit"
    elif result.reduced:
        note = f"reduced to {image.width}x{image.height} from the original {ow}x{oh}"
    return draw_faces(image, result.faces, scale=scale), note


def _jet(values: np.ndarray) -> np.ndarray:
    # Blue -> cyan -> yellow -> red, the usual heatmap reading: red is what mattered most.
    stops = np.array([0.0, 0.35, 0.65, 1.0])
    colors = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [220, 0, 0]], float)
    return np.stack([np.interp(values, stops, colors[:, c]) for c in range(3)], -1)


def gradcam_overlay(crop: np.ndarray, heatmap: np.ndarray, size: int = 192,
                    alpha: float = 0.45) -> Image.Image:
    """Blends a Grad-CAM heatmap over the (upscaled) grayscale face crop."""
    face = Image.fromarray(crop).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    heat = Image.fromarray(_jet(np.clip(heatmap, 0, 1)).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC)
    return Image.blend(face, heat, alpha)


def probabilities_table(faces) -> list[dict]:
    """One row per face (number, label, confidence, box, probabilities) for tables and CSV."""
    rows = []
    for i, f in enumerate(faces, 1):
        row = {"face": i, "label": f.label, "confidence": round(f.confidence, 4),
               "x": f.box[0], "y": f.box[1], "w": f.box[2], "h": f.box[3],
               "detector_score": round(f.score, 4)}
        row |= {c: round(float(p), 4) for c, p in zip(CLASSES, f.probs)}
        rows.append(row)
    return rows


def bars_html(probs) -> str:
    """The 7 probabilities as one small HTML block of coloured bars (cheap to redraw live)."""
    rows = []
    for name, p in zip(CLASSES, probs):
        rows.append(
            f'<div style="display:flex;align-items:center;gap:.5em;margin:.15em 0">'
            f'<span style="width:6.5em">{EMOJI[name]} {name}</span>'
            f'<span style="flex:1;background:rgba(128,128,128,.15);border-radius:3px">'
            f'<span style="display:block;width:{100 * float(p):.1f}%;height:1em;'
            f'background:{EMOTION_COLORS[name]};border-radius:3px"></span></span>'
            f'<span style="width:3em;text-align:right">{float(p):.0%}</span></div>')
    return "".join(rows)
