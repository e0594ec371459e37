"""Token embeddings in context: do equal tokens at different points of the cardiac cycle separate?

A token stands for an amplitude level; the same level occurs on the P wave, the ST segment and the
baseline ("homonyms"). A model that understands the signal should give them different hidden
states as the layers add context. This module measures that:

- :func:`cycle_phase`: the position of every sample in its beat, 0 at an R (or pulse) peak rising
  to 1 at the next, from the detected beats;
- :func:`hidden_states`: the embeddings and every block's output for one window;
- :func:`homonym_similarity`: cosine similarity, layer by layer, between hidden states of one token
  value at nearby phases and at distant phases;
- :func:`phase_probe`: a linear probe per layer predicting the phase (in bins) from the hidden
  state, cross-validated by record (no record in both training and test folds), next to the
  accuracy from the token value alone, so "tokens separate by their place in the cycle" becomes
  one number per layer;
- :func:`project_states`: a 2-D map (PCA; t-SNE or UMAP optional) to draw coloured by phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cardiolens.errors import ModelInputError
from cardiolens.explain.adapter import ExplainModel, Window, as_explainable


def cycle_phase(n: int, peaks: np.ndarray) -> np.ndarray:
    """Phase in the cardiac cycle of each of ``n`` samples, linear from 0 at a peak to 1 at the next.

    Samples before the first or after the last peak get NaN (their cycle is not seen whole).
    """
    peaks = np.unique(np.asarray(peaks, dtype=np.int64))
    peaks = peaks[(peaks >= 0) & (peaks < n)]
    phase = np.full(n, np.nan)
    for a, b in zip(peaks[:-1], peaks[1:], strict=True):
        phase[a:b] = (np.arange(a, b) - a) / (b - a)
    return phase


def hidden_states(model: nn.Module | ExplainModel, window: Window, row: int = 0) -> np.ndarray:
    """(layers + 1, T, C) float32: the embeddings, then each block's output, for one window."""
    adapter = as_explainable(model)
    adapter.require("embeddings")
    tokens = adapter.tokens(window)
    if not 0 <= row < tokens.size(0):
        raise ModelInputError(f"row {row} outside the {tokens.size(0)} token sequences of this window")
    with torch.no_grad(), adapter.evaluating():
        out = adapter.gpt.forward_features(tokens[row : row + 1], return_hidden_states=True)
    return torch.stack([h[0] for h in out.hidden_states]).float().numpy()


def layer_names(n: int) -> list[str]:
    """``["embedding", "block 0", ..., "block n-2"]`` for ``n`` hidden-state entries (block ``i`` is the
    output of transformer block ``i``, the block whose attention is layer ``i`` of the attention maps)."""
    return ["embedding"] + [f"block {i}" for i in range(n - 1)]


def _circular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1.0 - d)


@dataclass
class HomonymSimilarity:
    """Cosine similarity of one token value's hidden states, near vs far in the cycle, per layer.

    Attributes:
        layers: layer names.
        token_value: the token compared.
        near, far: (layers,) mean cosine similarity of pairs whose phases differ by less than
            ``near_phase`` / more than ``far_phase`` of a cycle.
        n_near, n_far: pairs in each group.
        occurrences: tokens of that value used.
    """

    layers: list[str]
    token_value: int
    near: np.ndarray
    far: np.ndarray
    n_near: int
    n_far: int
    occurrences: int
    near_phase: float
    far_phase: float

    @property
    def gap(self) -> np.ndarray:
        """near - far: how much more alike the same token is at the same place of the cycle."""
        return self.near - self.far

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_value": self.token_value,
            "occurrences": self.occurrences,
            "pairs": {"near": self.n_near, "far": self.n_far},
            "near_phase": self.near_phase,
            "far_phase": self.far_phase,
            "layers": {
                name: {"near": float(n), "far": float(f), "gap": float(n - f)}
                for name, n, f in zip(self.layers, self.near, self.far, strict=True)
            },
        }


def homonym_similarity(
    states: list[np.ndarray],
    phases: list[np.ndarray],
    tokens: list[np.ndarray],
    token_value: int | None = None,
    near_phase: float = 0.1,
    far_phase: float = 0.3,
    max_tokens: int = 400,
    seed: int = 0,
) -> HomonymSimilarity:
    """Cosine similarity per layer between hidden states of one token value at near and distant phases.

    Args:
        states: per window (layers + 1, T, C) from :func:`hidden_states`.
        phases: per window (T,) from :func:`cycle_phase`.
        tokens: per window (T,) token ids.
        token_value: the token to compare (default: the value with most pairs at distant phases).
        near_phase, far_phase: phase differences (fractions of a cycle) for "near" and "far" pairs.
        max_tokens: at most this many occurrences are used (sampled), bounding the pair count.
        seed: seed of that sampling.

    Raises:
        ModelInputError: too few occurrences of the value with a known phase to form both kinds of pairs.
    """
    if not (len(states) == len(phases) == len(tokens)) or not states:
        raise ModelInputError(
            f"need as many states, phases and tokens (got {len(states)}, {len(phases)}, {len(tokens)})"
        )
    tok = np.concatenate([np.asarray(t)[: s.shape[1]] for t, s in zip(tokens, states, strict=True)])
    ph = np.concatenate([np.asarray(p)[: s.shape[1]] for p, s in zip(phases, states, strict=True)])
    known = np.isfinite(ph)
    if token_value is None:
        best, best_far = None, -1
        for v in np.unique(tok[known]):
            p = ph[known & (tok == v)]
            if p.size < 4:
                continue
            far = int((_circular_distance(p[:, None], p[None, :]) > far_phase).sum())
            if far > best_far:
                best, best_far = int(v), far
        if best is None:
            raise ModelInputError("no token value occurs at least 4 times with a known cycle phase")
        token_value = best
    rng = np.random.default_rng(seed)
    where = np.flatnonzero(known & (tok == token_value))
    if where.size > max_tokens:
        where = np.sort(rng.choice(where, max_tokens, replace=False))
    n_layers = states[0].shape[0]
    X = np.concatenate([s.reshape(n_layers, -1, s.shape[-1]) for s in states], axis=1)[:, where]  # (L, N, C)
    p = ph[where]
    d = _circular_distance(p[:, None], p[None, :])
    upper = np.triu(np.ones_like(d, dtype=bool), 1)
    near, far = upper & (d < near_phase), upper & (d > far_phase)
    if near.sum() == 0 or far.sum() == 0:
        raise ModelInputError(
            f"token {token_value}: {where.size} occurrences give {int(near.sum())} near and {int(far.sum())} far "
            "pairs; need both (more windows, or another token_value)"
        )
    Xn = X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)
    sims = np.einsum("lic,ljc->lij", Xn, Xn)  # (L, N, N)
    return HomonymSimilarity(
        layers=layer_names(n_layers),
        token_value=int(token_value),
        near=sims[:, near].mean(axis=1),
        far=sims[:, far].mean(axis=1),
        n_near=int(near.sum()),
        n_far=int(far.sum()),
        occurrences=int(where.size),
        near_phase=near_phase,
        far_phase=far_phase,
    )


@dataclass
class PhaseProbe:
    """Per-layer accuracy of a linear probe predicting the cycle-phase bin from the hidden state.

    Attributes:
        layers: layer names.
        accuracy: (layers,) mean test accuracy over the record-grouped folds.
        accuracy_std: (layers,) its standard deviation over folds.
        circular_error: (layers,) mean absolute phase error (fraction of a cycle) of a linear
            regression of (sin, cos) of the phase, cross-validated the same way; 0.25 is chance.
        token_baseline: accuracy of the same probe on the one-hot token value alone.
        chance: accuracy of always predicting the most frequent bin.
        n_bins, n_samples, n_groups, folds: the probe's setting.
    """

    layers: list[str]
    accuracy: np.ndarray
    accuracy_std: np.ndarray
    circular_error: np.ndarray
    token_baseline: float
    chance: float
    n_bins: int
    n_samples: int
    n_groups: int
    folds: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_bins": self.n_bins,
            "samples": self.n_samples,
            "records": self.n_groups,
            "folds": self.folds,
            "chance": self.chance,
            "token_value_only": self.token_baseline,
            "layers": {
                name: {"accuracy": float(a), "accuracy_std": float(s), "circular_error": float(c)}
                for name, a, s, c in zip(
                    self.layers, self.accuracy, self.accuracy_std, self.circular_error, strict=True
                )
            },
        }


def phase_probe(
    states: list[np.ndarray],
    phases: list[np.ndarray],
    groups: list[Any],
    tokens: list[np.ndarray] | None = None,
    n_bins: int = 10,
    folds: int = 5,
    per_window: int = 64,
    seed: int = 0,
) -> PhaseProbe:
    """Cross-validated linear probe of the cycle phase from each layer's hidden states.

    Args:
        states: per window (layers + 1, T, C) hidden states (:func:`hidden_states`).
        phases: per window (T,) phases (:func:`cycle_phase`; NaN positions are skipped).
        groups: per window its record (or patient); folds never split a group.
        tokens: per window (T,) token ids, for the token-value-only baseline (skipped when None).
        n_bins: equal-width phase bins (classes).
        folds: grouped cross-validation folds (at most the number of groups).
        per_window: tokens sampled per window (bounds the probe's size).
        seed: seed of the sampling.

    Returns:
        A :class:`PhaseProbe`.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not (len(states) == len(phases) == len(groups)) or not states:
        raise ModelInputError(
            f"need as many states, phases and groups (got {len(states)}, {len(phases)}, {len(groups)})"
        )
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    gs: list[Any] = []
    toks: list[np.ndarray] = []
    for i, (s, p) in enumerate(zip(states, phases, strict=True)):
        T = s.shape[1]
        ok = np.flatnonzero(np.isfinite(np.asarray(p)[:T]))
        if ok.size == 0:
            continue
        pick = np.sort(rng.choice(ok, min(per_window, ok.size), replace=False))
        rows.append(s[:, pick])
        ys.append(np.asarray(p)[pick])
        gs.extend([groups[i]] * pick.size)
        if tokens is not None:
            toks.append(np.asarray(tokens[i])[pick])
    n_groups = len(set(gs))
    folds = min(folds, n_groups)
    if folds < 2:
        raise ModelInputError(f"the phase probe needs windows with beats from at least 2 records (got {n_groups})")
    X = np.concatenate(rows, axis=1)  # (L, N, C)
    phase = np.concatenate(ys)
    y = np.minimum((phase * n_bins).astype(int), n_bins - 1)
    g = np.asarray([str(v) for v in gs])
    cv = GroupKFold(n_splits=folds)
    splits = list(cv.split(X[0], y, g))

    def classify(features: np.ndarray, scale: bool = True) -> tuple[float, float]:
        accs = []
        for train, test in splits:
            steps = [StandardScaler()] if scale else []
            clf = make_pipeline(*steps, LogisticRegression(max_iter=300))
            clf.fit(features[train], y[train])
            accs.append(float((clf.predict(features[test]) == y[test]).mean()))
        return float(np.mean(accs)), float(np.std(accs))

    angle = 2 * np.pi * phase
    target = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    acc, std, err = [], [], []
    for layer in range(X.shape[0]):
        a, s = classify(X[layer])
        acc.append(a)
        std.append(s)
        pred = cross_val_predict(make_pipeline(StandardScaler(), Ridge(alpha=1.0)), X[layer], target, cv=splits)
        guess = np.arctan2(pred[:, 0], pred[:, 1]) / (2 * np.pi) % 1.0
        err.append(float(_circular_distance(guess, phase).mean()))
    baseline = float("nan")
    if tokens is not None:
        onehot = OneHotEncoder(handle_unknown="ignore").fit_transform(np.concatenate(toks)[:, None])
        baseline = classify(onehot, scale=False)[0]
    counts = np.bincount(y, minlength=n_bins)
    return PhaseProbe(
        layers=layer_names(X.shape[0]),
        accuracy=np.array(acc),
        accuracy_std=np.array(std),
        circular_error=np.array(err),
        token_baseline=baseline,
        chance=float(counts.max() / counts.sum()),
        n_bins=n_bins,
        n_samples=int(y.size),
        n_groups=n_groups,
        folds=folds,
    )


PROJECTIONS = ("pca", "tsne", "umap")


def project_states(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, C) -> (N, 2) with PCA (always available), t-SNE (scikit-learn) or UMAP (umap-learn).

    UMAP compiles itself on its first call (about a minute); PCA is instant.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ModelInputError(f"project_states needs (N >= 3, C) states, got shape {x.shape}")
    method = method.lower()
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (x.shape[0] - 1) / 3), random_state=seed).fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ModelInputError("UMAP needs umap-learn: pip install 'cardiolens[explain]'") from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    raise ModelInputError(f"unknown projection {method!r}; available: {', '.join(PROJECTIONS)}")


__all__ = [
    "PROJECTIONS",
    "HomonymSimilarity",
    "PhaseProbe",
    "cycle_phase",
    "hidden_states",
    "homonym_similarity",
    "layer_names",
    "phase_probe",
    "project_states",
]
