"""The web app as a user meets it: ``streamlit run app.py`` started cold, driven by headless
Chromium (Debian's ``chromium`` + Playwright, as tests/test_browser.py): time until the first
photo's result shows, and the server's memory after a visit to every page but Train.

    python benchmarks/serving.py

Prints the figures and writes benchmarks/results/serving.json. The server's memory is read from
/proc (Linux): resident now (VmRSS) and peak (VmHWM).
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import memory_mb, streamlit_app, write_result  # noqa: E402

from fer.samples import ASTRONAUT  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = [("Webcam", "Snapshot"), ("Training_dashboard", "Runs to compare")]


def main() -> None:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with streamlit_app() as (url, server, ready_s):
        out["server_ready_s"] = round(ready_s, 2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            t1 = time.perf_counter()
            page.goto(url, wait_until="networkidle")
            page.get_by_text("Upload one or more photos").wait_for(timeout=120_000)
            out["home_page_s"] = round(time.perf_counter() - t1, 2)
            t2 = time.perf_counter()
            page.locator("input[type=file]").first.set_input_files(str(ASTRONAUT))
            page.get_by_text("Face #1").wait_for(timeout=120_000)
            out["first_photo_result_s"] = round(time.perf_counter() - t2, 2)
            out["server_after_first_photo"] = memory_mb(server.pid)
            for slug, text in PAGES:
                page.goto(f"{url}/{slug}", wait_until="networkidle")
                page.get_by_text(text).first.wait_for(timeout=120_000)
                page.wait_for_timeout(2000)
            out["server_after_every_page_but_train"] = memory_mb(server.pid)
            out["tensorflow_in_server"] = "libtensorflow" in Path(
                f"/proc/{server.pid}/maps").read_text()
            browser.close()
    write_result("serving", out)


if __name__ == "__main__":
    main()
