"""Benchmark: cold start of the dashboard, as a new user sees it in a browser.

    python -m bench.bench_cold_start [--runs 3] [--app Home.py]

Each run launches a fresh `streamlit run <app>` and opens it in headless Chromium (Debian's
/usr/bin/chromium, as the end-to-end test; `.ci/install_browser.sh` installs it) and measures,
from the launch of the server process:

- title visible: the page's title is on screen;
- fully rendered: the script has finished (Streamlit's "running" indicator is gone) and the
  page's last section is on screen.

The baseline, run in the same process the same way, is a bare Streamlit app that shows only a
title: it measures what Streamlit and the browser cost by themselves, so the ratio says what
the app adds on top, on any machine. Target on a 2-core CPU: Home fully rendered ≤ 5 s.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TITLE = "Facial Emotion Recognition Dashboard"
HOME_LAST = ("the Model Comparison page has the full picture", "No trained models found")  # Home's last element
BASELINE_APP = 'import streamlit as st\nst.title("Facial Emotion Recognition Dashboard")\nst.write("done")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(app: Path, cwd: Path, log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer within {timeout:.0f} s")


def one_run(browser, app: Path, cwd: Path, last_texts: tuple[str, ...], log) -> tuple[float, float]:
    """(title visible, fully rendered) seconds after launching the server."""
    start = time.perf_counter()
    proc, url = launch(app, cwd, log)
    try:
        wait_healthy(proc, url)
        page = browser.new_page()
        page.goto(url + "/")
        page.get_by_text(TITLE).first.wait_for(timeout=120_000)
        title = time.perf_counter() - start
        last = page.get_by_text(last_texts[0])
        for text in last_texts[1:]:
            last = last.or_(page.get_by_text(text))
        last.first.wait_for(timeout=120_000)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000,
                               polling=50)
        done = time.perf_counter() - start
        page.close()
        return title, done
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold starts per app (median reported)")
    parser.add_argument("--app", default=str(ROOT / "Home.py"), help="the app to measure (default: Home.py)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: run .ci/install_browser.sh", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    app = Path(args.app).resolve()
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "home": []}
    with tempfile.TemporaryDirectory(prefix="bench_cold_start_") as tmp, sync_playwright() as pw:
        baseline = Path(tmp) / "baseline_app.py"
        baseline.write_text(BASELINE_APP)
        log = open(Path(tmp) / "streamlit.log", "wb")
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for _ in range(args.runs):  # interleaved, so background load hits both alike
                results["baseline"].append(one_run(browser, baseline, Path(tmp), ("done",), log))
                results["home"].append(one_run(browser, app, app.parent, HOME_LAST, log))
        finally:
            browser.close()
            log.close()
    med = {k: (statistics.median(t for t, _ in v), statistics.median(d for _, d in v)) for k, v in results.items()}
    print(f"cold start, median of {args.runs} runs on {os.cpu_count()} CPU(s), seconds from `streamlit run`:")
    print(f"  {'app':<28}{'title visible':>15}{'fully rendered':>16}")
    for name, label in (("baseline", "bare Streamlit app (baseline)"), ("home", app.name)):
        print(f"  {label:<28}{med[name][0]:>15.2f}{med[name][1]:>16.2f}")
    print(f"  {app.name} / baseline: title ×{med['home'][0] / med['baseline'][0]:.2f}, "
          f"fully rendered ×{med['home'][1] / med['baseline'][1]:.2f}; "
          f"extra time to fully rendered {med['home'][1] - med['baseline'][1]:+.2f} s")
    print(f"  target: {app.name} fully rendered ≤ 5 s — {'met' if med['home'][1] <= 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
