"""Token generation from a GPT model: greedy, temperature and top-k sampling with a key-value cache.

Window policy (models with learned absolute positions, like HeartGPT, cannot shift a cache): the
context is encoded once (its last ``block_size`` tokens when longer), then each new token is fed
alone at the next position, reusing the cached keys/values. When the cache holds ``block_size``
positions it is re-primed: the last ``keep`` tokens (default three quarters of the window) are
encoded again from position 0 and decoding goes on. Every prediction therefore sees between
``keep`` and ``block_size`` tokens of context; ``keep=block_size`` re-primes at every step once the
window is full and reproduces the published sliding-window generation exactly (at its cost).
"""

from __future__ import annotations

import contextlib
import numbers
import operator
from collections.abc import Iterator
from functools import partial

import numpy as np
import torch
from torch import Tensor

from cardiolens.errors import ModelInputError
from cardiolens.generate import compiled

_ENGINES = ("auto", "torch", "compiled")


def default_keep(block_size: int) -> int:
    """Tokens kept when the cache is re-primed, unless ``keep`` says otherwise: three quarters of the window."""
    return block_size - block_size // 4


def _as_tokens(tokens: Tensor | np.ndarray | list, vocab_size: int, device: torch.device) -> tuple[Tensor, bool]:
    """(B, T) int64 tokens on ``device`` and whether the input was 1-D."""
    if not isinstance(tokens, Tensor):
        try:
            tokens = torch.as_tensor(np.asarray(tokens))
        except (TypeError, ValueError) as exc:
            raise ModelInputError(f"tokens must be an array of integer token ids ({exc})") from None
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise ModelInputError(
            f"tokens must be integer token ids, got dtype {tokens.dtype}; to continue a signal use continue_signal, "
            "which tokenises it"
        )
    squeeze = tokens.dim() == 1
    if squeeze:
        tokens = tokens.unsqueeze(0)
    if tokens.dim() != 2:
        raise ModelInputError(f"tokens must be shaped (time,) or (batch, time), got shape {tuple(tokens.shape)}")
    if tokens.numel() == 0:
        raise ModelInputError(f"tokens are empty (shape {tuple(tokens.shape)})")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ModelInputError(f"token ids must lie in 0..{vocab_size - 1} (the model's vocabulary), found {lo}..{hi}")
    return tokens.to(device=device, dtype=torch.long), squeeze


# below this, logits / temperature can overflow float32 (logits of 3e32 would be needed above it)
_TINY_TEMPERATURE = 1e-6


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row of next-token logits (B, V) -> (B,)."""
    if greedy:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    # a temperature so small that logits / temperature overflows (softmax would give NaN): take the
    # limit as the temperature goes to 0, an even draw among the most likely tokens (checked only
    # for tiny temperatures: a step of ordinary sampling pays nothing for it)
    if temperature < _TINY_TEMPERATURE and not bool(torch.isfinite(scaled.amax(dim=-1)).all()):
        best = logits.float()
        scaled = torch.where(best == best.amax(dim=-1, keepdim=True), 0.0, float("-inf"))
    logits = scaled
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


def generate(
    model: torch.nn.Module,
    tokens: Tensor | np.ndarray | list,
    steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    *,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    keep: int | None = None,
    min_context: int = 1,
    engine: str = "auto",
) -> Tensor:
    """Continue token sequences with a GPT language model.

    Args:
        model: a :class:`~cardiolens.models.GPT` with a language-model head (run in eval mode here;
            its mode is restored afterwards).
        tokens: context token ids, (T,) or (B, T) (B contexts of equal length, decoded together).
            Longer than the window: the last ``block_size`` tokens are used.
        steps: new tokens to produce per context.
        temperature: divides the logits before sampling (> 0); lower is more conservative (one so
            small that the division overflows draws among the most likely tokens, the limit at 0).
        top_k: sample only among the k most likely tokens (``top_k=1`` is greedy).
        greedy: take the most likely token (temperature and top_k are ignored).
        seed: an integer (within torch's seed range, -2**63 .. 2**64 - 1) seeding a private
            ``torch.Generator``: the same seed gives the same tokens.
        generator: a generator to draw from instead of ``seed``.
        use_cache: decode incrementally with a key-value cache; ``False`` recomputes the whole window
            for every token (the published method; for checking and benchmarking).
        keep: tokens kept when the cache is re-primed (see the module docstring); default
            ``block_size - block_size // 4``.
        min_context: refuse contexts shorter than this.
        engine: the decoding step with the cache: ``"torch"`` (:meth:`GPT.decode_logits`),
            ``"compiled"`` (the numba step of :mod:`cardiolens.generate.compiled`: float32 CPU models,
            fewer than 16 streams; a step about three times as fast at HeartGPT's shapes, logits equal
            within 1e-4, tested; docs/BENCHMARKS.md) or ``"auto"`` (compiled where it applies, else torch).

    Returns:
        int64 tokens, context followed by the new ones: (B, T + steps), or (T + steps,) for 1-D input.

    Raises:
        ModelInputError: not a language model, tokens outside the vocabulary, empty or too-short
            context, bad sampling settings.

    Example:
        >>> from cardiolens.models import create_model
        >>> model = create_model("gpt", n_layer=2).eval()
        >>> out = generate(model, torch.randint(0, 101, (2, 30)), steps=10, top_k=5, seed=0)
        >>> out.shape
        torch.Size([2, 40])
    """
    out, squeeze, generator, keep, temperature = _prepare(
        model, tokens, steps, temperature, top_k, greedy, seed, generator, keep, min_context, engine
    )
    T = out.size(1) - steps
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            _decode(model, out, T, steps, temperature, top_k, greedy, generator, use_cache, keep, engine)
    finally:
        model.train(was_training)
    return out[0] if squeeze else out


def generate_stream(
    model: torch.nn.Module,
    tokens: Tensor | np.ndarray | list,
    steps: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    *,
    chunk: int = 25,
    generator: torch.Generator | None = None,
    keep: int | None = None,
    min_context: int = 1,
    engine: str = "auto",
) -> Iterator[Tensor]:
    """:func:`generate`, handing out the new tokens in chunks as they are decoded (for streaming).

    The arguments are checked when this is called (a bad one raises here, before any chunk), and
    the tokens are exactly those :func:`generate` gives for the same arguments and seed: the chunks
    joined equal ``generate(...)[..., T:]``. Each chunk is decoded inside its own
    ``torch.inference_mode()`` block, so a consumer may take chunks from different threads (as a web
    server's thread pool does). The model is put in eval mode for the whole stream and its mode is
    restored when the stream ends or is closed.

    Args:
        model, tokens, steps, temperature, top_k, greedy, seed, generator, keep, min_context, engine:
            as in :func:`generate` (always with the key-value cache).
        chunk: new tokens per chunk (the last chunk may be shorter).

    Returns:
        An iterator of int64 tensors (B, k), or (k,) for a 1-D ``tokens``.

    Raises:
        ModelInputError: as :func:`generate`, and a ``chunk`` that is not a positive integer.

    Example:
        >>> from cardiolens.models import create_model
        >>> model = create_model("gpt", n_layer=2).eval()
        >>> [c.shape[-1] for c in generate_stream(model, [5, 6, 7], steps=10, chunk=4, seed=0)]
        [4, 4, 2]
    """
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ModelInputError(f"chunk must be a positive integer, got {chunk!r}")
    out, squeeze, generator, keep, temperature = _prepare(
        model, tokens, steps, temperature, top_k, greedy, seed, generator, keep, min_context, engine
    )
    T = out.size(1) - steps
    return _stream(model, out, T, steps, temperature, top_k, greedy, generator, keep, int(chunk), squeeze, engine)


def _stream(
    model: torch.nn.Module,
    out: Tensor,
    T: int,
    steps: int,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    generator: torch.Generator | None,
    keep: int,
    chunk: int,
    squeeze: bool,
    engine: str,
) -> Iterator[Tensor]:
    was_training = model.training
    model.eval()
    steps_left = _decode_steps(model, out, T, steps, temperature, top_k, greedy, generator, True, keep, engine)
    done = T
    try:
        while done < T + steps:
            # grad mode is thread-local: enter and leave inference mode within each chunk, never across a yield
            with torch.inference_mode():
                for filled in steps_left:
                    if filled - done >= chunk:
                        break
                else:
                    filled = T + steps
            new = out[:, done:filled].clone()  # (B, k)
            done = filled
            yield new[0] if squeeze else new
    finally:
        steps_left.close()
        model.train(was_training)


def _prepare(
    model: torch.nn.Module,
    tokens: Tensor | np.ndarray | list,
    steps: int,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    seed: int | None,
    generator: torch.Generator | None,
    keep: int | None,
    min_context: int,
    engine: str,
) -> tuple[Tensor, bool, torch.Generator | None, int, float]:
    """Check the arguments of :func:`generate`; the output buffer (B, T + steps) holding the context,
    and the temperature as a float."""
    cfg = model.config
    if cfg.head != "lm":
        raise ModelInputError(
            f"{cfg.name!r} has a {cfg.head} head; generation needs a language-model head (a pretrained model)"
        )
    device = next(model.parameters()).device
    context, squeeze = _as_tokens(tokens, cfg.vocab_size, device)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ModelInputError(f"steps must be a non-negative integer, got {steps!r}")
    if not greedy:
        value = _number(temperature)
        if value is None or not np.isfinite(value) or value <= 0:
            raise ModelInputError(
                f"temperature must be a positive number (greedy=True for argmax), got {temperature!r}"
            )
        temperature = value
    if seed is not None:
        seed = _seed(seed)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ModelInputError(f"top_k must be a positive integer or None, got {top_k!r}")
    B, T = context.shape
    if engine not in _ENGINES:
        raise ModelInputError(f"engine must be one of {_ENGINES}, got {engine!r}")
    if engine == "compiled" and not compiled.applies(model, B):
        raise ModelInputError(
            f"the compiled decoding step needs numba (installed: {compiled.available()}), a float32 model on the "
            f"CPU (this one: {model.wte.weight.dtype} on {model.wte.weight.device.type}) and fewer than "
            f"{compiled.MAX_STREAMS} streams (got {B}); engine='auto' picks it only where it applies"
        )
    if T < min_context:
        raise ModelInputError(f"context of {T} tokens is shorter than the minimum of {min_context}")
    block = cfg.block_size
    keep = default_keep(block) if keep is None else keep
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 1 <= keep <= block:
        raise ModelInputError(f"keep must be an integer between 1 and block_size ({block}), got {keep!r}")
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    out = torch.empty(B, T + steps, dtype=torch.long, device=device)
    out[:, :T] = context
    return out, squeeze, generator, keep, temperature


# torch.Generator.manual_seed takes integers in this range (anything else raised a bare ValueError/TypeError)
_SEED_RANGE = (-(2**63), 2**64 - 1)


def _number(value: object) -> float | None:
    """``value`` as a float when it is a real number (Python, NumPy or a one-element tensor), else ``None``."""
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.dtype.is_complex:
            return None
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _seed(seed: object) -> int:
    """``seed`` as a Python int that ``torch.Generator.manual_seed`` accepts, or a clear error."""
    if isinstance(seed, (bool, np.bool_)):
        raise ModelInputError(f"seed must be an integer or None, got {seed!r}")
    try:
        value = operator.index(seed)  # int, NumPy integers, integer tensors of one element; not 1.5 or "3"
    except TypeError:
        raise ModelInputError(f"seed must be an integer or None, got {seed!r}") from None
    lo, hi = _SEED_RANGE
    if not lo <= value <= hi:
        raise ModelInputError(f"seed must lie in {lo}..{hi} (torch's seed range), got {value}")
    return value


def _decode(
    model: torch.nn.Module,
    out: Tensor,
    n: int,
    steps: int,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    generator: torch.Generator | None,
    use_cache: bool,
    keep: int,
    engine: str,
) -> None:
    """Fill ``out[:, n : n + steps]`` in place; ``out[:, :n]`` holds the context."""
    for _ in _decode_steps(model, out, n, steps, temperature, top_k, greedy, generator, use_cache, keep, engine):
        pass


def _decode_steps(
    model: torch.nn.Module,
    out: Tensor,
    n: int,
    steps: int,
    temperature: float,
    top_k: int | None,
    greedy: bool,
    generator: torch.Generator | None,
    use_cache: bool,
    keep: int,
    engine: str,
) -> Iterator[int]:
    """Fill ``out[:, n : n + steps]`` in place, one token at a time, yielding how many columns are filled."""
    if steps == 0:
        return
    block = model.config.block_size
    if not use_cache:
        for _ in range(steps):
            features = model.forward_features(out[:, max(0, n - block) : n], check=False)  # (B, t, C)
            out[:, n] = sample_next(model.forward_head(features[:, -1]), temperature, top_k, greedy, generator)
            n += 1
            yield n
        return
    cache = model.new_cache(out.size(0))
    use_compiled = engine == "compiled" or (engine == "auto" and compiled.applies(model, out.size(0)))
    step_logits = compiled.CompiledDecoder(model, cache) if use_compiled else partial(model.decode_logits, cache=cache)
    # the prefill computes the last layer for the last position only: its keys/values are cached
    # for every position, and the next token depends on that position alone
    prime = model.forward_features(out[:, max(0, n - block) : n], cache=cache, check=False, last_only=True)
    logits = model.forward_head(prime[:, -1])  # (B, V)
    with _decode_threads(out.size(0)) as all_threads:
        for step in range(steps):
            token = sample_next(logits, temperature, top_k, greedy, generator)  # (B,)
            out.select(1, n).copy_(token)
            n += 1
            yield n
            if step == steps - 1:
                break
            if cache.length == block:  # window full: re-prime from the last `keep` tokens
                cache.reset()
                with _torch_threads(all_threads):  # a re-prime is a prefill: large products gain from every thread
                    prime = model.forward_features(out[:, n - keep : n], cache=cache, check=False, last_only=True)
                    logits = model.forward_head(prime[:, -1])
            else:
                logits = step_logits(token)  # (B, V)


# Below this many streams a decoding step is a few (B, 64)-sized products: splitting them over threads
# costs more than it saves (measured on 2 cores: 2,743 tokens/s single-stream on 1 thread, 1,346 on 2),
# while 64 streams gain from a second thread (1,984 -> 2,757 tokens/s).
_SINGLE_THREAD_BELOW = 16


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the count it found."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def _decode_threads(streams: int) -> Iterator[int]:
    """One thread for the decoding steps of few streams; yields the caller's thread count."""
    before = torch.get_num_threads()
    with _torch_threads(1 if streams < _SINGLE_THREAD_BELOW else before):
        yield before
