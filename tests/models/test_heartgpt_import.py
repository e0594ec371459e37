"""The published HeartGPT checkpoints, imported: equivalence with the original computation, and the
published behaviour (next-token accuracy, AF probabilities, beat positions) on the example inputs.

The reference forward below is written from the published model definition (Heart_PT_generate.py)
with the original per-head weights read straight from the zip: a loop over heads, an explicit
masked softmax, nothing shared with cardiolens.models.
"""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks

from cardiolens.errors import CheckpointError
from cardiolens.models import convert_heartgpt, import_heartgpt, load_checkpoint

pytestmark = pytest.mark.realdata

FILES = {
    "ecg": "ECGPT_560k_iters.zip",
    "ppg": "PPGPT_500k_iters.zip",
    "ecg_af": "ECGPT_AF_1k_iters.zip",
    "ppg_af": "PPGPT_AF_1k_iters.zip",
    "ppg_beat": "PPGPT_beat_5k_iters.zip",
}


def raw_state_dict(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as zf:
        (member,) = [n for n in zf.namelist() if n.endswith(".pth")]
        return torch.load(io.BytesIO(zf.read(member)), map_location="cpu", weights_only=True)


def heartgpt_tokens(x: np.ndarray) -> torch.Tensor:
    """HeartGPT's tokenize_biosignal: min-max of the window to 0..100, rounded. (1, T) int64."""
    x = np.asarray(x, dtype=np.float64)[-500:]
    return torch.tensor(np.round((x - x.min()) / (x.max() - x.min()) * 100), dtype=torch.long)[None]


def reference_forward(sd: dict[str, torch.Tensor], idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """HeartGPT's forward up to the final LayerNorm, head by head; returns (features, per-head weights)."""
    n_layer = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    n_head = len({k.split(".")[4] for k in sd if k.startswith("blocks.0.sa.heads.")})
    x = sd["token_embedding_table.weight"][idx] + sd["position_embedding_table.weight"][: idx.shape[1]]
    B, T, C = x.shape
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def layer_norm(v, prefix):
        mean = v.mean(-1, keepdim=True)
        var = ((v - mean) ** 2).mean(-1, keepdim=True)
        return (v - mean) / torch.sqrt(var + 1e-5) * sd[prefix + ".weight"] + sd[prefix + ".bias"]

    weights = []
    for layer in range(n_layer):
        p = f"blocks.{layer}."
        h = layer_norm(x, p + "ln1")
        outs = []
        for head in range(n_head):
            q = h @ sd[f"{p}sa.heads.{head}.query.weight"].T
            k = h @ sd[f"{p}sa.heads.{head}.key.weight"].T
            v = h @ sd[f"{p}sa.heads.{head}.value.weight"].T
            scores = (q @ k.transpose(-2, -1)) * C**-0.5  # the published scale: embedding width
            scores = scores.masked_fill(~causal, float("-inf"))
            e = torch.exp(scores - scores.max(-1, keepdim=True).values)
            w = e / e.sum(-1, keepdim=True)
            weights.append(w)
            outs.append(w @ v)
        x = x + torch.cat(outs, dim=-1) @ sd[p + "sa.proj.weight"].T + sd[p + "sa.proj.bias"]
        h = torch.relu(layer_norm(x, p + "ln2") @ sd[p + "ffwd.net.0.weight"].T + sd[p + "ffwd.net.0.bias"])
        x = x + h @ sd[p + "ffwd.net.2.weight"].T + sd[p + "ffwd.net.2.bias"]
    return layer_norm(x, "ln_f"), weights


@pytest.fixture(scope="module")
def files(heartgpt_dir: Path) -> dict[str, Path]:
    return {key: heartgpt_dir / name for key, name in FILES.items()}


@pytest.fixture(scope="module")
def models(files) -> dict[str, torch.nn.Module]:
    return {key: import_heartgpt(path) for key, path in files.items()}


@pytest.fixture(scope="module")
def raw(files) -> dict[str, dict[str, torch.Tensor]]:
    """The original state dicts, each read once."""

    class Lazy(dict):
        def __missing__(self, key):
            self[key] = raw_state_dict(files[key])
            return self[key]

    return Lazy()


@pytest.fixture(scope="module")
def examples(heartgpt_dir: Path) -> dict[str, torch.Tensor]:
    folder = heartgpt_dir / "example_inputs"
    return {p.stem.removeprefix("example_context_"): heartgpt_tokens(np.loadtxt(p)) for p in folder.glob("*.csv")}


def test_detection_from_the_tensors(models, raw):
    expected = {
        "ecg": ("heartgpt-ecg", "ECG", 101, "lm", 100.0),
        "ppg": ("heartgpt-ppg", "PPG", 102, "lm", 50.0),
        "ecg_af": ("heartgpt-ecg-af", "ECG", 101, "classifier", 100.0),
        "ppg_af": ("heartgpt-ppg-af", "PPG", 102, "classifier", 50.0),
        "ppg_beat": ("heartgpt-ppg-beat", "PPG", 102, "classifier", 50.0),
    }
    for key, (name, modality, vocab, head, fs) in expected.items():
        cfg = models[key].config
        assert (cfg.name, cfg.modality, cfg.vocab_size, cfg.head, cfg.fs) == (name, modality, vocab, head, fs)
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size) == (8, 8, 64, 500)
    assert models["ecg_af"].config.head_pool == "last" and models["ppg_beat"].config.head_pool == "none"
    # every weight of the file is used, only the 64 mask buffers are dropped
    sd = raw["ecg"]
    assert sum(v.numel() for k, v in sd.items() if not k.endswith(".tril")) == models["ecg"].num_params()
    assert sum(k.endswith(".tril") for k in sd) == 64


@pytest.mark.parametrize("key, example", [("ecg", "ECG"), ("ppg", "PPG")])
def test_logits_equal_the_reference_forward(raw, models, examples, key, example):
    sd = raw[key]
    tokens = examples[example]
    with torch.no_grad():
        features, ref_weights = reference_forward(sd, tokens)
        ref_logits = features @ sd["lm_head.weight"].T + sd["lm_head.bias"]
        out = models[key](tokens, return_attention=True)
        logits = models[key](tokens)
        # float32: logits reach ~30, so compare relative to their size (the reference itself differs
        # from a float64 computation by ~2e-5 absolute)
        size = ref_logits.abs().max()
        assert (logits - ref_logits).abs().max() <= 1e-5 * size
        assert torch.equal(logits.argmax(-1), ref_logits.argmax(-1))
        for layer in (0, 7):
            for head in (0, 5):
                torch.testing.assert_close(out.attentions[layer][0, head], ref_weights[layer * 8 + head][0])
        if key != "ecg":
            return
        # float64: the same computation to rounding error
        sd64 = {k: v.double() for k, v in sd.items()}
        features64, _ = reference_forward(sd64, tokens)
        ref64 = features64 @ sd64["lm_head.weight"].T + sd64["lm_head.bias"]
        model64 = copy.deepcopy(models[key]).double()
        assert (model64(tokens) - ref64).abs().max() < 1e-9


@pytest.mark.parametrize("key, example, pooled", [("ecg_af", "ECG_AFib1", True), ("ppg_beat", "PPG", False)])
def test_fine_tuned_heads_equal_the_reference(raw, models, examples, key, example, pooled):
    sd = raw[key]
    tokens = examples[example]
    with torch.no_grad():
        features, _ = reference_forward(sd, tokens)
        ref = torch.sigmoid(features @ sd["lm_head.linear1.0.weight"].T + sd["lm_head.linear1.0.bias"])  # (1, T, 1)
        if pooled:
            ref = ref[:, -1, :]  # the AF GUI reads the last token
        prob = models[key].predict_proba(tokens)
    assert prob.shape == ref.shape
    torch.testing.assert_close(prob, ref, atol=1e-6, rtol=1e-5)


def test_next_token_accuracy_on_the_examples(models, examples):
    # measured: ECG 0.601, PPG 0.581 (top-1 over the 499 next-token predictions of each example)
    for key, example, low, high in (("ecg", "ECG", 0.55, 0.65), ("ppg", "PPG", 0.53, 0.63)):
        tokens = examples[example]
        with torch.no_grad():
            predicted = models[key](tokens)[0, :-1].argmax(-1)
        accuracy = (predicted == tokens[0, 1:]).float().mean().item()
        assert low < accuracy < high, (key, accuracy)


def test_af_probabilities_on_the_examples(models, examples):
    # measured: ECG 0.012 normal, 0.991/0.992 AF; PPG 0.011 normal, 0.969/0.981/0.987 AF
    for key, modality in (("ecg_af", "ECG"), ("ppg_af", "PPG")):
        normal = models[key].predict_proba(examples[modality]).item()
        assert normal < 0.05, (key, normal)
        af = [name for name in examples if name.startswith(f"{modality}_AFib")]
        assert len(af) >= 2
        for name in af:
            p = models[key].predict_proba(examples[name]).item()
            assert p > 0.9, (key, name, p)


def test_beat_detector_marks_the_pulse_peaks(models, heartgpt_dir):
    x = np.loadtxt(heartgpt_dir / "example_inputs" / "example_context_PPG_beat_detect_long_input.csv")[:500]
    prob = models["ppg_beat"].predict_proba(heartgpt_tokens(x))[0, :, 0].numpy()
    # the published GUI's peak picking on the per-token output
    beats, _ = find_peaks(prob, height=0.015, width=(None, 20), distance=14)
    pulses, _ = find_peaks(x, distance=20, prominence=0.5 * np.ptp(x))
    assert 7 <= len(pulses) <= 12  # 10 s at a resting heart rate
    for pulse in pulses:
        assert np.min(np.abs(beats - pulse)) <= 3
    assert len(beats) <= len(pulses) + 1


def test_convert_writes_a_small_checkpoint_that_loads_the_same(files, models, examples, tmp_path):
    out = convert_heartgpt(files["ecg_af"], tmp_path / "ecgpt-af")
    assert (out / "model.safetensors").stat().st_size < 2_000_000  # 64 MB of masks gone
    card = (out / "MODEL_CARD.md").read_text()
    assert "ECGPT_AF_1k_iters.zip" in card and "MIT" in card and "last token" in card
    loaded = load_checkpoint(out)
    assert loaded.config == models["ecg_af"].config
    tokens = examples["ECG_AFib2"]
    torch.testing.assert_close(loaded(tokens), models["ecg_af"](tokens), rtol=0, atol=0)


def test_kind_from_argument_and_name(files, tmp_path):
    renamed = tmp_path / "finetuned.zip"
    renamed.write_bytes(files["ppg_beat"].read_bytes())
    with pytest.raises(CheckpointError, match="name holds AF as a word .*convert_heartgpt\\(file, folder, kind="):
        import_heartgpt(renamed)
    # the advice works: the names it gives as examples are read as it says
    for name, kind in (("my_AF_model.zip", "heartgpt-ppg-af"), ("my_beat_model.zip", "heartgpt-ppg-beat")):
        (tmp_path / name).write_bytes(files["ppg_beat"].read_bytes())
        assert import_heartgpt(tmp_path / name).config.name == kind
    model = import_heartgpt(renamed, kind="af")
    assert model.config.name == "heartgpt-ppg-af" and model.config.head_pool == "last"
    with pytest.raises(CheckpointError, match="holds a finetuned head"):
        import_heartgpt(renamed, kind="pretrained")


def test_bad_files_are_refused(tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no weights")
    with pytest.raises(CheckpointError, match="expected one HeartGPT .pth"):
        import_heartgpt(empty)

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"")
    torch.save({"token_embedding_table.weight": torch.zeros(101, 64), "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        import_heartgpt(evil)
    truncated = tmp_path / "truncated.pth"
    buffer = io.BytesIO()
    torch.save({"a": torch.zeros(10)}, buffer)
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        import_heartgpt(truncated)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="not a HeartGPT state_dict"):
        import_heartgpt(other)


def test_a_tensor_of_the_wrong_shape_is_a_checkpoint_error_naming_the_file(files, tmp_path):
    from cardiolens.models.heartgpt_import import read_heartgpt_state_dict

    state = read_heartgpt_state_dict(files["ecg"])
    state["ln_f.weight"] = torch.ones(32)  # the published width is 64
    bad = tmp_path / "resized.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"resized\.pth: a tensor's shape does not fit HeartGPT's architecture"):
        import_heartgpt(bad)
