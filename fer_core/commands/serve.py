"""`serve`: the REST API (`fer_core.serving.serve`) on HOST:PORT with uvicorn."""
from __future__ import annotations

import socket

from ..serving.serve import DEFAULT_MAX_BYTES, DEFAULT_MAX_MODELS, DEFAULT_MAX_PIXELS, ServeConfig, create_app


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
    p.set_defaults(func=run)


def run(args) -> int:
    """Check the limits and that HOST:PORT is free, then serve the API until Ctrl+C."""
    import uvicorn

    if not 0 < args.port < 65536:
        raise ValueError("--port must be between 1 and 65535")
    if args.max_mb <= 0 or args.max_megapixels <= 0 or args.workers < 0 or args.max_models < 1:
        raise ValueError("--max-mb and --max-megapixels must be positive, --workers 0 or more, --max-models 1 or more")
    _check_free(args.host, args.port)
    config = ServeConfig(max_bytes=int(args.max_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6),
                         workers=args.workers, max_models=args.max_models, preload=not args.no_preload)
    if not config.key() and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host} without an API key; set FER_API_KEY to require one")
    print(f"FER API on http://{args.host}:{args.port} (docs: /docs); Ctrl+C stops it", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
    return 0


def _check_free(host: str, port: int) -> None:
    """ValueError, before any model loads, when HOST:PORT cannot be listened on (taken, or not this machine's)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ValueError(f"cannot listen on {host}:{port} ({err.strerror}); "
                             "choose another --port or --host") from None
