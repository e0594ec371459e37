"""Explanations of feature-tree models (``rhythm-ecg-trees``, ``aami-ecg-trees``): the features behind a prediction.

A tree model reads numbers a cardiologist can name (RR irregularity, P-wave correlation, heart rate,
a beat's prematurity), so its explanation is a list of those numbers, not a map over samples. For
one record (or, for a beat model, one beat) and one class:

- **feature effects**: for each feature, how much the log-odds of the class fall when that feature
  alone is set to its reference value (the median over the model's training items) -- "this record
  is called AF because its RR intervals are this irregular". Log-odds rather than probability, so
  that a confident prediction (p = 0.999) still shows which features carry it;
- **group effects**: the same for whole groups (for the rhythm model: RR, morphology, signal,
  median-beat shape, 20-beat windows, signal quality), since correlated features share their effect
  and one of them alone may show little;
- **faithfulness**: the deletion curve (features set to their reference, largest effect first)
  against random orders, and a model-randomisation check (the effects of a copy of the model whose
  leaf values are shuffled should not resemble the model's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.errors import ModelInputError, RecordError
from cardiolens.tasks.tree_model import BeatTreeModel, FeatureTreeModel, TreeEnsemble


def feature_groups(model: FeatureTreeModel | None = None) -> dict[str, list[int]]:
    """Column indices of each group of the model's features (default: the rhythm model's)."""
    if isinstance(model, BeatTreeModel):
        from cardiolens.tasks import aami_features as af

        parts = (
            ("RR intervals", af.RR_FEATURES),
            ("beat against the median beat", af.MORPHOLOGY_FEATURES),
            ("RR irregularity", af.IRREGULARITY_FEATURES),
            ("RR, unusual for the record", af.RR_FEATURES),
            ("shape, unusual for the record", af.MORPHOLOGY_FEATURES),
        )
    else:
        from cardiolens.tasks import rhythm_features as rf

        parts = (
            ("RR intervals", rf.RR_FEATURES),
            ("beat morphology", rf.MORPHOLOGY_FEATURES),
            ("signal", rf.SIGNAL_FEATURES),
            ("median-beat shape", rf.TEMPLATE_FEATURES),
            ("20-beat windows", rf.WINDOW_FEATURES),
            ("signal quality", rf.QUALITY_FEATURES),
        )
    groups, start = {}, 0
    for name, names in parts:
        groups[name] = list(range(start, start + len(names)))
        start += len(names)
    return groups


def _target_index(model: FeatureTreeModel, target: int | str | None, probs: np.ndarray) -> int:
    classes = model.config.classes
    if target is None:
        return int(np.argmax(probs))
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in classes:
            raise ModelInputError(f"unknown class {target!r}; {model.config.name} has {', '.join(classes)}")
        return classes.index(target)
    index = int(target)
    if not 0 <= index < len(classes):
        raise ModelInputError(f"class index {index} is outside 0..{len(classes) - 1} ({', '.join(classes)})")
    return index


def _log_odds(probs: np.ndarray, target: int) -> np.ndarray:
    p = np.clip(probs[:, target], 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def feature_effects(ensemble: TreeEnsemble, row: np.ndarray, reference: np.ndarray, target: int) -> np.ndarray:
    """(features,) log-odds of ``target`` for the record less those with that one feature at its reference."""
    swapped = np.repeat(row[None, :], len(row), axis=0)
    np.fill_diagonal(swapped, reference)
    odds = _log_odds(ensemble.predict_proba(np.vstack([row[None, :], swapped])), target)
    return odds[0] - odds[1:]


def group_effects(
    ensemble: TreeEnsemble, row: np.ndarray, reference: np.ndarray, target: int, groups: dict[str, list[int]]
) -> dict[str, float]:
    """Group name -> the fall in the log-odds of ``target`` when every feature of the group is at its reference."""
    rows = [row]
    for columns in groups.values():
        swapped = row.copy()
        swapped[columns] = reference[columns]
        rows.append(swapped)
    odds = _log_odds(ensemble.predict_proba(np.vstack(rows)), target)
    return {name: float(odds[0] - o) for name, o in zip(groups, odds[1:], strict=True)}


def deletion_curves(
    ensemble: TreeEnsemble,
    row: np.ndarray,
    reference: np.ndarray,
    target: int,
    order: np.ndarray,
    steps: int = 20,
    n_random: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p(target) as features are set to their reference in ``order``, and in random orders (their mean).

    Returns:
        (fractions of features replaced, curve in ``order``, mean random curve), each (steps + 1,).
    """
    counts = np.unique(np.round(np.linspace(0, len(row), steps + 1)).astype(int))
    rng = np.random.default_rng(seed)
    orders = [np.asarray(order)] + [rng.permutation(len(row)) for _ in range(n_random)]
    rows = []
    for o in orders:
        for k in counts:
            swapped = row.copy()
            swapped[o[:k]] = reference[o[:k]]
            rows.append(swapped)
    probs = ensemble.predict_proba(np.vstack(rows))[:, target].reshape(len(orders), len(counts))
    return counts / len(row), probs[0], probs[1:].mean(axis=0)


def shuffled_leaves(ensemble: TreeEnsemble, seed: int = 0) -> TreeEnsemble:
    """A copy of the trees with the leaf values shuffled among all leaves: same structure, no learned mapping."""
    arrays = ensemble.arrays()
    value = arrays["value"].copy()
    leaves = np.flatnonzero(arrays["is_leaf"])
    value[leaves] = np.random.default_rng(seed).permutation(value[leaves])
    arrays["value"] = value
    return TreeEnsemble(arrays)


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


@dataclass
class FeatureExplanation:
    """One record's (or beat's) explanation by a feature model (see the module docstring).

    Attributes:
        target, probability: the class explained and its probability.
        probabilities: every class's probability, largest first.
        features: feature name -> {value, reference, effect}, largest |effect| first.
        groups: group name -> effect.
        deletion: fractions, curve, random curve, and the areas (``auc``, ``random_auc``; lower is
            more faithful for deletion).
        randomisation: Spearman correlation of |effects| of the model and of a leaf-shuffled copy
            (NaN when either is constant).
        randomisation_signed: the same for the signed effects.
    """

    target: str
    probability: float
    probabilities: dict[str, float]
    features: dict[str, dict[str, float]]
    groups: dict[str, float]
    deletion: dict[str, Any]
    randomisation: float
    randomisation_signed: float


def explain_features(
    model: FeatureTreeModel, row: Any, target: int | str | None = None, steps: int = 20, seed: int = 0
) -> FeatureExplanation:
    """Explain the prediction of ``model`` for one feature row, a record's or a beat's (see the module docstring).

    Raises:
        ModelInputError: a feature row of the wrong length, or a class the model does not have.
    """
    from cardiolens.explain.faithfulness import rank_correlation

    x = np.asarray(row, dtype=np.float64).reshape(-1)
    names = model.config.features
    if x.size != len(names):
        raise ModelInputError(f"{model.config.name} reads {len(names)} features, got {x.size}")
    reference = model.config.reference_values()
    probs = model.ensemble.predict_proba(x[None, :])[0]
    t = _target_index(model, target, probs)
    effects = feature_effects(model.ensemble, x, reference, t)
    order = np.argsort(-effects, kind="stable")  # the features that support the class most go first
    fractions, curve, random_curve = deletion_curves(model.ensemble, x, reference, t, order, steps, seed=seed)
    shuffled = feature_effects(shuffled_leaves(model.ensemble, seed), x, reference, t)
    ranked = np.argsort(-np.abs(effects), kind="stable")
    return FeatureExplanation(
        target=model.config.classes[t],
        probability=float(probs[t]),
        probabilities={model.config.classes[i]: float(probs[i]) for i in np.argsort(-probs, kind="stable")},
        features={
            names[i]: {"value": float(x[i]), "reference": float(reference[i]), "effect": float(effects[i])}
            for i in ranked
        },
        groups=group_effects(model.ensemble, x, reference, t, feature_groups(model)),
        deletion={
            "fractions": fractions,
            "curve": curve,
            "random_curve": random_curve,
            "auc": _area(fractions, curve),
            "random_auc": _area(fractions, random_curve),
        },
        randomisation=rank_correlation(effects, shuffled, True),
        randomisation_signed=rank_correlation(effects, shuffled, False),
    )


def plot_feature_effects(
    explanation: FeatureExplanation, top: int = 15, out: str | Path | None = None, item: str = "record"
) -> Any:
    """Horizontal bars of the ``top`` feature effects (with each value and reference) and the deletion curve.

    ``item`` names what was explained (``record`` or ``beat``) in the axis label.
    """
    import matplotlib.pyplot as plt

    items = list(explanation.features.items())[:top][::-1]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.35 * len(items) + 1.8), width_ratios=(2.2, 1))
    effects = [v["effect"] for _, v in items]
    ax.barh(range(len(items)), effects, color=["#c0392b" if e > 0 else "#2471a3" for e in effects])
    ax.set_yticks(range(len(items)), [f"{n} = {v['value']:.3g} (ref {v['reference']:.3g})" for n, v in items])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"log-odds of {explanation.target}: {item} less {item} with the feature at its reference")
    ax.set_title(f"features behind p({explanation.target}) = {explanation.probability:.3f}")
    d = explanation.deletion
    ax2.plot(d["fractions"], d["curve"], label=f"largest effect first (area {d['auc']:.3f})", color="#c0392b")
    ax2.plot(d["fractions"], d["random_curve"], label=f"random order (area {d['random_auc']:.3f})", color="grey")
    ax2.set_xlabel("share of features set to their reference")
    ax2.set_ylabel(f"p({explanation.target})")
    ax2.set_title("deletion curve")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=110)
    return fig


def explain_tree_record(
    model: FeatureTreeModel,
    signal: Any,
    methods: str | list[str] | None = None,
    out: str | Path | None = None,
    *,
    fs: float | None = None,
    lead: str | None = None,
    target: int | str | None = None,
    beat_time: float | None = None,
    top: int = 15,
    seed: int = 0,
) -> Any:
    """:func:`cardiolens.explain.explain_record` for a feature-tree model: one method, ``features``.

    The whole record is read (the features compare with the record's own rhythm and median beat).
    A record-level model explains the record; a beat model explains one beat: the one nearest
    ``beat_time`` seconds, by default the first beat it does not call N (else the first beat). The
    report has the feature effects (figure and table), the group effects and the faithfulness numbers.

    Raises:
        ModelInputError: a method other than ``features`` (the message lists it), or a bad class.
        RecordError: a record the model cannot read (missing lead, too short, NaN, too few beats),
            naming the file.
    """
    from cardiolens.explain.adapter import Window
    from cardiolens.explain.report import ExplainReport, Section, _png, write_report
    from cardiolens.io import load_record
    from cardiolens.signal.record import Record
    from cardiolens.tasks.predict import leads_read, model_input, record_source
    from cardiolens.tasks.rhythm_features import record_features

    wanted = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods or []) if m.strip()]
    unknown = [m for m in wanted if m not in ("auto", "features")]
    if unknown:
        raise ModelInputError(
            f"{', '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not apply to {model.config.name}, "
            "a tree model on record features; "
            "available: features"
        )
    if isinstance(signal, Record):
        record = signal
    elif isinstance(signal, str | Path):
        record = load_record(signal, fs=fs)
    else:
        raise ModelInputError("a tree model is explained on a Record or a record file")
    cfg = model.config
    source = record_source(record)
    item = "beat" if isinstance(model, BeatTreeModel) else "record"
    check_beat_time(model, beat_time, record.duration, source)
    x, notes = model_input(model, record, lead)
    if item == "beat":
        row, beat, beats, note = _beat_row(model, x, beat_time, source)
        beat_s = beat / cfg.fs
        notes.append(note)
    else:
        row, beat_s = record_features(x[0], cfg.fs), None
    explanation = explain_features(model, row, target, seed=seed)
    resampled = None if abs(record.fs - cfg.fs) < 1e-6 else record.fs
    read = [record.leads[i] for i in leads_read(model, record, lead)[0]]  # the record's names of the leads read
    window = Window(signal=x, fs=cfg.fs, leads=read, source=source, resampled_from=resampled)
    d = explanation.deletion
    top_rows = [{"feature": n, **v} for n, v in list(explanation.features.items())[:top]]
    summary = {
        "model": cfg.name,
        "source": source,
        "samples": int(x.shape[-1]),
        "fs": cfg.fs,
        "start_s": 0.0,
        "leads": read,
        "resampled_from": resampled,
        "target": explanation.target,
        "prediction": explanation.probabilities,
        "methods": ["features"],
        "explained": item if beat_s is None else f"the beat at {beat_s:.3f} s",
        "preprocessing": notes,
        "features": {
            "probability": explanation.probability,
            "top": top_rows,
            "groups": explanation.groups,
            "deletion_auc": d["auc"],
            "random_deletion_auc": d["random_auc"],
            "randomisation_spearman": explanation.randomisation,
            "randomisation_spearman_signed": explanation.randomisation_signed,
        },
    }
    if beat_s is not None:
        called = max(explanation.probabilities, key=explanation.probabilities.get)
        summary["beat"] = {"time_s": round(beat_s, 3), "class": called}
    figure = _png(plot_feature_effects(explanation, top, item=item))
    text = (
        f"Each bar: how much the log-odds of {explanation.target} fall when that feature alone is set to its "
        f"median over the training {item}s. Deletion (features set to their reference, largest effect first): area "
        f"{d['auc']:.3f} against {d['random_auc']:.3f} for random orders (lower is more faithful). "
        f"Model randomisation (leaf values shuffled): Spearman {explanation.randomisation:.2f} between the "
        f"two models' |effects|, {explanation.randomisation_signed:.2f} between the signed effects (near 0 is "
        "what an explanation that depends on the learned model gives)."
    )
    report = ExplainReport(
        model=cfg.name,
        window=window,
        methods=["features"],
        prediction=explanation.probabilities,
        summary=summary,
        results={"features": explanation},
        sections=[
            Section(
                f"{item.capitalize()} features behind the prediction"
                + ("" if beat_s is None else f" (the beat at {beat_s:.3f} s)"),
                text,
                {"features.png": figure},
                {"top features": top_rows},
            ),
            Section(
                "Feature groups",
                "The fall in the log-odds of the class when a whole group is set to its reference.",
                tables={"groups": [{"group": g, "effect": e} for g, e in explanation.groups.items()]},
            ),
        ],
    )
    if beat_s is not None:
        report.sections.insert(
            1,
            Section(
                "The beat against the record",
                "Left: the beat explained (red) over the record's median beat (grey), the comparison its shape "
                "features make, from 0.25 s before to 0.45 s after the R peak. Right: the beats around it, with "
                "each RR interval in ms; its prematurity features compare its RR with these and with the record's.",
                {"beat.png": _png(plot_beat_context(x[0], cfg.fs, beats, beat))},
            ),
        )
    if out is not None:
        report.files = write_report(report, out)
    return report


def check_beat_time(model: FeatureTreeModel, beat_time: float | None, duration: float, source: str) -> None:
    """Refuse a ``beat_time`` (``--start``) the model cannot honour, before any work.

    A record-level model reads the whole record, so any start but 0 (``None``) is refused; a beat model
    refuses a time outside the record, as a window model refuses a start outside the signal.

    Raises:
        ModelInputError: a start given to a record-level model.
        RecordError: a beat time outside the record, naming the file.
    """
    if beat_time is None:
        return
    if not isinstance(model, BeatTreeModel):
        raise ModelInputError(
            f"{model.config.name} reads the whole record ({duration:.2f} s), not a window: start {beat_time:g} s "
            "does not apply (leave it at 0)"
        )
    if not 0 <= beat_time < duration:
        raise RecordError(f"start {beat_time:g} s lies outside the signal ({duration:.2f} s long)", source)


def plot_beat_context(signal: Any, fs: float, beats: Any, beat: int, seconds: float = 8.0) -> Any:
    """The beat at sample ``beat`` over the record's median beat, and the ``seconds`` around it with RR intervals.

    ``signal`` is one lead at ``fs``; ``beats`` every detected R peak (samples), ``beat`` among them.
    """
    import matplotlib.pyplot as plt

    from cardiolens.tasks.tasks_aami import WINDOW_SECONDS, beat_windows, median_beat

    x = np.asarray(signal, dtype=np.float64)
    beats = np.asarray(beats, dtype=np.int64)
    half = int(round(WINDOW_SECONDS * fs)) // 2
    windows = beat_windows(x[None], beats, 2 * half)  # the windows the shape features compare
    typical = median_beat(windows)[0]
    mine = windows[int(np.flatnonzero(beats == beat)[0]), 0]
    t = (np.arange(2 * half) - half) / fs
    shown = (t >= -0.25) & (t <= 0.45)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 3.2), width_ratios=(1, 2.2))
    ax.plot(t[shown], typical[shown], color="grey", lw=2, label="record's median beat")
    ax.plot(t[shown], mine[shown], color="#c0392b", lw=1.4, label="this beat")
    ax.axvline(0, color="k", lw=0.5, ls=":")
    ax.set_xlabel("s from the R peak")
    ax.legend(fontsize=8)
    lo, hi = max(0, beat - int(seconds / 2 * fs)), min(len(x), beat + int(seconds / 2 * fs))
    ax2.plot(np.arange(lo, hi) / fs, x[lo:hi], color="k", lw=0.8)
    near = beats[(beats >= lo) & (beats < hi)]
    ax2.plot(near / fs, x[near], "o", color="grey", ms=4)
    ax2.plot([beat / fs], [x[beat]], "o", color="#c0392b", ms=7)
    top = x[lo:hi].max()
    for a, b in zip(near[:-1], near[1:], strict=True):
        ax2.annotate(f"{1000 * (b - a) / fs:.0f}", ((a + b) / 2 / fs, top), ha="center", va="bottom", fontsize=7)
    ax2.set_xlabel("s")
    ax2.set_title("RR intervals (ms)", fontsize=9)
    fig.tight_layout()
    return fig


def _beat_row(
    model: BeatTreeModel, x: np.ndarray, beat_time: float | None, source: str
) -> tuple[np.ndarray, int, np.ndarray, str]:
    """The feature row of the beat to explain, its sample, every detected beat, and a note saying how it was chosen."""
    from cardiolens.signal.peaks import ecg_peaks
    from cardiolens.tasks.aami_features import record_beat_features

    fs = model.config.fs
    beats = np.asarray(ecg_peaks(x[0], fs), dtype=np.int64)
    if len(beats) < 3:
        raise RecordError(f"{len(beats)} beats found; explaining a beat needs at least 3", source)
    rows, kept = record_beat_features(x, fs, beats, fs)
    times = beats[kept] / fs
    if beat_time is not None:
        i = int(np.argmin(np.abs(times - beat_time)))
        how = f"the classified beat nearest {beat_time:g} s"
    else:
        calls = model.ensemble.predict_proba(rows).argmax(axis=1)
        normal = model.config.classes.index("N") if "N" in model.config.classes else -1
        unusual = np.flatnonzero(calls != normal)
        i = int(unusual[0]) if len(unusual) else 0
        how = "the first beat not called N" if len(unusual) else "the first classified beat (every beat is called N)"
    note = f"beat at {times[i]:.3f} s explained ({how}; {len(kept)} beats classified)"
    return rows[i], int(beats[kept[i]]), beats, note


__all__ = [
    "FeatureExplanation",
    "check_beat_time",
    "explain_tree_record",
    "deletion_curves",
    "explain_features",
    "feature_effects",
    "feature_groups",
    "group_effects",
    "plot_beat_context",
    "plot_feature_effects",
    "shuffled_leaves",
]
