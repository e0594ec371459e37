"""Method variants of benchmarks/explain_faithfulness.py (``--variants``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from explain_faithfulness import VARIANTS, explain_as  # noqa: E402


def test_a_variant_runs_its_method_with_its_options_under_its_own_name():
    from cardiolens.explain import attribute, prepare_window
    from cardiolens.models import create_model

    torch.manual_seed(0)
    model = create_model("gpt", n_layer=2, n_head=2, n_embd=16, block_size=128, head="classifier", fs=100.0).eval()
    t = np.arange(1000) / 100.0
    window = prepare_window(model, np.sin(2 * np.pi * 1.2 * t) ** 15, fs=100.0)
    assert VARIANTS["attention-chance"] == ("attention", {"relative_to_chance": True})
    ratio = explain_as(model, window, "attention-chance", target=0, ig_steps=4)
    assert ratio.method == "attention-chance" and ratio.info["relative_to_chance"] is True
    direct = attribute(model, window, "attention", target=0, relative_to_chance=True)
    np.testing.assert_allclose(ratio.values, direct.values)
    plain = explain_as(model, window, "attention", target=0, ig_steps=4)
    assert plain.method == "attention" and plain.info["relative_to_chance"] is False
    assert not np.allclose(plain.values, ratio.values)
    ig = explain_as(model, window, "ig", target=0, ig_steps=4)
    assert ig.method == "ig" and ig.info["n_steps"] == 4  # the benchmark's --ig-steps reaches IG
