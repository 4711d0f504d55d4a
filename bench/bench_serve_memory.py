"""`serve`'s memory while clients cycle through every registered model: resident memory after each
cycle, with the pool's default cap on loaded models and, for comparison, with no cap (the old pool).

Each model answers one request through the API (FastAPI's TestClient, one process). Flat figures
from the second cycle on mean the pool does not grow. Run from the repository root:

    python -m bench.bench_serve_memory [--cycles 3] [--max-models 4]
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--max-models", type=int, default=4, help="the pool's cap; 0 = no cap (the old pool)")
    args = parser.parse_args()
    import numpy as np
    from fastapi.testclient import TestClient
    from PIL import Image

    from fer_core.serving.serve import ServeConfig, create_app

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(buf, "PNG")
    photo = buf.getvalue()
    cap = args.max_models or 10_000
    config = ServeConfig(api_key="", max_models=cap, preload=False)
    with TestClient(create_app(config)) as client:
        ids = [m["id"] for m in client.get("/v1/models").json()["models"]]
        print(f"{len(ids)} models, cap {args.max_models or 'none'}; RSS at start {rss_mb():.0f} MB")
        for cycle in range(1, args.cycles + 1):
            started = time.perf_counter()
            for model_id in ids:
                r = client.post(f"/v1/predict?model={model_id}&detector=none&whole_image=true",
                                files={"image": ("x.png", photo)})
                assert r.status_code == 200, r.text
            loaded = len(client.get("/healthz").json()["models_loaded"])
            print(f"cycle {cycle}: RSS {rss_mb():.0f} MB, {loaded} models loaded, "
                  f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
