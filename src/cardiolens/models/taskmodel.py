"""A fine-tuned model: any registry backbone, a new head, and the input contract it was trained with.

:class:`TaskModel` takes float signal windows ``(B, leads, samples)`` in signal units at
``config.fs`` and returns logits, so the trainer, ``cardiolens predict``, the benchmarks and the
explanations all feed it the same thing whatever the backbone:

- a token model (the GPT) gets each lead of each window min-max tokenised exactly as
  :func:`cardiolens.signal.tokenize` does (HeartGPT's scheme), the leads run as separate sequences
  through the shared backbone and their features are concatenated;
- a signal model (the CNN) gets each lead of each window z-scored.

Outputs are (B, K) for record, window and beat classification, or (B, samples, K) for per-sample
tasks (beat detection), where the backbone's positions are interpolated back to samples.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cardiolens.errors import ModelInputError
from cardiolens.models.registry import get_architecture, register_architecture

log = logging.getLogger(__name__)

KINDS = ("multiclass", "binary", "multilabel", "per-sample")
POOLS = ("mean", "last", "none")


@dataclass
class TaskModelConfig:
    """What a fine-tuned model is and what it expects.

    Attributes:
        task: task name (see :func:`cardiolens.tasks.list_tasks`).
        kind: ``"multiclass"`` (softmax over ``classes``), ``"binary"`` (one sigmoid output for
            ``classes[1]``... stored as one class name), ``"multilabel"`` (a sigmoid per class) or
            ``"per-sample"`` (a sigmoid per sample and class).
        classes: output names, in output order.
        fs: sampling rate of the input, Hz.
        leads: lead names of the input, in channel order.
        window: samples per window the model reads.
        backbone: architecture name of the backbone (``"gpt"``, ``"resnet1d"``).
        backbone_config: the backbone's config as a dict.
        backbone_name: the backbone the user named (preset, shipped model or checkpoint), for cards.
        pool: how positions are pooled for one output per window: ``"mean"``, ``"last"`` or ``"none"``.
        n_extra: extra per-window features appended to the pooled features (e.g. RR intervals).
        thresholds: decision thresholds per output chosen on validation data (sigmoid kinds).
        dropout: dropout before the head.
        name: model name, for messages and cards.
    """

    task: str = "task"
    kind: str = "multiclass"
    classes: list[str] = field(default_factory=lambda: ["0", "1"])
    fs: float = 100.0
    leads: list[str] = field(default_factory=lambda: ["I"])
    window: int = 900
    backbone: str = "resnet1d"
    backbone_config: dict[str, Any] = field(default_factory=dict)
    backbone_name: str = "resnet1d"
    pool: str = "mean"
    n_extra: int = 0
    thresholds: list[float] | None = None
    dropout: float = 0.1
    name: str = "task-model"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelInputError(f"TaskModelConfig: kind must be one of {KINDS}, got {self.kind!r}")
        if self.pool not in POOLS:
            raise ModelInputError(f"TaskModelConfig: pool must be one of {POOLS}, got {self.pool!r}")
        if (self.kind == "per-sample") != (self.pool == "none"):
            raise ModelInputError("TaskModelConfig: per-sample tasks need pool='none', and only they may use it")
        self.classes = [str(c) for c in self.classes]
        self.leads = [str(x) for x in self.leads]
        if not self.classes or not self.leads or self.window < 1 or self.fs <= 0:
            raise ModelInputError("TaskModelConfig: classes, leads, window and fs must be non-empty / positive")
        if self.thresholds is not None and len(self.thresholds) != self.num_outputs:
            raise ModelInputError(f"TaskModelConfig: {len(self.thresholds)} thresholds for {self.num_outputs} outputs")

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "binary" else len(self.classes)

    @property
    def min_samples(self) -> int:
        """Shortest window the model accepts (half its window: shorter ones carry too little)."""
        return max(1, self.window // 2)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TaskModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelInputError(f"unknown TaskModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def uses_tokens(backbone: nn.Module) -> bool:
    """True for backbones that read integer tokens (the GPT), False for those that read signal."""
    return hasattr(backbone.config, "vocab_size")


def tokenize_torch(x: Tensor, levels: int) -> Tensor:
    """Min-max tokenise each row of ``x`` (..., T), identical to :func:`cardiolens.signal.tokenize`.

    Computed in float64 with round-half-to-even like numpy, so the tokens match exactly. A flat
    row (min == max) becomes all zeros here; the record checks refuse such input before it gets here.
    """
    x = x.double()
    lo = x.amin(dim=-1, keepdim=True)
    hi = x.amax(dim=-1, keepdim=True)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    top = levels - 1
    return torch.clamp(torch.round((x - lo) / span * top), 0, top).long()


def zscore_torch(x: Tensor) -> Tensor:
    """Per row: zero mean, unit standard deviation; flat rows become zeros."""
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / std.clamp_min(1e-6) * (std > 1e-6)


@register_architecture("task-model")
class TaskModel(nn.Module):
    """Backbone + head for one task; see the module notes for the input contract.

    Example:
        >>> import torch
        >>> cfg = TaskModelConfig(task="demo", classes=["N", "A"], backbone="resnet1d",
        ...                       backbone_config={"in_channels": 1}, window=500)
        >>> model = TaskModel(cfg).eval()
        >>> model(torch.randn(3, 1, 500)).shape
        torch.Size([3, 2])
    """

    config_class = TaskModelConfig
    architecture = "task-model"

    def __init__(self, config: TaskModelConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.config = config
        if backbone is None:
            cls = get_architecture(config.backbone)
            backbone = cls(cls.config_class.from_dict(config.backbone_config))
        self.backbone = backbone
        # the backbone's own head (LM logits, CNN classifier) is not used: drop its weights
        self.backbone.head = nn.Identity()
        self.tokens = uses_tokens(backbone)
        if self.tokens and config.window > backbone.config.block_size:
            raise ModelInputError(
                f"{config.name}: window of {config.window} samples exceeds the context of "
                f"{config.backbone_name} ({backbone.config.block_size} tokens)"
            )
        width = backbone.config.n_embd * (len(config.leads) if self.tokens else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width + config.n_extra, config.num_outputs)

    # -- backbone API ---------------------------------------------------------------------------
    def check_input(self, x: Tensor) -> None:
        cfg = self.config
        if not isinstance(x, Tensor) or x.dim() != 3 or not x.dtype.is_floating_point:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ModelInputError(f"{cfg.name}: input must be float windows (batch, leads, samples), got {shape}")
        if x.size(1) != len(cfg.leads):
            raise ModelInputError(
                f"{cfg.name}: expects {len(cfg.leads)} leads ({', '.join(cfg.leads)}), got {x.size(1)}"
            )
        if self.tokens and x.size(2) > self.backbone.config.block_size:
            raise ModelInputError(
                f"{cfg.name}: {x.size(2)} samples exceed the backbone context ({self.backbone.config.block_size})"
            )

    def backbone_input(self, x: Tensor) -> Tensor:
        """What the backbone reads: tokens (B * leads, T) for a token model, z-scored (B, leads, T) otherwise."""
        B, C, T = x.shape
        if self.tokens:
            return tokenize_torch(x.reshape(B * C, T), self.backbone.config.levels)  # (B*C, T)
        return zscore_torch(x)

    def forward_features(self, x: Tensor) -> Tensor:
        """Per-position features (B, T', D) of float windows (B, leads, T); leads concatenated for token models."""
        self.check_input(x)
        B, C, T = x.shape
        h = self.backbone.forward_features(self.backbone_input(x))
        if self.tokens:
            h = h.reshape(B, C, T, -1).permute(0, 2, 1, 3).reshape(B, T, -1)  # (B, T, C * D)
        return h

    def pool_features(self, features: Tensor) -> Tensor:
        if self.config.pool == "mean":
            return features.mean(dim=1)  # (B, D)
        if self.config.pool == "last":
            return features[:, -1]  # (B, D)
        return features  # (B, T', D)

    def forward_head(self, features: Tensor, extra: Tensor | None = None, length: int | None = None) -> Tensor:
        """Pooled features (B, D) -> logits (B, K); per-position features -> (B, length, K)."""
        h = self.dropout(features)
        if self.config.n_extra:
            if extra is None or extra.shape[-1] != self.config.n_extra:
                raise ModelInputError(f"{self.config.name}: needs {self.config.n_extra} extra features per window")
            h = torch.cat([h, extra.to(h.dtype)], dim=-1)
        out = self.head(h)
        if self.config.pool == "none" and length is not None and out.size(1) != length:
            out = F.interpolate(out.transpose(1, 2), size=length, mode="linear", align_corners=False).transpose(1, 2)
        return out

    def forward(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        """Logits for float windows ``x`` (B, leads, samples) (and ``extra`` (B, n_extra) features)."""
        return self.forward_head(self.pool_features(self.forward_features(x)), extra, length=x.size(-1))

    def probabilities(self, logits: Tensor) -> Tensor:
        """Softmax for multiclass, sigmoid otherwise."""
        return logits.softmax(dim=-1) if self.config.kind == "multiclass" else logits.sigmoid()

    @torch.no_grad()
    def predict_proba(self, x: Tensor, extra: Tensor | None = None) -> Tensor:
        return self.probabilities(self(x, extra))

    # -- fine-tuning helpers --------------------------------------------------------------------
    def layer_groups(self) -> list[nn.Module]:
        """Backbone groups from input to output, then the head."""
        return [*self.backbone.layer_groups(), self.head]

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def fit_input_channels(
    backbone: nn.Module, n_leads: int, keep_weights: bool, name: str = "backbone"
) -> tuple[nn.Module, str]:
    """A signal backbone that reads ``n_leads`` leads, and a note saying what was done ("" if nothing).

    A token backbone, or one that already reads ``n_leads``, is returned as it is. Otherwise the
    backbone is rebuilt for ``n_leads`` input channels. With ``keep_weights`` (a trained backbone)
    every weight is kept but the input layer's: a one-lead input layer is copied to every lead and
    divided by their number, a many-lead one summed over its leads to read one, so that the same
    signal on every lead (or one lead standing for all) gives the trained activations. Other lead
    counts have no such mapping and are refused.

    Raises:
        ModelInputError: a trained backbone of several leads for another number of leads, above one.
    """
    if uses_tokens(backbone) or backbone.config.in_channels == n_leads:
        return backbone, ""
    had = backbone.config.in_channels
    rebuilt = type(backbone)(dataclasses.replace(backbone.config, in_channels=n_leads, leads=None))
    if not keep_weights:
        return rebuilt, f"fresh {name} built for {n_leads} leads"
    if had != 1 and n_leads != 1:
        raise ModelInputError(
            f"{name} was trained on {had} leads and the task reads {n_leads}: its input layer cannot be mapped "
            "(only one lead to many, or many to one, can); choose a backbone trained on the task's leads, "
            "or a fresh one"
        )
    state, adapted = rebuilt.state_dict(), []
    for key, value in backbone.state_dict().items():
        target = state[key]
        if value.shape == target.shape:
            state[key] = value.clone()
        elif value.dim() >= 2 and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
            # the input layer: (out, leads, kernel)
            state[key] = value.expand_as(target) / n_leads if had == 1 else value.sum(dim=1, keepdim=True)
            adapted.append(key)
        else:
            raise ModelInputError(
                f"{name}: weight {key} of shape {tuple(value.shape)} has no counterpart for {n_leads} leads"
            )
    rebuilt.load_state_dict(state)
    how = (
        f"copied to each of the {n_leads} leads and divided by {n_leads}"
        if had == 1
        else f"summed over its {had} leads"
    )
    note = f"{name} trained on {had} lead(s) adapted to {n_leads}: its input layer ({', '.join(adapted)}) {how}"
    return rebuilt, note + "; every other weight kept"


def build_task_model(
    backbone: nn.Module,
    *,
    task: str,
    kind: str,
    classes: list[str],
    fs: float,
    leads: list[str],
    window: int,
    backbone_name: str,
    pool: str | None = None,
    n_extra: int = 0,
    dropout: float = 0.1,
    name: str | None = None,
) -> TaskModel:
    """Wrap a backbone (pretrained or fresh) into a :class:`TaskModel` with a new head.

    A signal backbone whose number of input channels differs from ``leads`` is rebuilt with fresh
    weights (the from-scratch CNN is sized to the task this way); a trained one is kept only if
    :func:`fit_input_channels` fitted it first. Its config is stored so the checkpoint rebuilds it.
    """
    if not uses_tokens(backbone) and backbone.config.in_channels != len(leads):
        backbone, note = fit_input_channels(backbone, len(leads), keep_weights=False, name=backbone_name)
        log.info("%s", note)
    if pool is None:
        pool = "none" if kind == "per-sample" else "mean"
    config = TaskModelConfig(
        task=task,
        kind=kind,
        classes=list(classes),
        fs=float(fs),
        leads=list(leads),
        window=int(window),
        backbone=backbone.architecture,
        backbone_config=backbone.config.to_dict(),
        backbone_name=backbone_name,
        pool=pool,
        n_extra=n_extra,
        dropout=dropout,
        name=name or f"{task}-{backbone_name}",
    )
    return TaskModel(config, backbone)
