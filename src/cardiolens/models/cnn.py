"""A 1-D residual CNN: the from-scratch supervised baseline of every task benchmark.

Pre-activation residual blocks (He et al. 2016) over (B, leads, samples) signal, as the
ResNet baselines of Hannun et al. 2019 and Ribeiro et al. 2020, made small enough to train on a
CPU. It follows the backbone API of the GPT: :meth:`ResNet1d.forward_features` gives per-position
features (B, T', C) (``T' = samples / total stride``), :meth:`ResNet1d.forward_head` reads them out.

Example:
    >>> import torch
    >>> model = ResNet1d(ResNet1dConfig(in_channels=1, num_outputs=4)).eval()
    >>> model(torch.randn(2, 1, 900)).shape
    torch.Size([2, 4])
    >>> model.forward_features(torch.randn(2, 1, 900)).shape
    torch.Size([2, 57, 128])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cardiolens.errors import ModelInputError
from cardiolens.models.registry import register_architecture, register_model

_POOLS = ("mean", "max", "none")


@dataclass
class ResNet1dConfig:
    """Configuration of :class:`ResNet1d`. The defaults build a ~0.5 M-parameter single-lead model.

    Attributes:
        in_channels: leads of the input.
        widths: channels of each stage.
        blocks: residual blocks per stage.
        strides: down-sampling factor of the first block of each stage (1 keeps the time resolution).
        dilations: dilation of every convolution in each stage (widens the view without striding,
            for per-sample outputs).
        kernel_size: convolution width inside the blocks (odd).
        stem_kernel, stem_stride: the first convolution.
        dropout: between the two convolutions of a block, and before the head.
        num_outputs: outputs of the head.
        head_pool: ``"mean"``/``"max"`` over positions (one output per input), or ``"none"`` (one per position).
        head_activation: what ``predict_proba`` applies: ``"sigmoid"``, ``"softmax"`` or ``"none"``.
        modality, fs, leads: the signal the model expects (for messages and model cards).
        name: preset name.
    """

    in_channels: int = 1
    widths: tuple[int, ...] = (32, 64, 96, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    dilations: tuple[int, ...] = (1, 1, 1, 1)
    kernel_size: int = 9
    stem_kernel: int = 15
    stem_stride: int = 2
    dropout: float = 0.1
    num_outputs: int = 1
    head_pool: str = "mean"
    head_activation: str = "softmax"
    modality: str | None = "ECG"
    fs: float | None = 100.0
    leads: tuple[str, ...] | None = None
    name: str = field(default="resnet1d")

    def __post_init__(self) -> None:
        for key in ("widths", "blocks", "strides", "dilations"):
            setattr(self, key, tuple(int(v) for v in getattr(self, key)))
        if self.leads is not None:
            self.leads = tuple(self.leads)
        n = len(self.widths)
        if not n or any(len(getattr(self, k)) != n for k in ("blocks", "strides", "dilations")):
            raise ModelInputError(
                f"ResNet1dConfig {self.name!r}: widths, blocks, strides and dilations need one value per stage"
            )
        if min(self.widths + self.blocks + self.strides + self.dilations) < 1 or self.in_channels < 1:
            raise ModelInputError(f"ResNet1dConfig {self.name!r}: sizes must be positive integers")
        if self.kernel_size % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ModelInputError(f"ResNet1dConfig {self.name!r}: kernel sizes must be odd")
        if self.head_pool not in _POOLS:
            raise ModelInputError(f"ResNet1dConfig {self.name!r}: head_pool must be one of {_POOLS}")
        if self.leads is not None and len(self.leads) != self.in_channels:
            raise ModelInputError(
                f"ResNet1dConfig {self.name!r}: {len(self.leads)} lead names for {self.in_channels} channels"
            )

    @property
    def total_stride(self) -> int:
        return self.stem_stride * math.prod(self.strides)

    @property
    def n_embd(self) -> int:
        """Width of the features (the name the GPT uses, so task code reads one attribute)."""
        return self.widths[-1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ResNet1dConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelInputError(f"unknown ResNet1dConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


class ResidualBlock(nn.Module):
    """BN-ReLU-Conv-BN-ReLU-Dropout-Conv with a projected shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, dropout: float):
        super().__init__()
        pad = dilation * (kernel // 2)
        self.bn1 = nn.BatchNorm1d(c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, dilation=dilation, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.AvgPool1d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                nn.Conv1d(c_in, c_out, 1, bias=False),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        skip = self.shortcut(x)
        return out + skip[..., : out.size(-1)]


@register_architecture("resnet1d")
class ResNet1d(nn.Module):
    """1-D residual CNN over (B, leads, samples) float signal; see :class:`ResNet1dConfig`."""

    config_class = ResNet1dConfig
    architecture = "resnet1d"

    def __init__(self, config: ResNet1dConfig | None = None, **overrides: Any):
        super().__init__()
        config = config if config is not None else ResNet1dConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        c = config.widths[0]
        self.stem = nn.Conv1d(
            config.in_channels,
            c,
            config.stem_kernel,
            stride=config.stem_stride,
            padding=config.stem_kernel // 2,
            bias=False,
        )
        stages = []
        for width, n_blocks, stride, dilation in zip(
            config.widths, config.blocks, config.strides, config.dilations, strict=True
        ):
            blocks = []
            for j in range(n_blocks):
                blocks.append(
                    ResidualBlock(c, width, config.kernel_size, stride if j == 0 else 1, dilation, config.dropout)
                )
                c = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.norm = nn.BatchNorm1d(c)
        self.head_dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c, config.num_outputs)

    def layer_groups(self) -> list[nn.Module]:
        """Modules from input to output, the unit of freezing and layer-wise learning rates."""
        return [self.stem, *self.stages, self.norm]

    def gradcam_layer(self) -> nn.Module:
        """The first residual stage, the layer Grad-CAM reads. Grad-CAM is usually read at the last
        stage, but on the shipped ``rhythm-ecg`` a map from the last stages (one value per 16
        samples) is no better than random at the deletion test, and one from the first stage is
        (``benchmarks/cam_layers.py``; docs/BENCHMARKS.md, interpretability)."""
        return self.stages[0]

    def hirescam_layer(self) -> nn.Module:
        """The first residual stage, the layer HiResCAM reads: its time resolution is 8x the last
        stage's, and on the shipped ``rhythm-ecg`` a map read there passes the deletion test that a
        last-stage map fails (docs/BENCHMARKS.md, interpretability)."""
        return self.stages[0]

    def num_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def check_signal(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or not x.dtype.is_floating_point:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ModelInputError(
                f"{self.config.name}: input must be a float tensor (batch, leads, samples), got {shape}"
            )
        if x.size(1) != self.config.in_channels:
            raise ModelInputError(f"{self.config.name}: expects {self.config.in_channels} leads, got {x.size(1)}")

    def forward_features(self, x: Tensor) -> Tensor:
        """Per-position features (B, T', C) of float signal (B, leads, samples)."""
        self.check_signal(x)
        h = self.stem(x)  # (B, C0, T/stem_stride)
        for stage in self.stages:
            h = stage(h)
        h = torch.relu(self.norm(h))  # (B, C, T')
        return h.transpose(1, 2)  # (B, T', C)

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, T', C) features -> (B, K) pooled logits, or (B, T', K) with ``head_pool="none"``."""
        if self.config.head_pool == "mean":
            features = features.mean(dim=1)
        elif self.config.head_pool == "max":
            features = features.amax(dim=1)
        return self.head(self.head_dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


PRESETS: dict[str, ResNet1dConfig] = {
    # record/window classification: 16x down-sampling, receptive field of a few seconds at 100 Hz
    "resnet1d": ResNet1dConfig(name="resnet1d"),
    # twice the blocks per stage, for 12-lead diagnosis
    "resnet1d-12lead": ResNet1dConfig(
        name="resnet1d-12lead", in_channels=12, blocks=(2, 2, 2, 2), head_activation="sigmoid"
    ),
    # per-sample outputs (beat detection): no down-sampling, dilations give ~1 s of view at 100 Hz
    "resnet1d-dense": ResNet1dConfig(
        name="resnet1d-dense",
        widths=(32, 32, 48, 48),
        strides=(1, 1, 1, 1),
        dilations=(1, 2, 4, 8),
        stem_stride=1,
        head_pool="none",
        head_activation="sigmoid",
    ),
}


def _register(name: str) -> None:
    def build(**overrides: Any) -> ResNet1d:
        try:
            return ResNet1d(dataclasses.replace(PRESETS[name], **overrides))
        except TypeError as exc:
            known = sorted(f.name for f in dataclasses.fields(ResNet1dConfig))
            raise ModelInputError(f"{name}: {exc}; config fields: {', '.join(known)}") from None

    build.__name__ = name.replace("-", "_")
    build.__doc__ = f"ResNet1d preset {name!r}: {PRESETS[name]}"
    register_model(name)(build)


for _name in PRESETS:
    _register(_name)
