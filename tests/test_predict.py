"""Detection and prediction on a real photo, bad inputs, thread safety, and the predict CLI."""

import io
import json
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from fer.data import CLASSES
from fer.detect import FaceDetector
from fer.predict import ImageError, ModelError, Predictor, load_image, load_model
from fer.render import draw_faces, gradcam_overlay
from fer.samples import GROUP_PLACES, group_photo

# Where Eileen Collins' face is in skimage's astronaut.png (512x512), by eye.
FACE_REGION = (160, 60, 290, 210)  # x1, y1, x2, y2


@pytest.fixture(scope="module")
def predictor():
    return Predictor()


@pytest.fixture(scope="module")
def group():
    """Four copies of the astronaut's head, of different sizes, on a plain canvas."""
    return group_photo(), GROUP_PLACES


def _inside(box, region):
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def test_astronaut_one_happy_face_where_it_is(predictor, astronaut):
    result = predictor.predict(astronaut)
    assert result.reason is None and len(result.faces) == 1
    face = result.faces[0]
    assert _inside(face.box, FACE_REGION)
    assert face.label == "happy" and face.score > 0.5
    assert face.probs.shape == (7,) and face.probs.sum() == pytest.approx(1, abs=1e-4)
    assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8


def test_every_input_form_gives_the_same_answer(predictor, astronaut):
    raw = astronaut.read_bytes()
    pil = Image.open(astronaut)
    arr = np.asarray(pil.convert("RGB"))
    results = [predictor.predict(s) for s in (astronaut, str(astronaut), raw, pil, arr)]
    for r in results[1:]:
        np.testing.assert_allclose(r.faces[0].probs, results[0].faces[0].probs, atol=1e-5)


def test_several_faces_of_different_sizes(predictor, group):
    canvas, places = group
    result = predictor.predict(canvas)
    assert len(result.faces) == 4
    for (x, y), size in places:
        region = (x, y, x + size, y + size * 220 / 190)
        assert sum(_inside(f.box, region) for f in result.faces) == 1
    assert all(f.label == "happy" for f in result.faces)


def test_exif_orientation_is_applied(predictor, astronaut):
    rotated = Image.open(astronaut).convert("RGB").rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": undoes the rotation above
    buf = io.BytesIO()
    rotated.save(buf, format="JPEG", exif=exif, quality=95)
    result = predictor.predict(buf.getvalue())
    assert result.image.size == (512, 512)
    assert len(result.faces) == 1 and _inside(result.faces[0].box, FACE_REGION)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "I;16", "I", "F"])
def test_any_pillow_mode(predictor, astronaut, mode):
    im = Image.open(astronaut).convert("RGB")
    if mode in ("I;16", "I", "F"):
        im = Image.fromarray((np.asarray(im.convert("L"), np.float32) * 200).astype(
            {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    else:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="TIFF")
    result = predictor.predict(buf.getvalue())
    assert result.image.mode == "RGB" and len(result.faces) == 1


def test_no_face_gives_a_reason_not_an_exception(predictor):
    result = predictor.predict(np.full((300, 400, 3), 128, np.uint8))
    assert result.faces == [] and "no face" in result.reason


def test_tiny_image_gives_a_reason(predictor):
    result = predictor.predict(np.zeros((10, 10), np.uint8))
    assert result.faces == [] and "10x10" in result.reason


def test_whole_image_mode_for_face_crops(predictor, astronaut):
    crop = Image.open(astronaut).crop((165, 60, 285, 180))
    result = predictor.predict(crop, detect=False)
    assert len(result.faces) == 1 and result.faces[0].box == (0, 0, 120, 120)
    assert result.faces[0].label == "happy"


def test_not_an_image(predictor, tmp_path):
    with pytest.raises(ImageError, match="not an image"):
        predictor.predict(b"%PDF-1.4 this is not a picture")
    with pytest.raises(ImageError, match="no such file"):
        predictor.predict(tmp_path / "missing.jpg")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(path)  # 144 MP, a few KB on disk
    with pytest.raises(ImageError, match="MP"):
        load_image(path)


def test_huge_photo_is_downscaled(predictor, astronaut):
    big = Image.open(astronaut).convert("RGB").resize((4000, 4000))
    result = predictor.predict(big)
    assert max(result.image.size) == 1920 and result.scale == pytest.approx(0.48)
    assert len(result.faces) == 1


def test_tta_and_gradcam(predictor, astronaut):
    plain = predictor.predict(astronaut).faces[0]
    tta = predictor.predict(astronaut, tta=True).faces[0]
    assert tta.label == "happy" and not np.allclose(tta.probs, plain.probs)
    heat = predictor.gradcam(plain.crop)
    assert heat.shape == (48, 48) and heat.max() == pytest.approx(1.0) and heat.min() >= 0
    # The smile should matter more than the forehead.
    assert heat[30:44, 12:36].mean() > heat[0:12, 12:36].mean()
    assert gradcam_overlay(plain.crop, heat).size == (192, 192)


def test_app_tta_averages_the_same_views_as_the_reported_evaluation(predictor, astronaut,
                                                                     monkeypatch):
    from fer.evaluate import predict_probs

    crops = predictor.predict(astronaut).faces[0].crop[None]
    for mode in ("flip", "tencrop"):
        monkeypatch.setattr(predictor, "tta_mode", mode)
        monkeypatch.setattr(predictor, "tta_crop", 40)
        np.testing.assert_allclose(predictor.classify(crops, tta=True),
                                   predict_probs(predictor.model, crops, mode, 40), atol=1e-5)


def test_tta_mode_comes_from_the_model_metadata():
    from types import SimpleNamespace

    from fer.predict import _tta_of

    flexible, fixed = SimpleNamespace(input_shape=(None, None, None, 1)), SimpleNamespace(
        input_shape=(None, 48, 48, 1))
    meta = {"evaluation": {"tta": {"mode": "tencrop"}}, "config": {"crop_size": 40}}
    assert _tta_of(meta, flexible) == ("tencrop", 40)
    assert _tta_of(meta, fixed)[0] == "flip"  # the seed net takes only 48x48
    assert _tta_of({}, flexible)[0] == "flip"


def test_draw_faces_marks_the_box(predictor, astronaut):
    result = predictor.predict(astronaut)
    drawn = np.asarray(draw_faces(result.image, result.faces)).astype(int)
    original = np.asarray(result.image).astype(int)
    x, y, w, h = result.faces[0].box
    assert np.abs(drawn[y + h // 2, x] - original[y + h // 2, x]).sum() > 30  # left edge
    assert np.array_equal(drawn[500, 500], original[500, 500])


def test_eight_threads_match_sequential(predictor, astronaut, group):
    inputs = [astronaut, group[0]] * 8
    sequential = [predictor.predict(i) for i in inputs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(predictor.predict, inputs))
    for a, b in zip(sequential, parallel):
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
        for fa, fb in zip(a.faces, b.faces):
            np.testing.assert_allclose(fa.probs, fb.probs, atol=1e-5)


def test_detector_alone(astronaut):
    for model in ("full", "short"):
        found = FaceDetector(model).detect(Image.open(astronaut))
        assert len(found) == 1 and _inside(found[0].box, FACE_REGION)
    with pytest.raises(ValueError):
        FaceDetector("huge")


def test_model_loader_refuses_missing_or_mismatched_metadata(tmp_path):
    import shutil

    from fer.predict import DEFAULT_MODEL

    lone = tmp_path / "lone.keras"
    shutil.copy(DEFAULT_MODEL, lone)
    with pytest.raises(ModelError, match="no metadata"):
        load_model(lone)
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    meta["classes"] = ["happy", "sad"]
    lone.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="classes"):
        load_model(lone)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nothing.keras")


def test_predict_cli_jsonl_contract(astronaut, tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.open(astronaut).save(folder / "sub" / "a.png")
    (folder / "broken.jpg").write_bytes(b"nope")
    Image.new("RGB", (200, 200), "gray").save(folder / "blank.png")
    archive = tmp_path / "pics.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(astronaut, "inside/astro.png")
    annotate = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "fer", "predict", "--format", "jsonl", "--annotate",
         str(annotate), str(folder), str(archive), str(tmp_path / "missing.png")],
        cwd=ROOT, capture_output=True, text=True)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 5, res.stdout + res.stderr
    by_path = {r["path"].replace(str(tmp_path), ""): r for r in lines}
    for r in lines:
        assert set(r) == {"path", "faces", "label", "error"}
    astro = by_path["inside/astro.png"]
    assert astro["label"] == "happy" and astro["error"] is None
    face = astro["faces"][0]
    assert set(face) == {"box", "score", "probs", "label"} and list(face["probs"]) == list(CLASSES)
    assert by_path["/in/sub/a.png"]["label"] == "happy"
    assert by_path["/in/blank.png"] == {"path": str(folder / "blank.png"), "faces": [],
                                        "label": None, "error": None}
    assert "not an image" in by_path["/in/broken.jpg"]["error"]
    assert "no such file" in by_path["/missing.png"]["error"]
    assert res.returncode == 1  # some inputs failed
    assert (annotate / "a.annotated.png").exists()


def test_predict_cli_table_and_csv(astronaut):
    for fmt, needle in (("table", "happy"), ("csv", "path,face,x,y,w,h")):
        res = subprocess.run([sys.executable, "-m", "fer", "predict", "--format", fmt,
                              str(astronaut)], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0 and needle in res.stdout, res.stderr
