"""WFDB records: a ``.hea`` header plus signal files (formats 16, 212, 80, ... and the ``.mat``
variant of the PhysioNet challenges), and WFDB annotation files (``.atr``).

Reading is done by the ``wfdb`` package; this module adds what it does not check: that the signal
files exist and hold as many bytes as the header promises, that the data matches the header's
checksums, and that header units are spelled consistently.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import wfdb

from cardiolens.errors import RecordError
from cardiolens.io.repair import apply_nan_policy
from cardiolens.signal.record import Annotations, Record

log = logging.getLogger(__name__)

# Bytes one sample occupies in each WFDB storage format (212 and 310/311 pack samples across bytes).
_BYTES_PER_SAMPLE = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}
_UNIT_SPELLING = {"mv": "mV", "uv": "uV", "µv": "uV", "nu": "NU", "mmhg": "mmHg", "v": "V"}
# Digital value WFDB reserves for "no data" in format 16 (and its byte-swapped 61).
_INVALID_16 = -32768


def header_path(path: Path) -> Path | None:
    """The ``.hea`` that belongs to ``path`` (a header, a signal file or a record name), if any."""
    if path.suffix.lower() == ".hea":
        return path
    for candidate in (path.with_suffix(".hea"), path.parent / (path.name + ".hea")):
        if candidate.is_file():
            return candidate
    return None


def read_header(hea: Path) -> wfdb.Record:
    """Parse a header with wfdb, turning its exceptions into a RecordError naming the file."""
    if not hea.is_file():
        raise RecordError("header file does not exist", hea)
    try:
        text = hea.read_text(encoding="latin-1")
    except OSError as exc:
        raise RecordError(f"cannot read header: {exc}", hea) from None
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    if not re.match(r"^\S+(/\d+)?\s+\d+", first):
        raise RecordError("not a WFDB header: its first line must be 'name n_signals [fs [n_samples]]'", hea)
    fields = first.split()
    if len(fields) > 2:  # wfdb falls back to 250 Hz on a rate it cannot parse: refuse it instead
        rate = re.split(r"[/(]", fields[2])[0]
        try:
            fs = float(rate)
        except ValueError:
            fs = float("nan")
        if not (np.isfinite(fs) and fs > 0):
            raise RecordError(f"header gives no valid sampling rate ({fields[2]!r})", hea)
    try:
        return wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:  # wfdb raises bare ValueError/IndexError on malformed headers
        raise RecordError(f"malformed WFDB header: {exc}", hea) from None


def _check_signal_files(header: wfdb.Record, hea: Path) -> None:
    """Check each signal file exists and holds exactly the bytes the header promises.

    A truncated file, a header whose sample count, signal count or format lies, all show up as a
    size mismatch here, before wfdb would silently read fewer samples or garbage.
    """
    if header.n_sig == 0:
        raise RecordError("header declares no signals", hea)
    files: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name):
        files.setdefault(name, []).append(i)
    for name, channels in files.items():
        data = hea.parent / name
        if not data.is_file():
            raise RecordError(f"signal file {name} named by the header is missing", hea)
        if header.sig_len is None:
            continue
        fmt = str(header.fmt[channels[0]])
        if fmt not in _BYTES_PER_SAMPLE:
            raise RecordError(f"unsupported WFDB storage format {fmt}", hea)
        spf = sum(int(header.samps_per_frame[i] or 1) for i in channels)
        offset = int((header.byte_offset or [0] * header.n_sig)[channels[0]] or 0)
        expected = offset + math.ceil(header.sig_len * spf * _BYTES_PER_SAMPLE[fmt])
        actual = data.stat().st_size
        frame = math.ceil(spf * _BYTES_PER_SAMPLE[fmt])
        if actual < expected:
            held = int((actual - offset) / (spf * _BYTES_PER_SAMPLE[fmt]))
            raise RecordError(
                f"signal file {name} is truncated or the header lies: the header promises {header.sig_len} samples "
                f"x {spf} signals in format {fmt} ({expected} bytes) but the file has {actual} bytes "
                f"(about {max(held, 0)} samples)",
                data,
            )
        if actual > expected + frame:
            raise RecordError(
                f"signal file {name} has {actual} bytes but the header describes {expected} "
                f"({header.sig_len} samples x {spf} signals in format {fmt}): the header's sample count, "
                "signal count or format is wrong",
                data,
            )


def _check_checksums(digital: np.ndarray, header: wfdb.Record, source: Path) -> None:
    """Compare the data with the header's 16-bit checksums (0 means 'not given' in practice)."""
    for i, expected in enumerate(header.checksum or []):
        if expected in (None, 0):
            continue
        column = digital[:, i].astype(np.int64)
        actual, expected = int(column.sum()) & 0xFFFF, int(expected) & 0xFFFF
        if actual != expected:
            raise RecordError(
                f"lead {header.sig_name[i]} does not match the header's checksum ({actual} != {expected}): "
                "the data file is corrupted or the header's format is wrong",
                source,
            )


def _metadata_from_comments(comments: list[str]) -> dict:
    """``# Age: 78`` style comments become entries; all comments are kept verbatim as well."""
    meta: dict = {"comments": list(comments)}
    for line in comments:
        key, sep, value = line.partition(":")
        if sep and key.strip() and len(key) < 40:
            meta[key.strip().lower()] = value.strip()
    return meta


def read_wfdb(path: str | Path, *, annotation: str | None = "atr", nan_policy: str = "raise") -> Record:
    """Read a WFDB record.

    Args:
        path: the ``.hea`` file, a signal file beside it, or the record name without extension.
        annotation: extension of an annotation file to attach when it exists (``None`` for none).
        nan_policy: ``"raise"`` or ``"interpolate"`` (see :func:`cardiolens.io.repair.apply_nan_policy`).

    Returns:
        A Record in physical units (mV for ECG leads), annotations attached when found.

    Raises:
        RecordError: missing or malformed header, missing / truncated signal files, checksum mismatch.
    """
    path = Path(path)
    hea = header_path(path)
    if hea is None:
        raise RecordError("no WFDB header (.hea) found for this record", path)
    header = read_header(hea)
    _check_signal_files(header, hea)
    if header.fs is None or not header.fs > 0:
        raise RecordError(f"header gives no valid sampling rate ({header.fs!r})", hea)
    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=False)
    except Exception as exc:
        raise RecordError(f"wfdb could not read the signal: {exc}", hea) from None
    digital = rec.d_signal
    _check_checksums(digital, header, hea)
    # Physical values = (digital - baseline) / gain; WFDB's "no data" code becomes NaN.
    gain = np.array([g if g else 200.0 for g in rec.adc_gain], dtype=np.float64)
    baseline = np.array(rec.baseline, dtype=np.float64)
    physical = (digital.astype(np.float64) - baseline) / gain
    for i, fmt in enumerate(rec.fmt):
        if str(fmt) in ("16", "61"):
            physical[digital[:, i] == _INVALID_16, i] = np.nan
    units = [_UNIT_SPELLING.get(str(u).strip().lower(), str(u).strip() or "unknown") for u in rec.units]
    annotations = None
    if annotation and (hea.parent / f"{hea.stem}.{annotation}").is_file():
        annotations = read_annotations(hea.with_suffix(""), extension=annotation)
    meta = _metadata_from_comments(rec.comments or [])
    meta["format"] = "wfdb"
    return Record(
        signal=apply_nan_policy(physical.T, nan_policy, hea, meta),
        fs=float(rec.fs),
        leads=list(rec.sig_name),
        units=units,
        name=hea.stem,
        source=hea,
        metadata=meta,
        annotations=annotations,
    )


def read_annotations(path: str | Path, extension: str = "atr") -> Annotations:
    """Read a WFDB annotation file (beat symbols, rhythm changes in ``aux``).

    Args:
        path: record name without extension (or the ``.hea``), the annotation file beside it.
        extension: annotation file extension, ``atr`` for reference annotations.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".hea", f".{extension}") else path
    ann_file = stem.parent / f"{stem.name}.{extension}"
    if not ann_file.is_file():
        raise RecordError(f"annotation file {ann_file.name} does not exist", ann_file)
    try:
        ann = wfdb.rdann(str(stem), extension)
    except Exception as exc:
        raise RecordError(f"malformed WFDB annotation file: {exc}", ann_file) from None
    aux = [a or "" for a in (ann.aux_note or [""] * len(ann.sample))]
    return Annotations(np.asarray(ann.sample), list(ann.symbol), aux)
