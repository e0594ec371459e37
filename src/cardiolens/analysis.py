"""Record-level analyses shared by the Python API, the CLI and (later) the web app: what a record
is, where its beats are, and the demo pipeline (read -> clean -> beats -> quality -> plot -> report).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cardiolens.atomic import output_folder
from cardiolens.errors import RecordError
from cardiolens.signal import filters, peaks, quality
from cardiolens.signal.leads import PREFERRED_ECG_LEADS, modality
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)


def default_lead(record: Record) -> str:
    """The lead beat finding uses when none is named: a preferred ECG lead, else the first ECG or PPG
    lead (BIDMC lists RESP first), else the first lead."""
    names = {name.upper(): name for name in record.leads}
    for preferred in PREFERRED_ECG_LEADS:
        if preferred in names:
            return names[preferred]
    heart = [lead for lead, unit in zip(record.leads, record.units, strict=True) if modality(lead, unit) != "other"]
    return (heart or record.leads)[0]


@dataclass
class Beats:
    """Beats found in one lead of a record."""

    lead: str
    modality: str
    method: str
    fs: float
    samples: np.ndarray

    @property
    def times(self) -> np.ndarray:
        return self.samples / self.fs

    @property
    def rr(self) -> np.ndarray:
        """Intervals between successive beats in seconds."""
        return np.diff(self.samples) / self.fs

    @property
    def heart_rate(self) -> float:
        """Median heart (pulse) rate in beats per minute (NaN with fewer than two beats)."""
        return float(60.0 / np.median(self.rr)) if len(self.samples) > 1 else float("nan")

    def to_csv(self, path: str | Path) -> None:
        """Write ``sample,time_s,rr_s`` rows (rr_s empty for the first beat)."""
        rr = np.r_[np.nan, self.rr][: len(self.samples)]  # no beats: a header alone
        lines = ["sample,time_s,rr_s"] + [
            f"{s},{t:.4f},{'' if np.isnan(r) else f'{r:.4f}'}"
            for s, t, r in zip(self.samples, self.times, rr, strict=True)
        ]
        Path(path).write_text("\n".join(lines) + "\n")


def find_beats(record: Record, lead: str | None = None, method: str | None = None) -> Beats:
    """Find heart beats in one lead: R peaks for ECG, systolic pulse peaks for PPG.

    Args:
        record: the record.
        lead: lead name (default: :func:`default_lead`).
        method: detector name (default: the package default for the lead's modality).
    """
    lead = lead or default_lead(record)
    index = record.lead_index(lead)
    x = record.signal[index]
    kind = modality(lead, record.units[index])
    if kind == "other":
        raise RecordError(
            f"lead {lead!r} ({record.units[index]}) is not an ECG or PPG lead: beats are found in ECG and PPG leads "
            f"(leads here: {', '.join(record.leads)})",
            record.source or record.name,
        )
    method = method or (peaks.DEFAULT_PPG_METHOD if kind == "PPG" else peaks.DEFAULT_ECG_METHOD)
    try:
        found = (peaks.ppg_peaks if kind == "PPG" else peaks.ecg_peaks)(x, record.fs, method=method)
    except RecordError as exc:  # the detector names the array it was given; the user gave a file and a lead
        raise RecordError(f"lead {lead}: {exc.problem}", record.source or record.name) from None
    return Beats(lead=lead, modality=kind, method=method, fs=record.fs, samples=np.asarray(found, dtype=np.int64))


def clean(record: Record) -> Record:
    """Band-limit every lead with the default pipeline of its modality (:func:`cardiolens.signal.filters.clean`:
    ECG and PPG filtered, other signals such as respiration kept as they are)."""
    return filters.clean(record)


def describe_record(record: Record) -> dict:
    """A JSON-ready summary: format, rate, leads, units, length, annotations, quality per lead."""
    info = {
        "name": record.name,
        "source": str(record.source) if record.source else None,
        "format": record.metadata.get("format"),
        "fs": record.fs,
        "leads": list(record.leads),
        "units": list(record.units),
        "samples": record.n_samples,
        "duration_s": round(record.duration, 3),
        "metadata": {k: v for k, v in record.metadata.items() if k not in ("comments", "format")},
    }
    if record.annotations is not None:
        symbols, counts = np.unique(np.asarray(record.annotations.symbol), return_counts=True)
        info["annotations"] = {str(s): int(c) for s, c in zip(symbols, counts, strict=True)}
    info["quality"] = quality.check_quality(record).to_dict()
    return info


def simulated_record(seconds: float = 30.0, fs: float = 500.0, seed: int = 42) -> Record:
    """A bundled default that needs no download: ECG (lead II) and PPG simulated with neurokit2."""
    import neurokit2 as nk  # slow import (about 4 s): only when simulating

    # one extra second is simulated and dropped: neurokit2's ECG starts with a step that no real record has
    n = int(seconds * fs)
    ecg = nk.ecg_simulate(duration=seconds + 1, sampling_rate=int(fs), heart_rate=72, noise=0.02, random_state=seed)
    ppg = nk.ppg_simulate(duration=seconds + 1, sampling_rate=int(fs), heart_rate=72, random_state=seed)
    ecg, ppg = ecg[-n:], ppg[-n:]
    return Record(np.vstack([ecg, ppg]), fs, leads=["II", "PLETH"], units=["mV", "NU"], name="simulated")


def run_demo(out: str | Path = "demo-output", seconds: float = 30.0) -> dict:
    """The main job on a bundled default: simulate, write as WFDB, read back, clean, find beats,
    check quality, plot, and write a JSON report. Returns the report."""
    import wfdb

    out = output_folder(out)
    sim = simulated_record(seconds)
    wfdb.wrsamp(
        "simulated",
        fs=int(sim.fs),
        units=list(sim.units),
        sig_name=list(sim.leads),
        p_signal=sim.signal.T.astype(np.float64),
        fmt=["16", "16"],
        write_dir=str(out),
    )
    from cardiolens.io import load_record
    from cardiolens.plot import plot_record

    record = load_record(out / "simulated.hea")
    cleaned = clean(record)
    beats = {lead: find_beats(cleaned, lead) for lead in cleaned.leads}
    for lead, b in beats.items():
        b.to_csv(out / f"beats_{lead}.csv")
    model_beats, model_report = _demo_model_beats(record, beats, out)
    marked = {lead: b.samples for lead, b in beats.items()}
    marked[model_beats.lead] = model_beats.samples
    plot_record(
        cleaned,
        duration=10,
        peaks=marked,
        out=out / "record.png",
        title=f"simulated ECG (II) and PPG, cleaned; beats marked ({model_beats.lead}: beats-ecg)",
    )
    report = describe_record(record)
    report["beats"] = {
        lead: {"method": b.method, "count": int(len(b.samples)), "heart_rate_bpm": round(b.heart_rate, 1)}
        for lead, b in beats.items()
    }
    report["beat_model"] = model_report
    report["rhythm"] = _demo_rhythm(record)
    report["rhythm_trees"] = _demo_rhythm(record, "rhythm-ecg-trees")
    report["rhythm_mean"] = _demo_rhythm(record, "rhythm-ecg-mean")
    report["beat_classes"] = _demo_beat_classes(record)
    report["generated"] = _demo_continuation(out / "simulated.hea", out)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    return report


def _demo_model_beats(record: Record, classical: dict[str, Beats], out: Path) -> tuple[Beats, dict]:
    """Find the demo's ECG beats with the shipped beat detector ``beats-ecg`` (``beats_model_<lead>.csv``)."""
    from cardiolens.tasks.metrics import match_peaks
    from cardiolens.tasks.tasks_beats import detect_beats

    lead = default_lead(record)
    samples, confidence = detect_beats("beats-ecg", record, lead=lead)  # the raw lead, as it was trained
    beats = Beats(lead=lead, modality="ECG", method="beats-ecg", fs=record.fs, samples=samples)
    beats.to_csv(out / f"beats_model_{lead}.csv")
    same, _ = match_peaks(classical[lead].samples, samples, int(round(0.15 * record.fs)))
    return beats, {
        "model": "beats-ecg",
        "lead": lead,
        "count": int(samples.size),
        "heart_rate_bpm": round(beats.heart_rate, 1),
        "min_confidence": round(float(confidence.min()), 3) if confidence.size else None,
        "same_as_classical_within_150ms": int(same),
        "csv": str(out / f"beats_model_{lead}.csv"),
    }


def _demo_rhythm(record: Record, model: str = "rhythm-ecg") -> dict:
    """Classify the demo's ECG lead with a shipped CinC 2017 rhythm model (N / A / O / ~): the CNN
    ``rhythm-ecg``, the feature trees ``rhythm-ecg-trees`` or their mean ``rhythm-ecg-mean``."""
    from cardiolens.tasks.predict import predict_record

    return predict_record(model, record, lead="II").to_dict()


def _demo_beat_classes(record: Record) -> dict:
    """AAMI classes (N / S / V / F) of the demo's ECG beats by the shipped ``aami-ecg-trees``."""
    from cardiolens.tasks.predict import predict_record

    p = predict_record("aami-ecg-trees", record, lead="II")
    return {"model": p.model, "lead": "II", "beats": int(len(p.beats)), "per_class": p.extra["beats_per_class"]}


def _demo_continuation(path: Path, out: Path, steps: int = 300) -> dict:
    """Continue the demo's ECG lead with the shipped ``ecgpt-small`` (the first torch use of the demo)."""
    from cardiolens.generate import generate_file

    result = generate_file("ecgpt-small", path, steps=steps, out=out, lead="II", top_k=5, seed=0)
    return {
        "model": "ecgpt-small",
        "lead": result.lead,
        "steps": steps,
        "csv": str(result.csv),
        "png": str(result.png),
        "summary": result.summary,
    }


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = [
    "Beats",
    "clean",
    "default_lead",
    "describe_record",
    "find_beats",
    "modality",
    "run_demo",
    "simulated_record",
]
