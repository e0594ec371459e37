"""MATLAB ``.mat`` files without a WFDB header: the original CPSC 2018 struct (``ECG.data`` in mV,
``ECG.sex``, ``ECG.age``; 500 Hz, 12 standard leads) and a bare ``val`` matrix as the PhysioNet
challenges ship beside their headers (which then needs the sampling rate from the caller).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from cardiolens.errors import RecordError, UnknownFormatError
from cardiolens.io.repair import apply_nan_policy
from cardiolens.signal.record import Record

CPSC2018_FS = 500.0
STANDARD_12_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def is_mat_file(path: Path) -> bool:
    """MAT level 5 files start with a text header; level 4 files (challenge ``val``) are detected by
    scipy's own reader in :func:`read_mat`, so only v5 is recognised by content here."""
    with open(path, "rb") as fh:
        return fh.read(10) == b"MATLAB 5.0"


def _load(path: Path) -> dict:
    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError on corrupt files
        raise RecordError(f"cannot read MATLAB file: {exc}", path) from None


def _scalar(value: object) -> object:
    """Unwrap scipy's nested object arrays ([[52]] -> 52, ['Male'] -> 'Male')."""
    while isinstance(value, np.ndarray) and value.size == 1:
        value = value.item() if value.dtype != object else value.flat[0]
    return value


def read_mat(
    path: str | Path, *, fs: float | None = None, leads: list[str] | None = None, nan_policy: str = "raise"
) -> Record:
    """Read a ``.mat`` recording that has no WFDB header.

    Args:
        path: the ``.mat`` file.
        fs: sampling rate; required for a bare ``val`` matrix, ignored (checked) for CPSC 2018.
        leads: lead names for a bare matrix.
        nan_policy: ``"raise"`` or ``"interpolate"`` (see :func:`cardiolens.io.repair.apply_nan_policy`).
    """
    path = Path(path)
    content = _load(path)
    if "ECG" in content:
        ecg = content["ECG"]
        if ecg.dtype.names is None or "data" not in ecg.dtype.names:
            raise RecordError("struct ECG has no field 'data' (expected the CPSC 2018 layout)", path)
        data = np.asarray(ecg["data"][0, 0], dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != 12:
            raise RecordError(f"CPSC 2018 ECG.data must be 12 x samples, got {data.shape}", path)
        if fs is not None and float(fs) != CPSC2018_FS:
            raise RecordError(f"CPSC 2018 records are sampled at 500 Hz, not {fs}", path)
        meta = {"format": "cpsc2018"}
        for key in ("sex", "age"):
            if key in ecg.dtype.names:
                meta[key] = _scalar(ecg[key][0, 0])
        data = apply_nan_policy(data, nan_policy, path, meta)
        return Record(data, CPSC2018_FS, leads=STANDARD_12_LEADS, units="mV", source=path, metadata=meta)
    if "val" in content:
        if fs is None:
            raise RecordError(
                "a bare challenge .mat ('val' matrix) carries no sampling rate or gain: keep its .hea beside it, "
                "or pass fs= (--fs on the command line; values are then raw ADC units)",
                path,
            )
        meta = {"format": "mat"}
        val = apply_nan_policy(np.asarray(content["val"], dtype=np.float64), nan_policy, path, meta)
        return Record(val, fs, leads=leads, units="adu", source=path, metadata=meta)
    keys = sorted(k for k in content if not k.startswith("__"))
    raise UnknownFormatError(
        f"MATLAB file holds neither a CPSC 2018 'ECG' struct nor a 'val' matrix (has {keys})", path
    )
