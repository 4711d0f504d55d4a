"""Emotions over time, from files and webcams: imports the layers up to `inference` (not `evaluation`).

Video files (`files`), the per-frame processor shared with the webcam page (`frame_processor`), face tracks
(`tracking`), timelines (`timeline`) and the WebRTC set-up (`webrtc`).
"""
