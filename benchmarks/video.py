"""Video analysis speed: a generated 720p 30 fps clip with two moving faces, analysed the way
``python -m fer video`` does, against real time and against the bare decode/encode passes on the
same clip in the same run (ratios survive a busy machine better than seconds do).

    python benchmarks/video.py [--seconds 20] [--repeats 2]

Prints the figures and writes benchmarks/results/video.json. "x real time" is clip seconds per
second of processing: above 1 is faster than real time.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import write_result  # noqa: E402

from fer.clip import make_clip  # noqa: E402
from fer.predict import Predictor  # noqa: E402
from fer.runs import cpu_name  # noqa: E402
from fer.video import (  # noqa: E402
    VideoWriter,
    analyse_video,
    default_every,
    pick_encoder,
    probe,
)


def decode_only(path: Path, size) -> int:
    import av

    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
            n += 1
    return n


def decode_encode(path: Path, out: Path, fps: float, size) -> int:
    import av

    n = 0
    with av.open(str(path)) as c, VideoWriter(out, fps, size) as w:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for frame in c.decode(s):
            w.write(frame.to_ndarray(width=size[0], height=size[1], format="rgb24"))
            n += 1
    return n


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (all threads of this process)."""
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    clip = make_clip(tmp / "clip720.mp4", seconds=args.seconds, fps=30, size=(1280, 720),
                     faces=2, crf=23)
    info = probe(clip)
    predictor = Predictor()
    analyse_video(clip, predictor, max_seconds=1)  # warm-up: traces the classifier
    load_before = os.getloadavg()[0]
    secs = {
        "decode_only": timed(lambda: decode_only(clip, (1280, 720)), args.repeats),
        "decode_encode": timed(lambda: decode_encode(clip, tmp / "re.mp4", 30, (1280, 720)),
                               args.repeats),
        "analyse_csv_only": timed(lambda: analyse_video(clip, predictor), args.repeats),
        "analyse_with_video": timed(lambda: analyse_video(clip, predictor,
                                                          output=tmp / "out.mp4"),
                                    args.repeats),
    }
    result = analyse_video(clip, predictor)
    write_result("video", {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
                    "python": sys.version.split()[0]},
        "clip": f"fer.clip.make_clip: {info.width}x{info.height}, {info.fps:g} fps, "
                f"{info.duration:g} s, 2 moving faces",
        "every": default_every(info.fps),
        "analysed_frames": result.analysed,
        "face_rows": len(result.rows),
        "tracks": len(result.tracks),
        "encoder": pick_encoder(),
        "repeats": args.repeats,
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "wall_seconds": {k: round(v[0], 2) for k, v in secs.items()},
        "x_real_time": {k: round(info.duration / v[0], 2) for k, v in secs.items()},
        # CPU seconds per second of video: below 2.0 keeps up with real time on 2 free cores,
        # below 1.0 even on one; unlike wall time it hardly depends on what else is running.
        "cpu_seconds_per_video_second": {k: round(v[1] / info.duration, 2)
                                         for k, v in secs.items()},
        "with_video_over_transcode": round(secs["analyse_with_video"][0]
                                           / secs["decode_encode"][0], 2),
    })


if __name__ == "__main__":
    main()
