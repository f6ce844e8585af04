"""Sample photos for the app: the public-domain NASA astronaut portrait (as shipped by
scikit-image) and a group picture composited from it, so the demo works with no upload."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image

SAMPLES_DIR = Path(__file__).resolve().parent / "assets" / "samples"
ASTRONAUT = SAMPLES_DIR / "astronaut.png"


def group_photo() -> Image.Image:
    """Four copies of the astronaut's head at different sizes: a multi-face test picture."""
    head = Image.open(ASTRONAUT).convert("RGB").crop((130, 20, 320, 240))
    canvas = Image.new("RGB", (1200, 500), (210, 205, 200))
    for (x, y), size in GROUP_PLACES:
        canvas.paste(head.resize((size, round(size * 220 / 190))), (x, y))
    return canvas


GROUP_PLACES = [((30, 120), 240), ((320, 150), 180), ((560, 180), 130), ((800, 60), 300)]


@lru_cache(maxsize=1)
def sample_images() -> dict[str, bytes]:
    """Display name -> encoded image bytes."""
    buf = io.BytesIO()
    group_photo().save(buf, format="JPEG", quality=90)
    return {
        "Astronaut (NASA, public domain)": ASTRONAUT.read_bytes(),
        "Group of four faces (composited from the astronaut photo)": buf.getvalue(),
    }
