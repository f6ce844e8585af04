"""``python -m fer predict``: emotions for files, folders and zips as a table, JSONL or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from fer.data import CLASSES, IMAGE_SUFFIXES, DatasetError, check_zip


def iter_inputs(paths: list[str]) -> Iterator[tuple[str, object]]:
    """Yields ``(name, source)`` for every image named by files, folders (recursed) and zips.

    A zip's members are read in place and reported as ``archive.zip/member``; a path that does
    not exist is still yielded, so it gets its own error line.
    """
    for raw in paths:
        try:
            yield from _inputs_of(raw)
        except Exception as exc:  # noqa: BLE001 - an unreadable folder or zip gets its line
            yield raw, exc


def _inputs_of(raw: str) -> Iterator[tuple[str, object]]:
    path = Path(raw)
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                yield str(p), p
    elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        try:
            zf = check_zip(path)
        except DatasetError as exc:
            yield raw, exc
            return
        with zf:
            for info in zf.infolist():
                if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                    try:
                        data: object = zf.read(info)
                    except Exception as exc:  # noqa: BLE001 - a damaged member, not the rest
                        data = ValueError(f"cannot read it from the zip: {exc}")
                    yield f"{raw.rstrip('/')}/{info.filename}", data
    else:
        yield raw, path


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="faces and emotions in images, folders or zips",
                       description="Detect faces and classify their expressions. One bad file "
                       "never stops the rest: it gets an error line.")
    p.add_argument("paths", nargs="+", help="image files, folders (recursed) or .zip files")
    p.add_argument("--model", default=None,
                   help="a .keras (served through its .tflite when converted) or .tflite model "
                   "(default: the shipped model)")
    p.add_argument("--no-detect", action="store_true",
                   help="treat each whole image as one face (inputs that are already crops)")
    p.add_argument("--tta", action="store_true", help="average with the mirrored face")
    p.add_argument("--format", default="table", choices=("table", "jsonl", "csv"))
    p.add_argument("--annotate", metavar="DIR", help="save annotated images into DIR")
    p.set_defaults(func=cmd_predict)


def annotated_name(name: str) -> Path:
    """Where an input's annotated copy goes inside the ``--annotate`` folder: its own path
    (folders, ``archive.zip/member``) mirrored, so two ``x.png`` in different folders never
    overwrite each other."""
    parts = [p for p in Path(name).parts if p not in ("", ".", "/")]
    parts = ["_up" if p == ".." else p.replace(":", "_").strip("\\/") or "_" for p in parts]
    rel = Path(*parts) if parts else Path("image")
    return rel.with_name(rel.stem + ".annotated.png")


def cmd_predict(args: argparse.Namespace) -> int:
    from fer.predict import Predictor
    from fer.render import annotate

    predictor = Predictor(args.model)
    out = sys.stdout
    writer = None
    if args.format == "csv":
        writer = csv.writer(out)
        writer.writerow(["path", "image_width", "image_height", "face", "x", "y", "w", "h",
                         "score", "label", *CLASSES, "error"])
    elif args.format == "table":
        print(f"{'path':<40} {'face':>4}  {'label':<9} {'conf':>5}  box", file=out)
    failures = 0
    used: set[Path] = set()
    for name, source in iter_inputs(args.paths):
        record = {"path": name, "width": None, "height": None, "faces": [], "label": None,
                  "reason": None, "notes": [], "error": None}
        try:
            if isinstance(source, Exception):
                raise source
            result = predictor.predict(source, detect=not args.no_detect, tta=args.tta)
            record.update({k: v for k, v in result.to_dict().items() if k in record})
            if args.annotate:
                dest = Path(args.annotate) / annotated_name(name)
                stem, n = dest.stem, 1
                while dest in used:  # the same input named twice
                    n += 1
                    dest = dest.with_name(f"{stem.removesuffix('.annotated')}-{n}.annotated.png")
                used.add(dest)
                dest.parent.mkdir(parents=True, exist_ok=True)
                annotate(result)[0].save(dest)
        except Exception as exc:  # noqa: BLE001 - one bad input never stops the rest
            failures += 1
            record["error"] = _message(exc)
        _emit(args.format, record, out, writer)
    return 1 if failures else 0


def _message(exc: Exception) -> str:
    from fer.images import ImageError, _clean

    if isinstance(exc, (ImageError, DatasetError)):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot read it: {exc.strerror or _clean(str(exc))}"
    return f"could not be processed ({type(exc).__name__}: {_clean(str(exc))})"


def _emit(fmt: str, record: dict, out, writer) -> None:
    if fmt == "jsonl":
        out.write(json.dumps(record) + "\n")
    elif fmt == "csv":
        size = [record["width"] or "", record["height"] or ""]
        if not record["faces"]:
            writer.writerow([record["path"], *size, "", "", "", "", "", "", "",
                             *[""] * len(CLASSES), record["error"] or record["reason"] or ""])
        for i, f in enumerate(record["faces"], 1):
            writer.writerow([record["path"], *size, i, *f["box"], f["score"], f["label"],
                             *[f["probs"][c] for c in CLASSES], ""])
    else:
        if not record["faces"]:
            print(f"{record['path']:<40} {'-':>4}  {record['error'] or record['reason']}",
                  file=out)
        for i, f in enumerate(record["faces"], 1):
            conf = f["probs"][f["label"]]
            print(f"{record['path']:<40} {i:>4}  {f['label']:<9} {conf:>5.0%}  {f['box']}",
                  file=out)
    out.flush()
