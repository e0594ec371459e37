"""What makes two runs the same run, so that the same command resumes one wherever it is typed.

A run folder records the settings it was started with; rerunning the command resumes it only if
nothing that changes what is computed differs. Folder paths are compared as the folders they name
(``runs/x`` typed in the project and ``/home/me/project/runs/x`` are one folder), and where a run or
its cache lives is not part of what it computes (a run folder may be moved or copied and resumed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cardiolens.errors import CardiolensError

# settings that name where things are kept, not what is computed
LOCATION_KEYS = ("out", "cache_dir")


def _folder(text: Any) -> Any:
    """``text`` as an absolute path where it names an existing file or folder (a ``#LEAD`` suffix kept)."""
    if not isinstance(text, str) or not text:
        return text
    path, sep, lead = text.partition("#")
    if not Path(path).exists():
        return text
    return str(Path(path).resolve()) + sep + lead


def comparable(settings: dict[str, Any], path_keys: tuple[str, ...]) -> dict[str, Any]:
    """``settings`` without the :data:`LOCATION_KEYS`, with the values of ``path_keys`` (a path, or a
    list of paths) resolved to absolute paths."""
    out = {k: v for k, v in settings.items() if k not in LOCATION_KEYS}
    for key in path_keys:
        value = out.get(key)
        out[key] = [_folder(v) for v in value] if isinstance(value, list) else _folder(value)
    return out


def check_same_run(
    folder: Path, before: dict[str, Any], now: dict[str, Any], path_keys: tuple[str, ...], ignore: tuple[str, ...] = ()
) -> None:
    """Refuse to resume the run in ``folder`` (started with ``before``) with settings ``now`` that
    compute something else; the message names every changed setting with its old and new value."""
    old, new = comparable(before, path_keys), comparable(now, path_keys)
    changed = sorted(k for k in new if k in old and k not in ignore and old[k] != new[k])
    if changed:
        diffs = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise CardiolensError(
            f"{folder}: holds a run with other settings ({diffs}); resume it unchanged or choose a new --out"
        )
