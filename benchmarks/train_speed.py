"""Training speed per network and recipe on this machine: images per second through the whole
training step (this project's tf.data pipeline with augmentation, forward, backward, optimizer),
the figures that chose the shipped model's architecture, crop size and precision.

    python benchmarks/train_speed.py [--steps 40]

Runs on generated 48x48 images (speed does not depend on what the pixels show), so it needs no
dataset. One configuration at a time, each in its own process after a warm-up; keep the machine
otherwise idle. Prints the figures and writes benchmarks/results/train_speed.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import write_result  # noqa: E402

import fer  # noqa: E402, F401  (imports pylibsrtp before TensorFlow)
from fer.config import TrainConfig  # noqa: E402
from fer.data import Split  # noqa: E402
from fer.runs import cpu_name  # noqa: E402

# (preset, crop size, precision): the shipped recipe first, then one change at a time.
CONFIGS = [
    ("vgg_gap", 40, "float32"),
    ("vgg_gap", 48, "float32"),
    ("vgg_gap", 40, "mixed_bfloat16"),
    ("vgg_gap_wide", 40, "float32"),
    ("resnet", 40, "float32"),
    ("seed", 48, "float32"),
]


def measure(preset: str, crop: int, precision: str, data: Split, steps: int) -> dict:
    import keras

    from fer.model import build_model
    from fer.pipeline import build_augmenter, make_dataset
    from fer.train import compile_model

    keras.mixed_precision.set_global_policy(precision)
    try:
        config = TrainConfig.for_preset(preset, crop_size=crop, mixed_precision=precision)
        ds = make_dataset(data, config.batch_size, training=True, augmenter=build_augmenter(
            config.augment, config.crop_size, config.erasing, 0)).repeat()
        model = build_model(preset, dropout=config.dropout)
        compile_model(model, config, steps_per_epoch=400)
        model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing, thread pools
        t0 = time.perf_counter()
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        rate = steps * config.batch_size / (time.perf_counter() - t0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"preset": preset, "crop_size": crop, "precision": precision,
            "optimizer": config.optimizer, "batch_size": config.batch_size,
            "params": model.count_params(), "images_per_s": round(rate, 1),
            "minutes_per_epoch_25837": round(25837 / rate / 60, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40, help="timed batches per configuration")
    ap.add_argument("--one", nargs=3, metavar=("PRESET", "CROP", "PRECISION"),
                    help="measure one configuration and print it as JSON (used internally)")
    args = ap.parse_args()
    if args.one:
        rng = np.random.default_rng(0)
        data = Split(rng.integers(0, 256, (2048, 48, 48), dtype="uint8"),
                     rng.integers(0, 7, 2048).astype("int64"))
        preset, crop, precision = args.one
        print(json.dumps(measure(preset, int(crop), precision, data, args.steps)))
        return
    rows = []
    for preset, crop, precision in CONFIGS:
        # One process per configuration: in a shared process every network after the first
        # measured ~125 images/s whatever its size (threads of the previous run still busy).
        out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one",
                              preset, str(crop), precision], capture_output=True, text=True,
                             check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    write_result("train_speed", {"cpu": cpu_name(), "cores": os.cpu_count(),
                                 "steps": args.steps, "results": rows})


if __name__ == "__main__":
    main()
