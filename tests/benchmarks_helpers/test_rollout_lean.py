"""The share of a map in its first and last tenth (benchmarks/rollout_lean.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from rollout_lean import tenth_shares  # noqa: E402


def test_tenth_shares_of_flat_and_piled_maps():
    assert tenth_shares(np.ones(500)) == pytest.approx((0.1, 0.1))
    piled = np.r_[np.full(50, 9.0), np.ones(450)]  # 450 of 900 in the first tenth
    assert tenth_shares(piled[None]) == pytest.approx((0.5, 50 / 900))
