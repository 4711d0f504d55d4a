"""WebRTC set-up: ICE server configuration and loading the SRTP library after TensorFlow."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fer_core.video import webrtc

ROOT = Path(__file__).resolve().parents[1]


def test_ice_server_config():
    assert webrtc.parse_ice_servers(None) == [] and webrtc.parse_ice_servers(" ") == []
    assert webrtc.parse_ice_servers('[{"urls": "stun:stun.example.org"}]') == [{"urls": "stun:stun.example.org"}]
    for bad in ("{", "[1]", '[{"user": "x"}]'):
        with pytest.raises(ValueError):
            webrtc.parse_ice_servers(bad)


def test_webrtc_stack_loads_after_tensorflow():
    """aiortc's SRTP binding segfaults when loaded after TensorFlow unless `prepare_webrtc_import` ran first."""
    import subprocess

    code = ("import tensorflow, fer_core.video.webrtc as w; w.prepare_webrtc_import(); "
            "import streamlit_webrtc, aiortc; "
            "from pylibsrtp import Policy, Session; "
            "s = Session(policy=Policy(key=b'0' * 30, ssrc_type=Policy.SSRC_ANY_OUTBOUND)); "
            "print('protected', len(s.protect(b'\\x80\\x08\\x00\\x01' + bytes(28))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "protected" in done.stdout, done.stderr[-2000:]
