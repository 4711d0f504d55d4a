"""Answering many requests: imports the layers up to `video` (not `evaluation` or `training`).

The REST API (`serve`) and batch scoring of folders, zips and videos, on Ray when asked (`batch`).
"""
