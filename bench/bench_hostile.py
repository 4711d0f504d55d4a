"""The zip bomb of issue #28 against `data` and `batch`: wall time and peak memory of each command.

A 4 MB zip whose one member, `train/happy/Training_1.jpg`, inflates to 4 GiB of zeros. Each command
runs in its own process; its peak RSS is compared with the same command on a harmless zip (same
imports), so "extra" is what the bomb cost. Run from the repository root:

    python -m bench.bench_hostile [--gib 4]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tests.fixtures import encode, make_face_images  # noqa: E402
from tests.hostile import zip_bomb  # noqa: E402

MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
           "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of `python -m fer_core ARGS` in a fresh process."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "fer_core", *args], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, int(out.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="uncompressed size of the bomb's member")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bomb, harmless = tmp / "bomb.zip", tmp / "ok.zip"
        bomb.write_bytes(zip_bomb(int(args.gib * 2**30)))
        with zipfile.ZipFile(harmless, "w") as zf:
            zf.writestr("train/happy/Training_2.jpg", encode(make_face_images(1)[0]))
            zf.writestr("notes.txt", b"no images for batch")
        print(f"bomb: {bomb.stat().st_size / 1e6:.1f} MB zip, one member of {args.gib:g} GiB")
        cases = {"data": (["data", "--data", str(bomb)], ["data", "--data", str(harmless)]),
                 "batch": (["batch", str(bomb), "--out", str(tmp / "r.csv")],
                           ["batch", str(tmp / "missing.zip"), "--out", str(tmp / "s.csv")])}
        for name, (hostile, baseline) in cases.items():
            base_s, base_mb = run(baseline)
            bomb_s, bomb_mb = run(hostile)
            print(f"{name:>5}: bomb {bomb_s:.2f} s, peak RSS {bomb_mb:.0f} MB; harmless {base_s:.2f} s, "
                  f"{base_mb:.0f} MB; extra {bomb_s - base_s:+.2f} s, {bomb_mb - base_mb:+.0f} MB")


if __name__ == "__main__":
    main()
