"""A compiled decoding step for a few streams on the CPU (numba).

Why: at HeartGPT's shapes (width 64, 8 layers) one decoding step is about 110 small tensor
operations, and PyTorch's per-operation dispatch (2-4 us each) costs more than their arithmetic.
The step below is the same computation as :meth:`cardiolens.models.GPT.decode_logits` (LayerNorm,
query/key/value projection, softmax attention over the cached keys, MLP, final LayerNorm, language-
model head) written as loops that numba compiles once to machine code, so a step is one call. It
reads and writes the model's :class:`~cardiolens.models.gpt.KVCache` in place (through NumPy views of
its memory), so prefill and re-priming stay on the PyTorch path and the two can alternate freely.

Floating-point sums are reassociated (``fastmath`` reassoc/contract, to let the compiler vectorise
them), so logits agree with the PyTorch step within 1e-4 (tested), not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from cardiolens.errors import ModelInputError

try:  # numba is a dependency; a broken install falls back to the PyTorch step rather than failing
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None

# Fewer streams than this take the compiled step. It runs one stream after the other on one core; so
# does the PyTorch step below this count (sampling._decode_threads), and there the compiled step was
# as fast or faster at every count tried (1-12 streams, HeartGPT and ecgpt-small). From 16 streams on,
# PyTorch's batched products use every core.
MAX_STREAMS = 16

# reassociated sums vectorise; every kernel also releases the GIL (nogil), so that the web app's
# threads can decode streams side by side
_FASTMATH = {"reassoc", "contract"}


def available() -> bool:
    """Whether the compiled step can run here (numba imports)."""
    return numba is not None


def applies(model: torch.nn.Module, streams: int) -> bool:
    """Whether :class:`CompiledDecoder` can decode ``streams`` streams of ``model``."""
    if numba is None or streams >= MAX_STREAMS:
        return False
    param = model.wte.weight
    return param.device.type == "cpu" and param.dtype == torch.float32 and model.config.head == "lm"


if numba is not None:

    @numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
    def _layer_norm(x, weight, bias, eps, out):
        n = x.shape[0]
        mean = 0.0
        for i in range(n):
            mean += x[i]
        mean /= n
        var = 0.0
        for i in range(n):
            d = x[i] - mean
            var += d * d
        inv = 1.0 / math.sqrt(var / n + eps)
        for i in range(n):
            out[i] = (x[i] - mean) * inv * weight[i] + bias[i]

    @numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
    def _affine(x, weight, bias, out):
        """out = x @ weight + bias, weight (in, out): row by row, so the inner loop is contiguous."""
        n_in, n_out = weight.shape
        for j in range(n_out):
            out[j] = bias[j]
        for i in range(n_in):
            xi = x[i]
            for j in range(n_out):
                out[j] += xi * weight[i, j]

    @numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
    def _exp_shifted(x, shift, bits, powers):
        """x[i] = exp(x[i] - shift) for x <= shift, in loops the compiler vectorises (math.exp does not
        vectorise without Intel's SVML and took half of a HeartGPT step): exp(r) * 2**n with
        x = n ln2 + r, |r| <= ln2 / 2, exp(r) by its Taylor series to r**7 (truncation error < 1e-8; with
        float32 rounding the result is within 3e-7, tested), 2**n from its exponent bits. Inputs below
        -87 are taken as -87 (exp 1.6e-38): softmax weights that small add nothing to a sum that holds
        a 1."""
        f32 = np.float32
        for i in range(x.shape[0]):
            v = max(x[i] - shift, f32(-87.0))
            n = math.floor(v * f32(1.442695) + f32(0.5))
            r = v - n * f32(0.693359375) + n * f32(2.12194440e-4)  # ln 2 in two parts: n * 0.693359375 is exact
            p = f32(1 / 5040) * r + f32(1 / 720)
            for c in (f32(1 / 120), f32(1 / 24), f32(1 / 6), f32(0.5), f32(1.0), f32(1.0)):
                p = p * r + c
            x[i] = p
            bits[i] = (np.int32(n) + np.int32(127)) << np.int32(23)
        for i in range(x.shape[0]):
            x[i] *= powers[i]

    @numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
    def _decode_step(
        tokens, pos, wte, wpe, ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b,
        fc_w, fc_b, out_w, out_b, lnf_w, lnf_b, head_w, head_b, kv, gelu, eps, logits,
    ):  # fmt: skip
        """One new token per stream at position ``pos``: writes its keys/values into ``kv``
        (n_layer, 2, B, H, D, max_len) and the next-token logits into ``logits`` (B, V)."""
        n_layer, C = ln1_w.shape[0], wte.shape[1]
        H, D = kv.shape[3], kv.shape[4]
        M = fc_w.shape[2]
        S = pos + 1
        x = np.empty(C, np.float32)
        h = np.empty(C, np.float32)
        qkv = np.empty(3 * C, np.float32)
        y = np.empty(C, np.float32)
        t = np.empty(C, np.float32)
        f = np.empty(M, np.float32)
        att = np.empty(S, np.float32)
        bits = np.empty(S, np.int32)
        powers = bits.view(np.float32)  # 2 ** n, written as IEEE bits by _exp_shifted
        for b in range(tokens.shape[0]):
            for i in range(C):
                x[i] = wte[tokens[b], i] + wpe[pos, i]
            for layer in range(n_layer):
                _layer_norm(x, ln1_w[layer], ln1_b[layer], eps, h)
                _affine(h, qkv_w[layer], qkv_b[layer], qkv)  # the query columns carry the attention scale
                for head in range(H):
                    keys, values = kv[layer, 0, b, head], kv[layer, 1, b, head]  # (D, max_len) each
                    for d in range(D):
                        keys[d, pos] = qkv[C + head * D + d]
                        values[d, pos] = qkv[2 * C + head * D + d]
                    att[:] = 0.0
                    for d in range(D):
                        q = qkv[head * D + d]
                        for s in range(S):
                            att[s] += q * keys[d, s]
                    top = att.max()
                    _exp_shifted(att, top, bits, powers)
                    total = np.float32(0.0)
                    for s in range(S):
                        total += att[s]
                    for d in range(D):
                        acc = np.float32(0.0)
                        for s in range(S):
                            acc += att[s] * values[d, s]
                        y[head * D + d] = acc / total
                _affine(y, proj_w[layer], proj_b[layer], t)
                x += t
                _layer_norm(x, ln2_w[layer], ln2_b[layer], eps, h)
                _affine(h, fc_w[layer], fc_b[layer], f)
                if gelu:
                    for i in range(M):
                        f[i] = 0.5 * f[i] * (1.0 + math.erf(f[i] * 0.7071067811865476))
                else:
                    for i in range(M):
                        f[i] = max(f[i], 0.0)
                _affine(f, out_w[layer], out_b[layer], t)
                x += t
            _layer_norm(x, lnf_w, lnf_b, eps, h)
            _affine(h, head_w, head_b, logits[b])


class CompiledDecoder:
    """Next-token logits after one new token per stream, from a compiled step over ``cache``.

    A drop-in for ``model.decode_logits(tokens, cache)``: the same arguments and result, the cache
    advanced by one position. Build one per cache (it packs the model's weights once, as stacked
    float32 arrays) with :func:`applies` true.

    Args:
        model: a :class:`~cardiolens.models.GPT` with a language-model head, float32 on the CPU.
        cache: its key-value cache (``model.new_cache``).
    """

    def __init__(self, model: torch.nn.Module, cache) -> None:
        if not applies(model, cache.batch_size):
            raise ModelInputError(
                f"the compiled decoding step needs numba, a float32 CPU language model and < {MAX_STREAMS} streams"
            )
        cfg = model.config
        (wte, wpe), layers, (lnf_w, lnf_b), head = model._decode_weights()
        C, M = cfg.n_embd, layers[0][8].shape[1]
        sizes = (C, C, None, 3 * C, None, C, C, C, None, M, None, C)  # of each layer tensor when it is a bias

        def stacked(i: int) -> np.ndarray:
            return np.ascontiguousarray(np.stack([_array(layer[i], sizes[i]) for layer in layers]))

        head_w, head_b = head
        self.weights = (
            _array(wte),
            _array(wpe),
            *(stacked(i) for i in range(12)),
            _array(lnf_w, C),
            _array(lnf_b, C),
            _array(head_w),
            _array(head_b, head_w.shape[1]),
        )
        self.gelu = cfg.activation != "relu"
        self.eps = float(cfg.norm_eps)
        self.cache = cache
        self.kv = cache.kv_all.numpy()  # shares the cache's memory
        self.tokens = np.zeros(cache.batch_size, dtype=np.int64)
        self.logits = torch.empty(cache.batch_size, cfg.vocab_size)
        self._logits = self.logits.numpy()

    def __call__(self, tokens: Tensor) -> Tensor:
        """Logits (B, V) after ``tokens`` (B,); the returned tensor is overwritten by the next call."""
        cache = self.cache
        if cache.length >= cache.max_len:
            raise ModelInputError(f"key-value cache of {cache.max_len} positions is full")
        if tokens.size(0) != cache.batch_size:
            raise ModelInputError(f"cache holds {cache.batch_size} streams, tokens have {tokens.size(0)}")
        self.tokens[:] = tokens.view(-1).numpy()
        _decode_step(self.tokens, cache.length, *self.weights, self.kv, self.gelu, self.eps, self._logits)
        cache.length += 1
        return self.logits


def _array(t: Tensor | None, zeros: int | None = None) -> np.ndarray:
    """A float32 NumPy copy of a weight; an absent bias becomes zeros of length ``zeros``."""
    if t is None:
        return np.zeros(zeros, dtype=np.float32)
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
