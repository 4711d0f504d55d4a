"""The bottom layer: what every other layer shares and that imports nothing else of fer_core.

Label sets and colours (`labels`), the progress callback type (`progress`), TensorFlow's log silencing
(`quiet`), the compute device (`runtime`), input size limits (`limits`), the LiteRT interpreter (`litert`),
atomic file writes (`files`) and the optional packages each extra installs (`extras`).
"""
