"""A cache of preprocessed, fixed-length windows in one memory-mapped ``.npy`` (nanoGPT ``prepare.py`` style).

:func:`build_window_cache` reads every record of a catalogue once, resamples it, optionally filters
and normalises it, cuts it into windows and writes::

    out_dir/windows.npy   (windows, leads, samples) float32, opened with np.load(mmap_mode="r")
    out_dir/index.csv     one row per window: record_id, patient_id, window, start (sample), start_s
    out_dir/meta.json     the settings, the input fingerprint, the shape, skipped records

The build happens in a temporary folder beside ``out_dir`` that is renamed into place only when
complete, so an interrupted or failed build leaves the previous cache (or nothing) and never half a
cache. The fingerprint hashes the record ids, the size and modification time of every file of those
records, the catalogue's metadata files and the settings: calling the function again with the same
inputs returns the existing cache without reading a record; any change rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cardiolens.datasets.base import Catalogue
from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.signal import filters
from cardiolens.signal.resample import resample

log = logging.getLogger(__name__)

CACHE_FORMAT = "cardiolens-window-cache"
CACHE_VERSION = 1
NORMALIZATIONS = (None, "zscore")
# Names of the preprocessing implementations; part of the settings hash so that switching one
# (e.g. to cardiolens.signal.resample once it exists) rebuilds caches made with the other.
RESAMPLER = "cardiolens.signal.resample (scipy resample_poly)"
FILTER = "cardiolens.signal.filters (butter + sosfiltfilt)"
_COPY_CHUNK_BYTES = 64 * 2**20
# What a finished build leaves in its folder; a folder holding nothing else is recognisably a cache
# even when its meta.json cannot be read.
CACHE_FILES = frozenset({"meta.json", "windows.npy", "index.csv"})


def _bandpass(x: np.ndarray, fs: float, low: float | None, high: float | None, order: int) -> np.ndarray:
    """Band-pass, or high-pass when ``high`` is None, or low-pass when ``low`` is None."""
    if low and high:
        return filters.bandpass(x, fs, low, high, order=order)
    if high:
        return filters.lowpass(x, fs, high, order=order)
    return filters.highpass(x, fs, low, order=order)


def _zscore(windows: np.ndarray) -> np.ndarray:
    """Per window and lead: zero mean, unit standard deviation (a flat lead becomes zeros)."""
    mean = windows.mean(axis=-1, keepdims=True)
    std = windows.std(axis=-1, keepdims=True)
    return np.divide(windows - mean, std, out=np.zeros_like(windows), where=std > 0)


def _settings(
    *,
    fs: float,
    window_seconds: float,
    stride_seconds: float | None,
    leads: Sequence[str] | None,
    bandpass: tuple[float | None, float | None] | None,
    filter_order: int,
    normalize: str | None,
    dtype: str,
    record_ids: Sequence[str] | None,
    on_error: str,
) -> dict[str, Any]:
    """Validated settings as plain JSON values."""
    if not fs or fs <= 0:
        raise DatasetError(f"window cache: fs must be a positive number of Hz, not {fs!r}")
    if not window_seconds or window_seconds <= 0:
        raise DatasetError(f"window cache: window_seconds must be positive, not {window_seconds!r}")
    stride = window_seconds if stride_seconds is None else stride_seconds
    if stride <= 0:
        raise DatasetError(f"window cache: stride_seconds must be positive, not {stride_seconds!r}")
    window_samples = int(round(window_seconds * fs))
    stride_samples = int(round(stride * fs))
    if window_samples < 1 or stride_samples < 1:
        raise DatasetError(f"window cache: a {window_seconds} s window at {fs} Hz holds no sample")
    band = None
    if bandpass is not None:
        low, high = (None if v is None else float(v) for v in bandpass)
        if not low and not high:
            raise DatasetError("window cache: bandpass needs a low or a high cut-off (Hz)")
        if high is not None and high >= fs / 2:
            raise DatasetError(f"window cache: bandpass high cut-off {high} Hz must be below fs/2 = {fs / 2} Hz")
        if low is not None and high is not None and low >= high:
            raise DatasetError(f"window cache: bandpass low cut-off {low} must be below the high cut-off {high}")
        band = [low, high]
    if normalize not in NORMALIZATIONS:
        raise DatasetError(f"window cache: normalize must be one of {NORMALIZATIONS}, not {normalize!r}")
    if dtype not in ("float32", "float16", "float64"):
        raise DatasetError(f"window cache: dtype must be float32, float16 or float64, not {dtype!r}")
    if on_error not in ("raise", "skip"):
        raise DatasetError(f"window cache: on_error must be 'raise' or 'skip', not {on_error!r}")
    return {
        "fs": float(fs),
        "window_seconds": float(window_seconds),
        "stride_seconds": float(stride),
        "window_samples": window_samples,
        "stride_samples": stride_samples,
        "leads": None if leads is None else [str(x) for x in leads],
        "bandpass": band,
        "filter_order": int(filter_order) if band else None,
        "normalize": normalize,
        "dtype": dtype,
        "record_ids": None if record_ids is None else [str(r) for r in record_ids],
        "on_error": on_error,
        "resampler": RESAMPLER,
        "filter": FILTER if band else None,
    }


def input_fingerprint(catalogue: Catalogue, record_ids: Sequence[str], settings: dict[str, Any]) -> str:
    """SHA-256 over the record ids and their patients (the index carries them, and patient-wise splits
    read them from it), the name/size/mtime of their files and of the catalogue's metadata files, the
    catalogue's type and configuration, and the settings."""
    digest = hashlib.sha256()

    def add(obj: Any) -> None:
        digest.update(json.dumps(obj, sort_keys=True, default=str).encode())
        digest.update(b"\n")

    add({"format": CACHE_FORMAT, "version": CACHE_VERSION, "catalogue": type(catalogue).__name__})
    add(catalogue.config())
    add(settings)
    for path in catalogue.metadata_files():
        st = path.stat()
        add([path.name, st.st_size, st.st_mtime_ns])
    patient = dict(zip(catalogue.record_ids, catalogue.patient_ids.tolist(), strict=True))
    for rid, files in catalogue.files(record_ids).items():
        stats = []
        for f in files:
            st = f.stat()
            stats.append([f.name, st.st_size, st.st_mtime_ns])
        add([rid, patient.get(rid, ""), stats])
    return digest.hexdigest()


class WindowCache:
    """A window cache read back memory-mapped.

    Attributes:
        path: the cache folder.
        windows: (windows, leads, samples) array, memory-mapped read-only.
        index: one row per window: ``record_id``, ``patient_id``, ``window``, ``start``, ``start_s``.
        meta: the content of ``meta.json`` (settings, fingerprint, skipped records, ...).
        built: True when the call that returned this object built the cache, False when it reused it.

    Example:
        >>> cache = WindowCache("cache/ptbxl-100hz")  # doctest: +SKIP
        >>> x = cache[0]  # (leads, samples)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{self.path}: not a window cache (no meta.json); build one with build_window_cache")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise DatasetError(f"{meta_path}: corrupted cache metadata: {exc}") from None
        if not isinstance(self.meta, dict) or self.meta.get("format") != CACHE_FORMAT:
            raise DatasetError(f"{meta_path}: not a cardiolens window cache")
        for name in ("windows.npy", "index.csv"):
            if not (self.path / name).is_file():
                raise DatasetError(f"{self.path}: window cache lacks {name}; rebuild it")
        # a truncated file (a full disk, a copy cut short) fails deep inside numpy or pandas; say which
        # file it is, as a DatasetError that build_window_cache answers by rebuilding
        try:
            self.windows = np.load(self.path / "windows.npy", mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(f"{self.path / 'windows.npy'}: corrupted cache: {exc}; rebuild it") from None
        try:
            self.index = pd.read_csv(self.path / "index.csv", dtype={"record_id": str, "patient_id": str})
        except (OSError, ValueError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
            raise DatasetError(f"{self.path / 'index.csv'}: corrupted cache: {exc}; rebuild it") from None
        if self.windows.ndim != 3:
            raise DatasetError(f"{self.path / 'windows.npy'}: corrupted cache: shape {self.windows.shape}")
        if len(self.index) != self.windows.shape[0]:
            raise DatasetError(
                f"{self.path}: index.csv lists {len(self.index)} windows but windows.npy holds {self.windows.shape[0]}"
            )
        self.built = False

    @property
    def settings(self) -> dict[str, Any]:
        return self.meta["settings"]

    @property
    def fs(self) -> float:
        return float(self.settings["fs"])

    @property
    def leads(self) -> list[str]:
        return list(self.meta["leads"])

    @property
    def window_samples(self) -> int:
        return int(self.settings["window_samples"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def record_ids(self) -> np.ndarray:
        """The record id of every window."""
        return self.index["record_id"].to_numpy(dtype=str)

    @property
    def patient_ids(self) -> np.ndarray:
        """The patient id of every window (use as ``groups``)."""
        return self.index["patient_id"].to_numpy(dtype=str)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def __getitem__(self, i: int | slice | np.ndarray) -> np.ndarray:
        return self.windows[i]

    def select(self, record_ids: Sequence[str]) -> np.ndarray:
        """Positions of the windows of the given records (e.g. one split)."""
        return np.flatnonzero(np.isin(self.record_ids, [str(r) for r in record_ids]))

    def __repr__(self) -> str:
        return (
            f"WindowCache({str(self.path)!r}, windows={len(self)}, leads={self.leads}, fs={self.fs:g}, "
            f"samples={self.window_samples})"
        )


def _is_cache(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("format") == CACHE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _is_damaged_cache(path: Path) -> bool:
    """A folder holding only a cache's files, windows or an index among them, whose meta.json cannot be parsed.

    Such a folder is safe to rebuild; anything else in it (another file, readable metadata of
    another format) means it is not ours to delete.
    """
    try:
        names = {p.name for p in path.iterdir()}
        text = (path / "meta.json").read_bytes()
    except OSError:
        return False
    if not names <= CACHE_FILES or not names & {"windows.npy", "index.csv"}:
        return False
    try:
        json.loads(text)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return True
    return False


def build_window_cache(
    catalogue: Catalogue,
    out_dir: str | Path,
    *,
    fs: float,
    window_seconds: float,
    stride_seconds: float | None = None,
    leads: Sequence[str] | None = None,
    bandpass: tuple[float | None, float | None] | None = None,
    filter_order: int = 3,
    normalize: str | None = None,
    record_ids: Sequence[str] | None = None,
    dtype: str = "float32",
    on_error: str = "raise",
    force: bool = False,
    progress: bool = True,
) -> WindowCache:
    """Write (or reuse) a memory-mapped cache of preprocessed windows of a catalogue's records.

    Each record is loaded, its ``leads`` selected in order, resampled to ``fs``, band-passed and
    cut into windows of ``window_seconds`` every ``stride_seconds`` (a tail shorter than a window is
    dropped; a record shorter than one window gives none and is listed in ``meta["too_short"]``).
    Windows are then normalised when asked.

    Args:
        catalogue: any catalogue of :mod:`cardiolens.datasets`.
        out_dir: the cache folder (created; replaced atomically when rebuilt). A damaged cache there
            (a truncated file, an unreadable meta.json) is rebuilt; a folder holding anything else is not.
        fs: sampling rate of the cached windows, Hz.
        window_seconds: window length, seconds.
        stride_seconds: step between window starts (default: ``window_seconds``, no overlap).
        leads: lead names to keep, in order (case-insensitive); default: the first record's leads,
            which every record must then share.
        bandpass: ``(low, high)`` cut-offs in Hz (either may be None) of a zero-phase Butterworth
            filter applied after resampling; None for no filter.
        filter_order: Butterworth order.
        normalize: None or ``"zscore"`` (per window and lead).
        record_ids: only these records (default: all).
        dtype: dtype of the stored windows.
        on_error: ``"raise"`` stops at the first unreadable record; ``"skip"`` leaves it out and
            lists it with the reason in ``meta["skipped"]``.
        force: rebuild even when the inputs and settings are unchanged.
        progress: show a tqdm progress bar.

    Returns:
        The :class:`WindowCache`; its ``built`` attribute says whether it was (re)built now.

    Raises:
        DatasetError: bad settings, an unknown record id, no windows at all, or ``out_dir`` holding
            something that is not a window cache.

    Example:
        >>> cache = build_window_cache(PTBXL(root), "cache/ptbxl", fs=100, window_seconds=10)  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    settings = _settings(
        fs=fs,
        window_seconds=window_seconds,
        stride_seconds=stride_seconds,
        leads=leads,
        bandpass=None if bandpass is None else tuple(bandpass),
        filter_order=filter_order,
        normalize=normalize,
        dtype=dtype,
        record_ids=record_ids,
        on_error=on_error,
    )
    ids = catalogue.record_ids if record_ids is None else [catalogue.row(r)["record_id"] for r in record_ids]
    if not ids:
        raise DatasetError(f"window cache: no records selected from {catalogue.root}")
    fingerprint = input_fingerprint(catalogue, ids, settings)
    if out_dir.exists():
        if not _is_cache(out_dir):
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
            elif _is_damaged_cache(out_dir):
                log.warning("%s: window cache with unreadable meta.json is rebuilt", out_dir)
            else:
                raise DatasetError(f"{out_dir}: exists and is not a window cache; refusing to overwrite it")
        elif not force:
            try:
                existing = WindowCache(out_dir)
            except DatasetError as exc:
                log.warning("%s: unreadable cache is rebuilt (%s)", out_dir, exc)
            else:
                if existing.fingerprint == fingerprint:
                    log.info("%s: window cache is up to date", out_dir)
                    return existing
                log.info("%s: inputs or settings changed; rebuilding the window cache", out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder once in place
    try:
        meta = _write_windows(catalogue, ids, settings, tmp, progress)
        meta.update(
            {
                "format": CACHE_FORMAT,
                "version": CACHE_VERSION,
                "fingerprint": fingerprint,
                "build_id": uuid.uuid4().hex,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "dataset": catalogue.name,
                "catalogue": type(catalogue).__name__,
                "catalogue_config": catalogue.config(),
                "root": str(catalogue.root),
                "settings": settings,
            }
        )
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cache = WindowCache(out_dir)
    cache.built = True
    return cache


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished build to ``out_dir``, replacing an older cache there."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except BaseException:
        if old is not None:
            old.rename(out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_windows(
    catalogue: Catalogue, ids: list[str], settings: dict[str, Any], tmp: Path, progress: bool
) -> dict[str, Any]:
    """Stream every record's windows into ``tmp``; returns the meta entries describing them."""
    fs = settings["fs"]
    width, stride = settings["window_samples"], settings["stride_samples"]
    dtype = np.dtype(settings["dtype"])
    leads: list[str] | None = settings["leads"]
    units: list[str] | None = None
    raw_path = tmp / "windows.raw"
    rows: list[tuple[str, str, int, int]] = []
    skipped: dict[str, str] = {}
    too_short: list[str] = []
    with open(raw_path, "wb") as raw:
        for rid in tqdm(ids, desc=f"{catalogue.name} windows", unit="rec", disable=not progress):
            try:
                record = catalogue.load(rid)
                if leads is None:
                    leads = list(record.leads)
                record = record.select_leads(leads)
                if units is None:
                    units = list(record.units)
                x = resample(record.signal.astype(np.float64), record.fs, fs)
                if x.shape[-1] < width:
                    too_short.append(rid)
                    continue
                if settings["bandpass"]:
                    low, high = settings["bandpass"]
                    x = _bandpass(x, fs, low, high, settings["filter_order"])
            except (CardiolensError, ValueError) as exc:
                if settings["on_error"] == "raise":
                    if isinstance(exc, CardiolensError):
                        raise
                    raise DatasetError(f"{catalogue.root}: record {rid}: cannot preprocess: {exc}") from exc
                skipped[rid] = str(exc)
                log.warning("window cache: record %s skipped: %s", rid, exc)
                continue
            starts = np.arange(0, x.shape[-1] - width + 1, stride)
            # (C, N) -> (W, C, width): one strided view, copied once below
            view = np.lib.stride_tricks.sliding_window_view(x, width, axis=-1)[:, starts]  # (C, W, width)
            windows = np.ascontiguousarray(view.transpose(1, 0, 2))  # (W, C, width)
            if settings["normalize"] == "zscore":
                windows = _zscore(windows)
            raw.write(windows.astype(dtype).tobytes())
            patient = catalogue.patient_of(rid)
            rows.extend((rid, patient, k, int(s)) for k, s in enumerate(starts))
    if not rows:
        raw_path.unlink()
        reasons = f"{len(too_short)} shorter than one window, {len(skipped)} skipped on errors"
        if skipped:  # the counts alone do not say what to fix; the first error usually does
            rid, problem = next(iter(skipped.items()))
            reasons += f"; the first: {problem}" if rid in problem else f"; the first, record {rid}: {problem}"
        raise DatasetError(f"window cache: no windows from {len(ids)} records of {catalogue.root} ({reasons})")
    n_leads = len(leads or [])
    shape = (len(rows), n_leads, width)
    source = np.memmap(raw_path, dtype=dtype, mode="r", shape=shape)
    target = np.lib.format.open_memmap(tmp / "windows.npy", mode="w+", dtype=dtype, shape=shape)
    step = max(1, _COPY_CHUNK_BYTES // (n_leads * width * dtype.itemsize))
    for a in range(0, shape[0], step):
        target[a : a + step] = source[a : a + step]
    target.flush()
    del source, target
    raw_path.unlink()
    index = pd.DataFrame(rows, columns=["record_id", "patient_id", "window", "start"])
    index["start_s"] = index["start"] / fs
    index.to_csv(tmp / "index.csv", index=False)
    return {
        "shape": list(shape),
        "n_windows": len(rows),
        "n_records": int(index["record_id"].nunique()),
        "leads": leads,
        "units": units,
        "skipped": skipped,
        "too_short": too_short,
    }
