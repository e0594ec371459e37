"""The ``cardiolens`` command: a thin mapping of subcommands to typed public functions.

Each subcommand parses its arguments with jsonargparse (from the function's signature and
docstring), calls public cardiolens functions and prints or writes the result. A CardiolensError
becomes a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cardiolens.errors import CardiolensError


def info(path: Path, fs: float | None = None, format: str | None = None, as_json: bool = False) -> None:
    """Summarise a record (rate, leads, units, length, annotations, quality) or a dataset folder.

    Args:
        path: a record file, or a dataset folder in its publisher's layout.
        fs: sampling rate for formats that do not carry one (NumPy, CSV without a time column).
        format: force a reader (wfdb, mat, npy, npz, csv, heartgpt).
        as_json: print JSON instead of text.
    """
    from cardiolens.analysis import _json_default, describe_record
    from cardiolens.io import load_record

    if Path(path).is_dir():
        from cardiolens.datasets import open_dataset

        summary = open_dataset(path).summary()
    else:
        summary = describe_record(load_record(path, fs=fs, format=format))
    if as_json:
        print(json.dumps(summary, indent=2, default=_json_default))
    else:
        _print_summary(summary)


def _print_summary(summary: dict, indent: str = "") -> None:
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_summary(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


def plot(
    path: Path,
    out: Path | None = None,
    start: float = 0.0,
    duration: float = 10.0,
    leads: list[str] | None = None,
    beats: bool = True,
    clean: bool = False,
    fs: float | None = None,
) -> None:
    """Draw a record on ECG paper as a PNG, detected beats and annotations overlaid.

    Args:
        path: the record file.
        out: PNG to write (default: <record name>.png in the current folder).
        start: first second shown.
        duration: seconds shown.
        leads: leads to draw (default: all).
        beats: mark the beats found in each drawn lead.
        clean: band-pass the leads before drawing.
        fs: sampling rate for formats that do not carry one.
    """
    from cardiolens import analysis
    from cardiolens.io import load_record
    from cardiolens.plot import plot_record

    record = load_record(path, fs=fs)
    if leads:
        record = record.select_leads(leads)
    if clean:
        record = analysis.clean(record)
    found = {lead: analysis.find_beats(record, lead).samples for lead in record.leads} if beats else None
    out = out or Path(f"{record.name}.png")
    plot_record(record, start=start, duration=duration, peaks=found, out=out)
    print(out)


def peaks(
    path: Path, lead: str | None = None, method: str | None = None, out: Path | None = None, fs: float | None = None
) -> None:
    """Write beat times as CSV (sample, time_s, rr_s): R peaks for ECG leads, pulse peaks for PPG.

    Args:
        path: the record file.
        lead: lead to use (default: II / MLII / I / the first lead).
        method: detector (default: the package default for the lead's modality).
        out: CSV to write (default: standard output).
        fs: sampling rate for formats that do not carry one.
    """
    from cardiolens import analysis
    from cardiolens.io import load_record

    beats = analysis.find_beats(load_record(path, fs=fs), lead=lead, method=method)
    if out is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "beats.csv"
            beats.to_csv(target)
            sys.stdout.write(target.read_text())
    else:
        beats.to_csv(out)
        print(f"{len(beats.samples)} beats in lead {beats.lead} ({beats.method}) -> {out}", file=sys.stderr)


def demo(out: Path = Path("demo-output"), seconds: float = 30.0) -> None:
    """Run the main job on a bundled simulated record: read, clean, find beats, plot, report.

    Args:
        out: folder for the record, figures and report.
        seconds: length of the simulated record.
    """
    from cardiolens.analysis import run_demo

    report = run_demo(out, seconds=seconds)
    print(
        f"record: {report['name']}  {report['fs']:g} Hz  leads {', '.join(report['leads'])}  "
        f"{report['duration_s']:.0f} s"
    )
    for lead, b in report["beats"].items():
        print(f"beats in {lead}: {b['count']} ({b['method']}), heart rate {b['heart_rate_bpm']} bpm")
    print(f"quality: {report['quality']['summary']}")
    print(f"wrote {out}/record.png, {out}/report.json, {out}/beats_*.csv")


COMMANDS = {"info": info, "plot": plot, "peaks": peaks, "demo": demo}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cardiolens`` command."""
    from jsonargparse import auto_cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        auto_cli(COMMANDS, args=argv, as_positional=True)
    except CardiolensError as exc:
        print(f"cardiolens: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
