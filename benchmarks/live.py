"""The live webcam path, end to end and piece by piece.

1. In-process, no browser: one 640x480 frame through what the server does for it (VP8 decode,
   YUV -> RGB, ``fer.live.LiveProcessor.process``, RGB -> YUV, VP8 encode), each step timed,
   with aiortc's own codecs.
2. In a real browser: ``streamlit run app.py`` driven by headless Chromium with a fake camera
   at 15 fps (``fer.clip.write_y4m``). After a warm-up, over ``--seconds``: the frames the page's
   video element received per second, the processing rate and latency the page shows, CPU
   seconds used by the server and by the browser per received frame, and the server's memory
   at the start and end of the window (growth over long use).

    python benchmarks/live.py [--seconds 60]

Prints the figures and writes benchmarks/results/live.json. Needs Chromium and Playwright
(as tests/test_browser.py) and psutil.
"""

import argparse
import fractions
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import memory_mb, streamlit_app, write_result  # noqa: E402

from fer.srtp import preload_pylibsrtp  # noqa: E402

preload_pylibsrtp()
import av  # noqa: E402
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload  # noqa: E402
from aiortc.jitterbuffer import JitterFrame  # noqa: E402

from fer.clip import write_y4m  # noqa: E402
from fer.live import LiveProcessor  # noqa: E402
from fer.predict import Predictor  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
BITRATE = 1_000_000  # aiortc's starting VP8 bitrate
SOURCE_FPS = 15


def _camera_frames(path: Path) -> list[np.ndarray]:
    """The fake camera's frames as RGB arrays (decoded from the same .y4m the browser plays)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def server_pipeline(frames: list[np.ndarray], repeats: int = 8) -> dict:
    """Median milliseconds of each server step for one frame, as streamlit-webrtc runs them."""
    time_base = fractions.Fraction(1, 90000)
    sender = Vp8Encoder()
    packets = []
    for i, rgb in enumerate(frames):  # what the browser would send
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = i * 90000 // SOURCE_FPS, time_base
        payloads, timestamp = sender.encode(frame)
        packets.append((b"".join(vp8_depayload(p) for p in payloads), timestamp))
    decoder, encoder = Vp8Decoder(), Vp8Encoder()
    live = LiveProcessor(Predictor())
    steps = ("vp8_decode", "yuv_to_rgb", "process", "rgb_to_yuv", "vp8_encode")
    times: dict[str, list[float]] = {k: [] for k in (*steps, "total")}
    for rep in range(repeats):
        for data, timestamp in packets:
            t = [time.perf_counter()]
            frame = decoder.decode(JitterFrame(data=data, timestamp=timestamp))[0]
            t.append(time.perf_counter())
            rgb = frame.to_ndarray(format="rgb24")
            t.append(time.perf_counter())
            annotated, _ = live.process(rgb)
            t.append(time.perf_counter())
            out = av.VideoFrame.from_ndarray(annotated, format="rgb24").reformat(
                format="yuv420p")
            out.pts, out.time_base = frame.pts, frame.time_base
            t.append(time.perf_counter())
            encoder.encode(out)
            t.append(time.perf_counter())
            if rep:  # the first pass warms the codecs and interpreters up
                for k, a, b in zip(steps, t, t[1:]):
                    times[k].append((b - a) * 1000)
                times["total"].append((t[-1] - t[0]) * 1000)
    return {f"{k}_ms": round(statistics.median(v), 2) for k, v in times.items()}


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            c = p.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


def _received_frames(frame_locator) -> int:
    # The output <video> inside streamlit-webrtc's iframe: frames the browser got and decoded.
    return int(frame_locator.locator("video").first.evaluate(
        "v => v.getVideoPlaybackQuality().totalVideoFrames"))


def in_browser(video: Path, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with streamlit_app() as (url, server, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=[*ARGS, f"--use-file-for-fake-video-capture={video}"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.grant_permissions(["camera"])
        page = context.new_page()
        page.goto(f"{url}/Webcam", wait_until="networkidle")
        page.get_by_text("Live video", exact=True).click(timeout=120_000)
        frame = page.frame_locator("iframe[title*='streamlit_webrtc']").first
        frame.get_by_role("button", name="START").click(timeout=90_000)
        page.get_by_text("Largest face").first.wait_for(timeout=120_000)
        page.wait_for_timeout(10_000)  # WebRTC ramps its bitrate up over the first seconds
        me = psutil.Process()
        browsers = [p for p in me.children(recursive=True) if "chrom" in p.name().lower()]
        srv = psutil.Process(server.pid)
        mem0 = memory_mb(server.pid)
        cpu_srv0, cpu_br0 = _cpu_seconds([srv]), _cpu_seconds(browsers)
        frames0, t0 = _received_frames(frame), time.perf_counter()
        shown_fps, latency = [], []
        while time.perf_counter() - t0 < seconds:
            page.wait_for_timeout(1000)
            text = page.get_by_text("ms per frame").first.inner_text()
            m = re.search(r"([\d.]+) fps · (\d+) ms per frame", text)
            if m:
                shown_fps.append(float(m.group(1)))
                latency.append(float(m.group(2)))
        wall = time.perf_counter() - t0
        frames = _received_frames(frame) - frames0
        cpu_srv = _cpu_seconds([srv]) - cpu_srv0
        cpu_br = _cpu_seconds(browsers) - cpu_br0
        out = {
            "window_s": round(wall, 1),
            "source_fps": SOURCE_FPS,
            "received_fps": round(frames / wall, 2),
            "page_fps_median": round(statistics.median(shown_fps), 2) if shown_fps else None,
            "page_latency_ms_median": round(statistics.median(latency), 1) if latency else None,
            "server_cpu_percent": round(100 * cpu_srv / wall, 1),
            "browser_cpu_percent": round(100 * cpu_br / wall, 1),
            "server_cpu_ms_per_frame": round(1000 * cpu_srv / max(frames, 1), 1),
            "server_memory_start": mem0,
            "server_memory_end": memory_mb(server.pid),
        }
        frame.get_by_role("button", name="STOP").click()
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_y4m(Path(tmp) / "face.y4m", frames=60, fps=SOURCE_FPS)
        out = {"frame": "640x480, one face (fer.clip.write_y4m)",
               "server_pipeline": server_pipeline(_camera_frames(video)),
               "browser": in_browser(video, args.seconds)}
    write_result("live", out)


if __name__ == "__main__":
    main()
