"""Delimited text: CSV/TSV with or without a header row, with or without a time column, and the
HeartGPT context CSV (one headerless column of values, ECG at 100 Hz or PPG at 50 Hz).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cardiolens.errors import RecordError
from cardiolens.io.repair import apply_nan_policy
from cardiolens.signal.leads import lead_positions
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)

# a time column's name, alone or with a unit after it: time, time_s, time (s), t[s], seconds, elapsed_ms
_TIME_NAMES = re.compile(r"^(t|time|times|timestamp|sec|secs|seconds|elapsed)(?=$|[\W_])", re.IGNORECASE)
_MS_NAMES = re.compile(r"(\bms\b|msec|millisec|\[ms\]|_ms$)", re.IGNORECASE)
# time stamps in a finer unit than ms: their unit divides them (a time_us column is not seconds)
_TIME_UNITS = (
    (re.compile(r"(\bns\b|nsec|nanosec|\[ns\]|_ns$)", re.IGNORECASE), 1e9),
    (re.compile(r"(\bus\b|µs|usec|microsec|\[us\]|_us$)", re.IGNORECASE), 1e6),
    (_MS_NAMES, 1e3),
)


def _time_scale(name: str) -> float:
    """Time-stamp units per second from a time column's name (1 when it names seconds or nothing)."""
    return next((scale for pattern, scale in _TIME_UNITS if pattern.search(name)), 1.0)


# pandas names an empty header cell "Unnamed: 0" (its own index column); PhysioNet's rdsamp writes "sample #"
_INDEX_NAMES = re.compile(
    r"^(sample|samples|index|idx|n|sample[ _]?(no|nr|number|index|#)|unnamed: ?\d+)$", re.IGNORECASE
)
# HeartGPT's published inputs: ECG lead I at 100 Hz, finger PPG at 50 Hz (Davies et al. 2024).
HEARTGPT_FS = {"ECG": 100.0, "PPG": 50.0}
HEARTGPT_LEAD = {"ECG": "I", "PPG": "PLETH"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_sample_index(column: pd.Series) -> bool:
    """Whether a column holds rising whole numbers (sample numbers, not signal; a jump among them is a gap)."""
    x = column.to_numpy(dtype=np.float64)
    step = np.diff(x)
    return len(step) > 0 and bool(np.all(np.isfinite(x)) and np.all(x == np.round(x)) and np.all(step > 0))


def _printed_resolution(text: pd.Series) -> np.ndarray:
    """Per cell, the smallest step its printed digits can show: 1e-3 for '0.125', 1 for '12', 1e-8 for
    '1.5e-07' (each cell its own: ``%g`` prints fewer decimals as the numbers grow)."""
    parts = text.astype(str).str.strip().str.lower().str.partition("e")
    mantissa, exponent = parts[0], parts[2]
    decimals = mantissa.str.partition(".")[2].str.len().to_numpy(dtype=np.float64)
    powers = pd.to_numeric(exponent.where(exponent != "", "0"), errors="coerce").fillna(0).to_numpy(np.float64)
    return 10.0 ** (powers - decimals)


def _sniff(path: Path, head: str) -> tuple[str, bool]:
    """Return (delimiter, has_header) judged from the first lines."""
    lines = [ln for ln in head.splitlines() if ln.strip()][:20]
    if not lines:
        raise RecordError("file is empty", path)
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t ").delimiter
    except csv.Error:
        delimiter = ","
    first = [
        cell.strip().strip('"')
        for cell in re.split(re.escape(delimiter) if delimiter != " " else r"\s+", lines[0].strip())
    ]
    has_header = not all(_is_number(cell) for cell in first if cell != "")
    return delimiter, has_header


# spellings of a missing value in a cell (read as NaN, then refused or repaired by the NaN policy)
MISSING_SPELLINGS = frozenset({"nan", "-nan", "+nan", "na", "n/a", "#n/a", "null", "none"})


def _first_bad_cell(frame: pd.DataFrame, values: pd.DataFrame, header_rows: int) -> str:
    """Where the first cell of text that is neither a number nor a spelling of a missing value sits;
    ``values`` is ``frame`` converted to numbers (NaN where conversion failed)."""
    for column, number in zip(frame.columns, values.columns, strict=True):
        failed = values[number].isna() & frame[column].notna()
        if not failed.any():
            continue
        text = frame[column][failed]
        bad = ~text.str.strip().str.lower().isin(MISSING_SPELLINGS)
        if bad.any():
            row = int(np.flatnonzero(failed.to_numpy())[np.argmax(bad.to_numpy())])
            return f"line {row + 1 + header_rows}, column {column!r}: {frame[column].iloc[row]!r} is not a number"
    return ""


def read_csv(
    path: str | Path,
    *,
    fs: float | None = None,
    leads: list[str] | None = None,
    units: str | list[str] | None = None,
    time_column: str | int | None = None,
    nan_policy: str = "raise",
) -> Record:
    """Read a delimited text file of signal values, one column per lead.

    The sampling rate comes from ``fs`` or from a time column (a header named ``time``/``t``/
    ``seconds``/``time_ms`` ..., or a headerless first column rising in equal non-integer steps);
    when both are present they must agree within 1 %. A column of consecutive integers named
    ``sample``/``index`` (or headerless 0, 1, 2, ...) is a sample index and is dropped.

    Args:
        path: the file.
        fs: sampling rate in Hz.
        leads: with a header, the leads to keep in this order (by column name); without one, names for
            the columns (default: the header's column names or ``ch0, ch1, ...``).
        units: units of the values (default ``unknown``).
        time_column: name or position of the time column, when auto-detection is not wanted.
        nan_policy: ``"raise"`` or ``"interpolate"`` for empty cells and NaN values.

    Raises:
        RecordError: empty file, text where numbers belong, irregular time stamps, no sampling rate.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise RecordError("not a text file (cannot be decoded as UTF-8)", path) from None
    delimiter, has_header = _sniff(path, text[:20000])
    sep = r"\s+" if delimiter == " " else delimiter
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if has_header else None,
            dtype=str,
            # only an empty field is missing here: a column of "nan" must stay a column (of missing
            # values, which the NaN policy then names) rather than vanish as all-empty
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
            engine="python" if sep == r"\s+" else "c",
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # rows of different lengths, or prose rather than a table: pandas names the line
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RecordError(f"not a table of signal values, one column per lead ({detail})", path) from None
    raw = raw.dropna(axis=1, how="all")  # trailing delimiters make empty columns
    # a blank line inside the data is a missing value (kept, then refused or repaired); blank lines at the end are not
    filled = np.flatnonzero(raw.notna().any(axis=1).to_numpy())
    raw = raw.iloc[: filled[-1] + 1] if len(filled) else raw.iloc[:0]
    if raw.empty:
        raise RecordError("file has a header but no rows of values", path)
    values = raw.apply(pd.to_numeric, errors="coerce")
    problem = _first_bad_cell(raw, values, 1 if has_header else 0)
    if problem:
        raise RecordError(f"text where a number belongs ({problem})", path)
    if values.shape[0] < 2 and values.shape[1] < 3:
        raise RecordError(f"{values.shape[0]} row of samples: a recording needs at least 2", path)
    if values.shape[1] > values.shape[0]:
        # more columns than rows is a file of one row per lead: reading it as columns makes thousands
        # of leads of a few samples each
        raise RecordError(
            f"{values.shape[1]} columns but only {values.shape[0]} row{'s' * (values.shape[0] != 1)}: cardiolens "
            "reads one column per lead and one row per sample; transpose the file (one row per lead is not read)",
            path,
        )
    names = (
        [str(c).strip().strip("'\"").strip() for c in raw.columns]
        if has_header
        else [f"ch{i}" for i in range(raw.shape[1])]
    )
    columns = list(range(values.shape[1]))

    time_fs = None
    time_idx = None
    if time_column is not None:
        time_idx = names.index(time_column) if isinstance(time_column, str) else int(time_column)
        if not 0 <= time_idx < len(names):
            raise RecordError(f"time column {time_column!r} not found (columns: {names})", path)
    elif has_header:
        time_idx = next((i for i, n in enumerate(names) if _TIME_NAMES.match(n) or _MS_NAMES.search(n)), None)
        index_idx = next(
            (i for i, n in enumerate(names) if _INDEX_NAMES.match(n) and _is_sample_index(values.iloc[:, i])), None
        )
        if index_idx is not None and index_idx != time_idx and len(columns) > 1:
            step = np.diff(values.iloc[:, index_idx].to_numpy(dtype=np.float64))
            if np.any(step != step[0]):  # sample numbers that jump: rows are missing
                row = int(np.flatnonzero(step != step[0])[0]) + 2 + 1  # 1-based, after the header line
                raise RecordError(
                    f"sample numbers in column {names[index_idx]!r} jump at line {row} "
                    f"({values.iloc[row - 3, index_idx]:g} -> {values.iloc[row - 2, index_idx]:g}): rows are missing",
                    path,
                )
            columns.remove(index_idx)
    elif len(columns) > 1:
        first = values.iloc[:, 0].to_numpy()
        step = np.diff(first)
        # two rows make one step, which is "equal steps" whatever the values: no time column from that
        if len(step) >= 2 and np.all(step > 0):
            if np.allclose(first, np.round(first)) and np.all(step == 1):
                columns.remove(0)  # a sample index, not a time
            elif np.allclose(step, step.mean(), rtol=1e-3):
                time_idx = 0
    if time_idx is not None:
        t = values.iloc[:, time_idx].to_numpy(dtype=np.float64)
        step = np.diff(t)
        if np.any(~np.isfinite(t)) or np.any(step <= 0):
            raise RecordError(f"time column {names[time_idx]!r} is not strictly increasing", path)
        # stamps rounded to their printed resolution (360 Hz in whole ms: steps of 2 and 3 ms) are each
        # off by up to half a unit of it, so a step is off the true one by up to one unit; a missing
        # sample is off by a whole step, told apart only where the unit is under half the step (600 Hz
        # in whole ms cannot be checked, and is refused)
        true_step = (t[-1] - t[0]) / (len(t) - 1)
        printed = _printed_resolution(raw.iloc[:, time_idx])
        resolution = np.maximum(printed[1:], printed[:-1])
        tolerance = np.maximum(0.01 * true_step, np.where(resolution <= 0.5 * true_step, 1.001 * resolution, 0.0))
        if np.any(np.abs(step - true_step) > tolerance):
            raise RecordError(
                f"time column {names[time_idx]!r} is irregular (steps {step.min():g}..{step.max():g}); "
                "resample to a uniform rate first",
                path,
            )
        scale = _time_scale(names[time_idx])
        # the whole span, not the median step: rounded time stamps (6 decimals at 360 Hz) make every
        # step a little off, their average is not; a rate within 1e-4 of a whole number is that number
        time_fs = scale * (len(t) - 1) / (t[-1] - t[0])
        # a rate within the span's rounding error (or 1e-4) of a whole number is that number
        if abs(time_fs - round(time_fs)) < max(1e-4, 2 * float(resolution.max()) / (t[-1] - t[0])) * time_fs:
            time_fs = float(round(time_fs))
        columns.remove(time_idx)
        if fs is not None and abs(time_fs - fs) > 0.01 * fs:
            raise RecordError(f"fs={fs} disagrees with the time column ({time_fs:.4g} Hz)", path)
    if not columns:
        raise RecordError("no signal columns besides the time/index column", path)
    fs = fs if fs is not None else time_fs
    if fs is None:
        raise RecordError("no sampling rate: pass fs= (--fs on the command line) or add a time column", path)
    if leads is not None and has_header:
        # a file that names its leads: keep the ones asked for, in that order, by the rule WFDB records
        # follow (a name whatever its case, or a position); never rename them
        picked = lead_positions([names[i] for i in columns], list(leads), path)
        if isinstance(units, list) and len(units) == len(columns):
            units = [units[k] for k in picked]  # units given per column of the file
        columns = [columns[k] for k in picked]
        leads = None
    signal = values.iloc[:, columns].to_numpy(dtype=np.float64).T
    lead_names = list(leads) if leads is not None else [names[i] for i in columns]
    meta = {"format": "csv"}
    signal = apply_nan_policy(signal, nan_policy, path, meta)
    return Record(signal, fs, leads=lead_names, units=units, source=path, metadata=meta)


def heartgpt_modality(path: Path) -> str | None:
    """'ECG' or 'PPG' when the file name says it is a HeartGPT context of that modality, as the
    published examples do (``example_context_ECG.csv``): "context" and exactly one of ECG / PPG.

    A name that only mentions ECG (``holter_ECG_lead2.csv``) is not enough: its rate would be taken
    as HeartGPT's 100 Hz whatever it was recorded at.
    """
    upper = path.name.upper()
    found = [m for m in HEARTGPT_FS if m in upper]
    return found[0] if len(found) == 1 and "CONTEXT" in upper else None


def read_heartgpt_context(
    path: str | Path, *, fs: float | None = None, modality: str | None = None, nan_policy: str = "raise"
) -> Record:
    """Read a HeartGPT context CSV: one headerless column of signal values.

    HeartGPT feeds ECG (lead I) at 100 Hz and finger PPG at 50 Hz. The modality is taken from
    ``modality`` or from the file name (``..._ECG...``/``..._PPG...``); ``fs`` overrides the default.
    """
    path = Path(path)
    modality = (modality or heartgpt_modality(path) or "").upper() or None
    if modality is not None and modality not in HEARTGPT_FS:
        raise RecordError(f"modality must be ECG or PPG, got {modality!r}", path)
    if fs is None:
        if modality is None:
            raise RecordError("HeartGPT context CSV: pass modality='ECG' (100 Hz) or 'PPG' (50 Hz), or fs=", path)
        fs = HEARTGPT_FS[modality]
        log.warning("%s: HeartGPT %s context, sampling rate taken as %g Hz (pass fs if it differs)", path, modality, fs)
    record = read_csv(path, fs=fs, nan_policy=nan_policy)
    if record.n_channels != 1:
        raise RecordError(f"a HeartGPT context CSV has one column, this one has {record.n_channels}", path)
    record = record.replace(leads=[HEARTGPT_LEAD.get(modality or "", "ch0")])
    record.metadata.update(format="heartgpt", modality=modality)
    return record
