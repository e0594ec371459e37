"""unpack_once: unpacked once, again when the archive changes, clear errors for bad archives."""

from __future__ import annotations

import multiprocessing
import os
import zipfile
from pathlib import Path

import pytest

from cardiolens.datasets.archive import unpack_once
from cardiolens.errors import DatasetError


def test_unpacks_once_and_again_when_the_archive_changes(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("folder/a.txt", "one")
    target = unpack_once(archive, tmp_path / "cache")
    assert target == tmp_path / "cache" / "data" and (target / "folder" / "a.txt").read_text() == "one"
    (target / "folder" / "marker").write_text("kept while the archive is unchanged")
    assert (unpack_once(archive, tmp_path / "cache") / "folder" / "marker").exists()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("folder/a.txt", "two")
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    again = unpack_once(archive, tmp_path / "cache")
    assert (again / "folder" / "a.txt").read_text() == "two" and not (again / "folder" / "marker").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["data"]  # no temporary folder left


def test_missing_and_corrupted_archives(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="archive not found"):
        unpack_once(tmp_path / "nope.zip", tmp_path / "cache")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a readable zip"):
        unpack_once(bad, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def _unpack_and_count(archive: str, root: str) -> int:
    target = unpack_once(archive, root)
    return sum(1 for p in target.rglob("*.txt"))


def test_processes_unpacking_a_changed_archive_at_once_all_get_a_complete_copy(tmp_path: Path) -> None:
    # the race seen with two benchmark jobs: both find the copy stale, both unpack, both replace it
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(2000):
            zf.writestr(f"folder/{i}.txt", "x" * 100)
    root = tmp_path / "cache"
    unpack_once(archive, root)
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))  # now stale
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        counts = pool.starmap(_unpack_and_count, [(str(archive), str(root))] * 4)
    assert counts == [2000] * 4
    assert sum(1 for _ in (root / "data").rglob("*.txt")) == 2000
    assert [p.name for p in root.iterdir()] == ["data"]  # neither temporary nor stale folders left


def test_a_zip_with_a_damaged_compressed_member_is_named_and_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", "signal " * 5000)
    raw = bytearray(archive.read_bytes())
    start = 30 + len("a.txt")  # the member's data, after its local header: the deflate block's code table
    raw[start : start + 30] = bytes(range(30))  # zlib fails on it, before any CRC check
    archive.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"data\.zip: not a readable zip archive"):
        unpack_once(archive, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())
