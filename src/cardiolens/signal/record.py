"""The one in-memory representation of a recording: :class:`Record`.

Readers in :mod:`cardiolens.io` return Records; everything downstream (cleaning, peaks, windows,
tokens, models) consumes them. A Record validates itself on construction, so an invalid one never
exists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.signal.leads import lead_positions


@dataclass
class Annotations:
    """Sample-indexed annotations of a record (WFDB style).

    Attributes:
        sample: int64 sample indices, sorted.
        symbol: one symbol per annotation (beat symbols such as ``N``, ``V``; ``+`` for rhythm
            changes, ``~`` for signal-quality changes).
        aux: one auxiliary note per annotation (``(AFIB``, ``(N``, ... for rhythm changes).
    """

    sample: np.ndarray
    symbol: list[str]
    aux: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sample = np.asarray(self.sample, dtype=np.int64)
        self.symbol = [str(s) for s in self.symbol]
        if not self.aux:
            self.aux = [""] * len(self.symbol)
        self.aux = [str(a).rstrip("\x00").strip() for a in self.aux]
        if not (len(self.sample) == len(self.symbol) == len(self.aux)):
            raise RecordError("annotation sample, symbol and aux lists differ in length")

    def __len__(self) -> int:
        return len(self.sample)

    def select(self, mask: np.ndarray) -> Annotations:
        """Return the annotations where ``mask`` is true."""
        idx = np.flatnonzero(mask)
        return Annotations(self.sample[idx], [self.symbol[i] for i in idx], [self.aux[i] for i in idx])


@dataclass
class Record:
    """A multi-channel heart-signal recording.

    Attributes:
        signal: float32 array shaped (channels, samples), in ``units`` (mV for ECG when known).
        fs: sampling rate in Hz.
        leads: one name per channel (``I``, ``II``, ``V1``, ``PLETH``, ...).
        units: one unit per channel (``mV``, ``NU`` for normalised units, ``unknown``).
        name: record name (the file stem for files).
        source: the file the record was read from, if any.
        metadata: free-form facts from the file (age, sex, diagnoses, ...).
        annotations: beat / rhythm annotations, if the format carries them.

    Example:
        >>> import numpy as np
        >>> rec = Record(np.zeros((1, 500)) + np.sin(np.arange(500) / 10), fs=100, leads=["I"])
        >>> rec.duration
        5.0
    """

    signal: np.ndarray
    fs: float
    leads: list[str] | tuple[str, ...] | None = None
    units: list[str] | tuple[str, ...] | None = None
    name: str = ""
    source: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    annotations: Annotations | None = None

    def __post_init__(self) -> None:
        where = self.source or self.name or "record"
        signal = np.asarray(self.signal)
        if signal.dtype.kind not in "fiu":
            raise RecordError(f"signal must be numeric, got dtype {signal.dtype}", where)
        if signal.ndim == 1:
            signal = signal[None, :]
        if signal.ndim != 2:
            raise RecordError(f"signal must be shaped (channels, samples), got shape {signal.shape}", where)
        channels, samples = signal.shape
        if channels == 0 or samples == 0:
            raise RecordError(f"signal is empty (shape {signal.shape})", where)
        self.signal = np.ascontiguousarray(signal, dtype=np.float32)
        if not np.all(np.isfinite(self.signal)):
            bad = [i for i in range(channels) if not np.all(np.isfinite(self.signal[i]))]
            names = [self._lead_name(i) for i in bad]
            count = int(np.sum(~np.isfinite(self.signal)))
            raise RecordError(
                f"signal holds {count} NaN/inf values (leads {', '.join(names)}); "
                "load it with nan_policy='interpolate' (--nan_policy interpolate on the command line) to fill the "
                "gaps, or repair the data",
                where,
            )
        try:
            fs = float(self.fs)
        except (TypeError, ValueError):
            raise RecordError(f"sampling rate must be a number, got {self.fs!r}", where) from None
        if not np.isfinite(fs) or fs <= 0:
            raise RecordError(f"sampling rate must be a positive number of Hz, got {self.fs!r}", where)
        self.fs = fs
        self.leads = [str(x) for x in self.leads] if self.leads is not None else [f"ch{i}" for i in range(channels)]
        if len(self.leads) != channels:
            raise RecordError(f"{len(self.leads)} lead names for {channels} channels", where)
        if len(set(self.leads)) != len(self.leads):
            raise RecordError(f"lead names repeat: {self.leads}", where)
        if self.units is None:
            self.units = ["unknown"] * channels
        elif isinstance(self.units, str):
            self.units = [self.units] * channels
        self.units = [str(u) for u in self.units]
        if len(self.units) != channels:
            raise RecordError(f"{len(self.units)} units for {channels} channels", where)
        if self.source is not None:
            self.source = Path(self.source)
        if not self.name:
            self.name = self.source.stem if self.source is not None else "record"

    def _lead_name(self, i: int) -> str:
        return str(self.leads[i]) if self.leads is not None and i < len(self.leads) else f"ch{i}"

    @property
    def n_channels(self) -> int:
        return self.signal.shape[0]

    @property
    def n_samples(self) -> int:
        return self.signal.shape[1]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs

    def lead_index(self, lead: str | int) -> int:
        """Index of a lead by name (case-insensitive) or position, with a clear error."""
        return lead_positions(self.leads, [lead], self.source or self.name)[0]

    def select_leads(self, leads: list[str | int] | tuple[str | int, ...] | str | int) -> Record:
        """Return a Record with only the given leads, in the given order."""
        if isinstance(leads, (str, int, np.integer)):
            leads = [leads]
        idx = [self.lead_index(lead) for lead in leads]
        return self.replace(
            signal=self.signal[idx], leads=[self.leads[i] for i in idx], units=[self.units[i] for i in idx]
        )

    def crop(self, start: float = 0.0, stop: float | None = None) -> Record:
        """Return the part between ``start`` and ``stop`` seconds; annotations are shifted along."""
        a = int(round(start * self.fs))
        b = self.n_samples if stop is None else int(round(stop * self.fs))
        a, b = max(0, a), min(self.n_samples, b)
        if b <= a:
            raise RecordError(
                f"crop {start}-{stop} s leaves no samples of a {self.duration:.2f} s record", self.source or self.name
            )
        ann = None
        if self.annotations is not None:
            keep = (self.annotations.sample >= a) & (self.annotations.sample < b)
            ann = self.annotations.select(keep)
            ann.sample = ann.sample - a
        return self.replace(signal=self.signal[:, a:b], annotations=ann)

    def replace(self, **changes: Any) -> Record:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"Record(name={self.name!r}, leads={list(self.leads)}, fs={self.fs:g} Hz, "
            f"samples={self.n_samples}, duration={self.duration:.2f} s, units={sorted(set(self.units))})"
        )
