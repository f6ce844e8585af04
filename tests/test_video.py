"""Video analysis: the tracker on hand-made boxes, the CLI on generated clips, bad inputs, and the
Video page through AppTest."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

from fer.clip import SAMPLE_CLIP, make_clip
from fer.data import CLASSES
from fer.track import IouTracker, iou
from fer.video import (
    COLUMNS,
    VideoError,
    analyse_video,
    default_every,
    output_size,
    probe,
    summarise,
    write_csv,
)

ROOT = Path(__file__).resolve().parent.parent
HAPPY, SAD = np.eye(7)[CLASSES.index("happy")], np.eye(7)[CLASSES.index("sad")]


def _count_frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


class FixedFace:
    """A stand-in predictor: one face at a fixed box, or none (no model, no TensorFlow)."""

    def __init__(self, box=(20, 20, 60, 60), probs=HAPPY):
        self.box, self.probs, self.calls = box, probs, 0

    def predict(self, rgb, fast=False):
        self.calls += 1
        faces = [] if self.box is None else [SimpleNamespace(box=self.box, probs=self.probs)]
        return SimpleNamespace(faces=faces, scale=1.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # 3 s at 24 fps, one face gliding left to right: 72 frames.
    return make_clip(tmp_path_factory.mktemp("clip") / "one.mp4", seconds=3, fps=24,
                     size=(480, 270), faces=1)


# --- tracker -------------------------------------------------------------------------------

def test_iou_of_hand_made_boxes():
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0


def test_a_moving_face_keeps_its_id_and_a_new_one_gets_the_next():
    t = IouTracker()
    ids = [t.update([(10 * i, 50, 100, 100)], [HAPPY])[0].track for i in range(10)]
    assert ids == [1] * 10
    out = t.update([(90, 50, 100, 100), (400, 300, 80, 80)], [HAPPY, SAD])
    assert [f.track for f in out] == [1, 2]


def test_a_face_missed_for_a_frame_keeps_its_id_but_not_after_max_missed():
    t = IouTracker(max_missed=2)
    assert t.update([(0, 0, 50, 50)], [HAPPY])[0].track == 1
    t.update([], [])  # missed once
    assert t.update([(2, 0, 50, 50)], [HAPPY])[0].track == 1
    for _ in range(3):  # missed three times: more than max_missed
        t.update([], [])
    assert t.update([(2, 0, 50, 50)], [HAPPY])[0].track == 2


def test_two_faces_listed_in_swapped_order_keep_their_ids():
    t = IouTracker()
    a, b = (0, 0, 50, 50), (200, 0, 50, 50)
    assert [f.track for f in t.update([a, b], [HAPPY, SAD])] == [1, 2]
    assert [f.track for f in t.update([(205, 0, 50, 50), (5, 0, 50, 50)], [SAD, HAPPY])] == [2, 1]


def test_probabilities_are_smoothed_per_track():
    t = IouTracker(smoothing=0.5)
    t.update([(0, 0, 50, 50)], [HAPPY])
    face = t.update([(0, 0, 50, 50)], [SAD])[0]
    # Half the new frame, half the running average: happy 0.5, sad 0.5, by hand.
    assert face.probs[CLASSES.index("happy")] == pytest.approx(0.5)
    assert face.probs[CLASSES.index("sad")] == pytest.approx(0.5)
    assert np.array_equal(face.raw, SAD)


def test_default_every_analyses_at_least_five_frames_a_second():
    for fps, every in ((30, 6), (25, 5), (24, 4), (60, 12), (10, 2), (4, 1), (29.97, 5)):
        assert default_every(fps) == every
        assert fps / every >= 5 or every == 1


def test_output_size_downscales_4k_to_720p_with_even_sides():
    assert output_size(3840, 2160) == (1280, 720)
    w, h = output_size(641, 361)  # odd sides: H.264's 4:2:0 colour needs even ones
    assert w % 2 == 0 and h % 2 == 0 and abs(w - 641) == 1 and abs(h - 361) == 1
    assert output_size(1080, 1920) == (720, 1280)


def test_summary_shares_and_dominant_emotion():
    rows = [{"track": 1, "time": i / 5, "label": lab} for i, lab in
            enumerate(["happy", "happy", "happy", "sad"])]
    rows += [{"track": 2, "time": 0.0, "label": "angry"}]
    s = summarise(rows)
    assert [x.track for x in s] == [1, 2]  # most seen first
    assert s[0].shares["happy"] == 0.75 and s[0].shares["sad"] == 0.25
    assert s[0].dominant == "happy" and s[0].first == 0.0 and s[0].last == pytest.approx(0.6)
    assert [x.track for x in summarise(rows, min_frames=2)] == [1]


# --- analysis with a stand-in predictor -----------------------------------------------------

def test_output_keeps_frame_count_and_rate(clip, tmp_path):
    fake = FixedFace()
    result = analyse_video(clip, fake, output=tmp_path / "out.mp4", every=4)
    assert result.frames == 72
    assert fake.calls == result.analysed == 18  # frames 0, 4, ..., 68
    assert _count_frames(tmp_path / "out.mp4") == 72
    info = probe(tmp_path / "out.mp4")
    assert info.fps == pytest.approx(24) and (info.width, info.height) == (480, 270)
    assert info.codec == "h264"  # what browsers play
    assert {r["track"] for r in result.rows} == {1}


def test_max_seconds_stops_early_and_says_so(clip):
    result = analyse_video(clip, FixedFace(), max_seconds=1)
    assert result.frames == 24
    assert "first 1 s" in result.limited


def test_a_4k_clip_is_downscaled_and_boxes_reported_in_its_pixels(tmp_path):
    path = make_clip(tmp_path / "4k.mp4", seconds=0.25, fps=8, size=(3840, 2160))
    # The stand-in sees the 1280x720 frame: its box (100, 100, 200, 200) is 3x that in 4K.
    result = analyse_video(path, FixedFace(box=(100, 100, 200, 200)), output=tmp_path / "o.mp4")
    assert result.size == (1280, 720)
    assert probe(tmp_path / "o.mp4")[:2] == (1280, 720)
    row = result.rows[0]
    assert (row["x"], row["y"], row["w"], row["h"]) == (300, 300, 600, 600)


def test_not_a_video_gets_a_clear_message(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello, not a video")
    with pytest.raises(VideoError, match="notes.mp4 is not a video") as exc:
        analyse_video(bad, FixedFace())
    assert str(tmp_path) not in str(exc.value)  # no server path in the message
    with pytest.raises(VideoError, match="not a video"):
        analyse_video(b"\x00" * 1000, FixedFace())


def test_an_audio_file_is_not_a_video(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    with pytest.raises(VideoError, match="voice.m4a has no video stream"):
        analyse_video(path, FixedFace())


def test_truncated_clip_keeps_what_came_before_and_says_where(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # faststart: the index is whole, the frames are not
    result = analyse_video(cut, FixedFace(), output=tmp_path / "o.mp4")
    assert 0 < result.frames < 72
    assert result.stopped and f"{result.seconds:.1f} s" in result.stopped
    assert len(result.rows) == result.analysed > 0
    assert _count_frames(tmp_path / "o.mp4") == result.frames


def test_damaged_bytes_mid_stream_keep_what_came_before(clip, tmp_path):
    data = bytearray(clip.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 3000] = bytes(3000)
    result = analyse_video(bytes(data), FixedFace())
    assert 0 < result.frames < 72 and result.stopped
    assert f"frame {result.frames}" in result.stopped or "truncated" in result.stopped


def test_a_clip_without_faces_gives_no_rows(clip):
    result = analyse_video(clip, FixedFace(box=None))
    assert result.rows == [] and result.frames == 72 and summarise(result.rows) == []


def test_csv_has_the_documented_columns(tmp_path):
    rows = [{"time": 0.0, "frame": 0, "track": 1, "x": 1, "y": 2, "w": 3, "h": 4,
             "label": "happy", **{c: 0.1 for c in CLASSES}}]
    text = write_csv(rows, tmp_path / "t.csv")
    assert text.splitlines()[0] == ("time,frame,track,x,y,w,h,label,angry,disgust,fear,happy,"
                                    "neutral,sad,surprise")
    assert COLUMNS == text.splitlines()[0].split(",")
    assert (tmp_path / "t.csv").read_text() == text


# --- the CLI with the shipped model ----------------------------------------------------------

def test_cli_one_moving_face_one_track(clip, tmp_path, capsys):
    from fer.__main__ import main

    out, table = tmp_path / "annotated.mp4", tmp_path / "timeline.csv"
    assert main(["video", str(clip), "--output", str(out), "--csv", str(table)]) == 0
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert list(rows[0]) == COLUMNS
    # 24 fps -> every 4th frame -> 6 analysed frames a second, 18 in 3 s; the face is found in
    # (nearly) all of them and keeps one id while it moves.
    assert {r["track"] for r in rows} == {"1"}
    assert len(rows) >= 16
    per_second = np.bincount([int(float(r["time"])) for r in rows], minlength=3)
    assert (per_second >= 5).all()
    assert _count_frames(out) == 72
    assert "1 tracks" in capsys.readouterr().out


def test_cli_refuses_a_text_file(tmp_path, capsys):
    from fer.__main__ import main

    bad = tmp_path / "x.mov"
    bad.write_text("nope")
    assert main(["video", str(bad)]) == 2
    assert "x.mov is not a video" in capsys.readouterr().err


def test_sample_clip_is_bundled_and_small():
    info = probe(SAMPLE_CLIP)
    assert 5 <= info.duration <= 15 and info.codec == "h264"
    assert SAMPLE_CLIP.stat().st_size < 600_000


# --- the Video page ---------------------------------------------------------------------------

PAGE = str(ROOT / "pages" / "4_Video.py")


def _page():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(PAGE, default_timeout=60).run()


def _no_crash(at):
    assert not at.exception, [e.value for e in at.exception]


def test_page_sample_clip_shows_video_timelines_summary_and_downloads():
    at = _page()
    _no_crash(at)
    at.button(key="video_run").click().run()
    _no_crash(at)
    assert not at.error
    md = "\n".join(m.value for m in at.markdown)
    # The sample holds two faces that never cross: two people, both smiling.
    assert md.count("Person #") == 2 and "happy" in md
    assert len(at.get("plotly_chart")) == 2
    assert len(at.get("video")) == 1
    assert len(at.get("download_button")) == 2
    # Revisiting keeps the result instead of analysing again.
    at.run()
    assert len(at.get("video")) == 1 and not at.get("button")


def test_page_bad_upload_is_a_friendly_error():
    at = _page()
    at.segmented_control(key="video_source").set_value("Upload a clip").run()
    assert "Upload a clip" in at.info[0].value
    at.get("file_uploader")[0].set_value(("holiday.mp4", b"not really a video" * 50,
                                          "video/mp4")).run()
    at.button(key="video_run").click().run()
    _no_crash(at)
    assert "holiday.mp4 is not a video" in at.error[0].value
    assert "/tmp" not in at.error[0].value and "Traceback" not in at.error[0].value


def test_page_refuses_a_clip_over_the_size_limit(monkeypatch):
    import fer.video

    result = fer.video.analyse_clip(b"\x00" * 3_000_000, "big.mp4", FixedFace(), max_mb=2)
    assert result.result is None and "big.mp4 is 3 MB; the limit here is 2 MB" in result.error


def test_page_notes_a_clip_without_faces(tmp_path):
    import fer.video

    clip = make_clip(tmp_path / "c.mp4", seconds=1, fps=10, size=(160, 96))
    a = fer.video.analyse_clip(clip.read_bytes(), "c.mp4", FixedFace(box=None), max_seconds=0.5)
    assert a.error is None and a.video and a.csv.count("\n") == 1  # header only
    assert any("first 0.5 s" in n for n in a.notes)
    assert any("No face was found in the 3 analysed frames" in n for n in a.notes)
