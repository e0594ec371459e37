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
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    first = lines[0] if lines else ""
    if not re.match(r"^\S+(/\d+)?\s+\d+", first):
        raise RecordError("not a WFDB header: its first line must be 'name n_signals [fs [n_samples]]'", hea)
    fields = first.split()
    # wfdb reads a missing or unparsable rate as 250 Hz without a word: refuse it instead
    if len(fields) < 3:
        raise RecordError(
            f"header gives no sampling frequency: add it to the record line after the signal count, "
            f"e.g. '{fields[0]} {fields[1]} 500' for 500 Hz",
            hea,
        )
    rate = re.split(r"[/(]", fields[2])[0]
    try:
        fs = float(rate)
    except ValueError:
        fs = float("nan")
    if not (np.isfinite(fs) and fs > 0):
        raise RecordError(f"header gives no valid sampling rate ({fields[2]!r})", hea)
    n_sig, n_lines = int(fields[1]), len(lines) - 1
    # wfdb parses every signal line whatever the count says, then fails later with its own internals;
    # a multi-segment header ('name/n_segments') lists segments, not signals, so it is not counted here
    if "/" not in fields[0] and n_sig != n_lines:
        raise RecordError(
            f"header declares {n_sig} signal{'s' * (n_sig != 1)} but has {n_lines} signal "
            f"line{'s' * (n_lines != 1)}: correct the count on the record line or the signal lines",
            hea,
        )
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


def _check_checksums(samples: list[np.ndarray], header: wfdb.Record, source: Path) -> None:
    """Compare each lead's stored samples with the header's 16-bit checksums (0 means 'not given' in practice)."""
    for i, expected in enumerate(header.checksum or []):
        if expected in (None, 0):
            continue
        column = np.asarray(samples[i]).astype(np.int64)
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
    if isinstance(header, wfdb.MultiRecord):
        rec, physical = _read_segments(header, hea)
    else:
        rec, physical = _read_single(header, hea)
    units = [_UNIT_SPELLING.get(str(u).strip().lower(), str(u).strip() or "unknown") for u in rec.units]
    annotations = None
    if annotation and (hea.parent / f"{hea.stem}.{annotation}").is_file():
        annotations = read_annotations(hea.with_suffix(""), extension=annotation, n_samples=rec.sig_len)
    meta = _metadata_from_comments(rec.comments or [])
    meta["format"] = "wfdb"
    if isinstance(header, wfdb.MultiRecord):
        meta["segments"] = [str(name) for name in header.seg_name]
    spf = [int(n or 1) for n in (rec.samps_per_frame or [])]
    if any(n > 1 for n in spf):
        # the Record has one rate: leads stored faster are averaged over each frame (wfdb's smoothing)
        meta["averaged_to_frame_rate"] = {lead: n for lead, n in zip(rec.sig_name, spf, strict=True) if n > 1}
        log.info("%s: leads %s averaged to the frame rate %g Hz", hea, meta["averaged_to_frame_rate"], rec.fs)
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


def _read_single(header: wfdb.Record, hea: Path) -> tuple[wfdb.Record, np.ndarray]:
    """A one-segment record, checked against its file sizes and checksums; (wfdb record, physical (T, C))."""
    _check_signal_files(header, hea)
    if header.fs is None or not header.fs > 0:
        raise RecordError(f"header gives no valid sampling rate ({header.fs!r})", hea)
    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=False)
        # checksums are over every stored sample; a lead stored at n samples per frame is averaged
        # over frames in d_signal, so its checksum is read from the expanded samples
        expanded = (
            wfdb.rdrecord(str(hea.with_suffix("")), physical=False, smooth_frames=False).e_d_signal
            if any(int(n or 1) > 1 for n in rec.samps_per_frame)
            else [rec.d_signal[:, i] for i in range(rec.n_sig)]
        )
    except Exception as exc:
        raise RecordError(f"wfdb could not read the signal: {exc}", hea) from None
    _check_checksums(expanded, header, hea)
    digital = rec.d_signal
    # Physical values = (digital - baseline) / gain; WFDB's "no data" code becomes NaN.
    gain = np.array([g if g else 200.0 for g in rec.adc_gain], dtype=np.float64)
    baseline = np.array(rec.baseline, dtype=np.float64)
    physical = (digital.astype(np.float64) - baseline) / gain
    for i, fmt in enumerate(rec.fmt):
        if str(fmt) in ("16", "61"):
            # judged on the stored samples: a frame averaged with a "no data" code is no data
            invalid = (np.asarray(expanded[i]) == _INVALID_16).reshape(len(digital), -1).any(axis=1)
            physical[invalid, i] = np.nan
    return rec, physical


def _read_segments(header: wfdb.MultiRecord, hea: Path) -> tuple[wfdb.Record, np.ndarray]:
    """A multi-segment record ('name/n' header): each segment is checked as a record of its own, then
    wfdb joins them in physical units (a gap, segment '~', is NaN, which the NaN policy then handles)."""
    if header.fs is None or not header.fs > 0:
        raise RecordError(f"header gives no valid sampling rate ({header.fs!r})", hea)
    for name, length in zip(header.seg_name, header.seg_len, strict=True):
        if name == "~":
            continue  # a gap: no file
        segment = hea.parent / f"{name}.hea"
        if not segment.is_file():
            raise RecordError(f"segment {name} named by the multi-segment header has no header {segment.name}", hea)
        part = read_header(segment)
        if isinstance(part, wfdb.MultiRecord):
            raise RecordError(f"segment {name} is itself a multi-segment record, which WFDB does not allow", segment)
        if int(length) == 0:
            continue  # the layout segment of a variable-layout record: signal names, no samples
        if part.fs is None or not np.isclose(part.fs, header.fs):
            raise RecordError(f"segment {name} is at {part.fs} Hz and the record at {header.fs:g} Hz", segment)
        _read_single(part, segment)  # sizes and checksums, as for a record of its own
    if "~" in header.seg_name and int(header.seg_len[0]) != 0:
        # wfdb joins gaps only in variable-layout records (whose first segment is a layout of length 0)
        raise RecordError(
            "a gap ('~' segment) in a fixed-layout multi-segment record, which wfdb cannot join; "
            "read its segments one by one",
            hea,
        )
    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=True, m2s=True)
    except Exception as exc:
        raise RecordError(f"wfdb could not join the segments: {exc}", hea) from None
    return rec, rec.p_signal.astype(np.float64)


def read_annotations(path: str | Path, extension: str = "atr", *, n_samples: int | None = None) -> Annotations:
    """Read a WFDB annotation file (beat symbols, rhythm changes in ``aux``).

    A file that does not end with its end-of-file marker (truncated), whose positions go backwards or
    beyond the record, or that is full of undefined annotation codes (not an annotation file) is
    refused: wfdb would read it without a word and invent beats.

    Args:
        path: record name without extension (or the ``.hea``), the annotation file beside it.
        extension: annotation file extension, ``atr`` for reference annotations.
        n_samples: the record's length, to check positions against; by default taken from the
            record's header when there is one.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".hea", f".{extension}") else path
    ann_file = stem.parent / f"{stem.name}.{extension}"
    if not ann_file.is_file():
        raise RecordError(f"annotation file {ann_file.name} does not exist", ann_file)
    try:
        data = ann_file.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read annotation file: {exc}", ann_file) from None
    _check_annotation_bytes(data, ann_file)
    try:
        ann = wfdb.rdann(str(stem), extension, return_label_elements=["symbol", "label_store"])
    except Exception as exc:
        raise RecordError(f"malformed WFDB annotation file: {exc}", ann_file) from None
    sample = np.asarray(ann.sample, dtype=np.int64)
    if n_samples is None and (stem.parent / f"{stem.name}.hea").is_file():
        try:
            n_samples = read_header(stem.parent / f"{stem.name}.hea").sig_len
        except RecordError:
            n_samples = None  # the header's own problems are reported when the signal is read
    _check_annotation_content(ann, sample, n_samples, ann_file)
    aux = [a or "" for a in (ann.aux_note or [""] * len(ann.sample))]
    symbols = [sym if isinstance(sym, str) else "" for sym in ann.symbol]
    return Annotations(sample, symbols, aux)


# Annotation codes (6 bits) with a meaning of their own in the MIT annotation format (WFDB annot(5)).
_ANN_EOF_CODE, _ANN_SKIP, _ANN_AUX = 0, 59, 63
# More undefined annotation codes than this share means the file is no annotation file.
_MAX_UNKNOWN_CODE_SHARE = 0.01


def _check_annotation_bytes(data: bytes, ann_file: Path) -> None:
    """Walk the MIT-format words up to the end-of-file marker (a zero word), which must end the file.

    Written by hand because wfdb.rdann reads every byte pair but the last as annotations and never
    checks for the marker, so a truncated file loses its tail without a word.
    """
    if len(data) % 2:
        raise RecordError(
            f"annotation file {ann_file.name} has an odd number of bytes ({len(data)}): it is truncated "
            "or not a WFDB annotation file",
            ann_file,
        )
    i, end = 0, None
    while i + 1 < len(data):
        word = data[i] | (data[i + 1] << 8)
        code, interval = word >> 10, word & 0x3FF
        i += 2
        if code == _ANN_EOF_CODE and interval == 0:
            end = i
            break
        if code == _ANN_SKIP:  # a 32-bit interval follows
            i += 4
        elif code == _ANN_AUX:  # ``interval`` bytes of text follow, padded to an even count
            i += interval + (interval & 1)
    if end is None or i > len(data):
        raise RecordError(
            f"annotation file {ann_file.name} does not end with the WFDB end-of-file marker (two zero bytes): "
            "it is truncated or not a WFDB annotation file",
            ann_file,
        )
    if any(data[end:]):
        raise RecordError(
            f"annotation file {ann_file.name} has {len(data) - end} bytes after its end-of-file marker: "
            "it is corrupted or not a WFDB annotation file",
            ann_file,
        )


def _check_annotation_content(ann: wfdb.Annotation, sample: np.ndarray, n_samples: int | None, ann_file: Path) -> None:
    """Refuse positions that go backwards or leave the record, and files made of undefined codes."""
    if sample.size and np.any(np.diff(sample) < 0):
        at = int(np.argmax(np.diff(sample) < 0)) + 1
        raise RecordError(
            f"annotation file {ann_file.name} is corrupted: annotation {at} at sample {sample[at]} comes before "
            f"the one at sample {sample[at - 1]}",
            ann_file,
        )
    if sample.size and sample[0] < 0:
        raise RecordError(f"annotation file {ann_file.name} has an annotation at negative sample {sample[0]}", ann_file)
    if n_samples is not None and sample.size and sample[-1] > n_samples:
        raise RecordError(
            f"annotation file {ann_file.name} has an annotation at sample {sample[-1]}, beyond the record's "
            f"{n_samples} samples: it belongs to another record or is corrupted",
            ann_file,
        )
    # wfdb gives an undefined code (neither standard nor defined in the file) a NaN symbol
    undefined = np.array([not isinstance(sym, str) for sym in ann.symbol], dtype=bool)
    if undefined.sum() > _MAX_UNKNOWN_CODE_SHARE * undefined.size:
        codes = np.unique(np.asarray(ann.label_store)[undefined])
        raise RecordError(
            f"annotation file {ann_file.name} uses {codes.size} undefined annotation code(s) "
            f"({', '.join(map(str, codes[:10]))}{', ...' if codes.size > 10 else ''}) in {undefined.sum()} of its "
            f"{undefined.size} annotations: it is corrupted or not a WFDB annotation file",
            ann_file,
        )
    if undefined.any():
        log.warning("%s: %d annotation(s) with an undefined code, kept without a symbol", ann_file, undefined.sum())
