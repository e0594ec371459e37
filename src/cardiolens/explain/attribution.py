"""Attributions: which samples of a window drove the model's score for one class (captum).

- :func:`grad_cam`: Grad-CAM (Selvaraju et al. 2017) at the layer a convolutional model declares
  (``gradcam_layer()``; the ResNet's first stage, where the map is finer in time than at the usual
  last stage and passes the deletion test that a last-stage map fails), upsampled to the input; one
  map per lead when the model keeps leads apart (its Grad-CAM layer sees one row per lead), else one
  map shared by all leads.
- :func:`hires_cam`: HiResCAM (Draelos & Carin 2020): gradient times activation at every position,
  summed over channels, without Grad-CAM's averaging of the gradient over time; read at an early
  stage (``hirescam_layer()``) where the map keeps the timing of individual waves.
- :func:`integrated_gradients`: integrated gradients (Sundararajan et al. 2017) for every model.
  Float models: along the path from a flat baseline (each lead's median) to the window; for a task
  model that z-scores its input, at its backbone's input (a straight path from a flat line keeps
  the z-scored shape, only its size grows). Models that tokenise (GPTs): tokens are not
  differentiable, so the path runs in the token-embedding space,
  from every token embedded as the window's median token to the real embeddings; the attribution
  of a token (summed over the embedding) is that of its sample, one to one.
- :func:`occlusion`: the score drop when a sliding patch of each lead is set to its median.
- :func:`attention_attribution`: the attention rollout of the token a classifier reads, as an
  explanation to compare with the others (it does not depend on the class).
- :func:`gradient_rollout`: gradient-weighted attention rollout (Chefer, Gur & Wolf 2021): each
  layer's attention weighted by the gradient of the class score, positive part, head mean,
  accumulated over layers; class-specific, from one forward and one backward pass.

Every function returns an :class:`Attribution` (values (leads, samples), the class explained, the
model's probability for it); :func:`attribute` dispatches by method name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cardiolens.errors import ModelInputError
from cardiolens.explain.adapter import ATTRIBUTION_METHODS, ExplainModel, Window, as_explainable, canonical_method


@dataclass
class Attribution:
    """An explanation of one window: a value per lead and sample.

    Attributes:
        method: ``gradcam``, ``ig``, ``occlusion`` or ``attention``.
        values: float32 (leads, samples); positive values support the target class.
        target: index of the class explained.
        target_name: its name.
        probability: the model's probability of that class on the window.
        window: the window explained.
        per_lead: False when one map is shared by every lead.
        seconds: time taken.
        info: method details (baseline, steps, convergence delta, layer, ...).
    """

    method: str
    values: np.ndarray
    target: int
    target_name: str
    probability: float
    window: Window
    per_lead: bool = True
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def baseline_signal(window: Window) -> np.ndarray:
    """The "nothing here" input: each lead flat at its median (the isoelectric level of an ECG)."""
    med = np.median(window.signal, axis=-1, keepdims=True)
    return np.broadcast_to(med, window.signal.shape).astype(np.float32)


def _finish(
    adapter: ExplainModel,
    method: str,
    values: np.ndarray,
    window: Window,
    target: int,
    prob: float,
    t0: float,
    per_lead: bool = True,
    **info: Any,
) -> Attribution:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != window.signal.shape:
        raise ModelInputError(f"{method}: attribution of shape {values.shape} for a window of {window.signal.shape}")
    return Attribution(
        method=method,
        values=values,
        target=target,
        target_name=adapter.class_name(target),
        probability=prob,
        window=window,
        per_lead=per_lead,
        seconds=time.perf_counter() - t0,
        info=info,
    )


def _rows_to_leads(values: Tensor, window: Window, what: str) -> np.ndarray:
    """(rows, T) token/feature-row values -> (leads, samples): one row per lead, or one row for all."""
    C, T = window.signal.shape
    values = values.detach().float()
    if values.size(-1) != T:
        raise ModelInputError(f"{what}: {values.size(-1)} positions for a window of {T} samples; cannot map them 1:1")
    if values.size(0) == C:
        return values.numpy()
    if values.size(0) == 1:
        return np.repeat(values.numpy(), C, axis=0)
    raise ModelInputError(f"{what}: {values.size(0)} rows for a window of {C} leads")


def grad_cam(
    model: nn.Module | ExplainModel, window: Window, target: int | str | None = None, position: int | None = None
) -> Attribution:
    """Grad-CAM of a convolutional model at its ``gradcam_layer()``, upsampled (linearly) to the window.

    Raises:
        ModelInputError: the model has no convolutional layer (the message lists what applies).
    """
    from captum.attr import LayerGradCam

    def cam(score: Any, layer: nn.Module, x: Tensor, target: int) -> Tensor:
        return LayerGradCam(score, layer).attribute(x, target=target, relu_attributions=True)  # (rows, 1, T')

    return _class_activation_map(model, window, target, position, "gradcam", cam)


def hires_cam(
    model: nn.Module | ExplainModel, window: Window, target: int | str | None = None, position: int | None = None
) -> Attribution:
    """HiResCAM of a convolutional model at its ``hirescam_layer()``, upsampled (linearly) to the window.

    Grad-CAM weights each channel by its gradient averaged over time, so a map can only say which
    channels matter, spread over where they are active; HiResCAM multiplies gradient and activation
    position by position (then sums the channels, keeps the positive part), so it says where.

    Raises:
        ModelInputError: the model has no convolutional layer (the message lists what applies).
    """
    from captum.attr import LayerGradientXActivation

    def cam(score: Any, layer: nn.Module, x: Tensor, target: int) -> Tensor:
        grad_x_act = LayerGradientXActivation(score, layer).attribute(x, target=target)  # (rows, channels, T')
        return torch.relu(grad_x_act.sum(dim=1, keepdim=True))  # (rows, 1, T')

    return _class_activation_map(model, window, target, position, "hirescam", cam)


def _class_activation_map(
    model: nn.Module | ExplainModel,
    window: Window,
    target: int | str | None,
    position: int | None,
    method: str,
    cam: Any,
) -> Attribution:
    """Run ``cam(score, layer, x, target) -> (rows, 1, T')`` at the method's layer and map it onto the
    window: upsampled linearly, one map per lead where the layer keeps leads apart."""
    from captum.attr import LayerAttribution

    adapter = as_explainable(model)
    adapter.require(method)
    layer = adapter.hirescam_layer if method == "hirescam" else adapter.gradcam_layer
    t0 = time.perf_counter()
    target, prob = adapter.target(window, target, position)
    with adapter.evaluating():
        attr = cam(adapter.scorer(window, position), layer, window.tensor(), target)
        attr = LayerAttribution.interpolate(attr, (window.n_samples,), interpolate_mode="linear")  # (rows, 1, T)
    rows = attr[:, 0].detach()
    per_lead = rows.size(0) == window.signal.shape[0] and rows.size(0) > 1
    values = _rows_to_leads(rows, window, _CAM_NAMES[method])
    return _finish(
        adapter,
        method,
        values,
        window,
        target,
        prob,
        t0,
        per_lead,
        position=position,
        layer=_layer_name(adapter, layer),
    )


_CAM_NAMES = {"gradcam": "Grad-CAM", "hirescam": "HiResCAM"}  # for error messages


def _layer_name(adapter: ExplainModel, layer: nn.Module) -> str:
    for name, module in adapter.model.named_modules():
        if module is layer:
            return name
    return type(layer).__name__


def integrated_gradients(
    model: nn.Module | ExplainModel,
    window: Window,
    target: int | str | None = None,
    n_steps: int = 32,
    position: int | None = None,
) -> Attribution:
    """Integrated gradients from a flat baseline (float models) or in token-embedding space (GPTs).

    Args:
        model: any supported model.
        window: from :func:`~cardiolens.explain.prepare_window`.
        target: class index or name (default: the predicted class).
        n_steps: points on the path (Gauss-Legendre); ``info["delta"]`` reports the completeness
            error (sum of attributions minus the score difference), which shrinks with more steps.
        position: for per-sample outputs, the sample whose score is explained (default: their mean).
    """
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    adapter = as_explainable(model)
    if n_steps < 2:
        raise ModelInputError(f"n_steps must be at least 2, got {n_steps}")
    t0 = time.perf_counter()
    target, prob = adapter.target(window, target, position)
    score = adapter.scorer(window, position)
    x = window.tensor()
    with adapter.evaluating():
        base = torch.as_tensor(baseline_signal(window))[None]
        if adapter.embedding_layer is None and adapter.input_layer is None:
            ig = IntegratedGradients(score)
            attr, delta = ig.attribute(
                x, base, target=target, n_steps=n_steps, internal_batch_size=n_steps, return_convergence_delta=True
            )
            values = attr[0].detach().numpy()
            info = {"baseline": "each lead at its median", "space": "signal"}
        elif adapter.embedding_layer is None:
            # the backbone's input after the task model's scaling; the flat baseline scales to zeros
            lig = LayerIntegratedGradients(score, adapter.input_layer)
            attr, delta = lig.attribute(
                x,
                base,
                target=target,
                n_steps=n_steps,
                internal_batch_size=n_steps,
                return_convergence_delta=True,
                attribute_to_layer_input=True,
            )
            values = _rows_to_leads(attr.reshape(-1, attr.size(-1)), window, "integrated gradients")
            info = {"baseline": "each lead at its median (scaled by the model)", "space": "backbone input"}
        else:
            values, delta, info = _embedding_ig(adapter, window, score, x, target, n_steps)
        with torch.no_grad():
            gap = float(score(x)[0, target]) - _baseline_score(adapter, window, score, target)
    return _finish(
        adapter,
        "ig",
        values,
        window,
        target,
        prob,
        t0,
        position=position,
        n_steps=n_steps,
        delta=float(delta.abs().sum()),
        score_gap=gap,
        **info,
    )


def _median_tokens(tokens: Tensor) -> Tensor:
    med = tokens.float().median(dim=-1, keepdim=True).values.round().long()  # (rows, 1)
    return med.expand_as(tokens)


def _embedding_ig(
    adapter: ExplainModel, window: Window, score: Any, x: Tensor, target: int, n_steps: int
) -> tuple[np.ndarray, Tensor, dict[str, Any]]:
    from captum.attr import IntegratedGradients

    wte = adapter.embedding_layer
    tokens = adapter.tokens(window)  # (rows, T)
    with torch.no_grad():
        emb = wte(tokens)[None]  # (1, rows, T, E)
        base = wte(_median_tokens(tokens))[None]
    state: dict[str, Tensor] = {}

    # the path point replaces the embedding's output; positions and everything after stay the model's own
    def substitute(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        return state["emb"].reshape(output.shape)

    def forward(e: Tensor) -> Tensor:  # e: (n, rows, T, E)
        state["emb"] = e
        return score(x.expand(e.size(0), -1, -1))

    handle = wte.register_forward_hook(substitute)
    try:
        ig = IntegratedGradients(forward)
        attr, delta = ig.attribute(
            emb, base, target=target, n_steps=n_steps, internal_batch_size=n_steps, return_convergence_delta=True
        )
    finally:
        handle.remove()
    values = _rows_to_leads(attr[0].sum(dim=-1), window, "integrated gradients")  # (rows, T) -> (leads, T)
    return values, delta, {"baseline": "every token = the window's median token", "space": "token embedding"}


def _baseline_score(adapter: ExplainModel, window: Window, score: Any, target: int) -> float:
    """The score of the integrated-gradients baseline (for the completeness check in ``info``)."""
    if adapter.embedding_layer is None:
        return float(score(torch.as_tensor(baseline_signal(window))[None])[0, target])
    wte = adapter.embedding_layer
    tokens = adapter.tokens(window)
    base = wte(_median_tokens(tokens))
    handle = wte.register_forward_hook(lambda m, i, o: base.reshape(o.shape))
    try:
        return float(score(window.tensor())[0, target])
    finally:
        handle.remove()


def occlusion(
    model: nn.Module | ExplainModel,
    window: Window,
    target: int | str | None = None,
    size: float = 0.1,
    stride: float | None = None,
    position: int | None = None,
) -> Attribution:
    """Occlusion (Zeiler & Fergus 2014): the score drop when a patch of one lead is set to its median.

    Args:
        size: patch length in seconds.
        stride: step between patches in seconds (default: half the patch; overlaps are averaged).
    """
    from captum.attr import Occlusion

    adapter = as_explainable(model)
    w = max(1, int(round(size * window.fs)))
    s = max(1, int(round((stride if stride is not None else size / 2) * window.fs)))
    if w > window.n_samples:
        raise ModelInputError(f"occlusion patch of {w} samples is longer than the {window.n_samples}-sample window")
    t0 = time.perf_counter()
    target, prob = adapter.target(window, target, position)
    with torch.no_grad(), adapter.evaluating():
        occ = Occlusion(adapter.scorer(window, position))
        attr = occ.attribute(
            window.tensor(),
            sliding_window_shapes=(1, w),
            strides=(1, s),
            baselines=torch.as_tensor(baseline_signal(window))[None],
            target=target,
            perturbations_per_eval=32,
        )
    values = attr[0].numpy()
    return _finish(
        adapter, "occlusion", values, window, target, prob, t0, position=position, patch_samples=w, stride_samples=s
    )


def _read_token(adapter: ExplainModel, position: int | None) -> int | str:
    """Which token's attention explains the output: the classifier's read-out token."""
    if position is not None:
        return position
    cfg = getattr(adapter.model, "config", None)
    pool = (
        adapter.gpt.config.head_pool
        if adapter.kind == "gpt"
        else getattr(cfg, "pool", getattr(cfg, "head_pool", "mean"))
    )
    if adapter.is_lm or pool == "last":
        return -1
    return "all"


def attention_attribution(
    model: nn.Module | ExplainModel,
    window: Window,
    target: int | str | None = None,
    position: int | None = None,
    residual: float = 0.5,
    relative_to_chance: bool = False,
) -> Attribution:
    """Attention rollout of the token the model's output reads (the mean over all tokens for a
    mean-pooled head), as a per-sample map. Not class-specific: ``target`` only labels it.
    ``relative_to_chance``: as a ratio to the rollout of uniform attention (see
    :func:`~cardiolens.explain.attention.attention_rollout`)."""
    from cardiolens.explain.attention import attention_maps, attention_rollout, chance_rollout

    adapter = as_explainable(model)
    adapter.require("attention")
    t0 = time.perf_counter()
    target, prob = adapter.target(window, target, position)
    token = _read_token(adapter, position)
    rows = adapter.tokens(window).size(0)
    values = []
    for row in range(rows):
        maps = attention_maps(adapter, window, row=row)
        if token == "all":
            flow = attention_rollout(maps, residual=residual).mean(axis=0)
            if relative_to_chance:
                # the ratio of the means: a mean of per-row ratios would weigh early tokens, which
                # more rows can see, more, and bring back the pile-up the ratio removes
                flow = flow / chance_rollout(maps, residual=residual).mean(axis=0)
            values.append(flow)
        else:
            values.append(
                attention_rollout(maps, token=int(token), residual=residual, relative_to_chance=relative_to_chance)
            )
    values = _rows_to_leads(torch.as_tensor(np.stack(values)), window, "attention")
    return _finish(
        adapter,
        "attention",
        values,
        window,
        target,
        prob,
        t0,
        position=position,
        token=token,
        residual=residual,
        relative_to_chance=relative_to_chance,
    )


def gradient_rollout(
    model: nn.Module | ExplainModel, window: Window, target: int | str | None = None, position: int | None = None
) -> Attribution:
    """Gradient-weighted attention rollout of the read-out token (Chefer, Gur & Wolf 2021).

    For every layer, ``Abar = mean over heads of (dScore/dA * A)^+``; relevance starts as the identity
    and each layer adds ``Abar @ R`` (the residual stream keeps what was there). The row of the token
    the output reads (all rows averaged for a mean-pooled head), without its own identity part, is
    the map. Unlike :func:`attention_attribution` it depends on the class explained.
    """
    from cardiolens.models.gpt import record_attention

    adapter = as_explainable(model)
    adapter.require("gradrollout")
    t0 = time.perf_counter()
    target, prob = adapter.target(window, target, position)
    token = _read_token(adapter, position)
    with adapter.evaluating(), record_attention(adapter.gpt) as recorded:
        score = adapter.scorer(window, position)(window.tensor())[0, target]
        weights = [layer[-1] for layer in recorded]  # (rows, H, T, T) each: the pass that gave the score
        if any(w.size(-2) != w.size(-1) for w in weights):  # a cached or last-position-only forward
            raise ModelInputError("gradient rollout needs every position's attention over the whole window")
        grads = torch.autograd.grad(score, weights)
    values = []
    for row in range(weights[0].size(0)):
        T = weights[0].size(-1)
        relevance = torch.eye(T, dtype=torch.float64)
        for a, g in zip(weights, grads, strict=True):
            weighted = (g[row] * a[row]).detach().double().clamp(min=0).mean(dim=0)  # (T, T)
            relevance = relevance + weighted @ relevance
        relevance = relevance - torch.eye(T, dtype=torch.float64)  # what flowed in, not the token itself
        values.append(relevance.mean(dim=0) if token == "all" else relevance[int(token)])
    values = _rows_to_leads(torch.stack(values).float(), window, "gradient rollout")
    return _finish(adapter, "gradrollout", values, window, target, prob, t0, position=position, token=token)


_FUNCTIONS = {
    "gradcam": grad_cam,
    "hirescam": hires_cam,
    "gradrollout": gradient_rollout,
    "ig": integrated_gradients,
    "occlusion": occlusion,
    "attention": attention_attribution,
}


def attribute(model: nn.Module | ExplainModel, window: Window, method: str, **kwargs: Any) -> Attribution:
    """Run one attribution method by name (``gradcam``, ``ig``/``integrated_gradients``, ``occlusion``,
    ``attention``/``rollout``); keyword arguments go to that method.

    Raises:
        ModelInputError: an unknown method, or one that does not apply to the model (listing those that do).
    """
    adapter = as_explainable(model)
    name = canonical_method(method)
    if name not in ATTRIBUTION_METHODS:
        raise ModelInputError(
            f"{method!r} is not an attribution method; attribution methods for {adapter.name!r}: "
            f"{', '.join(attribution_methods(adapter))}"
        )
    adapter.require(name)
    return _FUNCTIONS[name](adapter, window, **kwargs)


def attribution_methods(model: nn.Module | ExplainModel) -> list[str]:
    """The attribution methods that apply to ``model``."""
    available = as_explainable(model).available_methods()
    return [m for m in ATTRIBUTION_METHODS if m in available]


__all__ = [
    "Attribution",
    "attention_attribution",
    "attribute",
    "attribution_methods",
    "baseline_signal",
    "grad_cam",
    "integrated_gradients",
    "occlusion",
]
