"""Explain one window of a recording with every applicable method; PNG figures and an HTML report.

:func:`explain_record` is what ``cardiolens explain`` and the web app call. It returns an
:class:`ExplainReport` holding the raw results (arrays, tables), a JSON-able ``summary`` and the
figures as PNG bytes; with ``out`` it also writes the PNGs, ``summary.json`` and ``report.html``,
a single self-contained file (images embedded as base64, no scripts, no network).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cardiolens.atomic import output_folder
from cardiolens.errors import ModelInputError
from cardiolens.explain import plots
from cardiolens.explain.adapter import (
    ATTRIBUTION_METHODS,
    ExplainModel,
    Window,
    as_explainable,
    prepare_window,
)
from cardiolens.explain.attention import (
    attention_beat_stats,
    attention_maps,
    check_token,
    token_attention,
)
from cardiolens.explain.attribution import Attribution, attribute
from cardiolens.explain.embeddings import cycle_phase, hidden_states, homonym_similarity, project_states
from cardiolens.explain.faithfulness import faithfulness, randomization_check
from cardiolens.explain.physiology import (
    feature_masks,
    head_feature_shares,
    not_found_text,
    window_modality,
    window_peaks,
)

log = logging.getLogger(__name__)


@dataclass
class Section:
    """One part of the report: a heading, text, figures (name -> PNG bytes) and tables (lists of rows)."""

    title: str
    text: str = ""
    images: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class ExplainReport:
    """Everything :func:`explain_record` computed for one window.

    Attributes:
        model: the model's name.
        window: the window explained.
        methods: the methods run.
        prediction: class -> probability (the top classes).
        summary: JSON-able numbers per method.
        results: raw results per method (AttentionMaps, Attribution, Faithfulness, ...), for callers
            that draw their own figures (the web app).
        sections: the report's sections, figures as PNG bytes.
        files: paths written (when ``out`` was given).
    """

    model: str
    window: Window
    methods: list[str]
    prediction: dict[str, float]
    summary: dict[str, Any]
    results: dict[str, Any]
    sections: list[Section]
    files: list[Path] = field(default_factory=list)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def resolve_methods(model: nn.Module | ExplainModel, methods: str | list[str] | None) -> list[str]:
    """Canonical, applicable method names from a list or a comma-separated string (``None``/``"auto"``: all
    that apply). Raises listing the available ones when a method is unknown or does not apply."""
    adapter = as_explainable(model)
    if methods is None or methods == "auto" or methods == ["auto"]:
        return adapter.available_methods()
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    out = []
    for m in methods:
        if str(m).strip().lower() == "features":  # the tree models' method: not in METHODS, which are per sample
            raise ModelInputError(
                "features applies only to feature-tree models (rhythm-ecg-trees, aami-ecg-trees); "
                f"available for {adapter.name!r}: {', '.join(adapter.available_methods())}"
            )
        name = adapter.require(m)
        if name not in out:
            out.append(name)
    if not out:
        raise ModelInputError(
            f"no method given; available for {adapter.name!r}: {', '.join(adapter.available_methods())}"
        )
    return out


def _prediction(adapter: ExplainModel, window: Window, position: int | None, top: int = 5) -> dict[str, float]:
    with torch.no_grad(), adapter.evaluating():
        probs = adapter.probabilities(adapter.scorer(window, position)(window.tensor()))[0]
    order = torch.argsort(probs, descending=True)[:top]
    return {adapter.class_name(int(i)): float(probs[i]) for i in order}


def explain_record(
    model: nn.Module | ExplainModel | str,
    signal: Any,
    methods: str | list[str] | None = None,
    out: str | Path | None = None,
    *,
    fs: float | None = None,
    lead: str | int | None = None,
    start: float = 0.0,
    target: int | str | None = None,
    token: int = -1,
    layer: int | None = None,
    head: int | None = None,
    position: int | None = None,
    n_steps: int = 32,
    curve_steps: int = 20,
    n_random: int = 3,
    projection: str = "pca",
    seed: int = 0,
) -> ExplainReport:
    """Explain one window of a recording with the chosen methods.

    Attention, embedding and physiology figures use the first lead (a task model over a GPT runs
    each lead as its own token sequence); attributions cover every lead.

    Args:
        model: a model, or a name/path for :func:`cardiolens.models.load_model`.
        signal: a Record, a file, or an array (with ``fs``).
        methods: methods to run (``attention``, ``embeddings``, ``physiology``, ``gradcam``, ``hirescam``,
            ``ig``, ``occlusion``, ``faithfulness``, ``randomization``), a list or comma-separated; ``None``
            runs every method that applies to the model.
        out: folder for PNGs, ``summary.json`` and ``report.html`` (nothing is written when None).
        fs: sampling rate of an array or of a file without one.
        lead: lead to explain for a single-lead model.
        start: first second of the window; for a beat model (``aami-ecg-trees``), the time of the
            beat to explain (0: the first beat it does not call N).
        target: class to explain (index or name; default: the predicted class).
        token: the query token whose attention is drawn (-1: the last, which a last-token classifier reads).
        layer, head: draw that layer's (and head's) attention of ``token`` instead of the rollout.
        position: for per-sample outputs, the sample explained (default: the mean over samples).
        n_steps: integrated-gradients steps.
        curve_steps: points of each deletion/insertion curve.
        n_random: random orders averaged for the faithfulness baseline.
        projection: ``pca``, ``tsne`` or ``umap`` for the hidden-state map.
        seed: seed of random orders and weights.

    Raises:
        ModelInputError: a method that does not apply, a token/layer/head that does not exist
            (each listing what is available), or input the model cannot read.
    """
    from cardiolens.tasks.model_mean import ModelMean, find_model_mean, load_model_mean
    from cardiolens.tasks.tree_model import FeatureTreeModel, find_tree_model, load_tree_model

    if out is not None:
        output_folder(out, create=False)  # a file named as the output folder is refused before any work
    if isinstance(model, str | Path) and (mean_folder := find_model_mean(model)) is not None:
        model = load_model_mean(mean_folder)
    if isinstance(model, ModelMean):
        # one report cannot mix maps of different kinds (samples, record features): explain_mean writes one per member
        raise ModelInputError(
            f"{model.config.name} is the mean of {', '.join(model.config.members)}: explain each of them, "
            "or use explain_mean (cardiolens explain does)"
        )
    if isinstance(model, str | Path):
        from cardiolens.models import load_model

        folder = find_tree_model(model)
        model = load_tree_model(folder) if folder is not None else load_model(model)
    if isinstance(model, FeatureTreeModel):
        from cardiolens.explain.features import explain_tree_record

        _refuse_attention_options(model.config.name, token, layer, head)
        if position is not None:
            raise ModelInputError(
                f"position selects a sample of a per-sample output, and {model.config.name!r} has none: "
                "it is boosted trees on record features"
            )
        return explain_tree_record(
            model, signal, methods, out, fs=fs, lead=lead, target=target, beat_time=start or None, seed=seed
        )
    adapter = as_explainable(model)
    chosen = resolve_methods(adapter, methods)
    window = prepare_window(adapter, signal, fs, lead=lead, start=start)
    # argument checks before any expensive work
    if position is not None and not adapter.per_sample:
        raise ModelInputError(
            f"position selects a sample of a per-sample output, and {adapter.name!r} has none: "
            "it gives one output per window"
        )
    if adapter.has_attention:
        token = _check_attention_options(adapter, window, token, layer, head)
    else:
        _refuse_attention_options(adapter.name, token, layer, head)
    target_index, _ = adapter.target(window, target, position)
    modality = window_modality(window, adapter.modality)
    peaks = window_peaks(window, 0, modality)
    summary: dict[str, Any] = {}
    results: dict[str, Any] = {}
    sections: list[Section] = []

    def add(name: str, part: tuple[Any, Any, Section]) -> None:
        summary[name], results[name], section = part
        sections.append(section)

    if "attention" in chosen:
        add("attention", _attention_part(adapter, window, peaks, token, layer, head))
    if "embeddings" in chosen:
        add("embeddings", _embeddings_part(adapter, window, peaks, projection, seed))
        if "homonyms" in results["embeddings"]:
            results["homonyms"] = results["embeddings"].pop("homonyms")
    if "physiology" in chosen:
        maps = results["attention"]["maps"] if "attention" in results else attention_maps(adapter, window)
        add("physiology", _physiology_part(window, modality, maps))

    wanted = [m for m in ATTRIBUTION_METHODS if m in chosen]
    if ("faithfulness" in chosen or "randomization" in chosen) and not wanted:
        wanted = [m for m in ATTRIBUTION_METHODS if m in adapter.available_methods()]
    attributions = [
        attribute(
            adapter, window, m, target=target_index, position=position, **({"n_steps": n_steps} if m == "ig" else {})
        )
        for m in wanted
    ]
    if attributions:
        add("attributions", _attributions_part(adapter, window, attributions, chosen))
    if "faithfulness" in chosen:
        add("faithfulness", _faithfulness_part(adapter, attributions, curve_steps, n_random, seed))
    if "randomization" in chosen:
        add("randomization", _randomization_part(adapter, window, attributions, seed))

    prediction = _prediction(adapter, window, position)
    report = ExplainReport(
        model=adapter.name,
        window=window,
        methods=chosen,
        prediction=prediction,
        summary={
            "model": adapter.name,
            "kind": adapter.kind,
            "source": window.source,
            "fs": window.fs,
            "resampled_from": window.resampled_from,
            "leads": window.leads,
            "start_s": window.start / window.fs,
            "samples": window.n_samples,
            "target": adapter.class_name(target_index),
            "prediction": prediction,
            **_decision_rule(adapter),
            "methods": chosen,
            **summary,
        },
        results=results,
        sections=sections,
    )
    if out is not None:
        report.files = write_report(report, out)
    return report


def _check_attention_options(
    adapter: ExplainModel, window: Window, token: int, layer: int | None, head: int | None
) -> int:
    """Check token, layer and head against an attention model (errors list what exists); the token, non-negative."""
    token = check_token(token, int(adapter.tokens(window).size(-1)), adapter.name)
    g = adapter.gpt.config
    if layer is not None and not -g.n_layer <= layer < g.n_layer:
        raise ModelInputError(
            f"{adapter.name!r} has no layer {layer}: it has {g.n_layer} layers (0..{g.n_layer - 1}, "
            f"or -{g.n_layer}..-1 from the last)"
        )
    if head is not None and not -g.n_head <= head < g.n_head:
        raise ModelInputError(
            f"{adapter.name!r} has no head {head}: it has {g.n_head} heads (0..{g.n_head - 1}, or -{g.n_head}..-1)"
        )
    if head is not None and layer is None:
        raise ModelInputError("head needs a layer (--layer) too")
    return token


# Each report part returns (its summary.json entry, its Python results, its HTML section).


def _attention_part(
    adapter: ExplainModel, window: Window, peaks: np.ndarray, token: int, layer: int | None, head: int | None
) -> tuple[dict, dict, Section]:
    maps = attention_maps(adapter, window)
    view = "rollout" if layer is None else int(layer)
    profile = token_attention(maps, token, layer=view, head=head)
    which = (
        "rollout"
        if layer is None
        else f"layer {maps.check(layer=layer)[0]}"
        + (f" head {maps.check(head=head)[1]}" if head is not None else " (mean of heads)")
    )
    stats = attention_beat_stats(profile, peaks, window.fs, context=token + 1)
    sec = Section(
        "Attention",
        f"Per layer and head attention of {maps.n_layers} layers x {maps.n_heads} heads over {maps.n_tokens} "
        f"tokens; token {token}'s attention ({which}) drawn on the signal. {stats['peak_share']:.0%} of it "
        f"falls within 60 ms of an R/pulse peak, against {stats['chance']:.0%} for uniform attention. "
        "Attention shows what the model reads, not what decides its output: on HeartGPT's AF model, "
        "deleting the samples plain rollout ranks first lowered the AF probability no faster than "
        "random order (docs/BENCHMARKS.md, interpretability). For the decision, read gradient-weighted "
        "rollout, occlusion or integrated gradients, and check them with the faithfulness method.",
    )
    sec.images["attention_token.png"] = _png(
        plots.plot_token_attention(
            window, profile, token, f"{adapter.name}: attention of token {token} ({which})", peaks
        )
    )
    sec.images["attention_heads.png"] = _png(plots.plot_attention_heads(maps))
    sec.images["attention_heads_token.png"] = _png(plots.plot_attention_heads(maps, token=token))
    sec.images["attention_aggregate.png"] = _png(plots.plot_attention_aggregate(maps))
    summary = {"token": token, "view": which, "beats": int(len(peaks)), **stats}
    return summary, {"maps": maps, "token": token, "profile": profile, "view": which}, sec


def _embeddings_part(
    adapter: ExplainModel, window: Window, peaks: np.ndarray, projection: str, seed: int
) -> tuple[dict, dict, Section]:
    states = hidden_states(adapter, window)  # (L + 1, T, C)
    phase = cycle_phase(states.shape[1], peaks)
    tokens = adapter.tokens(window)[0].numpy()
    known = np.isfinite(phase)
    info: dict[str, Any] = {"beats": int(len(peaks)), "tokens_with_phase": int(known.sum())}
    results: dict[str, Any] = {"states": states, "phase": phase}
    sec = Section("Token embeddings in context")
    if known.sum() >= 3:
        for idx in (0, states.shape[0] - 1):
            name = "embedding" if idx == 0 else f"block {idx - 1} (last)"
            xy = project_states(states[idx][known], projection, seed)
            sec.images[f"embedding_{projection}_{idx}.png"] = _png(
                plots.plot_embedding_projection(xy, phase[known], f"{adapter.name}: {name}, {projection.upper()}")
            )
        try:
            sim = homonym_similarity([states], [phase], [tokens], seed=seed)
            info["homonyms"] = sim.as_dict()
            results["homonyms"] = sim
            sec.images["homonyms.png"] = _png(plots.plot_homonyms({adapter.name: sim}))
        except ModelInputError as exc:
            info["homonyms"] = f"not computed: {exc}"
    sec.text = (
        f"Hidden states of the {states.shape[1]} tokens, coloured by their phase in the cardiac cycle "
        f"({info['beats']} beats detected). The per-layer phase probe needs many records: "
        "benchmarks/explain_faithfulness.py runs it."
    )
    return info, results, sec


def _physiology_part(window: Window, modality: str, maps: Any) -> tuple[dict, Any, Section]:
    table = head_feature_shares(maps, feature_masks(window, 0, modality))
    sec = Section(
        "Heads and physiology",
        "Share of each head's attention on "
        + ", ".join(table.features)
        + " against the share uniform attention would give (enrichment = share / chance), over the "
        "queries of the last three quarters of the window."
        + "".join(f" {not_found_text(f)}." for f in table.features if not table.found(f)),
    )
    sec.images["heads_physiology.png"] = _png(plots.plot_head_features(table))
    sec.tables["top heads"] = [
        {"feature": f, **r} for f in table.features for r in table.top_heads(f, k=3, min_enrichment=0.0)
    ]
    return table.summary(), table, sec


def _attributions_part(
    adapter: ExplainModel, window: Window, attributions: list[Attribution], chosen: list[str]
) -> tuple[dict, dict, Section]:
    summary = {a.method: {"seconds": a.seconds, "per_lead": a.per_lead, **_plain(a.info)} for a in attributions}
    shown = [a for a in attributions if a.method in chosen] or attributions
    sec = Section(
        "Attributions",
        f"Which samples drove p({attributions[0].target_name}) = {attributions[0].probability:.3f}. Red: "
        "evidence for the class, blue: against (integrated gradients, occlusion); Grad-CAM, HiResCAM and "
        "attention are non-negative.",
    )
    sec.images["attributions.png"] = _png(plots.plot_attribution(shown, f"{adapter.name} on {window.source}"))
    return summary, {a.method: a for a in attributions}, sec


def _faithfulness_part(
    adapter: ExplainModel, attributions: list[Attribution], curve_steps: int, n_random: int, seed: int
) -> tuple[dict, Any, Section]:
    faith = faithfulness(adapter, attributions, steps=curve_steps, n_random=n_random, seed=seed)
    summary = faith.summary()
    sec = Section(
        "Faithfulness",
        "Deletion: the most-attributed samples are set to the lead's median first (a faithful explanation "
        "makes the probability fall fast: low area). Insertion: they are put back first into a flat "
        "window (high area). Random order is the reference; one window is anecdotal, the benchmark "
        "reports intervals over records.",
    )
    sec.images["faithfulness.png"] = _png(plots.plot_faithfulness(faith))
    sec.tables["areas"] = [
        {"method": plots.method_label(m), **{k: round(v, 4) for k, v in row.items()}}
        for m, row in summary.items()
        if m != "target"
    ]
    return summary, faith, sec


def _randomization_part(
    adapter: ExplainModel, window: Window, attributions: list[Attribution], seed: int
) -> tuple[dict, dict, Section]:
    checks = {a.method: randomization_check(adapter, window, a.method, reference=a, seed=seed) for a in attributions}
    sec = Section(
        "Model-randomisation check",
        "Spearman correlation between each explanation and the same explanation of the model with "
        "re-initialised weights (Adebayo et al. 2018). Near 0: the explanation depends on what the model "
        "learned; near 1: it mostly reflects the input.",
    )
    sec.tables["correlation"] = [
        {"method": plots.method_label(m), "spearman |values|": c.spearman_abs[0], "spearman": c.spearman[0]}
        for m, c in checks.items()
    ]
    return {m: c.as_dict() for m, c in checks.items()}, checks, sec


def _refuse_attention_options(name: str, token: int, layer: int | None, head: int | None) -> None:
    """Refuse token/layer/head (which select attention) for a model with no attention, naming those given."""
    given = [
        f"{option} {value}"
        for option, value, default in (("token", token, -1), ("layer", layer, None), ("head", head, None))
        if value != default
    ]
    if given:
        raise ModelInputError(f"{', '.join(given)}: token/layer/head select attention, and {name!r} has none")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f6f6f6}td:first-child,th:first-child
{text-align:left}.meta{color:#555;font-size:.9em}
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def render_html(report: ExplainReport) -> str:
    """The report as one self-contained HTML page (inline CSS, base64 PNGs, no scripts, no links out)."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>cardiolens explain: {html.escape(report.model)}</title><style>{_CSS}</style></head><body>\n"
        f"{_report_body(report)}\n</body></html>"
    )


def _decision_rule(adapter: ExplainModel) -> dict[str, str]:
    """The rule that turned a binary model's probability into its predicted class, where it is not
    the arg-max (a threshold chosen on validation data): ``{"decision_rule": ...}`` or nothing."""
    threshold = adapter.decision_threshold
    if threshold is None:
        return {}
    positive = adapter.class_names[1]
    rule = f"predicted {positive} when p({positive}) >= {threshold:g}, the threshold chosen on validation data"
    return {"decision_rule": rule}


def _where_predicted(summary: dict[str, Any]) -> str:
    """For a window member of a mean: where its prediction was made, and its whole-record one beside it."""
    m = summary.get("in_mean")
    if not m or m["explained"] == WHOLE_RECORD:
        return ""
    whole = ", ".join(f"{k} {v:.3f}" for k, v in m["prediction_whole_record"].items())
    return f" on {m['explained']} (over the whole record, as {m['mean']} averages it: {html.escape(whole)})"


def _report_body(report: ExplainReport) -> str:
    """The report's heading, metadata and sections, as HTML for inside a page's body."""
    s = report.summary
    pred = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in report.prediction.items())
    parts = [
        f"<h1>{html.escape(report.model)} on {html.escape(str(s['source']))}</h1>",
        "<p class='meta'>",
        f"window: {s['samples']} samples at {s['fs']:g} Hz from {s['start_s']:.2f} s, lead(s) "
        f"{html.escape(', '.join(s['leads']))}"
        + (f" (resampled from {s['resampled_from']:g} Hz)" if s.get("resampled_from") else "")
        + f"<br>prediction{_where_predicted(s)}: {pred}<br>explained class: {html.escape(str(s['target']))}"
        + (f" ({html.escape(s['decision_rule'])})" if s.get("decision_rule") else "")
        + "<br>"
        f"methods: {html.escape(', '.join(report.methods))}<br>"
        f"written {_dt.datetime.now(_dt.UTC).isoformat(timespec='seconds')} by cardiolens</p>",
    ]
    for sec in report.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2><p>{html.escape(sec.text)}</p>")
        for name, png in sec.images.items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        for name, rows in sec.tables.items():
            if not rows:
                continue
            cols = list(rows[0])
            parts.append(f"<table><caption>{html.escape(name)}</caption><tr>")
            parts.append("".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in cols) + "</tr>")
            parts.append("</table>")
    return "\n".join(parts)


def explain_mean(
    model: Any,
    signal: Any,
    out: str | Path | None = None,
    *,
    fs: float | None = None,
    lead: str | int | None = None,
    start: float = 0.0,
    target: int | str | None = None,
    seed: int = 0,
) -> list[ExplainReport]:
    """Explain a mean of models (``rhythm-ecg-mean``) through its members: one report per member.

    Every member explains the same class, the one the mean predicts (or ``target``), with every
    method that applies to it, so each report shows that member's evidence for the mean's answer.
    With ``out``, member ``m`` writes into ``out/m/`` and ``out/index.html`` links the reports under
    the mean's prediction.

    Raises:
        ModelInputError: ``model`` is not a mean of models, or an unknown target class.
    """
    from cardiolens.tasks.model_mean import ModelMean, find_model_mean, load_model_mean
    from cardiolens.tasks.predict import predict_record

    if out is not None:
        output_folder(out, create=False)
    if isinstance(model, str | Path):
        folder = find_model_mean(model)
        if folder is None:
            raise ModelInputError(f"{model} is not a mean of models; explain it with explain_record")
        model = load_model_mean(folder)
    if not isinstance(model, ModelMean):
        raise ModelInputError(f"{type(model).__name__} is not a mean of models; explain it with explain_record")
    from cardiolens.signal.record import Record

    if not isinstance(signal, Record):
        from cardiolens.io import load_record

        signal = load_record(signal, fs=fs)
    single = lead if isinstance(lead, str) else None
    prediction = predict_record(model, signal, lead=single)
    classes = model.config.classes
    if target is None:
        target = prediction.labels[0]
    elif isinstance(target, int) or str(target).lstrip("-").isdigit():
        target = classes[int(target)]
    if target not in classes:
        raise ModelInputError(f"unknown class {target!r}; {model.config.name} has {', '.join(classes)}")
    from cardiolens.tasks.tree_model import FeatureTreeModel

    mean_name = model.config.name
    reports = []
    for member in model.members:
        # a tree member reads the whole record, as it does in the mean: start selects the windows of the others
        report = explain_record(
            member,
            signal,
            None,
            None,
            lead=lead,
            start=0.0 if isinstance(member, FeatureTreeModel) else start,
            target=target,
            seed=seed,
        )
        whole = prediction.extra["members"][report.model]
        span = _explained_span(report)
        report.summary["in_mean"] = {
            "mean": mean_name,
            "members": list(model.config.members),
            "mean_prediction": dict(prediction.probabilities),
            "explained": span,
            "prediction_explained": dict(report.prediction),
            "prediction_whole_record": dict(whole),
        }
        report.sections.insert(
            0,
            Section(
                f"Member of {mean_name}",
                f"{mean_name} averages the whole-record probabilities of {', '.join(model.config.members)}; "
                f"{report.model}'s, over the whole record, are beside those of what this report explains: {span}."
                + (
                    ""
                    if span == WHOLE_RECORD
                    else " A window model's whole-record probabilities are the mean over the record's windows, "
                    "so they can differ from the window's, and even name another class."
                ),
                tables={
                    "probabilities": [
                        {
                            "class": c,
                            f"{report.model}, {span}": report.prediction.get(c, float("nan")),
                            f"{report.model}, whole record": whole[c],
                            mean_name: prediction.probabilities[c],
                        }
                        for c in classes
                    ]
                },
            ),
        )
        if out is not None:
            report.files = write_report(report, Path(out) / member.config.name)
        reports.append(report)
    if out is not None:
        output_folder(out)
        (Path(out) / "index.html").write_text(render_mean_html(reports), encoding="utf-8")
    return reports


WHOLE_RECORD = "the whole record"


def _explained_span(report: ExplainReport) -> str:
    """What a report explains, in words: the whole record (a tree model) or its window in seconds."""
    s = report.summary
    if "features" in s:  # a feature-tree model reads the whole record
        return WHOLE_RECORD
    first = float(s["start_s"])
    return f"the window {first:.2f}-{first + s['samples'] / s['fs']:.2f} s"


def render_mean_html(reports: list[ExplainReport], embed: bool = False) -> str:
    """The page of a mean of models' explanation (:func:`explain_mean`'s reports): the mean's prediction,
    each member's probabilities over the whole record and over what its report explains, and either links
    to ``MEMBER/report.html`` (``index.html``) or, with ``embed``, every member's report on the same page."""
    info = reports[0].summary["in_mean"]
    name, probs = info["mean"], info["mean_prediction"]
    target = reports[0].summary["target"]
    head = "<th>class</th><th>mean</th>"
    for r in reports:
        m = r.summary["in_mean"]
        head += f"<th>{html.escape(r.model)}<br>whole record</th>"
        if m["explained"] != WHOLE_RECORD:
            head += f"<th>{html.escape(r.model)}<br>{html.escape(m['explained'])}</th>"
    rows = ""
    for c, p in probs.items():
        rows += f"<tr><th>{html.escape(c)}</th><td>{p:.3f}</td>"
        for r in reports:
            m = r.summary["in_mean"]
            rows += f"<td>{m['prediction_whole_record'][c]:.3f}</td>"
            if m["explained"] != WHOLE_RECORD:
                v = m["prediction_explained"].get(c, float("nan"))
                rows += f"<td>{v:.3f}</td>" if np.isfinite(v) else "<td>n/a</td>"
        rows += "</tr>"

    def explained(r: ExplainReport) -> str:
        return f"explains {html.escape(r.summary['in_mean']['explained'])} ({html.escape(', '.join(r.methods))})"

    if embed:
        members = "".join(f"<hr>{_report_body(r)}" for r in reports)
        items = "".join(f"<li>{html.escape(r.model)}: {explained(r)}</li>" for r in reports)
    else:
        members = ""
        items = "".join(
            f'<li><a href="{html.escape(r.model)}/report.html">{html.escape(r.model)}</a>: {explained(r)}</li>'
            for r in reports
        )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(name)} on {html.escape(str(reports[0].summary['source']))}"
        f"</h1><p>The unweighted mean of the whole-record probabilities of {html.escape(', '.join(info['members']))}. "
        f"Each member's report explains the class <b>{html.escape(str(target))}</b>; a window model explains one "
        "window, whose probabilities are shown beside its whole-record ones (the mean over its windows).</p>"
        f"<table><tr>{head}</tr>{rows}</table><ul>{items}</ul>{members}</body></html>\n"
    )


def write_report(report: ExplainReport, out: str | Path) -> list[Path]:
    """Write every figure as PNG, ``summary.json`` and the self-contained ``report.html`` into ``out``.

    ``summary.json`` lists the figures (``"figures"``); the figures an earlier report in ``out`` listed
    and this one does not write are removed, so the folder never mixes two reports. Other files are
    left alone."""
    out = output_folder(out)
    figures = [name for sec in report.sections for name in sec.images]
    for stale in sorted(set(_figures_listed(out / "summary.json")) - set(figures)):
        (out / stale).unlink(missing_ok=True)
    files = []
    for sec in report.sections:
        for name, png in sec.images.items():
            path = out / name
            path.write_bytes(png)
            files.append(path)
    path = out / "summary.json"
    path.write_text(json.dumps({**_plain(report.summary), "figures": figures}, indent=2, default=str) + "\n")
    files.append(path)
    path = out / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    files.append(path)
    return files


def _figures_listed(summary: Path) -> list[str]:
    """The figure names an earlier report's ``summary.json`` lists (plain names only, never paths)."""
    try:
        listed = json.loads(summary.read_text()).get("figures", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in listed if isinstance(n, str) and n == Path(n).name and n.endswith(".png")]


def summary_lines(report: ExplainReport) -> list[str]:
    """A few lines of text summarising a report (what ``cardiolens explain`` prints)."""
    s = report.summary
    if s.get("beat"):  # a beat model explains one beat of the whole record: name it, not the record's start
        beat = s["beat"]
        where = (
            f"the beat at {beat['time_s']:.3f} s, classified {beat['class']}, of {s['samples']} samples at "
            f"{s['fs']:g} Hz, lead(s) {', '.join(s['leads'])}"
        )
    else:
        where = f"{s['samples']} samples at {s['fs']:g} Hz from {s['start_s']:.2f} s, lead(s) {', '.join(s['leads'])}"
    if s.get("resampled_from"):
        where += f" (resampled from {s['resampled_from']:g} Hz)"
    lines = [
        f"{report.model} on {s['source']}: {where}",
        f"prediction{_where_predicted(s)}: " + ", ".join(f"{k} {v:.3f}" for k, v in report.prediction.items()),
        f"explained class: {s['target']}" + (f" ({s['decision_rule']})" if s.get("decision_rule") else ""),
    ]
    if "features" in s:
        f = s["features"]
        lines.append(f"p({s['target']}) = {f['probability']:.3f}; features with the largest effect:")
        lines += [
            f"  {r['feature']} = {r['value']:.3g} (reference {r['reference']:.3g}): {r['effect']:+.3f}"
            for r in f["top"][:8]
        ]
        lines.append(
            f"deletion area {f['deletion_auc']:.3f} vs random {f['random_deletion_auc']:.3f}; "
            f"randomisation Spearman {f['randomisation_spearman']:.2f} (|effects|), "
            f"{f['randomisation_spearman_signed']:.2f} (signed)"
        )
    if "attention" in s:
        a = s["attention"]
        share = f"{a['peak_share']:.0%} on beats vs {a['chance']:.0%} by chance"
        lines.append(f"attention of token {a['token']} ({a['view']}): {share}")
    if "physiology" in s:
        for feature, info in s["physiology"].items():
            chance = info.get("chance")
            if not info.get("windows") or chance is None or not np.isfinite(chance):
                lines.append(not_found_text(feature))
                continue
            heads = ", ".join(f"{h['head']} x{h['enrichment']:.1f}" for h in info["top_heads"]) or "none above 1.5x"
            lines.append(f"heads on {feature}: {heads}")
    if "faithfulness" in s:
        rnd = s["faithfulness"]["random"]
        for method, row in s["faithfulness"].items():
            if method == "target" or method.startswith("random"):
                continue
            lines.append(
                f"{method}: deletion AUC {row['deletion_auc']:.3f} (random {rnd['deletion_auc']:.3f}), "
                f"insertion AUC {row['insertion_auc']:.3f} (random {rnd['insertion_auc']:.3f})"
            )
    if "randomization" in s:
        for method, check in s["randomization"].items():
            lines.append(f"{method}: Spearman |values| vs randomised weights {check['stages'][0]['spearman_abs']:.2f}")
    if report.files:
        lines.append(f"wrote {len(report.files)} files to {report.files[-1].parent} (open report.html)")
    return lines


__all__ = [
    "ExplainReport",
    "Section",
    "explain_record",
    "render_html",
    "render_mean_html",
    "resolve_methods",
    "summary_lines",
    "write_report",
]
