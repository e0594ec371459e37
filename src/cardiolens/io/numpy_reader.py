"""NumPy arrays: ``.npy`` (one array) and ``.npz`` (``signal`` plus optional ``fs``, ``leads``, ``units``)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.io.repair import apply_nan_policy
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)


def _orient(array: np.ndarray, source: Path) -> np.ndarray:
    """Return (channels, samples); a taller-than-wide 2-D array is taken as (samples, channels)."""
    if array.ndim == 1:
        return array[None, :]
    if array.ndim != 2:
        raise RecordError(f"array must be 1-D or 2-D (channels, samples), got shape {array.shape}", source)
    if array.shape[0] > array.shape[1]:
        log.info("%s: shape %s read as (samples, channels) and transposed", source, array.shape)
        return array.T
    return array


def read_numpy(
    path: str | Path,
    *,
    fs: float | None = None,
    leads: list[str] | None = None,
    units: str | list[str] | None = None,
    nan_policy: str = "raise",
) -> Record:
    """Read a ``.npy`` or ``.npz`` signal.

    Args:
        path: the file. A ``.npz`` may hold ``signal`` (or a single array), ``fs``, ``leads``, ``units``.
        fs: sampling rate in Hz (required unless the ``.npz`` holds ``fs``; must agree when both are given).
        leads: lead names; default from the file or ``ch0, ch1, ...``.
        units: units of the values; default from the file or ``unknown``.
        nan_policy: ``"raise"`` or ``"interpolate"`` (see :func:`cardiolens.io.repair.apply_nan_policy`).
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RecordError(f"cannot read NumPy file: {exc}", path) from None
    file_fs = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            key = "signal" if "signal" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise RecordError(f".npz must hold an array named 'signal' (has {names})", path)
            array = loaded[key]
            file_fs = float(loaded["fs"]) if "fs" in names else None
            leads = leads or ([str(x) for x in loaded["leads"]] if "leads" in names else None)
            if units is None and "units" in names:
                units = [str(x) for x in np.atleast_1d(loaded["units"])]
    else:
        array = loaded
    if array.dtype.kind not in "fiu":
        raise RecordError(f"array must be numeric, got dtype {array.dtype}", path)
    if fs is not None and file_fs is not None and not np.isclose(fs, file_fs):
        raise RecordError(f"fs={fs} disagrees with the file's own fs={file_fs}", path)
    fs = fs if fs is not None else file_fs
    if fs is None:
        raise RecordError(
            "NumPy files carry no sampling rate: pass fs= (--fs on the command line) or store 'fs' in a .npz", path
        )
    meta = {"format": "numpy"}
    signal = apply_nan_policy(_orient(array, path), nan_policy, path, meta)
    return Record(signal, fs, leads=leads, units=units, source=path, metadata=meta)
