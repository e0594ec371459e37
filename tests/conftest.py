"""Shared fixtures.

Real-data tests read the archives in ../shared/data. Each archive is unpacked once into
``.cache/shared-data/<archive stem>/`` (atomically: into a temporary folder that is renamed when
complete). When the data is missing such tests fail under ``CI=true`` and skip elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cardiolens.datasets.archive import unpack_once

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CARDIOLENS_SHARED_DATA", REPO.parent / "shared" / "data"))
UNPACK_ROOT = Path(os.environ.get("CARDIOLENS_TEST_CACHE", REPO / ".cache" / "shared-data"))


def _missing(what: str) -> None:
    message = f"real data missing: {what} (expected under {SHARED_DATA})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def shared_file(relative: str) -> Path:
    """Path of a file in ../shared/data, failing (CI) or skipping (elsewhere) when absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        _missing(relative)
    return path


def unpacked(archive: str) -> Path:
    """Folder holding the unpacked content of ``../shared/data/<archive>``."""
    return unpack_once(shared_file(archive), UNPACK_ROOT)


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    """The MIT-BIH Arrhythmia folder (26 records)."""
    return unpacked("mitdb-ds1.zip") / "mit-bih-arrhythmia-database-1.0.0"


@pytest.fixture(scope="session")
def cinc2017_dir() -> Path:
    """The CinC 2017 ``training2017`` folder (5,000 records)."""
    return unpacked("cinc2017-dev.zip") / "training2017"


@pytest.fixture(scope="session")
def ptbxl_dir() -> Path:
    """The PTB-XL subset folder."""
    return unpacked("ptbxl-subset.zip") / "ptb-xl-subset-1.0.3"


@pytest.fixture(scope="session")
def cinc2021_dir() -> Path:
    """The CinC 2021 samples folder (50 records + mapping CSV)."""
    return unpacked("cinc2021-samples.zip") / "cinc2021-samples"


@pytest.fixture(scope="session")
def cpsc2018_dir() -> Path:
    """The original CPSC 2018 ``.mat`` samples (10 records, no labels)."""
    return unpacked("cinc2021-samples.zip") / "cpsc2018-samples"


@pytest.fixture(scope="session")
def bidmc_dir() -> Path:
    """The BIDMC PPG and Respiration folder (53 records)."""
    return unpacked("bidmc.zip") / "bidmc-1.0.0"


@pytest.fixture(scope="session")
def heartgpt_dir() -> Path:
    """The folder of published HeartGPT checkpoints and example inputs."""
    path = shared_file("heartgpt")
    return path
