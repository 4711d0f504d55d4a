"""End to end: a real browser streams a fake camera (real faces) to the Live Webcam page over WebRTC.

Starts `streamlit run Home.py` on a free localhost port, drives Debian's Chromium headless through
Playwright with a .y4m clip as the camera, opens Home (as a user would; it no longer loads TensorFlow),
then the webcam page, presses START inside the component's iframe and waits for the page to report
the faces and emotions the server-side frame callback found. No STUN/TURN server is involved.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.video import sample
from tests.model_fixtures import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = "/usr/bin/chromium"
SERVER_START_S = 90
FACES_WITHIN_S = 90
STATUS = re.compile(r"Faces: [1-9]\d* — .*?(angry|disgust|fear|happy|sad|surprise|neutral) \d+%")

pytestmark = [pytest.mark.slow,  # drives a browser (pyproject.toml's markers; -m 'not slow' skips)
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is missing: run .ci/install_browser.sh "
                                        "(apt-get install chromium)")]


def write_y4m(path: Path, frames: np.ndarray, fps: int = 15) -> None:
    """Frames (N×H×W×3 RGB) as an uncompressed YUV4MPEG2 4:2:0 file, Chromium's fake-camera format."""
    n, h, w = frames.shape[:3]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())  # Y plane, then U, then V


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    """`streamlit run Home.py` on a free port with a tiny registered model; always killed afterwards."""
    models = tmp_path / "models"
    make_tiny_model(models)
    port = free_port()
    env = {**os.environ, "FER_MODELS_DIR": str(models), "FER_DATA_DIR": str(tmp_path / "no_dataset"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("FER_ICE_SERVERS", None)
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                log_tail = (tmp_path / "streamlit.log").read_text()[-3000:]
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_tail}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start within {SERVER_START_S} s")
            time.sleep(0.5)
        yield {"url": f"http://localhost:{port}", "proc": proc, "log": tmp_path / "streamlit.log"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_webcam_page_reports_faces_from_a_fake_camera(server, tmp_path):
    from playwright.sync_api import sync_playwright

    clip = tmp_path / "faces.y4m"
    write_y4m(clip, sample.sample_clip(30))
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-features=WebRtcHideLocalIpsWithMdns"]
    started = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=args,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(server["url"] + "/")
            page.get_by_text("Facial Emotion Recognition Dashboard").first.wait_for()
            page.goto(server["url"] + "/Live_Webcam")
            page.get_by_text("Waiting for frames").first.wait_for()
            component = page.frame_locator("iframe[title*='webrtc']").first
            start = component.get_by_role("button", name=re.compile(r"^start$", re.I))
            start.click()
            status = page.get_by_text(STATUS).first
            status.wait_for(timeout=FACES_WITHIN_S * 1000)
            reported = status.inner_text()
            shown = component.locator("video").first.evaluate("v => v.videoWidth")
            page.screenshot(path=str(tmp_path / "webcam.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(server["log"].read_text()[-4000:])
            raise
        finally:
            browser.close()
    elapsed = time.monotonic() - started
    print(f"e2e: {reported!r} after {elapsed:.1f} s (annotated video {shown} px wide), "
          f"screenshot {tmp_path / 'webcam.png'}")
    assert STATUS.search(reported)
    assert shown == 640, "the annotated stream must come back to the browser"
    assert server["proc"].poll() is None, "the server must survive the stream"
