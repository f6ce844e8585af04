"""Aligned crops of large faces: does shrinking a face before turning it level
(``fer.predict.crop_face``, ``ROTATE_SIDE``) change what the classifier answers, against turning
the region at full size (``inference._crop_turned_at_full_size``, the code before 2026-12-02)?

Validation faces (the split training held out) are upscaled to 432 px, as large as a selfie's
face, rolled 0 or 20 degrees (seeded, as benchmarks/alignment.py), edge-padded by 75% of their
side and found by the app's BlazeFace detector; each found face is cropped both ways and
classified by the served ``.tflite``, no TTA.

    python benchmarks/large_faces.py --data ../shared/data/fer2013.zip

Prints the table and writes benchmarks/results/large_faces.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import write_result  # noqa: E402
from inference import _crop_turned_at_full_size  # noqa: E402
from robustness import _roll  # noqa: E402

from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.detect import FaceDetector  # noqa: E402
from fer.predict import DEFAULT_MARGIN, ROTATE_SIDE, Predictor, crop_face  # noqa: E402

SIDE = 432
PAD_SHARE = 0.75


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    data = load_fer2013(args.data, quiet=True)
    config = TrainConfig()
    val = stratified_split(data["train"], config.val_fraction, config.seed)[1]
    predictor, detector = Predictor(), FaceDetector("full")
    out = {"model": predictor.loaded.path.name, "rotate_side": ROTATE_SIDE, "face_px": SIDE,
           "split": f"val ({len(val.labels)} faces)", "rows": {}}
    for degrees in (0.0, 20.0):
        rng = np.random.default_rng(int(degrees))
        faces = val.images if not degrees else np.round(
            _roll(val.images.astype(np.float64), degrees, rng)).clip(0, 255).astype(np.uint8)
        full, shrunk, found = [], [], []
        for i, face in enumerate(faces):
            big = np.asarray(Image.fromarray(face).resize((SIDE, SIDE), Image.BICUBIC))
            canvas = np.pad(big, int(SIDE * PAD_SHARE), mode="edge")
            dets = detector.detect(np.repeat(canvas[..., None], 3, axis=2))
            if not dets or dets[0].eyes is None:
                continue
            crop_args = (canvas, dets[0].box, DEFAULT_MARGIN, dets[0].eyes)
            full.append(_crop_turned_at_full_size(*crop_args))
            shrunk.append(crop_face(*crop_args))
            found.append(i)
        labels = val.labels[found]
        p_full = predictor.classify(np.stack(full))
        p_shrunk = predictor.classify(np.stack(shrunk))
        row = {"faces_found": len(found),
               "accuracy_turned_at_full_size": float(np.mean(p_full.argmax(1) == labels)),
               "accuracy_crop_face": float(np.mean(p_shrunk.argmax(1) == labels)),
               "same_label": float(np.mean(p_full.argmax(1) == p_shrunk.argmax(1))),
               "mean_abs_probability_difference": float(np.abs(p_full - p_shrunk).mean()),
               "mean_abs_pixel_difference": float(np.abs(
                   np.stack(full).astype(int) - np.stack(shrunk)).mean())}
        row["gain_points"] = round(100 * (row["accuracy_crop_face"]
                                          - row["accuracy_turned_at_full_size"]), 2)
        out["rows"][f"roll {degrees:g}"] = row
        print(f"roll {degrees:g}: {row}", flush=True)
    out["command"] = "python benchmarks/large_faces.py --data ../shared/data/fer2013.zip"
    write_result("large_faces", out)


if __name__ == "__main__":
    main()
