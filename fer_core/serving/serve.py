"""REST API: the photo pipeline of `predict` over HTTP (FastAPI + uvicorn), OpenAPI docs at /docs.

`POST /v1/predict` takes a photo (multipart field `image`, repeatable, or the raw bytes as the body)
and answers with the JSON document `predict --json` prints. Models are loaded once and shared; each
sits behind a `batch.BatchingClassifier`, so faces of concurrent requests are classified together,
and decoding, detection and classification run in worker threads, off the event loop. Uploads stay
in memory. Every bad input gets a JSON `{"error", "status"}` answer with its 4xx status; with
`FER_API_KEY` set, /v1 routes need `Authorization: Bearer <key>`.
"""
from __future__ import annotations

import base64
import hmac
import io
import logging
import os
import socket
import threading
import warnings
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Literal

from fastapi import Query, Request  # module level: FastAPI resolves route annotations from here
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..inference.faces import DEFAULT_MIN_SIZE
from ..inference.gradcam import METHODS as EXPLAIN_METHODS

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # per request
DEFAULT_MAX_PIXELS = 40_000_000  # per image: a 40 MP photo decodes to 120 MB of RGB
DEFAULT_MAX_IMAGES = 16  # per request
DEFAULT_MAX_MODELS = 4  # loaded at once; the 4-member ensemble alone holds ~5 M parameters
API_VERSION = "1"


class ApiError(Exception):
    """A request the API refuses: its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


@dataclass(frozen=True)
class ServeConfig:
    """Limits and options of one API app. `api_key` None reads $FER_API_KEY ("" = no key)."""

    models_dir: str | None = None
    api_key: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_images: int = DEFAULT_MAX_IMAGES
    workers: int = 0  # concurrent requests decoding/detecting in threads; 0 = 2 per core
    max_models: int = DEFAULT_MAX_MODELS  # models kept loaded; the least recently used one goes first
    preload: bool = True  # load the default model at start-up, so the first request is not slow

    def key(self) -> str:
        return (os.environ.get("FER_API_KEY", "") if self.api_key is None else self.api_key).strip()


class PredictOptions(BaseModel):
    """Query parameters (or multipart text fields) of `POST /v1/predict`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="registered model id (GET /v1/models); default: the default model")
    detector: Literal["haar", "mtcnn", "none"] = Field(
        "haar", description="face detector; none = the whole image is one pre-cropped face")
    tta: str | None = Field(None, description="test-time augmentation: none, flip or tencrop; "
                                              "default: the model card's own inference")
    gradcam: Literal[EXPLAIN_METHODS] | None = Field(
        None, description="add a heatmap overlay PNG (base64 data URL) to every face: Grad-CAM, Grad-CAM++ or "
                          "occlusion (no gradients needed: explains an edge export itself)")
    whole_image: bool = Field(False, description="classify the whole image as one face when none is detected")
    min_size: int = Field(DEFAULT_MIN_SIZE, ge=1, le=10_000, description="smallest face side in pixels")

    @field_validator("tta", mode="before")
    @classmethod
    def _tta(cls, value):
        if value is None or value == "":
            return None
        from ..inference.predict import tta_mode

        text = str(value).strip().lower()
        return tta_mode({"true": "flip", "1": "flip", "yes": "flip", "false": "none", "0": "none",
                         "no": "none"}.get(text, text))


# --- models, loaded once --------------------------------------------------------------------------
class ModelPool:
    """Registered models, each loaded on first use (once, whatever the concurrency) behind a
    `BatchingClassifier`; at most `max_models` stay loaded, the least recently used dropped first, so a
    client cycling through every model cannot grow the server. Cards are re-read only when their file
    changes. Only ids of the registry are served, never arbitrary folders."""

    def __init__(self, models_dir=None, max_models: int = DEFAULT_MAX_MODELS):
        from collections import OrderedDict

        from ..models.registry import CardCache

        self.models_dir, self.max_models = models_dir, max(1, int(max_models))
        self._loaded: OrderedDict = OrderedDict()  # least recently used first
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._cards = CardCache()

    def registered(self) -> list:
        from ..models.registry import list_models

        return list_models(self.models_dir, cards=self._cards)

    def resolve(self, model_id: str | None):
        """The `ModelInfo` of `model_id` (None: the default model); 404 when it is not registered."""
        models = self.registered()
        if model_id is None:
            if not models:
                raise ApiError(404, "no models are registered; train one with `python -m fer_core train`")
            return next((m for m in models if m.is_default()), models[0])  # as registry.default_model picks
        info = next((m for m in models if m.id == model_id), None)
        if info is None:
            known = ", ".join(m.id for m in models) or "none"
            raise ApiError(404, f"no model {model_id!r}; registered models: {known}")
        return info

    def get(self, model_id: str | None):
        """The shared classifier of a model, loading it the first time (blocking: call from a thread)."""
        from .batch import BatchingClassifier
        from ..inference.predict import Classifier
        from ..models.registry import RegistryError

        info = self.resolve(model_id)
        with self._guard:
            if info.id in self._loaded:
                self._loaded.move_to_end(info.id)
                return self._loaded[info.id]
            lock = self._locks.setdefault(info.id, threading.Lock())
        with lock:
            with self._guard:
                found = self._loaded.get(info.id)
            if found is None:
                try:
                    found = BatchingClassifier(Classifier.from_registry(info))
                except (RegistryError, OSError, ValueError) as err:
                    raise ApiError(500, f"model {info.id!r} could not be loaded: {err}") from None
                self._keep(info.id, found)
        return found

    def _keep(self, model_id: str, clf) -> None:
        """Add a loaded model, closing the least recently used ones past `max_models` (a request still
        holding one finishes on it: a closed `BatchingClassifier` classifies in the caller's thread)."""
        with self._guard:
            self._loaded[model_id] = clf
            dropped = [self._loaded.popitem(last=False)[1] for _ in range(len(self._loaded) - self.max_models)]
        for old in dropped:
            old.close()
        if dropped:
            import gc

            gc.collect()

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(self._loaded)

    def close(self) -> None:
        with self._guard:
            loaded = list(self._loaded.values())
        for clf in loaded:
            clf.close()


# --- reading an upload, in memory -----------------------------------------------------------------
async def read_upload(request, config: ServeConfig) -> tuple[list[tuple[str, bytes]], dict]:
    """The photos of a request, [(name, bytes)], and its multipart text fields; never touches the disk.

    Refuses bodies over `max_bytes` (413) while reading, not after.
    """
    limit = config.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request is {_size(int(declared))}; the limit is {_size(limit)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request is over the {_size(limit)} limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        images, fields = await _parse_multipart(request.headers, body, limit)
    elif ctype in ("", "application/octet-stream") or ctype.startswith("image/"):
        images, fields = ([("upload", body)] if body else []), {}
    else:
        raise ApiError(415, f"unsupported content type {ctype!r}: send the photo as multipart/form-data "
                            "field 'image' or as the raw body (image/jpeg, image/png, …)")
    if not images:
        raise ApiError(422, "no image: send the photo as multipart field 'image' "
                            "(curl -F image=@photo.jpg) or as the raw request body")
    if len(images) > config.max_images:
        raise ApiError(413, f"{len(images)} images in one request; the limit is {config.max_images}")
    return images, fields


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


async def _parse_multipart(headers, body: bytes, limit: int) -> tuple[list[tuple[str, bytes]], dict]:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    parser = MultiPartParser(headers, stream(), max_files=64, max_fields=64, max_part_size=64 * 1024)
    parser.spool_max_size = limit + 1  # files stay in memory: the body is already within the limit
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise ApiError(400, f"malformed multipart body: {err}") from None
    images, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "image":
                raise ApiError(422, f"unexpected file field {key!r}: send photos in the field 'image'")
            data = await value.read()
            await value.close()
            if not data:
                raise ApiError(422, f"the uploaded image {value.filename or ''!r} is empty (0 bytes)")
            images.append((value.filename or "upload", data))
        elif key == "image":
            raise ApiError(422, "field 'image' holds text, not a file: use curl -F image=@photo.jpg (with the @)")
        else:
            fields[key] = value
    return images, fields


def merged_options(query: PredictOptions, fields: dict) -> PredictOptions:
    """Query parameters overridden by multipart text fields, validated together (422 on bad ones)."""
    if not fields:
        return query
    try:
        return PredictOptions.model_validate({**query.model_dump(exclude_unset=True), **fields})
    except ValidationError as err:
        raise ApiError(422, "; ".join(_describe(e, "form field") for e in err.errors())) from None


def _check_pixels(name: str, data: bytes, max_pixels: int) -> None:
    """413 for an image over `max_pixels`, read from its header before any pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            w, h = Image.open(io.BytesIO(data)).size
    except Image.DecompressionBombError:
        raise ApiError(413, f"{name} is too large to decode (over PIL's decompression-bomb limit)") from None
    except Exception as err:  # noqa: BLE001 — not an image: read_image says so with a clear message
        log.debug("%s: no image size to check (%s: %s)", name, type(err).__name__, err)
        return
    if w * h > max_pixels:
        raise ApiError(413, f"{name} is {w}×{h} = {w * h / 1e6:.0f} megapixels; the limit is "
                            f"{max_pixels / 1e6:.0f} MP: downscale it first")


# --- the work, in a worker thread -------------------------------------------------------------------
def analyze_uploads(images, clf, options: PredictOptions, max_pixels: int) -> dict:
    """The `predict --json` document for uploaded photos (runs in a worker thread)."""
    from .batch import detector_for
    from ..inference.images import ImageError, read_image
    from ..inference.predict import analyze_image

    docs = []
    tta = clf.resolve_tta(options.tta)
    for name, data in images:
        _check_pixels(name, data, max_pixels)
        named = io.BytesIO(data)
        named.name = name
        try:
            image = read_image(named, max_pixels=max_pixels)
        except ImageError as err:
            raise ApiError(415, str(err)) from None
        analysis = analyze_image(image, clf, detector_for(options.detector), tta=tta, min_size=options.min_size,
                                 whole_image_if_no_face=options.whole_image or options.detector == "none")
        doc = {"file": name, **analysis.to_dict()}
        if options.gradcam:
            _add_gradcams(doc, analysis, clf, options.gradcam)
        docs.append(doc)
    return {"model": clf.id, "labels": list(clf.labels), "detector": options.detector, "tta": tta, "images": docs}


def _add_gradcams(doc: dict, analysis, clf, method: str) -> None:
    from ..inference.gradcam import gradcam_face, overlay
    from ..inference.images import encode_png

    for face, crop in zip(doc["faces"], analysis.crops):
        try:
            heat = gradcam_face(clf.classifier, crop, method=method)
        except Exception as err:  # noqa: BLE001 — e.g. an exported or ensemble model without conv layers
            raise ApiError(422, f"model {clf.id!r} cannot be explained with {method}: {err}") from None
        face["gradcam"] = "data:image/png;base64," + base64.b64encode(encode_png(overlay(crop, heat))).decode()


def _describe(error: dict, where: str = "query parameter") -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "body")]
    name = ".".join(loc) or "request"
    msg = error.get("msg", "invalid value").removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        msg = f"unknown {where}; known: {', '.join(PredictOptions.model_fields)}"
    return f"{where} {name!r}: {msg}"


# --- the app ----------------------------------------------------------------------------------------
def create_app(config: ServeConfig | None = None):
    """The FastAPI app: /healthz, /v1/models, /v1/predict and /docs, with its own model pool."""
    import anyio
    from fastapi import Depends, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    config = config or ServeConfig()
    pool = ModelPool(config.models_dir, config.max_models)
    workers = config.workers or 2 * (os.cpu_count() or 1)
    limiter = anyio.CapacityLimiter(workers)

    @asynccontextmanager
    async def lifespan(app):
        if config.preload and pool.registered():
            await anyio.to_thread.run_sync(pool.get, None, limiter=limiter)
        yield
        pool.close()

    app = FastAPI(title="FER API", version=API_VERSION, lifespan=lifespan,
                  description="Facial emotion recognition: every face of a photo, its box and per-emotion "
                              "probabilities — the JSON of `python -m fer_core predict --json`.")
    app.state.pool, app.state.config = pool, config

    def error(status: int, message: str, headers=None):
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return error(422, "; ".join(_describe(e) for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        message = {404: f"no route {request.url.path}; see /docs", 405: f"{request.method} is not allowed on "
                   f"{request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request, exc: Exception):
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    key = config.key()

    def authorized(request: Request) -> None:
        if not key:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
            raise ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                           {"WWW-Authenticate": "Bearer"})

    @app.get("/healthz", summary="liveness: ok, and which models are loaded")
    def healthz():
        return {"status": "ok", "models_loaded": pool.loaded()}

    @app.get("/v1/models", dependencies=[Depends(authorized)], summary="registered models")
    def models():
        loaded = set(pool.loaded())
        return {"models": [{"id": m.id, "name": m.name, "labels": list(m.labels), "label_set": m.label_set,
                            "default": m.is_default(), "loaded": m.id in loaded} for m in pool.registered()]}

    upload_doc = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary", "description": "a photo (repeat for several)"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}}}}}

    @app.post("/v1/predict", dependencies=[Depends(authorized)], openapi_extra=upload_doc,
              summary="faces, boxes and per-emotion probabilities of a photo",
              responses={413: {"description": "too many bytes, pixels or images"},
                         415: {"description": "not an image"}, 422: {"description": "bad parameters"},
                         404: {"description": "unknown model"}, 401: {"description": "API key required"}})
    async def predict(request: Request, query: Annotated[PredictOptions, Query()]):
        images, fields = await read_upload(request, config)
        options = merged_options(query, fields)
        clf = await anyio.to_thread.run_sync(pool.get, options.model, limiter=limiter)
        return await anyio.to_thread.run_sync(
            partial(analyze_uploads, images, clf, options, config.max_pixels), limiter=limiter)

    return app


# --- CLI ----------------------------------------------------------------------------------------
def add_cli(subparsers) -> None:
    """`serve`: the REST API on HOST:PORT (uvicorn)."""
    p = subparsers.add_parser("serve", help="serve predictions over HTTP: a REST API with OpenAPI docs")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 = every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20, help="largest request, MB")
    p.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, help="largest image, MP")
    p.add_argument("--workers", type=int, default=0, help="requests processed at once (default: 2 per core)")
    p.add_argument("--max-models", type=int, default=DEFAULT_MAX_MODELS,
                   help="models kept loaded at once; the least recently used is dropped first")
    p.add_argument("--no-preload", action="store_true", help="load the default model on the first request")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> int:
    import uvicorn

    if not 0 < args.port < 65536:
        raise ValueError("--port must be between 1 and 65535")
    if args.max_mb <= 0 or args.max_megapixels <= 0 or args.workers < 0 or args.max_models < 1:
        raise ValueError("--max-mb and --max-megapixels must be positive, --workers 0 or more, --max-models 1 or more")
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as err:
            raise ValueError(f"cannot listen on {args.host}:{args.port} ({err.strerror}); "
                             "choose another --port or --host") from None
    config = ServeConfig(max_bytes=int(args.max_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6),
                         workers=args.workers, max_models=args.max_models, preload=not args.no_preload)
    if not config.key() and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host} without an API key; set FER_API_KEY to require one")
    print(f"FER API on http://{args.host}:{args.port} (docs: /docs); Ctrl+C stops it", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
    return 0
