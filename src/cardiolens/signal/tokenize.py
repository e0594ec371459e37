"""The HeartGPT tokeniser: a window min-max scaled to 0..vocab_size-1 and rounded, and back.

HeartGPT (Davies et al. 2024) turns a signal into integer tokens by min-max scaling to 0..100 and
rounding: 101 amplitude levels. Its ECG model has a vocabulary of 101 ids; its PPG model has 102,
but the published preprocessing scales PPG to 0..100 as well, so the id 101 never occurs in its
inputs. ``vocab_size`` here is the number of amplitude levels the tokeniser produces (tokens
0..vocab_size-1); tokenise for either published model with ``vocab_size=101``
(:data:`HEARTGPT_LEVELS`).

Scaling span. HeartGPT scales each 10 s training record (1000 samples at 100 Hz) as a whole, but
each 500-sample context on its own at inference. cardiolens defaults to the *window* span
(``span="window"``): a model always sees the scaling it sees at inference time whatever the length
of the user's record, every window uses the full range of levels, and one artefact cannot squash
the rest of a long record into a few levels. To reproduce the training-time scaling, or to keep
several windows comparable, compute ``(min, max)`` over the longer segment with :func:`span_scale`
and pass it as ``scale=`` (``span="given"``); values outside it are clipped to the end levels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.signal.filters import describe

HEARTGPT_ECG_VOCAB = 101
HEARTGPT_PPG_VOCAB = 102
# amplitude levels HeartGPT's preprocessing produces for both ECG and PPG (tokens 0..100)
HEARTGPT_LEVELS = 101
SPANS = ("window", "given")


def _finite(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        raise RecordError(f"cannot {what}: the signal is empty", describe(x))
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise RecordError(f"cannot {what}: the signal holds {bad} NaN/inf values", describe(x))
    return arr


def span_scale(x: Any) -> tuple[float, float]:
    """``(min, max)`` of a (longer) segment: the ``scale`` to tokenise its windows alike.

    Raises:
        RecordError: empty, NaN/inf, or constant input.
    """
    arr = _finite(x, "compute a token scale")
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise RecordError(f"cannot compute a token scale: the segment is constant ({lo:g})", describe(x))
    return lo, hi


def tokenize(
    x: Any, vocab_size: int = HEARTGPT_ECG_VOCAB, scale: tuple[Any, Any] | None = None, *, span: str | None = None
) -> tuple[np.ndarray, tuple[Any, Any]]:
    """Map signal values to integer tokens ``0..vocab_size-1`` (the last axis is time).

    Args:
        x: a 1-D window, or (windows, samples) for a batch.
        vocab_size: number of amplitude levels (101 for both HeartGPT models, see the module notes).
        scale: ``(min, max)`` to scale by (from :func:`span_scale` over a longer segment); implies
            ``span="given"``. Scalars, or one value per row for a batch.
        span: ``"window"`` (default: each window, or each row of a batch, by its own min and max)
            or ``"given"`` (by ``scale``).

    Returns:
        ``(tokens, scale)``: int64 tokens shaped like ``x``, and the ``(min, max)`` used (floats
        for a 1-D window, arrays of per-row values for a batch scaled by window) so that
        :func:`detokenize` maps tokens back to signal units.

    Raises:
        RecordError: NaN/inf values, a constant window (min == max, nothing to encode), a bad
            ``scale``/``span`` or ``vocab_size`` < 2.

    Example:
        >>> tokens, scale = tokenize(np.array([0.0, 0.5, 1.0]))
        >>> tokens.tolist(), scale
        ([0, 50, 100], (0.0, 1.0))
    """
    where = describe(x)
    span = span or ("given" if scale is not None else "window")
    if span not in SPANS:
        raise RecordError(f"tokenize: span must be one of {', '.join(SPANS)}, got {span!r}", where)
    if int(vocab_size) != vocab_size or vocab_size < 2:
        raise RecordError(f"tokenize: vocab_size must be an integer >= 2, got {vocab_size!r}", where)
    arr = _finite(x, "tokenise")
    if span == "window":
        if scale is not None:
            raise RecordError("tokenize: span='window' scales each window by itself; do not pass scale", where)
        lo, hi = arr.min(axis=-1, keepdims=True), arr.max(axis=-1, keepdims=True)
    else:
        if scale is None or len(scale) != 2:
            raise RecordError("tokenize: span='given' needs scale=(min, max), e.g. from span_scale()", where)
        lo, hi = (np.asarray(s, dtype=np.float64) for s in scale)
        if lo.ndim:  # one value per row of a batch
            lo, hi = lo[..., None], hi[..., None]
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise RecordError("tokenize: scale holds NaN/inf values", where)
    if np.any(hi <= lo):
        rows = np.flatnonzero(np.broadcast_to(hi <= lo, lo.shape)).tolist() if lo.ndim and lo.size > 1 else []
        which = f" (rows {rows})" if rows else ""
        raise RecordError(
            f"cannot tokenise a constant window{which}: min == max, so it carries no shape to encode "
            "(flat or missing lead?)",
            where,
        )
    top = int(vocab_size) - 1
    tokens = np.clip(np.round((arr - lo) / (hi - lo) * top), 0, top).astype(np.int64)
    if span == "given":
        return tokens, scale if lo.ndim == 0 else (np.squeeze(lo, -1), np.squeeze(hi, -1))
    lo, hi = np.squeeze(lo, -1), np.squeeze(hi, -1)
    if lo.ndim == 0:
        return tokens, (float(lo), float(hi))
    return tokens, (lo, hi)


def detokenize(tokens: Any, scale: tuple[Any, Any], vocab_size: int = HEARTGPT_ECG_VOCAB) -> np.ndarray:
    """Map tokens back to signal units with the ``(min, max)`` scale :func:`tokenize` returned.

    Each value comes back within half a quantum, ``(max - min) / (2 * (vocab_size - 1))``, of
    the original (values clipped by a given scale excepted).

    Raises:
        RecordError: tokens outside ``0..vocab_size-1``.
    """
    tokens = np.asarray(tokens)
    top = int(vocab_size) - 1
    if tokens.size and (tokens.min() < 0 or tokens.max() > top):
        raise RecordError(
            f"tokens must lie in 0..{top} for vocab_size={vocab_size}, got {tokens.min()}..{tokens.max()}",
            describe(tokens),
        )
    lo, hi = (np.asarray(s, dtype=np.float64) for s in scale)
    if lo.ndim:
        lo, hi = lo[..., None], hi[..., None]
    return lo + tokens.astype(np.float64) / top * (hi - lo)


__all__ = [
    "HEARTGPT_ECG_VOCAB",
    "HEARTGPT_LEVELS",
    "HEARTGPT_PPG_VOCAB",
    "SPANS",
    "detokenize",
    "span_scale",
    "tokenize",
]
