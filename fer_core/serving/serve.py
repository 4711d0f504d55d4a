"""REST API: the photo pipeline of `predict` over HTTP (FastAPI + uvicorn), OpenAPI docs at /docs.

`POST /v1/predict` takes a photo (multipart field `image`, repeatable, or the raw bytes as the body)
and answers with the JSON document `predict --json` prints. Models are loaded once and shared
(`model_pool`); each sits behind a `batching.BatchingClassifier`, so faces of concurrent requests are
classified together, and decoding, detection and classification run in worker threads, off the event
loop. Uploads stay in memory (`uploads`). Every bad input gets a JSON `{"error", "status"}` answer
with its 4xx status; with `FER_API_KEY` set, /v1 routes need `Authorization: Bearer <key>`.
"""
from __future__ import annotations

import base64
import hmac
import io
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Query, Request  # module level: FastAPI resolves route annotations from here
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..inference.faces import CROP_POLICIES, DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE, DETECTORS
from ..inference.gradcam import METHODS as EXPLAIN_METHODS
from .api_error import ApiError
from .model_pool import DEFAULT_MAX_MODELS, DEFAULT_RECHECK_S, ModelPool
from .uploads import check_pixels, read_upload

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # per request
DEFAULT_MAX_PIXELS = 40_000_000  # per image: a 40 MP photo decodes to 120 MB of RGB
DEFAULT_MAX_IMAGES = 16  # per request
API_VERSION = "1"


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
    model_recheck_s: float = DEFAULT_RECHECK_S  # a model retrained or re-exported is served at most this long after
    preload: bool = True  # load the default model at start-up, so the first request is not slow

    def key(self) -> str:
        return (os.environ.get("FER_API_KEY", "") if self.api_key is None else self.api_key).strip()


class PredictOptions(BaseModel):
    """Query parameters (or multipart text fields) of `POST /v1/predict`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="registered model id (GET /v1/models); default: the default model")
    detector: Literal[(*DETECTORS, "none")] = Field(
        DEFAULT_DETECTOR, description="face detector; none = the whole image is one pre-cropped face")
    crop: Literal[tuple(CROP_POLICIES)] = Field(
        DEFAULT_CROP, description="how a face becomes the model's input: "
                                  + "; ".join(f"{k} = {v}" for k, v in CROP_POLICIES.items()))
    tta: str | None = Field(None, description="test-time augmentation: none, flip or tencrop; "
                                              "default: the model card's own inference")
    gradcam: Literal[EXPLAIN_METHODS] | None = Field(
        None, description="add a heatmap overlay PNG (base64 data URL) to every face: Grad-CAM, Grad-CAM++ or "
                          "occlusion (no gradients needed: explains an edge export itself)")
    whole_image: bool | None = Field(
        None, description="classify the whole image as one face when none is detected: true always, false never; "
                          "default: when it looks like a face crop itself (at most 160 px, about square)")
    min_size: int = Field(DEFAULT_MIN_SIZE, ge=1, le=10_000, description="smallest face side in pixels")

    @field_validator("tta", mode="before")
    @classmethod
    def _tta(cls, value):
        if value is None or value == "":
            return None
        from ..models.tta import tta_mode

        text = str(value).strip().lower()
        return tta_mode({"true": "flip", "1": "flip", "yes": "flip", "false": "none", "0": "none",
                         "no": "none"}.get(text, text))


def merged_options(query: PredictOptions, fields: dict) -> PredictOptions:
    """Query parameters overridden by multipart text fields, validated together (422 on bad ones)."""
    if not fields:
        return query
    try:
        return PredictOptions.model_validate({**query.model_dump(exclude_unset=True), **fields})
    except ValidationError as err:
        raise ApiError(422, "; ".join(_describe(e, "form field") for e in err.errors())) from None


# --- the work, in a worker thread -------------------------------------------------------------------
def analyze_uploads(images, clf, options: PredictOptions, max_pixels: int) -> dict:
    """The `predict --json` document for uploaded photos (runs in a worker thread)."""
    from .scoring import detector_for
    from ..inference.images import ImageError, read_image
    from ..inference.predict import analyze_image

    docs = []
    tta = clf.resolve_tta(options.tta)
    for name, data in images:
        check_pixels(name, data, max_pixels)
        named = io.BytesIO(data)
        named.name = name
        try:
            image = read_image(named, max_pixels=max_pixels)
        except ImageError as err:
            raise ApiError(415, str(err)) from None
        analysis = analyze_image(image, clf, detector_for(options.detector), tta=tta, min_size=options.min_size,
                                 crop=options.crop,
                                 whole_image_if_no_face=options.whole_image)
        doc = {"file": name, **analysis.to_dict()}
        if options.gradcam:
            _add_gradcams(doc, analysis, clf, options.gradcam)
        docs.append(doc)
    return {"model": clf.id, "labels": list(clf.labels), "detector": options.detector, "crop": options.crop,
            "tta": tta, "images": docs}


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
    pool = ModelPool(config.models_dir, config.max_models, config.model_recheck_s)
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

    async def authorized(request: Request) -> None:  # async: FastAPI would send a plain def to a thread per request
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
        def work():  # one trip to a worker thread: the model (loaded on first use), the photos, the JSON text
            # (a response returned ready skips FastAPI's value-by-value jsonable_encoder walk over the document)
            return JSONResponse(analyze_uploads(images, pool.get(options.model), options, config.max_pixels))

        return await anyio.to_thread.run_sync(work, limiter=limiter)

    return app
