"""Converting a ``.keras`` classifier to the ``.tflite`` file the app serves.

Every layer of the Keras model goes into the file (the inference blur
:class:`fer.model.Smoothing`, any calibration layer, the softmax), because the conversion goes
through the model's own traced graph: Keras 3 ``model.export(..., format="tf_saved_model")``,
then ``tf.lite.TFLiteConverter.from_saved_model``. The input keeps the model's free dimensions
(batch, and the sides of a fully convolutional network) so serving can batch faces and
evaluation can feed ten-crop views; :class:`fer.litert.TFLiteClassifier` sizes it per call.

Dynamic-range int8 weights are the default: measured on PublicTest (``python -m fer convert
models/fer_vgg.keras --compare ../shared/data/fer2013.zip``), the calibrated shipped model
scores 68.12% plain for Keras, float32 and int8 alike, and 68.93% / 68.93% / 68.90% with flip
TTA (one face), while the file shrinks from 4.7 to 1.2 MB; the rule was to keep int8 only if
accuracy moved by at most 0.2 point. Probabilities differ from Keras by up to ~0.03 with int8
(1e-6 with float32).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fer.atomic import atomic_write

QUANTIZATIONS = ("float32", "int8")
DEFAULT_QUANTIZATION = "int8"
# Largest probability difference from the .keras that a conversion may show on real faces. int8
# weights move the logits a little; a calibration temperature T < 1 then scales those moves by
# 1/T (the shipped T = 0.68 turns the ~0.02 measured before calibration into ~0.03).
TOLERANCE = {"float32": 1e-3, "int8": 0.05}


class Conversion(NamedTuple):
    """What :func:`convert` wrote and how closely it matches the Keras model."""

    path: Path
    quantization: str
    size_bytes: int
    max_abs_diff: float  # largest probability difference from Keras on the check faces


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file (ties a ``.tflite`` to the ``.keras`` it was converted from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tflite_path(keras_path: str | os.PathLike) -> Path:
    """Where the ``.tflite`` of a ``.keras`` file lives: beside it, same stem."""
    return Path(keras_path).with_suffix(".tflite")


def to_tflite_bytes(model: Any, quantization: str = DEFAULT_QUANTIZATION) -> bytes:
    """The flatbuffer of a loaded Keras model.

    Args:
        model: a ``keras.Model`` taking raw 0..255 faces ``(N, H, W, 1)``.
        quantization: ``float32``, or ``int8`` for dynamic-range int8 weights.

    Raises:
        ValueError: an unknown quantization.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of {QUANTIZATIONS}")
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        signature = [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="face")]
        model.export(tmp, format="tf_saved_model", input_signature=signature, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        # Built-in ops only: LiteRT has no TensorFlow-ops (Flex) delegate, so a model that needed
        # one must fail here, at conversion, not in the web app.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def check_faces(n_random: int = 8, seed: int = 0) -> np.ndarray:
    """Real faces for comparing two model files: the astronaut's face crop and variations of it
    (mirrored, darker, brighter, noisy, shifted), plus smooth random images; ``(N, 48, 48)``."""
    from PIL import Image

    from fer.samples import ASTRONAUT

    rng = np.random.default_rng(seed)
    face = np.asarray(Image.open(ASTRONAUT).convert("L").crop((160, 55, 295, 190)).resize(
        (48, 48), Image.Resampling.LANCZOS)).astype(np.float64)
    variants = [face, face[:, ::-1], face * 0.6, np.minimum(face * 1.3 + 20, 255),
                face + rng.normal(0, 12, face.shape), np.roll(face, 3, axis=1),
                np.roll(face, -3, axis=0), 255 - face]
    for _ in range(n_random):
        small = rng.uniform(0, 255, (6, 6))
        variants.append(np.asarray(Image.fromarray(small.astype(np.float32), mode="F").resize(
            (48, 48), Image.Resampling.BICUBIC)))
    return np.clip(np.stack(variants), 0, 255).round().astype(np.uint8)


def _shown(path: Path) -> str:
    try:  # relative to the repository, as a command someone can re-run from its root
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return path.name


def convert(
    keras_path: str | os.PathLike, output: str | os.PathLike | None = None,
    quantization: str = DEFAULT_QUANTIZATION, data: str | None = None,
) -> Conversion:
    """Writes the ``.tflite`` of a ``.keras`` classifier beside it and records it in the metadata.

    The model's ``.json`` (if any) gets a ``tflite`` entry: file, quantization, the SHA-256 of the
    ``.keras`` it came from (so a stale ``.tflite`` is never served for a changed model) and the
    largest probability difference from Keras on :func:`check_faces`.

    Args:
        keras_path: the ``.keras`` model.
        output: the ``.tflite`` to write (default: beside the model, same stem).
        quantization: ``float32`` or ``int8`` (dynamic-range).
        data: a FER2013 source: also evaluate the written file on its test split (with the
            model's TTA mode) and record its exact counts, which the served file must
            reproduce (``tests/test_shipped_model.py``).

    Returns:
        A :class:`Conversion`.

    Raises:
        fer.modelfile.ModelError: the model cannot be loaded.
    """
    from fer.litert import TFLiteClassifier
    from fer.modelfile import load_keras
    from fer.runs import atomic_write_json, read_json

    keras_path = Path(keras_path)
    output = Path(output) if output else tflite_path(keras_path)
    model = load_keras(keras_path)
    flatbuffer = to_tflite_bytes(model, quantization)
    faces = check_faces()[..., None].astype(np.float32)
    expected = np.asarray(model(faces, training=False))
    diffs: list[float] = []

    def write_checked(tmp: Path) -> None:
        # Checked before it replaces anything: a file that cannot run never reaches the app.
        tmp.write_bytes(flatbuffer)
        diffs.append(float(np.abs(expected - TFLiteClassifier(tmp)(faces)).max()))

    atomic_write(output, write_checked)
    diff = diffs[0]
    meta_path = keras_path.with_suffix(".json")
    if meta_path.exists() and output == tflite_path(keras_path):
        meta = read_json(meta_path, {}) or {}
        meta["tflite"] = {"file": output.name, "quantization": quantization,
                          "source_sha256": file_sha256(keras_path),
                          "size_bytes": len(flatbuffer), "max_abs_diff_vs_keras": round(diff, 7),
                          "command": f"python -m fer convert {_shown(keras_path)}"
                          + (f" --quantization {quantization}"
                             if quantization != DEFAULT_QUANTIZATION else "")}
        if data:
            meta["tflite"]["command"] += f" --data {data}"
            meta["tflite"]["evaluation"] = _served_counts(output, meta, data)
        atomic_write_json(meta_path, meta)
    return Conversion(output, quantization, len(flatbuffer), diff)


def _served_counts(path: Path, meta: dict[str, Any], data: str) -> dict[str, Any]:
    """Exact PublicTest counts of a written ``.tflite``, without TTA and with the model's own."""
    from fer.data import load_fer2013
    from fer.evaluate import evaluate
    from fer.litert import TFLiteClassifier

    tta = ((meta.get("evaluation") or {}).get("tta") or {}).get("mode", "flip")
    test = load_fer2013(data, quiet=True)["test"]
    result = evaluate(TFLiteClassifier(path), test, tta=tta,
                      crop_size=(meta.get("config") or {}).get("crop_size"))
    return {"split": "test (PublicTest)", "n": result["n"], "correct": result["correct"],
            "accuracy": result["accuracy"],
            "tta": {"mode": tta, "correct": result["tta"]["correct"],
                    "accuracy": result["tta"]["accuracy"]}}


def compare_quantizations(keras_path: str | os.PathLike, data: str) -> dict[str, Any]:
    """PublicTest accuracy of the ``.keras`` and of each quantization's ``.tflite``, without TTA
    and with the model's own TTA mode, in one run (the evidence for :data:`DEFAULT_QUANTIZATION`).

    Args:
        keras_path: the ``.keras`` model (with its metadata).
        data: the FER2013 source (its ``test`` split is used).
    """
    from fer.data import load_fer2013
    from fer.evaluate import evaluate
    from fer.litert import TFLiteClassifier
    from fer.modelfile import load_keras, read_model_meta

    keras_path = Path(keras_path)
    meta = read_model_meta(keras_path)
    tta = ((meta.get("evaluation") or {}).get("tta") or {}).get("mode", "flip")
    crop = (meta.get("config") or {}).get("crop_size")
    test = load_fer2013(data, quiet=True)["test"]
    model = load_keras(keras_path)
    models: dict[str, Any] = {"keras": model}
    sizes = {"keras": keras_path.stat().st_size}
    with tempfile.TemporaryDirectory() as tmp:
        for q in QUANTIZATIONS:
            path = Path(tmp) / f"{q}.tflite"
            path.write_bytes(to_tflite_bytes(model, q))
            models[q], sizes[q] = TFLiteClassifier(path), path.stat().st_size
        out: dict[str, Any] = {"split": "test (PublicTest)", "n": len(test.labels), "tta": tta}
        for name, m in models.items():
            result = evaluate(m, test, tta=tta, crop_size=crop)
            out[name] = {"accuracy": result["accuracy"], "tta_accuracy": result["tta"]["accuracy"],
                         "size_bytes": sizes[name]}
    return out


def add_convert_parser(sub) -> None:
    """The ``python -m fer convert`` subcommand."""
    p = sub.add_parser("convert", help="(re)write the .tflite the app serves beside a .keras",
                       description="Converts a .keras classifier to <same name>.tflite (every "
                       "layer included) and records it in the model's .json, so the app serves "
                       "it without TensorFlow. Run it after changing a shipped .keras.")
    p.add_argument("model", help="the .keras file")
    p.add_argument("--quantization", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS,
                   help=f"weights as float32 or dynamic-range int8 (default "
                   f"{DEFAULT_QUANTIZATION}, chosen on PublicTest)")
    p.add_argument("--data", metavar="DATA",
                   help="also evaluate the written file on this FER2013 source's test split and "
                   "record its exact counts in the .json")
    p.add_argument("--compare", metavar="DATA",
                   help="instead of writing, print the PublicTest accuracy of Keras, float32 and "
                   "int8 on this FER2013 source")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    if args.compare:
        import json

        print(json.dumps(compare_quantizations(args.model, args.compare), indent=2))
        return 0
    done = convert(args.model, quantization=args.quantization, data=args.data)
    print(f"wrote {done.path} ({done.size_bytes / 1e6:.1f} MB, {done.quantization}); largest "
          f"probability difference from the .keras on the check faces: {done.max_abs_diff:.1e}")
    return 0
