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

    A zip's members are read in place and reported by member name; a path that does not exist
    is still yielded, so it gets its own error line.
    """
    for raw in paths:
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
                continue
            with zf:
                for info in zf.infolist():
                    if not info.is_dir() and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                        yield info.filename, zf.read(info)
        else:
            yield raw, path


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="faces and emotions in images, folders or zips",
                       description="Detect faces and classify their expressions. One bad file "
                       "never stops the rest: it gets an error line.")
    p.add_argument("paths", nargs="+", help="image files, folders (recursed) or .zip files")
    p.add_argument("--model", default=None, help="a .keras model (default: the shipped model)")
    p.add_argument("--no-detect", action="store_true",
                   help="treat each whole image as one face (inputs that are already crops)")
    p.add_argument("--tta", action="store_true", help="average with the mirrored face")
    p.add_argument("--format", default="table", choices=("table", "jsonl", "csv"))
    p.add_argument("--annotate", metavar="DIR", help="save annotated images into DIR")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from fer.predict import ImageError, Predictor
    from fer.render import draw_faces

    predictor = Predictor(args.model)
    out = sys.stdout
    writer = None
    if args.format == "csv":
        writer = csv.writer(out)
        writer.writerow(["path", "face", "x", "y", "w", "h", "score", "label", *CLASSES, "error"])
    elif args.format == "table":
        print(f"{'path':<40} {'face':>4}  {'label':<9} {'conf':>5}  box", file=out)
    failures = 0
    for name, source in iter_inputs(args.paths):
        record = {"path": name, "faces": [], "label": None, "error": None}
        try:
            if isinstance(source, Exception):
                raise source
            result = predictor.predict(source, detect=not args.no_detect, tta=args.tta)
            record["faces"] = [f.to_dict() for f in result.faces]
            record["label"] = result.label
            if result.reason:
                record["error"] = None
                record["reason"] = result.reason
            if args.annotate:
                dest = Path(args.annotate) / (Path(name).stem + ".annotated.png")
                dest.parent.mkdir(parents=True, exist_ok=True)
                draw_faces(result.image, result.faces).save(dest)
        except (ImageError, DatasetError, OSError) as exc:
            failures += 1
            record["error"] = str(exc)
        _emit(args.format, record, out, writer)
    return 1 if failures else 0


def _emit(fmt: str, record: dict, out, writer) -> None:
    if fmt == "jsonl":
        record = {k: record[k] for k in ("path", "faces", "label", "error")}
        out.write(json.dumps(record) + "\n")
    elif fmt == "csv":
        if not record["faces"]:
            writer.writerow([record["path"], "", "", "", "", "", "", "", *[""] * len(CLASSES),
                             record["error"] or record.get("reason", "")])
        for i, f in enumerate(record["faces"], 1):
            writer.writerow([record["path"], i, *f["box"], f["score"], f["label"],
                             *[f["probs"][c] for c in CLASSES], ""])
    else:
        if not record["faces"]:
            print(f"{record['path']:<40} {'-':>4}  {record['error'] or record.get('reason')}",
                  file=out)
        for i, f in enumerate(record["faces"], 1):
            conf = f["probs"][f["label"]]
            print(f"{record['path']:<40} {i:>4}  {f['label']:<9} {conf:>5.0%}  {f['box']}",
                  file=out)
    out.flush()
