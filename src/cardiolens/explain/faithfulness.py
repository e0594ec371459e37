"""Is an explanation faithful to the model? Deletion/insertion curves and the randomisation check.

- Deletion (Petsiuk et al. 2018, RISE): set the most-attributed samples to the baseline (each
  lead's median; for a bare GPT this is its median token) first, a fraction at a time, and follow
  the model's probability of the explained class. A faithful explanation makes it fall fast: a
  small area under the curve. Insertion starts from the baseline and puts the most-attributed
  samples back first: a large area. Both are compared with the same curves for random orders.
- Model randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): re-initialise the
  weights and explain again; an explanation that still looks the same (high rank correlation)
  explains the input, not the model. Cascading randomisation re-initialises from the output layer
  down, one group of layers at a time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from cardiolens.errors import ModelInputError
from cardiolens.explain.adapter import ExplainModel, Window, as_explainable
from cardiolens.explain.attribution import Attribution, attribute, baseline_signal

MODES = ("deletion", "insertion")


@dataclass
class Curve:
    """Probability of the explained class as a growing fraction of samples is deleted (or inserted)."""

    mode: str
    fractions: np.ndarray
    scores: np.ndarray

    @property
    def auc(self) -> float:
        """Area under the curve over fractions 0..1 (trapezoid)."""
        return float(np.trapezoid(self.scores, self.fractions))


def ranking(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat indices of ``values`` from the largest to the smallest, ties in random order."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    tie = np.random.default_rng(seed).random(flat.size)
    return np.lexsort((tie, -flat))


def perturbation_curve(
    model: nn.Module | ExplainModel,
    window: Window,
    order: np.ndarray,
    target: int,
    mode: str = "deletion",
    steps: int = 20,
    position: int | None = None,
) -> Curve:
    """The model's probability of ``target`` while samples are deleted (or inserted) in ``order``.

    Args:
        model: the model.
        window: the window.
        order: flat indices into (leads, samples), first deleted/inserted first (:func:`ranking`).
        target: class index.
        mode: ``"deletion"`` or ``"insertion"``.
        steps: fractions 0, 1/steps, ..., 1 (all evaluated in one batch).
        position: for per-sample outputs, the sample explained.
    """
    if mode not in MODES:
        raise ModelInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    adapter = as_explainable(model)
    x = window.signal.astype(np.float32)
    base = baseline_signal(window)
    order = np.asarray(order)
    n = x.size
    if order.size != n:
        raise ModelInputError(f"order has {order.size} entries for a window of {n} values")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    batch = np.empty((steps + 1, *x.shape), dtype=np.float32)
    start, other = (x, base) if mode == "deletion" else (base, x)
    for i, f in enumerate(fractions):
        k = int(round(f * n))
        flat = start.ravel().copy()
        flat[order[:k]] = other.ravel()[order[:k]]
        batch[i] = flat.reshape(x.shape)
    with torch.no_grad(), adapter.evaluating():
        probs = adapter.probabilities(adapter.scorer(window, position)(torch.as_tensor(batch)))[:, target]
    return Curve(mode, fractions, probs.numpy().astype(np.float64))


@dataclass
class Faithfulness:
    """Deletion/insertion areas of several explanations of one window, and of random orders.

    Attributes:
        target, target_name: the class followed.
        deletion, insertion: method -> area under the curve (``"random"``, ``"random blocks"``: the
            mean of the random orders of samples, of blocks).
        curves: method -> {"deletion": Curve, "insertion": Curve}.
    """

    target: int
    target_name: str
    deletion: dict[str, float]
    insertion: dict[str, float]
    curves: dict[str, dict[str, Curve]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Per method: deletion and insertion area and their margins over the random references
        (positive = better than random)."""
        out: dict[str, Any] = {"target": self.target_name}
        for m in self.deletion:
            row = {
                "deletion_auc": self.deletion[m],
                "insertion_auc": self.insertion[m],
                "deletion_margin": self.deletion["random"] - self.deletion[m],
                "insertion_margin": self.insertion[m] - self.insertion["random"],
            }
            if "random blocks" in self.deletion:
                row["deletion_margin_blocks"] = self.deletion["random blocks"] - self.deletion[m]
                row["insertion_margin_blocks"] = self.insertion[m] - self.insertion["random blocks"]
            out[m] = row
        return out


def faithfulness(
    model: nn.Module | ExplainModel,
    attributions: list[Attribution],
    steps: int = 20,
    n_random: int = 3,
    seed: int = 0,
    block: float | None = 0.1,
) -> Faithfulness:
    """Deletion and insertion curves of explanations of the same window and class, with random baselines.

    Two random references: ``"random"`` deletes single samples in random order (scattered spikes
    at the baseline level), ``"random blocks"`` deletes whole ``block``-second stretches of a lead
    in random order. A smooth map (Grad-CAM) deletes contiguous stretches, which disturb a model
    differently from scattered samples; it is fairly compared with the block reference.

    Args:
        model: the model explained.
        attributions: explanations of one window for one class (e.g. from :func:`~cardiolens.explain.attribute`).
        steps: points per curve.
        n_random: random orders averaged for each baseline.
        seed: seed of the random orders and of tie-breaking.
        block: seconds per block of the ``"random blocks"`` reference (``None``: no block reference).
    """
    if not attributions:
        raise ModelInputError("faithfulness needs at least one attribution")
    first = attributions[0]
    window, target = first.window, first.target
    for a in attributions:
        if a.window is not window or a.target != target:
            raise ModelInputError("all attributions must explain the same window and the same class")
    position = first.info.get("position")
    curves: dict[str, dict[str, Curve]] = {}
    for a in attributions:
        order = ranking(a.values, seed)
        curves[a.method] = {m: perturbation_curve(model, window, order, target, m, steps, position) for m in MODES}
    rng = np.random.default_rng(seed)
    rand: dict[str, list[Curve]] = {m: [] for m in MODES}
    for _ in range(n_random):
        order = rng.permutation(window.signal.size)
        for m in MODES:
            rand[m].append(perturbation_curve(model, window, order, target, m, steps, position))
    curves["random"] = {m: Curve(m, rand[m][0].fractions, np.mean([c.scores for c in rand[m]], axis=0)) for m in MODES}
    if block is not None:
        C, T = window.signal.shape
        size = max(1, int(round(block * window.fs)))
        starts = [(lead, a) for lead in range(C) for a in range(0, T, size)]
        blocks: dict[str, list[Curve]] = {m: [] for m in MODES}
        for _ in range(n_random):
            picked = rng.permutation(len(starts))
            order = np.concatenate(
                [starts[i][0] * T + np.arange(starts[i][1], min(starts[i][1] + size, T)) for i in picked]
            )
            for m in MODES:
                blocks[m].append(perturbation_curve(model, window, order, target, m, steps, position))
        curves["random blocks"] = {
            m: Curve(m, blocks[m][0].fractions, np.mean([c.scores for c in blocks[m]], axis=0)) for m in MODES
        }
    return Faithfulness(
        target=target,
        target_name=first.target_name,
        deletion={k: v["deletion"].auc for k, v in curves.items()},
        insertion={k: v["insertion"].auc for k, v in curves.items()},
        curves=curves,
    )


# -- model randomisation ------------------------------------------------------------------------


def _reset(module: nn.Module) -> None:
    for m in module.modules():
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()


def layer_groups_top_down(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named groups of layers from the output down to the input (for cascading randomisation)."""
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        heads = [(n, m) for n, m in model.named_children() if m is not backbone]
        return heads + [(f"backbone.{n}", m) for n, m in layer_groups_top_down(backbone)]
    groups = getattr(model, "layer_groups", None)
    if callable(groups):
        body = list(groups())
        named = {id(m): n for n, m in model.named_modules()}
        inside = {id(p) for g in body for p in g.parameters()}
        rest = [(n, m) for n, m in model.named_children() if not any(id(p) in inside for p in m.parameters())]
        rest = [(n, m) for n, m in rest if any(True for _ in m.parameters())]

        def name(g: nn.Module, i: int) -> str:
            if id(g) in named:
                return named[id(g)]
            parts = [named[id(c)] for c in g.children() if id(c) in named]  # an ad-hoc group (GPT embeddings)
            return "+".join(parts) or f"group {i}"

        return rest + [(name(g, i), g) for i, g in reversed(list(enumerate(body)))]
    return [(n, m) for n, m in reversed(list(model.named_children())) if any(True for _ in m.parameters())]


def randomized_copy(model: nn.Module, seed: int = 0, groups: int | None = None) -> nn.Module:
    """A deep copy of ``model`` with re-initialised weights.

    Args:
        model: the model (left unchanged).
        seed: seed of the new weights.
        groups: re-initialise only the top ``groups`` layer groups (:func:`layer_groups_top_down`);
            ``None`` re-initialises everything.
    """
    clone = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if groups is None:
            _reset(clone)
        else:
            for _, m in layer_groups_top_down(clone)[:groups]:
                _reset(m)
    return clone.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray, absolute: bool = True) -> float:
    """Spearman correlation of two explanations (of their magnitudes by default); NaN if one is constant."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


@dataclass
class RandomizationCheck:
    """Rank correlation between an explanation and the same explanation of randomised models.

    Attributes:
        method: the attribution method.
        stages: what was randomised at each stage (``"all"``, or the top groups for cascading).
        spearman_abs: correlation of |values| at each stage (near 0 passes the check).
        spearman: correlation of the signed values at each stage.
    """

    method: str
    stages: list[str]
    spearman_abs: list[float]
    spearman: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "stages": [
                {"randomised": s, "spearman_abs": a, "spearman": b}
                for s, a, b in zip(self.stages, self.spearman_abs, self.spearman, strict=True)
            ],
        }


def randomization_check(
    model: nn.Module | ExplainModel,
    window: Window,
    method: str,
    target: int | str | None = None,
    cascading: bool = False,
    seed: int = 0,
    reference: Attribution | None = None,
    **kwargs: Any,
) -> RandomizationCheck:
    """The model-randomisation sanity check of one attribution method on one window.

    Args:
        model: the trained model.
        window: the window.
        method: attribution method name.
        target: class explained (default: the trained model's predicted class, kept for the random models).
        cascading: randomise the layer groups one more at a time from the output down, instead of all at once.
        seed: seed of the random weights.
        reference: the trained model's attribution when already computed.
        **kwargs: passed to the method.
    """
    adapter = as_explainable(model)
    ref = reference or attribute(adapter, window, method, target=target, **kwargs)
    base_model = adapter.model
    if cascading:
        names = [n for n, _ in layer_groups_top_down(base_model)]
        stages = [(f"top {k}: {names[k - 1]}", k) for k in range(1, len(names) + 1)]
    else:
        stages = [("all", None)]
    labels, s_abs, s_sign = [], [], []
    for label, k in stages:
        rand = randomized_copy(base_model, seed=seed, groups=k)
        expl = attribute(ExplainModel(rand), window, ref.method, target=ref.target, **kwargs)
        labels.append(label)
        s_abs.append(rank_correlation(ref.values, expl.values, True))
        s_sign.append(rank_correlation(ref.values, expl.values, False))
    return RandomizationCheck(ref.method, labels, s_abs, s_sign)


__all__ = [
    "MODES",
    "Curve",
    "Faithfulness",
    "RandomizationCheck",
    "faithfulness",
    "layer_groups_top_down",
    "perturbation_curve",
    "randomization_check",
    "randomized_copy",
    "rank_correlation",
    "ranking",
]
