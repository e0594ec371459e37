"""NumPy arrays: ``.npy`` (one array) and ``.npz`` (``signal`` plus optional ``fs``, ``leads``, ``units``,
``gain``, ``baseline``)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.io.repair import apply_nan_policy
from cardiolens.signal.leads import lead_positions
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
        path: the file. A ``.npz`` may hold ``signal`` (or a single array), ``fs``, ``leads``, ``units``
            (one for all leads or one per lead) and, for stored integers, ``gain`` and ``baseline`` as a
            WFDB header states them: physical = (signal - baseline) / gain.
        fs: sampling rate in Hz (required unless the ``.npz`` holds ``fs``; must agree when both are given).
        leads: for an ``.npz`` that names its leads, the leads to keep in this order; otherwise names
            for the channels (default: the file's names or ``ch0, ch1, ...``).
        units: units of the values; default from the file or ``unknown``.
        nan_policy: ``"raise"`` or ``"interpolate"`` (see :func:`cardiolens.io.repair.apply_nan_policy`).
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RecordError(f"cannot read NumPy file: {exc}", path) from None
    file_fs = None
    file_leads: list[str] | None = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            key = "signal" if "signal" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise RecordError(f".npz must hold an array named 'signal' (has {names})", path)
            content = {name: _member(loaded, name, path) for name in names}
        array = content[key]
        unread = sorted(set(names) - {key, *_NPZ_KEYS})
        if unread:
            log.warning("%s: .npz members %s are not read (cardiolens reads %s)", path, unread, ", ".join(_NPZ_KEYS))
        if "fs" in content:
            file_fs = _scalar(content["fs"], "fs", path)
        if "leads" in content:
            file_leads = [str(x) for x in np.atleast_1d(content["leads"])]
        if units is None and "units" in content:
            stored = [str(x) for x in np.atleast_1d(content["units"])]
            units = stored[0] if len(stored) == 1 else stored  # one unit names every lead
        _check_numeric(array, path)
        if "gain" in content or "baseline" in content:
            # stored as a WFDB header states them: physical = (digital - baseline) / gain, per lead or for all
            for name in ("gain", "baseline"):
                if name in content:
                    _check_numeric(content[name], path, name)
            array = _to_physical(array, content.get("gain"), content.get("baseline"), path)
    else:
        array = loaded
        _check_numeric(array, path)
    if fs is not None and file_fs is not None and not np.isclose(fs, file_fs):
        raise RecordError(f"fs={fs} disagrees with the file's own fs={file_fs}", path)
    fs = fs if fs is not None else file_fs
    if fs is None:
        raise RecordError(
            "NumPy files carry no sampling rate: pass fs= (--fs on the command line) or store 'fs' in a .npz", path
        )
    meta = {"format": "numpy"}
    signal = _orient(array, path)
    if file_leads is not None and len(file_leads) != signal.shape[0]:
        count = f"{len(file_leads)} lead{'s' * (len(file_leads) != 1)}"
        raise RecordError(f"the .npz names {count} for its {signal.shape[0]} channels", path)
    if file_leads is not None and leads is not None:
        # a file that names its leads: keep the ones asked for, in that order, by the rule WFDB records
        # follow (a name whatever its case, or a position); never rename them. Before the NaN policy, so
        # that only the kept leads are repaired (and reported as repaired)
        picked = lead_positions(file_leads, list(leads), path)
        signal = signal[picked]
        if isinstance(units, list) and len(units) == len(file_leads):
            units = [units[k] for k in picked]
        leads = [file_leads[k] for k in picked]
    signal = apply_nan_policy(signal, nan_policy, path, meta)
    return Record(signal, fs, leads=leads or file_leads, units=units, source=path, metadata=meta)


def _check_numeric(array: np.ndarray, path: Path, name: str = "signal") -> None:
    if np.asarray(array).dtype.kind not in "fiu":
        what = "array" if name == "signal" else f"the .npz's {name!r}"
        raise RecordError(f"{what} must be numeric, got dtype {np.asarray(array).dtype}", path)


# the .npz members read; others are named in a warning
_NPZ_KEYS = ("signal", "fs", "leads", "units", "gain", "baseline")


def _member(npz: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    """One member of an .npz, with a damaged one named (a bad CRC or a cut-off stream raises many types)."""
    try:
        return npz[name]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RecordError(
                f"member {name!r} of the .npz holds Python objects, which are never unpickled", path
            ) from None
        raise RecordError(f"member {name!r} of the .npz is damaged (ValueError: {exc})", path) from None
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, EOFError, tokenize.TokenError ...
        raise RecordError(f"member {name!r} of the .npz is damaged ({type(exc).__name__}: {exc})", path) from None


def _scalar(value: np.ndarray, name: str, path: Path) -> float:
    if np.size(value) != 1 or np.asarray(value).dtype.kind not in "fiu":
        raise RecordError(f"the .npz's {name!r} must be one number, got {np.asarray(value)!r}", path)
    return float(np.asarray(value).reshape(-1)[0])


def _to_physical(array: np.ndarray, gain: np.ndarray | None, baseline: np.ndarray | None, path: Path) -> np.ndarray:
    """(array - baseline) / gain, broadcast over the lead axis of a (channels, samples) or (samples, channels) array."""
    oriented = _orient(array, path).astype(np.float64)
    n_leads = oriented.shape[0]
    factors = {}
    for name, value, default in (("gain", gain, 1.0), ("baseline", baseline, 0.0)):
        v = np.atleast_1d(np.asarray(default if value is None else value, dtype=np.float64)).reshape(-1)
        if v.size not in (1, n_leads):
            raise RecordError(f"the .npz's {name!r} has {v.size} values for {n_leads} leads", path)
        factors[name] = v[:, None]
    if np.any(factors["gain"] == 0) or not np.all(np.isfinite(factors["gain"])):
        raise RecordError("the .npz's 'gain' must be finite and non-zero", path)
    return (oriented - factors["baseline"]) / factors["gain"]
