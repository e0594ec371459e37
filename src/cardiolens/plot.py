"""Figures of records: ECG-paper style traces with beats and annotations overlaid (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from cardiolens.signal.record import Record  # noqa: E402

# ECG paper: small squares 0.04 s x 0.1 mV, large squares 0.2 s x 0.5 mV, drawn in pink.
_MINOR, _MAJOR = "#f6c9cf", "#e8909b"


# seconds between x-axis labels, each a multiple of the 0.2 s major grid so that a label sits on a gridline
_LABEL_STEPS = (0.2, 0.4, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
_MAX_LABELS = 12


def _label_step(span: float) -> float:
    """The smallest label step that leaves at most ``_MAX_LABELS`` labels over ``span`` seconds."""
    return next((s for s in _LABEL_STEPS if span / s <= _MAX_LABELS), _LABEL_STEPS[-1])


def _time_labels(step: float) -> FuncFormatter:
    """Label only the gridlines on multiples of ``step`` seconds: every 0.2 s line labelled runs the labels
    together ("60.060.260.4...") once the times have more than one digit."""
    decimals = 0 if step >= 1 else 1

    def label(value: float, _pos: int | None) -> str:
        k = round(value / step)
        return f"{k * step:.{decimals}f}" if abs(value - k * step) < 1e-6 * max(1.0, step) else ""

    return FuncFormatter(label)


def _paper_grid(ax: plt.Axes, t0: float, t1: float, lo: float, hi: float, in_mv: bool) -> None:
    ax.set_xticks(np.arange(np.floor(t0 / 0.2) * 0.2, t1 + 1e-9, 0.2), minor=False)
    ax.set_xticks(np.arange(np.floor(t0 / 0.04) * 0.04, t1 + 1e-9, 0.04), minor=True)
    ax.xaxis.set_major_formatter(_time_labels(_label_step(t1 - t0)))
    if in_mv:
        ax.set_yticks(np.arange(np.floor(lo / 0.5) * 0.5, hi + 1e-9, 0.5), minor=False)
        ax.set_yticks(np.arange(np.floor(lo / 0.1) * 0.1, hi + 1e-9, 0.1), minor=True)
    ax.grid(which="major", color=_MAJOR, linewidth=0.6)
    ax.grid(which="minor", color=_MINOR, linewidth=0.3)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)


def plot_record(
    record: Record,
    *,
    start: float = 0.0,
    duration: float | None = 10.0,
    leads: list[str] | None = None,
    peaks: dict[str, np.ndarray] | np.ndarray | None = None,
    annotations: bool = True,
    title: str | None = None,
    out: str | Path | None = None,
) -> plt.Figure:
    """Draw a record one lead per row on ECG paper (mV leads) or a plain time grid (other units).

    Args:
        record: the record.
        start: first second shown.
        duration: seconds shown (``None`` for all; long records are best cropped).
        leads: leads to draw (default: all).
        peaks: beat positions (sample indices of the full record) to mark, either one array for every
            lead or a mapping lead name -> array.
        annotations: mark beat symbols from ``record.annotations`` when present.
        title: figure title (default: record name, rate, span).
        out: write a PNG here when given.

    Returns:
        The matplotlib Figure.
    """
    shown = record.select_leads(leads) if leads else record
    stop = None if duration is None else start + duration
    view = shown.crop(start, stop)
    offset = int(round(start * record.fs))
    t = (np.arange(view.n_samples) + offset) / view.fs
    span = t[-1] - t[0] if len(t) > 1 else 1.0
    # 25 mm/s paper at a readable size, bounded so very long views stay a sane image
    width = float(np.clip(span * 1.6, 8, 30))
    fig, axes = plt.subplots(
        view.n_channels, 1, figsize=(width, 1.9 * view.n_channels + 0.6), sharex=True, squeeze=False
    )
    for i, ax in enumerate(axes[:, 0]):
        y = view.signal[i]
        in_mv = view.units[i] == "mV"
        lo, hi = float(y.min()), float(y.max())
        pad = max(0.1 * (hi - lo), 0.2 if in_mv else 1e-6)
        _paper_grid(ax, t[0], t[-1], lo - pad, hi + pad, in_mv)
        ax.plot(t, y, color="black", linewidth=0.8)
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(lo - pad, hi + pad)
        ax.text(
            0.002,
            0.96,
            f"{view.leads[i]} [{view.units[i]}]",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        lead_peaks = peaks.get(view.leads[i]) if isinstance(peaks, dict) else peaks
        if lead_peaks is not None and len(lead_peaks):
            inside = np.asarray(lead_peaks)
            inside = inside[(inside >= offset) & (inside < offset + view.n_samples)] - offset
            ax.plot(t[inside], y[inside], "o", color="#1f77b4", markersize=4, label="detected beats")
        if annotations and record.annotations is not None and len(record.annotations):
            ann = record.annotations
            keep = (ann.sample >= offset) & (ann.sample < offset + view.n_samples)
            for s, sym in zip(ann.sample[keep], np.asarray(ann.symbol)[keep], strict=True):
                ax.text(s / record.fs, hi + 0.55 * pad, sym, ha="center", va="center", fontsize=7, color="#c0392b")
    axes[-1, 0].tick_params(labelbottom=True)
    axes[-1, 0].set_xlabel("time [s]" + ("  (grid: 0.2 s x 0.5 mV)" if "mV" in view.units else ""))
    marked = [ax for ax in axes[:, 0] if ax.get_legend_handles_labels()[0]]
    if peaks is not None and marked:  # the legend goes on the first lead with beats marked
        marked[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(title or f"{record.name}  {record.fs:g} Hz  {t[0]:.1f}-{t[-1]:.1f} s", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # keep 0.45 in for the title
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    return fig
