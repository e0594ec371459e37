"""Writing outputs safely: files written whole or not at all (a temporary file beside the target, then
one rename), and output paths checked before the work that fills them.

A run killed mid-write (a full disk, Ctrl-C, a cluster pre-emption) then leaves the previous
version, never half a JSON or a truncated archive that a resumed run would trip over; an ``--out``
that names a file where a folder belongs (or the reverse) is refused before minutes of work, not after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.errors import CardiolensError


def _temporary(path: Path, suffix: str = ".tmp") -> Path:
    # the process id keeps two processes writing the same file (DDP ranks, parallel jobs) apart
    return path.with_name(f".{path.name}.{os.getpid()}{suffix}")


def write_json(path: str | Path, value: Any, *, default: Callable[[Any], Any] = str) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    path = Path(path)
    tmp = _temporary(path)
    tmp.write_text(json.dumps(value, indent=2, default=default) + "\n")
    os.replace(tmp, path)


def write_npz(path: str | Path, **arrays: Any) -> None:
    """``np.savez`` to ``path`` atomically (the temporary name ends in .npz so NumPy adds nothing)."""
    path = Path(path)
    tmp = _temporary(path, ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def output_folder(path: str | Path, *, create: bool = True) -> Path:
    """``path`` as a folder to write into, created with its parents unless ``create`` is False.

    Raises:
        CardiolensError: ``path`` (or a folder above it) is an existing file.
    """
    path = Path(path)
    for part in (path, *path.parents):
        if part.is_symlink() and not part.exists():
            raise CardiolensError(f"{path}: {part} is a link to nothing (a broken symbolic link); give a folder")
        if part.exists() and not part.is_dir():
            where = "" if part == path else f" (inside {part}, which is a file)"
            raise CardiolensError(f"{path}: the output goes into a folder, and this is a file{where}; give a folder")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def output_file(path: str | Path, *, create_parents: bool = True) -> Path:
    """``path`` as a file to write, its folder created unless ``create_parents`` is False.

    Raises:
        CardiolensError: ``path`` is an existing folder, or a folder above it is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise CardiolensError(f"{path}: is a folder; give the name of the file to write (e.g. {path / 'out.csv'})")
    output_folder(path.parent, create=create_parents)
    return path
