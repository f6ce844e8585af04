"""Serving without TensorFlow: the .tflite the app serves, LiteRT, and import order."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ASTRONAUT, ROOT, shared_zip_or_skip

from fer.modelfile import DEFAULT_MODEL, load_model, serving_path
from fer.tflite import TOLERANCE, check_faces, file_sha256, tflite_path

SERVED = tflite_path(DEFAULT_MODEL)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("code", [
    # A notebook that imports TensorFlow first, then fer and the webcam stack.
    "import tensorflow; import fer.predict; from fer.srtp import preload_pylibsrtp; "
    "preload_pylibsrtp(); import streamlit_webrtc; print('ok')",
    # The app's order: the webcam stack first, TensorFlow later (heatmaps, training).
    "from fer.srtp import preload_pylibsrtp; preload_pylibsrtp(); import streamlit_webrtc; "
    "import tensorflow; import fer.predict; print('ok')",
])
def test_import_orders_do_not_crash(code):
    res = _run(code)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), (res.returncode,
                                                                        res.stderr[-2000:])


def test_importing_fer_does_not_load_the_webcam_stack():
    res = _run("import sys, fer, fer.predict, fer.ui; "
               "print(sorted(m for m in ('pylibsrtp', 'aiortc') if m in sys.modules))")
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr[-2000:]


def test_a_photo_is_answered_without_tensorflow():
    pytest.importorskip("ai_edge_litert")
    res = _run(
        "import sys\n"
        "from fer.predict import Predictor\n"
        "p = Predictor()\n"
        f"r = p.predict({str(ASTRONAUT)!r})\n"
        "print(p.runtime, r.faces[0].label, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-4:] == ["tflite", "happy", "False", "False"]


def test_shipped_tflite_is_served_and_matches_its_keras():
    assert serving_path(DEFAULT_MODEL) == SERVED
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["tflite"]
    assert meta["source_sha256"] == file_sha256(DEFAULT_MODEL)
    assert SERVED.stat().st_size == meta["size_bytes"] < 8 * 1024**2


QUANTIZATION = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())["tflite"][
    "quantization"]


def _compare(faces: np.ndarray) -> tuple[float, float]:
    """Largest probability difference and share of faces whose label differs."""
    keras_model = load_model(DEFAULT_MODEL).model
    lite = load_model(SERVED).model
    x = faces[..., None].astype(np.float32)
    a, b = np.asarray(keras_model(x)), lite(x)
    return float(np.abs(a - b).max()), float((a.argmax(1) != b.argmax(1)).mean())


def test_tflite_gives_the_keras_probabilities_on_real_faces():
    # The astronaut's face and variations of it: the conversion keeps every layer (the blur
    # included): float32 agrees to 1e-3, int8 weights to a few hundredths.
    diff, _ = _compare(check_faces())
    assert diff <= TOLERANCE[QUANTIZATION]


@pytest.mark.fer2013
def test_tflite_gives_the_keras_probabilities_on_fer2013_faces():
    from fer.data import load_fer2013

    test = load_fer2013(shared_zip_or_skip(), quiet=True)["test"]
    diff, flipped = _compare(test.images[:500])
    assert diff <= TOLERANCE[QUANTIZATION] and flipped <= 0.01


def test_a_stale_tflite_is_not_served(tmp_path):
    keras_copy = tmp_path / "m.keras"
    shutil.copy(DEFAULT_MODEL, keras_copy)
    shutil.copy(SERVED, tmp_path / "m.tflite")
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert serving_path(keras_copy) == tmp_path / "m.tflite"
    meta["tflite"]["source_sha256"] = "0" * 64  # converted from some other .keras
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert serving_path(keras_copy) == keras_copy


def test_conversion_keeps_custom_layers(tmp_path):
    """Every layer goes into the .tflite: the blur and a temperature layer at the end (as the
    shipped model's calibration), so the two files give the same probabilities."""
    import keras

    from fer.model import build_model
    from fer.tflite import convert

    @keras.saving.register_keras_serializable(package="fer_test")
    class Temperature(keras.layers.Layer):
        def call(self, p):
            return keras.ops.softmax(keras.ops.log(p + 1e-9) / 0.5)

    base = build_model("vgg_gap", smoothing=(1.0, 0.35))
    model = keras.Model(base.inputs, Temperature()(base.outputs[0]))
    path = tmp_path / "tiny.keras"
    model.save(path)
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    meta.pop("tflite")
    path.with_suffix(".json").write_text(json.dumps(meta))
    done = convert(path, quantization="float32")
    assert done.path == tmp_path / "tiny.tflite" and done.max_abs_diff <= 1e-4
    assert serving_path(path) == done.path
    faces = check_faces()[..., None].astype(np.float32)
    lite = load_model(done.path).model
    expected = np.asarray(model(faces))
    # A sharpened (temperature 0.5) output: farther from uniform than the softmax alone.
    assert np.abs(lite(faces) - expected).max() <= 1e-4
    # Faces of other sizes and batches, as ten-crop TTA feeds them.
    crops = faces[:5, 4:44, 4:44]
    np.testing.assert_allclose(lite(crops), np.asarray(model(crops)), atol=1e-4)
