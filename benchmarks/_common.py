"""Helpers shared by the benchmark scripts: where the shared data is, and how results are written.

Every result file starts with the facts needed to reproduce and judge it: the exact command, the git
commit (``+dirty`` when the tree had uncommitted changes), the machine (platform, CPU, core count,
Python and library versions) and the date, followed by the benchmark's own fields.

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import write_result
    write_result({"data": ..., "results": ...}, Path("benchmarks/results/NAME.json"))
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CARDIOLENS_SHARED_DATA", REPO.parent / "shared" / "data"))
# the same folder and convention as tests/conftest.py, so tests and benchmarks unpack each archive once
UNPACK_ROOT = Path(os.environ.get("CARDIOLENS_TEST_CACHE", REPO / ".cache" / "shared-data"))


def unpacked(archive: str | Path) -> Path:
    """Folder holding the unpacked content of an archive in ../shared/data (unpacked once).

    The archive is extracted into ``.cache/shared-data/<archive stem>/`` through a temporary folder
    that is renamed when complete; a ``.complete`` stamp holding the archive's mtime marks it done.

    Raises:
        FileNotFoundError: the archive does not exist.
    """
    source = Path(archive) if Path(archive).is_absolute() else SHARED_DATA / archive
    if not source.is_file():
        raise FileNotFoundError(f"{source}: archive not found (set CARDIOLENS_SHARED_DATA or pass --data)")
    target = UNPACK_ROOT / source.stem
    stamp = target / ".complete"
    if stamp.exists() and stamp.read_text() == str(source.stat().st_mtime_ns):
        return target
    UNPACK_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=UNPACK_ROOT))
    with zipfile.ZipFile(source) as zf:
        zf.extractall(tmp)
    (tmp / ".complete").write_text(str(source.stat().st_mtime_ns))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def command_line() -> str:
    """The command that is running, as it could be typed again (interpreter path relative to the repo)."""
    exe = Path(sys.executable)
    try:  # not resolved: a virtual environment's python is a link out of the repository
        exe = exe.relative_to(REPO)
    except ValueError:
        pass
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return shlex.join([str(exe), str(script), *sys.argv[1:]])


def git_commit() -> str:
    """HEAD's hash, with ``+dirty`` when the working tree differs from it; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return sha.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Platform, CPU, core count and the versions of Python and of the numeric libraries in use."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:  # cores this process may use (smaller than cpu_count in containers with CPU sets)
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    # versions of the libraries that are loaded (importing torch here would cost seconds for nothing)
    for name in ("numpy", "scipy", "neurokit2", "wfdb", "torch", "onnxruntime"):
        module = sys.modules.get(name)
        if module is not None:
            info[name] = getattr(module, "__version__", "unknown")
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def write_result(result: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Write ``result`` as JSON to ``out``, preceded by command, commit, machine and date.

    Args:
        result: the benchmark's own fields (data, settings, results, ...).
        out: the JSON file to write (folders are created).

    Returns:
        The dictionary written.
    """
    full = {
        "command": command_line(),
        "commit": git_commit(),
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **result,
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(full, indent=2, default=_json_default) + "\n")
    return full


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
