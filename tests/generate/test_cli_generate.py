"""``cardiolens generate``: continue a recording file into a CSV and a PNG, with clear errors for bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiolens.cli import main
from cardiolens.errors import ModelInputError
from cardiolens.generate import continue_signal, generate_file
from cardiolens.models import create_model, load_model, save_checkpoint

FS = 100.0
BLOCK = 128
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ECG language model at 100 Hz, saved as a cardiolens checkpoint."""
    torch.manual_seed(0)
    model = create_model(
        "gpt", n_layer=1, n_head=2, n_embd=16, block_size=BLOCK, dropout=0.0, modality="ECG", fs=FS, signal_levels=101
    )
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "tiny-ecg")


def ecg_like(seconds: float, fs: float = FS) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return (0.1 * np.sin(2 * np.pi * 0.3 * t) + np.exp(-(((t % 0.8) - 0.2) ** 2) / 0.0005)).astype(np.float32)


def write_column_csv(path: Path, values: np.ndarray) -> Path:
    path.write_text("".join(f"{v:.6f}\n" for v in values))
    return path


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_png_and_summary_for_a_cropped_context(checkpoint, tmp_path, capsys):
    # 3 s at the model's rate: longer than the 128-sample window, so the last window is used
    x = ecg_like(3.0) * 1.5 + 0.4  # units with an offset: values must come back in them
    src = write_column_csv(tmp_path / "context.csv", x)
    out = tmp_path / "gen"
    code, stdout, stderr = run(["generate", checkpoint, src, "--steps", 40, "--fs", 100, "--out", out], capsys)
    assert code == 0, stderr
    summary = stdout.strip()
    assert "\n" not in summary  # one line
    assert "tiny-ecg" in summary and "40 steps" in summary and "100 Hz" in summary
    assert "not resampled" in summary and f"cropped to its last {BLOCK} of 300 samples" in summary

    header, rows = read_rows(out / "context_generated.csv")
    assert header == ["part", "sample", "time_s", "token", "value"]
    context = [r for r in rows if r["part"] == "context"]
    generated = [r for r in rows if r["part"] == "generated"]
    assert len(context) == BLOCK and len(generated) == 40 and len(rows) == BLOCK + 40
    # sample indices are the recording's, the continuation follows its end; time at the caller's rate
    samples = [int(r["sample"]) for r in rows]
    assert samples == list(range(300 - BLOCK, 300 + 40))
    assert [float(r["time_s"]) for r in rows] == pytest.approx([s / FS for s in samples])
    # context rows hold the recording's own values and tokens
    np.testing.assert_allclose([float(r["value"]) for r in context], x[-BLOCK:], rtol=1e-5, atol=1e-5)
    window = x[-BLOCK:].astype(np.float64)
    lo, hi = window.min(), window.max()
    tokens = np.array([int(r["token"]) for r in rows])
    assert tokens.min() >= 0 and tokens.max() <= 100
    np.testing.assert_array_equal(tokens[:BLOCK], np.round((window - lo) / (hi - lo) * 100))
    # generated values are their tokens mapped back through the context's scale, in its units
    values = np.array([float(r["value"]) for r in generated])
    assert np.all(values >= lo - 1e-4) and np.all(values <= hi + 1e-4)
    np.testing.assert_allclose(values, lo + tokens[BLOCK:] / 100 * (hi - lo), rtol=1e-5, atol=1e-4)

    png = out / "context_generated.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_npy_context_is_resampled_and_said(checkpoint, tmp_path, capsys):
    x250 = ecg_like(1.0, fs=250.0)  # 250 samples at 250 Hz: 100 at the model's rate, not cropped
    src = tmp_path / "ecg250.npy"
    np.save(src, x250)
    out = tmp_path / "gen"
    code, stdout, stderr = run(
        ["generate", checkpoint, src, "--fs", 250, "--steps", 20, "--greedy", "true", "--out", out], capsys
    )
    assert code == 0, stderr
    assert "resampled from 250 Hz to the model's 100 Hz" in stdout and "not cropped (250 samples)" in stdout
    _, rows = read_rows(out / "ecg250_generated.csv")
    generated = [r for r in rows if r["part"] == "generated"]
    assert sum(r["part"] == "context" for r in rows) == 250
    assert len(generated) == 50  # 20 samples at 100 Hz are 50 at 250 Hz
    assert all(r["token"] == "" for r in rows)  # samples and tokens are at different rates
    assert float(generated[0]["time_s"]) == pytest.approx(1.0)  # sample 250 at 250 Hz
    # the tokens have their own table at the model's rate, their values on the recording's scale
    _, tokens = read_rows(out / "ecg250_tokens.csv")
    assert [r["part"] for r in tokens] == ["context"] * 100 + ["generated"] * 20
    assert [int(r["sample"]) for r in tokens] == list(range(0, 120))  # 100 Hz samples from the recording's start
    assert float(tokens[100]["time_s"]) == pytest.approx(1.0)
    levels = [int(r["token"]) for r in tokens]
    assert min(levels) == 0 and max(levels[:100]) == 100  # the context spans the tokeniser's range
    values = np.array([float(r["value"]) for r in tokens])
    lo, hi = values[levels.index(0)], values[levels.index(100)]  # token k is lo + k / 100 * (hi - lo)
    np.testing.assert_allclose(values, lo + np.array(levels) / 100 * (hi - lo), atol=1e-5)
    assert hi - lo == pytest.approx(np.ptp(x250), rel=0.1)  # the resampled context's range, near the original's
    assert "ecg250_tokens.csv" in stdout


def test_seeded_runs_reproduce_and_match_the_library(checkpoint, tmp_path, capsys):
    src = write_column_csv(tmp_path / "context.csv", ecg_like(1.5))
    args = ["--fs", 100, "--steps", 30, "--top_k", 5, "--temperature", 0.9, "--seed", 7]
    assert run(["generate", checkpoint, src, *args, "--out", tmp_path / "a"], capsys)[0] == 0
    assert run(["generate", checkpoint, src, *args, "--out", tmp_path / "b"], capsys)[0] == 0
    a = (tmp_path / "a" / "context_generated.csv").read_text()
    assert a == (tmp_path / "b" / "context_generated.csv").read_text()
    # the same numbers as the library call the command stands for
    direct = continue_signal(load_model(checkpoint), ecg_like(1.5), fs=FS, steps=30, top_k=5, temperature=0.9, seed=7)
    _, rows = read_rows(tmp_path / "a" / "context_generated.csv")
    tokens = [int(r["token"]) for r in rows if r["part"] == "generated"]
    np.testing.assert_array_equal(tokens, direct.tokens)
    other = run(["generate", checkpoint, src, *args[:-1], 8, "--out", tmp_path / "c"], capsys)
    assert other[0] == 0 and (tmp_path / "c" / "context_generated.csv").read_text() != a


def test_multi_lead_records_need_a_lead(checkpoint, tmp_path, capsys):
    both = np.stack([ecg_like(2.0), -ecg_like(2.0)], axis=1)  # (samples, leads)
    src = tmp_path / "two.csv"
    src.write_text("I,II\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in both))
    code, _, err = run(["generate", checkpoint, src, "--fs", 100, "--steps", 5, "--out", tmp_path], capsys)
    assert code == 2 and str(src) in err and "2 leads" in err
    code, out, err = run(
        ["generate", checkpoint, src, "--fs", 100, "--steps", 5, "--lead", "II", "--out", tmp_path], capsys
    )
    assert code == 0, err
    assert "lead II" in out
    _, rows = read_rows(tmp_path / "two_generated.csv")
    assert float(rows[0]["value"]) == pytest.approx(-ecg_like(2.0)[200 - BLOCK], abs=1e-5)


@pytest.mark.parametrize(
    "values, extra, match",
    [
        (np.full(300, 0.7, dtype=np.float32), [], "flat"),
        (np.where(np.arange(300) == 42, np.nan, ecg_like(3.0)), [], "NaN"),
        (ecg_like(0.5), [], "shorter than the minimum"),
    ],
    ids=["constant", "nan", "too-short"],
)
def test_bad_contexts_are_one_clear_line(checkpoint, tmp_path, capsys, values, extra, match):
    src = tmp_path / "bad.npy"
    np.save(src, np.asarray(values, dtype=np.float32))
    code, out, err = run(["generate", checkpoint, src, "--fs", 100, "--steps", 5, "--out", tmp_path, *extra], capsys)
    assert code == 2 and out == ""
    assert err.startswith("cardiolens: error: ") and err.count("\n") == 1  # one line, no traceback
    assert str(src) in err and match in err
    assert not (tmp_path / "bad_generated.csv").exists()


def test_bad_models_are_one_clear_line(checkpoint, tmp_path, capsys):
    src = write_column_csv(tmp_path / "context.csv", ecg_like(2.0))
    code, _, err = run(["generate", "no-such-model", src, "--fs", 100], capsys)
    assert code == 2 and "no-such-model" in err and "not a shipped model" in err and "Traceback" not in err
    classifier = save_checkpoint(
        create_model("gpt", n_layer=1, n_embd=16, n_head=2, block_size=BLOCK, head="classifier"), tmp_path / "clf"
    )
    code, _, err = run(["generate", classifier, src, "--fs", 100], capsys)
    assert code == 2 and str(classifier) in err and "classifier head" in err and err.count("\n") == 1
    code, _, err = run(["generate", checkpoint, src, "--fs", 100, "--steps", 0], capsys)
    assert code == 2 and "steps" in err
    code, _, err = run(["generate", checkpoint, src, "--fs", 100, "--temperature", -1], capsys)
    assert code == 2 and "temperature" in err


def test_generate_file_refuses_a_classifier_model_object():
    with pytest.raises(ModelInputError, match="classifier head"):
        generate_file(create_model("heartgpt-ecg-af"), "unused.csv", steps=5)


@pytest.mark.realdata
def test_heartgpt_ecg_continues_the_published_example(heartgpt_dir, tmp_path, capsys):
    weights = heartgpt_dir / "ECGPT_560k_iters.zip"
    src = heartgpt_dir / "example_inputs" / "example_context_ECG.csv"
    out = tmp_path / "gen"
    code, stdout, stderr = run(["generate", weights, src, "--steps", 50, "--greedy", "true", "--out", out], capsys)
    assert code == 0, stderr
    assert "heartgpt-ecg" in stdout and "50 steps" in stdout and "not resampled" in stdout
    assert "not cropped (500 samples)" in stdout
    x = np.loadtxt(src)
    _, rows = read_rows(out / "example_context_ECG_generated.csv")
    assert [r["part"] for r in rows] == ["context"] * 500 + ["generated"] * 50
    # HeartGPT's tokens of its own example (min-max of the 500 samples to 0..100, rounded)
    tokens = np.array([int(r["token"]) for r in rows])
    np.testing.assert_array_equal(tokens[:500], np.round((x - x.min()) / (x.max() - x.min()) * 100))
    # greedy: exactly the tokens of the library's generation with the same published weights
    direct = continue_signal(load_model(weights), x, fs=100, steps=50, greedy=True)
    np.testing.assert_array_equal(tokens[500:], direct.tokens)
    # a plausible ECG: within the context's range, with an R peak (top 20% of it) in the next 0.5 s
    values = np.array([float(r["value"]) for r in rows[500:]])
    assert x.min() - 1e-6 <= values.min() and values.max() <= x.max() + 1e-6
    assert values.max() > x.min() + 0.8 * (x.max() - x.min())
    assert (out / "example_context_ECG_generated.png").read_bytes()[:8] == PNG_MAGIC
    # HeartGPT's fine-tuned AF model is a classifier: refused by name, exit 2, no traceback
    af = heartgpt_dir / "ECGPT_AF_1k_iters.zip"
    code, _, err = run(["generate", af, src, "--steps", 5, "--out", out], capsys)
    assert code == 2 and str(af) in err and "classifier head" in err and "Traceback" not in err


def test_generate_fills_missing_samples_when_asked(checkpoint: Path, tmp_path: Path, capsys) -> None:
    x = ecg_like(12.0)
    x[200:204] = np.nan
    np.save(tmp_path / "gaps.npy", x)
    args = ["generate", checkpoint, tmp_path / "gaps.npy", "--fs", FS, "--steps", 10]
    code, _, err = run([*args, "--out", tmp_path / "a"], capsys)
    assert code != 0 and "--nan_policy interpolate" in err
    code, _, _ = run([*args, "--out", tmp_path / "b", "--nan_policy", "interpolate"], capsys)  # the flag it names
    assert code == 0 and (tmp_path / "b" / "gaps_generated.csv").is_file()


def test_the_summary_says_how_the_continuation_was_sampled(checkpoint, tmp_path, capsys):
    src = write_column_csv(tmp_path / "context.csv", ecg_like(1.0))
    args = ["generate", checkpoint, src, "--steps", 10, "--fs", 100, "--seed", 3, "--out", tmp_path / "gen"]
    code, stdout, stderr = run([*args, "--temperature", 0.7, "--top_k", 5], capsys)
    assert code == 0, stderr
    assert "sampled (temperature 0.7, among the 5 most likely tokens, seed 3)" in stdout
    code, stdout, stderr = run(args, capsys)
    assert code == 0, stderr
    assert "sampled (temperature 1, seed 3)" in stdout
