"""load_record on fixtures each test writes itself, and the input contract for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import wfdb

from cardiolens import RecordError, UnknownFormatError, detect_format, load_record

FS = 250


def _ecg_like(n: int = 2500, channels: int = 2, seed: int = 0) -> np.ndarray:
    """(samples, channels) in mV: 1 Hz spikes on a slow wave plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    base = 0.1 * np.sin(2 * np.pi * 0.3 * t)[:, None] + 0.01 * rng.standard_normal((n, channels))
    base[(np.arange(n) % FS) == 10] += 1.0
    return base


def write_wfdb(
    folder: Path, name: str = "rec", fmt: str = "16", n: int = 2500, channels: int = 2, gain: float = 200.0
) -> Path:
    signal = _ecg_like(n, channels)
    wfdb.wrsamp(
        name,
        fs=FS,
        units=["mV"] * channels,
        sig_name=[f"L{i}" for i in range(channels)],
        p_signal=signal,
        fmt=[fmt] * channels,
        adc_gain=[gain] * channels,
        baseline=[0] * channels,
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


@pytest.mark.parametrize("fmt", ["16", "212", "80"])
def test_wfdb_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    gain = 50.0 if fmt == "80" else 200.0  # 8-bit samples need a coarser gain to hold 1 mV spikes
    hea = write_wfdb(tmp_path, fmt=fmt, gain=gain)
    rec = load_record(hea)
    expected = _ecg_like().T
    quantum = 1 / gain
    assert rec.signal.shape == (2, 2500)
    assert rec.fs == FS and rec.leads == ["L0", "L1"] and rec.units == ["mV", "mV"]
    assert np.max(np.abs(rec.signal - expected)) <= quantum
    # the same record is found from the record name and from the signal file
    assert np.array_equal(load_record(tmp_path / "rec").signal, rec.signal)
    assert np.array_equal(load_record(tmp_path / "rec.dat").signal, rec.signal)


def test_wfdb_lead_selection_and_annotations(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    wfdb.wrann(
        "rec", "atr", np.array([10, 260, 510]), ["N", "V", "+"], aux_note=["", "", "(AFIB"], write_dir=str(tmp_path)
    )
    rec = load_record(hea, leads=["L1"])
    assert rec.leads == ["L1"]
    assert rec.annotations.sample.tolist() == [10, 260, 510]
    assert rec.annotations.symbol == ["N", "V", "+"]
    assert rec.annotations.aux[2] == "(AFIB"
    with pytest.raises(RecordError, match="no lead named 'V9'"):
        load_record(hea, leads=["V9"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="does not exist") as err:
        load_record(tmp_path / "nothing.csv")
    assert "nothing.csv" in str(err.value)


def test_folder_is_not_a_record(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="is a folder"):
        load_record(tmp_path)


def test_unknown_binary_format(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnknownFormatError, match="unknown format") as err:
        load_record(path)
    assert "blob.bin" in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(RecordError, match="empty"):
        load_record(path, fs=100)


def test_truncated_dat(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:3000])
    with pytest.raises(RecordError, match="truncated") as err:
        load_record(hea)
    assert "rec.dat" in str(err.value)


def test_dat_without_header(tmp_path: Path) -> None:
    write_wfdb(tmp_path)
    (tmp_path / "rec.hea").unlink()
    with pytest.raises(RecordError, match="without its .hea"):
        load_record(tmp_path / "rec.dat")


def test_missing_signal_file(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(RecordError, match="missing"):
        load_record(hea)


def _rewrite_header(hea: Path, line_fix) -> None:
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join(line_fix(lines)) + "\n")


def test_header_sample_count_lies(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    # claims fewer samples than the file holds: wfdb alone would silently drop the rest
    _rewrite_header(hea, lambda ls: [ls[0].replace(" 2500", " 1000")] + ls[1:])
    with pytest.raises(RecordError, match="sample count"):
        load_record(hea)


def test_header_format_lies(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path, fmt="16")
    _rewrite_header(hea, lambda ls: [ls[0]] + [ln.replace("rec.dat 16", "rec.dat 212") for ln in ls[1:]])
    with pytest.raises(RecordError, match="format"):
        load_record(hea)


def test_header_gain_lies(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    # gain 200 adu/mV written as 0.2: every value becomes 1000x too large
    _rewrite_header(hea, lambda ls: [ls[0]] + [ln.replace(" 200", " 0.2", 1) for ln in ls[1:]])
    with pytest.raises(RecordError, match="gain"):
        load_record(hea)


def test_corrupted_data_fails_checksum(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    dat = tmp_path / "rec.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 0x40
    dat.write_bytes(bytes(data))
    with pytest.raises(RecordError, match="checksum"):
        load_record(hea)


def test_malformed_header(tmp_path: Path) -> None:
    hea = tmp_path / "bad.hea"
    hea.write_text("this is not a header\n")
    with pytest.raises(RecordError, match="not a WFDB header"):
        load_record(hea)


def test_sampling_rate_contradicting_the_file(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    with pytest.raises(RecordError, match="the file says 250 Hz but fs=500"):
        load_record(hea, fs=500)


@pytest.mark.parametrize("header", [True, False])
def test_csv_with_and_without_header(tmp_path: Path, header: bool) -> None:
    signal = _ecg_like(1000, 2)
    path = tmp_path / "x.csv"
    text = ("II,V1\n" if header else "") + "\n".join(f"{a:.5f},{b:.5f}" for a, b in signal)
    path.write_text(text)
    rec = load_record(path, fs=FS, units="mV")
    assert rec.leads == (["II", "V1"] if header else ["ch0", "ch1"])
    assert rec.fs == FS and rec.n_samples == 1000
    assert np.allclose(rec.signal, signal.T, atol=1e-5)


def test_csv_time_column_gives_sampling_rate(tmp_path: Path) -> None:
    signal = _ecg_like(500, 1)[:, 0]
    t = np.arange(500) / FS
    path = tmp_path / "t.csv"
    path.write_text("time,ecg\n" + "\n".join(f"{a:.6f},{b:.5f}" for a, b in zip(t, signal, strict=True)))
    rec = load_record(path)
    assert rec.fs == pytest.approx(FS, rel=1e-6)
    assert rec.leads == ["ecg"]
    ms = tmp_path / "ms.csv"
    ms.write_text("time_ms;ecg\n" + "\n".join(f"{a * 1000:.3f};{b:.5f}" for a, b in zip(t, signal, strict=True)))
    assert load_record(ms).fs == pytest.approx(FS, rel=1e-6)
    with pytest.raises(RecordError, match="disagrees with the time column"):
        load_record(path, fs=100)
    # 360 Hz stamped to 6 decimals: each step is off, the span is not, and the rate comes out whole
    t360 = np.arange(3600) / 360
    at360 = tmp_path / "t360.csv"
    at360.write_text("time,ecg\n" + "\n".join(f"{a:.6f},0.{i % 7}" for i, a in enumerate(t360)))
    rec360 = load_record(at360)
    assert rec360.fs == 360.0 and rec360.duration == 10.0


def test_csv_headerless_time_column_and_index_column(tmp_path: Path) -> None:
    signal = _ecg_like(400, 1)[:, 0]
    timed = tmp_path / "timed.csv"
    timed.write_text("\n".join(f"{i / FS:.6f},{v:.5f}" for i, v in enumerate(signal)))
    assert load_record(timed).fs == pytest.approx(FS)
    indexed = tmp_path / "indexed.csv"
    indexed.write_text("\n".join(f"{i},{v:.5f}" for i, v in enumerate(signal)))
    rec = load_record(indexed, fs=FS)
    assert rec.n_channels == 1 and np.allclose(rec.signal[0], signal, atol=1e-5)


def test_csv_irregular_time(tmp_path: Path) -> None:
    t = np.cumsum(np.r_[0, np.full(99, 0.004), 0.05, np.full(99, 0.004)])
    path = tmp_path / "irregular.csv"
    path.write_text("time,ecg\n" + "\n".join(f"{a:.6f},{np.sin(a):.5f}" for a in t))
    with pytest.raises(RecordError, match="irregular"):
        load_record(path)


def test_csv_with_one_row_or_time_going_back(tmp_path: Path) -> None:
    one = tmp_path / "one.csv"
    one.write_text("time,II\n0.0,1.0\n")
    with pytest.raises(RecordError, match="one.csv: 1 row of samples: a recording needs at least 2"):
        load_record(one)
    back = tmp_path / "back.csv"
    back.write_text("time,II\n" + "\n".join(f"{0.8 - 0.004 * i:.3f},{i % 7}" for i in range(200)))
    with pytest.raises(RecordError, match="time column 'time' is not strictly increasing"):
        load_record(back)


def test_csv_with_text_in_it(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("II,V1\n0.1,0.2\n0.3,oops\n0.5,0.6\n")
    with pytest.raises(RecordError, match=r"line 3, column 'V1': 'oops' is not a number") as err:
        load_record(path, fs=FS)
    assert "text.csv" in str(err.value)


def test_csv_with_rows_of_different_lengths_or_prose(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(RecordError, match=r"ragged.csv: not a table of signal values.*line 3, saw 3"):
        load_record(ragged, fs=FS)
    prose = tmp_path / "notes.txt"
    prose.write_text("# Notes\n\nThe recording was made, on a Tuesday, at rest.\n")
    with pytest.raises(RecordError, match="notes.txt: not a table of signal values"):
        load_record(prose, fs=FS)


def test_csv_without_sampling_rate(tmp_path: Path) -> None:
    path = tmp_path / "nofs.csv"
    path.write_text("0.1,0.2\n0.3,0.4\n0.2,0.1\n")
    with pytest.raises(RecordError, match="no sampling rate"):
        load_record(path)


def test_nan_refused_or_interpolated(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    values = np.sin(np.arange(100) / 5)
    values[40:43] = np.nan
    path.write_text("ecg\n" + "\n".join("" if np.isnan(v) else f"{v:.6f}" for v in values))
    with pytest.raises(RecordError, match="NaN"):
        load_record(path, fs=100)
    rec = load_record(path, fs=100, nan_policy="interpolate")
    assert np.all(np.isfinite(rec.signal))
    assert rec.metadata["repaired"]["interpolated_samples_per_channel"] == {0: 3}
    assert rec.signal[0, 41] == pytest.approx((values[39] + values[43]) / 2, abs=1e-5)


def test_flat_signal_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.npy"
    np.save(path, np.full((2, 1000), 0.5))
    with pytest.raises(RecordError, match="flat"):
        load_record(path, fs=100)


def test_one_flat_lead_is_kept_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "oneflat.npy"
    data = np.vstack([np.sin(np.arange(1000) / 10), np.zeros(1000)])
    np.save(path, data)
    rec = load_record(path, fs=100, leads=["I", "II"])
    assert rec.metadata["flat_leads"] == ["II"]


def test_empty_signal_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((1, 0)))
    with pytest.raises(RecordError, match="empty"):
        load_record(path, fs=100)


@pytest.mark.parametrize("fs", [0, -100, float("nan")])
def test_invalid_sampling_rate(tmp_path: Path, fs: float) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.sin(np.arange(500) / 5))
    with pytest.raises(RecordError, match="sampling rate"):
        load_record(path, fs=fs)


def test_numpy_orientation_and_npz_metadata(tmp_path: Path) -> None:
    data = _ecg_like(1000, 3)  # (samples, channels): transposed on reading
    np.save(tmp_path / "a.npy", data)
    rec = load_record(tmp_path / "a.npy", fs=FS)
    assert rec.signal.shape == (3, 1000)
    np.savez(tmp_path / "b.npz", signal=data.T, fs=FS, leads=np.array(["I", "II", "III"]), units=np.array(["mV"] * 3))
    rec = load_record(tmp_path / "b.npz")
    assert detect_format(tmp_path / "b.npz") == "npz"
    assert rec.fs == FS and rec.leads == ["I", "II", "III"] and rec.units == ["mV"] * 3
    with pytest.raises(RecordError, match="disagrees"):
        load_record(tmp_path / "b.npz", fs=100)
    with pytest.raises(RecordError, match="pass fs="):
        load_record(tmp_path / "a.npy")


def test_object_arrays_are_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RecordError, match="cannot read NumPy file"):
        load_record(path, fs=100)


def test_cpsc2018_struct_and_bare_mat(tmp_path: Path) -> None:
    data = _ecg_like(5000, 12).T
    struct = {"ECG": {"sex": "Female", "age": 61, "data": data}}
    scipy.io.savemat(tmp_path / "A0001.mat", struct)
    rec = load_record(tmp_path / "A0001.mat")
    assert rec.fs == 500 and rec.leads[:3] == ["I", "II", "III"] and rec.metadata["age"] == 61
    assert np.allclose(rec.signal, data, atol=1e-6)
    scipy.io.savemat(tmp_path / "bare.mat", {"val": (data * 1000).astype(np.int16)})
    with pytest.raises(RecordError, match="carries no sampling rate"):
        load_record(tmp_path / "bare.mat")
    assert load_record(tmp_path / "bare.mat", fs=500).n_channels == 12
    scipy.io.savemat(tmp_path / "other.mat", {"something": np.ones(3)})
    with pytest.raises(UnknownFormatError, match="neither"):
        load_record(tmp_path / "other.mat")


def test_corrupted_mat(tmp_path: Path) -> None:
    path = tmp_path / "broken.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(RecordError, match="cannot read MATLAB file"):
        load_record(path)


def test_heartgpt_context_csv(tmp_path: Path) -> None:
    path = tmp_path / "my_context_PPG.csv"
    path.write_text("\n".join(f"{v:.6f}" for v in np.sin(np.arange(500) / 8)))
    assert detect_format(path) == "heartgpt"
    rec = load_record(path)
    assert rec.fs == 50 and rec.leads == ["PLETH"] and rec.metadata["modality"] == "PPG"
    unnamed = tmp_path / "values.csv"
    unnamed.write_text(path.read_text())
    assert detect_format(unnamed) == "csv"
    with pytest.raises(RecordError, match="no sampling rate"):
        load_record(unnamed)
    # a name that only mentions the modality is not a HeartGPT context: its rate is not assumed
    holter = tmp_path / "holter_ECG_lead2.csv"
    holter.write_text(path.read_text())
    assert detect_format(holter) == "csv"
    with pytest.raises(RecordError, match="no sampling rate"):
        load_record(holter)


def test_csv_without_a_single_digit_is_still_read_as_a_table(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("II\nnan\nNaN\nnan\n")  # a lead that recorded nothing: named as missing, not "unknown format"
    assert detect_format(missing) == "csv"
    with pytest.raises(RecordError, match="signal holds 3 NaN/inf values \\(leads II\\)"):
        load_record(missing, fs=250)
    words = tmp_path / "words.csv"
    words.write_text("time,II\na,b\nc,d\n")
    with pytest.raises(RecordError, match="text where a number belongs \\(line 2, column 'time': 'a'"):
        load_record(words)


def test_named_csv_or_numpy_file_is_read_not_the_wfdb_record_beside_it(tmp_path: Path) -> None:
    write_wfdb(tmp_path, channels=2)
    signal = _ecg_like(1000, 3)
    np.savetxt(tmp_path / "rec.csv", signal, delimiter=",")
    np.save(tmp_path / "rec.npy", signal)
    np.savez(tmp_path / "rec.npz", signal=signal.T, fs=FS)
    assert [detect_format(tmp_path / f"rec.{ext}") for ext in ("csv", "npy", "npz")] == ["csv", "npy", "npz"]
    for ext in ("csv", "npy", "npz"):
        rec = load_record(tmp_path / f"rec.{ext}", fs=FS)
        assert rec.signal.shape == (3, 1000) and rec.source == tmp_path / f"rec.{ext}"
    # the record's own files and its name still open the WFDB record
    for name in ("rec.hea", "rec.dat", "rec"):
        assert detect_format(tmp_path / name) == "wfdb"


def test_header_without_sampling_frequency(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    # 'rec 2' alone: wfdb would read the record at its default 250 Hz without a word
    _rewrite_header(hea, lambda ls: [" ".join(ls[0].split()[:2])] + ls[1:])
    with pytest.raises(RecordError, match="header gives no sampling frequency: add it to the record line") as err:
        load_record(hea)
    assert "rec.hea" in str(err.value)


@pytest.mark.parametrize("declared", [1, 3])
def test_header_signal_count_disagrees_with_signal_lines(tmp_path: Path, declared: int) -> None:
    hea = write_wfdb(tmp_path)
    _rewrite_header(hea, lambda ls: [ls[0].replace("rec 2 ", f"rec {declared} ", 1)] + ls[1:])
    with pytest.raises(RecordError, match=f"header declares {declared} signals? but has 2 signal lines") as err:
        load_record(hea)
    assert "rec.hea" in str(err.value)


def _ann_words(*words: tuple[int, int]) -> bytes:
    """MIT-format annotation bytes from (code, interval) words (WFDB annot(5))."""
    return b"".join(((code << 10) | interval).to_bytes(2, "little") for code, interval in words)


def _ann_skip(interval: int) -> bytes:
    """A SKIP word and its 32-bit interval, high 16-bit word first (PDP-11 order)."""
    value = interval & 0xFFFFFFFF
    return _ann_words((59, 0)) + (value >> 16).to_bytes(2, "little") + (value & 0xFFFF).to_bytes(2, "little")


def test_truncated_or_junk_annotation_file_refused(tmp_path: Path) -> None:
    hea = write_wfdb(tmp_path)
    beats = np.arange(10, 2500, 50)
    wfdb.wrann("rec", "atr", beats, ["N"] * len(beats), write_dir=str(tmp_path))
    atr = tmp_path / "rec.atr"
    whole = atr.read_bytes()
    assert whole.endswith(b"\x00\x00") and load_record(hea).annotations.symbol.count("N") == len(beats)
    junk = np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    cases = [
        (whole[:-2], "does not end with the WFDB end-of-file marker"),
        (whole[: len(whole) // 4 * 2], "does not end with the WFDB end-of-file marker"),
        (whole[:-1], "odd number of bytes"),
        (junk, "not a WFDB annotation file"),
        (_ann_words((1, 500)) + _ann_skip(-300) + _ann_words((1, 0), (0, 0)), "comes before"),
        (_ann_words((1, 1000), (1, 1000), (1, 1000), (0, 0)), "beyond the record's 2500 samples"),
        (_ann_words(*[(54, 10)] * 20, (0, 0)), "undefined annotation code"),
    ]
    for content, message in cases:
        atr.write_bytes(content)
        with pytest.raises(RecordError, match=message) as err:
            load_record(hea)
        assert "rec.atr" in str(err.value)


def test_an_unknown_nan_policy_is_a_clear_error_for_every_reader(tmp_path):
    from cardiolens.errors import CardiolensError

    np.save(tmp_path / "x.npy", np.sin(np.arange(500) / 10.0))
    with pytest.raises(CardiolensError, match="nan_policy must be 'raise' or 'interpolate', got 'bogus'"):
        load_record(tmp_path / "x.npy", fs=100, nan_policy="bogus")


# ---- the reading audit of 2026-11-25: each of these read wrong data or failed without naming the file ----


def test_csv_with_one_row_per_lead_is_refused_not_read_as_thousands_of_leads(tmp_path: Path) -> None:
    for rows in (2, 3):
        path = tmp_path / f"rows{rows}.csv"
        np.savetxt(path, _ecg_like(2500, rows).T, delimiter=",")
        for fs in (None, FS):
            with pytest.raises(RecordError, match="2500 columns but only .* rows: .*transpose"):
                load_record(path, fs=fs)


def test_leads_select_the_named_columns_of_a_headed_csv_or_npz_never_rename_them(tmp_path: Path) -> None:
    data = _ecg_like(1000, 2)
    csv_path = tmp_path / "named.csv"
    np.savetxt(csv_path, data, delimiter=",", header="I,II", comments="")
    np.savez(tmp_path / "named.npz", signal=data.T, fs=FS, leads=np.array(["I", "II"]))
    for path in (csv_path, tmp_path / "named.npz"):
        swapped = load_record(path, fs=FS, leads=["II", "I"])
        assert swapped.leads == ["II", "I"]
        assert np.allclose(swapped.signal, data.T[::-1])  # the data moves with its name
        one = load_record(path, fs=FS, leads=["II"])
        assert one.leads == ["II"] and np.allclose(one.signal[0], data[:, 1])
        with pytest.raises(RecordError, match=r"named\.(csv|npz): no lead named 'V1'; leads are I, II"):
            load_record(path, fs=FS, leads=["V1"])
    # a headerless file names nothing: leads= names its columns
    np.savetxt(tmp_path / "bare.csv", data, delimiter=",")
    assert load_record(tmp_path / "bare.csv", fs=FS, leads=["II", "I"]).leads == ["II", "I"]


def test_index_columns_under_a_header_are_dropped(tmp_path: Path) -> None:
    data = _ecg_like(1000, 2)
    pandas_style = tmp_path / "pandas.csv"  # DataFrame.to_csv: an unnamed index column first
    pandas_style.write_text(",I,II\n" + "".join(f"{i},{a},{b}\n" for i, (a, b) in enumerate(data)))
    rdsamp_style = tmp_path / "rdsamp.csv"  # PhysioNet rdsamp -c -v: quoted names, a sample number column
    rdsamp_style.write_text("'sample #','MLII','V1'\n" + "".join(f"{i + 7},{a},{b}\n" for i, (a, b) in enumerate(data)))
    for path, leads in ((pandas_style, ["I", "II"]), (rdsamp_style, ["MLII", "V1"])):
        rec = load_record(path, fs=FS)
        assert rec.leads == leads
        assert np.allclose(rec.signal, data.T)
    # a column named like an index that holds signal is signal
    signal_named_n = tmp_path / "n.csv"
    signal_named_n.write_text("n,II\n" + "".join(f"{a},{b}\n" for a, b in data))
    assert load_record(signal_named_n, fs=FS).leads == ["n", "II"]


@pytest.mark.parametrize("fs", [360, 300, 128])
def test_csv_time_stamps_rounded_to_a_millisecond_give_the_rate(tmp_path: Path, fs: int) -> None:
    n = 10 * fs
    values = _ecg_like(n, 1)[:, 0]
    seconds = tmp_path / "s.csv"
    seconds.write_text("time,ECG\n" + "".join(f"{i / fs:.3f},{v}\n" for i, v in enumerate(values)))
    millis = tmp_path / "ms.csv"
    millis.write_text("time_ms,ECG\n" + "".join(f"{round(1000 * i / fs)},{v}\n" for i, v in enumerate(values)))
    for path in (seconds, millis):
        assert load_record(path).fs == fs
        assert load_record(path, fs=fs).fs == fs
    # a real gap is still refused: two missing samples are more than the stamps' rounding
    gapped = tmp_path / "gap.csv"
    gapped.write_text("time,ECG\n" + "".join(f"{i / fs:.3f},{v}\n" for i, v in enumerate(values) if i not in (50, 51)))
    with pytest.raises(RecordError, match="irregular"):
        load_record(gapped)


def test_npz_metadata_spellings_and_gain(tmp_path: Path) -> None:
    data = _ecg_like(1000, 2)
    np.savez(tmp_path / "a.npz", signal=data.T, fs=np.array([FS]), leads=np.array("II"), units="mV")
    with pytest.raises(RecordError, match="the .npz names 1 lead for its 2 channels"):
        load_record(tmp_path / "a.npz")  # one name for two leads stays an error
    np.savez(tmp_path / "b.npz", signal=data.T, fs=np.array([FS]), units="mV")
    rec = load_record(tmp_path / "b.npz")
    assert rec.fs == FS and rec.units == ["mV", "mV"]
    counts = np.round(data.T * 200 + 5).astype(np.int16)
    np.savez(tmp_path / "c.npz", signal=counts, fs=FS, units="mV", gain=200.0, baseline=np.array([5, 5]))
    rec = load_record(tmp_path / "c.npz")
    assert np.max(np.abs(rec.signal - data.T)) <= 0.5 / 200 + 1e-9
    np.savez(tmp_path / "d.npz", signal=counts, fs=FS, gain=np.array([200.0, 0.0]))
    with pytest.raises(RecordError, match="'gain' must be finite and non-zero"):
        load_record(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", signal=data.T, fs=np.array([FS, FS]))
    with pytest.raises(RecordError, match="'fs' must be one number"):
        load_record(tmp_path / "e.npz")


def test_a_damaged_npz_member_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, signal=_ecg_like(1000, 2).T, fs=FS)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"\x93NUMPY", raw.index(b"signal.npy")) + 200  # inside the signal's data
    raw[start : start + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordError, match=r"x\.npz: member 'signal' of the \.npz is damaged"):
        load_record(path)


def test_multi_segment_and_multi_frequency_wfdb_records(tmp_path: Path) -> None:
    data = _ecg_like(2500, 2)
    for name, part in (("seg1", data[:1000]), ("seg2", data[1000:])):
        wfdb.wrsamp(
            name, fs=FS, units=["mV"] * 2, sig_name=["I", "II"], p_signal=part, fmt=["16"] * 2,
            adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path),
        )  # fmt: skip
    (tmp_path / "multi.hea").write_text("multi/2 2 250 2500\nseg1 1000\nseg2 1500\n")
    rec = load_record(tmp_path / "multi.hea")
    assert rec.leads == ["I", "II"] and rec.n_samples == 2500 and rec.metadata["segments"] == ["seg1", "seg2"]
    assert np.max(np.abs(rec.signal - data.T)) <= 1 / 200
    (tmp_path / "seg2.dat").unlink()
    with pytest.raises(RecordError, match="seg2"):
        load_record(tmp_path / "multi.hea")
    # lead II stored at 2 samples per frame, with checksums over every stored sample as WFDB defines them
    fast = np.repeat(data[:, 1], 2)
    digital_i = np.round(data[:, 0] * 200).astype(np.int16)
    digital_ii = np.round(fast * 200).astype(np.int16)
    frames = np.concatenate([digital_i[:, None], digital_ii.reshape(-1, 2)], axis=1)
    frames.astype("<i2").tofile(tmp_path / "mf.dat")
    check = [int(d.astype(np.int64).sum()) & 0xFFFF for d in (digital_i, digital_ii)]
    (tmp_path / "mf.hea").write_text(
        f"mf 2 250 2500\nmf.dat 16 200.0(0)/mV 16 0 {digital_i[0]} {check[0]} 0 I\n"
        f"mf.dat 16x2 200.0(0)/mV 16 0 {digital_ii[0]} {check[1]} 0 II\n"
    )
    rec = load_record(tmp_path / "mf.hea")
    assert rec.metadata["averaged_to_frame_rate"] == {"II": 2}
    assert np.max(np.abs(rec.signal - data.T)) <= 1 / 200
    frames[5, 1] += 1  # one changed sample of lead II is still caught
    frames.astype("<i2").tofile(tmp_path / "mf.dat")
    with pytest.raises(RecordError, match="lead II does not match the header's checksum"):
        load_record(tmp_path / "mf.hea")


def test_a_one_sample_record_says_it_is_too_short(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.array([0.5, 0.2])[:, None][:1])
    with pytest.raises(RecordError, match="record has 1 sample: too short"):
        load_record(tmp_path / "one.npy", fs=FS)


def test_variable_layout_segments_gaps_and_segment_checks(tmp_path: Path) -> None:
    data = _ecg_like(2500, 2)
    for name, part, fs in (("seg1", data[:1000], FS), ("seg2", data[1000:], FS), ("fast", data[:1000], 2 * FS)):
        wfdb.wrsamp(
            name, fs=fs, units=["mV"] * 2, sig_name=["I", "II"], p_signal=part, fmt=["16"] * 2,
            adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path),
        )  # fmt: skip
    # MIMIC's layout: a 0-length layout segment naming the signals, then data segments and a gap
    (tmp_path / "lay_layout.hea").write_text(
        "lay_layout 2 250 0\n~ 0 200.0/mV 16 0 0 0 0 I\n~ 0 200.0/mV 16 0 0 0 0 II\n"
    )
    (tmp_path / "var.hea").write_text("var/4 2 250 2600\nlay_layout 0\nseg1 1000\n~ 100\nseg2 1500\n")
    with pytest.raises(RecordError, match="200 NaN/inf values"):
        load_record(tmp_path / "var.hea")  # the gap is missing data, refused unless filled
    rec = load_record(tmp_path / "var.hea", nan_policy="interpolate")
    assert rec.n_samples == 2600 and rec.leads == ["I", "II"]
    assert np.max(np.abs(rec.signal[:, :1000] - data[:1000].T)) <= 1 / 200
    (tmp_path / "fixed_gap.hea").write_text("fixed_gap/3 2 250 2600\nseg1 1000\n~ 100\nseg2 1500\n")
    with pytest.raises(RecordError, match="gap .* fixed-layout"):
        load_record(tmp_path / "fixed_gap.hea")
    (tmp_path / "mixed.hea").write_text("mixed/2 2 250 2000\nseg1 1000\nfast 1000\n")
    with pytest.raises(RecordError, match="segment fast is at 500.* Hz and the record at 250 Hz"):
        load_record(tmp_path / "mixed.hea")
    raw = bytearray((tmp_path / "seg2.dat").read_bytes())
    raw[10] ^= 0x01  # one flipped bit in a segment is caught by that segment's checksum
    (tmp_path / "seg2.dat").write_bytes(bytes(raw))
    (tmp_path / "multi.hea").write_text("multi/2 2 250 2500\nseg1 1000\nseg2 1500\n")
    with pytest.raises(RecordError, match=r"seg2\.hea: lead .* does not match the header's checksum"):
        load_record(tmp_path / "multi.hea")


def test_a_no_data_code_in_a_fast_lead_makes_its_frame_missing(tmp_path: Path) -> None:
    data = _ecg_like(2500, 2)
    digital_i = np.round(data[:, 0] * 200).astype(np.int16)
    digital_ii = np.round(np.repeat(data[:, 1], 2) * 200).astype(np.int16)
    digital_ii[11] = -32768  # WFDB's "no data" in the second sample of frame 5
    frames = np.concatenate([digital_i[:, None], digital_ii.reshape(-1, 2)], axis=1)
    frames.astype("<i2").tofile(tmp_path / "mf.dat")
    (tmp_path / "mf.hea").write_text(
        "mf 2 250 2500\nmf.dat 16 200.0(0)/mV 16 0 0 0 0 I\nmf.dat 16x2 200.0(0)/mV 16 0 0 0 0 II\n"
    )
    rec = load_record(tmp_path / "mf.hea", nan_policy="interpolate")  # averaged in, it read as -81.9 mV
    assert rec.metadata["repaired"]["interpolated_samples_per_channel"] == {1: 1}
    assert abs(rec.signal[1, 5]) < 2


def test_time_stamps_a_dropped_sample_g_format_and_finer_units(tmp_path: Path) -> None:
    values = _ecg_like(3000, 1)[:, 0]
    # 600 Hz in whole ms: steps of 1 and 2 ms, which a missing sample (3 ms) cannot be told from: refused
    stamps = np.round(1000 * np.arange(3000) / 600).astype(int)
    path = tmp_path / "ms600.csv"
    path.write_text("time_ms,ECG\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values, strict=True)))
    with pytest.raises(RecordError, match="irregular"):
        load_record(path)
    # %g prints fewer decimals as the time grows: each stamp is judged at its own resolution
    g = tmp_path / "g.csv"
    np.savetxt(g, np.c_[np.arange(3000) / 360, values], fmt="%g", delimiter=",", header="time,ECG", comments="")
    assert load_record(g).fs == 360
    # micro- and nanoseconds are scaled, not read as seconds
    for name, scale in (("time_us", 1e6), ("timestamp_ns", 1e9), ("Time [µs]", 1e6)):
        p = tmp_path / "fine.csv"
        p.write_text(f"{name},ECG\n" + "".join(f"{int(i * scale / 250)},{v}\n" for i, v in enumerate(values)))
        assert load_record(p).fs == 250, name
        assert load_record(p, fs=250).leads == ["ECG"], name


def test_csv_lead_selection_follows_the_wfdb_rule_and_index_gaps_are_refused(tmp_path: Path) -> None:
    data = _ecg_like(1000, 2)
    path = tmp_path / "two.csv"
    np.savetxt(path, data, delimiter=",", header="I,II", comments="")
    for wanted in (["ii"], [1], ["II"]):
        rec = load_record(path, fs=FS, leads=wanted)
        assert rec.leads == ["II"] and np.allclose(rec.signal[0], data[:, 1])
    assert load_record(path, fs=FS, leads=["II"], units=["mV", "NU"]).units == ["NU"]  # units of the file's columns
    gap = tmp_path / "gap.csv"
    rows = [f"{i},{v}\n" for i, v in enumerate(data[:, 0]) if i != 700]
    gap.write_text("sample,II\n" + "".join(rows))
    with pytest.raises(RecordError, match=r"sample numbers in column 'sample' jump at line 702 \(699 -> 701\)"):
        load_record(gap, fs=FS)
    single_row = tmp_path / "row.csv"
    single_row.write_text(",".join(map(str, data[:, 0])) + "\n")
    with pytest.raises(RecordError, match="1000 columns but only 1 row: .*transpose"):
        load_record(single_row, fs=FS)


def test_npz_lead_selection_comes_before_the_nan_policy_and_checks_the_names(tmp_path: Path) -> None:
    data = _ecg_like(1000, 3).T.copy()
    data[0, 10:20] = np.nan  # gaps in lead I only
    np.savez(tmp_path / "a.npz", signal=data, fs=FS, leads=np.array(["I", "II", "V1"]))
    rec = load_record(tmp_path / "a.npz", leads=["ii", "V1"], nan_policy="interpolate")
    assert rec.leads == ["II", "V1"] and "repaired" not in rec.metadata  # lead I, dropped, was not repaired
    assert load_record(tmp_path / "a.npz", leads=["I"], nan_policy="interpolate").metadata["repaired"]
    np.savez(tmp_path / "b.npz", signal=data[1:], fs=FS, leads=np.array(["I", "II", "V1"]))
    with pytest.raises(RecordError, match="names 3 leads for its 2 channels"):
        load_record(tmp_path / "b.npz", leads=["II"])
    np.savez(tmp_path / "s.npz", signal=np.array(["a", "b", "c"]), fs=FS, gain=200.0)
    with pytest.raises(RecordError, match="array must be numeric, got dtype <U1"):
        load_record(tmp_path / "s.npz")
