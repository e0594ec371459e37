"""Models made of boosted trees on signal features (per record or per beat), saved without pickle.

A scikit-learn model is normally saved with pickle, which runs code when it is loaded, and ties the
file to the scikit-learn version that wrote it. The boosted trees of :mod:`cardiolens.tasks.trees`
are only arrays (each node's feature, threshold, children and value), so :class:`TreeEnsemble`
keeps exactly those arrays, writes them with safetensors like every other cardiolens weight, and
predicts with a few vectorised NumPy steps: the same probabilities as scikit-learn's
``predict_proba`` (tested to 1e-12), on any scikit-learn version, or none.

:class:`FeatureTreeModel` is such an ensemble plus what a prediction needs to state: the task, the
classes, the lead, the sampling rate the features are computed at, and the feature names. Two kinds:
:class:`RhythmTreeModel` classifies a whole record from :mod:`cardiolens.tasks.rhythm_features` (the
shipped ``rhythm-ecg-trees``), :class:`BeatTreeModel` each beat from :mod:`cardiolens.tasks.aami_features`
(the shipped ``aami-ecg-trees``). ``cardiolens predict``, ``evaluate`` and ``explain`` accept both
wherever they accept a fine-tuned network.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.errors import CheckpointError

TREES_CONFIG = "trees.json"
TREES_WEIGHTS = "trees.safetensors"
TREES_FORMAT = "cardiolens-feature-trees"
_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value", "roots", "baseline")


class TreeEnsemble:
    """Gradient-boosted trees as flat arrays: every tree's nodes in one table, children as global indices.

    Attributes:
        feature, threshold, missing_left, left, right, is_leaf, value: one entry per node. A sample
            goes left when its feature is <= the threshold, or when it is NaN and ``missing_left``.
        roots: (iterations, trees per iteration) index of each tree's root node; tree ``j`` of an
            iteration adds to the raw score of class ``j`` (one tree per iteration: binary).
        baseline: (trees per iteration,) the raw score before any tree.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        missing = [name for name in _ARRAYS if name not in arrays]
        if missing:
            raise CheckpointError(f"tree arrays lack {', '.join(missing)}")
        self.feature = np.asarray(arrays["feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays["threshold"], dtype=np.float64)
        self.missing_left = np.asarray(arrays["missing_left"], dtype=bool)
        self.left = np.asarray(arrays["left"], dtype=np.int64)
        self.right = np.asarray(arrays["right"], dtype=np.int64)
        self.is_leaf = np.asarray(arrays["is_leaf"], dtype=bool)
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.roots = np.asarray(arrays["roots"], dtype=np.int64)
        self.baseline = np.asarray(arrays["baseline"], dtype=np.float64).reshape(-1)
        nodes = len(self.feature)
        if self.roots.ndim != 2 or self.roots.shape[1] != len(self.baseline):
            raise CheckpointError(f"tree roots {self.roots.shape} do not match {len(self.baseline)} baseline scores")
        inner = ~self.is_leaf
        for name in ("threshold", "missing_left", "left", "right", "is_leaf", "value"):
            if len(getattr(self, name)) != nodes:
                raise CheckpointError(f"tree array {name!r} has {len(getattr(self, name))} entries, not {nodes}")
        links = np.r_[self.roots.ravel(), self.left[inner], self.right[inner]]
        if links.size and (links.min() < 0 or links.max() >= nodes):
            raise CheckpointError("tree arrays link to nodes that do not exist")

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """The trees of a fitted ``HistGradientBoostingClassifier`` (numeric features, no categorical ones).

        Reads scikit-learn's fitted predictors (private attributes, read once when a model is
        exported; the tests compare the result with ``predict_proba``).
        """
        predictors = getattr(model, "_predictors", None)
        if predictors is None or getattr(model, "_preprocessor", None) is not None:
            raise CheckpointError(
                f"{type(model).__name__}: only a fitted HistGradientBoostingClassifier on numeric features "
                "can be exported"
            )
        names = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")
        columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
        roots = np.zeros((len(predictors), len(predictors[0])), dtype=np.int64)
        offset = 0
        for i, trees in enumerate(predictors):
            for j, tree in enumerate(trees):
                nodes = tree.nodes
                if nodes["is_categorical"].any():
                    raise CheckpointError("trees with categorical splits cannot be exported")
                roots[i, j] = offset
                leaf = nodes["is_leaf"].astype(bool)
                columns["feature"].append(nodes["feature_idx"])
                columns["threshold"].append(nodes["num_threshold"])
                columns["missing_left"].append(nodes["missing_go_to_left"])
                # children as global indices; a leaf points at itself, so a finished sample stays put
                own = np.arange(len(nodes)) + offset
                columns["left"].append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
                columns["right"].append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
                columns["is_leaf"].append(nodes["is_leaf"])
                columns["value"].append(nodes["value"])
                offset += len(nodes)
        arrays = {name: np.concatenate(parts) for name, parts in columns.items()}
        arrays["roots"] = roots
        arrays["baseline"] = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
        return cls(arrays)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays, in the dtypes they are saved with."""
        return {
            "feature": self.feature.astype(np.int32),
            "threshold": self.threshold,
            "missing_left": self.missing_left.astype(np.uint8),
            "left": self.left.astype(np.int32),
            "right": self.right.astype(np.int32),
            "is_leaf": self.is_leaf.astype(np.uint8),
            "value": self.value,
            "roots": self.roots.astype(np.int32),
            "baseline": self.baseline,
        }

    def raw_scores(self, features: Any) -> np.ndarray:
        """(samples, trees per iteration) sums of the baseline and every tree's leaf value."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (samples, features), got shape {x.shape}")
        rows = np.arange(len(x))[:, None]
        if self.feature.size and x.shape[1] <= self.feature[~self.is_leaf].max(initial=-1):
            raise ValueError(f"the trees split on feature {self.feature.max()}, the rows have {x.shape[1]} features")
        node = np.broadcast_to(self.roots.ravel(), (len(x), self.roots.size)).copy()  # (samples, trees)
        for _ in range(len(self.feature)):  # a path visits each node at most once
            if self.is_leaf[node].all():
                break
            value = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])  # leaves point at themselves
        else:
            raise CheckpointError("the trees' links form a loop: a path never reaches a leaf")
        leaf_values = self.value[node].reshape(len(x), *self.roots.shape)  # (samples, iterations, per iteration)
        return self.baseline + leaf_values.sum(axis=1)

    def predict_proba(self, features: Any) -> np.ndarray:
        """Class probabilities (samples, classes): softmax of the raw scores, or sigmoid for one tree per iteration."""
        raw = self.raw_scores(features)
        if raw.shape[1] == 1:
            p = 1 / (1 + np.exp(-raw[:, 0]))
            return np.stack([1 - p, p], axis=1)
        raw = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)


@dataclass
class TreeModelConfig:
    """What a tree model reads and predicts, per record or per beat (what ``model_input`` checks a record against)."""

    name: str
    task: str
    classes: list[str]
    fs: float  # the features are computed at this rate
    leads: list[str]
    min_samples: int
    features: list[str]
    feature_set: str = "cardiolens.tasks.rhythm_features"
    kind: str = "multiclass"
    window: int | None = None  # the whole record is read at once
    thresholds: list[float] | None = None
    # each feature's median over the training items (None: undefined there); explanations put it
    # in place of an item's value to ask "what if this feature were typical?"
    reference: list[float | None] | None = None

    def reference_values(self) -> np.ndarray:
        """The reference as floats (NaN where undefined); raises when the model was saved without one."""
        if self.reference is None:
            raise CheckpointError(f"{self.name} was saved without reference feature values; re-export it")
        return np.array([np.nan if v is None else v for v in self.reference], dtype=np.float64)


class FeatureTreeModel:
    """Boosted trees over a named feature set, with what a prediction needs to state.

    Subclasses say which features they read (``FEATURE_SET``, a module with ``FEATURE_NAMES``) and
    how to compute them from a signal; the checks, saving and loading are shared.
    """

    FEATURE_SET = ""

    def __init__(self, config: TreeModelConfig, ensemble: TreeEnsemble):
        names = importlib.import_module(self.FEATURE_SET).FEATURE_NAMES
        if config.feature_set != self.FEATURE_SET or list(config.features) != list(names):
            raise CheckpointError(
                f"{config.name}: trained on {len(config.features)} features of {config.feature_set} that are not "
                f"this version's {len(names)} features of {self.FEATURE_SET}; "
                "re-export it with this version of cardiolens"
            )
        split_on = ensemble.feature[~ensemble.is_leaf]
        if split_on.size and (split_on.min() < 0 or split_on.max() >= len(config.features)):
            raise CheckpointError(f"{config.name}: the trees split on features outside 0..{len(config.features) - 1}")
        if ensemble.roots.shape[1] not in (1, len(config.classes)):
            raise CheckpointError(
                f"{config.name}: {ensemble.roots.shape[1]} trees per round for {len(config.classes)} classes"
            )
        self.config = config
        self.ensemble = ensemble

    def save(self, path: str | Path, card: str | None = None, extra_files: dict[str, str] | None = None) -> Path:
        """Write the model as a folder (``trees.json``, ``trees.safetensors``, optional card), atomically."""
        from safetensors.numpy import save_file

        path = Path(path)
        if path.exists() and not (path / TREES_CONFIG).is_file():
            raise CheckpointError("exists and is not a feature-tree model folder; refusing to replace it", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        tmp.chmod(0o755)
        try:
            save_file(self.ensemble.arrays(), str(tmp / TREES_WEIGHTS), metadata={"format": TREES_FORMAT})
            meta = {
                "format": TREES_FORMAT,
                "format_version": 1,
                "config": asdict(self.config),
                "weights_sha256": hashlib.sha256((tmp / TREES_WEIGHTS).read_bytes()).hexdigest(),
            }
            (tmp / TREES_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
            if card is not None:
                (tmp / "MODEL_CARD.md").write_text(card)
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
            if path.exists():
                shutil.rmtree(path)
            tmp.replace(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path


class RhythmTreeModel(FeatureTreeModel):
    """Boosted trees on :func:`~cardiolens.tasks.rhythm_features.record_features` of one ECG lead, per record."""

    FEATURE_SET = "cardiolens.tasks.rhythm_features"

    def predict_signals(self, signals: Any) -> np.ndarray:
        """(records, classes) probabilities of single-lead signals at ``config.fs``, each (samples,) or (1, samples)."""
        from cardiolens.tasks.rhythm_features import rhythm_feature_matrix

        return self.ensemble.predict_proba(rhythm_feature_matrix(list(signals), self.config.fs, progress=False))


class BeatTreeModel(FeatureTreeModel):
    """Boosted trees on :func:`~cardiolens.tasks.aami_features.record_beat_features`: one prediction per beat."""

    FEATURE_SET = "cardiolens.tasks.aami_features"

    def predict_beats(self, signal: Any, beats: Any, beats_fs: float) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities of a recording's beats: ``(probs (kept, classes), kept)``.

        Args:
            signal: one ECG lead at ``config.fs``, (samples,) or (1, samples).
            beats: R-peak positions (sample indices at ``beats_fs``), at least 3.
            beats_fs: their rate.

        ``kept`` indexes ``beats``: every beat but the first and the last, whose RR intervals are undefined.
        """
        from cardiolens.tasks.aami_features import record_beat_features

        features, kept = record_beat_features(signal, self.config.fs, beats, beats_fs)
        return self.ensemble.predict_proba(features), kept


def is_tree_model(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :meth:`FeatureTreeModel.save`."""
    return (Path(path) / TREES_CONFIG).is_file()


def list_tree_models() -> list[str]:
    """Names of the feature-tree models shipped in the weights folder (not torch checkpoints, so
    :func:`cardiolens.models.list_pretrained` leaves them out)."""
    from cardiolens.models.pretrained import shipped_names

    return shipped_names(is_tree_model)


def find_tree_model(name_or_path: str | Path) -> Path | None:
    """The folder of a tree model named like a shipped model (``rhythm-ecg-trees``) or given as a path; else None."""
    from cardiolens.models.pretrained import find_shipped_or_path

    return find_shipped_or_path(name_or_path, is_tree_model)


def load_tree_model(path: str | Path) -> FeatureTreeModel:
    """A :class:`RhythmTreeModel` or :class:`BeatTreeModel` from its folder; JSON and safetensors only, never pickle.

    Raises:
        CheckpointError: not such a folder, another format, or weights that do not match their digest.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not is_tree_model(path):
        raise CheckpointError(f"not a feature-tree model folder (no {TREES_CONFIG})", path)
    try:
        meta = json.loads((path / TREES_CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{TREES_CONFIG} is not valid JSON ({exc})", path) from None
    if meta.get("format") != TREES_FORMAT:
        raise CheckpointError(f"{TREES_CONFIG} names format {meta.get('format')!r}, not {TREES_FORMAT!r}", path)
    weights = path / TREES_WEIGHTS
    if not weights.is_file() or hashlib.sha256(weights.read_bytes()).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{TREES_WEIGHTS} is missing or does not match the digest in {TREES_CONFIG}", path)
    try:
        arrays = load_file(str(weights))
        config = TreeModelConfig(**meta["config"])
    except (SafetensorError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot read the model ({exc})", path) from None
    kinds = {cls.FEATURE_SET: cls for cls in (RhythmTreeModel, BeatTreeModel)}
    if config.feature_set not in kinds:
        raise CheckpointError(f"reads features of {config.feature_set!r}; this version knows {', '.join(kinds)}", path)
    return kinds[config.feature_set](config, TreeEnsemble(arrays))


__all__ = [
    "BeatTreeModel",
    "FeatureTreeModel",
    "RhythmTreeModel",
    "TreeEnsemble",
    "TreeModelConfig",
    "find_tree_model",
    "is_tree_model",
    "list_tree_models",
    "load_tree_model",
]
