"""Files written whole or not at all: a temporary file beside the target, then one rename.

A run killed mid-write (a full disk, Ctrl-C, a cluster pre-emption) then leaves the previous
version, never half a JSON or a truncated archive that a resumed run would trip over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


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
