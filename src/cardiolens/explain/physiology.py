"""Heads and physiology: how much of each attention head's weight falls on P wave, QRS, T wave
(ECG) or on the systolic peak and dicrotic notch (PPG), against the share expected by chance.

For a query token ``t`` the share of a head on a feature is the attention it puts on context
positions ``0..t`` inside the feature; chance is the fraction of those positions inside the feature
(what a head attending uniformly over its causal context would put there). Both are averaged over
the query tokens from ``min_query`` on and over windows; their ratio is the head's enrichment.

ECG waves come from neurokit2's wavelet delineator (``nk.ecg_delineate(method="dwt")``). PPG
systolic peaks come from :func:`cardiolens.signal.ppg_peaks`; the dicrotic notch is found by
:func:`dicrotic_notches`, written here because neither neurokit2 nor scipy provides one.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from cardiolens.errors import CardiolensError, ModelInputError
from cardiolens.explain.adapter import Window
from cardiolens.explain.attention import AttentionMaps
from cardiolens.signal.leads import ECG_LEAD_NAMES
from cardiolens.signal.leads import modality as lead_modality  # "modality" names arguments here
from cardiolens.signal.peaks import ecg_peaks, ppg_peaks

log = logging.getLogger(__name__)

ECG_FEATURES = ("P", "QRS", "T")
PPG_FEATURES = ("systolic peak", "dicrotic notch")


def window_modality(window: Window, default: str | None = None) -> str:
    """``"ECG"`` or ``"PPG"`` for the window's first lead (``default`` breaks an unknown name's tie)."""
    name = window.leads[0].upper()
    if lead_modality(name) == "PPG":
        return "PPG"
    if name in ECG_LEAD_NAMES:
        return "ECG"
    return default or "ECG"  # an unknown name (ch0, signal): the model's modality decides


def window_peaks(window: Window, row: int = 0, modality: str | None = None) -> np.ndarray:
    """Beats (sample indices) in one lead of the window: R peaks for ECG, pulse peaks for PPG."""
    x = window.signal[row].astype(np.float64)
    kind = modality or window_modality(window)
    try:
        return ppg_peaks(x, window.fs) if kind == "PPG" else ecg_peaks(x, window.fs)
    except CardiolensError as exc:
        log.info("no beats found in %s: %s", window.source, exc)
        return np.zeros(0, dtype=np.int64)


def _fill(mask: np.ndarray, a: float, b: float) -> None:
    if np.isfinite(a) and np.isfinite(b) and b >= a:
        mask[max(0, int(a)) : min(mask.size, int(b) + 1)] = True


def ecg_wave_masks(signal: np.ndarray, fs: float, peaks: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean masks (samples,) of the P wave, QRS complex and T wave of one ECG lead.

    Onsets and offsets come from neurokit2's DWT delineator; where it gives a wave's peak but not
    its bounds, the wave is taken as its peak +- 50 ms (P), +- 80 ms (T); a QRS without bounds is
    the Q peak to the S peak, or the R peak +- 50 ms.

    Args:
        signal: one lead (samples,), best a few seconds or more (delineation needs whole beats).
        fs: sampling rate in Hz.
        peaks: R peaks (default: :func:`cardiolens.signal.ecg_peaks`).

    Returns:
        ``{"P": mask, "QRS": mask, "T": mask}``; masks are empty (all False) where delineation failed.
    """
    import neurokit2 as nk

    x = np.asarray(signal, dtype=np.float64)
    n = x.size
    masks = {f: np.zeros(n, dtype=bool) for f in ECG_FEATURES}
    if peaks is None:
        try:
            peaks = ecg_peaks(x, fs)
        except CardiolensError:
            return masks
    peaks = np.asarray(peaks, dtype=np.int64)
    if peaks.size == 0:
        return masks
    half = {"P": 0.05 * fs, "T": 0.08 * fs, "QRS": 0.05 * fs}
    for p in peaks:  # QRS by the R peak, refined below where the delineator gives bounds
        _fill(masks["QRS"], p - half["QRS"], p + half["QRS"])
    if peaks.size < 2:
        return masks
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, waves = nk.ecg_delineate(x, peaks, sampling_rate=fs, method="dwt")
    except Exception as exc:  # neurokit2 raises assorted errors on short or odd signals
        log.info("ECG delineation failed (%s); QRS from R peaks only", exc)
        return masks

    def get(key: str) -> np.ndarray:
        v = np.asarray(waves.get(key, []), dtype=np.float64)
        return v if v.size == peaks.size else np.full(peaks.size, np.nan)

    p_on, p_pk, p_off = get("ECG_P_Onsets"), get("ECG_P_Peaks"), get("ECG_P_Offsets")
    t_on, t_pk, t_off = get("ECG_T_Onsets"), get("ECG_T_Peaks"), get("ECG_T_Offsets")
    r_on, r_off, q_pk, s_pk = get("ECG_R_Onsets"), get("ECG_R_Offsets"), get("ECG_Q_Peaks"), get("ECG_S_Peaks")
    masks["QRS"][:] = False
    for i, r in enumerate(peaks):
        a, b = r_on[i], r_off[i]
        if not (np.isfinite(a) and np.isfinite(b) and a <= r <= b and (b - a) < 0.2 * fs):
            a = q_pk[i] if np.isfinite(q_pk[i]) and r - q_pk[i] < 0.1 * fs else r - half["QRS"]
            b = s_pk[i] if np.isfinite(s_pk[i]) and s_pk[i] - r < 0.1 * fs else r + half["QRS"]
        _fill(masks["QRS"], a, b)
        for name, on, pk, off in (("P", p_on[i], p_pk[i], p_off[i]), ("T", t_on[i], t_pk[i], t_off[i])):
            if np.isfinite(on) and np.isfinite(off) and off > on and (off - on) < 0.4 * fs:
                _fill(masks[name], on, off)
            elif np.isfinite(pk):
                _fill(masks[name], pk - half[name], pk + half[name])
    masks["P"] &= ~masks["QRS"]
    masks["T"] &= ~masks["QRS"]
    return masks


def dicrotic_notches(signal: np.ndarray, fs: float, peaks: np.ndarray) -> np.ndarray:
    """The dicrotic notch after each systolic peak (sample index, -1 where none is found).

    Hand-written (no maintained library detects it): between 0.05 s after a systolic peak and 60 %
    of the way to the next one, the first local minimum of the signal; on a pulse whose decline
    has no minimum there, the point of the largest second derivative (where the decline pauses).
    """
    x = np.asarray(signal, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.int64)
    out = np.full(peaks.size, -1, dtype=np.int64)
    d2 = np.gradient(np.gradient(x))
    for i, p in enumerate(peaks):
        nxt = peaks[i + 1] if i + 1 < peaks.size else min(x.size, p + int(1.2 * fs))
        a, b = p + max(1, int(0.05 * fs)), p + int(0.6 * (nxt - p))
        if b - a < 3 or b >= x.size:
            continue
        seg = x[a:b]
        minima = np.flatnonzero((seg[1:-1] < seg[:-2]) & (seg[1:-1] <= seg[2:])) + 1
        out[i] = a + (int(minima[0]) if minima.size else int(np.argmax(d2[a:b])))
    return out


def ppg_feature_masks(
    signal: np.ndarray, fs: float, peaks: np.ndarray | None = None, half_width: float = 0.06
) -> dict[str, np.ndarray]:
    """Boolean masks of the systolic peaks and dicrotic notches (each +- ``half_width`` s) of a PPG."""
    x = np.asarray(signal, dtype=np.float64)
    masks = {f: np.zeros(x.size, dtype=bool) for f in PPG_FEATURES}
    if peaks is None:
        try:
            peaks = ppg_peaks(x, fs)
        except CardiolensError:
            return masks
    peaks = np.asarray(peaks, dtype=np.int64)
    h = max(1, int(round(half_width * fs)))
    for p in peaks:
        _fill(masks["systolic peak"], p - h, p + h)
    for q in dicrotic_notches(x, fs, peaks):
        if q >= 0:
            _fill(masks["dicrotic notch"], q - h, q + h)
    masks["dicrotic notch"] &= ~masks["systolic peak"]
    return masks


def feature_masks(window: Window, row: int = 0, modality: str | None = None) -> dict[str, np.ndarray]:
    """The physiological feature masks of one lead of a window (ECG waves or PPG peak/notch)."""
    kind = modality or window_modality(window)
    peaks = window_peaks(window, row, kind)
    x = window.signal[row]
    return ppg_feature_masks(x, window.fs, peaks) if kind == "PPG" else ecg_wave_masks(x, window.fs, peaks)


@dataclass
class HeadFeatureTable:
    """Attention share of every head on every feature, with the share chance would give.

    Attributes:
        features: feature names.
        share: (layers, heads, features) mean attention on the feature.
        chance: (layers, heads, features) the uniform-attention share over the same queries
            (equal across heads; kept per head so windows without a feature drop out alike).
        windows: windows averaged per feature.
        model: the model's name.
    """

    features: list[str]
    share: np.ndarray
    chance: np.ndarray
    windows: list[int]
    model: str = "model"

    @property
    def enrichment(self) -> np.ndarray:
        """share / chance, (layers, heads, features)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.share / self.chance

    def rows(self) -> list[dict[str, Any]]:
        """One row per head and feature: layer, head, feature, share, chance, enrichment."""
        out = []
        L, H, F = self.share.shape
        enr = self.enrichment
        for layer in range(L):
            for head in range(H):
                for f in range(F):
                    out.append(
                        {
                            "head": f"L{layer}H{head}",
                            "layer": layer,
                            "index": head,
                            "feature": self.features[f],
                            "share": float(self.share[layer, head, f]),
                            "chance": float(self.chance[layer, head, f]),
                            "enrichment": float(enr[layer, head, f]),
                        }
                    )
        return out

    def top_heads(self, feature: str, k: int = 3, min_enrichment: float = 1.5) -> list[dict[str, Any]]:
        """The ``k`` heads with the highest enrichment on ``feature`` (at least ``min_enrichment``)."""
        if feature not in self.features:
            raise ModelInputError(f"unknown feature {feature!r}; available: {', '.join(self.features)}")
        rows = [r for r in self.rows() if r["feature"] == feature and np.isfinite(r["enrichment"])]
        rows.sort(key=lambda r: -r["enrichment"])
        return [r for r in rows[:k] if r["enrichment"] >= min_enrichment]

    def found(self, feature: str) -> bool:
        """Whether ``feature`` was delineated in any window (else every head's share of it is undefined)."""
        i = self.features.index(feature)
        return self.windows[i] > 0 and bool(np.isfinite(self.chance[..., i]).any())

    def summary(self, k: int = 3, min_enrichment: float = 1.5) -> dict[str, Any]:
        """Per feature: chance share and the heads that track it (named ``L{layer}H{head}``)."""
        return {
            f: {
                "chance": _mean(self.chance[..., i]),
                "mean_share": _mean(self.share[..., i]),
                "windows": self.windows[i],
                "top_heads": [
                    {key: r[key] for key in ("head", "share", "enrichment")}
                    for r in self.top_heads(f, k, min_enrichment)
                ],
            }
            for i, f in enumerate(self.features)
        }


_PLURALS = {"P": "P waves", "T": "T waves", "QRS": "QRS complexes"}


def not_found_text(feature: str) -> str:
    """What the CLI, the figure and the report say of a feature that was not delineated in the window."""
    return f"{_PLURALS.get(feature, feature)} not found in this window"


def _mean(x: np.ndarray) -> float:
    """Mean of the finite values; NaN (without a warning) when there are none."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def head_feature_shares(
    maps: list[AttentionMaps] | AttentionMaps,
    masks: list[dict[str, np.ndarray]] | dict[str, np.ndarray],
    min_query: int | None = None,
) -> HeadFeatureTable:
    """Attention share of each head on each feature, averaged over query tokens and windows.

    Args:
        maps: attention of one or more windows (:func:`~cardiolens.explain.attention_maps`).
        masks: per window, feature name -> bool mask (:func:`feature_masks`); the same features in each.
        min_query: first query token averaged (default: a quarter of the context, so that every
            query sees at least a beat or two).

    Returns:
        A :class:`HeadFeatureTable`; a window whose feature mask is empty before a query does not count for it.
    """
    maps = [maps] if isinstance(maps, AttentionMaps) else list(maps)
    masks = [masks] if isinstance(masks, dict) else list(masks)
    if not maps or len(maps) != len(masks):
        raise ModelInputError(f"{len(maps)} attention maps but {len(masks)} mask sets")
    features = list(masks[0])
    L, H = maps[0].n_layers, maps[0].n_heads
    share_sum = np.zeros((L, H, len(features)))
    chance_sum = np.zeros((L, H, len(features)))
    counts = np.zeros(len(features), dtype=int)
    for m, feats in zip(maps, masks, strict=True):
        if (m.n_layers, m.n_heads) != (L, H):
            raise ModelInputError("all attention maps must come from the same model")
        T = m.n_tokens
        q0 = T // 4 if min_query is None else min_query
        if not 0 <= q0 < T:
            raise ModelInputError(f"min_query {q0} outside the {T}-token context")
        w = m.weights[:, :, q0:, :].astype(np.float64)  # (L, H, Q, T)
        for f, name in enumerate(features):
            mask = np.asarray(feats[name], dtype=np.float64)[:T]
            if mask.size != T:
                raise ModelInputError(f"mask {name!r} has {mask.size} samples for a {T}-token window")
            seen = np.cumsum(mask)[q0:]  # positions in the feature each query can see
            valid = seen > 0
            if not valid.any():
                continue
            on = w @ mask  # (L, H, Q)
            chance = seen / np.arange(q0 + 1, T + 1)
            share_sum[..., f] += on[..., valid].mean(axis=-1)
            chance_sum[..., f] += chance[valid].mean()
            counts[f] += 1
    with np.errstate(invalid="ignore"):
        share = share_sum / counts
        chance = chance_sum / counts
    return HeadFeatureTable(features, share, chance, counts.tolist(), maps[0].model)


__all__ = [
    "ECG_FEATURES",
    "PPG_FEATURES",
    "HeadFeatureTable",
    "dicrotic_notches",
    "ecg_wave_masks",
    "feature_masks",
    "head_feature_shares",
    "ppg_feature_masks",
    "window_modality",
    "window_peaks",
]
