"""A model that averages the class probabilities of other task models (the shipped ``rhythm-ecg-mean``).

The best CinC 2017 result of the benchmarks is not one model but the unweighted mean of two: the
CNN ``rhythm-ecg`` and the feature trees ``rhythm-ecg-trees``, which make different errors. A
:class:`ModelMean` folder holds only ``mean.json`` (which models, for which task and classes), a card
and the test split; the members stay separate models, each reading the record as it needs (the CNN
100 Hz windows, the trees the whole record at 300 Hz). Nothing is fitted: the weights are equal, so
no test record informed the combination.

``cardiolens predict`` and ``evaluate`` accept a mean wherever they accept a model; ``explain`` writes
one report per member, each explaining the class the mean predicts
(:func:`cardiolens.explain.explain_mean`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cardiolens.errors import CardiolensError, CheckpointError

MEAN_CONFIG = "mean.json"
MEAN_FORMAT = "cardiolens-model-mean"
# averaging probabilities is only meaningful where each model gives one distribution over the classes
_AVERAGED_KINDS = ("multiclass",)


@dataclass
class ModelMeanConfig:
    """What the mean predicts and from which models.

    Attributes:
        members: shipped model names, or folders relative to the mean's own folder.
    """

    name: str
    task: str
    classes: list[str]
    members: list[str]
    kind: str = "multiclass"
    thresholds: list[float] | None = field(default=None)


class ModelMean:
    """The unweighted mean of the class probabilities of two or more task models of one task."""

    def __init__(self, config: ModelMeanConfig, members: list[Any]):
        if config.kind not in _AVERAGED_KINDS:
            raise CheckpointError(f"{config.name}: averages {', '.join(_AVERAGED_KINDS)} models, not {config.kind!r}")
        if len(members) < 2:
            raise CheckpointError(f"{config.name}: a mean needs at least two models, got {len(members)}")
        for reference, member in zip(config.members, members, strict=True):
            if isinstance(member, ModelMean):
                raise CheckpointError(f"{config.name}: member {reference!r} is itself a mean; list its members instead")
            got = member.config
            if got.task != config.task or list(got.classes) != list(config.classes) or got.kind != config.kind:
                raise CheckpointError(
                    f"{config.name}: member {reference!r} predicts {got.kind} {got.task} ({', '.join(got.classes)}), "
                    f"not {config.kind} {config.task} ({', '.join(config.classes)})"
                )
        self.config = config
        self.members = members

    def save(self, path: str | Path, card: str | None = None, extra_files: dict[str, str] | None = None) -> Path:
        """Write ``mean.json`` (and a card, extra files) into ``path``, each file atomically."""
        path = Path(path)
        if path.exists() and any(path.iterdir()) and not is_model_mean(path):
            raise CheckpointError("exists and is not a model-mean folder; refusing to write into it", path)
        path.mkdir(parents=True, exist_ok=True)
        files = {MEAN_CONFIG: json.dumps({"format": MEAN_FORMAT, "config": asdict(self.config)}, indent=2) + "\n"}
        if card is not None:
            files["MODEL_CARD.md"] = card
        files.update(extra_files or {})
        for name, text in files.items():
            with tempfile.NamedTemporaryFile("w", dir=path, prefix=f".{name}.", delete=False) as tmp:
                tmp.write(text)
            Path(tmp.name).chmod(0o644)
            Path(tmp.name).replace(path / name)
        return path


def is_model_mean(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :meth:`ModelMean.save`."""
    return (Path(path) / MEAN_CONFIG).is_file()


def list_model_means() -> list[str]:
    """Names of the model means shipped in the weights folder."""
    from cardiolens.models.pretrained import shipped_names

    return shipped_names(is_model_mean)


def find_model_mean(name_or_path: str | Path) -> Path | None:
    """The folder of a model mean named like a shipped model (``rhythm-ecg-mean``) or given as a path; else None."""
    from cardiolens.models.pretrained import find_shipped_or_path

    return find_shipped_or_path(name_or_path, is_model_mean)


def load_model_mean(path: str | Path, load: Callable[[str | Path], Any] | None = None) -> ModelMean:
    """A :class:`ModelMean` from its folder, with every member loaded.

    Args:
        load: loads one member from its shipped name or folder (default:
            :func:`cardiolens.tasks.predict.load_predictor`); the web app passes its model pool, so a
            member it already holds is not loaded twice.

    Raises:
        CheckpointError: not such a folder, a member that cannot be loaded, or members that do not
            predict the mean's task and classes.
    """
    from cardiolens.tasks.predict import load_predictor

    load = load or load_predictor
    path = Path(path)
    if not is_model_mean(path):
        raise CheckpointError(f"not a model-mean folder (no {MEAN_CONFIG})", path)
    try:
        meta = json.loads((path / MEAN_CONFIG).read_text())
        if meta.get("format") != MEAN_FORMAT:
            raise CheckpointError(f"{MEAN_CONFIG} names format {meta.get('format')!r}, not {MEAN_FORMAT!r}", path)
        config = ModelMeanConfig(**meta["config"])
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot read {MEAN_CONFIG} ({exc})", path) from None
    if not isinstance(config.members, list) or not all(isinstance(m, str) for m in config.members):
        raise CheckpointError(f"{MEAN_CONFIG}: members must be a list of model names or folders", path)
    members = []
    for reference in config.members:
        local = path / reference
        # checked before loading: a mean that lists itself would otherwise load forever
        if find_model_mean(local if local.exists() else reference) is not None:
            raise CheckpointError(f"member {reference!r} is itself a mean; list its members instead", path)
        try:
            members.append(load(local if local.exists() else reference))
        except CardiolensError as exc:
            raise CheckpointError(f"member {reference!r} cannot be loaded: {exc}", path) from None
    return ModelMean(config, members)


__all__ = ["ModelMean", "ModelMeanConfig", "find_model_mean", "is_model_mean", "list_model_means", "load_model_mean"]
