"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against
``streamlit run`` on localhost. Skips where Chromium or Playwright is missing, except in CI
(``CI=true``), where a missing browser fails the run: CI installs both (.ci/run).

Screenshots go to ``test-output/``; with ``FER_UPDATE_SCREENSHOTS=1`` they also replace the
README's images in ``tests/screenshots/``.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer.clip import write_y4m
from fer.render import EMOTION_COLORS
from fer.samples import ASTRONAUT

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"
README_SHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if IN_CI:  # CI must not pass by skipping the end-to-end tests
        pytest.fail(f"CI=true but {what}: the browser tests cannot run", pytrace=False)
    pytest.skip(what, allow_module_level=True)


try:
    import playwright.sync_api as playwright
except ImportError:
    _missing("playwright is not installed (pip install -r requirements-dev.txt)")
if not Path(CHROMIUM).exists():
    _missing("Debian's chromium is not installed (apt-get install chromium)")

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "FER_RUNS_DIR": str(tmp_path_factory.mktemp("runs")),
           "FER_ICE_SERVERS": "[]"}  # loopback needs no STUN; there is no network here
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _browser(pw, extra_args=()):
    return pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


def _shot(page, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("FER_UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(exist_ok=True)
        shutil.copy(path, README_SHOTS / name)
    return path


def test_upload_a_photo_and_see_boxes_and_bars(app_url):
    with playwright.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(app_url, wait_until="networkidle")
        page.get_by_text("Upload one or more photos").wait_for(timeout=90_000)
        page.locator("input[type=file]").first.set_input_files(str(ASTRONAUT))
        page.get_by_text("Face #1").wait_for(timeout=90_000)
        assert page.get_by_text("happy").first.is_visible()
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        images = page.locator("[data-testid=stImage] img")
        assert images.count() >= 1
        page.wait_for_timeout(1000)
        box = images.first.bounding_box()
        path = _shot(page, "home.png")
        # What the screenshot shows where the photo is: the face's box in the "happy" colour,
        # which the plain astronaut photo has nowhere (0 such pixels).
        shot = np.asarray(Image.open(path).convert("RGB")).astype(int)
        top, left = int(box["y"]), int(box["x"])
        region = shot[top:top + int(box["height"]), left:left + int(box["width"])]
        happy = np.array([int(EMOTION_COLORS["happy"][i:i + 2], 16) for i in (1, 3, 5)])
        boxed = int((np.abs(region - happy).max(-1) < 40).sum())
        assert boxed > 0.5 * (box["width"] + box["height"]), boxed  # at least a frame's worth
        browser.close()


def test_other_pages_render(app_url):
    with playwright.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for slug, text, name in (("Training_dashboard", "Runs to compare", "dashboard.png"),
                                 ("Train_a_model", "New run", "train.png")):
            page.goto(f"{app_url}/{slug}", wait_until="networkidle")
            page.get_by_text(text).first.wait_for(timeout=90_000)
            page.wait_for_timeout(4000)  # let every widget finish rendering
            assert page.locator("[data-testid=stException]").count() == 0
            if slug == "Train_a_model":
                # Served to this machine (Host 127.0.0.1): training is on, the form is there.
                assert page.get_by_text("Start training").first.is_visible()
                assert page.get_by_text("Training is off").count() == 0
            _shot(page, name)
        browser.close()


def test_live_webcam_with_a_fake_camera(app_url, tmp_path):
    video = write_y4m(tmp_path / "face.y4m")
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]
    with playwright.sync_playwright() as pw:
        browser = _browser(pw, fake)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.grant_permissions(["camera"])
        page = context.new_page()
        page.goto(f"{app_url}/Webcam", wait_until="networkidle")
        page.get_by_text("Live video", exact=True).click(timeout=120_000)
        frame = page.frame_locator("iframe[title*='streamlit_webrtc']").first
        frame.get_by_role("button", name="START").click(timeout=90_000)
        # The page's bar panel only shows faces that came back from the server's callback.
        page.get_by_text("Largest face").first.wait_for(timeout=120_000)
        # The first frames arrive while WebRTC's encoder ramps its bitrate up (blurred, blocky
        # faces); once the picture is sharp the smiling face must read happy.
        label = page.get_by_text("Largest face").first
        deadline = time.time() + 60
        while not label.inner_text().endswith("happy") and time.time() < deadline:
            page.wait_for_timeout(500)
        assert label.inner_text().endswith("happy"), label.inner_text()
        status = page.get_by_text("face(s)").first.inner_text()
        assert "1 face(s)" in status
        page.get_by_text("surprise").first.wait_for(timeout=30_000)  # the bars block
        page.wait_for_timeout(3000)
        _shot(page, "webcam_live.png")
        frame.get_by_role("button", name="STOP").click()
        browser.close()
