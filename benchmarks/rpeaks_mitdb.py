"""R-peak detection on the MIT-BIH Arrhythmia Database: sensitivity, positive predictivity and speed.

Every method runs through ``cardiolens.signal.ecg_peaks`` on the raw first signal of each record
(MLII in 23 of the 26 records; V5 in 102, 104 and 114), at 360 Hz. The reference is the set of beat
annotations in ``.atr`` (symbols N L R B A a J S V r F e j n E / f Q ?; rhythm, noise and other
non-beat annotations are not beats). A detection matches a reference beat within +-150 ms, one to
one (closest pairs first). Three scorings are reported:

- ``ec57``: as ANSI/AAMI EC57 and WFDB ``bxb`` by default: the first 5 minutes of each record are
  a learning period and not scored, and ventricular flutter/fibrillation episodes (between the
  ``[`` and ``]`` annotations; 207 is the only record here with them: six episodes, 2.4 min) are not
  scored: reference beats and detections inside them are ignored. Shutdown periods are not
  modelled (MIT-BIH marks none).
- ``whole_vf_excluded``: the whole record, only the ventricular flutter episodes excluded.
- ``unexcluded``: the whole record, nothing excluded (flutter waves detected as beats count as
  false positives).

Speed: wall time of each method over the same records in the same run (median of ``--repeat``
runs per record for methods faster than 1 s per record), reported as a ratio against
``nk.ecg_peaks(cleaned, method="neurokit")``, neurokit2's default detector, timed on a signal
cleaned beforehand (its cleaning, ``nk.ecg_clean``, is not counted, while every cardiolens
method's time includes all its filtering). The ``neurokit`` method row includes the cleaning.

Usage::

    .venv/bin/python benchmarks/rpeaks_mitdb.py                 # all default methods
    .venv/bin/python benchmarks/rpeaks_mitdb.py --methods cardiolens neurokit --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, unpacked, write_result  # noqa: E402
from cardiolens.io import load_record  # noqa: E402
from cardiolens.signal.peaks import ecg_peaks  # noqa: E402
from cardiolens.tasks.metrics import match_peaks as match  # noqa: E402  (one matcher for every benchmark)

BEAT_SYMBOLS = frozenset("N L R B A a J S V r F e j n E / f Q ?".split())
TOLERANCE_S = 0.150
LEARNING_S = 300.0
VARIANTS = ("ec57", "whole_vf_excluded", "unexcluded")
DEFAULT_METHODS = (
    "cardiolens",
    "neurokit",
    "neurokit:pantompkins1985",
    "neurokit:hamilton2002",
    "neurokit:elgendi2010",
    "neurokit:martinez2004",
    "neurokit:kalidas2017",
    "neurokit:manikandan2012",
    "neurokit:nabian2018",
    "neurokit:rodrigues2021",
)
SPEED_REFERENCE = "nk.ecg_peaks(method='neurokit')"


def reference_of(record) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Reference beat samples and the ventricular flutter/fibrillation episodes ``[`` .. ``]``."""
    ann = record.annotations
    symbols = np.asarray(ann.symbol)
    beats = ann.sample[np.isin(symbols, list(BEAT_SYMBOLS))]
    episodes, start = [], None
    for s, sym in zip(ann.sample.tolist(), ann.symbol, strict=True):
        if sym == "[":
            start = s
        elif sym == "]" and start is not None:
            episodes.append((start, s))
            start = None
    if start is not None:
        episodes.append((start, record.n_samples))
    return beats, episodes


def score(beats: np.ndarray, detected: np.ndarray, fs: float, excluded: list[tuple[float, float]]) -> dict:
    """TP/FN/FP and location error after dropping reference beats and detections in ``excluded``."""
    keep_ref = np.ones(beats.size, dtype=bool)
    keep_det = np.ones(detected.size, dtype=bool)
    for a, b in excluded:
        keep_ref &= ~((beats >= a) & (beats <= b))
        keep_det &= ~((detected >= a) & (detected <= b))
    ref, det = beats[keep_ref], detected[keep_det]
    tp, offsets = match(ref, det, int(round(TOLERANCE_S * fs)))
    offsets_ms = np.abs(offsets) * 1000.0 / fs
    return {
        "tp": tp,
        "fn": int(ref.size - tp),
        "fp": int(det.size - tp),
        "median_abs_offset_ms": round(float(np.median(offsets_ms)), 2) if offsets_ms.size else None,
        "_offsets_ms": offsets_ms,
    }


def rates(tp: int, fn: int, fp: int) -> dict:
    se = tp / (tp + fn) if tp + fn else float("nan")
    ppv = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fn + fp) if tp else 0.0
    return {"se": 100 * se, "ppv": 100 * ppv, "f1": 100 * f1}


def bootstrap(rows: list[dict], reps: int, seed: int) -> dict:
    """95 % intervals of gross Se, +P and F1, resampling records with replacement."""
    counts = np.array([[r["tp"], r["fn"], r["fp"]] for r in rows], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(rows), size=(reps, len(rows)))
    tp, fn, fp = (counts[picks, i].sum(axis=1) for i in range(3))
    out = {}
    for name, value in (("se", tp / (tp + fn)), ("ppv", tp / (tp + fp)), ("f1", 2 * tp / (2 * tp + fn + fp))):
        lo, hi = np.percentile(100 * value, [2.5, 97.5])
        out[name] = [round(float(lo), 3), round(float(hi), 3)]
    return out


def time_call(fn, repeat: int) -> tuple[np.ndarray, float]:
    """Result of ``fn()`` and its median wall time over ``repeat`` runs (one run when it takes > 1 s)."""
    start = time.perf_counter()
    result = fn()
    times = [time.perf_counter() - start]
    if times[0] < 1.0:
        for _ in range(repeat - 1):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with the MIT-BIH .hea/.dat/.atr files (default: ../shared/data/mitdb-ds1.zip, "
        "unpacked into .cache/shared-data/)",
    )
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), help="ecg_peaks methods to score")
    parser.add_argument("--records", nargs="+", default=None, help="record names (default: every record found)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per record (median taken)")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "rpeaks_mitdb.json")
    args = parser.parse_args(argv)

    folder = args.data or unpacked("mitdb-ds1.zip") / "mit-bih-arrhythmia-database-1.0.0"
    names = args.records or sorted(p.stem for p in folder.glob("*.hea"))
    if not names:
        parser.error(f"no .hea files in {folder}")
    import neurokit2 as nk  # the speed reference

    methods = list(dict.fromkeys(args.methods))
    counts = {m: {v: [] for v in VARIANTS} for m in methods}
    seconds = {m: 0.0 for m in methods}
    reference_seconds = 0.0
    record_info = []
    warnings.filterwarnings("ignore", module="neurokit2")
    for n, name in enumerate(names):
        record = load_record(folder / f"{name}.hea")
        x, fs = record.signal[0].astype(np.float64), record.fs
        beats, episodes = reference_of(record)
        exclusions = {
            "ec57": [(0, LEARNING_S * fs), *episodes],
            "whole_vf_excluded": episodes,
            "unexcluded": [],
        }
        record_info.append(
            {
                "record": name,
                "lead": record.leads[0],
                "beats": int(beats.size),
                "vf_episodes_s": [[round(a / fs, 2), round(b / fs, 2)] for a, b in episodes],
            }
        )
        cleaned = nk.ecg_clean(x, sampling_rate=int(fs), method="neurokit")
        # the speed reference, then every method, in a rotating order (shared machines drift)
        reference = lambda c=cleaned, r=int(fs): nk.ecg_peaks(c, sampling_rate=r, method="neurokit")  # noqa: E731
        _, t_ref = time_call(reference, args.repeat)
        reference_seconds += t_ref
        order = methods[n % len(methods) :] + methods[: n % len(methods)]
        for method in order:
            found, t = time_call(lambda m=method, x=x, fs=fs: ecg_peaks(x, fs, method=m), args.repeat)
            seconds[method] += t
            for variant in VARIANTS:
                row = {"record": name, "seconds": round(t, 5), **score(beats, found, fs, exclusions[variant])}
                counts[method][variant].append(row)
        print(
            f"{name}: {beats.size} beats, "
            + ", ".join(f"{m} {counts[m]['ec57'][-1]['fn']}/{counts[m]['ec57'][-1]['fp']}" for m in methods)
            + "  (ec57 FN/FP)",
            file=sys.stderr,
        )

    results = {}
    for method in methods:
        entry = {
            "seconds": round(seconds[method], 4),
            "speed_vs_neurokit": round(reference_seconds / seconds[method], 3),
        }
        for variant in VARIANTS:
            rows = counts[method][variant]
            tp, fn, fp = (sum(r[k] for r in rows) for k in ("tp", "fn", "fp"))
            offsets = np.concatenate([r.pop("_offsets_ms") for r in rows])
            for r in rows:
                r.update({k: round(v, 3) for k, v in rates(r["tp"], r["fn"], r["fp"]).items()})
            entry[variant] = {
                "tp": tp,
                "fn": fn,
                "fp": fp,
                **{k: round(v, 3) for k, v in rates(tp, fn, fp).items()},
                "ci95": bootstrap(rows, args.bootstrap, args.seed),
                "median_abs_offset_ms": round(float(np.median(offsets)), 2) if offsets.size else None,
                "per_record": rows,
            }
        results[method] = entry

    payload = {
        "benchmark": "R-peak detection, MIT-BIH Arrhythmia Database",
        "data": {
            "folder": str(folder),
            "source": "../shared/data/mitdb-ds1.zip (MIT-BIH Arrhythmia Database 1.0.0, PhysioNet)",
            "records": names,
            "record_info": record_info,
            "signal": "first signal of each record (MLII; V5 in 102, 104, 114), raw, 360 Hz",
        },
        "protocol": {
            "reference": "beat annotations with symbols " + " ".join(sorted(BEAT_SYMBOLS)),
            "tolerance_ms": TOLERANCE_S * 1000,
            "matching": "one to one, closest pairs first",
            "variants": {
                "ec57": "ANSI/AAMI EC57 / bxb defaults: first 5 min of each record not scored (learning period); "
                "ventricular flutter/fibrillation episodes ([ .. ]) not scored",
                "whole_vf_excluded": "whole record; ventricular flutter/fibrillation episodes not scored",
                "unexcluded": "whole record, nothing excluded",
            },
            "ci95": f"bootstrap over records ({args.bootstrap} resamples, seed {args.seed}), 2.5-97.5 percentiles",
            "speed": f"wall time summed over records (median of {args.repeat} runs per record for runs under 1 s); "
            f"speed_vs_neurokit = time of {SPEED_REFERENCE} on the pre-cleaned signal / time of the method "
            "(>1: faster than neurokit2's default detector)",
            "parameters": "one parameter set for all records (each method's defaults)",
        },
        "reference_seconds": round(reference_seconds, 4),
        "methods": results,
    }
    write_result(payload, args.out)
    print(markdown_table(payload))
    return payload


def markdown_table(payload: dict) -> str:
    """The summary table of docs/BENCHMARKS.md."""
    lines = [
        "| method | EC57 Se % | EC57 +P % | EC57 F1 % | whole record (VF excl.) Se / +P % | unexcluded Se / +P % "
        "| time (s) | speed vs neurokit2 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, e in payload["methods"].items():
        ec, wv, un = e["ec57"], e["whole_vf_excluded"], e["unexcluded"]
        lines.append(
            f"| `{method}` | {ec['se']:.2f} [{ec['ci95']['se'][0]:.2f}-{ec['ci95']['se'][1]:.2f}] "
            f"| {ec['ppv']:.2f} [{ec['ci95']['ppv'][0]:.2f}-{ec['ci95']['ppv'][1]:.2f}] | {ec['f1']:.2f} "
            f"| {wv['se']:.2f} / {wv['ppv']:.2f} | {un['se']:.2f} / {un['ppv']:.2f} "
            f"| {e['seconds']:.2f} | {e['speed_vs_neurokit']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
