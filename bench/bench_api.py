"""Benchmark: the REST API under a bounded load on localhost — requests/s and p50/p99 latency.

    python -m bench.bench_api [--requests 200] [--concurrency 16] [--model ID] [--detector NAME]

Starts `python -m fer_core serve` on a free localhost port (the shipped default model unless --model)
and sends a fixed number of requests over `--concurrency` keep-alive connections for three photos: one face
(the astronaut portrait), a group of four faces, and a pre-cropped 48×48 face (`detector=none`, where
only classification costs and cross-request batching matters most). Baseline, in this process on the
same model: the same photo through `read_image` + `analyze_image`, one call after another, no HTTP.
The ratio (API requests/s ÷ baseline calls/s) is what HTTP, JSON and concurrency add or take away.
"CPU ms" is the server process's CPU time per request (Linux /proc): the cost of a request, steadier than
requests/s on a shared machine, whose neighbours move throughput by a fifth from run to run. The clients share
the CPU with the server, so they send a request encoded once (as `wrk` does) rather than build each upload with
httpx, which cost 3.5 CPU ms per request, an eighth of the server's; "client ms" is what they still cost.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from fer_core.inference.faces import DEFAULT_DETECTOR  # noqa: E402
from fer_core.models import registry  # noqa: E402
from fer_core.video.sample import group_photo  # noqa: E402


def encoded(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def payloads() -> dict[str, tuple[bytes, dict, int]]:
    """name → (image bytes, query parameters, faces expected)."""
    group = group_photo(4, size=(1280, 400))
    from skimage.data import lfw_subset
    import cv2

    crop = cv2.resize((lfw_subset()[0] * 255).round().astype(np.uint8), (48, 48), interpolation=cv2.INTER_CUBIC)
    return {"one face, 512×512 JPEG": (encoded(skdata.astronaut()), {}, 1),
            "group of 4, 1280×400 JPEG": (encoded(group), {}, 4),
            "48×48 crop, detector=none": (encoded(crop, "PNG"), {"detector": "none"}, 1)}


def classifier(model_id: str):
    from fer_core.inference.loader import load_classifier

    return load_classifier(model_id)


def baseline(model_id: str, data: bytes, params: dict, rounds: int) -> float:
    """Calls/s of read_image + analyze_image in this process, sequentially (after a warm-up)."""
    from fer_core.serving.scoring import detector_for
    from fer_core.inference.images import read_image
    from fer_core.inference.predict import analyze_image

    clf = classifier(model_id)
    det = params.get("detector", DEFAULT_DETECTOR)  # the server's default when the request names none

    def run():
        return analyze_image(read_image(data), clf, detector_for(det))

    for _ in range(3):
        run()
    start = time.perf_counter()
    for _ in range(rounds):
        run()
    return rounds / (time.perf_counter() - start)



def raw_request(url: str, data: bytes, params: dict) -> tuple[str, int, bytes]:
    """(host, port, the whole HTTP/1.1 request as bytes): the multipart upload httpx would send, encoded once,
    so the load below costs the clients a socket write and a read per request instead of building the upload."""
    request = httpx.Request("POST", url, params=params, files={"image": ("photo", data)})
    body = request.read()
    head = [f"POST {request.url.raw_path.decode()} HTTP/1.1", f"Host: {request.url.netloc.decode()}",
            f"Content-Type: {request.headers['content-type']}", f"Content-Length: {len(body)}", "", ""]
    return request.url.host, request.url.port, "\r\n".join(head).encode() + body


async def answer_status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response off a keep-alive connection; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def load(url: str, data: bytes, params: dict, n: int, concurrency: int) -> tuple[float, list[float], int, float]:
    """Send `n` requests over `concurrency` keep-alive connections, each waiting for its answer before the next
    (like `wrk`): (requests/s, latencies in ms, failures, the clients' own CPU ms per request)."""
    host, port, request = raw_request(url, data, params)
    latencies, failures, left = [], 0, n

    async def client():
        nonlocal failures, left
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while left > 0:
                left -= 1
                t = time.perf_counter()
                writer.write(request)
                status = await answer_status(reader)
                latencies.append(1000 * (time.perf_counter() - t))
                failures += status != 200
        finally:
            writer.close()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return n / (time.perf_counter() - start), latencies, failures, 1000 * (time.process_time() - cpu) / n


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(model_id: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FER_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "fer_core", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server did not start within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", help="registered model id (default: the default model)")
    parser.add_argument("--detector", help="face detector for the photos (default: the server's, "
                                           f"{DEFAULT_DETECTOR}); e.g. haar to compare with the former default")
    args = parser.parse_args()
    info = registry.get_model(args.model) if args.model else registry.default_model()
    if info is None:
        raise SystemExit("no registered model")
    cases = payloads()
    if args.detector:
        cases = {name: (data, {"detector": args.detector, **params}, n) for name, (data, params, n) in cases.items()}
    print(f"model {info.id}, detector {args.detector or DEFAULT_DETECTOR}; {args.requests} requests per photo from "
          f"{args.concurrency} concurrent clients; "
          f"{os.cpu_count()} CPU cores")
    direct = {name: baseline(info.id, data, params, rounds=20) for name, (data, params, _) in cases.items()}
    proc, base = start_server(info.id)
    try:
        url = f"{base}/v1/predict"
        params0 = {"model": info.id}
        print(f"{'photo':<28}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>8}{'client ms':>10}{'faces':>7}"
              f"{'fail':>6}{'direct/s':>10}{'ratio':>8}")
        for name, (data, params, want) in cases.items():
            params = {**params0, **params}
            faces = len(httpx.post(url, params=params, files={"image": ("photo", data)}, timeout=120)
                        .json()["images"][0]["faces"])
            asyncio.run(load(url, data, params, 2 * args.concurrency, args.concurrency))  # warm every batch size
            cpu = cpu_seconds(proc.pid)
            rps, lat, fails, client_ms = asyncio.run(load(url, data, params, args.requests, args.concurrency))
            cpu_ms = f"{1000 * (cpu_seconds(proc.pid) - cpu) / args.requests:>8.1f}" if cpu is not None else f"{'—':>8}"
            p50, p99 = statistics.median(lat), float(np.percentile(lat, 99))
            print(f"{name:<28}{rps:>8.1f}{p50:>9.0f}{p99:>9.0f}{cpu_ms}{client_ms:>10.1f}{faces:>4}/{want:<2}{fails:>6}"
                  f"{direct[name]:>10.1f}{rps / direct[name]:>7.2f}×")
    finally:
        proc.terminate()
        proc.wait(30)
    print("ratio = API requests/s with concurrent clients ÷ sequential in-process read_image + analyze_image calls/s")


if __name__ == "__main__":
    main()
