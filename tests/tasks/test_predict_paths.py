"""Predicting a folder: dataset tables beside the records are not records, and one bad file does not
throw away the others' predictions."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import wfdb

from cardiolens.errors import RecordError
from cardiolens.tasks.predict import predict_paths, record_files

FS = 300


def _ecg(seconds: float = 30.0, rate_hz: float = 1.1) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    phase = (t * rate_hz) % 1.0
    return 0.05 * np.sin(2 * np.pi * 0.2 * t) + np.exp(-((phase - 0.3) ** 2) / 0.0004)


def _wfdb_folder(folder):
    for name in ("A1", "A2"):
        wfdb.wrsamp(
            name, fs=FS, units=["mV"], sig_name=["ECG"], p_signal=_ecg()[:, None], fmt=["16"], write_dir=str(folder)
        )
    (folder / "REFERENCE.csv").write_text("A1,N\nA2,A\n")  # PhysioNet's label table
    return folder


def test_a_wfdb_folder_is_its_headers(tmp_path):
    folder = _wfdb_folder(tmp_path)
    assert [p.name for p in record_files([folder])] == ["A1.hea", "A2.hea"]
    predictions = predict_paths("rhythm-ecg-trees", [folder])
    assert [p.source for p in predictions] == [str(folder / "A1.hea"), str(folder / "A2.hea")]


def test_a_file_in_a_folder_that_is_not_a_record_is_skipped_by_name(tmp_path, caplog):
    np.save(tmp_path / "r1.npy", _ecg())
    (tmp_path / "labels.csv").write_text("record,label\nr1,N\n")
    with caplog.at_level(logging.WARNING, logger="cardiolens.tasks.predict"):
        predictions = predict_paths("rhythm-ecg-trees", [tmp_path], fs=FS)
    assert [p.source for p in predictions] == [str(tmp_path / "r1.npy")]
    assert "labels.csv" in caplog.text and "skipped" in caplog.text
    # named itself, the same file is an error; and a folder where nothing works raises the first reason
    with pytest.raises(RecordError, match="labels.csv"):
        predict_paths("rhythm-ecg-trees", [tmp_path / "labels.csv"], fs=FS)
    (tmp_path / "r1.npy").unlink()
    with pytest.raises(RecordError, match="no record could be predicted \\(1 skipped\\); the first: .*labels.csv"):
        predict_paths("rhythm-ecg-trees", [tmp_path], fs=FS)


def test_a_ragged_text_file_in_a_folder_is_skipped_and_the_records_are_still_predicted(tmp_path, caplog):
    np.save(tmp_path / "r1.npy", _ecg())
    (tmp_path / "ragged.csv").write_text("1,2\n3,4\n5,6,7\n8,9\n")
    with caplog.at_level(logging.WARNING, logger="cardiolens.tasks.predict"):
        predictions = predict_paths("rhythm-ecg-trees", [tmp_path], fs=FS)
    assert [p.source for p in predictions] == [str(tmp_path / "r1.npy")]
    assert "ragged.csv" in caplog.text and "not a table of signal values" in caplog.text


def test_predict_record_reads_a_file_it_is_given(tmp_path):
    from cardiolens.tasks.predict import predict_record

    folder = _wfdb_folder(tmp_path)
    from_file = predict_record("rhythm-ecg-trees", folder / "A1.hea")
    assert from_file.source == str(folder / "A1.hea") and set(from_file.probabilities) == {"N", "A", "O", "~"}
    with pytest.raises(RecordError, match="takes a Record or a record's file, got list"):
        predict_record("rhythm-ecg-trees", [1, 2, 3])


def test_a_dataset_root_gives_the_records_its_catalogue_lists(ptbxl_dir):
    # PTB-XL keeps its records two levels down, at two rates; the catalogue lists one of each (100 Hz)
    files = record_files([ptbxl_dir])
    assert len(files) == 500 and all(f.parent.parent.name == "records100" and f.suffix == ".hea" for f in files)
    prediction = predict_paths("rhythm-ecg-trees", [files[0]])[0]
    assert prediction.source == str(files[0])


def test_a_folder_whose_records_are_in_subfolders_names_them(tmp_path):
    (tmp_path / "part1").mkdir()
    np.savetxt(tmp_path / "part1" / "r1.csv", _ecg()[:, None], delimiter=",", header="ECG", comments="")
    (tmp_path / "notes").mkdir()
    with pytest.raises(RecordError, match=r"holds no record.*subfolders part1: pass one of them"):
        record_files([tmp_path])


def test_a_model_trained_on_mlii_reads_lead_ii_of_a_standard_record():
    from cardiolens.signal import Record
    from cardiolens.tasks.predict import load_predictor, model_input

    x = _ecg(12.0)
    record = Record(np.vstack([0.2 * x, x, -x]), fs=FS, leads=["I", "II", "V1"], units=["mV"] * 3)
    signal, notes = model_input(load_predictor("beats-ecg"), record)
    assert "lead 'II' used as the model's lead 'MLII'" in notes
    assert signal.max() > 0.5  # lead II peaks at 1, lead I at 0.2
    # a lead named by the user still wins
    assert "lead 'I' used as the model's lead 'MLII'" in model_input(load_predictor("beats-ecg"), record, lead="I")[1]


def test_a_lead_whose_name_does_not_say_what_it_is_is_reported_as_assumed_ecg(tmp_path):
    from cardiolens.signal import Record
    from cardiolens.tasks.predict import predict_record

    assumed = predict_record("rhythm-ecg-trees", Record(_ecg()[None], fs=FS, leads=["ch0"]))
    assert any("'ch0' does not name its signal: taken to be ECG" in note for note in assumed.preprocessing)
    (tmp_path / "named").mkdir()
    folder = _wfdb_folder(tmp_path / "named")
    named = predict_record("rhythm-ecg-trees", folder / "A1.hea")
    assert not any("does not name its signal" in note for note in named.preprocessing)


def test_predict_out_writes_each_records_preprocessing_and_the_files_it_skipped(tmp_path):
    import pandas as pd

    from cardiolens.cli import main

    folder = tmp_path / "records"
    folder.mkdir()
    np.save(folder / "r1.npy", _ecg())
    (folder / "ragged.csv").write_text("1,2\n3,4\n5,6,7\n")
    main(["predict", "rhythm-ecg-trees", str(folder), "--fs", str(FS), "--out", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert table["source"].tolist() == [str(folder / "r1.npy")]
    assert "resampled from" not in table["preprocessing"][0] and "102 rhythm features" in table["preprocessing"][0]
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped["source"].tolist() == [str(folder / "ragged.csv")]
    assert "not a table of signal values" in skipped["problem"][0]


def test_a_partial_ptbxl_download_gives_the_records_it_has(ptbxl_dir, tmp_path, caplog):
    import shutil

    partial = tmp_path / "ptb-xl"
    partial.mkdir()
    for table in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copy(ptbxl_dir / table, partial / table)
    kept = sorted((ptbxl_dir / "records100" / "00000").glob("*.hea"))[:3]
    (partial / "records100" / "00000").mkdir(parents=True)
    for header in kept:
        for f in ptbxl_dir.joinpath("records100", "00000").glob(header.stem + ".*"):
            shutil.copy(f, partial / "records100" / "00000" / f.name)
    with caplog.at_level(logging.WARNING):
        files = record_files([partial])
    assert [f.name for f in files] == [h.name for h in kept]
    assert "497 of 500 records" in caplog.text and "left out" in caplog.text


def test_evaluate_on_a_folder_of_one_class_scores_what_is_defined_and_a_failure_names_the_class_counts(
    cinc2017_dir, tmp_path, monkeypatch
):
    import shutil

    from cardiolens.errors import CardiolensError
    from cardiolens.tasks import finetune
    from cardiolens.tasks.predict import evaluate

    small = tmp_path / "small"
    small.mkdir()
    rows = [line.split(",") for line in (cinc2017_dir / "REFERENCE.csv").read_text().split()]
    normal = [record for record, label in rows if label == "N"][:2]  # two normal rhythms
    for record in normal:
        for f in cinc2017_dir.glob(record + ".*"):
            shutil.copy(f, small / f.name)
    (small / "REFERENCE.csv").write_text("".join(f"{record},N\n" for record in normal))
    result = evaluate("rhythm-ecg-trees", small, n_resamples=10)
    assert result["items"] == 2 and np.isnan(result["scores"]["macro_auroc"]["value"])  # undefined with one class
    assert 0.0 <= result["scores"]["score"]["value"] <= 1.0

    def failing(*args, **kwargs):
        raise CardiolensError("fmax: no positive labels")

    monkeypatch.setattr(finetune, "summarise", failing)
    with pytest.raises(
        CardiolensError,
        match=r"cannot score 2 items of the model.s test fold .*\(N 2, A 0, O 0, ~ 0\): fmax: .* or pass all_items",
    ):
        evaluate("rhythm-ecg-trees", small, n_resamples=10)


def test_a_record_far_too_short_says_its_length_without_rounding_it_to_zero():
    from cardiolens.signal import Record
    from cardiolens.tasks.predict import predict_record

    with pytest.raises(RecordError, match=r"0\.04 s of signal is shorter than the"):
        predict_record("rhythm-ecg", Record(_ecg()[None, :12], fs=FS, leads=["I"]))


def test_processes_after_the_first_of_a_multi_process_run_keep_their_warnings_to_themselves(
    tmp_path, monkeypatch, caplog
):
    from cardiolens.cli import main

    np.save(tmp_path / "r1.npy", _ecg())
    (tmp_path / "ragged.csv").write_text("1,2\n3,4\n5,6,7\n")
    quiet = logging.getLogger("cardiolens")
    monkeypatch.setattr(quiet, "level", quiet.level)  # restored after the test
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # as Fabric's launcher starts the second process
    with caplog.at_level(logging.WARNING):
        assert main(["predict", "rhythm-ecg-trees", str(tmp_path), "--fs", str(FS)]) == 0
    assert "ragged.csv" not in caplog.text
    monkeypatch.setenv("LOCAL_RANK", "0")
    quiet.setLevel(logging.NOTSET)
    with caplog.at_level(logging.WARNING):
        assert main(["predict", "rhythm-ecg-trees", str(tmp_path), "--fs", str(FS)]) == 0
    assert "ragged.csv" in caplog.text  # the first process says it


def test_class_counts_name_both_sides_of_a_binary_task():
    from types import SimpleNamespace

    from cardiolens.tasks.predict import _class_counts

    binary = SimpleNamespace(kind="binary", classes=("AF",))
    assert _class_counts(binary, SimpleNamespace(targets=np.array([0, 0, 0, 1]))) == {"not AF": 3, "AF": 1}
    rhythm = SimpleNamespace(kind="multiclass", classes=("N", "A"))
    assert _class_counts(rhythm, SimpleNamespace(targets=np.array([0, 1, 1]))) == {"N": 1, "A": 2}
