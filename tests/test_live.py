"""The live-video frame logic as a plain function, on real frames."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.live import LiveProcessor
from fer.predict import Predictor
from fer.samples import ASTRONAUT


@pytest.fixture(scope="module")
def predictor():
    return Predictor()


def _frame(shift=0):
    im = Image.open(ASTRONAUT).convert("RGB").resize((640, 480))
    return np.roll(np.asarray(im), shift, axis=1)


def test_frames_are_annotated_and_results_queued(predictor):
    live = LiveProcessor(predictor)
    frame = _frame()
    untouched = frame.copy()
    out, result = live.process(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert not np.array_equal(out, frame)
    assert np.array_equal(frame, untouched)  # drawn on the processor's own copy
    assert len(result.faces) == 1 and result.faces[0].label == "happy"
    assert live.results.get_nowait() is result


def test_queue_keeps_only_the_newest(predictor):
    live = LiveProcessor(predictor)
    for _ in range(3):
        _, last = live.process(_frame())
    assert live.results.qsize() == 1 and live.results.get_nowait() is last
    assert last.fps > 0


def test_smoothing_averages_over_frames(predictor):
    raw = LiveProcessor(predictor, smoothing=0.0)
    smooth = LiveProcessor(predictor, smoothing=0.9)
    first, moved = _frame(), _frame(shift=12)  # the same face, 12 px to the right
    _, a = smooth.process(first)
    _, b_raw = raw.process(moved)
    _, b = smooth.process(moved)
    expected = 0.9 * a.faces[0].probs + 0.1 * b_raw.faces[0].probs
    assert not np.allclose(a.faces[0].probs, b_raw.faces[0].probs, atol=1e-4)
    np.testing.assert_allclose(b.faces[0].probs, expected, atol=1e-5)
    # A face far from every tracked one starts fresh.
    _, c = smooth.process(np.ascontiguousarray(first[:, ::-1]))
    _, c_raw = raw.process(np.ascontiguousarray(first[:, ::-1]))
    np.testing.assert_allclose(c.faces[0].probs, c_raw.faces[0].probs, atol=1e-5)


def test_frames_without_faces(predictor):
    live = LiveProcessor(predictor)
    out, result = live.process(np.full((480, 640, 3), 30, np.uint8))
    assert result.faces == [] and out.shape == (480, 640, 3)


def test_streamlit_config_keeps_the_live_path_cheap():
    """Two server settings measured by benchmarks/live.py (server CPU per live frame 43 -> 32 ms
    and ~100% -> ~47% of a core): no watchdog over the app folder (it walks .venv on inotify
    overflows) and no full garbage collection after every script run (the live bars' fragment
    reruns each second)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((Path(__file__).resolve().parent.parent / ".streamlit"
                            / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] in ("poll", "none")
    assert config["runner"]["postScriptGC"] is False
