"""The one cardiolens checkpoint format: a folder (or a zip of one) holding

- ``model.safetensors``: the weights (shared tensors such as tied embeddings stored once);
- ``config.json``: ``{"format": "cardiolens-checkpoint", "format_version": 1, "architecture": "gpt",
  "config": {...}, "weights_sha256": "...", "tensors": {name: shape}}``;
- ``MODEL_CARD.md``: when a card was given.

Loading never unpickles: weights come from safetensors, the config from JSON. Saving is atomic: the
files are written into a temporary folder next to the target, which is then renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file
from torch import nn

from cardiolens import __version__
from cardiolens.errors import CardiolensError, CheckpointError
from cardiolens.models.registry import get_architecture

FORMAT = "cardiolens-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "MODEL_CARD.md"


def _shared_aliases(model: nn.Module) -> dict[str, str]:
    """Map each state-dict key whose storage another key already holds (tied weights) to that key."""
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    alias: dict[str, str] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        key = (tensor.data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            alias[name] = seen[key]
        else:
            seen[key] = name
    return alias


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    card: str | None = None,
    *,
    overwrite: bool = False,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` as a cardiolens checkpoint folder, atomically.

    Args:
        model: a registered-architecture model with a ``config`` dataclass (``GPT``).
        path: the folder to create.
        card: Markdown model card (what the model is, data, licence, intended use), written as
            ``MODEL_CARD.md``.
        overwrite: replace an existing checkpoint folder at ``path``.
        extra_files: further text files written with it, name -> content (e.g. ``heldout.json``,
            the records a pretrained model never saw).

    Returns:
        The checkpoint folder.

    Raises:
        CheckpointError: the model has no architecture/config, or ``path`` exists and ``overwrite``
            is false (or it is not a checkpoint folder).
    """
    path = Path(path)
    architecture = getattr(model, "architecture", None)
    config = getattr(model, "config", None)
    if architecture is None or config is None or not hasattr(config, "to_dict"):
        raise CheckpointError(
            f"{type(model).__name__} is not a registered cardiolens architecture (needs .architecture and .config)",
            path,
        )
    if path.exists():
        if not overwrite:
            raise CheckpointError("already exists; pass overwrite=True to replace it", path)
        if not path.is_dir() or not (path / CONFIG).exists():
            raise CheckpointError("exists and is not a cardiolens checkpoint folder; refusing to replace it", path)

    alias = _shared_aliases(model)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items() if name not in alias}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is meant to be shared like any folder
    try:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT, "architecture": architecture})
        digest = hashlib.sha256((tmp / WEIGHTS).read_bytes()).hexdigest()
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": architecture,
            "config": config.to_dict(),
            "tied": alias,
            "weights_sha256": digest,
            "tensors": {name: list(t.shape) for name, t in tensors.items()},
            "cardiolens_version": __version__,
        }
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        if card is not None:
            (tmp / CARD).write_text(card if card.endswith("\n") else card + "\n")
        for name, text in (extra_files or {}).items():
            if Path(name).name != name or name in (WEIGHTS, CONFIG, CARD):
                raise CheckpointError(f"extra file name {name!r} must be a plain file name other than ours", path)
            (tmp / name).write_text(text)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            old.rmdir()
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _read_files(path: Path) -> tuple[bytes, bytes, str | None]:
    """config.json bytes, model.safetensors bytes and the card from a folder or a zip."""
    if not path.exists():
        raise CheckpointError("no such checkpoint folder or file", path)
    if path.is_dir():
        files = {p.name: p for p in path.iterdir()}
        if CONFIG not in files or WEIGHTS not in files:
            raise CheckpointError(_not_ours(sorted(files)), path)
        card = files[CARD].read_text() if CARD in files else None
        return files[CONFIG].read_bytes(), files[WEIGHTS].read_bytes(), card
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            # the files may sit at the top of the zip or inside one folder
            by_base: dict[str, str] = {}
            for n in names:
                if not n.endswith("/"):
                    by_base.setdefault(n.rsplit("/", 1)[-1], n)
            if CONFIG not in by_base or WEIGHTS not in by_base:
                raise CheckpointError(_not_ours(names), path)
            card = zf.read(by_base[CARD]).decode() if CARD in by_base else None
            return zf.read(by_base[CONFIG]), zf.read(by_base[WEIGHTS]), card
    with open(path, "rb") as fh:
        if fh.read(2) == b"PK":  # a zip's first bytes without a readable directory at its end
            raise CheckpointError("a zip archive that is truncated or corrupted (its directory is unreadable)", path)
    raise CheckpointError(_not_ours([path.name]), path)


def _not_ours(names: list[str]) -> str:
    shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "") if names else "nothing"
    hint = ""
    if "run.json" in names:  # a pretraining or fine-tuning run folder: its checkpoints are inside
        inside = [f"{n}/" for n in names if n in ("model", "best")] or [
            f"{n}/model/" for n in names if n.startswith("fold-")
        ]
        hint = f"; a cardiolens run folder: its checkpoints are {', '.join(inside) or 'written as it trains'} inside it"
    elif any(n.endswith((".pth", ".pt", ".zip")) for n in names):
        hint = "; a HeartGPT .pth (or its zip) is imported with cardiolens.models.import_heartgpt"
    return f"not a cardiolens checkpoint (expected {CONFIG} and {WEIGHTS}, found {shown}){hint}"


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint (folder or zip), validated."""
    path = Path(path)
    raw, _, _ = _read_files(path)
    return _parse_config(raw, path)


def _parse_config(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{CONFIG} is not valid JSON ({exc})", path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{CONFIG} does not describe a cardiolens checkpoint (no 'format': '{FORMAT}')", path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {meta.get('format_version')!r}; this cardiolens reads version {FORMAT_VERSION}",
            path,
        )
    for key in ("architecture", "config"):
        if key not in meta:
            raise CheckpointError(f"{CONFIG} lacks {key!r}", path)
    return meta


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a cardiolens checkpoint folder (or zip); it is returned in eval mode.

    Only JSON and safetensors are read: nothing is unpickled.

    Args:
        path: the folder written by :func:`save_checkpoint`, or a zip of it.
        map_location: device for the weights.

    Returns:
        The model, with ``model.card`` holding the model card text (or ``None``).

    Raises:
        CheckpointError: a folder that is not a checkpoint, corrupted weights, a config that does not
            match the weights (missing/unexpected tensors, shapes, vocabulary size).
    """
    path = Path(path)
    raw_config, raw_weights, card = _read_files(path)
    meta = _parse_config(raw_config, path)
    expected = meta.get("weights_sha256")
    if expected and hashlib.sha256(raw_weights).hexdigest() != expected:
        raise CheckpointError(
            f"{WEIGHTS} is corrupted: its SHA-256 differs from the one recorded in {CONFIG} "
            "(truncated or modified file; copy it again)",
            path,
        )
    try:
        tensors = load_safetensors_bytes(raw_weights)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{WEIGHTS} is corrupted or not a safetensors file ({exc})", path) from None

    try:
        cls = get_architecture(meta["architecture"])
        config = cls.config_class.from_dict(meta["config"])
        model = cls(config)
    except CardiolensError as exc:
        raise CheckpointError(f"{CONFIG}: {exc}", path) from None
    except TypeError as exc:
        raise CheckpointError(f"{CONFIG}: config does not fit {meta['architecture']!r} ({exc})", path) from None

    alias = _shared_aliases(model)
    wanted = {k: v for k, v in model.state_dict().items() if k not in alias}
    _check_vocab(config, tensors, path)
    missing = sorted(set(wanted) - set(tensors))
    unexpected = sorted(set(tensors) - set(wanted))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}")
        raise CheckpointError(f"weights do not match the config: {'; '.join(parts)}", path)
    wrong = [
        f"{k} {tuple(tensors[k].shape)} vs config {tuple(v.shape)}"
        for k, v in wanted.items()
        if tuple(tensors[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointError(f"weights do not match the config: {'; '.join(wrong[:4])}", path)
    model.load_state_dict(tensors, strict=False)  # tied aliases are set through their source
    model.to(map_location)
    model.eval()
    model.card = card
    return model


def _check_vocab(config: Any, tensors: dict[str, torch.Tensor], path: Path) -> None:
    vocab = getattr(config, "vocab_size", None)
    emb = tensors.get("wte.weight")
    if vocab is not None and emb is not None and emb.shape[0] != vocab:
        raise CheckpointError(
            f"vocabulary mismatch: {CONFIG} says vocab_size {vocab}, the token embedding has {emb.shape[0]} rows",
            path,
        )
