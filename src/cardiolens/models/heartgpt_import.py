"""Import the published HeartGPT checkpoints (Davies et al. 2024, arXiv 2407.20775, MIT licence).

Each published file is a zip holding one ``.pth`` PyTorch ``state_dict`` of the original nanoGPT-style
model: per-head ``blocks.{i}.sa.heads.{h}.key/query/value`` Linear(64, 8, bias=False) with a 500x500
``tril`` mask buffer each, ``sa.proj``, ``ffwd.net.0/2``, ``ln1/ln2``, ``ln_f`` and either ``lm_head``
(pretrained) or ``lm_head.linear1.0`` (fine-tuned: Linear(64, 1) followed by a sigmoid).

The converter reads the ``.pth`` straight out of the zip with ``torch.load(..., weights_only=True)``
(no pickled code runs), checks that every ``tril`` buffer is the plain causal mask and drops it,
fuses the per-head query/key/value weights into :class:`~cardiolens.models.gpt.GPT`'s ``c_attn``
layout and renames the rest.

What the file itself tells: the modality from the vocabulary (101 tokens: ECG, 102: PPG), the sizes
from the tensor shapes, pretrained vs fine-tuned from the head. What it does not tell: AF vs beat
detection, whose heads have the same shape. That comes from ``kind=`` or the file name, and decides
how the head is read, as in the published code:

- AF (``Heart_GPT_GUI_interpretability_AF.py``): ``sigmoid(linear1(features))[:, -1]``, the last
  token's output, one probability per 500-token window (``head_pool="last"``).
- beat (``Heart_GPT_GUI_PPG_beat_full_averaged.py``): ``sigmoid(linear1(features))`` at every token,
  a beat probability per sample (``head_pool="none"``); the GUI runs 500-token windows shifted by
  100 and averages the overlaps.

Both GUIs tokenise their input (min-max of the window to 0..100, rounded), ECG at 100 Hz and PPG at
50 Hz. Our models return the linear output (logits); ``model.predict_proba`` applies the sigmoid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cardiolens.errors import CheckpointError
from cardiolens.models.checkpoint import save_checkpoint
from cardiolens.models.gpt import GPT
from cardiolens.models.presets import get_config

_MODALITY_BY_VOCAB = {101: "ECG", 102: "PPG"}
_KINDS = ("pretrained", "af", "beat")
_HEAD_KEYS = {"lm_head.weight", "lm_head.bias", "lm_head.linear1.0.weight", "lm_head.linear1.0.bias"}


def read_heartgpt_state_dict(src: str | Path) -> dict[str, Tensor]:
    """The raw HeartGPT ``state_dict`` from a published ``.zip`` (read in memory) or a bare ``.pth``.

    ``torch.load`` runs with ``weights_only=True``: a file holding anything but tensors and plain
    containers is refused rather than executed.
    """
    src = Path(src)
    if not src.is_file():
        raise CheckpointError("no such file", src)
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            members = [n for n in zf.namelist() if n.endswith((".pth", ".pt"))]
            # a .pth is itself a zip (torch's format): tell it apart from a zip that holds one
            if not members and any(n.endswith("/data.pkl") for n in zf.namelist()):
                payload = src.read_bytes()
            elif len(members) != 1:
                found = ", ".join(zf.namelist()[:8]) or "nothing"
                raise CheckpointError(f"expected one HeartGPT .pth inside the zip, found {found}", src)
            else:
                payload = zf.read(members[0])
    else:
        payload = src.read_bytes()
    if not (payload[:2] == b"PK" or payload[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise CheckpointError("not a PyTorch file (neither torch's zip format nor a pickle): corrupted?", src)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refused to load: the file holds objects other than tensors, which would run code ({first})", src
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"not a readable PyTorch state_dict (truncated or corrupted?): {exc}", src) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"expected a state_dict of tensors, got {type(state).__name__}", src)
    return dict(state)


def _kind_from_name(name: str) -> str | None:
    low = name.lower()
    if "beat" in low:
        return "beat"
    if re.search(r"(^|[^a-z])af([^a-z]|$)", low) or "afib" in low:
        return "af"
    return None


def detect_heartgpt(state: dict[str, Tensor], name: str = "", kind: str | None = None) -> dict[str, Any]:
    """Sizes, modality and kind (``pretrained``/``af``/``beat``) of a HeartGPT state_dict.

    Args:
        state: the raw state_dict.
        name: the file name, consulted only to tell AF from beat detection.
        kind: force the kind; needed for a fine-tuned file whose name says neither AF nor beat.
    """
    source = name or "HeartGPT state_dict"
    try:
        emb = state["token_embedding_table.weight"]
        pos = state["position_embedding_table.weight"]
    except KeyError:
        shown = ", ".join(list(state)[:6])
        raise CheckpointError(
            f"not a HeartGPT state_dict (no token/position embedding tables; keys: {shown} ...)", source
        ) from None
    vocab_size, n_embd = emb.shape
    if vocab_size not in _MODALITY_BY_VOCAB:
        raise CheckpointError(
            f"vocabulary of {vocab_size} tokens matches neither HeartGPT ECG (101) nor PPG (102)", source
        )
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    heads = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.0\.sa\.heads\.(\d+)\.", k))})
    if not layers or not heads or layers != list(range(len(layers))) or heads != list(range(len(heads))):
        raise CheckpointError("not a HeartGPT state_dict (blocks/heads missing or not numbered 0..n-1)", source)
    head_size = state["blocks.0.sa.heads.0.key.weight"].shape[0]
    if head_size * len(heads) != n_embd:
        raise CheckpointError(f"{len(heads)} heads of width {head_size} do not add up to n_embd {n_embd}", source)

    if "lm_head.weight" in state:
        found = "pretrained"
    elif "lm_head.linear1.0.weight" in state:
        found = "finetuned"
    else:
        raise CheckpointError("no head found (neither lm_head.weight nor lm_head.linear1.0.weight)", source)
    if kind is not None:
        kind = kind.lower()
        if kind not in _KINDS:
            raise CheckpointError(f"kind must be one of {_KINDS}, got {kind!r}", source)
        if (kind == "pretrained") != (found == "pretrained"):
            raise CheckpointError(f"kind={kind!r} given, but the file holds a {found} head", source)
    elif found == "pretrained":
        kind = "pretrained"
    else:
        kind = _kind_from_name(name)
        if kind is None:
            raise CheckpointError(
                "fine-tuned head (linear1.0) found, but AF and beat-detection heads have the same shape and "
                "the file name names neither (the published files do: ECGPT_AF_1k_iters.zip, "
                "PPGPT_beat_5k_iters.zip); rename the file so that its name holds AF as a word of its own "
                "(my_AF_model.zip: last-token output) or 'beat' (my_beat_model.zip: per-token), or convert it "
                "once with cardiolens.models.convert_heartgpt(file, folder, kind='af' or 'beat') and use that "
                "folder",
                source,
            )
    return {
        "modality": _MODALITY_BY_VOCAB[vocab_size],
        "kind": kind,
        "vocab_size": int(vocab_size),
        "n_embd": int(n_embd),
        "block_size": int(pos.shape[0]),
        "n_layer": len(layers),
        "n_head": len(heads),
        "mlp_hidden": int(state["blocks.0.ffwd.net.0.weight"].shape[0]),
    }


def convert_heartgpt_state_dict(state: dict[str, Tensor], info: dict[str, Any], source: str = "") -> dict[str, Tensor]:
    """Rename and fuse a HeartGPT state_dict into :class:`GPT`'s layout (``tril`` buffers dropped)."""
    n_layer, n_head, block = info["n_layer"], info["n_head"], info["block_size"]
    mask = torch.tril(torch.ones(block, block))
    used: set[str] = set()

    def take(key: str) -> Tensor:
        try:
            t = state[key]
        except KeyError:
            raise CheckpointError(f"HeartGPT tensor {key!r} is missing", source) from None
        used.add(key)
        return t

    out = {
        "wte.weight": take("token_embedding_table.weight"),
        "wpe.weight": take("position_embedding_table.weight"),
        "ln_f.weight": take("ln_f.weight"),
        "ln_f.bias": take("ln_f.bias"),
    }
    for i in range(n_layer):
        p = f"blocks.{i}."
        fused = []
        for part in ("query", "key", "value"):
            # HeartGPT concatenates head outputs in head order: head h owns rows h*D:(h+1)*D
            fused.append(torch.cat([take(f"{p}sa.heads.{h}.{part}.weight") for h in range(n_head)], dim=0))
        out[f"{p}attn.c_attn.weight"] = torch.cat(fused, dim=0)  # (3C, C): query, key, value
        for h in range(n_head):
            tril = take(f"{p}sa.heads.{h}.tril")
            if tril.shape != mask.shape or not torch.equal(tril, mask):
                raise CheckpointError(
                    f"{p}sa.heads.{h}.tril is not the plain causal mask; this converter only handles causal heads",
                    source,
                )
        for ours, theirs in (
            ("attn.c_proj", "sa.proj"),
            ("ln_1", "ln1"),
            ("ln_2", "ln2"),
            ("mlp.fc", "ffwd.net.0"),
            ("mlp.proj", "ffwd.net.2"),
        ):
            out[f"{p}{ours}.weight"] = take(f"{p}{theirs}.weight")
            out[f"{p}{ours}.bias"] = take(f"{p}{theirs}.bias")
    prefix = "lm_head." if info["kind"] == "pretrained" else "lm_head.linear1.0."
    out["head.fc.weight"] = take(prefix + "weight")
    out["head.fc.bias"] = take(prefix + "bias")
    extra = sorted(set(state) - used)
    if extra:
        raise CheckpointError(f"unexpected tensors in the HeartGPT file: {extra[:6]}", source)
    return {k: v.detach().clone().float().contiguous() for k, v in out.items()}


def import_heartgpt(src: str | Path, kind: str | None = None) -> GPT:
    """Load a published HeartGPT checkpoint (``.zip`` as distributed, or the ``.pth`` in it) as a :class:`GPT`.

    Args:
        src: e.g. ``ECGPT_560k_iters.zip``, ``PPGPT_AF_1k_iters.zip``, ``PPGPT_beat_5k_iters.zip``.
        kind: ``"pretrained"``, ``"af"`` or ``"beat"``; detected from the tensors and, for fine-tuned
            files, from the file name when not given.

    Returns:
        The model in eval mode, config from the matching preset (``heartgpt-ecg``, ``heartgpt-ppg``,
        ``heartgpt-ecg-af``, ``heartgpt-ppg-af``, ``heartgpt-ppg-beat``) with the sizes found in the
        file; ``model.card`` holds a model card naming the source.

    Example:
        >>> model = import_heartgpt("ECGPT_560k_iters.zip")  # doctest: +SKIP
        >>> model.config.name, model.config.fs  # doctest: +SKIP
        ('heartgpt-ecg', 100.0)
    """
    src = Path(src)
    state = read_heartgpt_state_dict(src)
    info = detect_heartgpt(state, src.name, kind)
    modality = info["modality"].lower()
    if info["kind"] == "pretrained":
        base = get_config(f"heartgpt-{modality}")
    elif info["kind"] == "af":
        base = get_config(f"heartgpt-{modality}-af")
    elif modality == "ppg":
        base = get_config("heartgpt-ppg-beat")
    else:  # no ECG beat model was published; same head settings as the PPG one
        base = get_config("heartgpt-ppg-beat", name="heartgpt-ecg-beat", modality="ECG", fs=100.0)
    config = dataclasses.replace(
        base,
        vocab_size=info["vocab_size"],
        block_size=info["block_size"],
        n_layer=info["n_layer"],
        n_head=info["n_head"],
        n_embd=info["n_embd"],
        mlp_hidden=info["mlp_hidden"],
        attn_scale=info["n_embd"] ** -0.5,
    )
    tensors = convert_heartgpt_state_dict(state, info, str(src))
    model = GPT(config)
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape: torch lists every one
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"a tensor's shape does not fit HeartGPT's architecture ({detail})", src) from None
    if missing or unexpected:  # cannot happen for files detect_heartgpt accepted; guard the mapping itself
        raise CheckpointError(f"conversion mismatch: missing {missing}, unexpected {unexpected}", src)
    model.eval()
    model.card = heartgpt_model_card(src, info, config.name)
    return model


def heartgpt_model_card(src: Path, info: dict[str, Any], name: str) -> str:
    """Markdown model card for an imported HeartGPT checkpoint."""
    digest = hashlib.sha256(src.read_bytes()).hexdigest() if src.is_file() else "unknown"
    fs = "100 Hz (ECG lead I)" if info["modality"] == "ECG" else "50 Hz (finger PPG)"
    use = {
        "pretrained": "next-token prediction (generation with `cardiolens.generate`), features for fine-tuning",
        "af": "atrial-fibrillation probability of a 500-token window: `predict_proba(tokens)` gives "
        "sigmoid(linear(last token's features)), shape (B, 1)",
        "beat": "beat probability at every token: `predict_proba(tokens)` gives sigmoid(linear(features)) "
        "of shape (B, T, 1); the published GUI averages 500-token windows shifted by 100",
    }[info["kind"]]
    return f"""# {name} (imported HeartGPT checkpoint)

- Source: `{src.name}` (SHA-256 `{digest}`), from https://github.com/harryjdavies/HeartGPT
- Authors: Harry J. Davies et al., "Interpretable Pre-Trained Transformers for Heart Time-Series Data",
  arXiv 2407.20775 (2024). Licence: MIT (Copyright (c) 2024 Harry Davies).
- Architecture: GPT decoder, {info["n_layer"]} layers, {info["n_head"]} heads, n_embd {info["n_embd"]},
  context {info["block_size"]}, vocabulary {info["vocab_size"]}, attention scaled by n_embd**-0.5.
- Kind: {info["kind"]} ({info["modality"]}). Use: {use}.
- Input: {fs}; a window of up to {info["block_size"]} samples min-max scaled to 0..100 and rounded.
- Converted by cardiolens: per-head query/key/value weights fused, causal-mask buffers dropped; outputs
  equal the published model's to float precision (tests/models/test_heartgpt_import.py).
"""


def convert_heartgpt(src: str | Path, out_dir: str | Path, kind: str | None = None, *, overwrite: bool = False) -> Path:
    """Convert a published HeartGPT checkpoint into a cardiolens checkpoint folder (safetensors + config).

    Args:
        src: the published ``.zip`` (or ``.pth``).
        out_dir: the checkpoint folder to write (atomically).
        kind: see :func:`import_heartgpt`.
        overwrite: replace an existing checkpoint at ``out_dir``.
    """
    model = import_heartgpt(src, kind)
    return save_checkpoint(model, out_dir, card=model.card, overwrite=overwrite)
