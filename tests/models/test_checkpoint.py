"""The checkpoint format: round trips for every preset, atomic writes, and clear errors for bad folders."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from cardiolens.errors import CheckpointError
from cardiolens.models import create_model, list_models, load_checkpoint, read_checkpoint_config, save_checkpoint


def _tokens(model, t: int = 10) -> torch.Tensor:
    return torch.randint(0, model.config.vocab_size, (2, t), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def small(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = create_model("gpt", n_layer=2, block_size=32).eval()
    return model, save_checkpoint(model, tmp_path / "ckpt", card="# tiny\n")


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("resnet1d")])
def test_round_trip_gives_the_same_outputs(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    path = save_checkpoint(model, tmp_path / name)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    tokens = _tokens(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), model(tokens), rtol=0, atol=0)
    if model.config.tie_weights:
        assert loaded.head.fc.weight is loaded.wte.weight


def test_card_and_zip(small, tmp_path):
    model, path = small
    assert (path / "MODEL_CARD.md").read_text() == "# tiny\n"
    assert load_checkpoint(path).card == "# tiny\n"
    archive = tmp_path / "ckpt.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in path.iterdir():
            zf.write(f, f"ckpt/{f.name}")
    loaded = load_checkpoint(archive)
    tokens = _tokens(model)
    torch.testing.assert_close(loaded(tokens), model(tokens))
    assert read_checkpoint_config(archive)["architecture"] == "gpt"


def test_loading_never_unpickles(small, monkeypatch):
    model, path = small

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load_checkpoint")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = load_checkpoint(path)
    torch.testing.assert_close(loaded(_tokens(model)), model(_tokens(model)))


def test_save_is_atomic_and_refuses_to_clobber(small):
    model, path = small
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(model, path)
    before = (path / "model.safetensors").read_bytes()
    torch.nn.init.normal_(model.wte.weight)
    save_checkpoint(model, path, overwrite=True)
    assert (path / "model.safetensors").read_bytes() != before
    assert not (path / "MODEL_CARD.md").exists()  # the new checkpoint replaced the old folder whole
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]  # no temporary folders left
    plain = path.parent / "notes"
    plain.mkdir()
    with pytest.raises(CheckpointError, match="not a cardiolens checkpoint folder"):
        save_checkpoint(model, plain, overwrite=True)


def test_failed_save_leaves_no_trace(small, monkeypatch):
    model, path = small
    import cardiolens.models.checkpoint as ckpt

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path.parent / "other")
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


def test_folder_that_is_not_ours(tmp_path):
    (tmp_path / "weights.pth").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a cardiolens checkpoint.*import_heartgpt"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="does not describe a cardiolens checkpoint"):
        load_checkpoint(other)


def _edit_config(path: Path, **changes) -> None:
    meta = json.loads((path / "config.json").read_text())
    meta["config"].update(changes)
    (path / "config.json").write_text(json.dumps(meta))


def test_corrupted_weights(small):
    _, path = small
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside a tensor
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)
    # without the recorded hash, the safetensors parser catches a truncated file
    meta = json.loads((path / "config.json").read_text())
    meta.pop("weights_sha256")
    (path / "config.json").write_text(json.dumps(meta))
    (path / "model.safetensors").write_bytes(bytes(data[:1000]))
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors file"):
        load_checkpoint(path)


def test_config_weights_mismatch(small, tmp_path):
    _, path = small
    deeper = tmp_path / "deeper"
    shutil.copytree(path, deeper)
    _edit_config(deeper, n_layer=3)
    with pytest.raises(CheckpointError, match=r"missing tensors \['blocks\.2\."):
        load_checkpoint(deeper)
    wider = tmp_path / "wider"
    shutil.copytree(path, wider)
    _edit_config(wider, mlp_hidden=128)
    with pytest.raises(CheckpointError, match=r"mlp\.fc\.weight \(256, 64\) vs config \(128, 64\)"):
        load_checkpoint(wider)
    unknown = tmp_path / "unknown"
    shutil.copytree(path, unknown)
    _edit_config(unknown, rotary=True)
    with pytest.raises(CheckpointError, match="unknown GPTConfig fields"):
        load_checkpoint(unknown)


def test_vocab_mismatch(small):
    _, path = small
    _edit_config(path, vocab_size=102)
    with pytest.raises(CheckpointError, match="vocabulary mismatch: config.json says vocab_size 102.*101 rows"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", [n for n in list_models() if n.startswith("resnet1d")])
def test_cnn_round_trip_gives_the_same_outputs(tmp_path, name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(2, model.config.in_channels, 300)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / name))
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded(x), model(x))


def test_damaged_files_are_named_for_what_they_are(tmp_path):
    from cardiolens.models import load_model

    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(range(7, 256)) * 20)  # neither a zip nor a pickle
    with pytest.raises(CheckpointError, match="not a PyTorch file .*corrupted"):  # once blamed on pickled code
        load_model(noise)
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.safetensors", b"x" * 4000)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_model(cut)


def test_a_run_folder_names_the_checkpoints_inside_it(tmp_path):
    pretrain = tmp_path / "pretrain"
    for name in ("model", "best"):
        (pretrain / name).mkdir(parents=True)
    for name in ("run.json", "last.pt", "log.jsonl"):
        (pretrain / name).write_text("{}")
    with pytest.raises(CheckpointError, match="a cardiolens run folder: its checkpoints are best/, model/ inside it"):
        load_checkpoint(pretrain)
    finetune = tmp_path / "finetune"
    (finetune / "fold-0" / "model").mkdir(parents=True)
    (finetune / "run.json").write_text("{}")
    with pytest.raises(CheckpointError, match="its checkpoints are fold-0/model/ inside it"):
        load_checkpoint(finetune)
