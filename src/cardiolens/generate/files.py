"""Continue a recording file with a generative model and write the result: a CSV and a figure.

One public entry point for ``cardiolens generate`` and the web app: :func:`generate_file` loads the
model (:func:`cardiolens.models.load_model`) and the recording (:func:`cardiolens.load_record`),
continues it with :func:`~cardiolens.generate.continue_signal` (which checks the input contract:
rate, modality, length, values) and writes with :func:`write_continuation`:

- ``<record>_generated.csv``: one row per sample, ``part`` (``context`` or ``generated``),
  ``sample`` (index in the recording; generated samples continue after its end), ``time_s``
  (``sample / fs`` at the recording's rate), ``token`` (the model's token for that sample, empty
  when the context was resampled, since samples and tokens are then at different rates) and
  ``value`` (in the recording's units: generated tokens are mapped back through the context's
  min-max scale). The context rows are the part of the recording the model saw, its last window.
- ``<record>_tokens.csv``, only when the context was resampled: the same columns at the model's
  rate, one row per token (``sample`` counts model-rate samples from the recording's start,
  ``value`` is the token's amplitude in the recording's units).
- ``<record>_generated.png``: the context in black and the continuation in red on an ECG-paper
  grid, a vertical line at the junction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiolens.atomic import output_folder
from cardiolens.errors import ModelInputError, RecordError
from cardiolens.generate.continuation import SignalContinuation, continue_signal
from cardiolens.generate.sampling import default_keep
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)

CONTEXT_COLOUR = "black"
GENERATED_COLOUR = "#d62728"
COLUMNS = ("part", "sample", "time_s", "token", "value")


@dataclass
class GeneratedFile:
    """What :func:`generate_file` / :func:`write_continuation` produced.

    Attributes:
        continuation: the :class:`~cardiolens.generate.SignalContinuation`.
        csv: the CSV written (columns ``part, sample, time_s, token, value``).
        png: the figure written.
        lead: name of the lead continued.
        units: units of ``value``.
        context_start: index in the recording of the first context sample written (the model saw
            the recording from there to its end).
        context_samples: context samples written (at the recording's rate).
        recording_samples: samples of the lead in the recording.
        summary: one line saying what was done (model, steps, rates, resampling, cropping, files).
        tokens_csv: the table of tokens at the model's rate, written when the context was resampled.
    """

    continuation: SignalContinuation
    csv: Path
    png: Path
    lead: str
    units: str
    context_start: int
    context_samples: int
    recording_samples: int
    summary: str
    tokens_csv: Path | None = None


def _lead_of(record: Record, lead: str | int | None) -> int:
    """Index of ``lead`` (a name, or a position given as digits) in ``record``; 0 for one lead."""
    if lead is None:
        return 0
    if isinstance(lead, str) and lead.strip().lstrip("-").isdigit():
        if lead.casefold() not in {name.casefold() for name in record.leads}:
            return record.lead_index(int(lead))
    return record.lead_index(lead)


def _model_label(model: torch.nn.Module, given: str | Path | None) -> str:
    name = getattr(getattr(model, "config", None), "name", type(model).__name__)
    if given is None or str(given) == name:
        return name
    return f"{given} ({name})"


def generate_file(
    model: str | Path | torch.nn.Module,
    path: str | Path,
    steps: int = 500,
    out: str | Path = "generated",
    *,
    fs: float | None = None,
    lead: str | int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    nan_policy: str = "raise",
    keep: int | None = None,
) -> GeneratedFile:
    """Continue one lead of a recording file and write the CSV and the figure into ``out``.

    Args:
        model: a shipped model name (``ecgpt-small``), a cardiolens checkpoint, a published
            HeartGPT ``.zip``/``.pth`` (converted on the fly), or a loaded GPT language model.
        path: the recording (any format :func:`cardiolens.load_record` reads, e.g. a HeartGPT
            context CSV, WFDB, CSV, NumPy).
        steps: samples to generate at the model's rate (500 at HeartGPT ECG's 100 Hz is 5 s).
        out: folder for ``<record>_generated.csv`` and ``<record>_generated.png`` (created).
        fs: sampling rate of the recording, for formats that do not carry one.
        lead: the lead to continue, by name or position (needed when the recording has several).
        temperature, top_k, greedy, seed: sampling, as in :func:`~cardiolens.generate.generate`.
        nan_policy: missing samples (NaN): ``"raise"`` or ``"interpolate"`` (as :func:`cardiolens.load_record`).
        keep: context tokens kept when generation runs past the model's window (default three
            quarters of it; the window size reproduces HeartGPT's sliding window exactly, at its cost);
            see :mod:`cardiolens.generate.sampling`. The summary says when it applied.

    Returns:
        A :class:`GeneratedFile` (paths, the continuation and a one-line summary).

    Raises:
        CheckpointError: an unknown model name, or a file that is no readable checkpoint.
        ModelInputError: a model that is not a language model (a fine-tuned classifier such as
            HeartGPT's AF model), bad sampling settings.
        RecordError: an unreadable recording, or a context that breaks the input contract
            (NaN/inf, constant, too short, a modality the model was not trained on).

    Example:
        >>> done = generate_file("ECGPT_560k_iters.zip", "example_context_ECG.csv", steps=500)  # doctest: +SKIP
        >>> print(done.summary)  # doctest: +SKIP
    """
    from cardiolens.io import load_record
    from cardiolens.models import load_model

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ModelInputError(f"steps must be a positive number of samples to generate, got {steps!r}")
    output_folder(out, create=False)  # before the model and the record are read
    given = None
    if isinstance(model, (str, Path)):
        given = model
        model = load_model(model)
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "head", None) != "lm":
        head = getattr(cfg, "head", None)
        what = f"a model with a {head} head" if head else "a model without a language-model head"
        raise ModelInputError(
            f"{given or _model_label(model, None)}: {what} (a fine-tuned predictor) cannot "
            "generate; use a pretrained language model (a shipped ecgpt-small/ppgpt-small, or HeartGPT's "
            "ECGPT_560k_iters / PPGPT_500k_iters)"
        )
    record = load_record(path, fs=fs, nan_policy=nan_policy)
    if lead is None and record.n_channels > 1:
        raise RecordError(
            f"the recording has {record.n_channels} leads ({', '.join(record.leads)}); choose the one to continue "
            "(--lead NAME on the command line, lead= in Python)",
            record.source or path,
        )
    index = _lead_of(record, lead)
    continuation = continue_signal(
        model,
        record,
        steps=steps,
        temperature=temperature,
        top_k=top_k,
        greedy=greedy,
        seed=seed,
        lead=index,
        keep=keep,
    )
    return write_continuation(
        record,
        continuation,
        out,
        lead=index,
        model_label=_model_label(model, given),
        greedy=greedy,
        seed=seed,
        temperature=temperature,
        top_k=top_k,
        note=window_note(model.config.block_size, continuation.context_tokens.size, continuation.tokens.size, keep),
    )


def window_note(block_size: int, context: int, steps: int, keep: int | None) -> str:
    """What generation past the model's window did, in words ("" when it stayed inside the window)."""
    if context + steps - 1 <= block_size:  # the last token is drawn, never fed: it needs no position
        return ""
    keep = default_keep(block_size) if keep is None else keep
    if keep == block_size:
        return (
            f"past the {block_size}-token window every token saw the last {block_size} (a sliding window, as "
            "HeartGPT's published generation)"
        )
    return (
        f"past the {block_size}-token window the cache was re-primed from the last {keep} tokens, so each token "
        f"saw {keep}-{block_size} tokens of context (keep={block_size}, --keep {block_size}: a full sliding "
        "window, as HeartGPT's published generation, at its cost)"
    )


def write_continuation(
    record: Record,
    continuation: SignalContinuation,
    out: str | Path = "generated",
    *,
    lead: str | int | None = None,
    model_label: str = "model",
    greedy: bool | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    note: str = "",
) -> GeneratedFile:
    """Write a one-context continuation of ``record`` as ``<record>_generated.csv`` and ``.png`` in ``out``.

    Args:
        record: the recording that was continued.
        continuation: what :func:`~cardiolens.generate.continue_signal` returned for it.
        out: folder to write into (created).
        lead: the lead that was continued (name or index; default the first).
        model_label: how the summary and the figure name the model.
        greedy, seed, temperature, top_k: how the continuation was drawn, for the summary and the
            figure's title (``None``: not said).
        note: a clause added to the summary (how generation past the window went: :func:`window_note`).

    Returns:
        A :class:`GeneratedFile`.

    Raises:
        ModelInputError: a continuation of several contexts (write each one separately).
    """
    import pandas as pd  # here, not at module import: generating does not need it

    if continuation.signal.ndim != 1:
        raise ModelInputError(
            f"write_continuation takes the continuation of one context, got {continuation.signal.shape[0]}"
        )
    index = _lead_of(record, lead)
    name, units = record.leads[index], record.units[index]
    fs, model_fs = continuation.fs, continuation.model_fs
    x = record.signal[index]
    n = x.size
    seen_tokens = continuation.context_tokens.size
    # the part of the recording the model saw, its last window: one sample per context token, or
    # as many samples as those tokens span at the recording's rate
    seen = min(n, math.ceil(seen_tokens * fs / model_fs)) if continuation.resampled else seen_tokens
    start = n - seen
    generated = continuation.signal
    m = generated.size

    samples = np.arange(start, n + m)
    tokens = pd.array([pd.NA] * (seen + m), dtype="Int64")
    if not continuation.resampled:
        tokens = pd.array(np.concatenate([continuation.context_tokens, continuation.tokens]), dtype="Int64")
    table = pd.DataFrame(
        {
            "part": ["context"] * seen + ["generated"] * m,
            "sample": samples,
            "time_s": _times(samples / fs),
            "token": tokens,
            "value": np.concatenate([x[start:], generated]).astype(np.float64),
        },
        columns=list(COLUMNS),
    )
    out = output_folder(out)
    csv = out / f"{record.name}_generated.csv"
    png = out / f"{record.name}_generated.png"
    table.to_csv(csv, index=False, float_format="%.7g")
    tokens_csv = None
    if continuation.resampled:  # the samples above are at the recording's rate: the tokens get their own table
        tokens_csv = out / f"{record.name}_tokens.csv"
        _token_table(continuation, n / fs).to_csv(tokens_csv, index=False, float_format="%.7g")
    how = _drawn(greedy, seed, temperature, top_k)
    title = f"{record.name} lead {name}: {m} samples generated by {model_label}{how}"
    _plot(
        samples / fs,
        table["value"].to_numpy(),
        context=seen,
        junction=(n - 0.5) / fs,
        units=units,
        lead=name,
        title=title,
        out=png,
    )

    steps = continuation.tokens.size
    if continuation.resampled:
        rate = f"context resampled from {fs:g} Hz to the model's {model_fs:g} Hz and the continuation back"
    else:
        rate = f"context at the model's rate, {model_fs:g} Hz, not resampled"
    if seen < n:
        crop = f"cropped to its last {seen} of {n} samples (the model's window of {seen_tokens} tokens)"
    else:
        crop = f"not cropped ({n} samples)"
    summary = (
        f"{model_label}: {steps} steps ({steps / model_fs:.2f} s at {model_fs:g} Hz){how} after lead {name} of "
        f"{record.name}; {rate}; context {crop}"
        + (f"; {note}" if note else "")
        + f" -> {csv}, {png}"
        + (f", {tokens_csv}" if tokens_csv else "")
    )
    return GeneratedFile(
        continuation=continuation,
        csv=csv,
        png=png,
        lead=name,
        units=units,
        context_start=start,
        context_samples=seen,
        recording_samples=n,
        summary=summary,
        tokens_csv=tokens_csv,
    )


def _token_table(continuation: SignalContinuation, end_s: float) -> Any:
    """One row per token at the model's rate, context then generated, as ``COLUMNS``."""
    import pandas as pd

    from cardiolens.signal.tokenize import detokenize

    tokens = np.concatenate([continuation.context_tokens, continuation.tokens])
    t_seen, m = continuation.context_tokens.size, continuation.tokens.size
    end = int(round(end_s * continuation.model_fs))  # the recording's end, in model-rate samples
    samples = np.arange(end - t_seen, end + m)
    return pd.DataFrame(
        {
            "part": ["context"] * t_seen + ["generated"] * m,
            "sample": samples,
            "time_s": _times(samples / continuation.model_fs),
            "token": tokens,
            "value": detokenize(tokens, continuation.scale, continuation.levels).astype(np.float64),
        },
        columns=list(COLUMNS),
    )


def _times(seconds: np.ndarray) -> np.ndarray:
    """Times written with 12 significant digits: the tables' ``%.7g`` (right for values) left a 10 ms
    grid above 10,000 s, so that consecutive samples of a long recording shared a time."""
    return np.char.mod("%.12g", np.asarray(seconds, dtype=np.float64)).astype(object)


def _drawn(greedy: bool | None, seed: int | None, temperature: float | None = None, top_k: int | None = None) -> str:
    if greedy is None:
        return ""
    if greedy:
        return ", greedy"
    how = [f"temperature {temperature:g}"] if temperature is not None else []
    how += [f"among the {top_k} most likely tokens"] if top_k is not None else []
    how += [f"seed {seed}"] if seed is not None else []
    return ", sampled" + (f" ({', '.join(how)})" if how else "")


def _plot(
    t: np.ndarray, y: np.ndarray, *, context: int, junction: float, units: str, lead: str, title: str, out: Path
) -> None:
    """Context (the first ``context`` samples) in black, the rest in red, on ECG paper; written to ``out``."""
    from matplotlib.ticker import FuncFormatter

    from cardiolens import plot as ecg_plot  # selects the file-only Agg backend before pyplot is used

    plt = ecg_plot.plt
    lo, hi = float(y.min()), float(y.max())
    in_mv = units == "mV"
    pad = max(0.1 * (hi - lo), 0.2 if in_mv else 1e-6)
    span = t[-1] - t[0] if len(t) > 1 else 1.0
    fig, ax = plt.subplots(figsize=(float(np.clip(span * 1.6, 8, 30)), 3.2))
    try:
        ecg_plot._paper_grid(ax, t[0], t[-1], lo - pad, hi + pad, in_mv)  # the package's ECG-paper grid
        ax.plot(
            t[:context],
            y[:context],
            color=CONTEXT_COLOUR,
            linewidth=0.8,
            label="context (the stretch the model saw, at the recording's rate)",
            zorder=3,
        )
        # the generated trace starts at the last context sample so that the line has no gap
        first = max(context - 1, 0)
        ax.plot(t[first:], y[first:], color=GENERATED_COLOUR, linewidth=0.9, label="generated", zorder=2)
        ax.axvline(junction, color="#1f77b4", linestyle="--", linewidth=1.0, label="end of the recording")
        ax.set_xlim(t[0], t[-1])
        ax.set_ylim(lo - pad, hi + pad)
        ax.tick_params(labelbottom=True, labelleft=True)
        # grid lines every 0.2 s, labels on whole seconds only
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}" if abs(v - round(v)) < 1e-6 else ""))
        ax.set_xlabel("time [s]" + ("  (grid: 0.2 s x 0.5 mV)" if in_mv else "  (grid: 0.2 s)"))
        ax.set_ylabel(f"{lead} [{units}]")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")  # "tight" keeps the legend below the axes
    finally:
        plt.close(fig)
