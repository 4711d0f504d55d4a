"""REST API: every route, the `predict --json` schema, every bad input's 4xx JSON answer, the API key,
uploads kept in memory, inference off the event loop, and one real uvicorn process on localhost."""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as skdata

from fer_core.cli import main as cli_main
from fer_core.base.labels import FOUR_CLASS
from fer_core.serving.serve import ServeConfig, create_app
from fer_core.video import sample
from tests.fixtures import encode
from tests.model_fixtures import make_fixture_model

ROOT = Path(__file__).resolve().parents[1]


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def group_photo() -> np.ndarray:
    """Four real faces side by side (the astronaut photo's head, alternately mirrored), 1280×400."""
    return sample.group_photo(4, size=(1280, 400))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_fixture_model(root, "tiny7")
    make_fixture_model(root, "tiny4", FOUR_CLASS, channels=3, scale="symmetric", default=False, seed=1)
    return root


@pytest.fixture(scope="module")
def client(models_dir):
    with TestClient(create_app(ServeConfig(models_dir=str(models_dir), api_key=""))) as c:
        yield c


@pytest.fixture(scope="module")
def astronaut() -> bytes:
    return jpeg(skdata.astronaut())


def assert_error(response, status: int, *words):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and isinstance(body["error"], str)
    assert "Traceback" not in response.text
    for word in words:
        assert word.lower() in body["error"].lower(), body["error"]


def test_health_models_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok", "models_loaded": ["tiny7"]}  # default preloaded
    models = {m["id"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"tiny7", "tiny4"} and models["tiny7"]["default"] and not models["tiny4"]["loaded"]
    assert models["tiny4"]["labels"] == list(FOUR_CLASS)
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    assert "multipart/form-data" in spec["requestBody"]["content"]
    assert {p["name"] for p in spec["parameters"]} >= {"model", "detector", "tta", "gradcam"}


def test_predict_answers_what_predict_json_prints(client, models_dir, astronaut, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut)
    monkeypatch.setenv("FER_MODELS_DIR", str(models_dir))
    assert cli_main(["predict", str(photo), "--json", "--tta", "flip"]) == 0
    expected = json.loads(capsys.readouterr().out)
    expected["images"][0]["file"] = "astronaut.jpg"
    got = client.post("/v1/predict?tta=flip", files={"image": ("astronaut.jpg", astronaut, "image/jpeg")})
    assert got.status_code == 200
    assert _close(got.json(), expected)
    assert len(got.json()["images"][0]["faces"]) == 1


def _close(a, b) -> bool:
    """Equal JSON documents, floats within 1e-6."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        assert a == pytest.approx(b, abs=1e-6)
        return True
    assert a == b
    return True


def test_group_photo_raw_body_several_images_form_fields_and_other_models(client, astronaut):
    group = client.post("/v1/predict", content=jpeg(group_photo()), headers={"content-type": "image/jpeg"}).json()
    faces = group["images"][0]["faces"]
    assert len(faces) == 4 and group["images"][0]["file"] == "upload"
    assert sorted(f["box"][0] for f in faces) == sorted({f["box"][0] for f in faces})  # four different places
    for f in faces:
        assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) and f["label"] in group["labels"]

    two = client.post("/v1/predict", files=[("image", ("a.jpg", astronaut)), ("image", ("b.png", encode(
        skdata.astronaut(), "png")))], data={"tta": "flip", "model": "tiny4"}).json()
    assert [d["file"] for d in two["images"]] == ["a.jpg", "b.png"]
    assert two["tta"] == "flip" and two["model"] == "tiny4" and two["labels"] == list(FOUR_CLASS)
    assert "tiny4" in client.get("/healthz").json()["models_loaded"]

    crop = client.post("/v1/predict?detector=none", content=encode(np.full((48, 48), 90, np.uint8), "png")).json()
    assert crop["images"][0]["whole_image"] and crop["images"][0]["faces"][0]["box"] == [0, 0, 48, 48]
    assert client.post("/v1/predict", content=encode(np.full((48, 48), 90, np.uint8), "png")).json()[
        "images"][0]["faces"] == []  # no face and no fallback asked for


@pytest.mark.parametrize("method", ["gradcam%2B%2B", "occlusion"])
def test_gradcam_overlays_come_back_as_png_data_urls(client, astronaut, method):
    face = client.post(f"/v1/predict?gradcam={method}", content=astronaut).json()["images"][0]["faces"][0]
    head, _, payload = face["gradcam"].partition(",")
    assert head == "data:image/png;base64"
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))
    assert overlay.ndim == 3 and overlay.shape[0] >= face["box"][3]


@pytest.mark.parametrize("request_kw, status, words", [
    (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, ["content type"]),
    (dict(content=b"{}", headers={"content-type": "application/json"}), 415, ["multipart"]),
    (dict(content=b"not an image at all", headers={"content-type": "image/jpeg"}), 415, ["not a recognised image"]),
    (dict(files={"image": ("cut.jpg", jpeg(skdata.astronaut())[:3000])}), 415, ["cut.jpg", "truncated"]),
    (dict(content=b""), 422, ["no image"]),
    (dict(files={"photo": ("a.jpg", b"x")}), 422, ["'photo'"]),
    (dict(files={"image": ("a.jpg", b"")}), 422, ["empty"]),
    (dict(data={"image": "photo.jpg"}, files={"other": ("x", b"")}), 422, ["@"]),
    (dict(params={"detector": "yolo"}, content=b"x"), 422, ["detector", "haar"]),
    (dict(params={"tta": "sideways"}, content=b"x"), 422, ["tta", "tencrop"]),
    (dict(params={"min_size": "0"}, content=b"x"), 422, ["min_size"]),
    (dict(params={"min_size": "big"}, content=b"x"), 422, ["min_size"]),
    (dict(params={"detecter": "haar"}, content=b"x"), 422, ["detecter", "unknown"]),
    (dict(params={"gradcam": "lime"}, content=b"x"), 422, ["gradcam"]),
    (dict(files={"image": ("a.jpg", b"x")}, data={"whole_image": "perhaps"}), 422, ["whole_image"]),
    (dict(params={"model": "nope"}, content=b"x"), 404, ["nope", "tiny7"]),
    (dict(content=b"--xyz\r\nbroken", headers={"content-type": "multipart/form-data"}), 400, ["multipart", "boundary"]),
    (dict(content=b"--xyz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=xyz"}), 422,
     ["no image"]),
])
def test_bad_inputs_get_their_status_and_a_clear_json_error(client, request_kw, status, words):
    assert_error(client.post("/v1/predict", **request_kw), status, *words)


def test_unknown_routes_and_methods(client):
    assert_error(client.get("/v2/predict"), 404, "/docs")
    assert_error(client.get("/v1/predict"), 405, "GET")


def test_limits_on_bytes_pixels_and_images(models_dir, astronaut):
    config = ServeConfig(models_dir=str(models_dir), api_key="", max_bytes=60_000, max_pixels=200_000,
                         max_images=2, preload=False)
    with TestClient(create_app(config)) as c:
        assert_error(c.post("/v1/predict", content=os.urandom(70_000)), 413, "limit")

        def chunks():  # no Content-Length: the limit applies while the body streams in
            for _ in range(10):
                yield os.urandom(10_000)
        assert_error(c.post("/v1/predict", content=chunks()), 413, "limit")
        assert_error(c.post("/v1/predict", content=jpeg(skdata.astronaut(), quality=40)), 413, "512×512", "MP")
        small = jpeg(skdata.astronaut()[::4, ::4])
        assert_error(c.post("/v1/predict", files=[("image", ("x.jpg", small))] * 3), 413, "3 images")
        assert c.post("/v1/predict", content=small).status_code == 200


def test_api_key_is_required_when_set(models_dir, astronaut, monkeypatch):
    monkeypatch.setenv("FER_API_KEY", "s3cret")
    with TestClient(create_app(ServeConfig(models_dir=str(models_dir), preload=False))) as c:
        missing = c.post("/v1/predict", content=astronaut)
        assert_error(missing, 401, "Authorization: Bearer")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(c.get("/v1/models", headers={"Authorization": "Basic s3cret"}), 401)
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/v1/predict", content=astronaut, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # liveness stays open for load balancers


def test_uploads_never_touch_the_disk(client, monkeypatch):
    import starlette.formparsers

    rolled = []

    class Spy(tempfile.SpooledTemporaryFile):
        def rollover(self):
            rolled.append(True)
            super().rollover()

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", Spy)
    noisy = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    big = encode(noisy, "png")
    assert len(big) > 1_500_000  # Starlette would spool anything over 1 MB to a temporary file
    assert client.post("/v1/predict", files={"image": ("noise.png", big)}).status_code == 200
    assert rolled == []


def test_inference_runs_off_the_event_loop(client):
    app = client.app
    clf = app.state.pool.get(None)
    gate, entered = threading.Event(), threading.Event()
    real = clf.classifier.predict_preprocessed

    def slow(x, tta=None):
        entered.set()
        gate.wait(30)
        return real(x, tta=tta)

    clf.classifier.predict_preprocessed = slow
    try:
        async def scenario():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                busy = asyncio.create_task(c.post("/v1/predict?detector=none", content=encode(
                    np.full((48, 48), 90, np.uint8), "png")))
                while not entered.is_set():
                    await asyncio.sleep(0.01)
                health = await asyncio.wait_for(c.get("/healthz"), 10)  # answered while a prediction blocks
                assert health.status_code == 200 and not busy.done()
                gate.set()
                assert (await busy).status_code == 200

        asyncio.run(scenario())
    finally:
        gate.set()
        del clf.classifier.predict_preprocessed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_refuses_a_busy_port(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli_main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_real_uvicorn_server_on_localhost(models_dir, astronaut):
    port = free_port()
    env = {**os.environ, "FER_MODELS_DIR": str(models_dir), "FER_API_KEY": "k3y"}
    proc = subprocess.Popen([sys.executable, "-m", "fer_core", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer k3y"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            time.sleep(0.5)
        r = httpx.post(f"{base}/v1/predict", files={"image": ("group.jpg", jpeg(group_photo()))}, headers=auth,
                       timeout=60)
        assert r.status_code == 200 and len(r.json()["images"][0]["faces"]) == 4
        assert_error(httpx.post(f"{base}/v1/predict", content=b"plain text", headers={
            **auth, "content-type": "text/plain"}, timeout=30), 415)
        assert_error(httpx.post(f"{base}/v1/predict", content=astronaut, timeout=30), 401)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_pool_keeps_the_most_recently_used_models_and_a_dropped_one_still_answers(models_dir):
    from fer_core.serving.model_pool import ModelPool

    pool = ModelPool(str(models_dir), max_models=1)
    try:
        first = pool.get("tiny7")
        assert pool.get("tiny7") is first and pool.loaded() == ["tiny7"]
        pool.get("tiny4")
        assert pool.loaded() == ["tiny4"]  # tiny7 dropped: at most one model loaded
        crops = [np.zeros((48, 48, 3), np.uint8)]
        assert first.predict(crops).shape == (1, 7)  # a request still holding it finishes, in its own thread
        assert first._thread is None
        assert pool.get("tiny7") is not first and pool.loaded() == ["tiny7"]
    finally:
        pool.close()


def test_pool_lists_the_models_again_only_when_a_folder_changes(tmp_path):
    from fer_core.serving.model_pool import ModelPool

    make_fixture_model(tmp_path, "tiny7")
    pool = ModelPool(str(tmp_path), recheck_s=0)  # look at the folders on every call
    first = pool.registered()
    assert pool.registered() is first  # nothing changed on disk: the listing is kept
    make_fixture_model(tmp_path, "tiny4", FOUR_CLASS, default=False, seed=1)  # e.g. a training finishing
    assert {m.id for m in pool.registered()} == {"tiny7", "tiny4"}
    assert pool.resolve("tiny4").id == "tiny4"
    card = tmp_path / "tiny7" / "card.json"
    doc = json.loads(card.read_text())
    doc["name"] = "renamed while serving"
    tmp = card.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, card)  # how cards are written: a temp file renamed into place
    assert pool.resolve("tiny7").card["name"] == "renamed while serving"


def test_pool_looks_at_the_model_folders_at_most_once_per_recheck_interval(tmp_path, monkeypatch):
    from fer_core.models import registry
    from fer_core.serving.model_pool import ModelPool

    make_fixture_model(tmp_path, "tiny7")
    clock = [1000.0]
    monkeypatch.setattr("fer_core.serving.model_pool.time.monotonic", lambda: clock[0])
    looks = []
    stamp = registry.models_stamp
    monkeypatch.setattr(registry, "models_stamp", lambda d=None: looks.append(d) or stamp(d))
    pool = ModelPool(str(tmp_path), recheck_s=1.0)
    try:
        first = pool.get(None)
        assert [pool.get(None) for _ in range(50)] == [first] * 50 and len(looks) == 1
        make_fixture_model(tmp_path, "tiny4", FOUR_CLASS, default=False, seed=1)
        assert [m.id for m in pool.registered()] == ["tiny7"]  # within the interval: not seen yet
        clock[0] += 1.5
        assert {m.id for m in pool.registered()} == {"tiny7", "tiny4"} and len(looks) == 2
        assert pool.get("tiny4") is not first and pool.get(None) is first
    finally:
        pool.close()


def test_image_bombs_get_a_413_before_decoding(client):
    from tests.hostile import jpeg_with_size, png_header_bomb

    for bomb in (png_header_bomb(60000, 60000), jpeg_with_size(jpeg(np.zeros((8, 8, 3), np.uint8)), 30000, 30000)):
        assert_error(client.post("/v1/predict", files={"image": ("bomb", bomb, "image/png")}), 413, "too large")
