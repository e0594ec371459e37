"""Named GPT presets.

``heartgpt-*`` reproduce the published HeartGPT architecture exactly (Davies et al. 2024; weights via
:func:`cardiolens.models.import_heartgpt`). ``ecgpt-small`` / ``ppgpt-small`` are our own settings of
the same module: GELU, head-width attention scaling, tied embeddings and a 10 s / 20 s context.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cardiolens.models.gpt import GPT, GPTConfig
from cardiolens.models.registry import register_model

# The published architecture (HeartGPT_pretraining.py): the attention scale is n_embd ** -0.5,
# not head_size ** -0.5, because each Head multiplies by C ** -0.5 with C the embedding width.
HEARTGPT = GPTConfig(
    vocab_size=101,
    block_size=500,
    n_layer=8,
    n_head=8,
    n_embd=64,
    mlp_hidden=256,
    activation="relu",
    dropout=0.2,
    qkv_bias=False,
    bias=True,
    attn_scale=64**-0.5,
    tie_weights=False,
    norm_eps=1e-5,
    signal_levels=101,
)

PRESETS: dict[str, GPTConfig] = {
    "gpt": GPTConfig(name="gpt"),
    "heartgpt-ecg": dataclasses.replace(HEARTGPT, name="heartgpt-ecg", modality="ECG", fs=100.0),
    "heartgpt-ppg": dataclasses.replace(HEARTGPT, name="heartgpt-ppg", vocab_size=102, modality="PPG", fs=50.0),
    # ours: 9 s of ECG at 100 Hz (HeartGPT: 5 s; 9 s so that crops of 901 samples fit PTB-XL's 10 s
    # records), GELU, tied embeddings, head-width scaling, no attention dropout so that training takes
    # the fused attention kernel; ~0.77 M parameters
    "ecgpt-small": GPTConfig(
        name="ecgpt-small",
        vocab_size=101,
        block_size=900,
        n_layer=6,
        n_head=4,
        n_embd=96,
        activation="gelu",
        dropout=0.0,
        attn_dropout=0.0,
        tie_weights=True,
        modality="ECG",
        fs=100.0,
    ),
}
# 10 s of finger PPG at 50 Hz; BIDMC is small (53 x 8 min), hence residual dropout
PRESETS["ppgpt-small"] = dataclasses.replace(
    PRESETS["ecgpt-small"], name="ppgpt-small", block_size=500, dropout=0.1, modality="PPG", fs=50.0
)
# HeartGPT's fine-tuned files: the LM head replaced by Linear(64, 1) + sigmoid
PRESETS["heartgpt-ecg-af"] = dataclasses.replace(PRESETS["heartgpt-ecg"], name="heartgpt-ecg-af", head="classifier")
PRESETS["heartgpt-ppg-af"] = dataclasses.replace(PRESETS["heartgpt-ppg"], name="heartgpt-ppg-af", head="classifier")
PRESETS["heartgpt-ppg-beat"] = dataclasses.replace(
    PRESETS["heartgpt-ppg"], name="heartgpt-ppg-beat", head="classifier", head_pool="none"
)


def get_config(name: str, **overrides: Any) -> GPTConfig:
    """The :class:`GPTConfig` of a GPT preset, with fields overridden by keyword."""
    from cardiolens.errors import CardiolensError

    if name not in PRESETS:
        raise CardiolensError(f"unknown GPT preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    try:
        return dataclasses.replace(PRESETS[name], **overrides)
    except TypeError as exc:
        known = sorted(f.name for f in dataclasses.fields(GPTConfig))
        raise CardiolensError(f"{name}: {exc}; config fields: {', '.join(known)}") from None


def _register(name: str) -> None:
    def build(**overrides: Any) -> GPT:
        return GPT(get_config(name, **overrides))

    build.__name__ = name.replace("-", "_")
    build.__doc__ = f"GPT preset {name!r}: {PRESETS[name]}"
    register_model(name)(build)


for _name in PRESETS:
    _register(_name)
