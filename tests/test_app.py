"""Every page through Streamlit's AppTest: real model, real photo, patched WebRTC."""

import io
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import ASTRONAUT
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer import runs, ui

ROOT = Path(__file__).resolve().parent.parent
HOME = str(ROOT / "app.py")  # the router: its default page is pages/0_Home.py
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
    # One heatmap per face (AppTest stores no pixels: test_gradcam_overlay_colours_the_face
    # checks what the overlay looks like).
    heatmaps = [img for e in at.get("image") for img in e.proto.imgs if img.caption == "Grad-CAM"]
    assert len(heatmaps) == 4


def test_gradcam_overlay_colours_the_face():
    from fer.render import gradcam_overlay

    crop = np.full((48, 48), 128, np.uint8)  # a plain grey face
    heat = np.zeros((48, 48))
    heat[:, :24] = 1.0  # the left half matters, the right half not at all
    overlay = np.asarray(gradcam_overlay(crop, heat)).astype(int)  # 192x192 RGB
    hot, cold = overlay[:, 10:80].reshape(-1, 3), overlay[:, 112:182].reshape(-1, 3)
    # Jet colours: 1 is red, 0 is blue; blended at 45% over grey 128 both differ from it.
    assert (hot[:, 0] > hot[:, 2] + 60).all() and (cold[:, 2] > cold[:, 0] + 60).all()
    assert np.abs(overlay - 128).max(-1).min() > 20  # no pixel left as the plain grey face


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


def test_home_face_crop_toggle_classifies_the_whole_picture():
    buf = io.BytesIO()
    Image.new("RGB", (400, 400), (128, 128, 128)).save(buf, format="PNG")
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.get("file_uploader")[0].set_value(("crop.png", buf.getvalue(), "image/png")).run()
    assert "no face found" in at.warning[0].value
    at.toggle(key="face_crop").set_value(True).run()
    _no_crash(at)
    assert not at.warning and "Face #1" in _markdown(at)


def test_choices_survive_a_visit_to_another_page():
    with mock.patch("streamlit_webrtc.webrtc_streamer") as streamer:
        streamer.return_value.state.playing = False
        at = AppTest.from_file(HOME, default_timeout=60).run()
        at.segmented_control(key="source").set_value("Sample photos").run()
        at.toggle(key="tta").set_value(True).run()
        at.switch_page("pages/1_Webcam.py").run()
        _no_crash(at)
        at.segmented_control(key="webcam_mode").set_value("Live video").run()
        at.switch_page("pages/0_Home.py").run()
        _no_crash(at)
        assert at.toggle(key="tta").value is True
        assert at.segmented_control(key="source").value == "Sample photos"
        at.switch_page("pages/1_Webcam.py").run()
        assert at.segmented_control(key="webcam_mode").value == "Live video"


def test_small_image_label_stays_inside_and_is_not_stretched():
    from fer.predict import Predictor
    from fer.render import annotate

    face = Image.open(ASTRONAUT).convert("L").crop((170, 70, 280, 180)).resize((48, 48))
    result = Predictor().predict(face, detect=False)
    drawn, note = annotate(result)
    assert drawn.size == (336, 336) and "enlarged 7x" in note  # ceil(320 / 48) = 7
    from fer.render import EMOTION_COLORS

    rgb = tuple(int(EMOTION_COLORS[result.faces[0].label][i : i + 2], 16) for i in (1, 3, 5))
    band = (np.asarray(drawn) == rgb).all(axis=2)[8:-8, 8:-8].sum(axis=1) >= 50
    # The label's filled band (>= 50 px wide in the label colour; the box outline along the
    # edges excluded) lies inside the picture, at its top: the box fills the picture, so there
    # is no room above or below it.
    rows = np.where(band)[0] + 8
    assert len(rows) >= 4 and rows.max() < 40


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
    # A calibrated shipped model adds its reliability diagram, before and after calibration.
    at.multiselect(key="compare_runs").set_value(["shipped: fer_vgg"]).run()
    at.selectbox(key="metrics_run").set_value("shipped: fer_vgg").run()
    _no_crash(at)
    assert "Calibration" in [h.value for h in at.subheader]
    charts = at.get("plotly_chart")
    assert len(charts) == 4
    figure = json.loads(charts[-1].proto.spec)
    names = [trace.get("name", "") for trace in figure["data"]]
    temperature = meta["calibration"]["temperature"]
    assert any(n.startswith("before calibration") for n in names)
    assert any(f"T = {temperature:.2f}" in n for n in names)


def _wait_for(predicate, timeout=180):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError("timed out")


def _allow_training(monkeypatch, data_dir: Path | None = None) -> None:
    # AppTest sends no Host header: the page treats it like a public deployment unless the
    # owner's switch is on. FER_DATA_DIR lets it read the fixtures' temporary folders.
    monkeypatch.setenv("FER_ALLOW_TRAINING", "1")
    if data_dir is not None:
        monkeypatch.setenv("FER_DATA_DIR", str(data_dir))


def _start_from_page(at, data: Path, epochs: int, init_from: str = "",
                     teacher: tuple[str, ...] = ()):
    at.text_input(key="data_path").set_value(str(data)).run()
    assert any("Found" in s.value for s in at.success)
    select = at.selectbox(key="cfg_vgg_gap_init_from")
    assert select.value == ""  # from scratch unless chosen
    if init_from:
        assert ui.short_path(init_from) in select.options
        select.set_value(init_from)
    teachers = at.multiselect(key="cfg_vgg_gap_teacher")
    assert teachers.value == []  # no teacher unless chosen
    for weights in teacher:
        assert ui.short_path(weights) in teachers.options
        teachers.select(weights)
    at.number_input(key="cfg_vgg_gap_epochs").set_value(epochs)
    at.number_input(key="cfg_vgg_gap_batch_size").set_value(16)
    at.number_input(key="cfg_vgg_gap_patience").set_value(0)
    next(b for b in at.button if b.label == "Start training").click().run()
    _no_crash(at)


def test_train_page_launches_a_run_that_finishes(fer_folder, monkeypatch):
    _allow_training(monkeypatch, fer_folder.parent)
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _no_crash(at)
    _start_from_page(at, fer_folder, epochs=1)
    assert "Started" in at.success[0].value
    run = _wait_for(lambda: next((r for r in runs.list_runs() if r.state == "finished"), None))
    assert (run.path / "metrics.json").exists() and (run.path / "best.keras").exists()
    at.run()
    assert any(f"{run.run_id}**: finished" in c.value for c in at.caption)
    # A second run starts from the first one's weights (a warm restart / fine-tune) and
    # distils from it.
    best = str(run.path / "best.keras")
    _start_from_page(at, fer_folder, epochs=1, init_from=best, teacher=(best,))
    child = _wait_for(lambda: next((r for r in runs.list_runs() if r.path != run.path
                                    and r.state == "finished"), None))
    config = json.loads((child.path / "config.json").read_text())
    assert (config["init_from"], config["teacher"]) == (best, best)
    assert "starting from the weights of" in child.log_tail(200)
    assert "ten-crop accuracy" in child.log_tail(200)


def test_train_page_stop_and_one_run_at_a_time(fer_folder, monkeypatch):
    _allow_training(monkeypatch, fer_folder.parent)
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
    monkeypatch.setenv("FER_ALLOW_TRAINING", "1")  # read-only wins over the owner's switch
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert "turned off" in at.info[-1].value and not at.get("form")


def test_train_page_is_off_for_a_request_that_is_not_local():
    # AppTest's request has no Host header, like one whose host is unknown: training stays off
    # and the page says why and how to turn it on.
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _no_crash(at)
    message = at.info[-1].value
    assert "Training is off" in message and "FER_ALLOW_TRAINING=1" in message
    assert "streamlit run app.py" in message
    assert not at.get("form") and not at.get("file_uploader")


def test_training_permission_by_host():
    from fer.launch import training_permission

    def allowed(host, ip=None, forwarded=False, allow="", read_only=""):
        return training_permission(host, ip, forwarded=forwarded, allow=allow,
                                   read_only=read_only).allowed

    for local in ("localhost:8501", "127.0.0.1:8501", "[::1]:8501", "http://localhost:8501/Train"):
        assert allowed(local), local
    for public in ("fer.streamlit.app", "localhost.example.com", "10.0.0.5:8501", None, ""):
        assert not allowed(public), public
    assert not allowed("localhost:8501", ip="203.0.113.9")  # a visitor's own address
    assert not allowed("localhost:8501", forwarded=True)  # a proxy here forwarding a visitor
    assert allowed("fer.streamlit.app", allow="1")
    assert not allowed("localhost:8501", allow="1", read_only="1")


def test_train_page_reads_no_folder_outside_the_project(tmp_path, monkeypatch):
    _allow_training(monkeypatch)  # no FER_DATA_DIR: only the project and its uploads
    secret = tmp_path / "private_stuff"
    (secret / "tax_returns").mkdir(parents=True)
    (secret / "tax_returns" / "2025.pdf").write_bytes(b"%PDF")
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.text_input(key="data_path").set_value(str(secret)).run()
    _no_crash(at)
    (error,) = at.error
    assert "project folder" in error.value and "FER\\_DATA\\_DIR" in error.value
    assert "tax" not in error.value
    monkeypatch.setenv("FER_DATA_DIR", str(tmp_path))  # the owner lists the folder: now read
    at.run()
    assert "tax\\_returns" in at.error[0].value


def _rendered_text(markdown: str) -> str:
    """What a Markdown renderer shows for ``markdown`` (CommonMark, as Streamlit's)."""
    import html
    import re

    from markdown_it import MarkdownIt

    return html.unescape(re.sub(r"<[^>]+>", "", MarkdownIt().render(markdown))).strip()


def test_a_rejected_upload_is_deleted_and_its_message_is_literal(tmp_path, monkeypatch):
    import zipfile

    _allow_training(monkeypatch)
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:  # not the Kaggle layout
        zf.writestr("_raw_/faces*2024*/img_1.png", b"x")
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.segmented_control(key="data_source").set_value("Upload the Kaggle zip").run()
    at.get("file_uploader")[0].set_value(("my_faces.zip", bad.getvalue(), "application/zip"))
    at.run()
    _no_crash(at)
    (error,) = at.error
    shown = _rendered_text(error.value)
    assert "my_faces.zip" in shown and "_raw_" in shown and "train/<class>/" in shown
    assert str(runs.RUNS_DIR) not in shown and "uploads" not in shown
    assert not list((runs.RUNS_DIR / "uploads").glob("*"))  # nothing kept
    assert not at.success


def test_a_training_process_that_cannot_start_shows_as_failed(fer_folder, monkeypatch):
    from fer import launch

    def no_memory(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    _allow_training(monkeypatch, fer_folder.parent)
    monkeypatch.setattr(launch.subprocess, "Popen", no_memory)
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _start_from_page(at, fer_folder, epochs=1)
    (run,) = runs.list_runs()
    assert run.state == "failed"
    assert "could not start" in at.error[0].value and "Cannot allocate memory" in at.error[0].value
    assert any(f"{run.run_id}**: failed (the training process could not start" in c.value
               for c in at.caption)
    assert not at.get("progress")  # not shown as queued


class _SleepingChild:
    """A Popen stand-in that looks like a live child (this process) and never exits."""

    def __init__(self, *args, **kwargs):
        import os

        self.pid = os.getpid()

    def wait(self):
        import threading

        threading.Event().wait()


def test_after_start_the_panel_shows_the_new_run_at_once(fer_folder, monkeypatch):
    from fer import launch

    _allow_training(monkeypatch, fer_folder.parent)
    _fixture_run(runs.RUNS_DIR, "20260101-000000-vgg_gap", "finished")
    monkeypatch.setattr(launch.subprocess, "Popen", _SleepingChild)
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    _start_from_page(at, fer_folder, epochs=15)
    new = next(r for r in runs.list_runs() if r.run_id != "20260101-000000-vgg_gap")
    # The same script run that started it shows it, not the previous run.
    (progress,) = at.get("progress")
    assert new.run_id in progress.proto.text and "queued" in progress.proto.text
    assert "Started" in at.success[0].value and new.run_id in at.success[0].value
    # A second start is refused while it is queued; the refusal disappears with that run.
    next(b for b in at.button if b.label == "Start training").click().run()
    assert "still queued" in at.error[0].value
    runs.write_status(new.path, "stopped")
    at.run()
    assert not at.error and not at.success[0].value.startswith("Started")


def test_time_left_reads_in_seconds_minutes_and_hours():
    status = {"state": "running"}
    assert runs.time_left({**status, "eta_seconds": 15 * 2.0}) == "about 30 s left"
    assert runs.time_left({**status, "eta_seconds": 15 * 240.0}) == "about 60 min left"
    assert runs.time_left({**status, "eta_seconds": 125 * 60.0}) == "about 2 h 05 min left"
    assert runs.time_left({**status}) == "time left known after the first epoch"


def test_learning_rate_steps_by_a_fraction_of_itself(monkeypatch):
    _allow_training(monkeypatch)
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    lr = at.number_input(key="cfg_vgg_gap_learning_rate")
    # The old step of 0.01 left "-" disabled (0.002 - 0.01 < min) and "+" jumped to 0.012.
    assert lr.value == 0.002 and lr.step == pytest.approx(0.001)
    assert lr.decrement().value == pytest.approx(0.001) and lr.value >= lr.min
    assert lr.increment().increment().value == pytest.approx(0.003)
    wd = at.number_input(key="cfg_vgg_gap_weight_decay")
    assert wd.value == 0.05 and wd.step == pytest.approx(0.01)


def test_the_dataset_zip_is_scanned_once_per_version(fer_zip, monkeypatch):
    from fer import data

    _allow_training(monkeypatch, fer_zip.parent)
    calls = []
    real = data.describe_source
    monkeypatch.setattr(data, "describe_source", lambda p: (calls.append(p), real(p))[1])
    import streamlit as st

    st.cache_data.clear()
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.text_input(key="data_path").set_value(str(fer_zip)).run()
    at.run()
    at.number_input(key="cfg_vgg_gap_epochs").set_value(3).run()
    assert any("Found" in s.value for s in at.success)
    assert len(calls) == 1


def test_primary_buttons_have_readable_text():
    import tomllib

    theme = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["theme"]

    def luminance(hex_color):  # WCAG 2.x relative luminance
        channels = [int(hex_color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    # Streamlit draws a primary button's label in white on the primary colour.
    contrast = (1.0 + 0.05) / (luminance(theme["primaryColor"]) + 0.05)
    assert contrast >= 4.5, contrast
