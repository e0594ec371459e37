"""Trained models by name: the small defaults shipped in the package, checkpoints, HeartGPT files.

:func:`load_model` is what the CLI, the web app and the benchmarks call to turn the ``MODEL``
argument a user typed into a model:

- a shipped name (``ecgpt-small``, ``ppgpt-small``, see :func:`list_pretrained`): weights trained by
  cardiolens, in ``cardiolens/weights/<name>/`` with a model card;
- a cardiolens checkpoint folder or zip (``model.safetensors`` + ``config.json``);
- a published HeartGPT file (``ECGPT_560k_iters.zip`` ...), converted on the fly.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from torch import nn

from cardiolens.errors import CheckpointError
from cardiolens.models.checkpoint import CONFIG, load_checkpoint
from cardiolens.models.heartgpt_import import import_heartgpt


def weights_dir() -> Path:
    """Folder of the checkpoints shipped inside the package."""
    return Path(str(resources.files("cardiolens") / "weights"))


def shipped_names(is_kind: Callable[[Path], bool]) -> list[str]:
    """Names of the shipped model folders of one kind (``is_kind`` tells a folder of that kind)."""
    root = weights_dir()
    return sorted(p.name for p in root.iterdir() if is_kind(p)) if root.is_dir() else []


def find_shipped_or_path(name_or_path: str | Path, is_kind: Callable[[Path], bool]) -> Path | None:
    """The folder of a model of one kind named like a shipped model, or given as a path; else None."""
    text = str(name_or_path)
    if "/" not in text and is_kind(weights_dir() / text):
        return weights_dir() / text
    return Path(text) if is_kind(Path(text)) else None


def list_pretrained() -> list[str]:
    """Names of the trained checkpoints shipped with the package."""
    return shipped_names(lambda p: (p / CONFIG).is_file())


def _architecture(name: str) -> str | None:
    """The architecture a shipped checkpoint's config names (``task-model``, ``gpt``, ...)."""
    try:
        return json.loads((weights_dir() / name / CONFIG).read_text()).get("architecture")
    except (OSError, ValueError):
        return None


def _is_heartgpt_file(path: Path) -> bool:
    if path.suffix in (".pth", ".pt"):  # PyTorch state_dicts; cardiolens checkpoints are folders or zips
        return True
    if path.suffix != ".zip" or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith(".pth") for n in names) and not any(Path(n).name == CONFIG for n in names)


def load_model(name_or_path: str | Path, map_location: str = "cpu") -> nn.Module:
    """A trained model, in eval mode, from a shipped name, a checkpoint, or a HeartGPT file.

    Args:
        name_or_path: ``ecgpt-small`` (shipped), a checkpoint folder/zip, or a HeartGPT ``.zip``/``.pth``.
        map_location: device of the weights.

    Raises:
        CheckpointError: neither a shipped name nor a readable checkpoint; the message lists the
            shipped names.

    Example:
        >>> model = load_model("ecgpt-small")  # doctest: +SKIP
        >>> model.config.fs
        100.0
    """
    text = str(name_or_path)
    shipped = weights_dir() / text
    if "/" not in text and (shipped / CONFIG).is_file():
        return load_checkpoint(shipped, map_location)
    from cardiolens.tasks.model_mean import find_model_mean, list_model_means
    from cardiolens.tasks.tree_model import find_tree_model, list_tree_models

    if find_tree_model(text) is not None:
        raise CheckpointError(
            "is a feature-tree model, not a network: use cardiolens predict / evaluate / explain, or "
            "cardiolens.tasks.tree_model.load_tree_model",
            text,
        )
    if find_model_mean(text) is not None:
        raise CheckpointError(
            "is a mean of other models, not a network: use cardiolens predict / evaluate / explain, or "
            "cardiolens.tasks.model_mean.load_model_mean",
            text,
        )
    path = Path(name_or_path)
    if not path.exists():
        tasks = [n for n in list_pretrained() if _architecture(n) == "task-model"]
        backbones = [n for n in list_pretrained() if n not in tasks]
        names = ", ".join(tasks) or "none installed"
        if backbones:  # pretrained backbones: fine-tune, generate and explain take them, predict does not
            names += f"; pretrained backbones: {', '.join(backbones)}"
        trees = list_tree_models()
        if trees:  # not networks, but a name predict, evaluate and explain accept in the same place
            names += f"; feature-tree models for predict, evaluate and explain: {', '.join(trees)}"
        if means := list_model_means():
            names += f"; means of models for predict, evaluate and explain: {', '.join(means)}"
        raise CheckpointError(f"no such model: not a shipped model ({names}) and no file or folder of that name", text)
    if path.is_file() and _is_heartgpt_file(path):
        return import_heartgpt(path).to(map_location)
    return load_checkpoint(path, map_location)


__all__ = ["find_shipped_or_path", "list_pretrained", "load_model", "shipped_names", "weights_dir"]
