"""Unpack a dataset archive once, atomically (the tests, the benchmarks and users' scripts share it)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
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
    stamp = target / ".complete"
    if stamp.exists() and stamp.read_text() == str(source.stat().st_mtime_ns):
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        with zipfile.ZipFile(source) as zf:
            zf.extractall(tmp)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{source}: not a readable zip archive ({exc})") from None
    (tmp / ".complete").write_text(str(source.stat().st_mtime_ns))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target
