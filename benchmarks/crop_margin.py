"""Measures the crop margin that makes detector boxes framed like FER2013 faces.

FER2013 faces are tight square crops. We place test faces (upscaled 2x, edge-padded to give the
detector some context) in a larger canvas, run the same BlazeFace detector the app uses, and
compare its box with the known FER frame: margin = (frame / box - 1) / 2 per side.

    python benchmarks/crop_margin.py --data ../shared/data/fer2013.zip [--n 600]

Prints the figures and writes benchmarks/results/crop_margin.json.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fer.data import load_fer2013  # noqa: E402
from fer.detect import FaceDetector  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "crop_margin.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=600)
    args = ap.parse_args()
    test = load_fer2013(args.data, quiet=True)["test"]
    rng = np.random.default_rng(0)
    idx = rng.choice(len(test.labels), size=min(args.n, len(test.labels)), replace=False)
    det = FaceDetector("full")
    frame, pad = 96, 48
    ratios, offsets = [], []
    for i in idx:
        face = np.asarray(Image.fromarray(test.images[i]).resize((frame, frame), Image.BICUBIC))
        canvas = np.pad(face, pad, mode="edge")
        found = det.detect(Image.fromarray(canvas).convert("RGB"))
        if not found:
            continue
        x, y, w, h = found[0].box
        ratios.append(max(w, h) / frame)
        offsets.append(((x + w / 2 - pad) / frame - 0.5, (y + h / 2 - pad) / frame - 0.5))
    ratios = np.array(ratios)
    med = float(np.median(ratios))
    result = {
        "faces": int(len(idx)),
        "detected": int(len(ratios)),
        "box_over_frame_median": round(med, 3),
        "box_over_frame_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
        "center_offset_median": [round(float(v), 3) for v in np.median(offsets, axis=0)],
        "margin_per_side": round((1 / med - 1) / 2, 3),
    }
    print(json.dumps(result, indent=2))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
