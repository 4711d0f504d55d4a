"""WebRTC set-up for the live webcam page: ICE servers from configuration, and loading aiortc's SRTP
library safely in a process that already holds TensorFlow.
"""
from __future__ import annotations

import json
import os
import sys


def parse_ice_servers(spec) -> list[dict]:
    """ICE servers from JSON text or an already parsed list (e.g. from secrets.toml).

    Example: `[{"urls": ["stun:stun.example.org:3478"]}, {"urls": "turn:…", "username": …, "credential": …}]`.
    Empty or missing means none: browser and server then connect directly, which works on
    localhost and a LAN without any STUN/TURN server.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return []
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as err:
            raise ValueError(f"ICE servers are not valid JSON: {err}") from None
    if isinstance(spec, dict) or hasattr(spec, "keys"):
        spec = dict(spec).get("iceServers", [dict(spec)])
    servers = [dict(s) for s in spec if hasattr(s, "keys")] if isinstance(spec, (list, tuple)) else None
    if servers is None or len(servers) != len(spec) or not all(s.get("urls") for s in servers):
        raise ValueError('ICE servers must be a list of objects with "urls", e.g. '
                         '[{"urls": ["stun:stun.example.org:3478"]}]')
    return servers


def prepare_webrtc_import() -> None:
    """Load aiortc's SRTP binding so that it works even when TensorFlow is already loaded.

    pylibsrtp links OpenSSL statically without hiding its symbols; loaded after TensorFlow (which
    exports BoringSSL's), its calls bind to those and the process segfaults in `srtp_init`.
    RTLD_DEEPBIND makes it use its own copies. Call before `import streamlit_webrtc`.
    """
    if "pylibsrtp" in sys.modules:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        pass  # no WebRTC stack installed: the webcam page reports it when importing streamlit_webrtc
    finally:
        sys.setdlopenflags(flags)
