"""Rows of class scores made into probabilities: one softmax of logits and one renormalisation of
(approximate) probabilities, for the runtimes, the classifier and distillation. Imports only NumPy.
"""
from __future__ import annotations

import numpy as np


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis` (float input keeps its precision; anything else → float32)."""
    x = np.asarray(logits)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def renormalise(probabilities, axis: int = -1) -> np.ndarray:
    """Rows that sum to 1 (float32): negatives clipped to 0, each row divided by its sum; an all-zero row
    becomes uniform. For quantized softmax outputs (int8 steps of 1/256 leave sums a little off 1)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float32), 0.0, None)
    total = p.sum(axis=axis, keepdims=True)
    uniform = np.full_like(p, 1.0 / max(1, p.shape[axis] if p.ndim else 1))
    return np.divide(p, total, out=uniform, where=total > 0)


def as_probabilities(out) -> np.ndarray:
    """Model outputs as probabilities (float32): softmax outputs pass through, logits (a negative score,
    or rows not summing to 1) are soft-maxed."""
    out = np.asarray(out, dtype=np.float32)
    if out.size and (out.min() < 0 or np.abs(out.sum(axis=1) - 1).max() > 1e-3):
        return softmax(out, axis=1)
    return out
