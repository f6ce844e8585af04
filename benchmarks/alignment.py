"""Eye-line alignment: does levelling each face's eyes before the crop (``Predictor(align=...)``,
``fer.predict.crop_face(..., eyes)``) help the shipped model? Measured on the validation split
that training held out (the choice is made there) and reported on PublicTest.

Each face is rolled by 0 / 12 / 20 / 28 degrees (random sign, seeded; as the ``roll`` corruption
of benchmarks/robustness.py), then framed as the app frames a photo (upscaled to 144 px,
edge-padded by 75% of its side, found by the app's BlazeFace detector: the ``reframe`` of
robustness.py) and cropped with and without alignment. Faces the detector misses fall back to
the original crop in both columns. The served ``.tflite``, no TTA.

    python benchmarks/alignment.py --data ../shared/data/fer2013.zip [--n 0]

Prints the table and writes benchmarks/results/alignment.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import write_result  # noqa: E402
from robustness import Reframer, _roll  # noqa: E402

from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.predict import Predictor  # noqa: E402

ROLLS = (0.0, 12.0, 20.0, 28.0)
PAD_SHARE = 0.75


def measure(faces: np.ndarray, labels: np.ndarray, predictor: Predictor) -> dict:
    reframer = Reframer()
    rows = {}
    for degrees in ROLLS:
        rng = np.random.default_rng(int(degrees))
        rolled = _roll(faces.astype(np.float64), degrees, rng) if degrees else faces
        rolled = np.round(rolled).clip(0, 255).astype(np.uint8)
        row = {}
        for align in (False, True):
            reframer.align = align
            crops = reframer(rolled, PAD_SHARE, None)
            probs = predictor.classify(crops)
            row["aligned" if align else "plain"] = float(np.mean(probs.argmax(1) == labels))
        row["detected"] = reframer.found[PAD_SHARE]
        row["gain_points"] = round(100 * (row["aligned"] - row["plain"]), 2)
        rows[f"roll {degrees:g}"] = row
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=0, help="faces per split (0 = all)")
    args = ap.parse_args()
    data = load_fer2013(args.data, quiet=True)
    config = TrainConfig()  # the split every training run holds out
    _, val = stratified_split(data["train"], config.val_fraction, config.seed)
    predictor = Predictor()
    out = {"model": predictor.loaded.path.name, "pad_share": PAD_SHARE, "splits": {}}
    for name, split in (("val", val), ("test (PublicTest)", data["test"])):
        faces, labels = split.images, split.labels
        if args.n:
            idx = np.random.default_rng(0).choice(len(labels), args.n, replace=False)
            faces, labels = faces[idx], labels[idx]
        t0 = time.time()
        rows = measure(faces, labels, predictor)
        out["splits"][name] = {"n": int(len(labels)), "rows": rows}
        print(f"\n{name}: {len(labels)} faces, {time.time() - t0:.0f}s")
        print(f"{'':<10}{'detected':>9}{'plain':>8}{'aligned':>9}{'gain':>7}")
        for k, r in rows.items():
            print(f"{k:<10}{r['detected']:>9.1%}{r['plain']:>8.2%}{r['aligned']:>9.2%}"
                  f"{r['gain_points']:>+7.2f}")
    out["command"] = "python benchmarks/alignment.py --data ../shared/data/fer2013.zip" + (
        f" --n {args.n}" if args.n else "")
    write_result("alignment", out)


if __name__ == "__main__":
    main()
