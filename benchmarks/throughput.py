"""Training throughput on one network: this project's tf.data pipeline (Keras augmentation
layers, random crops) against the original recipe's ImageDataGenerator.flow_from_directory,
images per second in one run.

    python benchmarks/throughput.py --data ../shared/data/fer2013.zip [--preset seed] [--steps 60]

The train split is extracted to a temporary folder for flow_from_directory. Prints the figures
and writes benchmarks/results/throughput.json.
"""

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import write_result  # noqa: E402

from fer.config import TrainConfig  # noqa: E402
from fer.data import load_fer2013, stratified_split  # noqa: E402
from fer.model import build_model  # noqa: E402
from fer.pipeline import build_augmenter, make_dataset  # noqa: E402
from fer.train import compile_model  # noqa: E402


def images_per_second(model, iterator, steps: int, batch: int) -> float:
    model.fit(iterator, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up and tracing
    t0 = time.perf_counter()
    model.fit(iterator, steps_per_epoch=steps, epochs=1, verbose=0)
    return round(steps * batch / (time.perf_counter() - t0), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="seed")
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    config = TrainConfig.for_preset(args.preset)
    train, _ = stratified_split(load_fer2013(args.data, quiet=True)["train"], 0.1, 0)
    ds = make_dataset(train, 64, training=True, augmenter=build_augmenter(
        config.augment, config.crop_size, config.erasing, 0)).repeat()
    model = build_model(args.preset)
    compile_model(model, config, 100)
    ours = images_per_second(model, ds, args.steps, 64)

    from tensorflow.keras.preprocessing.image import ImageDataGenerator  # legacy, as originally

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.data) as zf:
        members = [m for m in zf.namelist() if m.startswith("train/") and m.endswith(".jpg")]
        zf.extractall(tmp, members)
        gen = ImageDataGenerator(rescale=1 / 255.0, rotation_range=10, width_shift_range=0.1,
                                 height_shift_range=0.1, zoom_range=0.1, horizontal_flip=True)
        flow = gen.flow_from_directory(Path(tmp) / "train", target_size=(48, 48),
                                       color_mode="grayscale", batch_size=64,
                                       class_mode="categorical")
        model2 = build_model(args.preset)
        compile_model(model2, config, 100)
        # The model rescales internally; the original generator rescaled too, so undo one.
        flow_255 = ((x * 255.0, y) for x, y in flow)
        theirs = images_per_second(model2, flow_255, args.steps, 64)
    write_result("throughput", {
        "network": args.preset, "params": model.count_params(), "batch_size": 64,
        "steps": args.steps, "crop_size": config.crop_size,
        "tf_data_images_per_s": ours, "image_data_generator_images_per_s": theirs,
        "speedup": round(ours / theirs, 2)})


if __name__ == "__main__":
    main()
