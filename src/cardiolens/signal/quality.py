"""Signal-quality checks per lead: flat line, saturation, missing samples, implausible amplitude,
implausible heart rate (the usual symptom of a wrong sampling rate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cardiolens.signal.leads import modality
from cardiolens.signal.record import Record

# An ECG in mV spans roughly 0.1-10 mV peak to peak; outside these bounds the gain is suspect.
ECG_MV_RANGE = (0.02, 20.0)
HEART_RATE_RANGE = (20.0, 300.0)


@dataclass
class LeadQuality:
    """Quality facts of one lead; ``problems`` lists the checks that failed, in words."""

    lead: str
    nan_fraction: float
    flat: bool
    saturated_fraction: float
    peak_to_peak: float
    heart_rate_bpm: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class QualityReport:
    """Per-lead quality of a record."""

    leads: list[LeadQuality]

    @property
    def ok(self) -> bool:
        return all(lead.ok for lead in self.leads)

    @property
    def summary(self) -> str:
        bad = [f"{q.lead}: {'; '.join(q.problems)}" for q in self.leads if q.problems]
        return "all leads pass" if not bad else " | ".join(bad)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "summary": self.summary, "leads": [asdict(q) for q in self.leads]}


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    padded = np.r_[0, mask.astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(padded))
    return int(np.max(edges[1::2] - edges[0::2]))


def _rail_fraction(values: np.ndarray, min_run: int = 3) -> float:
    """Fraction of samples sitting at the lead's minimum or maximum in runs of >= ``min_run`` samples:
    a clipped amplifier flattens every excursion past its rail, an intact signal touches its extremes once."""
    total = 0
    for rail in (values.max(), values.min()):
        padded = np.r_[0, (values == rail).astype(np.int8), 0]
        edges = np.flatnonzero(np.diff(padded))
        runs = edges[1::2] - edges[0::2]
        total += int(runs[runs >= min_run].sum())
    return total / values.size


def check_quality(
    record: Record | np.ndarray,
    fs: float | None = None,
    *,
    leads: list[str] | None = None,
    units: list[str] | None = None,
    heart_rate: bool = True,
) -> QualityReport:
    """Check every lead of a record (or a (channels, samples) array with ``fs``).

    Checks: NaN/inf fraction; flat line (no variation, or constant for more than half the record);
    saturation (more than 1 % of samples sitting at the lead's extreme values in runs of >= 3
    samples, the signature of a clipped amplifier); peak-to-peak amplitude outside 0.02-20 mV for ECG leads in
    mV (a wrong gain); median heart rate outside 20-300 bpm for ECG leads of at least 5 s (often a wrong
    sampling rate).
    """
    if isinstance(record, Record):
        x, fs = record.signal, record.fs
        leads, units = list(record.leads), list(record.units)
    else:
        x = np.atleast_2d(np.asarray(record, dtype=np.float64))
        if fs is None:
            raise ValueError("fs is required for an array")
    leads = leads or [f"ch{i}" for i in range(x.shape[0])]
    units = units or ["unknown"] * x.shape[0]
    reports = []
    for name, unit, channel in zip(leads, units, x, strict=True):
        finite = np.isfinite(channel)
        q = LeadQuality(
            lead=name, nan_fraction=float(1 - finite.mean()), flat=False, saturated_fraction=0.0, peak_to_peak=0.0
        )
        if q.nan_fraction > 0:
            q.problems.append(f"{q.nan_fraction:.1%} samples missing")
        values = channel[finite]
        if values.size == 0:
            q.flat = True
            q.problems.append("no finite samples")
            reports.append(q)
            continue
        q.peak_to_peak = float(np.ptp(values))
        constant_run = _longest_run(np.r_[False, np.diff(values) == 0])
        q.flat = q.peak_to_peak == 0 or constant_run > values.size // 2
        if q.flat:
            q.problems.append("flat line")
            reports.append(q)
            continue
        q.saturated_fraction = _rail_fraction(values)
        if q.saturated_fraction > 0.01:
            q.problems.append(f"saturated ({q.saturated_fraction:.1%} of samples at the rails)")
        is_ecg = modality(name) == "ECG"
        if is_ecg and unit == "mV" and not ECG_MV_RANGE[0] <= q.peak_to_peak <= ECG_MV_RANGE[1]:
            q.problems.append(f"implausible amplitude {q.peak_to_peak:.3g} mV peak to peak (gain wrong?)")
        if heart_rate and is_ecg and values.size >= 5 * fs:
            from cardiolens.signal.peaks import ecg_peaks

            found = ecg_peaks(values, fs)
            if len(found) > 2:
                q.heart_rate_bpm = float(60 * fs / np.median(np.diff(found)))
                if not HEART_RATE_RANGE[0] <= q.heart_rate_bpm <= HEART_RATE_RANGE[1]:
                    q.problems.append(f"implausible heart rate {q.heart_rate_bpm:.0f} bpm (sampling rate wrong?)")
        reports.append(q)
    return QualityReport(reports)
