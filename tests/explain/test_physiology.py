"""ECG wave and PPG feature masks, and the attention share of heads on them."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens.errors import ModelInputError
from cardiolens.explain import AttentionMaps, dicrotic_notches, ecg_wave_masks, head_feature_shares, ppg_feature_masks
from cardiolens.explain.plots import plot_head_features


def test_ecg_waves_lie_where_they_were_drawn(make_ecg):
    fs = 100.0
    x = make_ecg(seconds=8.0, fs=fs)
    peaks = np.arange(0.3, 7.8, 0.8) * fs
    peaks = np.round(peaks).astype(int)
    masks = ecg_wave_masks(x, fs, peaks)
    assert set(masks) == {"P", "QRS", "T"}
    for name in masks:
        assert masks[name].any(), name
    assert not (masks["P"] & masks["QRS"]).any() and not (masks["T"] & masks["QRS"]).any()
    inner = peaks[1:-1]
    assert masks["QRS"][inner].all()
    # the drawn P wave sits 0.16 s before each R, the T wave 0.28 s after
    assert masks["P"][inner - 16].mean() >= 0.75
    assert masks["T"][inner + 28].mean() >= 0.75
    assert not masks["P"][inner + 28].any()
    assert not any(m.any() for m in ecg_wave_masks(np.zeros(300), fs, np.array([], dtype=int)).values())


def _ppg(fs: float = 50.0, seconds: float = 10.0, notch_at: float = 0.35):
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    onsets = np.arange(0.2, seconds - 1.0, 0.9)
    for o in onsets:
        x += np.exp(-(((t - o - 0.15) / 0.08) ** 2))  # systolic wave
        x += 0.45 * np.exp(-(((t - o - 0.15 - notch_at - 0.08) / 0.08) ** 2))  # diastolic wave after the notch
    peaks = np.round((onsets + 0.15) * fs).astype(int)
    return x, peaks


def test_dicrotic_notch_between_the_two_waves():
    fs = 50.0
    x, peaks = _ppg(fs)
    notches = dicrotic_notches(x, fs, peaks)
    found = notches[notches >= 0]
    assert found.size >= len(peaks) - 1
    gaps = (found - peaks[: found.size]) / fs
    # the valley between the Gaussians lies about 0.3 s after the systolic peak
    assert np.all((gaps > 0.2) & (gaps < 0.4))
    masks = ppg_feature_masks(x, fs, peaks)
    assert masks["systolic peak"][peaks].all()
    assert masks["dicrotic notch"][found].all()
    assert not (masks["systolic peak"] & masks["dicrotic notch"]).any()


def _maps_from(heads: list[np.ndarray]) -> AttentionMaps:
    w = np.stack(heads)[None]  # (1, H, T, T)
    return AttentionMaps(w.astype(np.float32), np.zeros(w.shape[-1], dtype=np.int64), "toy")


def test_head_shares_against_constructed_heads(tmp_path):
    T = 40
    mask = np.zeros(T, dtype=bool)
    mask[::5] = True  # the feature: every 5th position
    causal = np.tril(np.ones((T, T)))
    uniform = causal / causal.sum(-1, keepdims=True)
    on_feature = causal * mask[None]
    on_feature /= on_feature.sum(-1, keepdims=True)
    off = causal * ~mask[None]
    off[0, 0] = 1.0  # the first query sees only position 0, which is the feature
    off /= off.sum(-1, keepdims=True)
    table = head_feature_shares(_maps_from([uniform, on_feature, off]), {"beat": mask}, min_query=10)
    share = table.share[0, :, 0]
    assert share[0] == pytest.approx(table.chance[0, 0, 0])  # uniform attention is chance
    assert share[1] == pytest.approx(1.0)
    assert share[2] == pytest.approx(0.0)
    expected_chance = np.mean([np.cumsum(mask)[t] / (t + 1) for t in range(10, T)])
    assert table.chance[0, 0, 0] == pytest.approx(expected_chance)
    assert [r["head"] for r in table.top_heads("beat", k=3)] == ["L0H1"]
    summary = table.summary()
    assert summary["beat"]["top_heads"][0]["head"] == "L0H1"
    with pytest.raises(ModelInputError, match="unknown feature 'QRS'; available: beat"):
        table.top_heads("QRS")
    plot_head_features(table, out=tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_head_shares_skip_windows_without_the_feature():
    T = 20
    causal = np.tril(np.ones((T, T)))
    maps = _maps_from([causal / causal.sum(-1, keepdims=True)])
    present = np.zeros(T, dtype=bool)
    present[3] = True
    table = head_feature_shares(
        [maps, maps], [{"a": present, "b": present}, {"a": present, "b": np.zeros(T, dtype=bool)}], min_query=5
    )
    assert table.windows == [2, 1]
    assert np.isfinite(table.share).all()
    with pytest.raises(ModelInputError, match="2 attention maps but 1 mask sets"):
        head_feature_shares([maps, maps], [{"a": present}])
