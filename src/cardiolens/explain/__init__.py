"""Interpretability: attention, token embeddings in context, heads vs physiology, attributions,
faithfulness checks, figures and self-contained HTML reports.

Every analysis function returns arrays or small result objects; drawing is separate
(:mod:`cardiolens.explain.plots`), so the CLI, the web app and the benchmarks share the numbers.

Example:
    >>> from cardiolens.models import load_model
    >>> from cardiolens.explain import prepare_window, attention_maps, token_attention, integrated_gradients
    >>> model = load_model("ECGPT_AF_1k_iters.zip")  # doctest: +SKIP
    >>> window = prepare_window(model, "record.hea", lead="I")  # doctest: +SKIP
    >>> maps = attention_maps(model, window)  # doctest: +SKIP
    >>> last = token_attention(maps, token=-1, layer="rollout")  # doctest: +SKIP
    >>> ig = integrated_gradients(model, window)  # doctest: +SKIP
"""

from cardiolens.explain.adapter import (
    ATTRIBUTION_METHODS,
    METHODS,
    ExplainModel,
    Window,
    as_explainable,
    available_methods,
    canonical_method,
    prepare_window,
)
from cardiolens.explain.attention import (
    AttentionMaps,
    AttentionShift,
    attention_beat_stats,
    attention_maps,
    attention_rollout,
    attention_shift,
    beat_irregularity,
    chance_rollout,
    mean_attention,
    token_attention,
)
from cardiolens.explain.attribution import (
    Attribution,
    attention_attribution,
    attribute,
    attribution_methods,
    baseline_signal,
    grad_cam,
    gradient_rollout,
    hires_cam,
    integrated_gradients,
    occlusion,
)
from cardiolens.explain.embeddings import (
    HomonymSimilarity,
    PhaseProbe,
    cycle_phase,
    hidden_states,
    homonym_similarity,
    phase_probe,
    project_states,
)
from cardiolens.explain.faithfulness import (
    Curve,
    Faithfulness,
    RandomizationCheck,
    faithfulness,
    perturbation_curve,
    randomization_check,
    randomized_copy,
    rank_correlation,
    ranking,
)
from cardiolens.explain.physiology import (
    HeadFeatureTable,
    dicrotic_notches,
    ecg_wave_masks,
    feature_masks,
    head_feature_shares,
    ppg_feature_masks,
    window_peaks,
)
from cardiolens.explain.report import (
    ExplainReport,
    explain_mean,
    explain_record,
    render_html,
    render_mean_html,
    summary_lines,
    write_report,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "METHODS",
    "AttentionMaps",
    "AttentionShift",
    "Attribution",
    "Curve",
    "ExplainModel",
    "ExplainReport",
    "Faithfulness",
    "HeadFeatureTable",
    "HomonymSimilarity",
    "PhaseProbe",
    "RandomizationCheck",
    "Window",
    "as_explainable",
    "attention_attribution",
    "attention_beat_stats",
    "attention_maps",
    "attention_rollout",
    "chance_rollout",
    "attention_shift",
    "attribute",
    "attribution_methods",
    "available_methods",
    "baseline_signal",
    "beat_irregularity",
    "canonical_method",
    "cycle_phase",
    "dicrotic_notches",
    "ecg_wave_masks",
    "explain_mean",
    "explain_record",
    "faithfulness",
    "feature_masks",
    "grad_cam",
    "gradient_rollout",
    "hires_cam",
    "head_feature_shares",
    "hidden_states",
    "homonym_similarity",
    "integrated_gradients",
    "mean_attention",
    "occlusion",
    "perturbation_curve",
    "phase_probe",
    "ppg_feature_masks",
    "prepare_window",
    "project_states",
    "randomization_check",
    "randomized_copy",
    "rank_correlation",
    "ranking",
    "render_html",
    "render_mean_html",
    "summary_lines",
    "token_attention",
    "window_peaks",
    "write_report",
]
