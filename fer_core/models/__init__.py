"""Networks and the registry of trained ones: imports `base` and `data`.

Architectures and their preprocessing (`architectures`, `preprocess`), test-time views (`tta`), the registry of
`models/<id>` folders (`registry`, re-exporting: `card` the typed card and `ModelInfo`, `card_store` card I/O and
locks, `lookup` where models are found and each label set's default, `loading` a model's network), the runtimes
of edge exports (`runtimes`) and ensembles (`ensemble`).
"""
