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
import subprocess
import sys
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
    from cardiolens.datasets.archive import unpack_once

    source = Path(archive) if Path(archive).is_absolute() else SHARED_DATA / archive
    if not source.is_file():
        raise FileNotFoundError(f"{source}: archive not found (set CARDIOLENS_SHARED_DATA or pass --data)")
    return unpack_once(source, UNPACK_ROOT)


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


def cluster_bootstrap_weights(clusters: Any, reps: int, seed: int, strata: Any = None) -> tuple[list[str], Any]:
    """Replicate weights of a (stratified) cluster bootstrap: how often each cluster is drawn.

    Each replicate draws, within every stratum, as many clusters as the stratum holds, with
    replacement; a statistic of a replicate is then a weighted sum over clusters, e.g.
    ``(weights @ sums) / (weights @ counts)`` for a ratio of sums. Using the same weights for two
    models gives paired intervals of their difference. The patients (clusters) are the resampled
    units, so windows of one patient move together.

    Args:
        clusters: the cluster (patient) of each observation, any hashable labels.
        reps: number of bootstrap replicates.
        seed: seed of the random generator (the same seed gives the same replicates).
        strata: the stratum of each observation (a cluster must lie in one stratum); None for one.

    Returns:
        ``(labels, weights)``: the sorted unique cluster labels (as strings) and an int64 array
        (reps, len(labels)) whose rows sum to the number of clusters.

    Raises:
        ValueError: no observations, or a cluster found in more than one stratum.
    """
    import numpy as np

    clusters = np.asarray([str(c) for c in clusters])
    if clusters.size == 0:
        raise ValueError("cluster_bootstrap_weights: no observations")
    strata = np.zeros(clusters.size, dtype=int) if strata is None else np.asarray([str(s) for s in strata])
    labels = sorted(set(clusters.tolist()))
    position = {c: i for i, c in enumerate(labels)}
    stratum_of: dict[str, Any] = {}
    for c, s in zip(clusters.tolist(), strata.tolist(), strict=True):
        if stratum_of.setdefault(c, s) != s:
            raise ValueError(f"cluster_bootstrap_weights: cluster {c!r} lies in strata {stratum_of[c]!r} and {s!r}")
    rng = np.random.default_rng(seed)
    weights = np.zeros((reps, len(labels)), dtype=np.int64)
    for s in sorted(set(stratum_of.values()), key=str):
        members = np.array([position[c] for c in labels if stratum_of[c] == s])
        picks = rng.integers(0, members.size, size=(reps, members.size))  # (reps, n in stratum)
        for r in range(reps):
            weights[r] += np.bincount(members[picks[r]], minlength=len(labels))
    return labels, weights


def percentile_interval(replicates: Any, level: float = 0.95) -> list[float]:
    """The equal-tailed percentile interval of bootstrap replicates (NaNs ignored)."""
    import numpy as np

    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(np.asarray(replicates, dtype=np.float64), [tail, 100 - tail])
    return [float(lo), float(hi)]
