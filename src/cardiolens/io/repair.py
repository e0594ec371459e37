"""The NaN policy shared by every reader: refuse missing samples, or fill them and say so."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cardiolens.errors import CardiolensError, RecordError

log = logging.getLogger(__name__)

NAN_POLICIES = ("raise", "interpolate")


def check_nan_policy(policy: str) -> str:
    """``policy`` when it is one of :data:`NAN_POLICIES`; a clear error otherwise (once, before any file is read)."""
    if policy not in NAN_POLICIES:
        raise CardiolensError(f"nan_policy must be 'raise' or 'interpolate', got {policy!r}")
    return policy


def apply_nan_policy(signal: np.ndarray, policy: str, source: str | Path, metadata: dict) -> np.ndarray:
    """Return ``signal`` (channels, samples) with NaN/inf handled by ``policy``.

    ``"raise"`` leaves the array alone (Record itself refuses non-finite values with a clear error);
    ``"interpolate"`` fills each gap linearly between its neighbours (edges take the nearest value),
    logs it and records the count per lead in ``metadata["repaired"]``. A lead with no finite
    sample at all cannot be repaired.
    """
    if check_nan_policy(policy) == "raise":
        return signal
    signal = np.array(signal, dtype=np.float64, copy=True, ndmin=2)
    repaired = {}
    for i, channel in enumerate(signal):
        bad = ~np.isfinite(channel)
        if not bad.any():
            continue
        if bad.all():
            raise RecordError(f"channel {i} holds no finite sample at all: nothing to interpolate from", source)
        idx = np.arange(channel.size)
        channel[bad] = np.interp(idx[bad], idx[~bad], channel[~bad])
        repaired[i] = int(bad.sum())
    if repaired:
        log.warning("%s: interpolated %d missing samples", source, sum(repaired.values()))
        metadata["repaired"] = {"interpolated_samples_per_channel": repaired}
    return signal
