"""What the web app computes, as plain functions of a Record (no FastAPI here).

Every function calls the same public cardiolens functions as the command line:
:func:`cardiolens.analysis.describe_record` (``cardiolens info``), :func:`cardiolens.analysis.find_beats`
(``cardiolens peaks``), :func:`cardiolens.generate.continue_signal_stream` and
:func:`cardiolens.generate.write_continuation` (``cardiolens generate``, which continues with the same
checks and writes the same CSV), ``cardiolens.tasks.predict.predict_record`` (``cardiolens predict``)
and the model API (:func:`cardiolens.models.load_model`, ``model(tokens, return_attention=True)``, and
:func:`cardiolens.tasks.tree_model.load_tree_model` for the shipped feature-tree models).
They return JSON-ready dictionaries; the server only moves them over HTTP and runs them off its event
loop. Only shipped models are offered: :func:`cardiolens.models.load_model` also opens paths, and a
web client must never name one.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.analysis import default_lead, describe_record, find_beats
from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.signal.leads import modality
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)

RHYTHM_MODEL = "rhythm-ecg"
RHYTHM_TREES_MODEL = "rhythm-ecg-trees"  # the same CinC 2017 task, boosted trees on 102 record features
RHYTHM_MEAN_MODEL = "rhythm-ecg-mean"  # the mean of the two: the best rhythm result of the benchmarks
BEAT_MODEL = "beats-ecg"
BEAT_CLASS_MODEL = "aami-ecg-trees"  # AAMI class of every detected beat, boosted trees on beat features
RHYTHM_NAMES = {"N": "normal sinus rhythm", "A": "atrial fibrillation", "O": "other rhythm", "~": "too noisy"}
BEAT_CLASS_NAMES = {"N": "normal", "S": "supraventricular ectopic", "V": "ventricular ectopic", "F": "fusion"}
# points per lead sent to the page for one view; longer spans are reduced to per-bucket min and max
DEFAULT_MAX_POINTS = 6000
# side of the aggregate attention map sent to the page (block means of the T x T matrix)
MAP_SIDE = 180


class UnknownModel(CardiolensError, LookupError):
    """A model name that is not one of the shipped models."""


def _rounded(x: np.ndarray, digits: int = 5) -> list[float]:
    """Values as a JSON list with about ``digits`` significant digits (short numbers, small payloads)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return []
    top = float(np.max(np.abs(x[np.isfinite(x)]))) if np.isfinite(x).any() else 0.0
    decimals = digits - 1 - (math.floor(math.log10(top)) if top > 0 else 0)
    return np.round(x, max(decimals, 0)).tolist()


# -- models -----------------------------------------------------------------------------------------
def shipped_tree_models() -> list[str]:
    """The shipped feature-tree models the app offers (:func:`cardiolens.tasks.tree_model.list_tree_models`)."""
    from cardiolens.tasks.tree_model import list_tree_models

    return list_tree_models()


def is_tree(model: Any) -> bool:
    """Whether a loaded model is boosted trees on signal features (no tensors, no attention, no gradients)."""
    from cardiolens.tasks.tree_model import FeatureTreeModel

    return isinstance(model, FeatureTreeModel)


class ModelPool:
    """The shipped models, and the checkpoints the server was started with, each loaded once on first
    use and shared by all requests (inference only).

    Args:
        extra: name -> checkpoint folder of models the operator adds (``cardiolens serve --models``,
            e.g. a model from ``cardiolens finetune``); clients only ever name models, never paths.
    """

    def __init__(self, extra: dict[str, str | Path] | None = None) -> None:
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._extra = {name: Path(path) for name, path in (extra or {}).items()}

    def names(self) -> list[str]:
        from cardiolens.models import list_pretrained

        return [*list_pretrained(), *shipped_tree_models(), *self._extra]

    def get(self, name: str) -> Any:
        """The loaded model called ``name``.

        Raises:
            UnknownModel: not a model of this server (paths are never accepted here).
        """
        if name not in self.names():
            raise UnknownModel(f"unknown model {name!r}; the server offers {', '.join(self.names()) or 'none'}")
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name)
            return self._models[name]

    def mean(self, name: str) -> Any:
        """The shipped mean of models called ``name``, built from this pool's members (each loaded once).

        Not among :meth:`names`: a mean predicts, but has no weights to explain or to generate with.

        Raises:
            UnknownModel: no such shipped mean, or one of its members is not offered here.
        """
        from cardiolens.errors import CheckpointError
        from cardiolens.tasks.model_mean import find_model_mean, load_model_mean

        folder = find_model_mean(name) if "/" not in name else None
        if folder is None:
            raise UnknownModel(f"the model {name} is not installed")
        with self._lock:
            known = self._models.get(name)
        if known is not None and all(m in self.names() for m in known.config.members):
            return known
        try:
            return self._models.setdefault(name, load_model_mean(folder, self.get))
        except CheckpointError as exc:  # a member this server does not offer
            raise UnknownModel(f"the model {name} is not installed ({exc})") from None

    def _load(self, name: str) -> Any:
        from cardiolens.models import load_model
        from cardiolens.tasks.tree_model import find_tree_model, load_tree_model

        if name in self._extra:
            return load_model(self._extra[name]).eval()
        trees = find_tree_model(name)  # load_model refuses these on purpose: they are not torch checkpoints
        return load_tree_model(trees) if trees is not None else load_model(name).eval()

    def describe(self, name: str) -> dict[str, Any]:
        """Name, kind (``generative`` or ``predictor``), modality, rate and window of a shipped model (a tree
        model is a predictor with no window: it reads the whole record)."""
        cfg = getattr(self.get(name), "config", None)
        head = getattr(cfg, "head", None)
        fs = getattr(cfg, "fs", None)
        out = {
            "name": name,
            "kind": "generative" if head == "lm" else "predictor",
            "modality": getattr(cfg, "modality", None),
            "fs": None if fs is None else float(fs),
            "window": getattr(cfg, "block_size", None) or getattr(cfg, "window", None),
            "task": getattr(cfg, "task", None),
            "classes": list(getattr(cfg, "classes", []) or []),
            "n_layer": getattr(cfg, "n_layer", None),
            "n_head": getattr(cfg, "n_head", None),
        }
        if out["modality"] is None and getattr(cfg, "leads", None):
            out["modality"] = modality(str(cfg.leads[0]))
        return out


# -- the record -------------------------------------------------------------------------------------
def record_summary(record: Record) -> dict[str, Any]:
    """:func:`describe_record` (as ``cardiolens info --as_json``) plus each lead's modality."""
    info = describe_record(record)
    info.pop("source", None)  # a server path means nothing to the client
    info["modalities"] = [modality(lead, unit) for lead, unit in zip(record.leads, record.units, strict=True)]
    info["default_lead"] = default_lead(record)
    return info


def _envelope(x: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bucket of ``bucket`` samples its min and max, in time order: peaks survive the reduction.

    By hand: a display reduction (not a filter), which no library offers in this form.
    """
    n = x.size // bucket * bucket
    blocks = x[:n].reshape(-1, bucket)  # (buckets, bucket)
    lo, hi = blocks.argmin(axis=1), blocks.argmax(axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    rows = np.arange(blocks.shape[0])
    index = np.stack([rows * bucket + first, rows * bucket + second], axis=1).reshape(-1)  # (2 * buckets,)
    return index, x[index]


def signal_view(
    record: Record, start: float = 0.0, duration: float | None = None, max_points: int = DEFAULT_MAX_POINTS
) -> dict[str, Any]:
    """Samples of every lead from ``start`` for ``duration`` seconds, reduced to ``max_points`` per lead.

    Longer spans keep each bucket's minimum and maximum (so R peaks are never dropped) and say so.
    """
    fs = record.fs
    n = record.n_samples
    if start >= record.duration:
        raise RecordError(f"start {start:g} s is past the end of the record ({record.duration:.2f} s)", record.name)
    i0 = int(np.clip(round(start * fs), 0, max(n - 1, 0)))
    stop = record.duration if duration is None else min(start + duration, record.duration)
    i1 = int(np.clip(round(stop * fs), i0 + 1, n))
    span = i1 - i0
    bucket = max(1, math.ceil(span / max(max_points // 2, 1))) if span > max_points else 1
    leads = []
    index = np.arange(i0, i1)
    for name, unit, x in zip(record.leads, record.units, record.signal, strict=True):
        part = x[i0:i1]
        if bucket > 1:
            local, values = _envelope(part, bucket)
            index = i0 + local
        else:
            values = part
        leads.append({"name": name, "units": unit, "modality": modality(name, unit), "values": _rounded(values)})
    return {
        "fs": fs,
        "start": i0 / fs,
        "stop": i1 / fs,
        "duration": record.duration,
        "reduced": bucket > 1,
        "note": (
            f"{span} samples per lead shown as the minimum and maximum of every {bucket} (zoom in for every sample)"
            if bucket > 1
            else ""
        ),
        "t": _rounded(index / fs, 7),
        "leads": leads,
    }


# -- analysis ---------------------------------------------------------------------------------------
def _predictor(pool: ModelPool, name: str, record: Record, lead: str | None) -> tuple[dict[str, Any], Any]:
    """Run a shipped fine-tuned model through ``cardiolens.tasks.predict.predict_record``, or say why not.

    The model reads ``lead`` or refuses it, as ``cardiolens predict --lead`` does: an ECG model asked
    for a PPG lead refuses, naming the record's ECG leads, rather than reading another lead than the
    one the page shows.
    """
    try:
        model = pool.get(name) if name in pool.names() else pool.mean(name)
    except UnknownModel:
        return {"model": name, "available": False, "message": f"the model {name} is not installed"}, None
    try:
        predict = importlib.import_module("cardiolens.tasks.predict")
    except ImportError as exc:
        return {"model": name, "available": False, "message": f"prediction is unavailable ({exc})"}, None
    try:
        pred = predict.predict_record(model, record, lead=lead)
    except CardiolensError as exc:
        return {
            "model": name,
            "available": True,
            "ok": False,
            "message": str(exc) + _other_leads(model, record, lead),
        }, None
    except Exception as exc:  # noqa: BLE001  one model failing must not fail the whole analysis
        log.exception("%s failed on %s", name, record.name)
        return {"model": name, "available": True, "ok": False, "message": f"{name} failed ({type(exc).__name__})"}, None
    out = {
        "model": name,
        "available": True,
        "ok": True,
        "task": getattr(pred, "task", None),
        "classes": list(getattr(pred, "classes", []) or []),
        "probabilities": {str(k): float(v) for k, v in (getattr(pred, "probabilities", None) or {}).items()},
        "labels": [str(x) for x in (getattr(pred, "labels", None) or [])],
        "preprocessing": [str(x) for x in (getattr(pred, "preprocessing", None) or [])],
    }
    return out, pred


def _other_leads(model: Any, record: Record, lead: str | None) -> str:
    """When ``lead`` is of another modality than the model reads, the record's leads it can read, in words."""
    cfg = getattr(model, "config", None)
    members = getattr(model, "members", None)
    if members:  # a mean of models reads what its members read
        cfg = getattr(members[0], "config", None)
    leads = list(getattr(cfg, "leads", None) or [])
    if not lead or not leads:
        return ""
    wanted = modality(str(leads[0]))
    if modality(lead) == wanted:
        return ""
    usable = [name for name in record.leads if modality(name) == wanted]
    if not usable:
        return f"; the record has no {wanted} lead"
    return f"; choose one of the record's {wanted} leads: {', '.join(usable)}"


def _rhythm(pool: ModelPool, name: str, record: Record, lead: str | None) -> dict[str, Any]:
    """One rhythm model's output (or why there is none), with each class's name in words."""
    rhythm, pred = _predictor(pool, name, record, lead)
    if rhythm.get("ok"):
        rhythm["names"] = {c: RHYTHM_NAMES.get(c, c) for c in rhythm["classes"]}
        if "members" in pred.extra:  # a mean of models: the page names them instead of repeating their steps
            rhythm["members"] = list(pred.extra["members"])
    return rhythm


def _beat_classes(pool: ModelPool, record: Record, lead: str) -> dict[str, Any]:
    """The AAMI class of every classified beat of ``lead`` (``aami-ecg-trees``), or why there is none.

    Per beat only its time, value, class and confidence: the page draws those, and the whole
    probability matrix would multiply the payload for nothing it shows.
    """
    out, pred = _predictor(pool, BEAT_CLASS_MODEL, record, lead)
    if pred is None:
        return out
    samples = np.asarray(pred.beats, dtype=np.int64).reshape(-1)
    x = record.signal[record.lead_index(lead)]
    out["names"] = {c: BEAT_CLASS_NAMES.get(c, c) for c in out["classes"]}
    out["beats"] = {
        "times": _rounded(samples / record.fs, 7),
        "values": _rounded(x[np.clip(samples, 0, record.n_samples - 1)]),
        "classes": [str(c) for c in pred.extra["beat_labels"]],
        "confidence": np.round(np.asarray(pred.confidence, dtype=np.float64), 3).tolist(),
    }
    out["counts"] = {str(c): int(n) for c, n in pred.extra["beats_per_class"].items()}
    return out


def analyse(record: Record, pool: ModelPool, lead: str | None = None) -> dict[str, Any]:
    """Beats, RR intervals and heart rate of one lead, and the shipped rhythm and beat models' outputs.

    Three rhythm models answer: ``rhythm`` is the CNN ``rhythm-ecg``, ``rhythm_trees`` the boosted trees
    ``rhythm-ecg-trees`` (the same classes, from named record features), ``rhythm_mean`` the mean of
    their probabilities (``rhythm-ecg-mean``, the best of the benchmarks), each in the same form.

    Beats come from :func:`cardiolens.analysis.find_beats` (as ``cardiolens peaks``); when the shipped
    beat model runs, its beats and their confidence are returned too. A model that is not installed
    or refuses the record is reported with its message, never as an error of the whole analysis.
    ``beat_classes`` is the AAMI class (N, S, V, F) of each beat of the lead from ``aami-ecg-trees``.
    """
    lead = lead or default_lead(record)
    record.lead_index(lead)  # a RecordError naming the leads when there is no such lead
    beats = find_beats(record, lead)
    times = beats.times
    rr = beats.rr
    with np.errstate(divide="ignore"):
        bpm = np.where(rr > 0, 60.0 / np.maximum(rr, 1e-9), np.nan)
    x = record.signal[record.lead_index(lead)]
    result: dict[str, Any] = {
        "lead": lead,
        "modality": beats.modality,
        "beats": {
            "method": beats.method,
            "samples": beats.samples.tolist(),
            "times": _rounded(times, 7),
            "values": _rounded(x[beats.samples]) if beats.samples.size else [],
            "count": int(beats.samples.size),
        },
        "rr": {"t": _rounded(times[1:], 7), "seconds": _rounded(rr)},
        "heart_rate": {
            "t": _rounded(times[1:], 7),
            "bpm": _rounded(bpm),
            "median_bpm": None if math.isnan(beats.heart_rate) else round(beats.heart_rate, 1),
        },
    }
    # the CNN and the feature trees side by side, as `make demo` prints them
    result["rhythm"] = _rhythm(pool, RHYTHM_MODEL, record, lead)
    result["rhythm_trees"] = _rhythm(pool, RHYTHM_TREES_MODEL, record, lead)
    result["rhythm_mean"] = _rhythm(pool, RHYTHM_MEAN_MODEL, record, lead)
    beat_model, pred = _predictor(pool, BEAT_MODEL, record, lead)
    if pred is not None:
        found = getattr(pred, "beats", None)
        samples = np.zeros(0, dtype=np.int64) if found is None else np.asarray(found, dtype=np.int64).reshape(-1)
        sure = getattr(pred, "confidence", None)
        confidence = np.full(samples.size, np.nan) if sure is None else np.asarray(sure, dtype=np.float64).reshape(-1)
        if confidence.size != samples.size:
            confidence = np.full(samples.size, np.nan)
        inside = (samples >= 0) & (samples < record.n_samples)
        samples, confidence = samples[inside], confidence[inside]
        beat_model["beats"] = {
            "samples": samples.tolist(),
            "times": _rounded(samples / record.fs, 7),
            "values": _rounded(x[samples]) if samples.size else [],
            "confidence": _rounded(confidence[: samples.size], 3) if confidence.size else [],
        }
    result["beat_model"] = beat_model
    result["beat_classes"] = _beat_classes(pool, record, lead)
    return result


# -- attention and the other explanations (cardiolens.explain) --------------------------------------
@dataclass
class AttentionMaps:
    """Every layer's attention and hidden states over one context window of one lead, kept for the sliders."""

    model: str
    lead: str
    start: float  # seconds in the record of the first token
    fs: float  # the model's rate (one token per sample)
    tokens: np.ndarray  # (T,)
    values: np.ndarray  # (T,) the window in the record's units, at the model's rate
    weights: np.ndarray  # (L, H, T, T) float16
    states: np.ndarray  # (L + 1, T, C) float32 hidden states: the embeddings, then each block's output
    notes: list[str]
    distance: np.ndarray | None = None  # (L, H) mean attention distance in seconds, see _distance
    _means: dict[tuple, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.distance = self._distance()
        self._means = {}

    def _distance(self) -> np.ndarray:
        """Mean attention distance in seconds per layer and head (L, H): how far back each head looks."""
        L, H, T, _ = self.weights.shape
        lag = (np.arange(T)[:, None] - np.arange(T)[None, :]).clip(min=0).astype(np.float32)  # (T, T) query - key
        out = np.empty((L, H), dtype=np.float64)
        for layer in range(L):  # one layer at a time: a float32 copy of all layers is tens of MB
            out[layer] = (self.weights[layer].astype(np.float32) * lag).sum(axis=-1).mean(axis=-1)
        return out / self.fs

    def mean(self, layer: int | None, head: int | None) -> np.ndarray:
        """The (T, T) attention of one layer/head, or the mean over all layers (None) and/or heads (None)."""
        key = (layer, head)
        if key not in self._means:
            w = self.weights if layer is None else self.weights[layer : layer + 1]
            w = w if head is None else w[:, head : head + 1]
            total = np.zeros(w.shape[-2:], dtype=np.float32)
            for block in w.reshape(-1, *w.shape[-2:]):
                total += block
            self._means[key] = total / (w.shape[0] * w.shape[1])
        return self._means[key]


class AttentionCache:
    """The last few attention computations, so that moving a slider does not rerun the model."""

    def __init__(self, size: int = 3):
        self.size = size
        self._items: OrderedDict[tuple, AttentionMaps] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> AttentionMaps | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple, item: AttentionMaps) -> None:
        with self._lock:
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _refuse_trees(model: Any, model_name: str, missing: str) -> None:
    """A tree model has no signal to attribute or attend over: say so, and what explains it instead."""
    if is_tree(model):
        raise ModelInputError(
            f"{model_name} is boosted trees on signal features: it has no {missing}; its explanation is the "
            f"feature effects of the explanation report (explain-report?model={model_name}, methods=features), "
            "or choose a GPT (ecgpt-small, ppgpt-small)"
        )


def _gpt(pool: ModelPool, model_name: str) -> Any:
    model = pool.get(model_name)
    _refuse_trees(model, model_name, "per-sample attributions")
    if getattr(getattr(model, "config", None), "head", None) != "lm":
        raise ModelInputError(f"{model_name} is not a GPT language model; choose ecgpt-small or ppgpt-small")
    return model


def _attention_model(pool: ModelPool, model_name: str) -> Any:
    """A shipped model whose attention can be drawn: a pretrained GPT, or a task model fine-tuned from one."""
    from cardiolens.explain import as_explainable

    model = pool.get(model_name)
    _refuse_trees(model, model_name, "attention")
    if getattr(model.config, "head", None) != "lm" and not as_explainable(model).has_attention:
        raise ModelInputError(f"{model_name} has no attention to draw; choose a GPT (ecgpt-small, ppgpt-small)")
    return model


def tuned_gpts(pool: ModelPool) -> dict[str, str]:
    """Shipped models fine-tuned from a shipped GPT (with attention), each with the name of that GPT."""
    from cardiolens.explain import as_explainable

    out = {}
    for name in pool.names():
        model = pool.get(name)
        parent = getattr(model.config, "backbone_name", None)
        tuned = getattr(model.config, "head", None) != "lm"
        if parent in pool.names() and tuned and as_explainable(model).has_attention:
            out[name] = parent
    return out


def _window(model: Any, record: Record, lead: str, start: float) -> tuple[Any, list[str]]:
    """:func:`cardiolens.explain.prepare_window` of one lead, and what it did, in words."""
    from cardiolens.explain import prepare_window

    window = prepare_window(model, record, lead=lead, start=start)
    notes = []
    if window.resampled_from:
        notes.append(f"lead {lead} resampled from {window.resampled_from:g} Hz to the model's {window.fs:g} Hz")
    T = getattr(model.config, "block_size", None) or model.config.window
    first = window.start / window.fs
    notes.append(f"the model reads {first:.2f}-{first + window.n_samples / window.fs:.2f} s of {record.duration:.1f} s")
    if window.n_samples < T:
        notes.append(f"the window holds {window.n_samples} of the model's {T} tokens (the record ends there)")
    return window, notes


def compute_attention(pool: ModelPool, record: Record, model_name: str, lead: str, start: float) -> AttentionMaps:
    """Attention weights and hidden states of a shipped GPT (pretrained or fine-tuned) over one window,
    by :mod:`cardiolens.explain`."""
    from cardiolens.explain import attention_maps, hidden_states

    model = _attention_model(pool, model_name)
    window, notes = _window(model, record, lead, start)
    maps = attention_maps(model, window)
    states = hidden_states(model, window)  # (L + 1, T, C)
    return AttentionMaps(
        model=model_name,
        lead=lead,
        start=window.start / window.fs,
        fs=float(window.fs),
        tokens=maps.tokens,
        values=np.asarray(window.signal[0], dtype=np.float64),
        weights=maps.weights.astype(np.float16),
        states=np.asarray(states, dtype=np.float32),
        notes=notes,
    )


def _block_mean(m: np.ndarray, side: int) -> np.ndarray:
    """A (T, T) matrix reduced to at most (side, side) by averaging blocks."""
    T = m.shape[0]
    if T <= side:
        return m
    k = math.ceil(T / side)
    pad = k * math.ceil(T / k) - T
    padded = np.pad(m, ((0, pad), (0, pad)))  # zeros: above the diagonal is zero anyway
    n = padded.shape[0] // k
    return padded.reshape(n, k, n, k).mean(axis=(1, 3))


def attention_view(maps: AttentionMaps, layer: int | None, head: int | None, token: int) -> dict[str, Any]:
    """What the page draws for one choice of layer (``None``: mean of all), head (``None``: mean) and token:
    the token's attention over its context, the aggregate map, each head's reach, and the token's
    hidden-state similarity to every other token, layer by layer."""
    L, H, T, _ = maps.weights.shape
    if layer is not None and not 0 <= layer < L:
        raise ModelInputError(f"{maps.model} has no layer {layer}: it has {L} (0..{L - 1})")
    if head is not None and not 0 <= head < H:
        raise ModelInputError(f"{maps.model} has no head {head}: it has {H} per layer (0..{H - 1})")
    if not -1 <= token < T:
        raise ModelInputError(f"token {token} is outside the window of {T} tokens (0..{T - 1}, or -1 for the last)")
    token = T - 1 if token == -1 else token
    matrix = maps.mean(layer, head)  # (T, T)
    row = matrix[token, : token + 1]  # (token + 1,)
    small = _block_mean(matrix, MAP_SIDE)
    t = maps.start + np.arange(T) / maps.fs
    states = maps.states  # (L + 1, T, C)
    norms = np.linalg.norm(states, axis=-1) + 1e-12  # (L + 1, T)
    similarity = np.einsum("ltc,lc->lt", states, states[:, token]) / (norms * norms[:, token : token + 1])
    return {
        "model": maps.model,
        "lead": maps.lead,
        "layers": L,
        "heads": H,
        "tokens": T,
        "layer": layer,
        "head": head,
        "token": token,
        "token_time": round(float(t[token]), 4),
        "fs": maps.fs,
        "start": maps.start,
        "t": _rounded(t, 7),
        "values": _rounded(maps.values),
        "row": _rounded(row, 4),
        "map": {
            "z": [_rounded(r, 4) for r in small],
            "seconds_per_cell": T / small.shape[0] / maps.fs,
        },
        "distance": [_rounded(r, 4) for r in maps.distance],
        "similarity": {
            "layers": ["embedding"] + [f"layer {i + 1}" for i in range(L)],
            "z": [_rounded(r, 3) for r in similarity],
        },
        "notes": maps.notes,
    }


def attention_shift_view(
    pretrained: AttentionMaps, tuned: AttentionMaps, layer: int | None, head: int | None, token: int
) -> dict[str, Any]:
    """How the fine-tuned model's attention of one token differs from its pretrained GPT's, on the same
    window: both rows, their difference, and the total-variation distance between them at every layer
    (0: the same distribution, 1: no overlap)."""
    if pretrained.weights.shape != tuned.weights.shape or not np.array_equal(pretrained.tokens, tuned.tokens):
        raise ModelInputError(f"{tuned.model} and {pretrained.model} do not read this window alike: no shift to draw")
    view = attention_view(tuned, layer, head, token)
    token = view["token"]
    before = pretrained.mean(layer, head)[token, : token + 1]
    after = np.asarray(view["row"], dtype=np.float64)
    L = tuned.weights.shape[0]
    tv = [0.5 * float(np.abs(tuned.mean(k, head)[token] - pretrained.mean(k, head)[token]).sum()) for k in range(L)]
    return {
        "pretrained": pretrained.model,
        "finetuned": tuned.model,
        "lead": tuned.lead,
        "layers": L,
        "heads": view["heads"],
        "layer": layer,
        "head": head,
        "token": token,
        "token_time": view["token_time"],
        "t": view["t"],
        "values": view["values"],
        "row_pretrained": _rounded(before, 4),
        "row_finetuned": view["row"],
        "difference": _rounded(after - before, 4),
        "tv_distance": _rounded(np.array(tv), 4),
        "tv_selected": round(0.5 * float(np.abs(after - before).sum()), 4),
        "notes": tuned.notes,
    }


def attributions(pool: ModelPool, record: Record, model_name: str, lead: str, start: float, method: str) -> dict:
    """Which samples of the window drove the model's output, per lead (:func:`cardiolens.explain.attribute`).

    For a pretrained GPT the output explained is its prediction of the next sample's token.
    """
    from cardiolens.explain import attribute, attribution_methods

    model = _gpt(pool, model_name)
    offered = attribution_methods(model)
    if method not in offered:
        raise ModelInputError(f"{model_name} offers the attributions {', '.join(offered)}, not {method!r}")
    window, notes = _window(model, record, lead, start)
    result = attribute(model, window, method)
    if result.method == "attention":
        notes = notes + [
            "plain attention rollout shows what the model reads, not what decides its output: on HeartGPT's AF "
            "model it was no better than random at deletion, gradient-weighted rollout was (docs/BENCHMARKS.md)"
        ]
    t = window.times
    return {
        "model": model_name,
        "method": result.method,
        "target": result.target_name,
        "probability": round(float(result.probability), 4),
        "seconds": round(float(result.seconds), 2),
        "per_lead": bool(result.per_lead),
        "t": _rounded(t, 7),
        "leads": [
            {"name": name, "signal": _rounded(window.signal[i]), "values": _rounded(result.values[i])}
            for i, name in enumerate(window.leads)
        ],
        "notes": notes + ["a pretrained GPT's output is its next-token prediction: the class explained is that token"],
    }


def explain_sections(pool: ModelPool) -> dict[str, str | None]:
    """For each explanation the page offers beyond attention, ``None`` when available or why it is not."""
    try:
        importlib.import_module("cardiolens.explain")
    except ImportError as exc:
        why = f"cardiolens.explain cannot be imported ({exc})"
        return {"similarity": why, "attributions": why, "shift": why}
    out: dict[str, str | None] = {"similarity": None, "attributions": None}
    tuned = [n for n in pool.names() if pool.describe(n)["kind"] == "predictor"]
    if tuned_gpts(pool):
        out["shift"] = None
    else:
        out["shift"] = (
            "needs a model fine-tuned from ecgpt-small or ppgpt-small (cardiolens finetune --backbone ecgpt-small); "
            "start the server with cardiolens serve --models '[\"FOLDER\"]' to offer one"
            + (f" (the installed fine-tuned models, {', '.join(tuned)}, have no attention)" if tuned else "")
        )
    return out


def explainable_models(pool: ModelPool) -> list[str]:
    """The models ``explain-report`` takes: every model of the pool and the shipped means of its models
    (``cardiolens explain`` takes the same)."""
    from cardiolens.tasks.model_mean import list_model_means

    means = []
    for name in list_model_means():
        try:
            pool.mean(name)
        except UnknownModel:  # a member this server does not offer
            continue
        means.append(name)
    return [*pool.names(), *means]


def explain_report(
    pool: ModelPool, record: Record, model_name: str, lead: str, start: float, methods: str | None = None
) -> str:
    """The self-contained HTML report of :func:`cardiolens.explain.explain_record` for one window, as
    ``cardiolens explain`` writes it, for any model of :func:`explainable_models`.

    A model with attention (a GPT) defaults to attention, embeddings and integrated gradients of the
    window; a model without (the shipped CNNs) to every method that applies, as the CLI does; a tree
    model to its feature effects over the whole record (for the beat classifier ``aami-ecg-trees``, of the
    beat nearest ``start`` seconds; 0: its first beat not called N). A mean of models (``rhythm-ecg-mean``)
    gives one page: the mean's prediction and each member's report (:func:`cardiolens.explain.explain_mean`).

    Raises:
        UnknownModel: a model the server does not have, naming those it explains.
        ModelInputError: methods that do not apply, a start outside the record, a lead the model cannot read.
    """
    from cardiolens.explain import as_explainable, explain_mean, explain_record, render_html, render_mean_html
    from cardiolens.tasks.model_mean import find_model_mean

    if model_name not in pool.names():
        if "/" in model_name or find_model_mean(model_name) is None:
            raise UnknownModel(
                f"unknown model {model_name!r}; the explanation report takes {', '.join(explainable_models(pool))}"
            )
        mean = pool.mean(model_name)
        if methods:
            raise ModelInputError(
                f"{model_name} is a mean of models: each of its members ({', '.join(mean.config.members)}) is "
                "explained with every method that applies to it; leave methods out, or explain a member"
            )
        return render_mean_html(explain_mean(mean, record, lead=lead, start=start), embed=True)
    model = pool.get(model_name)
    if methods is None and is_tree(model):
        methods = "features"
    elif methods is None and as_explainable(model).has_attention:  # the cheap views: faithfulness takes minutes
        offered = as_explainable(model).available_methods()
        methods = ",".join(m for m in ("attention", "embeddings", "ig") if m in offered)
    report = explain_record(model, record, methods=methods, lead=lead, start=start)
    return render_html(report)


# -- generation -------------------------------------------------------------------------------------
def generation_events(
    pool: ModelPool,
    entry_folder: Path,
    record: Record,
    *,
    model_name: str,
    lead: str,
    steps: int,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    seed: int | None,
    chunk: int,
    register_download: Any,
) -> Iterator[dict[str, Any]]:
    """Check everything, then return an iterator of events: ``start``, ``chunk`` ..., ``done`` (or ``error``).

    The checks (model, lead, context, settings) run when this is called, so a bad request fails
    before the stream starts. The continuation is :func:`cardiolens.generate.continue_signal_stream`;
    at the end it is written by :func:`cardiolens.generate.write_continuation`, the CSV and figure of
    ``cardiolens generate``, offered as downloads.
    """
    from cardiolens.generate import continue_signal_stream

    model = pool.get(model_name)
    cfg = getattr(model, "config", None)
    if getattr(cfg, "head", None) != "lm":
        raise ModelInputError(f"{model_name} is not a generative model; choose ecgpt-small or ppgpt-small")
    index = record.lead_index(lead)
    name = record.leads[index]
    stream = continue_signal_stream(
        model,
        record,
        steps=steps,
        temperature=temperature,
        top_k=top_k,
        greedy=greedy,
        seed=seed,
        chunk=chunk,
        lead=index,
        modality=modality(name),
    )
    drawn = {"greedy": greedy, "seed": seed, "temperature": temperature, "top_k": top_k}
    return _generation_events(stream, record, index, model_name, steps, drawn, entry_folder, register_download)


def _generation_events(
    stream: Any,
    record: Record,
    index: int,
    model_name: str,
    steps: int,
    drawn: dict[str, Any],
    folder: Path,
    register_download: Any,
) -> Iterator[dict[str, Any]]:
    """``drawn``: how the continuation is sampled (greedy, seed, temperature, top_k), for its files."""
    from cardiolens.generate import write_continuation

    fs, model_fs = record.fs, stream.model_fs
    x = record.signal[index]
    n = x.size
    # the part of the recording the model saw: its last window (as write_continuation writes it)
    seen = min(n, math.ceil(stream.context_tokens.size * fs / model_fs))
    end = n / fs
    try:
        yield {
            "type": "start",
            "model": model_name,
            "lead": record.leads[index],
            "units": record.units[index],
            "steps": steps,
            "fs": fs,
            "model_fs": model_fs,
            "resampled": bool(stream.resampled),
            "end": end,
            "context": {"t": _rounded(np.arange(n - seen, n) / fs, 7), "values": _rounded(x[n - seen :])},
        }
        for part in stream:
            t = end + (part.start + np.arange(part.values.size)) / model_fs
            yield {
                "type": "chunk",
                "start": part.start,
                "t": _rounded(t, 7),
                "values": _rounded(part.values),
                "tokens": part.tokens.tolist(),
            }
        done = write_continuation(
            record,
            stream.result,
            # a folder per run: an earlier run's download ids must keep giving that run's files
            folder / "generated" / uuid.uuid4().hex,
            lead=index,
            model_label=model_name,
            **drawn,
        )
        csv_id = register_download(done.csv, "text/csv", done.csv.name)
        png_id = register_download(done.png, "image/png", done.png.name)
        summary = done.summary.split(" -> ")[0]  # the files are offered as downloads, not as server paths
        yield {"type": "done", "summary": summary, "csv": csv_id, "png": png_id, "steps": steps}
    except CardiolensError as exc:
        yield {"type": "error", "detail": str(exc)}
    finally:
        stream.close()


# -- report -----------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def report_html(record: Record, pool: ModelPool, lead: str | None = None) -> str:
    """A self-contained HTML report of a record: summary, quality, beats figure, rhythm, beat classes, heart rate.

    Figures are embedded PNGs drawn by :func:`cardiolens.plot.plot_record` (as ``cardiolens plot``),
    so the report opens anywhere without a network.
    """
    from cardiolens import plot as ecg_plot

    info = record_summary(record)
    result = analyse(record, pool, lead)
    fig = ecg_plot.plot_record(
        record,
        start=0.0,
        duration=min(record.duration, 10.0),
        peaks={result["lead"]: np.asarray(result["beats"]["samples"], dtype=np.int64)},
        title=f"{record.name}: first {min(record.duration, 10.0):.0f} s, beats of lead {result['lead']} marked",
    )
    try:
        figure = _png(fig)
    finally:
        ecg_plot.plt.close(fig)
    esc = html.escape
    rows = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
        for k, v in (
            ("format", info.get("format")),
            ("sampling rate", f"{record.fs:g} Hz"),
            ("leads", ", ".join(record.leads)),
            ("length", f"{record.n_samples} samples, {record.duration:.1f} s"),
            ("quality", info["quality"].get("summary") if isinstance(info.get("quality"), dict) else ""),
            ("beats", f"{result['beats']['count']} in lead {result['lead']} ({result['beats']['method']})"),
            ("median heart rate", f"{result['heart_rate']['median_bpm']} bpm"),
        )
    )
    rhythm_html = ""
    for rhythm in (result["rhythm"], result["rhythm_trees"], result["rhythm_mean"]):
        if rhythm.get("ok"):
            table = "".join(
                f"<tr><th>{esc(RHYTHM_NAMES.get(c, c))}</th><td>{p:.3f}</td></tr>"
                for c, p in rhythm["probabilities"].items()
            )
            body = f"<table>{table}</table>"
        else:
            body = f"<p>{esc(rhythm.get('message', 'not available'))}</p>"
        rhythm_html += f"<h3>{esc(rhythm['model'])}</h3>{body}"
    classified = result["beat_classes"]
    if classified.get("ok"):
        beats = classified["beats"]

        def when(c: str, shown: int = 20) -> str:
            times = [t for t, k in zip(beats["times"], beats["classes"], strict=True) if k == c]
            return ", ".join(f"{t:.2f} s" for t in times[:shown]) + (" ..." if len(times) > shown else "")

        # the counts, and when each ectopic beat occurred (the N beats are most of them)
        table = "".join(
            f"<tr><th>{esc(c)} ({esc(classified['names'][c])})</th><td>{classified['counts'][c]}</td>"
            f"<td>{esc(when(c))}</td></tr>"
            for c in classified["classes"]
            if c != "N"
        )
        beat_html = (
            f"<p>{classified['counts'].get('N', 0)} beats N (normal); the others, with their times:</p>"
            f"<table>{table}</table><p><small>{esc(classified['model'])}; the first and last beat are not "
            "classified.</small></p>"
        )
    else:
        beat_html = f"<p>{esc(classified.get('message', 'not available'))}</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cardiolens report: {esc(record.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
th{{text-align:left;padding-right:1em}}img{{max-width:100%}}</style></head>
<body><h1>cardiolens report: {esc(record.name)}</h1>
<h2>Record</h2><table>{rows}</table>
<h2>Signal</h2><img alt="record with beats" src="data:image/png;base64,{figure}">
<h2>Rhythm</h2>{rhythm_html}
<h2>Beat classes (AAMI)</h2>{beat_html}
<p><small>Written by cardiolens; figures drawn by cardiolens.plot.plot_record.</small></p>
</body></html>
"""
