"""The command's rough edges found in an audit: settings bound too early, closed pipes, unreadable tick
labels, option spellings, and error messages that garble or hide what went wrong."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import wfdb

from cardiolens.cli import main
from cardiolens.signal.record import Record

FS = 250


@pytest.fixture(scope="module")
def three_leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s WFDB record simulated with neurokit2: ECG leads II and V1 (II at half size) and a PPG (PLETH)."""
    from cardiolens.analysis import simulated_record

    sim = simulated_record(20.0, fs=FS)
    ecg, ppg = sim.signal[0].astype(np.float64), sim.signal[1].astype(np.float64)
    folder = tmp_path_factory.mktemp("three-leads")
    wfdb.wrsamp(
        "sim",
        fs=FS,
        units=["mV", "mV", "NU"],
        sig_name=["II", "V1", "PLETH"],
        p_signal=np.stack([ecg, 0.5 * ecg, ppg], axis=1),
        fmt=["16"] * 3,
        write_dir=str(folder),
    )
    return folder / "sim.hea"


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("cardiolens: error:") and "Traceback" not in err, err
    return err


# -- 1. finetune binds --out only to settings that could run ------------------------------------------------
def test_finetune_failing_on_a_setting_leaves_out_free_for_the_corrected_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, data = tmp_path / "run", tmp_path / "training2017"
    data.mkdir()
    assert main(["finetune", "cinc2017-af", str(data), "--backbone", "no-such-backbone", "--out", str(out)]) == 2
    assert "no-such-backbone" in _err(capsys)
    assert not (out / "run.json").exists()
    # the corrected backbone is not refused as "other settings"; the next problem, a missing folder, is named
    missing = tmp_path / "no-such-folder"
    assert main(["finetune", "cinc2017-af", str(missing), "--backbone", "resnet1d", "--out", str(out)]) == 2
    err = _err(capsys)
    assert "no such dataset folder" in err and "other settings" not in err
    assert not (out / "run.json").exists()


# -- 2. a closed pipe ends the command quietly ----------------------------------------------------------------
class _ClosedPipe(io.TextIOBase):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no file descriptor")


def test_a_closed_pipe_in_process_returns_1_without_a_traceback(
    three_leads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["info", str(three_leads), "--as_json", "true"]) == 1
    assert not isinstance(sys.stdout, _ClosedPipe)  # pointed at devnull: the exit flush cannot fail again
    sys.stdout.close()


def test_a_reader_that_went_away_gets_no_traceback(three_leads: Path) -> None:
    # `cardiolens info REC | head -0`: the reader closes the pipe before the command writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardiolens.cli", "info", str(three_leads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert "BrokenPipeError" not in err and "Traceback" not in err, err


def test_an_interrupt_says_how_to_resume_without_a_traceback(
    three_leads: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import jsonargparse

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jsonargparse, "auto_cli", interrupted)
    assert main(["info", str(three_leads)]) == 130
    err = capsys.readouterr().err
    assert "interrupted; a training run resumes from its last checkpoint" in err and "Traceback" not in err


# -- 3. time labels readable at any start ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (0.0, 10.0, [str(s) for s in range(10)]),
        (60.0, 10.0, [str(s) for s in range(60, 70)]),
        (60.3, 3.0, ["60.4", "60.8", "61.2", "61.6", "62.0", "62.4", "62.8", "63.2"]),
    ],
)
def test_plot_labels_whole_seconds_not_every_gridline(start: float, duration: float, expected: list[str]) -> None:
    from cardiolens.plot import plot_record

    fs = 100.0
    t = np.arange(int(90 * fs)) / fs
    record = Record((0.5 * np.sin(2 * np.pi * 1.2 * t))[None].astype(np.float32), fs, leads=["II"], units=["mV"])
    fig = plot_record(record, start=start, duration=duration)
    try:
        fig.canvas.draw()
        ax = fig.axes[-1]
        labels = [label.get_text() for label in ax.get_xticklabels() if label.get_text()]
        assert labels == expected
        assert len(ax.get_xticks()) > len(labels)  # the 0.2 s paper grid itself is kept
    finally:
        plt.close(fig)


# -- 4. --leads as a plain name or a comma-separated list -----------------------------------------------
@pytest.mark.parametrize(
    ("given", "drawn"), [("PLETH", ["PLETH"]), ("II,PLETH", ["II", "PLETH"]), ("[V1, II]", ["V1", "II"])]
)
def test_plot_leads_accepts_a_name_a_comma_list_or_a_json_list(
    three_leads: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, drawn: list[str]
) -> None:
    seen = {}

    def fake_plot(record: Record, **kwargs: object) -> None:
        seen["leads"] = list(record.leads)

    monkeypatch.setattr("cardiolens.plot.plot_record", fake_plot)
    assert main(["plot", str(three_leads), "--leads", given, "--beats", "false", "--out", str(tmp_path / "x.png")]) == 0
    assert seen["leads"] == drawn


# -- 5. predict --lead --------------------------------------------------------------------------------------
def test_predict_reads_the_lead_named_by_lead_in_a_file_and_in_a_folder(
    three_leads: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "rhythm-ecg", str(three_leads), "--as_json", "true"]) == 0
    default = json.loads(capsys.readouterr().out)[0]
    assert "lead 'II' used as the model's lead 'I'" in default["preprocessing"]
    for path in (three_leads, three_leads.parent):
        assert main(["predict", "rhythm-ecg", str(path), "--lead", "V1", "--as_json", "true"]) == 0
        (chosen,) = json.loads(capsys.readouterr().out)
        assert "lead 'V1' used as the model's lead 'I'" in chosen["preprocessing"]
    assert main(["predict", "rhythm-ecg", str(three_leads), "--lead", "V9"]) == 2
    assert "no lead named 'V9'" in _err(capsys)


# -- 6. error texts ------------------------------------------------------------------------------------------
def test_generate_errors_read_as_english(three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "rhythm-ecg", str(three_leads), "--lead", "II", "--out", str(tmp_path)]) == 2
    err = _err(capsys)
    assert "without a language-model head" in err and "a no " not in err
    assert main(["generate", "ppgpt-small", str(three_leads), "--lead", "II", "--out", str(tmp_path)]) == 2
    assert "use an ECG model" in _err(capsys)
    assert main(["generate", "ecgpt-small", str(three_leads), "--lead", "PLETH", "--out", str(tmp_path)]) == 2
    assert "use a PPG model" in _err(capsys)


def test_features_and_peaks_name_the_file_once(three_leads: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", str(three_leads), "--lead", "V9"]) == 2
    err = _err(capsys)
    assert err.count("sim.hea") == 1 and "no lead named 'V9'" in err
    assert main(["peaks", str(three_leads), "--method", "foo"]) == 2
    err = _err(capsys)
    assert "sim.hea" in err and "signal array" not in err and "unknown method 'foo'" in err


@pytest.mark.parametrize(("methods", "verb"), [("ig", "ig does not apply"), ("ig,occlusion", "ig, occlusion do not")])
def test_explain_says_which_methods_do_not_apply_to_a_tree_model(
    three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], methods: str, verb: str
) -> None:
    assert main(["explain", "rhythm-ecg-trees", str(three_leads), "--method", methods, "--out", str(tmp_path)]) == 2
    err = _err(capsys)
    assert verb in err and "do(es)" not in err


# -- 7. a window cache that found nothing says why -------------------------------------------------------------
def test_pretrain_on_a_missing_lead_says_which_lead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "training2017"
    root.mkdir()
    for name in ("A00001", "A00002", "A00003", "A00004"):
        signal = 0.5 * np.sin(np.arange(3000) / 10.0)[:, None]
        wfdb.wrsamp(name, fs=300, units=["mV"], sig_name=["ECG"], p_signal=signal, fmt=["16"], write_dir=str(root))
    (root / "REFERENCE.csv").write_text("A00001,N\nA00002,A\nA00003,N\nA00004,O\n")
    args = ["pretrain", "gpt", "--data", f"{root}#V9", "--holdout", "0.5", "--max_steps", "2"]
    args += ["--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    # refused from the first records, before the window cache reads all of them (or processes are launched)
    assert err.startswith("cardiolens: error:") and "no lead V9 in the first 4 record(s)" in err and "ECG" in err
    assert not (tmp_path / "run").exists()


# -- 8. the beat model's explanation names its beat -------------------------------------------------------
def test_explain_of_a_beat_model_names_the_beat_it_explained(
    three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "aami-ecg-trees", str(three_leads), "--start", "10", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    beat = json.loads((tmp_path / "summary.json").read_text())["beat"]
    assert abs(beat["time_s"] - 10) < 1.0 and beat["class"] in ("N", "S", "V", "F")
    assert f"the beat at {beat['time_s']:.3f} s, classified {beat['class']}" in first
    assert "from 0.00 s" not in first


# -- 10. the unknown-model message lists every shipped name -----------------------------------------------------
def test_an_unknown_model_lists_the_tree_models_too(three_leads: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "rhythm-ecgg", str(three_leads)]) == 2
    err = _err(capsys)
    for name in ("rhythm-ecg", "beats-ecg", "ecgpt-small", "ppgpt-small", "rhythm-ecg-trees", "aami-ecg-trees"):
        assert name in err


def test_nan_policy_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.sin(np.arange(5000) / 20)
    x[100:110] = np.nan
    np.save(tmp_path / "gap.npy", x)
    assert main(["info", str(tmp_path / "gap.npy"), "--fs", "250"]) == 2
    assert "(--nan_policy interpolate on the command line)" in _err(capsys)  # the hint names the flag that exists
    assert main(["info", str(tmp_path / "gap.npy"), "--fs", "250", "--nan_policy", "interpolate"]) == 0
    assert "repaired" in capsys.readouterr().out
    assert main(["peaks", str(tmp_path / "gap.npy"), "--fs", "250", "--nan_policy", "interpolate"]) == 0


def test_features_refuse_a_respiration_lead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = np.arange(30 * FS) / FS
    np.savez(tmp_path / "resp.npz", signal=np.sin(2 * np.pi * 0.25 * t)[None], fs=FS, leads=np.array(["RESP"]))
    assert main(["features", str(tmp_path / "resp.npz")]) == 2
    assert "lead RESP is neither ECG nor PPG" in _err(capsys)


# -- the docs audit of 2026-11-25: --out that is a file, a folder or in a missing folder ----------------------
def test_peaks_and_features_write_into_new_folders_and_refuse_a_folder_as_the_file(
    three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nested = tmp_path / "new" / "deeper" / "beats.csv"
    assert main(["peaks", str(three_leads), "--out", str(nested)]) == 0
    assert nested.read_text().startswith("sample,time_s")
    assert main(["features", str(three_leads), "--out", str(tmp_path / "f" / "features.csv")]) == 0
    assert (tmp_path / "f" / "features.csv").read_text().startswith("record,lead")
    capsys.readouterr()
    for command in ("peaks", "features"):
        assert main([command, str(three_leads), "--out", str(tmp_path)]) == 2
        assert "is a folder; give the name of the file to write" in _err(capsys)
    # "-" is standard output, not a file named "-"
    assert main(["peaks", str(three_leads), "--out", "-"]) == 0
    assert capsys.readouterr().out.startswith("sample,time_s") and not Path("-").exists()


def test_plot_prints_the_path_it_wrote(three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["plot", str(three_leads), "--out", str(tmp_path)]) == 0  # a folder: the record's name in it
    assert capsys.readouterr().out.strip() == str(tmp_path / "sim.png") and (tmp_path / "sim.png").is_file()
    assert main(["plot", str(three_leads), "--out", str(tmp_path / "o_plot")]) == 0  # matplotlib adds .png
    assert capsys.readouterr().out.strip() == str(tmp_path / "o_plot.png") and (tmp_path / "o_plot.png").is_file()


@pytest.mark.parametrize("command", ["predict", "explain", "generate", "demo", "finetune", "pretrain"])
def test_an_out_that_is_a_file_is_refused_before_any_work(
    command: str, three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    args = {
        "predict": ["predict", "rhythm-ecg", str(three_leads)],
        "explain": ["explain", "rhythm-ecg", str(three_leads)],
        "generate": ["generate", "ecgpt-small", str(three_leads), "--lead", "II"],
        "demo": ["demo"],
        "finetune": ["finetune", "cinc2017-af", str(tmp_path / "no-data")],
        "pretrain": ["pretrain", "gpt", "--data", str(tmp_path / "no-data")],
    }[command]
    assert main([*args, "--out", str(taken)]) == 2
    assert "the output goes into a folder, and this is a file" in _err(capsys)
    assert taken.read_text() == "keep me"


def test_a_csv_time_column_with_its_unit_in_the_name_gives_the_rate(tmp_path: Path) -> None:
    from cardiolens import load_record

    values = np.sin(np.arange(3600) / 20.0)
    for name in ("time_s", "time_sec", "t_s", "time (s)"):
        path = tmp_path / "t.csv"
        path.write_text(f'"{name}",MLII\n' + "".join(f"{i / 360:.6f},{v}\n" for i, v in enumerate(values)))
        record = load_record(path)  # it asked for --fs, and with --fs it read the time as a lead
        assert record.fs == 360 and record.leads == ["MLII"], name
        assert load_record(path, fs=360).leads == ["MLII"]


def test_plot_keeps_the_format_its_suffix_names_and_a_broken_link_is_named(
    three_leads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["plot", str(three_leads), "--duration", "2", "--out", str(tmp_path / "fig.svg")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "fig.svg")
    assert (tmp_path / "fig.svg").read_text().lstrip().startswith("<?xml")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert main(["peaks", str(three_leads), "--out", str(tmp_path / "dangling" / "beats.csv")]) == 2
    assert "is a link to nothing" in _err(capsys)
