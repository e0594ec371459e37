"""Continue a heart signal with a generative model, in the signal's own units.

The input contract is checked before anything runs: sampling rate (the model's own, HeartGPT ECG
100 Hz and PPG 50 Hz; other rates are resampled and the fact is logged, or refused with
``resample=False``), modality (a PPG context for an ECG model is refused), length (at least
``min_context`` samples at the model's rate; longer than the window: the last window is used, or
refused with ``crop=False``), and values (no NaN/inf, not constant). The context is tokenised as
HeartGPT does (min-max of the window to ``0 .. levels - 1``, rounded), continued with
:func:`cardiolens.generate.generate` and mapped back through the same min-max scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cardiolens.errors import ModelInputError, RecordError
from cardiolens.generate.sampling import generate, generate_stream
from cardiolens.signal.leads import ECG_LEAD_NAMES
from cardiolens.signal.leads import modality as lead_modality  # "modality" names arguments here
from cardiolens.signal.record import Record
from cardiolens.signal.resample import resample as resample_signal
from cardiolens.signal.tokenize import detokenize, tokenize

log = logging.getLogger(__name__)


@dataclass
class SignalContinuation:
    """A generated continuation of one or more contexts.

    Attributes:
        signal: float32 continuation in the context's units, (n,) for one context or (B, n), at ``fs``.
        fs: sampling rate of ``signal`` (the caller's rate).
        tokens: int64 generated tokens at the model's rate, (steps,) or (B, steps).
        context_tokens: int64 tokens of the context the model saw, (T,) or (B, T).
        model_fs: the model's sampling rate (the rate of the tokens).
        resampled: whether the context was resampled to ``model_fs`` (and the output back to ``fs``).
        scale: the tokeniser's (min, max) of the context (arrays of one value per context for a
            batch): token ``k`` stands for ``min + k / (levels - 1) * (max - min)``.
        levels: the tokeniser's amplitude levels (HeartGPT: 101).
    """

    signal: np.ndarray
    fs: float
    tokens: np.ndarray
    context_tokens: np.ndarray
    model_fs: float
    resampled: bool
    scale: tuple[Any, Any]
    levels: int = 101


def _modality_of_lead(name: str, unit: str | None = None) -> str | None:
    """``"ECG"``, ``"PPG"`` or ``"other"`` when the lead's name says so; ``None`` for a name that says
    nothing (``ch0``, ``signal``): the model's modality is then taken on trust."""
    kind = lead_modality(name, unit)
    if kind != "ECG":
        return kind
    return "ECG" if name.strip().upper() in ECG_LEAD_NAMES else None


def _article(initialism: str) -> str:
    """``a`` or ``an`` before an initialism read letter by letter: an ECG, a PPG."""
    return "an" if initialism[:1].upper() in "AEFHILMNORSX" else "a"


def continue_signal(
    model: torch.nn.Module,
    signal: np.ndarray | Record,
    fs: float | None = None,
    steps: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    *,
    lead: str | int | None = None,
    modality: str | None = None,
    resample: bool = True,
    crop: bool = True,
    min_context: int = 100,
    keep: int | None = None,
) -> SignalContinuation:
    """Generate a continuation of a signal, returned in the signal's units.

    Args:
        model: a GPT language model whose config gives ``fs``, ``modality`` and the tokeniser's
            ``levels`` (HeartGPT: ECG lead I at 100 Hz, finger PPG at 50 Hz, 101 levels).
        signal: the context: a 1-D array, a (B, n) array of B contexts continued together, or a
            :class:`~cardiolens.signal.Record` (one lead, or the one named by ``lead``).
        fs: sampling rate of ``signal`` in Hz (taken from the Record when one is given).
        steps: new samples to generate at the model's rate (500 at 100 Hz is 5 s).
        temperature, top_k, greedy, seed: sampling, as in :func:`~cardiolens.generate.generate`.
        lead: which lead of a multi-lead Record.
        modality: ``"ECG"`` or ``"PPG"``, checked against the model's; inferred from a Record's
            lead name when possible.
        resample: resample a context at another rate to the model's rate (logged); ``False``
            refuses it instead.
        crop: use the last window of a context longer than the model's window (logged);
            ``False`` refuses it instead.
        min_context: fewest context samples, at the model's rate, to accept.
        keep: window re-prime policy of the key-value cache (see :mod:`cardiolens.generate.sampling`).

    Returns:
        A :class:`SignalContinuation`; ``.signal`` is the continuation at ``fs``.

    Raises:
        RecordError: NaN/inf, constant, empty, too short or too long a context, a wrong or missing
            sampling rate, a modality the model was not trained on.
        ModelInputError: a model without a language-model head, bad sampling settings.

    Example:
        >>> out = continue_signal(model, ecg_100hz, fs=100, steps=300, top_k=10, seed=0)  # doctest: +SKIP
        >>> out.signal.shape  # doctest: +SKIP
        (300,)
    """
    ctx = _prepare_context(
        model, signal, fs, lead=lead, modality=modality, resample=resample, crop=crop, min_context=min_context
    )
    out = generate(
        model,
        torch.from_numpy(ctx.tokens),
        steps,
        temperature=temperature,
        top_k=top_k,
        greedy=greedy,
        seed=seed,
        keep=keep,
        min_context=1,
    )
    return _continuation(ctx, out[:, ctx.tokens.shape[1] :].cpu().numpy())


@dataclass
class ContinuationChunk:
    """Part of a continuation being streamed.

    Attributes:
        tokens: int64 new tokens of this chunk, (k,).
        values: float32 the same samples in the context's units, at the model's rate ``model_fs``
            (not resampled: the final :class:`SignalContinuation` is resampled as a whole).
        start: index of the chunk's first sample among the new samples (at the model's rate).
    """

    tokens: np.ndarray
    values: np.ndarray
    start: int


class ContinuationStream:
    """What :func:`continue_signal_stream` returns: iterate it for :class:`ContinuationChunk` s.

    Attributes:
        context_tokens: int64 tokens of the context the model saw, (T,).
        fs: the caller's sampling rate; ``model_fs``: the model's (the rate of tokens and chunks).
        resampled: whether the context was resampled to ``model_fs``.
        scale: the tokeniser's (min, max) of the context.
        steps: new samples that will be generated at ``model_fs``.
        result: the whole :class:`SignalContinuation` once the stream is exhausted (``None`` before),
            equal to what :func:`continue_signal` returns for the same arguments and seed.
    """

    def __init__(self, ctx: _Context, chunks: Iterator[torch.Tensor], steps: int):
        self._ctx = ctx
        self._chunks = chunks
        self.context_tokens = ctx.tokens[0]
        self.fs = ctx.fs
        self.model_fs = ctx.model_fs
        self.resampled = ctx.resampled
        self.scale = (ctx.scale[0][0], ctx.scale[1][0])
        self.steps = steps
        self.result: SignalContinuation | None = None

    def __iter__(self) -> Iterator[ContinuationChunk]:
        parts: list[np.ndarray] = []
        done = 0
        for chunk in self._chunks:
            new = chunk[0].cpu().numpy()  # (1, k) for the one context -> (k,)
            parts.append(new)
            values = _values(self._ctx, new[None, :])[0].astype(np.float32)
            yield ContinuationChunk(tokens=np.minimum(new, self._ctx.levels - 1), values=values, start=done)
            done += new.size
        tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        self.result = _continuation(self._ctx, tokens[None, :])

    def close(self) -> None:
        """Stop generating (restores the model's mode); safe to call at any time."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def continue_signal_stream(
    model: torch.nn.Module,
    signal: np.ndarray | Record,
    fs: float | None = None,
    steps: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    *,
    chunk: int = 25,
    lead: str | int | None = None,
    modality: str | None = None,
    resample: bool = True,
    crop: bool = True,
    min_context: int = 100,
    keep: int | None = None,
) -> ContinuationStream:
    """:func:`continue_signal` for one context, handing out the continuation in chunks as it is generated.

    Everything is checked when this is called (a bad context or setting raises here, before any
    chunk); generation happens while the result is iterated. Joined, the chunks' tokens are those
    :func:`continue_signal` gives for the same arguments and seed, and ``stream.result`` is then the
    same :class:`SignalContinuation`. The web app streams a continuation to the page with it.

    Args:
        model, signal, fs, steps, temperature, top_k, greedy, seed, lead, modality, resample, crop,
            min_context, keep: as in :func:`continue_signal` (``signal``: one context, 1-D or a Record).
        chunk: new samples per chunk, at the model's rate.

    Returns:
        A :class:`ContinuationStream`.

    Raises:
        RecordError, ModelInputError: as :func:`continue_signal`, and for a batch of contexts.

    Example:
        >>> stream = continue_signal_stream(model, ecg_100hz, fs=100, steps=300, seed=0)  # doctest: +SKIP
        >>> for part in stream:  # doctest: +SKIP
        ...     print(part.start, part.values[:3])
        >>> stream.result.signal.shape  # doctest: +SKIP
        (300,)
    """
    ctx = _prepare_context(
        model, signal, fs, lead=lead, modality=modality, resample=resample, crop=crop, min_context=min_context
    )
    if not ctx.single:
        raise ModelInputError("continue_signal_stream continues one context; use continue_signal for a batch")
    chunks = generate_stream(
        model,
        torch.from_numpy(ctx.tokens),
        steps,
        temperature=temperature,
        top_k=top_k,
        greedy=greedy,
        seed=seed,
        chunk=chunk,
        keep=keep,
        min_context=1,
    )
    return ContinuationStream(ctx, chunks, steps)


@dataclass
class _Context:
    """A context checked against the input contract and tokenised, ready to be continued."""

    tokens: np.ndarray  # (B, T) int64
    scale: tuple[Any, Any]
    fs: float
    model_fs: float
    resampled: bool
    single: bool
    levels: int
    source: str


def _prepare_context(
    model: torch.nn.Module,
    signal: np.ndarray | Record,
    fs: float | None,
    *,
    lead: str | int | None,
    modality: str | None,
    resample: bool,
    crop: bool,
    min_context: int,
) -> _Context:
    """Check the context against the contract (see :func:`continue_signal`) and tokenise it."""
    cfg = model.config
    if cfg.head != "lm":
        raise ModelInputError(f"{cfg.name!r} has a {cfg.head} head; continuing a signal needs a language model")
    source = "context signal"
    if isinstance(signal, Record):
        source = str(signal.source or signal.name)
        if fs is not None and float(fs) != signal.fs:
            raise RecordError(f"fs={fs} given, but the record says {signal.fs:g} Hz", source)
        fs = signal.fs
        if lead is None and signal.n_channels > 1:
            raise RecordError(
                f"the record has {signal.n_channels} leads ({', '.join(signal.leads)}); choose one with lead=", source
            )
        index = signal.lead_index(0 if lead is None else lead)
        found = _modality_of_lead(signal.leads[index], signal.units[index])
        if found == "other":
            raise RecordError(
                f"lead {signal.leads[index]!r} is neither ECG nor PPG; {cfg.name!r} continues "
                f"{cfg.modality or 'ECG or PPG'}",
                source,
            )
        if modality is None:
            modality = found
        elif found is not None and found != modality.upper():
            raise RecordError(f"lead {signal.leads[index]!r} looks like {found}, not {modality}", source)
        x = signal.signal[index].astype(np.float64)
    else:
        try:
            x = np.asarray(signal, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"signal must be a numeric array ({exc})", source) from None
    if x.ndim == 1:
        x = x[None, :]
        single = True
    elif x.ndim == 2:
        single = False
    else:
        raise RecordError(f"signal must be 1-D (one context) or 2-D (contexts, samples), got shape {x.shape}", source)
    if x.size == 0:
        raise RecordError(f"signal is empty (shape {x.shape})", source)
    bad = ~np.isfinite(x)
    if bad.any():
        first = np.argwhere(bad)[0]
        raise RecordError(
            f"signal holds {int(bad.sum())} NaN/inf values (first at sample {int(first[-1])}); "
            "interpolate or drop them before generating",
            source,
        )

    if modality is not None and cfg.modality is not None and modality.upper() != cfg.modality:
        raise RecordError(
            f"{modality.upper()} context given to {cfg.name!r}, a model of {cfg.modality}; "
            f"use {_article(modality.upper())} {modality.upper()} model",
            source,
        )
    if fs is None:
        raise RecordError("sampling rate fs is required (the model expects a fixed rate)", source)
    try:
        fs = float(fs)
    except (TypeError, ValueError):
        raise RecordError(f"fs must be a number of Hz, got {fs!r}", source) from None
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"fs must be a positive number of Hz, got {fs!r}", source)
    model_fs = float(cfg.fs) if cfg.fs is not None else fs
    resampled = not np.isclose(fs, model_fs)
    if resampled:
        if not resample:
            raise RecordError(
                f"{cfg.name!r} expects {model_fs:g} Hz, the signal is at {fs:g} Hz; resample it or pass resample=True",
                source,
            )
        log.warning("%s: resampling the context from %g Hz to the model's %g Hz", source, fs, model_fs)
        x = resample_signal(x, fs, model_fs)

    n = x.shape[1]
    if n < min_context:
        raise RecordError(
            f"context of {n} samples at {model_fs:g} Hz ({n / model_fs:.2f} s) is shorter than the minimum of "
            f"{min_context} ({min_context / model_fs:.2f} s)",
            source,
        )
    if n > cfg.block_size:
        if not crop:
            raise RecordError(
                f"context of {n} samples at {model_fs:g} Hz is longer than the model's window of {cfg.block_size} "
                "(pass crop=True to use the last window)",
                source,
            )
        log.info("%s: using the last %d of %d context samples (the model's window)", source, cfg.block_size, n)
        x = x[:, -cfg.block_size :]
    span = x.max(axis=1) - x.min(axis=1)
    if np.any(span <= 0):
        rows = np.flatnonzero(span <= 0).tolist()
        which = "" if single else f" (contexts {rows})"
        raise RecordError(f"context is constant{which}: min = max, nothing to tokenise (flat or missing lead?)", source)

    levels = cfg.levels
    context, scale = tokenize(x, vocab_size=levels)  # (B, T) int64; per-context (min, max)
    return _Context(context, scale, fs, model_fs, resampled, single, levels, source)


def _values(ctx: _Context, new: np.ndarray) -> np.ndarray:
    """New token ids (B, k) to values at the model's rate, in the context's units (B, k)."""
    # a vocabulary larger than the tokeniser's levels (HeartGPT PPG: 102 vs 101) has ids with no amplitude
    over = new >= ctx.levels
    if over.any():
        log.warning(
            "%s: %d generated ids above the top level %d clipped to it", ctx.source, int(over.sum()), ctx.levels - 1
        )
        new = np.minimum(new, ctx.levels - 1)
    return detokenize(new, ctx.scale, vocab_size=ctx.levels)  # (B, k)


def _continuation(ctx: _Context, new: np.ndarray) -> SignalContinuation:
    """The :class:`SignalContinuation` of all new token ids (B, steps)."""
    single, fs, model_fs, resampled, scale, context = (
        ctx.single,
        ctx.fs,
        ctx.model_fs,
        ctx.resampled,
        ctx.scale,
        ctx.tokens,
    )
    values = _values(ctx, new)
    new = np.minimum(new, ctx.levels - 1)
    if resampled and values.shape[1] > 0:  # steps=0: nothing to resample, an empty continuation
        values = resample_signal(values, model_fs, fs)
    values = values.astype(np.float32)
    return SignalContinuation(
        signal=values[0] if single else values,
        fs=fs,
        tokens=new[0] if single else new,
        context_tokens=context[0] if single else context,
        model_fs=model_fs,
        resampled=resampled,
        scale=(scale[0][0], scale[1][0]) if single else scale,
        levels=ctx.levels,
    )
