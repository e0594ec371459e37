"""Signal-quality checks per lead: missing samples, flat line, saturation, implausible amplitude and
implausible heart rate (the usual symptom of a wrong sampling rate).

Example:
    >>> import numpy as np
    >>> report = check_quality(np.zeros((1, 2500)), fs=250, leads=["II"], units=["mV"])
    >>> report.summary
    'II: flat line'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.signal.filters import check_fs, describe
from cardiolens.signal.leads import modality
from cardiolens.signal.record import Record

# An ECG in mV spans roughly 0.1-10 mV peak to peak; outside these bounds the gain (or unit) is suspect.
ECG_MV_RANGE = (0.02, 20.0)
HEART_RATE_RANGE = {"ECG": (20.0, 250.0), "PPG": (20.0, 250.0)}
# leads of one modality whose rates differ by more than this share of the others' median disagree
RATE_AGREEMENT = 0.2
_TO_MV = {"mV": 1.0, "uV": 1e-3, "µV": 1e-3, "V": 1e3}


@dataclass
class LeadQuality:
    """Quality facts of one lead; ``problems`` lists the checks that failed, in words.

    Attributes:
        lead: lead name.
        modality: ``"ECG"``, ``"PPG"`` or ``"other"`` (from the name and unit).
        nan_fraction: fraction of NaN/inf samples.
        flat: no usable variation (constant, standard deviation below the threshold, or constant
            for more than half of the record).
        longest_constant_s: the longest stretch of identical consecutive samples, in seconds.
        saturated_fraction: fraction of samples stuck at the lead's extreme values in runs.
        peak_to_peak: robust peak-to-peak amplitude (0.1st to 99.9th percentile) in the lead's unit.
        heart_rate_bpm: median beat rate found in the lead (ECG and PPG leads of at least 5 s).
        problems: failed checks, in words.
    """

    lead: str
    nan_fraction: float
    flat: bool
    saturated_fraction: float
    peak_to_peak: float
    heart_rate_bpm: float | None = None
    problems: list[str] = field(default_factory=list)
    modality: str = "ECG"
    longest_constant_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class QualityReport:
    """Per-lead quality of a record; ``summary`` is a one-line human-readable verdict."""

    leads: list[LeadQuality]
    fs: float = 0.0

    @property
    def ok(self) -> bool:
        return all(lead.ok for lead in self.leads)

    @property
    def summary(self) -> str:
        bad = [f"{q.lead}: {'; '.join(q.problems)}" for q in self.leads if q.problems]
        return "all leads pass" if not bad else " | ".join(bad)

    def __str__(self) -> str:
        lines = [f"quality at {self.fs:g} Hz: {self.summary}"]
        for q in self.leads:
            rate = f", {q.heart_rate_bpm:.0f} bpm" if q.heart_rate_bpm is not None else ""
            verdict = "ok" if q.ok else "; ".join(q.problems)
            lines.append(f"  {q.lead} ({q.modality}, {q.peak_to_peak:.3g} peak to peak{rate}): {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "summary": self.summary, "leads": [asdict(q) for q in self.leads]}


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return edges[1::2] - edges[0::2]


def _rail_fraction(values: np.ndarray, min_run: int) -> float:
    """Fraction of samples sitting at the lead's minimum or maximum in runs of >= ``min_run`` samples:
    a clipped amplifier flattens every excursion past its rail, an intact signal touches its extremes once."""
    total = 0
    for rail in (values.max(), values.min()):
        runs = _runs(values == rail)
        total += int(runs[runs >= min_run].sum())
    return total / values.size


def check_quality(
    record: Record | np.ndarray,
    fs: float | None = None,
    *,
    leads: list[str] | None = None,
    units: list[str] | None = None,
    heart_rate: bool = True,
    flat_std: float = 1e-6,
    max_constant_s: float = 1.0,
    saturation: float = 0.01,
) -> QualityReport:
    """Check every lead of a record, or of a (channels, samples) array with ``fs``.

    Checks, per lead:

    - missing samples: any NaN/inf (arrays only; a Record cannot hold them);
    - flat line: constant, standard deviation below ``flat_std``, or constant for more than half
      the record; a shorter constant stretch longer than ``max_constant_s`` is reported too
      (a lead that came off, or a recorder that dropped data);
    - saturation: more than ``saturation`` (1 %) of the samples stuck at the lead's minimum or
      maximum in runs of at least 3 samples (and 10 ms): the signature of a clipped amplifier;
    - amplitude (ECG leads with a voltage unit): robust peak-to-peak outside 0.02-20 mV suggests a
      wrong gain or unit in the header;
    - heart rate (ECG and PPG leads of at least 5 s, unless ``heart_rate=False``): a median rate
      outside 20-250 bpm usually means a wrong sampling rate (beats faster than about 300 bpm merge in
      the detectors, so a rate declared much too high shows as one in 250-300 bpm or as a fraction of it).
      A rate declared ten times too low often goes unnoticed: the QRS complexes then look ten times
      wider than they are and the detectors may count filter ringing or noise as beats.
    - rate agreement (records with several ECG, or several PPG, leads): a lead whose rate differs by
      more than 20 % from the median of the leads of its modality (MIT-BIH 101's V1 counts
      170 bpm where MLII counts 61) has beats missed or extra ones counted.

    Args:
        record: a Record, or a 1-D / (channels, samples) array.
        fs: sampling rate in Hz (arrays only).
        leads: lead names for an array (default ``ch0``, ``ch1``, ...; names decide ECG vs PPG).
        units: units for an array (``mV`` enables the amplitude check).
        heart_rate: run the beat detectors to check the rate.
        flat_std: standard deviation (in the lead's unit) below which a lead is flat.
        max_constant_s: longest constant stretch, in seconds, accepted in a lead.
        saturation: largest accepted fraction of samples at the rails.

    Returns:
        A :class:`QualityReport` with one :class:`LeadQuality` per lead.

    Raises:
        RecordError: an array without a valid ``fs``, of the wrong shape, or names/units that do not
            match its channels.
    """
    if isinstance(record, Record):
        x, rate = record.signal, record.fs
        names, lead_units = list(record.leads), list(record.units)
    else:
        where = describe(record)
        x = np.asarray(record)
        if x.dtype.kind not in "fiub" or x.ndim not in (1, 2) or x.size == 0:
            raise RecordError(
                f"check_quality: needs a non-empty numeric 1-D or 2-D array, got {x.dtype} {x.shape}", where
            )
        x = np.atleast_2d(x.astype(np.float64, copy=False))
        rate = check_fs(fs, "check_quality", where)
        names = list(leads) if leads is not None else [f"ch{i}" for i in range(x.shape[0])]
        lead_units = list(units) if units is not None else ["unknown"] * x.shape[0]
        if len(names) != x.shape[0] or len(lead_units) != x.shape[0]:
            raise RecordError(
                f"check_quality: {len(names)} lead names and {len(lead_units)} units for {x.shape[0]} channels", where
            )
    reports = [
        _check_lead(name, unit, row, rate, heart_rate, flat_std, max_constant_s, saturation)
        for name, unit, row in zip(names, lead_units, x, strict=True)
    ]
    _compare_rates(reports)
    return QualityReport(reports, fs=float(rate))


def _compare_rates(reports: list[LeadQuality], tolerance: float = RATE_AGREEMENT) -> None:
    """Leads of one modality record the same heart: a lead whose rate is far from the leads' median
    has beats missed or extra ones counted (T waves, noise), though its own rate may look plausible.
    With two leads that disagree, both are flagged: which one is wrong is not known."""
    for kind in HEART_RATE_RANGE:
        rated = [q for q in reports if q.modality == kind and q.heart_rate_bpm]
        if len(rated) < 2:
            continue
        ref = float(np.median([q.heart_rate_bpm for q in rated]))
        for q in rated:
            others = [o for o in rated if o is not q]
            if abs(q.heart_rate_bpm - ref) > tolerance * ref:
                names = ", ".join(f"{o.lead} {o.heart_rate_bpm:.0f}" for o in others)
                q.problems.append(
                    f"heart rate {q.heart_rate_bpm:.0f} bpm disagrees with the other {kind} leads ({names} bpm): "
                    "beats are missed or extra ones counted in one of them"
                )


def _check_lead(
    name: str,
    unit: str,
    channel: np.ndarray,
    fs: float,
    heart_rate: bool,
    flat_std: float,
    max_constant_s: float,
    saturation: float,
) -> LeadQuality:
    channel = np.asarray(channel, dtype=np.float64)
    finite = np.isfinite(channel)
    kind = modality(name, unit)
    q = LeadQuality(
        lead=name,
        nan_fraction=float(1 - finite.mean()),
        flat=False,
        saturated_fraction=0.0,
        peak_to_peak=0.0,
        modality=kind,
    )
    if q.nan_fraction > 0:
        q.problems.append(f"{q.nan_fraction:.1%} samples missing (NaN/inf)")
    values = channel[finite]
    if values.size == 0:
        q.flat = True
        q.problems.append("no finite samples")
        return q
    lo, hi = np.percentile(values, [0.1, 99.9])
    q.peak_to_peak = float(hi - lo)
    constant = _runs(np.diff(values) == 0)
    longest = int(constant.max()) + 1 if constant.size else 1
    q.longest_constant_s = longest / fs
    q.flat = bool(np.ptp(values) == 0 or values.std() < flat_std or longest > values.size // 2)
    if q.flat:
        q.problems.append("flat line")
        return q
    rail_run = max(3, int(round(0.01 * fs)))
    q.saturated_fraction = _rail_fraction(values, rail_run)
    if q.saturated_fraction > saturation:
        q.problems.append(f"saturated ({q.saturated_fraction:.1%} of samples at the rails)")
    elif q.longest_constant_s > max_constant_s:
        q.problems.append(f"constant for {q.longest_constant_s:.1f} s (lead off or data dropped?)")
    if kind == "ECG" and unit in _TO_MV:
        mv = q.peak_to_peak * _TO_MV[unit]
        if not ECG_MV_RANGE[0] <= mv <= ECG_MV_RANGE[1]:
            q.problems.append(
                f"implausible amplitude {mv:.3g} mV peak to peak for an ECG "
                f"(expected {ECG_MV_RANGE[0]:g}-{ECG_MV_RANGE[1]:g} mV: gain or unit wrong?)"
            )
    if heart_rate and kind in HEART_RATE_RANGE and values.size >= 5 * fs and q.nan_fraction < 0.1:
        q.heart_rate_bpm = _median_rate(channel, finite, fs, kind)
        low, high = HEART_RATE_RANGE[kind]
        if q.heart_rate_bpm is not None and not low <= q.heart_rate_bpm <= high:
            q.problems.append(
                f"implausible heart rate {q.heart_rate_bpm:.0f} bpm (expected {low:g}-{high:g}: sampling rate wrong?)"
            )
    return q


def _median_rate(channel: np.ndarray, finite: np.ndarray, fs: float, kind: str) -> float | None:
    """Median beat rate in bpm, or None when fewer than 3 beats are found or detection is impossible."""
    from cardiolens.signal.peaks import ecg_peaks, ppg_peaks

    x = channel
    if not finite.all():  # a few gaps: bridge them linearly for the rate estimate only
        t = np.arange(channel.size)
        x = np.interp(t, t[finite], channel[finite])
    try:
        found = ppg_peaks(x, fs) if kind == "PPG" else ecg_peaks(x, fs)
    except RecordError:
        return None
    if len(found) < 3:
        return None
    return float(60.0 * fs / np.median(np.diff(found)))


__all__ = ["ECG_MV_RANGE", "HEART_RATE_RANGE", "RATE_AGREEMENT", "LeadQuality", "QualityReport", "check_quality"]
