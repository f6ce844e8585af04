"""Running ``.tflite`` files without TensorFlow: LiteRT (``ai-edge-litert``) where it has a wheel,
TensorFlow's own ``tf.lite.Interpreter`` elsewhere.

LiteRT imports in ~0.1 s and ~30 MB where TensorFlow takes ~3 s and ~500 MB, which is what lets
the web process answer photos without importing TensorFlow at all. It publishes wheels for Linux
(x86_64, aarch64), Windows (x86_64) and macOS on Apple silicon; on the platforms without one
(Intel macOS, Python versions it does not cover yet) the same files run through TensorFlow.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fer.data import IMAGE_SIZE


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# Threads per interpreter call: two where there are two cores. A lone call takes half the time
# (benchmarks/inference.py, "threads_per_call": classifier 4.3 -> 2.4 ms, full-range detector
# 8.7 -> 6.1 ms), and the live webcam costs the server no more CPU per frame (benchmarks/
# live.py over 3 minutes: 33 ms with two, 34 ms with one). Each interpreter serialises its calls
# behind a lock, so concurrent sessions add at most one call per model. (Two threads did cost
# the live path 75 ms per frame while Streamlit's watchdog file watcher was burning a core,
# before .streamlit/config.toml switched it to polling: XNNPACK's idle workers spin.)
DEFAULT_THREADS = min(2, _cores())


def _interpreter_class() -> tuple[type, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "litert"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow"


def runtime_name() -> str:
    """``litert`` when ai-edge-litert is installed, else ``tensorflow`` (the fallback)."""
    return _interpreter_class()[1]


def make_interpreter(path: str | os.PathLike, num_threads: int | None = None,
                     input_shape: tuple[int, ...] | None = None) -> Any:
    """An interpreter for a ``.tflite`` file, tensors allocated.

    Args:
        path: the model file.
        num_threads: CPU threads for one invocation (default :data:`DEFAULT_THREADS`).
        input_shape: the first input's shape, for a model with free dimensions.
    """
    cls, _ = _interpreter_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite's deprecation notice in the fallback
        interp = cls(model_path=str(path), num_threads=num_threads or DEFAULT_THREADS)
    if input_shape is not None:
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(input_shape),
                                   strict=True)
    interp.allocate_tensors()
    return interp


class TFLiteClassifier:
    """A ``.tflite`` classifier that maps ``(N, H, W, 1)`` raw 0..255 faces to probabilities.

    It quacks like the Keras model where serving and evaluation need it (``input_shape``,
    ``predict``, calling it), so :func:`fer.evaluate.evaluate` scores the served file itself.
    Thread-safe: one interpreter, calls serialised by a lock (a batch of any size is one call).

    Args:
        path: a ``.tflite`` written by :func:`fer.tflite.convert`.
        num_threads: CPU threads per invocation (default :data:`DEFAULT_THREADS`).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        cls, _ = _interpreter_class()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = cls(model_path=str(self.path))
        detail = probe.get_input_details()[0]
        signature = detail.get("shape_signature")
        if signature is None or len(signature) == 0:
            signature = detail["shape"]
        # -1 marks a free dimension (batch, and the sides of a fully convolutional network).
        self.input_shape = tuple(None if int(d) < 0 else int(d) for d in signature)
        # Planned for the common call, one 48x48 face; other shapes re-plan on demand.
        self._shape = tuple(d if d is not None else (1 if i == 0 else IMAGE_SIZE)
                            for i, d in enumerate(self.input_shape))
        self._interp = make_interpreter(self.path, num_threads, self._shape)
        self._input = self._interp.get_input_details()[0]["index"]
        self._output = self._interp.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        with self._lock:
            if x.shape != self._shape:
                # Resizing re-plans the graph (~1 ms); the common case, one 48x48 face after
                # another, keeps its shape.
                self._interp.resize_tensor_input(self._input, list(x.shape), strict=True)
                self._interp.allocate_tensors()
                self._shape = x.shape
            self._interp.set_tensor(self._input, x)
            self._interp.invoke()
            return self._interp.get_tensor(self._output).copy()

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Probabilities for many faces, ``batch_size`` at a time (Keras' ``predict`` shape)."""
        x = np.asarray(x)
        if len(x) == 0:
            return np.zeros((0, self._interp.get_output_details()[0]["shape"][-1]), np.float32)
        return np.concatenate([self(x[i : i + batch_size])
                               for i in range(0, len(x), batch_size)])
