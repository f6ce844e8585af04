"""``python -m fer video``: an annotated copy of a clip and a CSV timeline of every face."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer.data import CLASSES


def add_video_parser(sub) -> None:
    p = sub.add_parser(
        "video", help="emotions over time in a video file: annotated mp4 and CSV timeline",
        description="Decode a video (mp4, mov, webm, avi, mkv...), analyse every N-th frame, "
        "follow each face across frames, and write an annotated copy (same frame count and "
        "rate, no audio) and a CSV with one row per analysed face per frame.")
    p.add_argument("input", help="the video file")
    p.add_argument("--output", metavar="MP4",
                   help="annotated video (default: <input name>_annotated.mp4 here)")
    p.add_argument("--csv", metavar="CSV",
                   help="timeline (default: <input name>_timeline.csv here)")
    p.add_argument("--no-video", action="store_true", help="write the CSV only (faster)")
    p.add_argument("--every", type=int, default=None, metavar="N",
                   help="analyse every N-th frame (default: enough for 5 frames a second)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="analyse only the first S seconds")
    p.add_argument("--model", default=None, help="a .keras model (default: the shipped model)")
    p.set_defaults(func=cmd_video)


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fer.predict import Predictor
    from fer.video import analyse_video, probe, summarise, write_csv

    if args.every is not None and args.every < 1:
        raise ValueError("--every must be 1 or more")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ValueError("--max-seconds must be more than 0")
    stem = Path(args.input).stem
    output = None if args.no_video else Path(args.output or f"{stem}_annotated.mp4")
    csv_path = Path(args.csv or f"{stem}_timeline.csv")
    info = probe(args.input)  # a bad file fails here, before the model loads
    predictor = Predictor(args.model)
    with tqdm(total=info.frames or None, unit="frame", desc=Path(args.input).name) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = analyse_video(args.input, predictor, output=output, every=args.every,
                               max_seconds=args.max_seconds, progress=progress)
    write_csv(result.rows, csv_path)
    print(f"{result.frames} frames ({result.seconds:.1f} s at {info.fps:g} fps, "
          f"{result.size[0]}x{result.size[1]}), {result.analysed} analysed (every "
          f"{result.every}), {len(result.rows)} face rows, {len(result.tracks)} tracks")
    for note in (result.limited, result.stopped):
        if note:
            print(f"note: {note}", file=sys.stderr)
    for s in summarise(result.rows):
        top = sorted(CLASSES, key=lambda c: -s.shares[c])[:3]
        print(f"  #{s.track}: {s.first:.1f}-{s.last:.1f} s, {s.analysed} frames, mostly "
              f"{s.dominant} (" + ", ".join(f"{c} {s.shares[c]:.0%}" for c in top) + ")")
    if not result.rows:
        print("no face found in the analysed frames", file=sys.stderr)
    print(f"wrote {csv_path}" + (f" and {output} ({result.encoder})" if output else ""))
    return 0
