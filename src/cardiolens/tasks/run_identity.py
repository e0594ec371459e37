"""What makes two runs the same run, so that the same command resumes one wherever it is typed.

A run folder records the settings it was started with, its file and folder paths made absolute
(:func:`recorded`); rerunning the command resumes it only if nothing that changes what is computed
differs (:func:`check_same_run`). Paths are compared as the folders they name (``runs/x`` typed in
the project and ``/home/me/project/runs/x`` are one folder), and where a run or its cache lives is
not part of what it computes (a run folder may be moved or copied and resumed). A setting the run
did not record (one added to cardiolens after it started) counts as its default.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from cardiolens.errors import CardiolensError

# settings that name where things are kept, not what is computed
LOCATION_KEYS = ("out", "cache_dir")


def _absolute(text: Any) -> Any:
    """``text`` as an absolute path where it names an existing file or folder (a ``#LEAD`` suffix kept)."""
    if not isinstance(text, str) or not text:
        return text
    path, sep, lead = text.partition("#")
    if not Path(path).exists():
        return text
    return str(Path(path).resolve()) + sep + lead


def recorded(settings: dict[str, Any], path_keys: tuple[str, ...]) -> dict[str, Any]:
    """``settings`` as a run records them: the values of ``path_keys`` (a path, or a list of paths)
    made absolute, so that the record means the same from any working folder."""
    out = dict(settings)
    for key in path_keys:
        value = out.get(key)
        out[key] = [_absolute(v) for v in value] if isinstance(value, list) else _absolute(value)
    return out


def defaults_of(config_class: type) -> dict[str, Any]:
    """Each field's default of a settings dataclass (fields without one are left out)."""
    out = {}
    for f in dataclasses.fields(config_class):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    # JSON turns tuples into lists: compare them as lists
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def check_same_run(
    folder: Path,
    before: dict[str, Any],
    now: dict[str, Any],
    path_keys: tuple[str, ...],
    ignore: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Refuse to resume the run in ``folder`` (recorded as ``before``) with settings ``now`` that
    compute something else; the message names every changed setting with its old and new value.
    A key ``before`` lacks counts as ``defaults[key]``; one without a default is not compared (a
    record cardiolens began to keep after the run started, such as a weights digest)."""
    defaults = defaults or {}
    old, new = recorded(before, path_keys), recorded(now, path_keys)
    compared = [k for k in new if k not in LOCATION_KEYS and k not in ignore and (k in old or k in defaults)]
    changed = sorted(k for k in compared if not _same(old.get(k, defaults.get(k)), new[k]))
    if changed:
        diffs = "; ".join(f"{k}: {before.get(k, defaults.get(k))!r} -> {now.get(k)!r}" for k in changed)
        raise CardiolensError(
            f"{folder}: holds a run with other settings ({diffs}); resume it unchanged or choose a new --out"
        )
