"""Networks and the registry of trained ones: imports `base` and `data`.

Architectures and their preprocessing (`architectures`, `preprocess`), test-time views (`tta`), the registry of
`models/<id>` folders and their cards (`registry`), the runtimes of edge exports (`runtimes`) and ensembles
(`ensemble`).
"""
