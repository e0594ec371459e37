"""Window cache: content, rebuild only on change, atomic builds, bad settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cardiolens.datasets import MITBIH, CinC2017, WindowCache, build_window_cache
from cardiolens.errors import DatasetError, RecordError

SETTINGS = {"fs": 100, "window_seconds": 2.0, "stride_seconds": 1.0, "progress": False}


def test_windows_index_and_content(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017)
    cache = build_window_cache(db, tmp_path / "cache", **SETTINGS)
    assert cache.built
    # 300 Hz records of 10 s, 7 s, 1.5 s and 6 s -> 100 Hz; 2 s windows every 1 s: 9 + 6 + 0 + 5
    assert cache.windows.shape == (20, 1, 200) and cache.windows.dtype == np.float32
    assert cache.index.groupby("record_id").size().to_dict() == {"A00001": 9, "A00002": 6, "A00004": 5}
    assert cache.meta["too_short"] == ["A00003"]
    assert cache.leads == ["ECG"] and cache.fs == 100 and cache.window_samples == 200
    assert cache.index["start"].tolist()[:3] == [0, 100, 200]
    assert (cache.patient_ids == cache.record_ids).all()
    # the fixture is a 5 Hz sine of 0.5 mV: a window in the middle of A00001 (start 4 s) shows it at 100 Hz
    i = int(np.flatnonzero((cache.record_ids == "A00001") & (cache.index["start"].to_numpy() == 400))[0])
    t = (400 + np.arange(200)) / 100
    np.testing.assert_allclose(cache[i][0], 0.5 * np.sin(2 * np.pi * 5 * t), atol=0.01)
    # read back from disk, memory-mapped
    again = WindowCache(tmp_path / "cache")
    assert isinstance(again.windows, np.memmap) and not again.built
    np.testing.assert_array_equal(np.asarray(again.windows), np.asarray(cache.windows))
    assert list(again.select(["A00004"])) == list(range(15, 20))
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert meta["settings"]["stride_samples"] == 100 and len(meta["fingerprint"]) == 64


def test_rebuild_only_when_settings_or_inputs_change(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017)
    out = tmp_path / "cache"
    first = build_window_cache(db, out, **SETTINGS)
    mtime = (out / "windows.npy").stat().st_mtime_ns
    same = build_window_cache(db, out, **SETTINGS)
    assert not same.built and same.meta["build_id"] == first.meta["build_id"]
    assert (out / "windows.npy").stat().st_mtime_ns == mtime

    changed = build_window_cache(db, out, **{**SETTINGS, "stride_seconds": 2.0})
    assert changed.built and changed.meta["build_id"] != first.meta["build_id"]
    assert len(changed) == 5 + 3 + 3

    again = build_window_cache(db, out, **{**SETTINGS, "stride_seconds": 2.0})
    assert not again.built
    # an input file changes (same size, new modification time): rebuilt
    dat = tiny_cinc2017 / "A00002.dat"
    stat = dat.stat()
    os.utime(dat, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = build_window_cache(CinC2017(tiny_cinc2017), out, **{**SETTINGS, "stride_seconds": 2.0})
    assert touched.built and touched.meta["build_id"] != again.meta["build_id"]
    forced = build_window_cache(db, out, **{**SETTINGS, "stride_seconds": 2.0}, force=True)
    assert forced.built
    # the catalogue groups two records as one patient now (as BIDMC's MIMIC II subjects): rebuilt,
    # so the index that patient-wise splits read carries the new patient ids
    regrouped = CinC2017(tiny_cinc2017)
    regrouped.records.loc[regrouped.records["record_id"] == "A00002", "patient_id"] = "A00001"
    moved = build_window_cache(regrouped, out, **{**SETTINGS, "stride_seconds": 2.0})
    assert moved.built and set(moved.index.loc[moved.index["record_id"] == "A00002", "patient_id"]) == {"A00001"}


def test_failed_build_leaves_no_half_cache(tiny_cinc2017: Path, tmp_path: Path, monkeypatch) -> None:
    db = CinC2017(tiny_cinc2017)
    out = tmp_path / "caches" / "cinc"
    original_load = CinC2017.load

    def failing_load(self, record_id, **kwargs):
        if record_id == "A00002":
            raise RecordError("simulated read failure", "A00002.hea")
        return original_load(self, record_id, **kwargs)

    monkeypatch.setattr(CinC2017, "load", failing_load)
    with pytest.raises(RecordError, match="simulated read failure"):
        build_window_cache(db, out, **SETTINGS)
    assert not out.exists() and list((tmp_path / "caches").iterdir()) == []

    monkeypatch.setattr(CinC2017, "load", original_load)
    good = build_window_cache(db, out, **SETTINGS)
    monkeypatch.setattr(CinC2017, "load", failing_load)
    with pytest.raises(RecordError):
        build_window_cache(db, out, **{**SETTINGS, "window_seconds": 1.0})
    kept = WindowCache(out)  # the previous cache is intact
    assert kept.meta["build_id"] == good.meta["build_id"] and len(kept) == 20
    assert sorted(p.name for p in (tmp_path / "caches").iterdir()) == ["cinc"]

    skipped = build_window_cache(db, tmp_path / "skip", **SETTINGS, on_error="skip")
    assert "simulated read failure" in skipped.meta["skipped"]["A00002"]
    assert "A00002" not in set(skipped.record_ids) and len(skipped) == 14


def test_bad_settings_and_folders(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017)
    with pytest.raises(DatasetError, match="below fs/2"):
        build_window_cache(db, tmp_path / "c", **SETTINGS, bandpass=(0.5, 60.0))
    with pytest.raises(DatasetError, match="normalize"):
        build_window_cache(db, tmp_path / "c", **SETTINGS, normalize="robust")
    with pytest.raises(DatasetError, match="no record 'A09999'"):
        build_window_cache(db, tmp_path / "c", **SETTINGS, record_ids=["A09999"])
    with pytest.raises(RecordError, match="no lead named 'II'"):
        build_window_cache(db, tmp_path / "c", **SETTINGS, leads=["II"])
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="is not a window cache; refusing to overwrite"):
        build_window_cache(db, precious, **SETTINGS)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(DatasetError, match="not a window cache") as info:
        WindowCache(tmp_path / "nothing")
    assert str(tmp_path / "nothing") in str(info.value)
    with pytest.raises(DatasetError, match="no windows from 1 records"):
        build_window_cache(db, tmp_path / "c", **SETTINGS, record_ids=["A00003"])
    assert not (tmp_path / "c").exists()


def test_bandpass_and_zscore(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017)
    cache = build_window_cache(db, tmp_path / "z", **SETTINGS, bandpass=(1.0, 20.0), normalize="zscore")
    x = np.asarray(cache.windows, dtype=np.float64)
    np.testing.assert_allclose(x.mean(axis=-1), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=-1), 1, atol=1e-4)
    # a 5 Hz sine passes a 1-20 Hz band: away from the record's edges (filter transients), each
    # z-scored window is a sine of amplitude sqrt(2)
    middle = (cache.record_ids == "A00001") & np.isin(cache.index["start"].to_numpy(), [200, 300, 400, 500, 600])
    np.testing.assert_allclose(np.abs(x[middle]).max(axis=-1), np.sqrt(2), atol=0.05)
    assert cache.settings["bandpass"] == [1.0, 20.0] and cache.settings["filter"]


@pytest.mark.realdata
def test_mitbih_record_cache(mitdb_dir: Path, tmp_path: Path) -> None:
    db = MITBIH(mitdb_dir)
    cache = build_window_cache(
        db, tmp_path / "mit", fs=100, window_seconds=10, leads=["MLII"], record_ids=["101"], progress=False
    )
    # 650000 samples at 360 Hz -> 180556 at 100 Hz -> 180 whole 10 s windows
    assert cache.windows.shape == (180, 1, 1000)
    assert cache.index["start_s"].iloc[-1] == 1790.0
    record = db.load(101, leads=["MLII"])
    # the cached window follows the record (low-frequency content survives resampling)
    coarse = record.signal[0, 36000:39600].reshape(-1, 36).mean(axis=1)
    np.testing.assert_allclose(cache[10][0].reshape(-1, 10).mean(axis=1), coarse, atol=0.15)


@pytest.mark.parametrize("size", [1000, 50])  # cut in the data, cut inside the .npy header
def test_truncated_windows_are_a_clear_error_and_rebuilt(tiny_cinc2017: Path, tmp_path: Path, size: int) -> None:
    db = CinC2017(tiny_cinc2017)
    out = tmp_path / "cache"
    first = build_window_cache(db, out, **SETTINGS)
    with open(out / "windows.npy", "r+b") as f:
        f.truncate(size)
    with pytest.raises(DatasetError, match="windows.npy: corrupted cache"):
        WindowCache(out)
    again = build_window_cache(db, out, **SETTINGS)  # no force needed
    assert again.built and again.meta["build_id"] != first.meta["build_id"] and len(again) == 20
    (out / "index.csv").write_text("")
    with pytest.raises(DatasetError, match="index.csv: corrupted cache"):
        WindowCache(out)
    assert build_window_cache(db, out, **SETTINGS).built


def test_unreadable_meta_is_rebuilt_only_in_a_cache_folder(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017)
    out = tmp_path / "cache"
    first = build_window_cache(db, out, **SETTINGS)
    (out / "meta.json").write_text('{"format": "cardiolens-win')  # cut short
    with pytest.raises(DatasetError, match="corrupted cache metadata"):
        WindowCache(out)
    again = build_window_cache(db, out, **SETTINGS)
    assert again.built and again.meta["build_id"] != first.meta["build_id"]
    # the same damage in a folder that also holds someone else's file: left alone
    (out / "meta.json").write_text("{")
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        build_window_cache(db, out, **SETTINGS)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "windows.npy").is_file()
    # unparsable meta.json beside files that are not a cache's
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text("not json")
    (other / "data.bin").write_bytes(b"\0" * 10)
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        build_window_cache(db, other, **SETTINGS)
    assert sorted(p.name for p in other.iterdir()) == ["data.bin", "meta.json"]
