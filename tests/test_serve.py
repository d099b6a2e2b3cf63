"""pda-train serve in a real browser: the page starts on 127.0.0.1 at a free port, headless Chromium
uploads a demo group photo, and the composite comes back at the photo's size with one crop per face."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from translator_world import tiny_model

from pda_data.demo.group import group_photo
from pda_data.io.images import save_image

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package (.ci/run installs it)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 120

if importlib.util.find_spec("gradio") is None:  # only the served process imports it
    pytest.skip("the app extra (gradio) is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")


def _start(model: Path) -> tuple[subprocess.Popen, str]:
    """``pda-train serve`` in a child process and the URL it prints."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pda_train.cli import main; main()", "serve", "--model", str(model),
         "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "serving on http://127.0.0.1:" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(START_TIMEOUT_S):
        proc.kill()
        pytest.fail("serve did not start: " + "".join(lines))
    line = next(s for s in lines if "serving on" in s)
    return proc, line.split("serving on ")[1].split()[0]


@pytest.mark.skipif(not Path(CHROMIUM).is_file() and shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed here (apt-get install chromium; .ci/run does)")
def test_upload_a_group_photo_and_get_the_composite_in_chromium(tmp_path: Path) -> None:
    photo, placed = group_photo(np.random.default_rng(0))
    save_image(tmp_path / "group.png", photo)
    proc, url = _start(tiny_model(tmp_path / "m.safetensors"))
    try:
        assert url.startswith("http://127.0.0.1:")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            page.set_input_files("#photo input[type=file]", str(tmp_path / "group.png"))
            page.wait_for_selector("#photo img")
            page.click("#translate")
            page.wait_for_selector("#composite img", timeout=60_000)
            size = page.eval_on_selector(
                "#composite img",
                "e => new Promise(r => { const f = () => e.complete && e.naturalWidth ? "
                "r([e.naturalWidth, e.naturalHeight]) : setTimeout(f, 50); f(); })",
            )
            assert tuple(size) == (photo.shape[1], photo.shape[0])
            page.wait_for_selector("#crops img")
            assert page.locator("#crops img").count() == len(placed)
            assert page.input_value("#summary textarea").startswith(f"{len(placed)} face(s) translated")
            assert "image_size" in page.inner_text("#settings")
            page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
            browser.close()
        assert (tmp_path / "serve.png").stat().st_size > 10_000
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
