"""Unpack a dataset archive once, atomically (the tests, the benchmarks and users' scripts share it)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from cardiolens.errors import DatasetError


def unpack_once(archive: str | Path, root: str | Path) -> Path:
    """The folder ``root/<archive stem>`` holding the archive's content, unpacked on first use.

    The zip is extracted into a temporary folder beside the target and renamed into place when
    complete, with a ``.complete`` stamp holding the archive's modification time: an interrupted
    unpack leaves nothing half-written, and a newer archive is unpacked again.

    Raises:
        DatasetError: the archive is missing or is not a readable zip.
    """
    source, root = Path(archive), Path(root)
    if not source.is_file():
        raise DatasetError(f"{source}: archive not found")
    target = root / source.stem
    if _is_current(target, source):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        with zipfile.ZipFile(source) as zf:
            zf.extractall(tmp)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a bad directory, CRC or compressed stream
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{source}: not a readable zip archive ({type(exc).__name__}: {exc})") from None
    except BaseException:  # a full disk, an interrupt: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".complete").write_text(str(source.stat().st_mtime_ns))
    # Several processes may unpack the same archive at once (two benchmark jobs started together):
    # each moves the stale copy aside under a name of its own, never deletes a folder in place, and
    # keeps whichever complete copy reached ``target`` first.
    if _is_current(target, source):
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=root)) / "old"
    try:
        target.rename(stale)
    except FileNotFoundError:  # nothing there, or another process moved it first
        pass
    try:
        tmp.rename(target)
    except OSError:  # another process's copy got there in between
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_current(target, source):
            raise DatasetError(f"{source}: could not unpack into {target}") from None
    shutil.rmtree(stale.parent, ignore_errors=True)
    return target


def _is_current(target: Path, source: Path) -> bool:
    """Whether ``target`` holds a complete unpack of ``source`` as it is now."""
    stamp = target / ".complete"
    try:
        return stamp.read_text() == str(source.stat().st_mtime_ns)
    except FileNotFoundError:
        return False
