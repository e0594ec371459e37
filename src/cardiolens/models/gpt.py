"""A configurable decoder-only transformer (GPT) for tokenised heart signals.

One module covers the published HeartGPT models (Davies et al. 2024, arXiv 2407.20775) and our own
presets; they differ only in :class:`GPTConfig` numbers:

- HeartGPT: 8 layers, 8 heads, ``n_embd`` 64, context 500, ReLU MLP 64-256-64, attention scores
  scaled by ``n_embd ** -0.5`` (the published code scales by the embedding width, not the head
  width), no bias on the query/key/value projections, learned position embeddings, pre-LayerNorm,
  final LayerNorm and a linear head.
- our presets: GELU, head-width scaling, weight tying, a longer context.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` (fused). When the
caller asks for the attention weights (``return_attention=True``) the same attention is computed
explicitly, so the weights returned are the ones that produced the output; nothing is patched.

Shapes: ``B`` batch, ``T`` tokens, ``C`` = ``n_embd``, ``H`` heads, ``D`` = head width, ``S`` keys
(``T`` plus what a key-value cache already holds), ``V`` vocabulary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cardiolens.errors import ModelInputError
from cardiolens.models.registry import register_architecture

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
_HEADS = ("lm", "classifier")
_POOLS = ("last", "mean", "none")
_HEAD_ACTIVATIONS = ("sigmoid", "softmax", "none")
_MODALITIES = ("ECG", "PPG")


@dataclass
class GPTConfig:
    """Configuration of :class:`GPT`. The defaults build a small working model (~0.2 M parameters).

    Attributes:
        vocab_size: number of token ids (HeartGPT: 101 for ECG, 102 for PPG).
        block_size: context window in tokens; also the number of learned positions.
        n_layer: transformer blocks.
        n_head: attention heads per block; must divide ``n_embd``.
        n_embd: width of the residual stream.
        mlp_hidden: hidden width of the MLP; ``None`` means ``4 * n_embd``.
        activation: MLP non-linearity, ``"relu"`` (HeartGPT) or ``"gelu"``.
        dropout: dropout on the attention output and the MLP output (and on the attention weights
            unless ``attn_dropout`` says otherwise).
        attn_dropout: dropout on the attention weights; ``None`` means ``dropout`` (HeartGPT). Any
            value above 0 makes CPU training take PyTorch's unfused attention path (about 5x slower
            at 500 tokens), which is why our presets use 0.
        qkv_bias: bias on the fused query/key/value projection (HeartGPT: none).
        bias: bias in the attention output projection, the MLP and the LayerNorms.
        attn_scale: factor applied to query-key scores; ``None`` means ``head_dim ** -0.5``.
            HeartGPT used ``n_embd ** -0.5`` (0.125 for 64).
        tie_weights: share the token embedding with the language-model head.
        norm_eps: LayerNorm epsilon.
        head: ``"lm"`` (next-token logits over the vocabulary) or ``"classifier"``.
        num_outputs: outputs of the classifier head.
        head_pool: classifier input: ``"last"`` token (HeartGPT AF), ``"mean"`` over tokens, or
            ``"none"`` for one output per token (HeartGPT beat detection).
        head_activation: what :meth:`GPT.predict_proba` applies to classifier logits:
            ``"sigmoid"`` (HeartGPT), ``"softmax"`` or ``"none"``.
        modality: ``"ECG"``, ``"PPG"`` or ``None`` (not tied to a signal type).
        fs: sampling rate in Hz the model's tokens stand for (HeartGPT: ECG 100, PPG 50).
        signal_levels: amplitude levels of the tokeniser (tokens ``0 .. signal_levels - 1``);
            ``None`` means ``vocab_size``. HeartGPT PPG has ``vocab_size`` 102 but 101 levels.
        name: preset name, for messages and model cards.
    """

    vocab_size: int = 101
    block_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    mlp_hidden: int | None = None
    activation: str = "gelu"
    dropout: float = 0.1
    attn_dropout: float | None = None
    qkv_bias: bool = False
    bias: bool = True
    attn_scale: float | None = None
    tie_weights: bool = False
    norm_eps: float = 1e-5
    head: str = "lm"
    num_outputs: int = 1
    head_pool: str = "last"
    head_activation: str = "sigmoid"
    modality: str | None = None
    fs: float | None = None
    signal_levels: int | None = None
    name: str = field(default="gpt")

    def __post_init__(self) -> None:
        def bad(problem: str) -> ModelInputError:
            return ModelInputError(f"GPTConfig {self.name!r}: {problem}")

        for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "num_outputs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(f"{key} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise bad(f"n_head ({self.n_head}) must divide n_embd ({self.n_embd})")
        if self.mlp_hidden is not None and (not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 1):
            raise bad(f"mlp_hidden must be a positive integer or None, got {self.mlp_hidden!r}")
        if self.activation not in _ACTIVATIONS:
            raise bad(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise bad(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.attn_dropout is not None and not 0.0 <= self.attn_dropout < 1.0:
            raise bad(f"attn_dropout must be in [0, 1) or None, got {self.attn_dropout!r}")
        if self.attn_scale is not None and not (math.isfinite(self.attn_scale) and self.attn_scale > 0):
            raise bad(f"attn_scale must be a positive number or None, got {self.attn_scale!r}")
        if self.head not in _HEADS:
            raise bad(f"head must be one of {_HEADS}, got {self.head!r}")
        if self.head_pool not in _POOLS:
            raise bad(f"head_pool must be one of {_POOLS}, got {self.head_pool!r}")
        if self.head_activation not in _HEAD_ACTIVATIONS:
            raise bad(f"head_activation must be one of {_HEAD_ACTIVATIONS}, got {self.head_activation!r}")
        if self.tie_weights and self.head != "lm":
            raise bad("tie_weights needs the language-model head (head='lm')")
        if self.modality is not None and self.modality not in _MODALITIES:
            raise bad(f"modality must be one of {_MODALITIES} or None, got {self.modality!r}")
        if self.fs is not None and not (math.isfinite(self.fs) and self.fs > 0):
            raise bad(f"fs must be a positive number of Hz or None, got {self.fs!r}")
        if self.signal_levels is not None and not 2 <= self.signal_levels <= self.vocab_size:
            raise bad(f"signal_levels must be between 2 and vocab_size ({self.vocab_size}), got {self.signal_levels!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def mlp_dim(self) -> int:
        return self.mlp_hidden if self.mlp_hidden is not None else 4 * self.n_embd

    @property
    def scale(self) -> float:
        """The factor query-key scores are multiplied by."""
        return self.attn_scale if self.attn_scale is not None else self.head_dim**-0.5

    @property
    def levels(self) -> int:
        """Amplitude levels of the tokeniser (tokens ``0 .. levels - 1``)."""
        return self.signal_levels if self.signal_levels is not None else self.vocab_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GPTConfig:
        """Build a config from a dict (``config.json``), rejecting unknown fields by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelInputError(
                f"unknown GPTConfig fields {unknown} (written by a newer cardiolens?); known: {sorted(known)}"
            )
        return cls(**values)


class GPTOutput(NamedTuple):
    """What :meth:`GPT.forward` / :meth:`GPT.forward_features` return when extra outputs are requested.

    Attributes:
        logits: head output (``None`` from ``forward_features``).
        features: final-LayerNorm hidden states, (B, T, C).
        hidden_states: ``n_layer + 1`` tensors (B, T, C): the embeddings, then each block's output
            (before the final LayerNorm); ``None`` unless requested.
        attentions: ``n_layer`` tensors (B, H, T, S) of attention weights (each row sums to 1 over the
            causal context); ``None`` unless requested.
    """

    logits: Tensor | None
    features: Tensor
    hidden_states: list[Tensor] | None
    attentions: list[Tensor] | None


class KVCache:
    """Preallocated keys and values of every layer, for incremental decoding.

    Each layer holds one tensor (2, B, H, D, max_len): keys at index 0, values at 1, both stored
    transposed (positions last), views of one block ``kv_all`` (n_layer, 2, B, H, D, max_len)
    allocated once. Decoding writes the new token's keys and values with one copy at position
    ``length`` and attends over ``[0, length]``; nothing is reallocated or concatenated while
    generating. The transposed layout makes one new query's scores a plain
    batched matrix product ``q @ K[..., :S]`` over contiguous rows, about three times faster per
    step than attending through a transposed view; ``keys`` holds the (B * H, D, max_len) views
    that product uses, ``values`` the (B * H, max_len, D) ones.

    Args:
        config: the model's config.
        batch_size: number of streams decoded together.
        max_len: positions to hold; at most (and by default) ``config.block_size``.
        dtype, device: of the cached tensors (those of the model's parameters).
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        max_len = config.block_size if max_len is None else max_len
        if not 1 <= max_len <= config.block_size:
            raise ModelInputError(f"cache length must be between 1 and block_size {config.block_size}, got {max_len}")
        B, H, D = batch_size, config.n_head, config.head_dim
        # one block for all layers (so that a compiled decoding step can take it as one array), and
        # a view of it per layer
        self.kv_all = torch.zeros(config.n_layer, 2, B, H, D, max_len, dtype=dtype, device=device)
        self.kv = list(self.kv_all.unbind(0))
        self.keys = [kv[0].view(B * H, D, max_len) for kv in self.kv]
        self.values = [kv[1].view(B * H, D, max_len).transpose(1, 2) for kv in self.kv]  # (B * H, max_len, D)
        # one token's query/key/value and attention output, rewritten by every layer of every
        # decoding step (matrix products write into them with out=), with the views decoding reads
        C = H * D
        qkv, y = torch.empty(B, 3 * C, dtype=dtype, device=device), torch.empty(B, C, dtype=dtype, device=device)
        q_heads = qkv[:, :C].view(B * H, 1, D) if B == 1 else None  # a view only for one stream
        self.scratch = (qkv, q_heads, qkv[:, C:].view(B, 2, H, D).transpose(0, 1), y.view(B * H, 1, D), y)
        self.batch_size = batch_size
        self.max_len = max_len
        self.length = 0
        self.weights: tuple | None = None  # the model's tensors, gathered by GPT.decode_features

    def reset(self) -> None:
        """Forget every cached position (the buffers are kept)."""
        self.length = 0

    def store(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write keys/values (B, H, T, D) at the current length; return all cached ones (B, H, S, D).

        The tensors returned are transposed views of the cache (last-dimension stride ``max_len``).
        """
        start = self.length
        end = start + k.size(2)
        if end > self.max_len:
            raise ModelInputError(
                f"key-value cache of {self.max_len} positions is full ({start} held, {k.size(2)} new)"
            )
        kv = self.kv[layer]
        kv[0, ..., start:end] = k.transpose(-2, -1)  # (B, H, D, T)
        kv[1, ..., start:end] = v.transpose(-2, -1)
        return kv[0, ..., :end].transpose(-2, -1), kv[1, ..., :end].transpose(-2, -1)


# Query rows per call of _chunked_causal_attention: the block size of PyTorch's CPU attention
# kernel below 768 tokens, for which the chunked result is bit-identical at HeartGPT's shapes.
_CAUSAL_CHUNK = 64


@functools.lru_cache(maxsize=4)
def _future_mask(T: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(T, T) additive mask, -inf above the diagonal; kept between calls (every layer of every prefill uses it)."""
    with torch.inference_mode(False):  # an ordinary tensor, usable outside inference mode too
        future = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
        return torch.zeros(T, T, dtype=dtype, device=device).masked_fill_(future, float("-inf"))


def _chunk_causal(q: Tensor) -> bool:
    # eager inference on CPU only: not under autograd, and not while tracing, compiling or exporting
    # (a traced loop over chunks would fix the sequence length)
    return q.device.type == "cpu" and not torch.is_grad_enabled() and _checks_enabled()


def _chunked_causal_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Causal attention (B, H, T, D) computed 64 queries at a time, each over the keys it may see.

    PyTorch's CPU kernel (2.13) computes every query-key score of a causal attention below 768
    tokens and masks the future half; chunking the queries skips most of that half: about 30% less
    time at HeartGPT's 400-500 tokens, with the same output (bit for bit there, to float rounding
    elsewhere). Used for inference on CPU only; GPU kernels skip masked blocks themselves.
    """
    T = q.size(2)
    mask = _future_mask(T, q.dtype, q.device)
    parts = []
    for a in range(0, T, _CAUSAL_CHUNK):
        b = min(a + _CAUSAL_CHUNK, T)
        parts.append(
            F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, :b], v[:, :, :b], attn_mask=mask[a:b, :b], scale=scale)
        )
    return torch.cat(parts, dim=2)  # (B, H, T, D)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused query/key/value projection.

    The fused weight ``c_attn.weight`` (3C, C) stacks the query, key and value projections in that
    order; within each, rows ``h * D : (h + 1) * D`` belong to head ``h`` (the order in which
    HeartGPT concatenates its per-head outputs).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.scale = config.scale
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.qkv_bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        # set by record_attention(): every forward appends its weights (B, H, Tq, S), inside the graph
        self.recorded: list[Tensor] | None = None

    def forward(
        self,
        x: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
        last_only: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.head_dim)  # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, D)
        start = 0
        if cache is not None:
            start = cache.length
            cached_k, cached_v = cache.store(layer, k, v)  # (B, H, S, D), S = start + T
            if start:  # attend over the positions cached before too
                k, v = cached_k, cached_v
        if last_only and T > 1:
            # only the last position's output is wanted; every position's keys/values still are
            q = q[:, :, -1:]  # (B, H, 1, D)
        Tq, S = q.size(2), k.size(2)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or self.recorded is not None:
            att = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, Tq, S)
            allowed = torch.ones(Tq, S, dtype=torch.bool, device=x.device).tril(diagonal=S - Tq)
            att = att.masked_fill(~allowed, float("-inf"))
            weights = F.softmax(att, dim=-1)
            y = F.dropout(weights, p, self.training) @ v  # (B, H, Tq, D)
            if self.recorded is not None:
                self.recorded.append(weights)
        elif Tq == S and Tq > _CAUSAL_CHUNK and p == 0.0 and _chunk_causal(q):
            y = _chunked_causal_attention(q, k, v, self.scale)
        elif Tq == S:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=Tq > 1, scale=self.scale)
        elif Tq == 1:
            # one query at the last position may look at every key: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=self.scale)
        else:
            allowed = torch.ones(Tq, S, dtype=torch.bool, device=x.device).tril(diagonal=S - Tq)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p, scale=self.scale)
        y = y.transpose(1, 2).reshape(B, Tq, C)  # (B, Tq, H * D)
        return self.resid_dropout(self.c_proj(y)), weights


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, config.mlp_dim, bias=config.bias)
        self.act = _ACTIVATIONS[config.activation]()
        self.proj = nn.Linear(config.mlp_dim, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
        need_weights: bool = False,
        last_only: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        a, weights = self.attn(self.ln_1(x), cache, layer, need_weights, last_only)
        if last_only:
            x = x[:, -1:]  # (B, 1, C)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, weights


class LMHead(nn.Module):
    """Next-token logits over the vocabulary: (..., C) -> (..., V)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, config.vocab_size, bias=not config.tie_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class ClassifierHead(nn.Module):
    """A linear read-out of the features: (B, T, C) -> (B, K) pooled, or (B, T, K) per token.

    HeartGPT's fine-tuned files use one output with a sigmoid: the AF model reads the last token
    (``pool="last"``), the beat detector reads every token (``pool="none"``).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.pool = config.head_pool
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.n_embd, config.num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        if self.pool == "last":
            x = x[:, -1]  # (B, C)
        elif self.pool == "mean":
            x = x.mean(dim=1)  # (B, C)
        return self.fc(self.dropout(x))


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[list[list[Tensor]]]:
    """Keep the attention weights of every attention layer of ``model`` while the block runs.

    Yields one list per layer (input to output), to which each forward pass appends its weights
    (B, H, Tq, S). They are the tensors the output was computed from (the explicit softmax path),
    so gradients of any output with respect to them can be taken (gradient-weighted rollout).
    """
    layers = [m for m in model.modules() if isinstance(m, CausalSelfAttention)]
    if not layers:
        raise ModelInputError(f"{type(model).__name__} has no attention layers to record")
    for layer in layers:
        layer.recorded = []
    try:
        yield [layer.recorded for layer in layers]
    finally:
        for layer in layers:
            layer.recorded = None


def _checks_enabled() -> bool:
    # data-dependent checks (.item()) break tracing, compiling and ONNX export
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export())


@register_architecture("gpt")
class GPT(nn.Module):
    """Decoder-only transformer over signal tokens.

    Backbone API shared by cardiolens models: :meth:`forward_features` (per-token features),
    :meth:`forward_head` (features -> outputs) and :meth:`forward` (both), each able to return every
    layer's hidden states and attention weights.

    Args:
        config: a :class:`GPTConfig`; ``None`` uses the defaults.
        **overrides: config fields to change.

    Example:
        >>> import torch
        >>> model = GPT(GPTConfig(n_layer=2, block_size=64)).eval()
        >>> tokens = torch.randint(0, 101, (2, 32))
        >>> model(tokens).shape
        torch.Size([2, 32, 101])
        >>> out = model(tokens, return_attention=True)
        >>> len(out.attentions), out.attentions[0].shape
        (2, torch.Size([2, 4, 32, 32]))
    """

    config_class = GPTConfig
    architecture = "gpt"

    def __init__(self, config: GPTConfig | None = None, **overrides: Any):
        super().__init__()
        config = config if config is not None else GPTConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)
        self.head = self._build_head(config)
        self.apply(self._init_weights)
        # GPT-2 scaling of the residual projections by depth
        for name, p in self.named_parameters():
            if name.endswith(("attn.c_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self._tie()

    def _build_head(self, config: GPTConfig) -> nn.Module:
        return LMHead(config) if config.head == "lm" else ClassifierHead(config)

    def _tie(self) -> None:
        if self.config.tie_weights:
            self.head.fc.weight = self.wte.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- helpers -------------------------------------------------------------------------------
    def layer_groups(self) -> list[nn.Module]:
        """Modules from input to output (embeddings, each block, final norm): the unit of freezing
        and of layer-wise learning rates in fine-tuning. The head is not included."""
        return [nn.ModuleList([self.wte, self.wpe]), *self.blocks, self.ln_f]

    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def reset_head(
        self,
        head: str = "classifier",
        num_outputs: int = 1,
        pool: str = "last",
        activation: str = "sigmoid",
    ) -> None:
        """Replace the head (as for fine-tuning), updating the config; the new head is freshly initialised.

        Args:
            head: ``"classifier"`` or ``"lm"``.
            num_outputs: classifier outputs.
            pool: ``"last"``, ``"mean"`` or ``"none"`` (per token).
            activation: ``"sigmoid"``, ``"softmax"`` or ``"none"`` (used by :meth:`predict_proba`).
        """
        self.config = dataclasses.replace(
            self.config,
            head=head,
            num_outputs=num_outputs,
            head_pool=pool,
            head_activation=activation,
            tie_weights=self.config.tie_weights and head == "lm",
        )
        param = self.wte.weight
        self.head = self._build_head(self.config).to(device=param.device, dtype=param.dtype)
        self.head.apply(self._init_weights)
        self._tie()

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """A key-value cache for ``batch_size`` streams, on the model's device and dtype."""
        param = self.wte.weight
        return KVCache(self.config, batch_size, max_len, dtype=param.dtype, device=param.device)

    def check_tokens(self, tokens: Tensor, start: int = 0) -> None:
        """Raise :class:`ModelInputError` unless ``tokens`` is an integer (B, T) tensor the model accepts."""
        cfg = self.config
        if not isinstance(tokens, Tensor):
            raise ModelInputError(f"tokens must be a torch.Tensor of token ids, got {type(tokens).__name__}")
        if tokens.dim() != 2:
            raise ModelInputError(f"tokens must be shaped (batch, time), got shape {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ModelInputError(
                f"tokens must be integer token ids, got dtype {tokens.dtype}; tokenise the signal first "
                "(cardiolens.signal.tokenize)"
            )
        T = tokens.size(1)
        if T == 0 or tokens.size(0) == 0:
            raise ModelInputError(f"tokens are empty (shape {tuple(tokens.shape)})")
        if start + T > cfg.block_size:
            where = f" after {start} cached positions" if start else ""
            raise ModelInputError(
                f"{T} tokens{where} exceed the context window of {cfg.name!r} ({cfg.block_size} tokens); "
                "crop to the last window, or use cardiolens.generate, which slides the window"
            )
        if _checks_enabled():
            lo, hi = int(tokens.min()), int(tokens.max())
            if lo < 0 or hi >= cfg.vocab_size:
                raise ModelInputError(
                    f"token ids must lie in 0..{cfg.vocab_size - 1} (vocabulary of {cfg.name!r}), found {lo}..{hi}"
                )

    # -- backbone API ----------------------------------------------------------------------------
    def forward_features(
        self,
        tokens: Tensor,
        *,
        cache: KVCache | None = None,
        return_hidden_states: bool = False,
        return_attention: bool = False,
        check: bool = True,
        last_only: bool = False,
    ) -> Tensor | GPTOutput:
        """Per-token features after the final LayerNorm.

        Args:
            tokens: int64 token ids (B, T).
            cache: a :class:`KVCache` (from :meth:`new_cache`); the tokens are placed after the
                ``cache.length`` positions it already holds, and the cache advances by T.
            return_hidden_states: also return the embeddings and every block's output.
            return_attention: also return every layer's attention weights (B, H, T, S).
            check: validate ``tokens`` (shape, dtype, range); generation turns this off for the
                tokens it produced itself.
            last_only: compute the last block for the last position only (the features of the
                next-token prediction, as generation needs them): the result is (B, 1, C), the last
                hidden state and attention cover that position only, and a cache still receives
                every position's keys and values. Saves the last layer's T x T attention.

        Returns:
            (B, T, C) features ((B, 1, C) with ``last_only``), or a :class:`GPTOutput`
            (``logits=None``) when extras are requested.
        """
        start = cache.length if cache is not None else 0
        if check:
            self.check_tokens(tokens, start)
            if cache is not None and tokens.size(0) != cache.batch_size:
                raise ModelInputError(f"cache holds {cache.batch_size} streams, tokens have {tokens.size(0)}")
        B, T = tokens.shape
        # positions by slicing the table: the same rows as wpe(arange), without building the index
        x = self.wte(tokens) + self.wpe.weight[start : start + T]  # (B, T, C)
        hidden = [x] if return_hidden_states else None
        attentions: list[Tensor] | None = [] if return_attention else None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache, i, return_attention, last_only and i == last)
            if hidden is not None:
                hidden.append(x)
            if attentions is not None:
                attentions.append(weights)
        if cache is not None:
            cache.length = start + T
        features = self.ln_f(x)
        if return_hidden_states or return_attention:
            return GPTOutput(None, features, hidden, attentions)
        return features

    def decode_features(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Final features (B, C) of one new token per stream, placed after the cache; inference only.

        The same computation as :meth:`forward_features` for a single new position (LayerNorm,
        query/key/value projection, softmax attention over the cached keys, MLP), written as a
        few plain tensor calls on copies of the model's weights that write into the cache's
        preallocated buffers: per generated token the module-call and dispatch overhead would
        otherwise cost more than the arithmetic of this small model (about 0.9 ms per HeartGPT
        token through the modules with fused attention, about 0.4 ms here on one CPU core). For
        one query the attention is ``softmax(q @ K) @ V``, two batched matrix products over the
        transposed cache, about half the cost of ``scaled_dot_product_attention`` for a single
        query; the attention scale is folded into the query weights. No dropout, no input checks,
        no hooks; use :meth:`forward_features` for anything else. The weights are gathered into
        the cache on first use, so a cache serves one model with the weights it had then.

        Args:
            tokens: int64 token ids (B,) or (B, 1).
            cache: the cache holding the context; it advances by one position.
        """
        cfg = self.config
        pos = cache.length
        if pos >= cache.max_len:
            raise ModelInputError(f"key-value cache of {cache.max_len} positions is full")
        if tokens.size(0) != cache.batch_size:
            raise ModelInputError(f"cache holds {cache.batch_size} streams, tokens have {tokens.size(0)}")
        if cache.weights is None:
            cache.weights = self._decode_weights()
        emb, layers, final, _ = cache.weights
        qkv, q_heads, kv_heads, y_heads, y = cache.scratch
        B = tokens.size(0)
        C, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
        eps, gelu = cfg.norm_eps, cfg.activation != "relu"
        S = pos + 1
        x = emb[0].index_select(0, tokens.view(B)).add_(emb[1][pos])  # (B, C)
        for kv, keys, values, (l1w, l1b, qkv_w, qkv_b, pw, pb, l2w, l2b, fw, fb, p2w, p2b) in zip(
            cache.kv, cache.keys, cache.values, layers, strict=True
        ):
            # torch.layer_norm rather than F.layer_norm: the same kernel without the Python wrapper
            h = torch.layer_norm(x, (C,), l1w, l1b, eps)
            torch.mm(h, qkv_w, out=qkv) if qkv_b is None else torch.addmm(qkv_b, h, qkv_w, out=qkv)  # q pre-scaled
            kv.select(4, pos).copy_(kv_heads)  # kv: (2, B, H, D, max_len) <- (2, B, H, D)
            q = q_heads if q_heads is not None else qkv[:, :C].reshape(B * H, 1, D)
            att = torch.bmm(q, keys[:, :, :S]).softmax(-1)  # (B * H, 1, S)
            torch.bmm(att, values[:, :S], out=y_heads)  # (B * H, 1, D), y: (B, H * D)
            x.add_(torch.mm(y, pw) if pb is None else torch.addmm(pb, y, pw))
            f = torch.layer_norm(x, (C,), l2w, l2b, eps)
            f = torch.mm(f, fw) if fb is None else torch.addmm(fb, f, fw)  # (B, mlp_dim)
            f = F.gelu(f) if gelu else f.relu_()
            x.add_(torch.mm(f, p2w) if p2b is None else torch.addmm(p2b, f, p2w))
        cache.length = S
        return torch.layer_norm(x, (C,), final[0], final[1], eps)

    def decode_logits(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Next-token logits (B, V) after one new token per stream: :meth:`decode_features` + the head.

        The language-model head is applied with the cache's copy of its weights, like the rest of
        the decoding step; inference only.
        """
        features = self.decode_features(tokens, cache)
        head = cache.weights[3]
        if head is None:
            return self.forward_head(features)
        weight, bias = head
        return torch.mm(features, weight) if bias is None else torch.addmm(bias, features, weight)

    @torch.no_grad()
    def _decode_weights(self) -> tuple:
        """Plain-tensor copies of the weights for :meth:`decode_features`: matrices transposed to
        (in, out) for ``addmm``, the attention scale folded into the query columns (exact when
        the scale is a power of two, as HeartGPT's 0.125 is)."""

        def plain(t: Tensor | None) -> Tensor | None:
            # nn.Parameter is a tensor subclass: every call on one takes the slower
            # __torch_function__ path, a few microseconds each
            return None if t is None else t.detach()

        def matrix(t: Tensor) -> Tensor:
            return t.detach().t().contiguous()  # (in, out)

        C, scale = self.config.n_embd, self.config.scale
        layers = []
        for b in self.blocks:
            qkv_w = matrix(b.attn.c_attn.weight)  # (C, 3C): query, key, value columns
            qkv_w[:, :C] *= scale
            qkv_b = plain(b.attn.c_attn.bias)
            if qkv_b is not None:
                qkv_b = qkv_b.clone()
                qkv_b[:C] *= scale
            layers.append(
                (
                    plain(b.ln_1.weight),
                    plain(b.ln_1.bias),
                    qkv_w,
                    qkv_b,
                    matrix(b.attn.c_proj.weight),
                    plain(b.attn.c_proj.bias),
                    plain(b.ln_2.weight),
                    plain(b.ln_2.bias),
                    matrix(b.mlp.fc.weight),
                    plain(b.mlp.fc.bias),
                    matrix(b.mlp.proj.weight),
                    plain(b.mlp.proj.bias),
                )
            )
        head = None
        if isinstance(self.head, LMHead):
            head = (matrix(self.head.fc.weight), plain(self.head.fc.bias))
        return (
            (plain(self.wte.weight), plain(self.wpe.weight)),
            layers,
            (plain(self.ln_f.weight), plain(self.ln_f.bias)),
            head,
        )

    def forward_head(self, features: Tensor) -> Tensor:
        """Head outputs from features: LM logits (..., V); classifier logits (B, K) or (B, T, K)."""
        return self.head(features)

    def forward(
        self,
        tokens: Tensor,
        *,
        cache: KVCache | None = None,
        return_hidden_states: bool = False,
        return_attention: bool = False,
    ) -> Tensor | GPTOutput:
        """Head outputs (logits, before any sigmoid/softmax) for token ids (B, T).

        Returns:
            LM: (B, T, V) logits. Classifier: (B, K) (pooled) or (B, T, K) (``head_pool="none"``).
            A :class:`GPTOutput` instead when hidden states or attention are requested.
        """
        out = self.forward_features(
            tokens, cache=cache, return_hidden_states=return_hidden_states, return_attention=return_attention
        )
        if isinstance(out, GPTOutput):
            return out._replace(logits=self.forward_head(out.features))
        return self.forward_head(out)

    @torch.no_grad()
    def predict_proba(self, tokens: Tensor) -> Tensor:
        """Probabilities: softmax over the vocabulary (LM), or the classifier's ``head_activation``.

        HeartGPT's fine-tuned models returned ``sigmoid(linear(features))``; this is that number.
        """
        logits = self(tokens)
        if self.config.head == "lm" or self.config.head_activation == "softmax":
            return logits.softmax(dim=-1)
        if self.config.head_activation == "sigmoid":
            return logits.sigmoid()
        return logits
