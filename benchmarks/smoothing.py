"""Chooses the inference-time smoothing on the validation split (no test label is read).

Every training face passes through bilinear rotation, shift and zoom, which soften it; raw faces
are sharper. This scans ``fer.model.Smoothing`` (``(1 - weight) x + weight blur_sigma(x)``) over
a small grid on the run's own validation split (same seed and fraction it was selected on), for
no TTA and flip TTA, then compares the chosen setting with no smoothing face by face (exact
McNemar test: how many faces only one of the two gets right). Sharpness of each split is
reported as the mean absolute Laplacian, to show how far train and test differ.

    python benchmarks/smoothing.py --data ../shared/data/fer2013.zip \\
        [--run runs/vgg_gap-110] [--sigma 1.0 --weight 0.35] [--name smoothing]

Without ``--sigma``/``--weight`` the grid point with the best mean of the no-TTA and flip-TTA
validation accuracies is the one tested against none. Prints the figures and writes
benchmarks/results/<name>.json.
"""

import argparse
import sys
from math import comb
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import write_result  # noqa: E402

import fer  # noqa: E402, F401 - before TensorFlow (see fer/__init__.py)
from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.evaluate import predict_probs  # noqa: E402

SIGMAS = (0.5, 0.7, 1.0)
WEIGHTS = (0.1, 0.2, 0.35, 0.5, 1.0)


def laplacian_energy(images: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of (N, H, W) images: higher = sharper."""
    a = images.astype(np.float32)
    lap = 4 * a[:, 1:-1, 1:-1] - a[:, :-2, 1:-1] - a[:, 2:, 1:-1] - a[:, 1:-1, :-2] - a[:, 1:-1, 2:]
    return float(np.abs(lap).mean())


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict:
    """Exact two-sided McNemar test of two paired right/wrong vectors."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"only_without_right": only_a, "only_with_right": only_b, "p_value": round(p, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", default="runs/vgg_gap-110", help="run directory (best.keras)")
    ap.add_argument("--sigma", type=float, default=None,
                    help="the setting to test against none (default: the grid's best on val)")
    ap.add_argument("--weight", type=float, default=None)
    ap.add_argument("--name", default="smoothing", help="results file name (without .json)")
    args = ap.parse_args()

    import keras

    from fer.model import with_smoothing

    run = Path(args.run)
    config = TrainConfig.load(run / "config.json")
    data = load_fer2013(args.data, quiet=True)
    val = stratified_split(data["train"], config.val_fraction, config.seed)[1]
    model = keras.models.load_model(run / "best.keras", compile=False)
    images = val.images[..., None]

    def correct(sigma: float, weight: float, tta: str) -> np.ndarray:
        probs = predict_probs(with_smoothing(model, sigma, weight), images, tta, config.crop_size)
        return probs.argmax(1) == val.labels

    base = {tta: correct(1.0, 0.0, tta) for tta in ("none", "flip")}
    grid = [{"sigma": 0.0, "weight": 0.0, **{f"val_{t}": round(float(c.mean()), 4)
                                              for t, c in base.items()}}]
    for sigma in SIGMAS:
        for weight in WEIGHTS:
            row = {"sigma": sigma, "weight": weight}
            for tta in ("none", "flip"):
                row[f"val_{tta}"] = round(float(correct(sigma, weight, tta).mean()), 4)
            print(row, flush=True)
            grid.append(row)
    if args.sigma is None or args.weight is None:
        best = max(grid[1:], key=lambda r: r["val_none"] + r["val_flip"])
        args.sigma, args.weight = best["sigma"], best["weight"]
    chosen = {}
    for tta in ("none", "flip", "tencrop"):
        with_ = correct(args.sigma, args.weight, tta)
        without = base[tta] if tta in base else correct(1.0, 0.0, tta)
        chosen[tta] = {"val_without": round(float(without.mean()), 4),
                       "val_with": round(float(with_.mean()), 4), **mcnemar(without, with_)}
    write_result(args.name, {
        "run": str(run), "val_faces": int(len(val.labels)),
        "sharpness_mean_abs_laplacian": {"train": laplacian_energy(data["train"].images),
                                         "test": laplacian_energy(data["test"].images)},
        "grid": grid,
        "chosen": {"sigma": args.sigma, "weight": args.weight, **chosen},
    })


if __name__ == "__main__":
    main()
