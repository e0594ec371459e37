"""One view of every model the explanations run on: float window in, class logits out.

Interpretability methods need the same few things from very different models: a function from a
float window (B, leads, samples) to class scores, the token embedding of a transformer (where
integrated gradients is taken, because tokenisation is not differentiable), the convolution stage
Grad-CAM reads, the class names and the sampling rate. :class:`ExplainModel` finds them on

- a bare :class:`~cardiolens.models.GPT` (HeartGPT's files, ``ecgpt-small``): the float window is
  tokenised with the window's own min-max scale held fixed (so that perturbing samples during
  occlusion or deletion replaces tokens and never rescales the rest of the window);
- a fine-tuned task model (``cardiolens.tasks.finetune.TaskModel``: float windows in, logits out)
  whose ``.backbone`` is a GPT (tokenised inside the model) or a convolutional ``ResNet1d``;
- a bare ``ResNet1d`` or any other module mapping float (B, leads, samples) to logits.

Scores are always (B, K) logits: a per-sample output (B, samples, K) is averaged over samples
(or read at one ``position``), a language model's last-position next-token logits are used as K
classes, and a single sigmoid output ``z`` becomes two classes with logits ``[-z/2, z/2]`` (their
softmax is ``[1 - sigmoid(z), sigmoid(z)]``; an attribution of either class is half that of ``z``,
with the sign of the class), so that "explain the predicted class" means the same for all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cardiolens.errors import ModelInputError, RecordError
from cardiolens.signal.leads import ECG_LEAD_NAMES, modality
from cardiolens.signal.record import Record
from cardiolens.signal.resample import resample as resample_signal
from cardiolens.signal.tokenize import tokenize

log = logging.getLogger(__name__)

# every method explain/ offers, in the order a report shows them
METHODS = (
    "attention",
    "embeddings",
    "physiology",
    "gradcam",
    "hirescam",
    "ig",
    "occlusion",
    "gradrollout",
    "faithfulness",
    "randomization",
)
ATTRIBUTION_METHODS = ("gradcam", "hirescam", "ig", "occlusion", "attention", "gradrollout")
_ALIASES = {
    "integrated_gradients": "ig",
    "integrated-gradients": "ig",
    "grad-cam": "gradcam",
    "grad_cam": "gradcam",
    "hires-cam": "hirescam",
    "hires_cam": "hirescam",
    "grad-rollout": "gradrollout",
    "grad_rollout": "gradrollout",
    "rollout": "attention",
    "randomisation": "randomization",
}
# a float model without a window of its own explains this many seconds
DEFAULT_SECONDS = 10.0


def canonical_method(name: str) -> str:
    """The canonical name of a method (``integrated_gradients`` -> ``ig``); raises on unknown names."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ModelInputError(f"unknown explanation method {name!r}; available: {', '.join(METHODS)}")
    return key


@dataclass
class Window:
    """One window of signal, prepared for a model (resampled to its rate, cropped to its context).

    Attributes:
        signal: float32 (leads, samples) at ``fs``.
        fs: the model's sampling rate.
        leads: lead names.
        units: unit of each lead (``"mV"`` leads are drawn on ECG paper).
        start: first sample of the window in the source (at ``fs``).
        source: file or description the window came from.
        tokens: int64 (samples,) tokens of a single-lead window for a bare GPT, else ``None``.
        scale: the tokeniser's ``(min, max)`` for ``tokens``.
        resampled_from: the source rate when the window was resampled, else ``None``.
        extra: per-window features a task model reads besides the signal (held fixed while explaining).
    """

    signal: np.ndarray
    fs: float
    leads: list[str]
    units: list[str] = field(default_factory=list)
    start: int = 0
    source: str = "signal"
    tokens: np.ndarray | None = None
    scale: tuple[float, float] | None = None
    resampled_from: float | None = None
    extra: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[-1])

    @property
    def times(self) -> np.ndarray:
        """Time of each sample in seconds from the start of the source."""
        return (np.arange(self.n_samples) + self.start) / self.fs

    def tensor(self) -> Tensor:
        """The window as a float32 tensor (1, leads, samples)."""
        return torch.as_tensor(np.ascontiguousarray(self.signal, dtype=np.float32))[None]


def _is_gpt(module: Any) -> bool:
    from cardiolens.models.gpt import GPT

    return isinstance(module, GPT)


class ExplainModel:
    """What the explanation methods need from a model; build it with :func:`as_explainable`.

    Attributes:
        model: the wrapped model (put in eval mode while explaining).
        kind: ``"gpt"`` (bare GPT over tokens), ``"task-gpt"`` (float model over a GPT backbone),
            ``"conv"`` (a convolutional model: ResNet1d or a task model over one) or ``"signal"``.
        gpt: the GPT (bare or backbone) for attention and hidden states, else ``None``.
        name: the model's name for messages and figures.
        fs: sampling rate the model expects (Hz), when it says.
        window: samples per input the model expects (``None``: any length).
        n_leads: leads per input.
        lead_names: the leads the model expects by name, when it says.
        modality: ``"ECG"``/``"PPG"`` when the model says.
    """

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise ModelInputError(f"expected a torch model (nn.Module), got {type(model).__name__}")
        self.model = model
        cfg = getattr(model, "config", None)
        backbone = getattr(model, "backbone", None)
        self.gpt: nn.Module | None = None
        self._gradcam: nn.Module | None = None
        self._hirescam: nn.Module | None = None
        if _is_gpt(model):
            self.kind, self.gpt = "gpt", model
        elif backbone is not None and _is_gpt(backbone):
            self.kind, self.gpt = "task-gpt", backbone
        else:
            layer = None
            for owner in (backbone, model):
                if owner is not None and callable(getattr(owner, "gradcam_layer", None)):
                    layer = owner.gradcam_layer()
                    break
            if layer is None and any(isinstance(m, nn.Conv1d) for m in model.modules()):
                convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
                layer = convs[-1]  # no declared layer: the last convolution
            self._gradcam = layer
            # HiResCAM reads an early stage where the model declares one (finer in time), else Grad-CAM's layer
            fine = next((o for o in (backbone, model) if callable(getattr(o, "hirescam_layer", None))), None)
            self._hirescam = fine.hirescam_layer() if fine is not None else layer
            self.kind = "conv" if layer is not None else "signal"
        gcfg = getattr(self.gpt if self.gpt is not None else backbone, "config", None)
        self.name = str(getattr(cfg, "name", None) or getattr(gcfg, "name", None) or type(model).__name__)
        fs = getattr(cfg, "fs", None) or getattr(gcfg, "fs", None)
        self.fs = float(fs) if fs else None
        self.modality = getattr(cfg, "modality", None) or getattr(gcfg, "modality", None)
        leads = getattr(cfg, "leads", None)
        self.lead_names = [str(x) for x in leads] if leads else None
        n_leads = getattr(cfg, "in_channels", None) or (len(self.lead_names) if self.lead_names else None)
        self.n_leads = int(n_leads) if n_leads else 1
        window = getattr(cfg, "window", None)
        if self.kind == "gpt":
            window = self.gpt.config.block_size
        self.window = int(window) if window else None
        self._classes = getattr(cfg, "classes", None)
        self.n_extra = int(getattr(cfg, "n_extra", 0) or 0)
        self.min_samples = getattr(cfg, "min_samples", None)

    # -- what the model is ---------------------------------------------------------------------
    @property
    def has_attention(self) -> bool:
        return self.gpt is not None

    @property
    def embedding_layer(self) -> nn.Module | None:
        """The token embedding (``wte``) of a GPT-based model, where integrated gradients is taken."""
        return self.gpt.wte if self.gpt is not None else None

    @property
    def gradcam_layer(self) -> nn.Module | None:
        return self._gradcam

    @property
    def hirescam_layer(self) -> nn.Module | None:
        return self._hirescam

    @property
    def input_layer(self) -> nn.Module | None:
        """The first layer of a float backbone that a task model feeds after its own scaling (z-score).

        Integrated gradients is taken at this layer's input: along a straight path from a flat
        baseline, a per-window z-score sees the same shape at every point (only its size grows), so
        the model's output would not change until the very start of the path and the attributions
        would sum to about nothing. ``None`` for models that read the signal as given.
        """
        backbone = getattr(self.model, "backbone", None)
        if self.gpt is not None or backbone is None or not callable(getattr(self.model, "backbone_input", None)):
            return None
        return next((m for m in backbone.modules() if isinstance(m, nn.Conv1d | nn.Linear)), None)

    @property
    def is_lm(self) -> bool:
        return self.kind == "gpt" and self.gpt.config.head == "lm"

    def _raw_outputs(self) -> int:
        cfg = getattr(self.model, "config", None)
        if self.is_lm:
            return self.gpt.config.vocab_size
        for key in ("num_outputs", "num_classes"):
            value = getattr(cfg, key, None)
            if value:
                return int(value)
        if self._classes:
            return len(self._classes)
        return 0  # unknown until run

    @property
    def _activation(self) -> str:
        cfg = getattr(self.model, "config", None)
        if self.is_lm:
            return "softmax"
        kind = getattr(cfg, "kind", None)  # a TaskModel: multiclass, binary, multilabel, per-sample
        if kind is not None:
            return "softmax" if kind == "multiclass" else "sigmoid"
        return str(getattr(cfg, "head_activation", "softmax") or "softmax")

    @property
    def per_sample(self) -> bool:
        """One output per sample or token (a beat detector): with no ``position``, a window's score
        is its mean probability and the class explained by default is the detected one."""
        if self.kind == "gpt":
            return self.gpt.config.head == "classifier" and self.gpt.config.head_pool == "none"
        return getattr(getattr(self.model, "config", None), "kind", None) == "per-sample"

    @property
    def binary(self) -> bool:
        """A single sigmoid output, explained as two classes."""
        return self._raw_outputs() == 1 and self._activation == "sigmoid"

    @property
    def decision_threshold(self) -> float | None:
        """The threshold on p(positive class) that a fine-tuned binary model's predictions use (chosen
        on validation data, as ``cardiolens predict`` applies it); ``None`` when it is 0.5 or unknown.

        Applied to the explained window's probability: for a record of several windows ``predict``
        thresholds their mean, so the two can differ. Multi-label models (a threshold per class) and
        beat detectors still explain the arg-max class, or the one named."""
        thresholds = getattr(getattr(self.model, "config", None), "thresholds", None)
        if not self.binary or self.per_sample or not thresholds or len(thresholds) != 1:
            return None
        return None if float(thresholds[0]) == 0.5 else float(thresholds[0])

    @property
    def class_names(self) -> list[str]:
        """Names of the K scores :meth:`logits` returns."""
        if self.is_lm:
            return [f"token {i}" for i in range(self.gpt.config.vocab_size)]
        if self.binary:
            if self._classes and len(self._classes) == 2:
                return [str(c) for c in self._classes]
            name = str(self._classes[-1]) if self._classes else _positive_name(self.name)
            return [f"not {name}", name]
        if self._classes:
            return [str(c) for c in self._classes]
        return [f"class {i}" for i in range(max(self._raw_outputs(), 1))]

    def available_methods(self) -> list[str]:
        """The methods of :data:`METHODS` that apply to this model."""
        out = []
        for m in METHODS:
            if m in ("attention", "embeddings", "physiology", "gradrollout") and not self.has_attention:
                continue
            if m in ("gradcam", "hirescam") and self.gradcam_layer is None:
                continue
            out.append(m)
        return out

    def require(self, method: str) -> str:
        """Raise a clear error unless ``method`` applies to this model; returns its canonical name."""
        method = canonical_method(method)
        if method not in self.available_methods():
            why = {
                "gradcam": "Grad-CAM needs a convolutional layer and this model has none",
                "hirescam": "HiResCAM needs a convolutional layer and this model has none",
                "attention": "it has no attention layers",
                "embeddings": "it has no token embeddings",
                "physiology": "it has no attention layers",
                "gradrollout": "it has no attention layers",
            }.get(method, "it does not apply")
            raise ModelInputError(
                f"method {method!r} does not apply to {self.name!r} ({self.kind} model): {why}; "
                f"available for this model: {', '.join(self.available_methods())}"
            )
        return method

    # -- running it ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode (no dropout) for the duration, then the mode the model had."""
        was = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was)

    def scorer(self, window: Window, position: int | None = None) -> Callable[[Tensor], Tensor]:
        """A function float (B, leads, samples) -> (B, K) logits for perturbed copies of ``window``.

        For a bare GPT the window's tokeniser scale is held fixed, so a perturbed sample changes
        its own token only.
        """
        model = self.model
        if self.kind == "gpt":
            cfg = self.gpt.config
            if window.scale is None:  # a window prepared for another model
                window = _with_tokens(window, cfg.levels)
            lo, hi = (float(v) for v in window.scale)
            top = cfg.levels - 1

            def raw(x: Tensor) -> Tensor:
                B, C, T = x.shape
                tokens = torch.round((x[:, 0] - lo) / (hi - lo) * top).clamp(0, top).long()  # (B, T)
                out = model(tokens)
                return out[:, -1] if cfg.head == "lm" else out
        elif self.n_extra:
            if window.extra is None:
                raise ModelInputError(
                    f"{self.name!r} reads {self.n_extra} extra features per window (e.g. RR intervals) besides "
                    "the signal; pass them as prepare_window(..., extra=...)"
                )
            extra = torch.as_tensor(np.asarray(window.extra, dtype=np.float32).reshape(1, -1))

            def raw(x: Tensor) -> Tensor:  # the extra features are held fixed; only the signal is explained
                return model(x, extra.expand(x.size(0), -1))
        else:

            def raw(x: Tensor) -> Tensor:
                return model(x)

        binary, sigmoid = self.binary, self._activation == "sigmoid"

        def score(x: Tensor) -> Tensor:
            out = raw(x)
            if isinstance(out, tuple):  # (logits, ...) from models that return extras
                out = out[0]
            if out.dim() == 3:  # per-sample (or per-token) outputs (B, T, K)
                if position is None:
                    # the mean probability over the window, returned as the scores that give it (the
                    # mean of logits would let the many confident "no beat" samples drown the beats)
                    if sigmoid:
                        p = out.sigmoid().mean(dim=1).clamp(1e-7, 1 - 1e-7)
                        out = torch.log(p) - torch.log1p(-p)
                    else:
                        out = out.softmax(dim=-1).mean(dim=1).clamp_min(1e-12).log()
                else:
                    if not -out.size(1) <= position < out.size(1):
                        raise ModelInputError(
                            f"position {position} outside the {out.size(1)} outputs of {self.name!r} "
                            f"(valid: 0..{out.size(1) - 1} or negative from the end)"
                        )
                    out = out[:, position]
            if out.dim() == 1:
                out = out[:, None]
            if binary:
                # (B, 2) with softmax [1 - p, p]; symmetric, so that explaining either class has a gradient
                out = torch.cat([-0.5 * out, 0.5 * out], dim=-1)
            return out

        return score

    def probabilities(self, logits: Tensor) -> Tensor:
        """Scores -> probabilities: softmax, or sigmoid for multi-label models."""
        if self._activation == "sigmoid" and not self.binary:
            return logits.sigmoid()
        return logits.softmax(dim=-1)

    def tokens(self, window: Window) -> Tensor:
        """The token ids (rows, T) the GPT sees for ``window`` (rows = 1, or one per lead)."""
        if self.gpt is None:
            raise ModelInputError(f"{self.name!r} has no tokens (not a transformer over tokens)")
        if self.kind == "gpt":
            if window.tokens is None:  # a window prepared for another model: tokenise it as this GPT does
                window = _with_tokens(window, self.gpt.config.levels)
            return torch.as_tensor(window.tokens)[None]
        captured: list[Tensor] = []

        # the task model tokenises inside; its embedding call shows the tokens it made
        def grab(module: nn.Module, inputs: tuple) -> None:
            captured.append(inputs[0].detach())

        handle = self.gpt.wte.register_forward_pre_hook(grab)
        try:
            with torch.no_grad(), self.evaluating():
                self.scorer(window)(window.tensor())
        finally:
            handle.remove()
        if not captured:
            raise ModelInputError(f"{self.name!r} never called its backbone's token embedding")
        return captured[0]

    def target(self, window: Window, target: int | str | None = None, position: int | None = None) -> tuple[int, float]:
        """``(index, probability)`` of the class to explain: the predicted one unless named (for a
        binary model with a :attr:`decision_threshold`, predicted by that threshold, as
        ``cardiolens predict`` does); for a binary detector over a whole window (no ``position``), the
        detected class (``beat``), since most samples of any window are no beat."""
        with torch.no_grad(), self.evaluating():
            probs = self.probabilities(self.scorer(window, position)(window.tensor()))[0]
        names = self.class_names if len(self.class_names) == probs.numel() else None
        if target is None and self.per_sample and self.binary and position is None:
            index = 1
        elif target is None and self.decision_threshold is not None:
            index = int(float(probs[1]) >= self.decision_threshold)
        elif target is None:
            index = int(probs.argmax())
        elif isinstance(target, str) and not target.lstrip("-").isdigit():
            if names is None or target not in names:
                shown = ", ".join(names) if names and len(names) <= 20 else f"0..{probs.numel() - 1}"
                raise ModelInputError(f"unknown target class {target!r} for {self.name!r}; available: {shown}")
            index = names.index(target)
        else:
            index = int(target)
            if not 0 <= index < probs.numel():
                shown = ", ".join(names) if names and len(names) <= 20 else ""
                raise ModelInputError(
                    f"target {index} outside the {probs.numel()} outputs of {self.name!r} "
                    f"(valid: 0..{probs.numel() - 1}{'; ' + shown if shown else ''})"
                )
        return index, float(probs[index])

    def class_name(self, index: int) -> str:
        names = self.class_names
        return names[index] if 0 <= index < len(names) else f"class {index}"


def _with_tokens(window: Window, levels: int) -> Window:
    tokens, scale = tokenize(window.signal[0].astype(np.float64), levels)
    return dataclasses.replace(window, tokens=tokens, scale=(float(scale[0]), float(scale[1])))


def _positive_name(name: str) -> str:
    parts = name.lower().replace("_", "-").split("-")
    for key, label in (("af", "AF"), ("beat", "beat")):
        if key in parts:
            return label
    return "positive"


def as_explainable(model: nn.Module | ExplainModel) -> ExplainModel:
    """Wrap ``model`` (returned unchanged when it is already an :class:`ExplainModel`)."""
    return model if isinstance(model, ExplainModel) else ExplainModel(model)


def available_methods(model: nn.Module | ExplainModel) -> list[str]:
    """The explanation methods that apply to ``model`` (a subset of :data:`METHODS`)."""
    return as_explainable(model).available_methods()


def prepare_window(
    model: nn.Module | ExplainModel,
    signal: Record | np.ndarray | str | Path,
    fs: float | None = None,
    *,
    lead: str | int | None = None,
    start: float = 0.0,
    seconds: float | None = None,
    extra: np.ndarray | None = None,
) -> Window:
    """Turn a record, a file or an array into the window a model reads, checking the input contract.

    The signal is resampled to the model's rate when it differs (logged), the lead(s) the model
    needs are selected (a single-lead model takes ``lead``, by default the record's preferred ECG
    lead), and the window is cropped at ``start`` to the model's context (a GPT's ``block_size``,
    a task model's ``window``; other models ``seconds`` or 10 s). A bare GPT's window is tokenised
    by its own min-max, as at inference.

    Args:
        model: the model (or its :class:`ExplainModel`).
        signal: a Record, a file any cardiolens reader reads, or an array (samples,) or (leads, samples).
        fs: sampling rate of an array (required) or of a file format without one.
        lead: the lead to use, by name or position, for a single-lead model.
        start: first second of the window in the signal.
        seconds: window length for models without a fixed one (default 10 s, or the whole signal when
            shorter); for a bare GPT, a context shorter than its ``block_size``.
        extra: the extra per-window features a task model reads besides the signal (``config.n_extra``).

    Raises:
        RecordError: unreadable file, NaN/flat window, a lead that does not exist, an array without ``fs``.
        ModelInputError: a signal too short for a model with a fixed window, or the wrong modality.
    """
    adapter = as_explainable(model)
    if isinstance(signal, str | Path):
        from cardiolens.io import load_record

        record = load_record(signal, fs=fs)
    elif isinstance(signal, Record):
        record = signal
    else:
        arr = np.asarray(signal, dtype=np.float32)
        if fs is None:
            raise RecordError("an array needs its sampling rate: pass fs=", f"signal array of shape {arr.shape}")
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2:
            raise RecordError(f"expected (samples,) or (leads, samples), got shape {arr.shape}", "signal array")
        if adapter.lead_names and len(adapter.lead_names) == arr.shape[0]:
            leads = list(adapter.lead_names)
        elif arr.shape[0] == 1:
            leads = [adapter.modality or "ECG"]
        else:
            leads = [f"lead {i}" for i in range(arr.shape[0])]
        record = Record(signal=arr, fs=float(fs), leads=leads, name="signal")
    where = str(record.source or record.name)
    record = _select_leads(adapter, record, lead, where)
    for name, unit in zip(record.leads, record.units, strict=True):
        kind = modality(name, unit)
        if (
            kind == "other"  # respiration, pressures: no heart model reads them
            or (adapter.modality == "ECG" and kind == "PPG")
            # modality() calls every unknown name (ch0, signal) ECG: a PPG model refuses only a clearly named one
            or (adapter.modality == "PPG" and name.upper() in ECG_LEAD_NAMES)
        ):
            raise ModelInputError(
                f"{where}: lead {name!r} is {kind if kind != 'other' else 'neither ECG nor PPG'}, "
                f"but {adapter.name!r} is a model of {adapter.modality}"
            )
    x = np.asarray(record.signal, dtype=np.float64)
    rate = float(record.fs)
    resampled_from = None
    if adapter.fs is not None and not np.isclose(rate, adapter.fs):
        log.info("%s: resampled from %g Hz to the model's %g Hz", where, rate, adapter.fs)
        x = resample_signal(x, rate, adapter.fs)
        resampled_from, rate = rate, adapter.fs
    first = int(round(start * rate))
    if not 0 <= first < x.shape[-1]:
        raise RecordError(f"start {start:g} s lies outside the signal ({x.shape[-1] / rate:.2f} s long)", where)
    length = adapter.window or int(round((seconds or DEFAULT_SECONDS) * rate))
    if adapter.kind == "gpt" and seconds is not None:  # a causal model reads shorter contexts too
        length = min(length, int(round(seconds * rate)))
    available = x.shape[-1] - first
    if available < length:
        shortest = adapter.min_samples or length
        if adapter.window is not None and adapter.kind != "gpt" and available < shortest:
            raise ModelInputError(
                f"{where}: {available} samples from {start:g} s at {rate:g} Hz, but {adapter.name!r} reads "
                f"windows of {length} samples ({length / rate:g} s; at least {shortest})"
            )
        if adapter.kind == "gpt":  # a causal model reads shorter contexts too
            log.info("%s: %d samples, shorter than the %d-token context of %s", where, available, length, adapter.name)
        length = available
    min_len = max(8, int(round(0.5 * rate)))
    if length < min_len:
        raise ModelInputError(f"{where}: only {length} samples ({length / rate:.2f} s) to explain; need at least 0.5 s")
    x = x[:, first : first + length]
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise RecordError(f"the window holds {bad} NaN/inf values", where)
    tokens = scale = None
    if adapter.kind == "gpt":
        tokens, scale = tokenize(x[0], adapter.gpt.config.levels)
        scale = (float(scale[0]), float(scale[1]))
    elif np.any(np.ptp(x, axis=-1) == 0):
        flat = [record.leads[i] for i in np.flatnonzero(np.ptp(x, axis=-1) == 0)]
        raise RecordError(f"lead(s) {', '.join(flat)} are flat in the window: nothing to explain", where)
    return Window(
        signal=x.astype(np.float32),
        fs=rate,
        leads=list(record.leads),
        units=list(record.units),
        start=first,
        source=where,
        tokens=tokens,
        scale=scale,
        resampled_from=resampled_from,
        extra=None if extra is None else np.asarray(extra, dtype=np.float32).ravel(),
    )


def _select_leads(adapter: ExplainModel, record: Record, lead: str | int | None, where: str) -> Record:
    if adapter.lead_names and adapter.n_leads > 1:
        missing = [n for n in adapter.lead_names if n not in record.leads]
        if missing:
            raise RecordError(
                f"{adapter.name!r} needs leads {', '.join(adapter.lead_names)}; missing {', '.join(missing)} "
                f"(the record has {', '.join(record.leads)})",
                where,
            )
        return record.select_leads(list(adapter.lead_names))
    if adapter.n_leads > 1:
        if record.n_channels != adapter.n_leads:
            raise RecordError(
                f"{adapter.name!r} reads {adapter.n_leads} leads; the record has {record.n_channels} "
                f"({', '.join(record.leads)})",
                where,
            )
        return record
    if lead is None:
        if record.n_channels == 1:
            return record
        if adapter.lead_names:
            lead = adapter.lead_names[0] if adapter.lead_names[0] in record.leads else None
        if lead is None and adapter.modality == "PPG":  # the ECG default lead would be refused below
            lead = next((n for n, u in zip(record.leads, record.units, strict=True) if modality(n, u) == "PPG"), None)
        if lead is None:
            from cardiolens.analysis import default_lead

            lead = default_lead(record)
        log.info("%s: explaining lead %s (choose another with lead=)", where, lead)
    return record.select_leads([lead])  # an unknown lead raises, listing the record's leads


__all__ = [
    "ATTRIBUTION_METHODS",
    "METHODS",
    "ExplainModel",
    "Window",
    "as_explainable",
    "available_methods",
    "canonical_method",
    "prepare_window",
]
