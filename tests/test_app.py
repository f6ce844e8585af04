"""Every page through Streamlit's AppTest: real model, real photo, patched WebRTC."""

import io
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
from conftest import ASTRONAUT
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer import runs, ui

ROOT = Path(__file__).resolve().parent.parent
HOME = str(ROOT / "app.py")
WEBCAM = str(ROOT / "pages" / "1_Webcam.py")
DASHBOARD = str(ROOT / "pages" / "2_Training_dashboard.py")
TRAIN = str(ROOT / "pages" / "3_Train_a_model.py")


def _markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def _no_crash(at):
    assert not at.exception, [e.value for e in at.exception]


def test_home_asks_for_a_photo():
    at = AppTest.from_file(HOME, default_timeout=60).run()
    _no_crash(at)
    assert "Upload one or more photos" in at.info[0].value
    assert "test accuracy" in at.sidebar.get("metric")[0].label.lower()


def test_home_upload_shows_a_happy_face():
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.get("file_uploader")[0].set_value(("astronaut.png", ASTRONAUT.read_bytes(), "image/png"))
    at.run()
    _no_crash(at)
    md = _markdown(at)
    assert "Face #1" in md and "happy" in md
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) >= 1
    assert len(at.get("download_button")) == 3


def test_home_sample_group_and_heatmaps():
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.segmented_control(key="source").set_value("Sample photos").run()
    at.selectbox(key="sample").set_value(
        "Group of four faces (composited from the astronaut photo)").run()
    at.toggle(key="explain").set_value(True).run()
    _no_crash(at)
    assert _markdown(at).count("Face #") == 4
    assert len(at.get("plotly_chart")) == 4


def test_home_bad_upload_is_a_friendly_error():
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.get("file_uploader")[0].set_value(("notes.png", b"this is text", "image/png")).run()
    _no_crash(at)
    assert "not an image" in at.error[0].value


def test_home_photo_without_a_face():
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(buf, format="PNG")
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.get("file_uploader")[0].set_value(("sky.png", buf.getvalue(), "image/png")).run()
    _no_crash(at)
    assert "no face found" in at.warning[0].value


def test_webcam_snapshot():
    buf = io.BytesIO()
    Image.open(ASTRONAUT).convert("RGB").save(buf, format="JPEG")
    at = AppTest.from_file(WEBCAM, default_timeout=60).run()
    _no_crash(at)
    at.get("camera_input")[0].set_value(("snapshot.jpg", buf.getvalue(), "image/jpeg")).run()
    _no_crash(at)
    assert "happy" in _markdown(at)


def test_webcam_live_page_with_webrtc_patched():
    with mock.patch("streamlit_webrtc.webrtc_streamer") as streamer:
        streamer.return_value.state.playing = False
        at = AppTest.from_file(WEBCAM, default_timeout=60).run()
        at.segmented_control(key="webcam_mode").set_value("Live video").run()
        _no_crash(at)
        kwargs = streamer.call_args.kwargs
        assert kwargs["async_processing"] is True
        assert kwargs["rtc_configuration"]["iceServers"]
        assert "START" in at.info[0].value
        # The real callback the page registered, on a real frame:
        import av

        frame = av.VideoFrame.from_ndarray(
            np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((640, 480))), format="rgb24")
        out = kwargs["video_frame_callback"](frame)
        assert out.width == 640 and out.height == 480
        assert not np.array_equal(out.to_ndarray(format="rgb24"), frame.to_ndarray(format="rgb24"))


def _fixture_run(root: Path, name: str, state: str, epochs: int = 3) -> Path:
    run = root / name
    run.mkdir(parents=True)
    runs.atomic_write_json(run / "config.json", {"preset": "vgg_gap", "epochs": epochs})
    runs.write_history(run / "history.csv", [
        {"epoch": e, "loss": 2 - e / 3, "accuracy": 0.3 + e / 10, "val_loss": 2.1 - e / 3,
         "val_accuracy": 0.28 + e / 10, "learning_rate": 1e-3, "seconds": 60.0}
        for e in range(1, epochs + 1)])
    runs.write_status(run, state, epoch=epochs, epochs=epochs)
    if state == "finished":
        cm = (np.eye(7, dtype=int) * 10 + 1).tolist()
        per = {c: {"precision": 0.6, "recall": 0.5, "f1": 0.55, "support": 16}
               for c in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")}
        runs.atomic_write_json(run / "metrics.json", {
            "n": 112, "accuracy": 0.625, "macro_f1": 0.6, "per_class": per,
            "confusion_matrix": cm, "tta": {"mode": "flip", "accuracy": 0.64, "macro_f1": 0.61}})
    return run


def test_dashboard_on_fixture_runs():
    _fixture_run(runs.RUNS_DIR, "20260101-000000-vgg_gap", "finished")
    _fixture_run(runs.RUNS_DIR, "20260102-000000-seed", "stopped", epochs=2)
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    _no_crash(at)
    table = at.dataframe[0].value
    assert "20260101-000000-vgg_gap" in set(table["run"])
    assert any(r.startswith("shipped") for r in table["run"])  # the shipped model's history
    # The shipped model's epochs: all its stages (a warm restart), done of planned.
    meta = json.loads((ROOT / "models" / "fer_vgg.json").read_text())
    stages = meta["training"].get("stages") or [{"config": meta["config"]}]
    planned = sum(stage["config"]["epochs"] for stage in stages)
    row = table[table["run"] == "shipped: fer_vgg"].iloc[0]
    assert row["status"] == f"{len(meta['history'])}/{planned}"
    at.multiselect(key="compare_runs").set_value(
        ["20260101-000000-vgg_gap", "20260102-000000-seed"]).run()
    _no_crash(at)
    at.selectbox(key="metrics_run").set_value("20260101-000000-vgg_gap").run()
    _no_crash(at)
    assert [m.value for m in at.metric][:2] == ["62.5%", "60.0%"]
    assert len(at.get("plotly_chart")) == 3  # curves, confusion matrix, per-class bars


def _wait_for(predicate, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError("timed out")


def _start_from_page(at, data: Path, epochs: int, init_from: str = "", teacher: str = ""):
    at.text_input(key="data_path").set_value(str(data)).run()
    assert "Found" in at.success[0].value
    for field, weights in (("init_from", init_from), ("teacher", teacher)):
        select = at.selectbox(key=f"cfg_vgg_gap_{field}")
        assert select.value == ""  # from scratch, no teacher, unless chosen
        if weights:
            assert ui.short_path(weights) in select.options
            select.set_value(weights)
    at.number_input(key="cfg_vgg_gap_epochs").set_value(epochs)
    at.number_input(key="cfg_vgg_gap_batch_size").set_value(16)
    at.number_input(key="cfg_vgg_gap_patience").set_value(0)
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_crash(at)


def test_train_page_launches_a_run_that_finishes(fer_folder):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _no_crash(at)
    _start_from_page(at, fer_folder, epochs=1)
    assert "Started" in at.success[-1].value
    run = _wait_for(lambda: next((r for r in runs.list_runs() if r.state == "finished"), None))
    assert (run.path / "metrics.json").exists() and (run.path / "best.keras").exists()
    at.run()
    assert any(f"{run.run_id}**: finished" in c.value for c in at.caption)
    # A second run starts from the first one's weights (a warm restart / fine-tune) and
    # distils from it.
    best = str(run.path / "best.keras")
    _start_from_page(at, fer_folder, epochs=1, init_from=best, teacher=best)
    child = _wait_for(lambda: next((r for r in runs.list_runs() if r.path != run.path
                                    and r.state == "finished"), None))
    config = json.loads((child.path / "config.json").read_text())
    assert (config["init_from"], config["teacher"]) == (best, best)
    assert "starting from the weights of" in child.log_tail(200)
    assert "ten-crop accuracy" in child.log_tail(200)


def test_train_page_stop_and_one_run_at_a_time(fer_folder):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _start_from_page(at, fer_folder, epochs=200)
    run = _wait_for(lambda: next((r for r in runs.list_runs() if r.state == "running"), None))
    # A second launch is refused while the first runs.
    at2 = AppTest.from_file(TRAIN, default_timeout=60).run()
    _start_from_page(at2, fer_folder, epochs=1)
    assert "one run at a time" in at2.error[-1].value
    _wait_for(lambda: len(runs.load_run(run.path).history) >= 1)  # something to resume
    at.run()
    at.button(key="stop").click().run()
    _no_crash(at)
    _wait_for(lambda: runs.load_run(run.path).state == "stopped", timeout=120)
    # The stopped run continues from its last saved epoch, in a new process.
    done = len(runs.load_run(run.path).history)
    at.run()
    at.button(key="resume").click().run()
    _no_crash(at)
    _wait_for(lambda: len(runs.load_run(run.path).history) > done)
    resumed = runs.load_run(run.path)
    assert resumed.state == "running"
    assert [r["epoch"] for r in resumed.history][:done + 1] == list(range(1, done + 2))
    runs.request_stop(run.path)
    _wait_for(lambda: runs.load_run(run.path).state == "stopped", timeout=120)


def test_train_page_read_only(monkeypatch):
    monkeypatch.setenv("FER_READ_ONLY", "1")
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _no_crash(at)
    assert "turned off" in at.info[-1].value
    assert not at.get("form")
