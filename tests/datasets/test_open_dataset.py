"""open_dataset recognises each layout by its files; summary() is plain JSON for `cardiolens info`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cardiolens.datasets import (
    BIDMC,
    CPSC2018,
    MITBIH,
    PTBXL,
    CinC2017,
    CinC2021,
    detect_dataset,
    open_dataset,
)
from cardiolens.errors import DatasetError

REAL = {
    "ptbxl_dir": (PTBXL, 500),
    "cinc2017_dir": (CinC2017, 5000),
    "cinc2021_dir": (CinC2021, 50),
    "cpsc2018_dir": (CPSC2018, 10),
    "mitdb_dir": (MITBIH, 26),
    "bidmc_dir": (BIDMC, 53),
}


@pytest.mark.realdata
@pytest.mark.parametrize("fixture", list(REAL))
def test_real_folders_are_recognised_and_summarised(fixture: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(fixture)
    cls, count = REAL[fixture]
    db = open_dataset(folder)
    assert type(db) is cls and len(db) == count
    summary = json.loads(json.dumps(db.summary()))  # plain JSON values only
    assert summary["records"] == count and summary["root"] == str(folder)
    assert summary["patients"] == db.n_patients and summary["fs"]
    # the folder holding an unpacked archive's single dataset folder is opened too (the CinC 2021
    # archive holds two datasets: see test_folder_with_two_datasets_is_ambiguous)
    if folder.parent.name != "cinc2021-samples":
        assert type(open_dataset(folder.parent)) is cls


@pytest.mark.realdata
def test_real_summaries_state_the_facts(ptbxl_dir: Path, mitdb_dir: Path, cinc2021_dir: Path) -> None:
    ptbxl = open_dataset(ptbxl_dir).summary()
    assert ptbxl["splits"] == {"train": 353, "val": 81, "test": 66} and ptbxl["fs"] == [100]
    assert ptbxl["labels"]["superdiagnostic"]["NORM"] > ptbxl["labels"]["superdiagnostic"]["MI"]
    assert open_dataset(ptbxl_dir, fs=500, missing="drop").summary()["records"] == 50
    mit = open_dataset(mitdb_dir).summary()
    assert mit["fs"] == [360] and mit["paced"] == ["102", "104", "107", "217"]
    assert sum(mit["beats_aami"].values()) > 50000
    assert open_dataset(cinc2021_dir).summary()["sources"] == {"Georgia": 20, "Ningbo": 20, "PTB-XL": 10}


@pytest.mark.realdata
def test_folder_with_two_datasets_is_ambiguous(cinc2021_dir: Path) -> None:
    with pytest.raises(DatasetError, match="holds several datasets"):
        open_dataset(cinc2021_dir.parent)


def test_fixtures_are_recognised(tiny_ptbxl: Path, tiny_cinc2017: Path, tiny_mitbih: Path) -> None:
    assert detect_dataset(tiny_ptbxl) == "ptbxl"
    assert detect_dataset(tiny_cinc2017) == "cinc2017"
    assert detect_dataset(tiny_mitbih) == "mitbih"
    assert isinstance(open_dataset(tiny_cinc2017), CinC2017)
    # the three fixtures share one parent folder: opening it names them all
    with pytest.raises(DatasetError, match=r"holds several datasets \(.*training2017 \(cinc2017\)"):
        open_dataset(tiny_cinc2017.parent)
    assert open_dataset(tiny_mitbih).summary()["beats_aami"]["Q"] == 6


def test_unknown_empty_and_missing_folders(tmp_path: Path, tiny_ptbxl: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="not a dataset layout cardiolens knows") as info:
        open_dataset(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "file.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="is a file"):
        open_dataset(tmp_path / "file.csv")
    # a PTB-XL folder that lost its statements table is recognised, and the error says what is missing
    (tiny_ptbxl / "scp_statements.csv").unlink()
    with pytest.raises(DatasetError, match=r"not a PTB-XL folder: missing scp_statements\.csv"):
        open_dataset(tiny_ptbxl)


def test_a_folder_copied_from_a_dataset_keeps_working(tiny_mitbih: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_mitbih, copy)
    db = open_dataset(copy)
    assert db.root == copy and db.load("100").fs == 360


def test_tasks_find_the_dataset_inside_an_unpacked_folder(tiny_cinc2017: Path) -> None:
    from cardiolens.datasets import dataset_root
    from cardiolens.tasks.suite import load_task_data

    outer = tiny_cinc2017.parent  # holds training2017/ and nothing else that is a dataset
    assert dataset_root(outer) == tiny_cinc2017 and dataset_root(tiny_cinc2017) == tiny_cinc2017
    data = load_task_data("cinc2017-rhythm", outer, cache_dir=outer / "cache", progress=False)
    assert sorted(data.item_ids.tolist()) == ["A00001", "A00002", "A00003", "A00004"]
