"""Readers that turn files into :class:`~cardiolens.signal.Record` objects (never imports torch).

:func:`load_record` chooses the reader by the file's content (magic bytes, header syntax), not by its
extension alone, and checks the result against the input contract: a positive sampling rate, no
NaNs (unless asked to repair them), no record that is flat in every lead, and amplitudes that are
plausible for the stated units (an ECG lead spanning hundreds of mV means the header's gain lies).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from cardiolens.errors import RecordError, UnknownFormatError
from cardiolens.io.csv_reader import heartgpt_modality, read_csv, read_heartgpt_context
from cardiolens.io.mat_reader import is_mat_file, read_mat
from cardiolens.io.numpy_reader import read_numpy
from cardiolens.io.wfdb_reader import header_path, read_annotations, read_wfdb
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)

FORMATS = ("wfdb", "mat", "npy", "npz", "csv", "heartgpt")
# Peak-to-peak (0.1-99.9 percentile) beyond this many mV is no ECG: the gain is wrong.
MAX_PLAUSIBLE_MV = 40.0
# Files that belong to the WFDB record of a .hea beside them, whatever their content.
_WFDB_SUFFIXES = (".hea", ".dat", ".mat", ".atr")

__all__ = [
    "FORMATS",
    "detect_format",
    "load_record",
    "read_annotations",
    "read_csv",
    "read_heartgpt_context",
    "read_mat",
    "read_numpy",
    "read_wfdb",
]


def detect_format(path: str | Path) -> str:
    """Name the format of ``path`` from its content: one of :data:`FORMATS`.

    Raises:
        RecordError: the path does not exist, is a folder or is empty.
        UnknownFormatError: the content matches no supported format.
    """
    path = Path(path)
    if not path.exists():
        if header_path(path) is not None:
            return "wfdb"  # a record name given without extension
        raise RecordError("file does not exist", path)
    if path.is_dir():
        raise RecordError("is a folder, not a record; open it with cardiolens.datasets.open_dataset", path)
    hea = header_path(path)
    if hea is not None and _belongs_to_header(path, hea):
        return "wfdb"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        raise RecordError("file is empty", path)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            raise RecordError("looks like a zip archive but is corrupted", path) from None
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise UnknownFormatError("a zip archive that is not a NumPy .npz: unpack it and load the records inside", path)
    if is_mat_file(path) or path.suffix.lower() == ".mat":
        return "mat"
    if b"\x00" not in head:
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # a .csv/.tsv without digits (all NaN, text in every row) is still a table: the CSV reader
        # then says which line and column is wrong, where "unknown format" would not
        if lines and (any(ch.isdigit() for ch in text) or path.suffix.lower() in (".csv", ".tsv", ".txt")):
            single_column = all("," not in ln and ";" not in ln and "\t" not in ln and " " not in ln for ln in lines)
            if single_column and _numeric(lines[0]):
                return "heartgpt" if heartgpt_modality(path) else "csv"
            return "csv"
    if path.suffix.lower() in (".dat", ".atr"):
        raise RecordError(f"a WFDB {path.suffix} file without its .hea header beside it", path)
    raise UnknownFormatError(
        "unknown format: cardiolens reads WFDB (.hea + .dat/.mat), CPSC 2018 .mat, CSV/TSV, .npy/.npz and "
        "HeartGPT context CSV",
        path,
    )


def _belongs_to_header(path: Path, hea: Path) -> bool:
    """Whether the existing file ``path`` is part of the WFDB record of ``hea`` beside it.

    A header, a ``.dat``/``.mat``/``.atr`` and any file the header names as a signal file are; a
    ``data.csv`` or ``data.npz`` that merely shares the stem of ``data.hea`` is not: the user named it.
    """
    if path == hea or path.suffix.lower() in _WFDB_SUFFIXES:
        return True
    try:
        text = hea.read_text(encoding="latin-1")
    except OSError:
        return False
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return any(fields[0] == path.name for fields in lines[1:])


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_record(
    path: str | Path,
    *,
    fs: float | None = None,
    format: str | None = None,
    leads: list[str] | None = None,
    units: str | list[str] | None = None,
    nan_policy: str = "raise",
    annotation: str | None = "atr",
) -> Record:
    """Read one recording from a file into a validated :class:`Record`.

    Args:
        path: the file (for WFDB: the ``.hea``, a signal file beside it, or the record name).
        fs: sampling rate in Hz. Required for formats that do not carry one (NumPy, CSV without a time
            column); for formats that do, it must agree with the file (use
            :func:`cardiolens.signal.resample_record` to change the rate).
        format: force a reader (one of :data:`FORMATS`) instead of detecting it.
        leads: for files that name their leads (WFDB, CPSC, CSV with a header, ``.npz`` with
            ``leads``), the leads to keep, in this order; for files that do not (CSV without header,
            ``.npy``), names to give the channels.
        units: units of the values, for formats that do not state them.
        nan_policy: ``"raise"`` (default) refuses NaN/inf samples; ``"interpolate"`` fills gaps
            linearly and records what it did in ``record.metadata["repaired"]``.
        annotation: WFDB annotation extension to attach when present (``None`` for none).

    Returns:
        The Record, ``record.metadata["format"]`` naming the reader used.

    Raises:
        RecordError: missing/empty/truncated file, header that lies, text in numbers, NaNs,
            flat signal, implausible amplitude, sampling rate missing or contradicting the file.

    Example:
        >>> rec = load_record("mit-bih-arrhythmia-database-1.0.0/101.hea")  # doctest: +SKIP
        >>> rec.fs, rec.leads
        (360.0, ['MLII', 'V1'])
    """
    path = Path(path)
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise UnknownFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", path)
    if fmt == "wfdb":
        record = read_wfdb(path, annotation=annotation, nan_policy=nan_policy)
    elif fmt == "mat":
        record = read_mat(path, fs=fs, leads=leads, nan_policy=nan_policy)
    elif fmt in ("npy", "npz"):
        record = read_numpy(path, fs=fs, leads=leads, units=units, nan_policy=nan_policy)
    elif fmt == "heartgpt":
        record = read_heartgpt_context(path, fs=fs, nan_policy=nan_policy)
    else:
        record = read_csv(path, fs=fs, leads=leads, units=units, nan_policy=nan_policy)
    if fs is not None and not np.isclose(record.fs, fs, rtol=1e-3):
        raise RecordError(
            f"the file says {record.fs:g} Hz but fs={fs:g} was given; to change the rate use "
            "cardiolens.signal.resample_record",
            path,
        )
    if leads is not None and fmt in ("wfdb", "mat") and record.metadata.get("format") != "mat":
        record = record.select_leads(leads)
    check_plausible(record)
    return record


def check_plausible(record: Record) -> None:
    """Refuse records no model should see: flat in every lead, or amplitudes impossible for their units.

    A lead that is flat while others are not is kept (a disconnected electrode is common) but logged
    and listed in ``record.metadata["flat_leads"]``.
    """
    where = record.source or record.name
    if record.n_samples < 2:
        raise RecordError(
            f"record has {record.n_samples} sample{'s' * (record.n_samples != 1)}: too short to read", where
        )
    spread = np.ptp(record.signal, axis=1)
    flat = [lead for lead, s in zip(record.leads, spread, strict=True) if s == 0]
    if len(flat) == record.n_channels:
        raise RecordError("signal is flat (constant) in every lead", where)
    if flat:
        log.warning("%s: flat lead(s) %s", where, ", ".join(flat))
        record.metadata["flat_leads"] = flat
    for i, unit in enumerate(record.units):
        if unit == "mV":
            lo, hi = np.percentile(record.signal[i], [0.1, 99.9])
            if hi - lo > MAX_PLAUSIBLE_MV:
                raise RecordError(
                    f"lead {record.leads[i]} spans {hi - lo:.0f} mV, impossible for an ECG: "
                    "the header's gain (or units) is wrong",
                    where,
                )
