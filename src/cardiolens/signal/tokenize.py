"""The HeartGPT tokeniser: a window min-max scaled to 0..vocab_size-1 and rounded, and back.

Scaling span. HeartGPT scales each 10 s record to 0..100 when training but each 500-sample window
at inference. cardiolens uses the *window* as the default span at both times: a model then sees
exactly the scaling it was trained with, whatever the length of the user's record, and each window
uses the full vocabulary. The other choice stays available: pass ``scale=(lo, hi)`` computed over a
longer segment (see :func:`span_scale`).
"""

from __future__ import annotations

import numpy as np

from cardiolens.errors import RecordError

HEARTGPT_ECG_VOCAB = 101
HEARTGPT_PPG_VOCAB = 102


def span_scale(x: np.ndarray) -> tuple[float, float]:
    """(min, max) of ``x``: the scale to pass to :func:`tokenize` to scale by a longer span."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise RecordError("cannot tokenise: the signal is empty or holds NaN/inf values")
    return float(x.min()), float(x.max())


def tokenize(
    x: np.ndarray, vocab_size: int = HEARTGPT_ECG_VOCAB, scale: tuple[float, float] | None = None
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map signal values to integer tokens 0..vocab_size-1 (last axis is time).

    Args:
        x: 1-D window (or (windows, samples) for a batch: each row gets its own scale unless ``scale``).
        vocab_size: number of token values (101 for HeartGPT ECG; the PPG model's vocabulary has 102).
        scale: (min, max) to scale by; default the window's own min and max.

    Returns:
        (tokens int64, scale) where scale is (min, max) (arrays of per-row values for a batch).

    Raises:
        RecordError: NaN/inf values, or a constant window (min == max) that has no shape to encode.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise RecordError("cannot tokenise: the window is empty or holds NaN/inf values")
    if scale is None:
        lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    else:
        lo, hi = np.asarray(scale[0], dtype=np.float64), np.asarray(scale[1], dtype=np.float64)
    if np.any(hi <= lo):
        raise RecordError("cannot tokenise a constant window (min == max): it carries no signal")
    top = vocab_size - 1
    tokens = np.clip(np.round((x - lo) / (hi - lo) * top), 0, top).astype(np.int64)
    lo_out, hi_out = (np.squeeze(lo, -1), np.squeeze(hi, -1)) if scale is None else (lo, hi)
    if lo_out.ndim == 0:
        return tokens, (float(lo_out), float(hi_out))
    return tokens, (lo_out, hi_out)


def detokenize(tokens: np.ndarray, scale: tuple[float, float], vocab_size: int = HEARTGPT_ECG_VOCAB) -> np.ndarray:
    """Map tokens back to signal units with the (min, max) scale :func:`tokenize` returned."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise RecordError(f"tokens must lie in 0..{vocab_size - 1}, got {tokens.min()}..{tokens.max()}")
    lo, hi = (np.asarray(s, dtype=np.float64) for s in scale)
    if lo.ndim:
        lo, hi = lo[..., None], hi[..., None]
    return lo + tokens.astype(np.float64) / (vocab_size - 1) * (hi - lo)
