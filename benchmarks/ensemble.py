"""Ensembles of trained networks against the best single one, chosen on the validation split.

Each member is a ``.keras`` file, or ``git:REV:PATH`` for a model this repository shipped in
the past (read with ``git show``, so no old run directory is needed). Every member is scored
with its probabilities uncalibrated (a shipped model's temperature is undone: averaging a
sharpened and an unsharpened member would weight them unequally), with an inference blur
(``fer.model.Smoothing``) chosen per member on val from ``--smoothing`` unless it already has
one, then every combination of two or more members is scored by averaging probabilities, with
and without flip TTA. Selection uses val only; PublicTest is reported beside it.

    python benchmarks/ensemble.py --data ../shared/data/fer2013.zip \\
        --member models/fer_vgg.keras --member git:85a1dc1:models/fer_vgg.keras \\
        --member git:e005c0a:models/fer_vgg.keras

Prints the table and writes benchmarks/results/ensemble.json. Cost is counted in network
passes per face (one network without TTA = 1).
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from _common import write_result  # noqa: E402

from fer.calibration import apply_temperature  # noqa: E402
from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402


def member_file(spec: str, scratch: Path) -> Path:
    """A member's ``.keras`` on disk: the path itself, or ``git:REV:PATH`` written out."""
    if not spec.startswith("git:"):
        return Path(spec)
    _, rev, path = spec.split(":", 2)
    out = scratch / f"{rev}-{Path(path).name}"
    out.write_bytes(subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                   capture_output=True).stdout)
    return out


def views(model, images: np.ndarray, temperature: float) -> dict[str, np.ndarray]:
    """Uncalibrated probabilities without TTA and averaged with the mirror image."""
    x = images[..., None]
    # Calibration gives softmax(log p / T); a temperature of 1/T on top of it gives p back.
    plain = apply_temperature(model.predict(x, batch_size=256, verbose=0), 1 / temperature)
    mirror = apply_temperature(model.predict(x[:, :, ::-1], batch_size=256, verbose=0),
                               1 / temperature)
    return {"none": plain, "flip": (plain + mirror) / 2}


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return round(float((probs.argmax(1) == labels).mean()), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="FER2013 zip or folder")
    ap.add_argument("--member", action="append", required=True,
                    help="a .keras file or git:REV:PATH (repeat; two or more)")
    ap.add_argument("--smoothing", default="0,0.35",
                    help="blur weights (sigma 1) tried per member on val, comma-separated")
    args = ap.parse_args()
    if len(args.member) < 2:
        ap.error("an ensemble needs two or more --member")

    import keras

    from fer.model import Smoothing, model_temperature, with_smoothing

    dataset = load_fer2013(args.data, quiet=True)
    val = stratified_split(dataset["train"], TrainConfig.val_fraction, TrainConfig.seed)[1]
    test = dataset["test"]
    weights = [float(w) for w in args.smoothing.split(",")]
    members, probs = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for spec in args.member:
            model = keras.models.load_model(member_file(spec, Path(scratch)), compile=False)
            temperature = model_temperature(model)
            built_in = any(isinstance(layer, Smoothing) for layer in model.layers)
            tried = {}
            for w in ([None] if built_in else weights):
                m = model if w is None else with_smoothing(model, 1.0, w)
                tried[w] = {"val": views(m, val.images, temperature)}
            # The blur is chosen on val, without TTA (how the app answers by default).
            choice = max(tried, key=lambda w: accuracy(tried[w]["val"]["none"], val.labels))
            m = model if choice is None else with_smoothing(model, 1.0, choice)
            chosen = {**tried[choice], "test": views(m, test.images, temperature)}
            probs[spec] = chosen
            members[spec] = {
                "params": int(model.count_params()), "temperature_undone": temperature,
                "smoothing": "built in" if choice is None else choice,
                "val_by_smoothing": {str(w): accuracy(t["val"]["none"], val.labels)
                                     for w, t in tried.items()},
                **{f"{split}_{mode}": accuracy(chosen[split][mode], s.labels)
                   for split, s in (("val", val), ("test", test)) for mode in ("none", "flip")},
            }
            print(spec, members[spec], flush=True)

    rows = []
    for r in range(2, len(args.member) + 1):
        for combo in itertools.combinations(args.member, r):
            row = {"members": list(combo)}
            for mode, cost in (("none", 1), ("flip", 2)):
                for split, s in (("val", val), ("test", test)):
                    mean = sum(probs[c][split][mode] for c in combo) / len(combo)
                    row[f"{split}_{mode}"] = accuracy(mean, s.labels)
                row[f"passes_{mode}"] = cost * len(combo)
            rows.append(row)
    best_single = max(members, key=lambda s: members[s]["val_none"])
    best = {mode: max(rows, key=lambda r, m=mode: r[f"val_{m}"]) for mode in ("none", "flip")}
    out = {
        "data": Path(args.data).name,
        "selection": "val only (the seeded 10% split of train); test is PublicTest",
        "combine": "mean of uncalibrated probabilities",
        "members": members,
        "ensembles": rows,
        "best_single_by_val": best_single,
        "best_ensemble_by_val": best,
    }
    print(f"\n{'':60s} {'val':>7s} {'val flip':>9s} {'test':>7s} {'test flip':>9s} passes")
    for spec, m in members.items():
        print(f"{spec:60s} {m['val_none']:7.4f} {m['val_flip']:9.4f} {m['test_none']:7.4f} "
              f"{m['test_flip']:9.4f} 1/2")
    for row in rows:
        name = " + ".join(Path(c.split(":")[1] if c.startswith("git:") else c).stem[:12]
                          for c in row["members"])
        print(f"{name:60s} {row['val_none']:7.4f} {row['val_flip']:9.4f} "
              f"{row['test_none']:7.4f} {row['test_flip']:9.4f} "
              f"{row['passes_none']}/{row['passes_flip']}")
    write_result("ensemble", out)


if __name__ == "__main__":
    main()
