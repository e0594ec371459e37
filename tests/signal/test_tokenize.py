"""The HeartGPT tokeniser: round trips, spans, batches, refusals, and the published example inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiolens import RecordError
from cardiolens.signal.tokenize import HEARTGPT_LEVELS, detokenize, span_scale, tokenize


@pytest.mark.parametrize("vocab_size", [2, 101, 102, 256])
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_within_half_a_quantum(vocab_size: int, seed: int) -> None:
    x = np.cumsum(np.random.default_rng(seed).standard_normal(500))
    tokens, scale = tokenize(x, vocab_size=vocab_size)
    assert tokens.dtype == np.int64 and tokens.min() == 0 and tokens.max() == vocab_size - 1
    quantum = (x.max() - x.min()) / (vocab_size - 1)
    back = detokenize(tokens, scale, vocab_size=vocab_size)
    assert np.max(np.abs(back - x)) <= 0.5 * quantum + 1e-12
    assert scale == (pytest.approx(x.min()), pytest.approx(x.max()))


def test_window_span_scales_each_row_by_itself() -> None:
    x = np.vstack([np.sin(np.arange(500) / 7), 50 + 3 * np.sin(np.arange(500) / 7)])
    tokens, (lo, hi) = tokenize(x)
    assert np.array_equal(tokens[0], tokens[1])  # same shape, different offset and gain: same tokens
    assert lo.shape == (2,) and hi[1] == pytest.approx(53, abs=1e-3)
    assert np.allclose(detokenize(tokens, (lo, hi)), x, atol=0.5 * 6 / 100 + 1e-9)


def test_given_span_keeps_windows_of_a_segment_comparable() -> None:
    segment = np.r_[np.sin(np.arange(500) / 9), 3 * np.sin(np.arange(500) / 9)]
    scale = span_scale(segment)
    quiet, used = tokenize(segment[:500], scale=scale)
    loud, _ = tokenize(segment[500:], scale=scale, span="given")
    assert used == scale
    assert quiet.max() - quiet.min() == pytest.approx((loud.max() - loud.min()) / 3, abs=1)
    assert np.allclose(detokenize(quiet, scale), segment[:500], atol=0.5 * 6 / 100 + 1e-9)


def test_given_scale_clips_values_outside_it() -> None:
    tokens, _ = tokenize(np.array([-5.0, 0.0, 0.5, 1.0, 9.0]), scale=(0.0, 1.0))
    assert tokens.tolist() == [0, 0, 50, 100, 100]


@pytest.mark.parametrize(
    "x,kwargs,problem",
    [
        (np.full(500, 0.2), {}, "constant"),
        (np.vstack([np.arange(5.0), np.ones(5)]), {}, r"constant window \(rows \[1\]\)"),
        (np.r_[np.zeros(10), np.nan], {}, "NaN"),
        (np.array([]), {}, "empty"),
        (np.arange(5.0), {"span": "given"}, "needs scale"),
        (np.arange(5.0), {"span": "window", "scale": (0, 1)}, "do not pass scale"),
        (np.arange(5.0), {"scale": (1.0, 1.0)}, "constant"),
        (np.arange(5.0), {"span": "record"}, "span must be one of"),
        (np.arange(5.0), {"vocab_size": 1}, "vocab_size"),
    ],
)
def test_refusals_are_clear(x: np.ndarray, kwargs: dict, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        tokenize(x, **kwargs)


def test_detokenize_refuses_out_of_range_tokens() -> None:
    with pytest.raises(RecordError, match=r"0\.\.100"):
        detokenize(np.array([0, 101]), (0.0, 1.0))
    assert detokenize(np.array([0, 101]), (0.0, 1.0), vocab_size=102).tolist() == [0.0, 1.0]


def test_span_scale_refuses_constant_segments() -> None:
    with pytest.raises(RecordError, match="constant"):
        span_scale(np.ones(10))


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name",
    ["example_context_ECG_AFib1.csv", "example_context_PPG_AFib.csv", "example_context_PPG_AFib2.csv"],
)
def test_published_token_contexts_are_fixed_points(heartgpt_dir: Path, name: str) -> None:
    # HeartGPT's example contexts are already tokenised (0..100, for ECG and PPG alike): tokenising
    # them again with the same scheme must return them unchanged
    values = np.loadtxt(heartgpt_dir / "example_inputs" / name)
    tokens, scale = tokenize(values, vocab_size=HEARTGPT_LEVELS)
    assert scale == (0.0, 100.0)
    assert np.array_equal(tokens, values.astype(np.int64))


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["example_context_ECG.csv", "example_context_PPG.csv"])
def test_published_raw_contexts_round_trip(heartgpt_dir: Path, name: str) -> None:
    values = np.loadtxt(heartgpt_dir / "example_inputs" / name)
    tokens, scale = tokenize(values)
    assert tokens.min() == 0 and tokens.max() == 100 and tokens.size == 500
    quantum = (values.max() - values.min()) / 100
    assert np.max(np.abs(detokenize(tokens, scale) - values)) <= 0.5 * quantum + 1e-12
