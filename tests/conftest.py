"""Shared fixtures: tiny synthetic FER2013 copies in every layout, isolated caches and runs."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fer.data import CLASSES, CSV_LABELS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "fer" / "assets" / "samples"
ASTRONAUT = SAMPLES / "astronaut.png"
SHARED_ZIP = ROOT.parent / "shared" / "data" / "fer2013.zip"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests; run with --runslow or FER_RUNSLOW=1")
    config.addinivalue_line("markers", "fer2013: needs ../shared/data/fer2013.zip")
    config.addinivalue_line("markers", "browser: needs Debian's chromium and playwright")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("FER_RUNSLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow (or FER_RUNSLOW=1) to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def synthetic_faces(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """48x48 uint8 images whose brightness pattern depends on the class (so a net can learn)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(len(CLASSES)):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, (48, 48)).astype(np.uint8)
            img[c * 6 : c * 6 + 8, :] += 150
            images.append(img)
            labels.append(c)
    return np.stack(images), np.array(labels)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory, monkeypatch):
    """Every test gets its own dataset cache and runs directory."""
    from fer import runs

    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FER_CACHE_DIR", str(cache))
    runs_dir = tmp_path_factory.mktemp("runs")
    monkeypatch.setattr(runs, "RUNS_DIR", runs_dir)
    monkeypatch.setenv("FER_RUNS_DIR", str(runs_dir))  # for subprocesses the tests start
    # The deployment switches of the developer's shell must not change what the tests see.
    for name in ("FER_ALLOW_TRAINING", "FER_READ_ONLY", "FER_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fer_folder(tmp_path_factory) -> Path:
    """A Kaggle-layout folder nested like the original README: Dataset/train/<class>/*.png."""
    root = tmp_path_factory.mktemp("folder") / "Dataset"
    for split, n, seed in (("train", 12, 0), ("test", 3, 1)):
        images, labels = synthetic_faces(n, seed)
        for i, (img, y) in enumerate(zip(images, labels)):
            d = root / split / CLASSES[y]
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{split}_{i}.png").write_bytes(_png(img))
    return root


@pytest.fixture(scope="session")
def fer_zip(fer_folder, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zip") / "fer2013.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for p in sorted(fer_folder.rglob("*.png")):
            zf.write(p, p.relative_to(fer_folder.parent).as_posix())
    return path


@pytest.fixture(scope="session")
def fer_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "fer2013.csv"
    rows = []
    for usage, n, seed in (("Training", 6, 0), ("PublicTest", 2, 1), ("PrivateTest", 2, 2)):
        images, labels = synthetic_faces(n, seed)
        for img, y in zip(images, labels):
            rows.append([CSV_LABELS.index(CLASSES[y]), " ".join(map(str, img.ravel())), usage])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def astronaut() -> Path:
    return ASTRONAUT


def shared_zip_or_skip() -> Path:
    if not SHARED_ZIP.exists():
        pytest.skip(f"FER2013 not present at {SHARED_ZIP}")
    return SHARED_ZIP


def stop_after_epoch(monkeypatch, *epochs: int) -> None:
    """Makes a training run stop (as the Stop button does) right after recording each of
    ``epochs`` (1-based; none given = after every epoch), until ``monkeypatch`` is undone."""
    from fer import runs
    from fer import train as train_mod

    original = train_mod.RunRecorder.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if not epochs or epoch + 1 in epochs:
            runs.request_stop(self.run_dir)

    monkeypatch.setattr(train_mod.RunRecorder, "on_epoch_end", on_epoch_end)
