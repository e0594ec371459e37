"""Attention maps of transformer models: per layer and head, mean, rollout, one token's view, shifts.

The weights come from the model itself (``GPT(..., return_attention=True)`` computes the same
softmax that produced its output), for a bare GPT or for the GPT backbone of a fine-tuned model.

- :func:`attention_maps`: every layer's and head's (T, T) weights for one window.
- :func:`mean_attention`, :func:`attention_rollout`: aggregates over heads and layers; rollout is
  Abnar & Zuidema (2020): each layer's head-mean attention mixed with the identity (the residual
  stream) and renormalised, multiplied from the top layer down, so that row ``t`` says how much of
  token ``t``'s final state flows from each input token.
- :func:`token_attention`: what one token attends to over its (causal) context.
- :func:`attention_shift`: how the attention of a fine-tuned model differs from its pretrained
  parent on the same windows, measured against the beats (share on R peaks, relation to beat
  irregularity, total-variation distance between the two).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from cardiolens.errors import ModelInputError
from cardiolens.explain.adapter import ExplainModel, Window, as_explainable


@dataclass
class AttentionMaps:
    """Attention weights of one window.

    Attributes:
        weights: float32 (layers, heads, T, T); row ``t`` is token ``t``'s attention over tokens
            ``0..t`` (zero above the diagonal) and sums to 1.
        tokens: int64 (T,) token ids the model read.
        model: the model's name.
    """

    weights: np.ndarray
    tokens: np.ndarray
    model: str = "model"

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.weights.shape[-1])

    def check(self, layer: int | None = None, head: int | None = None, token: int | None = None) -> tuple:
        """Validate (and normalise negative) layer/head/token indices; raises listing what exists."""
        out = []
        for value, size, what in ((layer, self.n_layers, "layer"), (head, self.n_heads, "head")):
            if value is None:
                out.append(None)
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not -size <= value < size:
                raise ModelInputError(
                    f"{self.model!r} has no {what} {value!r}: it has {size} {what}s (0..{size - 1}, or -1 for the last)"
                )
            out.append(int(value) % size)
        out.append(check_token(token, self.n_tokens, self.model) if token is not None else None)
        return tuple(out)

    def get(self, layer: int, head: int | None = None) -> np.ndarray:
        """(T, T) weights of one layer: one head, or the mean over heads when ``head`` is None."""
        layer, head, _ = self.check(layer, head)
        w = self.weights[layer]
        return w[head] if head is not None else w.mean(axis=0)


def check_token(token: int, n_tokens: int, model: str = "model") -> int:
    """``token`` as a position 0..T-1 (negative counts from the end); raises listing the valid range."""
    if isinstance(token, bool) or not isinstance(token, int | np.integer) or not -n_tokens <= token < n_tokens:
        raise ModelInputError(
            f"token {token!r} is outside the context of {model!r}: {n_tokens} tokens "
            f"(0..{n_tokens - 1}, or -1..-{n_tokens} from the end)"
        )
    return int(token) % n_tokens


def attention_maps(model: nn.Module | ExplainModel, window: Window, row: int = 0) -> AttentionMaps:
    """Every layer's and head's attention weights for one window.

    Args:
        model: a GPT, or a fine-tuned model over a GPT backbone.
        window: from :func:`~cardiolens.explain.prepare_window`.
        row: which token sequence when the model reads several per window (one per lead).

    Raises:
        ModelInputError: the model has no attention (the message lists the methods it has).
    """
    adapter = as_explainable(model)
    adapter.require("attention")
    tokens = adapter.tokens(window)  # (rows, T)
    if not 0 <= row < tokens.size(0):
        raise ModelInputError(f"row {row} outside the {tokens.size(0)} token sequences of this window")
    with torch.no_grad(), adapter.evaluating():
        out = adapter.gpt(tokens[row : row + 1], return_attention=True)
    weights = torch.stack([a[0] for a in out.attentions]).float().numpy()  # (L, H, T, T)
    return AttentionMaps(weights=weights, tokens=tokens[row].numpy().astype(np.int64), model=adapter.name)


def mean_attention(maps: AttentionMaps, layers: list[int] | None = None, heads: list[int] | None = None) -> np.ndarray:
    """(T, T) mean of the chosen layers and heads (default: all)."""
    layers = list(range(maps.n_layers)) if layers is None else [maps.check(layer=x)[0] for x in layers]
    heads = list(range(maps.n_heads)) if heads is None else [maps.check(head=h)[1] for h in heads]
    return maps.weights[np.ix_(layers, heads)].mean(axis=(0, 1))


def attention_rollout(
    maps: AttentionMaps,
    token: int | None = None,
    residual: float = 0.5,
    layers: int | None = None,
    relative_to_chance: bool = False,
) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): how much each input token flows into each output token.

    Args:
        maps: from :func:`attention_maps`.
        token: return only this token's row (T,), computed as a vector (cheap); ``None``: the full (T, T).
        residual: weight of the identity (the residual connection) mixed into each layer's head mean.
        layers: roll out the first ``layers`` layers only (default: all).
        relative_to_chance: divide by the rollout of uniform attention over the same context
            (:func:`chance_rollout`), so that 1 means "as much as chance". In a causal model every later
            token sees the first ones, so plain rollout piles onto the start of the window whatever the
            weights (uniform causal attention, 8 layers, residual 0.5: 73 % of the last token's
            rollout in the first tenth of 500 tokens). The ratio has the opposite lean: chance puts
            almost nothing on the last tokens but the read-out token itself, so a model that attends
            to recent tokens gets large ratios there.

    Returns:
        (T, T) or (T,) non-negative weights whose rows sum to 1 (plain); with ``relative_to_chance``,
        ratios to chance (zero where a token cannot be seen).
    """
    n = maps.n_layers if layers is None else maps.check(layer=layers - 1)[0] + 1
    r = _rollout([maps.weights[layer].astype(np.float64).mean(axis=0) for layer in range(n)], token, residual, maps)
    if not relative_to_chance:
        return r
    chance = chance_rollout(maps, token, residual, layers=n)
    return np.divide(r, chance, out=np.zeros_like(r), where=chance > 0)


def chance_rollout(
    maps: AttentionMaps, token: int | None = None, residual: float = 0.5, layers: int | None = None
) -> np.ndarray:
    """The rollout that attention spread evenly over each token's context would give: the reference
    of ``attention_rollout(..., relative_to_chance=True)``. The context is causal when every weight
    above the diagonal is 0, the whole window otherwise (other masks, such as padding or sliding
    windows, are not modelled)."""
    n = maps.n_layers if layers is None else maps.check(layer=layers - 1)[0] + 1
    T = maps.n_tokens
    causal = not any(np.triu(maps.weights[layer].max(axis=0), k=1).any() for layer in range(n))
    uniform = np.tril(np.ones((T, T))) if causal else np.ones((T, T))
    uniform /= uniform.sum(axis=-1, keepdims=True)
    return _rollout([uniform] * n, token, residual, maps)


def _rollout(head_means: list[np.ndarray], token: int | None, residual: float, maps: AttentionMaps) -> np.ndarray:
    """Roll out each layer's (T, T) head-mean attention with the residual mixed in (top layer first)."""
    if not 0.0 <= residual < 1.0:
        raise ModelInputError(f"residual must be in [0, 1), got {residual}")
    T = maps.n_tokens
    eye = np.eye(T)
    mixed = []
    for a in head_means:
        a = (1.0 - residual) * a + residual * eye
        mixed.append(a / a.sum(axis=-1, keepdims=True))
    if token is not None:
        t = check_token(token, T, maps.model)
        r = mixed[-1][t]  # (T,)
        for a in reversed(mixed[:-1]):
            r = r @ a
        return r
    r = mixed[-1]
    for a in reversed(mixed[:-1]):
        r = r @ a  # top layer first: output <- ... <- input
    return r


def token_attention(
    maps: AttentionMaps, token: int = -1, layer: int | str = "rollout", head: int | None = None
) -> np.ndarray:
    """One token's attention over its context, (T,) (zero after the token).

    Args:
        maps: from :func:`attention_maps`.
        token: the query token (negative from the end; -1 is the token a last-token classifier reads).
        layer: a layer index, ``"mean"`` (all layers and heads) or ``"rollout"``.
        head: a head of ``layer`` (default: the mean over heads).
    """
    t = check_token(token, maps.n_tokens, maps.model)
    if layer == "rollout":
        if head is not None:
            raise ModelInputError("rollout combines every head; pass head=None or a layer index")
        return attention_rollout(maps, token=t)
    if layer == "mean":
        return (
            maps.weights[:, :, t].mean(axis=(0, 1))
            if head is None
            else maps.weights[:, maps.check(head=head)[1], t].mean(0)
        )
    if isinstance(layer, str):
        raise ModelInputError(f"layer must be an index, 'mean' or 'rollout', got {layer!r}")
    return maps.get(layer, head)[t]


# -- attention against the beats ----------------------------------------------------------------


def peak_regions(n: int, peaks: np.ndarray, half_width: int) -> np.ndarray:
    """(n,) bool mask of the samples within ``half_width`` of any peak."""
    mask = np.zeros(n, dtype=bool)
    for p in np.asarray(peaks, dtype=np.int64):
        mask[max(0, p - half_width) : min(n, p + half_width + 1)] = True
    return mask


def beat_irregularity(peaks: np.ndarray) -> np.ndarray:
    """Per beat ``|RR_after - RR_before| / mean RR`` (NaN for the first and last beat)."""
    peaks = np.asarray(peaks, dtype=np.float64)
    out = np.full(peaks.size, np.nan)
    if peaks.size >= 3:
        rr = np.diff(peaks)
        out[1:-1] = np.abs(rr[1:] - rr[:-1]) / rr.mean()
    return out


def attention_beat_stats(
    profile: np.ndarray,
    peaks: np.ndarray,
    fs: float,
    tolerance: float = 0.06,
    context: int | None = None,
    exclude_self: bool = True,
) -> dict[str, float]:
    """How one attention profile (T,) relates to the beats of its window.

    Args:
        profile: attention of one query token over the window.
        peaks: R peaks (sample indices in the window).
        fs: sampling rate.
        tolerance: seconds either side of a peak counted as "on the beat".
        context: positions the query can see (``token + 1``); default: up to the last non-zero weight.
        exclude_self: leave out the query's own position (``context - 1``), where the residual
            stream puts a large weight in a rollout; shares are then of the attention on the rest.

    Returns:
        ``peak_share``: attention within ``tolerance`` seconds of an R peak; ``chance``: the share
        of context positions there (what uniform attention would give); ``enrichment`` = share /
        chance; ``irregularity_rho``: Spearman correlation between each beat's attention and its
        irregularity (:func:`beat_irregularity`), NaN with fewer than 4 rated beats;
        ``irregular_share``: attention on the more irregular half of the beats over attention on all.
    """
    profile = np.array(profile, dtype=np.float64)
    if context is None:
        context = int(np.flatnonzero(profile > 0).max()) + 1 if np.any(profile > 0) else profile.size
    if exclude_self and context > 1:
        profile[context - 1 :] = 0.0
        context -= 1
    half = max(1, int(round(tolerance * fs)))
    peaks = np.asarray(peaks, dtype=np.int64)
    peaks = peaks[(peaks >= 0) & (peaks < context)]
    mask = peak_regions(context, peaks, half)
    total = profile[:context].sum()
    share = float(profile[:context][mask].sum() / total) if total > 0 else float("nan")
    chance = float(mask.mean()) if context else float("nan")
    per_beat = np.array([profile[max(0, p - half) : p + half + 1].sum() for p in peaks])
    irregular = beat_irregularity(peaks)
    rated = np.isfinite(irregular)
    rho = float("nan")
    irr_share = float("nan")
    if rated.sum() >= 4 and np.ptp(irregular[rated]) > 0 and np.ptp(per_beat[rated]) > 0:
        rho = float(stats.spearmanr(per_beat[rated], irregular[rated]).statistic)
    if rated.sum() >= 2 and per_beat[rated].sum() > 0:
        top = irregular[rated] >= np.median(irregular[rated])
        irr_share = float(per_beat[rated][top].sum() / per_beat[rated].sum())
    return {
        "peak_share": share,
        "chance": chance,
        "enrichment": share / chance if chance > 0 else float("nan"),
        "irregularity_rho": rho,
        "irregular_share": irr_share,
    }


@dataclass
class AttentionShift:
    """Attention of a pretrained and a fine-tuned model on the same windows, against the beats.

    Attributes:
        views: the attention profiles compared: ``"rollout"``, ``"mean"`` and ``"layer i"`` (head mean).
        metrics: names of the per-window statistics (see :func:`attention_beat_stats`).
        pretrained, finetuned: statistic -> (windows, views) arrays.
        distance: (windows, views) total-variation distance between the two models' profiles.
        token: the query token.
        names: the two models' names.
    """

    views: list[str]
    metrics: list[str]
    pretrained: dict[str, np.ndarray]
    finetuned: dict[str, np.ndarray]
    distance: np.ndarray
    token: int
    names: tuple[str, str]
    profiles: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def summary(self, view: str = "rollout") -> dict[str, Any]:
        """Per statistic: the mean of each model and of the paired difference (finetuned - pretrained)."""
        v = self.views.index(view)
        out: dict[str, Any] = {"view": view, "windows": int(self.distance.shape[0])}
        for m in self.metrics:
            a, b = self.pretrained[m][:, v], self.finetuned[m][:, v]
            ok = np.isfinite(a) & np.isfinite(b)
            out[m] = {
                "pretrained": float(np.mean(a[ok])) if ok.any() else float("nan"),
                "finetuned": float(np.mean(b[ok])) if ok.any() else float("nan"),
                "difference": float(np.mean(b[ok] - a[ok])) if ok.any() else float("nan"),
                "windows": int(ok.sum()),
            }
        out["tv_distance"] = float(np.nanmean(self.distance[:, v]))
        return out


def attention_shift(
    pretrained: nn.Module | ExplainModel,
    finetuned: nn.Module | ExplainModel,
    windows: list[Window],
    peaks: list[np.ndarray],
    token: int = -1,
    tolerance: float = 0.06,
    keep_profiles: bool = False,
) -> AttentionShift:
    """Compare where two models (a pretrained GPT and its fine-tuned version) attend, window by window.

    Args:
        pretrained, finetuned: models with attention over the same context (HeartGPT ECG-PT and ECG-PT-AF).
        windows: windows prepared for them (the same token scaling for both).
        peaks: R peaks (sample indices in each window) of each window.
        token: the query token whose attention is compared (-1: the token a last-token classifier reads).
        tolerance: seconds either side of an R peak counted as "on the beat".
        keep_profiles: keep each window's two rollout profiles (for figures).

    Returns:
        An :class:`AttentionShift`; ``summary()`` gives the mean of each statistic and the paired difference.
    """
    a, b = as_explainable(pretrained), as_explainable(finetuned)
    if len(peaks) != len(windows):
        raise ModelInputError(f"{len(windows)} windows but {len(peaks)} peak arrays")
    views: list[str] | None = None
    stats_a: list[list[dict]] = []
    stats_b: list[list[dict]] = []
    dist = []
    kept = []
    for w, pk in zip(windows, peaks, strict=True):
        per_model = []
        for model in (a, b):
            maps = attention_maps(model, w)
            t = check_token(token, maps.n_tokens, maps.model)
            profiles = {"rollout": attention_rollout(maps, token=t), "mean": maps.weights[:, :, t].mean(axis=(0, 1))}
            for layer in range(maps.n_layers):
                profiles[f"layer {layer}"] = maps.weights[layer, :, t].mean(axis=0)
            per_model.append(profiles)
        if views is None:
            views = [v for v in per_model[0] if v in per_model[1]]
        stats_a.append([attention_beat_stats(per_model[0][v], pk, w.fs, tolerance, t + 1) for v in views])
        stats_b.append([attention_beat_stats(per_model[1][v], pk, w.fs, tolerance, t + 1) for v in views])
        dist.append([0.5 * float(np.abs(per_model[0][v] - per_model[1][v]).sum()) for v in views])
        if keep_profiles:
            kept.append((per_model[0]["rollout"], per_model[1]["rollout"]))
    if views is None:
        raise ModelInputError("attention_shift needs at least one window")
    metrics = list(stats_a[0][0])

    def collect(rows: list[list[dict]]) -> dict[str, np.ndarray]:
        return {m: np.array([[s[m] for s in row] for row in rows]) for m in metrics}

    return AttentionShift(
        views=views,
        metrics=metrics,
        pretrained=collect(stats_a),
        finetuned=collect(stats_b),
        distance=np.array(dist),
        token=token,
        names=(a.name, b.name),
        profiles=kept,
    )


__all__ = [
    "AttentionMaps",
    "AttentionShift",
    "attention_beat_stats",
    "attention_maps",
    "attention_rollout",
    "chance_rollout",
    "attention_shift",
    "beat_irregularity",
    "check_token",
    "mean_attention",
    "peak_regions",
    "token_attention",
]
