"""The FER2013 loader: every layout, the cache, the split, and every bad input."""

import zipfile

import numpy as np
import pytest
from conftest import _png, shared_zip_or_skip, synthetic_faces

from fer.data import CLASSES, DatasetError, load_fer2013, stratified_split


def _check(ds, n_train, n_test):
    train, test = ds["train"], ds["test"]
    assert train.images.shape == (n_train, 48, 48) and train.images.dtype == np.uint8
    assert test.images.shape == (n_test, 48, 48)
    assert set(np.unique(train.labels)) == set(range(len(CLASSES)))
    assert ds.report.counts["train"] == {c: n_train // 7 for c in CLASSES}


def test_folder_layout_nested_like_the_original_readme(fer_folder):
    ds = load_fer2013(fer_folder.parent, quiet=True)  # the folder that holds Dataset/
    _check(ds, 84, 21)


def test_zip_read_in_place_matches_folder(fer_folder, fer_zip):
    a = load_fer2013(fer_folder, quiet=True)
    b = load_fer2013(fer_zip, quiet=True)
    _check(b, 84, 21)
    order_a, order_b = np.lexsort(a["train"].images.reshape(84, -1).T), np.lexsort(
        b["train"].images.reshape(84, -1).T)
    np.testing.assert_array_equal(a["train"].images[order_a], b["train"].images[order_b])
    np.testing.assert_array_equal(a["train"].labels[order_a], b["train"].labels[order_b])


def test_pixels_survive_decoding_exactly(fer_folder):
    images, _ = synthetic_faces(12, 0)
    ds = load_fer2013(fer_folder, quiet=True)
    assert {im.tobytes() for im in images} == {im.tobytes() for im in ds["train"].images}


def test_kaggle_csv_maps_labels_and_usage(fer_csv):
    ds = load_fer2013(fer_csv, quiet=True)
    assert len(ds["train"].labels) == 42 and len(ds["test"].labels) == 14
    assert len(ds["private"].labels) == 14
    # The csv orders emotions differently; the synthetic pattern sits at row 6*class.
    for img, y in zip(ds["train"].images, ds["train"].labels):
        assert img[y * 6 : y * 6 + 8].mean() > 140


def test_second_load_comes_from_the_cache(fer_zip, monkeypatch):
    from fer import data

    first = load_fer2013(fer_zip, quiet=True)

    def no_decoding(_bytes):
        raise AssertionError("the cached load decoded an image")

    monkeypatch.setattr(data, "_decode", no_decoding)  # a cached load decodes nothing
    second = load_fer2013(fer_zip, quiet=True)
    assert second.report.from_cache and not first.report.from_cache
    np.testing.assert_array_equal(first["train"].images, second["train"].images)


def test_cache_is_invalidated_when_the_source_changes(fer_zip, tmp_path):
    copy = tmp_path / "copy.zip"
    copy.write_bytes(fer_zip.read_bytes())
    load_fer2013(copy, quiet=True)
    with zipfile.ZipFile(copy, "a") as zf:
        zf.writestr("Dataset/train/happy/extra.png", _png(np.zeros((48, 48), np.uint8)))
    again = load_fer2013(copy, quiet=True)
    assert not again.report.from_cache
    assert again.report.counts["train"]["happy"] == 13


def test_damaged_cache_is_rebuilt(fer_zip, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    load_fer2013(fer_zip, quiet=True)
    for f in tmp_path.glob("*.npz"):
        f.write_bytes(b"garbage")
    ds = load_fer2013(fer_zip, quiet=True)
    assert not ds.report.from_cache and len(ds["train"].labels) == 84


def test_stratified_split_is_seeded_and_stratified(fer_folder):
    train = load_fer2013(fer_folder, quiet=True)["train"]
    a_tr, a_val = stratified_split(train, 0.25, seed=1)
    b_tr, b_val = stratified_split(train, 0.25, seed=1)
    np.testing.assert_array_equal(a_val.images, b_val.images)
    assert np.bincount(a_val.labels).tolist() == [3] * 7
    assert len(a_tr.labels) + len(a_val.labels) == 84
    _, c_val = stratified_split(train, 0.25, seed=2)
    assert not np.array_equal(a_val.images, c_val.images)
    with pytest.raises(DatasetError):
        stratified_split(train, 1.5, seed=0)


def test_missing_class_folders_are_named(tmp_path):
    for c in ("happy", "sad", "faces"):
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "a.png").write_bytes(_png(np.zeros((48, 48), np.uint8)))
    with pytest.raises(DatasetError) as err:
        load_fer2013(tmp_path, quiet=True)
    msg = str(err.value)
    assert "missing" in msg and "angry" in msg and "faces" in msg


def test_no_layout_at_all_says_what_it_found(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="photos"):
        load_fer2013(tmp_path, quiet=True)


def test_extra_folders_warn_and_bad_files_are_skipped(fer_folder, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(fer_folder, root)
    (root / "train" / "contempt").mkdir()
    (root / "train" / "contempt" / "x.png").write_bytes(_png(np.zeros((48, 48), np.uint8)))
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "train" / "happy" / "notes.txt").write_text("hello")
    ds = load_fer2013(root, quiet=True)
    assert any("contempt" in w for w in ds.report.warnings)
    assert len(ds.report.skipped) == 2
    assert ds.report.counts["train"]["happy"] == 12
    assert "skipped 2" in ds.report.summary()


def test_empty_split_is_a_clear_error(tmp_path):
    for c in CLASSES:
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "bad.jpg").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="no readable images"):
        load_fer2013(tmp_path, quiet=True)


def test_missing_source_and_wrong_file_type(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_fer2013(tmp_path / "nowhere", quiet=True)
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(DatasetError, match="not a folder"):
        load_fer2013(other, quiet=True)


def test_zip_slip_member_is_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../etc/train/happy/x.png", b"x")
    with pytest.raises(DatasetError, match="unsafe path"):
        load_fer2013(path, quiet=True)


def test_zip_bomb_is_refused(tmp_path, monkeypatch):
    import fer.data

    monkeypatch.setattr(fer.data, "MAX_ZIP_BYTES", 10_000)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/happy/zeros.png", b"\0" * 50_000)  # compresses to ~100 bytes
    with pytest.raises(DatasetError, match="inflates"):
        load_fer2013(path, quiet=True)


def test_bad_csv_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="emotion,pixels"):
        load_fer2013(path, quiet=True)


@pytest.mark.fer2013
def test_real_fer2013_zip_counts():
    ds = load_fer2013(shared_zip_or_skip(), quiet=True)
    assert ds.report.counts["train"] == {
        "angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965,
        "sad": 4830, "surprise": 3171}
    assert sum(ds.report.counts["test"].values()) == 3589
    assert ds.report.counts["test"]["disgust"] == 56
    assert not ds.report.skipped
    # Train and test share statistics (see REFERENCE.md on the restored train copy).
    assert abs(ds["train"].images.mean() - ds["test"].images.mean()) < 5
