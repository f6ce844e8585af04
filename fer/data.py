"""FER2013 loading: Kaggle folders, the same as a zip read in place, or Kaggle's ``fer2013.csv``.

Every form becomes the same thing: per split, a ``(N, 48, 48)`` uint8 array of grayscale faces
and an ``(N,)`` int array of labels in :data:`CLASSES` order. The first load decodes and writes a
compressed cache keyed by the source's path, size and mtime, so later loads take about a second.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from fer.atomic import atomic_savez

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
IMAGE_SIZE = 48
# Kaggle's csv numbers emotions 0..6 as angry, disgust, fear, happy, sad, surprise, neutral.
CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CSV_SPLITS = {"Training": "train", "PublicTest": "test", "PrivateTest": "private"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm"}
# FER2013 inflates to ~50 MB; anything far past that is not this dataset (or is a zip bomb).
MAX_ZIP_BYTES = 2 * 1024**3
MAX_MEMBER_BYTES = 20 * 1024**2
CACHE_VERSION = 1


class DatasetError(ValueError):
    """A dataset source that cannot be read as FER2013; the message says what to fix."""


class Split(NamedTuple):
    """One split of the dataset."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into CLASSES


@dataclass
class LoadReport:
    """What a load found: per-split class counts, and everything skipped or ignored."""

    source: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    from_cache: bool = False

    def summary(self) -> str:
        """A few human-readable lines: counts per split and what was skipped."""
        lines = [f"source: {self.source}" + (" (cache)" if self.from_cache else "")]
        for split, counts in self.counts.items():
            total = sum(counts.values())
            per_class = ", ".join(f"{c} {n}" for c, n in counts.items())
            lines.append(f"{split}: {total} images ({per_class})")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable file(s), e.g. {self.skipped[0]}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass
class Dataset:
    """All splits found in a source, plus the load report."""

    splits: dict[str, Split]
    report: LoadReport

    def __getitem__(self, name: str) -> Split:
        if name not in self.splits:
            raise DatasetError(
                f"the dataset has no '{name}' split (found: {', '.join(self.splits) or 'none'})"
            )
        return self.splits[name]


def _class_counts(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(CLASSES))
    return {c: int(n) for c, n in zip(CLASSES, counts)}


def _decode(data: bytes) -> np.ndarray:
    """Decodes image bytes to a 48x48 grayscale uint8 array (resizing if a user's copy differs)."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L")
        if im.size != (IMAGE_SIZE, IMAGE_SIZE):
            im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.uint8)


def _progress(iterable, total: int, desc: str, quiet: bool):
    if quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", mininterval=1.0)


# --- folder and zip layouts -------------------------------------------------------------------


class _Entry(NamedTuple):
    split: str
    label: int
    name: str  # shown in the report
    key: object  # how to read it: a Path or a ZipInfo


def _check_member(info: zipfile.ZipInfo) -> None:
    path = PurePosixPath(info.filename.replace("\\", "/"))
    parts = path.parts
    if path.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise DatasetError(f"refusing zip member with an unsafe path: {info.filename!r}")


def _layout_entries(paths: list[tuple[PurePosixPath, object]], source: str, report: LoadReport):
    """Finds ``<root>/<split>/<class>/<file>`` among the given relative paths."""
    # The root is whatever folder holds a 'train' folder with class folders inside:
    # '', 'Dataset/', 'fer2013/' ... are all common.
    tree: dict[PurePosixPath, dict[str, set[str]]] = {}
    for rel, _ in paths:
        if len(rel.parts) >= 3:
            root, split, cls = rel.parents[2], rel.parts[-3], rel.parts[-2]
            tree.setdefault(root, {}).setdefault(split, set()).add(cls)
    roots = [r for r, splits in tree.items() if "train" in splits or "test" in splits]
    if not roots:
        found = sorted({p.parts[0] for p, _ in paths if len(p.parts) > 1})[:10]
        raise DatasetError(
            f"{source}: no 'train/<class>/' or 'test/<class>/' folders found "
            f"(top-level folders found: {', '.join(found) or 'none'}). Expected the Kaggle "
            f"FER2013 layout: train/angry/*.jpg ... test/surprise/*.jpg"
        )
    root = min(roots, key=lambda r: len(r.parts))
    entries: list[_Entry] = []
    for split in ("train", "test"):
        classes = tree[root].get(split)
        if classes is None:
            continue
        missing = [c for c in CLASSES if c not in classes]
        if missing:
            raise DatasetError(
                f"{source}: '{split}/' has class folders {sorted(classes)} but is missing "
                f"{missing}; expected exactly {list(CLASSES)}"
            )
        extra = sorted(classes - set(CLASSES))
        if extra:
            report.warnings.append(f"ignored extra folders in {split}/: {extra}")
    extra_splits = sorted(set(tree[root]) - {"train", "test"})
    if extra_splits:
        report.warnings.append(f"ignored folders other than train/ and test/: {extra_splits}")
    for rel, key in paths:
        if len(rel.parts) < 3 or rel.parents[2] != root:
            continue
        split, cls = rel.parts[-3], rel.parts[-2]
        if split not in ("train", "test") or cls not in CLASSES:
            continue
        if rel.suffix.lower() not in IMAGE_SUFFIXES:
            report.skipped.append(str(rel))
            continue
        entries.append(_Entry(split, CLASSES.index(cls), str(rel), key))
    return entries


def _read_entries(entries: list[_Entry], reader, report: LoadReport, quiet: bool):
    images: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    for entry in _progress(entries, len(entries), "decoding FER2013", quiet):
        try:
            img = _decode(reader(entry.key))
        except (UnidentifiedImageError, OSError, ValueError, zipfile.BadZipFile):
            report.skipped.append(entry.name)
            continue
        images.setdefault(entry.split, []).append(img)
        labels.setdefault(entry.split, []).append(entry.label)
    return {
        s: Split(np.stack(images[s]), np.asarray(labels[s], dtype=np.int64)) for s in images
    }


def _load_folder(root: Path, report: LoadReport, quiet: bool) -> dict[str, Split]:
    paths = [
        (PurePosixPath(p.relative_to(root).as_posix()), p) for p in root.rglob("*") if p.is_file()
    ]
    entries = _layout_entries(paths, str(root), report)
    return _read_entries(entries, lambda p: Path(p).read_bytes(), report, quiet)


def check_zip(path: str | os.PathLike) -> zipfile.ZipFile:
    """Opens a zip after refusing unsafe member paths (zip-slip) and archives that inflate too far.

    Args:
        path: the zip file.

    Returns:
        The open ``ZipFile``; members are read in place, never extracted.

    Raises:
        DatasetError: not a zip, an unsafe member path, or an inflated size past the bound.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{path}: not a readable zip file ({exc})") from None
    total = 0
    for info in zf.infolist():
        _check_member(info)
        total += info.file_size
        if info.file_size > MAX_MEMBER_BYTES or total > MAX_ZIP_BYTES:
            zf.close()
            raise DatasetError(
                f"{path}: refusing an archive that inflates past "
                f"{MAX_ZIP_BYTES // 1024**2} MB (or a member past {MAX_MEMBER_BYTES // 1024**2} "
                f"MB); FER2013 is about 50 MB"
            )
    return zf


def _load_zip(path: Path, report: LoadReport, quiet: bool) -> dict[str, Split]:
    with check_zip(path) as zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        csvs = [i for i in members if i.filename.lower().endswith(".csv")]
        has_folders = any(len(PurePosixPath(i.filename).parts) >= 3 for i in members)
        if csvs and not has_folders:
            with zf.open(csvs[0]) as fh:
                return _load_csv_stream(io.TextIOWrapper(fh, "utf-8"), report, quiet)
        paths = [(PurePosixPath(i.filename), i) for i in members]
        entries = _layout_entries(paths, str(path), report)
        return _read_entries(entries, zf.read, report, quiet)


# --- Kaggle csv ---------------------------------------------------------------------------------


def _load_csv_stream(fh, report: LoadReport, quiet: bool) -> dict[str, Split]:
    reader = csv.DictReader(fh)
    need = {"emotion", "pixels"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise DatasetError(
            f"{report.source}: a FER2013 csv needs columns emotion,pixels[,Usage]; "
            f"found {reader.fieldnames}"
        )
    images: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[int]] = {}
    for i, row in enumerate(_progress(reader, 35887, "reading fer2013.csv", quiet)):
        split = CSV_SPLITS.get((row.get("Usage") or "Training").strip())
        try:
            label = CLASSES.index(CSV_LABELS[int(row["emotion"])])
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if split is None or pixels.size != IMAGE_SIZE * IMAGE_SIZE:
                raise ValueError
        except (ValueError, IndexError, TypeError, AttributeError):
            report.skipped.append(f"row {i + 2}")
            continue
        images.setdefault(split, []).append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
        labels.setdefault(split, []).append(label)
    return {
        s: Split(np.stack(images[s]), np.asarray(labels[s], dtype=np.int64)) for s in images
    }


def _load_csv(path: Path, report: LoadReport, quiet: bool) -> dict[str, Split]:
    with open(path, newline="", encoding="utf-8") as fh:
        return _load_csv_stream(fh, report, quiet)


# --- cache --------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$FER_CACHE_DIR`` or ``~/.cache/fer``."""
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer"))


def _cache_key(path: Path) -> str:
    st = path.stat()
    if path.is_dir():
        # A folder's own mtime misses edits inside class folders: fold in every file's.
        parts = [
            f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
            for p in sorted(path.rglob("*"))
            if p.is_file()
        ]
        sig = hashlib.sha1("\n".join(parts).encode()).hexdigest()
    else:
        sig = f"{st.st_size}:{st.st_mtime_ns}"
    raw = f"v{CACHE_VERSION}|{path.resolve()}|{sig}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def describe_source(source: str | os.PathLike) -> dict[str, int]:
    """Checks a dataset source without decoding it: images per split, from file names alone.

    Raises:
        DatasetError: the same layout and safety errors :func:`load_fer2013` would raise.
    """
    path = Path(source).expanduser()
    report = LoadReport(source=str(path))
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    if path.is_dir():
        paths = [(PurePosixPath(p.relative_to(path).as_posix()), p) for p in path.rglob("*")
                 if p.is_file()]
    elif zipfile.is_zipfile(path):
        with check_zip(path) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if any(i.filename.lower().endswith(".csv") for i in members) and not any(
                    len(PurePosixPath(i.filename).parts) >= 3 for i in members):
                return {"csv rows": -1}
            paths = [(PurePosixPath(i.filename), i) for i in members]
    elif path.suffix.lower() == ".csv":
        return {"csv rows": -1}
    else:
        raise DatasetError(f"{path}: not a folder, a .zip or a FER2013 .csv")
    counts: dict[str, int] = {}
    for entry in _layout_entries(paths, str(path), report):
        counts[entry.split] = counts.get(entry.split, 0) + 1
    if not counts.get("train"):
        raise DatasetError(f"{path}: no training images found under train/<class>/")
    return counts


def load_fer2013(
    source: str | os.PathLike, *, use_cache: bool = True, quiet: bool = False
) -> Dataset:
    """Loads FER2013 from a Kaggle folder, a zip of it, or Kaggle's ``fer2013.csv``.

    Args:
        source: a folder holding ``train/<class>/`` and/or ``test/<class>/`` (at any depth, e.g.
            ``Dataset/train/angry``), a ``.zip`` of that folder (read in place), or the csv.
        use_cache: read and write the decoded-array cache (see :func:`cache_dir`).
        quiet: no progress bar.

    Returns:
        A :class:`Dataset` with splits ``train`` and ``test`` (and ``private`` for the csv), each
        grayscale 48x48 uint8, plus a :class:`LoadReport`.

    Raises:
        DatasetError: missing source, wrong layout, unsafe zip, or no images at all.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetError(
            f"dataset not found: {path}. Download FER2013 from Kaggle "
            f"(kaggle.com/datasets/msambare/fer2013) and pass its folder or zip."
        )
    report = LoadReport(source=str(path))
    cache_file = cache_dir() / f"fer2013-{_cache_key(path)}.npz" if use_cache else None
    if cache_file is not None and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                splits = {
                    k[:-7]: Split(z[k], z[k[:-7] + "_labels"]) for k in z if k.endswith("_images")
                }
                skipped = [str(s) for s in z["skipped"]] if "skipped" in z else []
            report.from_cache, report.skipped = True, skipped
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            splits = None  # a damaged cache is rebuilt, never trusted
    else:
        splits = None
    if splits is None:
        if path.is_dir():
            splits = _load_folder(path, report, quiet)
        elif zipfile.is_zipfile(path):
            splits = _load_zip(path, report, quiet)
        elif path.suffix.lower() == ".csv":
            splits = _load_csv(path, report, quiet)
        else:
            raise DatasetError(
                f"{path}: not a folder, a .zip or a FER2013 .csv. Pass the Kaggle folder "
                f"(train/ and test/), its zip, or fer2013.csv"
            )
        if not splits:
            raise DatasetError(f"{path}: no readable images found ({len(report.skipped)} skipped)")
        if cache_file is not None:
            arrays = {f"{s}_images": v.images for s, v in splits.items()}
            arrays |= {f"{s}_labels": v.labels for s, v in splits.items()}
            arrays["skipped"] = np.asarray(report.skipped, dtype=str)
            try:
                atomic_savez(cache_file, **arrays)
            except OSError as exc:  # a read-only home must not stop training
                warnings.warn(f"could not write dataset cache {cache_file}: {exc}", stacklevel=2)
    for name, split in splits.items():
        if len(split.labels) == 0:
            raise DatasetError(f"{path}: the '{name}' split is empty")
        report.counts[name] = _class_counts(split.labels)
    return Dataset(splits, report)


def stratified_split(
    split: Split, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Carves a seeded, class-stratified validation set out of a split.

    Args:
        split: usually ``train``.
        fraction: share of each class that goes to validation (0 < fraction < 1).
        seed: the same seed gives the same split.

    Returns:
        ``(train, val)``.

    Raises:
        DatasetError: the fraction leaves either side empty.
    """
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"validation fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(split.labels):
        idx = np.flatnonzero(split.labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fraction))
        val_idx.append(idx[: min(n_val, len(idx) - 1)] if len(idx) > 1 else idx[:0])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(split.labels), bool)
    mask[val] = False
    if len(val) == 0 or mask.sum() == 0:
        raise DatasetError(
            f"a validation fraction of {fraction} of {len(split.labels)} images leaves a side empty"
        )
    return (
        Split(split.images[mask], split.labels[mask]),
        Split(split.images[val], split.labels[val]),
    )


def class_counts(split: Split) -> dict[str, int]:
    """Images per class, in :data:`CLASSES` order."""
    return _class_counts(split.labels)

