"""Figures of explanations (matplotlib). Each function takes the arrays/results the analysis
functions return, draws one figure, writes it as PNG when ``out`` is given, and returns it.

Signals in mV are drawn on ECG paper (0.2 s x 0.5 mV large squares, as :mod:`cardiolens.plot`);
other units on a plain time grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import PowerNorm, TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from cardiolens.explain.adapter import Window  # noqa: E402
from cardiolens.explain.attention import AttentionMaps, attention_rollout, mean_attention  # noqa: E402
from cardiolens.explain.attribution import Attribution  # noqa: E402
from cardiolens.explain.embeddings import HomonymSimilarity, PhaseProbe  # noqa: E402
from cardiolens.explain.faithfulness import Faithfulness  # noqa: E402
from cardiolens.explain.physiology import HeadFeatureTable, not_found_text  # noqa: E402
from cardiolens.plot import _paper_grid  # noqa: E402  (the ECG-paper grid of record plots, shared)

_LABELS = {
    "gradcam": "Grad-CAM",
    "hirescam": "HiResCAM",
    "gradrollout": "gradient-weighted rollout",
    "ig": "integrated gradients",
    "occlusion": "occlusion",
    "attention": "attention rollout",
    "random": "random order",
    "random blocks": "random 0.1 s blocks",
}


def method_label(method: str) -> str:
    return _LABELS.get(method, method)


def _save(fig: plt.Figure, out: str | Path | None) -> plt.Figure:
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    return fig


def _robust_max(v: np.ndarray, q: float = 99.0) -> float:
    """Colour-scale top: the ``q``-th percentile of |v|, so one extreme sample (an attention sink on the
    first token, the read-out token's own gradient) does not wash out the rest; it is clipped."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    top = float(np.percentile(a, q)) if a.size else 0.0
    return top if top > 0 else (float(a.max()) or 1.0)


def _trace(ax: plt.Axes, window: Window, row: int, grid: bool = True) -> tuple[np.ndarray, float, float]:
    t = window.times
    y = window.signal[row]
    lo, hi = float(y.min()), float(y.max())
    in_mv = bool(window.units) and window.units[row] == "mV"
    pad = max(0.1 * (hi - lo), 0.2 if in_mv else 1e-6)
    if grid:
        _paper_grid(ax, t[0], t[-1], lo - pad, hi + pad, in_mv)
        ax.tick_params(labelbottom=True)
        span = t[-1] - t[0]
        step = 0.2 if span <= 3 else 0.5 if span <= 6 else 1.0  # label fewer grid lines on long windows
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if abs(v / step - round(v / step)) < 1e-6 else "")
        )
    ax.plot(t, y, color="black", linewidth=0.8)
    ax.set_xlim(t[0], t[-1])
    ax.set_ylim(lo - pad, hi + pad)
    return t, lo - pad, hi + pad


def plot_attribution(
    attributions: Attribution | list[Attribution], title: str | None = None, out: str | Path | None = None
) -> plt.Figure:
    """Each attribution drawn as a colour band behind its lead on ECG paper (one row per method and lead).

    Signed methods (integrated gradients, occlusion) use red for evidence for the class and blue
    against it; non-negative ones (Grad-CAM, HiResCAM, attention, gradient rollout) shade from white to red.
    """
    attrs = [attributions] if isinstance(attributions, Attribution) else list(attributions)
    rows = [(a, lead) for a in attrs for lead in (range(a.values.shape[0]) if a.per_lead else [0])]
    window = attrs[0].window
    span = window.n_samples / window.fs
    fig, axes = plt.subplots(len(rows), 1, figsize=(float(np.clip(span * 1.6, 8, 24)), 1.9 * len(rows) + 0.8))
    axes = np.atleast_1d(axes)
    for ax, (a, lead) in zip(axes, rows, strict=True):
        t, lo, hi = _trace(ax, a.window, lead)
        v = a.values[lead].astype(np.float64)
        signed = bool(v.min() < 0)
        vmax = _robust_max(v)
        norm = TwoSlopeNorm(0.0, -vmax, vmax) if signed else plt.Normalize(0.0, vmax)
        ax.imshow(
            v[None],
            extent=(t[0], t[-1], lo, hi),
            aspect="auto",
            cmap="RdBu_r" if signed else "Reds",
            norm=norm,
            alpha=0.55,
            interpolation="nearest",
            zorder=0,
        )
        where = f"lead {a.window.leads[lead]}" if a.per_lead else f"all {len(a.window.leads)} leads (one map)"
        if len(a.window.leads) == 1:
            where = f"lead {a.window.leads[0]}"
        ax.text(
            0.002,
            0.96,
            f"{method_label(a.method)} · {where} · class {a.target_name} (p={a.probability:.2f})",
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
        )
    axes[-1].set_xlabel("time [s]")
    fig.suptitle(title or f"{window.source}: attributions", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def plot_attention_heads(
    maps: AttentionMaps, token: int | None = None, max_tokens: int = 300, out: str | Path | None = None
) -> plt.Figure:
    """A layers x heads grid: each head's (T, T) map, or with ``token`` that token's attention over its context.

    Maps larger than ``max_tokens`` are shown at reduced resolution (mean over blocks of tokens).
    """
    L, H, T = maps.n_layers, maps.n_heads, maps.n_tokens
    fig, axes = plt.subplots(L, H, figsize=(1.6 * H + 1, 1.4 * L + 0.8), squeeze=False)
    if token is not None:
        t = maps.check(token=token)[2]
    step = max(1, int(np.ceil(T / max_tokens)))
    for layer in range(L):
        for head in range(H):
            ax = axes[layer, head]
            if token is None:
                w = maps.weights[layer, head]
                if step > 1:
                    n = (T // step) * step
                    w = w[:n, :n].reshape(n // step, step, n // step, step).mean(axis=(1, 3))
                ax.imshow(w, cmap="magma", norm=PowerNorm(0.4, 0, max(float(w.max()), 1e-9)), interpolation="nearest")
            else:
                ax.fill_between(np.arange(t + 1), maps.weights[layer, head, t, : t + 1], color="#c0392b", linewidth=0)
                ax.set_xlim(0, T - 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
    what = (
        f"attention of token {t} over its context" if token is not None else "attention maps (query rows, key columns)"
    )
    fig.suptitle(f"{maps.model}: {what}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_attention_aggregate(maps: AttentionMaps, out: str | Path | None = None) -> plt.Figure:
    """The mean attention over all layers and heads, next to attention rollout."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (name, w) in zip(
        axes, (("mean over layers and heads", mean_attention(maps)), ("rollout", attention_rollout(maps))), strict=True
    ):
        im = ax.imshow(w, cmap="magma", norm=PowerNorm(0.4, 0, max(float(w.max()), 1e-9)))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("key token")
        ax.set_ylabel("query token")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"{maps.model}: aggregated attention", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def plot_token_attention(
    window: Window,
    weights: np.ndarray | dict[str, np.ndarray],
    token: int,
    title: str | None = None,
    peaks: np.ndarray | None = None,
    out: str | Path | None = None,
) -> plt.Figure:
    """One token's attention over its context drawn on the signal: shading behind the trace, and
    the weights as a curve below (several curves, e.g. pretrained vs fine-tuned, when a dict)."""
    curves = weights if isinstance(weights, dict) else {"attention": weights}
    t_idx = int(token) % window.n_samples
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(12, 5.2), sharex=True, gridspec_kw={"height_ratios": [2, 1.2]})
    t, lo, hi = _trace(ax, window, 0)
    first = np.asarray(next(iter(curves.values())), dtype=np.float64)
    top = _robust_max(first[: t_idx + 1])
    ax.imshow(
        np.minimum(first, top)[None],
        extent=(t[0], t[-1], lo, hi),
        aspect="auto",
        cmap="Reds",
        norm=plt.Normalize(0, top),
        alpha=0.6,
        zorder=0,
    )
    ax.axvline(t[t_idx], color="#1f77b4", linewidth=1.2, linestyle="--", label=f"query token {t_idx}")
    if peaks is not None and len(peaks):
        pk = np.asarray(peaks, dtype=int)
        pk = pk[(pk >= 0) & (pk < window.n_samples)]
        ax.plot(t[pk], window.signal[0][pk], "o", color="#1f77b4", markersize=3, label="beats")
    ax.legend(loc="upper right", fontsize=8)
    colors = ["#c0392b", "#2c3e50", "#27ae60", "#8e44ad"]
    ymax = 0.0
    for (name, w), c in zip(curves.items(), colors, strict=False):
        w = np.asarray(w, dtype=np.float64)
        bx.plot(t, w, color=c, linewidth=1.0, label=name)
        ymax = max(ymax, _robust_max(w[: t_idx + 1], 99.5))
    clipped = max(float(np.max(np.asarray(w))) for w in curves.values())
    if clipped > 1.3 * ymax:  # an attention sink (often the first or the query token) would flatten the rest
        bx.set_ylim(0, 1.3 * ymax)
        bx.text(0.99, 0.95, f"clipped: maximum {clipped:.3f}", transform=bx.transAxes, ha="right", va="top", fontsize=8)
    bx.set_ylabel("attention")
    bx.set_xlabel("time [s]")
    bx.legend(loc="upper left", fontsize=8)
    bx.grid(alpha=0.3)
    fig.suptitle(title or f"{window.source}: attention of token {t_idx}", fontsize=11)
    fig.tight_layout()
    return _save(fig, out)


def plot_embedding_projection(
    xy: np.ndarray, phase: np.ndarray, title: str = "hidden states", out: str | Path | None = None
) -> plt.Figure:
    """A 2-D projection of hidden states coloured by cycle phase (a cyclic colour map)."""
    fig, ax = plt.subplots(figsize=(5.8, 5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=phase, cmap="twilight", vmin=0, vmax=1, s=9, linewidths=0)
    fig.colorbar(sc, ax=ax, label="cycle phase (0 = R peak)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)


def plot_phase_probe(probes: PhaseProbe | dict[str, PhaseProbe], out: str | Path | None = None) -> plt.Figure:
    """Phase-probe accuracy per layer (one line per model), with chance and the token-value-only probe."""
    probes = probes if isinstance(probes, dict) else {"model": probes}
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, p) in enumerate(probes.items()):
        x = np.arange(len(p.layers))
        line = ax.errorbar(x, p.accuracy, yerr=p.accuracy_std, marker="o", capsize=3, label=name)
        if np.isfinite(p.token_baseline):
            ax.axhline(p.token_baseline, color=line[0].get_color(), linestyle=":", linewidth=1)
        if i == 0:
            ax.axhline(p.chance, color="grey", linestyle="--", linewidth=1, label="chance (most frequent bin)")
    longest = max(probes.values(), key=lambda p: len(p.layers)).layers
    ax.set_xticks(np.arange(len(longest)), longest, rotation=30, fontsize=8)
    ax.set_ylabel(f"phase-bin accuracy ({next(iter(probes.values())).n_bins} bins)")
    ax.set_title("linear probe of the cardiac-cycle phase (dotted: token value only)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_homonyms(sims: HomonymSimilarity | dict[str, HomonymSimilarity], out: str | Path | None = None) -> plt.Figure:
    """Cosine similarity of one token value's hidden states at near vs distant cycle phases, per layer."""
    sims = sims if isinstance(sims, dict) else {"model": sims}
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, s in sims.items():
        x = np.arange(len(s.layers))
        line = ax.plot(x, s.near, marker="o", label=f"{name}: near (<{s.near_phase:g} cycle)")[0]
        ax.plot(x, s.far, marker="s", linestyle="--", color=line.get_color(), label=f"{name}: far (>{s.far_phase:g})")
    longest = max(sims.values(), key=lambda s: len(s.layers)).layers
    ax.set_xticks(np.arange(len(longest)), longest, rotation=30, fontsize=8)
    first = next(iter(sims.values()))
    ax.set_ylabel("mean cosine similarity")
    ax.set_title(f"token {first.token_value} in different places of the cycle", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def plot_head_features(table: HeadFeatureTable, k: int = 3, out: str | Path | None = None) -> plt.Figure:
    """Heat maps (layers x heads) of each head's attention enrichment (share / chance) per feature;
    the heads that track a feature most are named under its map."""
    F = len(table.features)
    fig, axes = plt.subplots(1, F, figsize=(3.6 * F + 1, 3.8), squeeze=False)
    enr = table.enrichment
    vmax = float(np.nanmax(enr)) if np.isfinite(enr).any() else 2.0
    for f, ax in enumerate(axes[0]):
        im = ax.imshow(enr[..., f], cmap="RdBu_r", norm=TwoSlopeNorm(1.0, 0.0, max(vmax, 1.01)))
        chance = table.chance[..., f]
        found = table.found(table.features[f])
        seen = f" (chance {chance[np.isfinite(chance)].mean():.2f})" if found else ""
        ax.set_title(f"{table.features[f]}{seen}", fontsize=9)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        top = table.top_heads(table.features[f], k)
        names = ", ".join(f"{r['head']} x{r['enrichment']:.1f}" for r in top) or "none above 1.5x"
        if not found:
            names = not_found_text(table.features[f])
        ax.text(0.5, -0.28, names, transform=ax.transAxes, ha="center", fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.26, top=0.84, wspace=0.35)
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, label="share / chance")
    fig.suptitle(f"{table.model}: attention on physiological features", fontsize=10)
    return _save(fig, out)


def plot_faithfulness(result: Faithfulness, out: str | Path | None = None) -> plt.Figure:
    """Deletion and insertion curves of each method and of random orders."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, mode in zip(axes, ("deletion", "insertion"), strict=True):
        for method, curves in result.curves.items():
            c = curves[mode]
            style: dict[str, Any] = {}
            if method.startswith("random"):
                style = {"color": "grey", "linestyle": "--" if method == "random" else ":"}
            ax.plot(c.fractions, c.scores, label=f"{method_label(method)} (AUC {c.auc:.3f})", **style)
        ax.set_xlabel(f"fraction of samples {'deleted' if mode == 'deletion' else 'inserted'}")
        ax.set_ylabel(f"p({result.target_name})")
        ax.set_title(f"{mode} ({'lower' if mode == 'deletion' else 'higher'} AUC is better)", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


__all__ = [
    "method_label",
    "plot_attention_aggregate",
    "plot_attention_heads",
    "plot_attribution",
    "plot_embedding_projection",
    "plot_faithfulness",
    "plot_head_features",
    "plot_homonyms",
    "plot_phase_probe",
    "plot_token_attention",
]
