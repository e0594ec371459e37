"""Catalogues of public heart-signal datasets in their publishers' layouts (numpy/pandas only).

Every catalogue is built from a folder, checks its layout and offers the same small interface
(:class:`~cardiolens.datasets.base.Catalogue`): ``records`` (a DataFrame, one row per record),
``load(record_id)``, ``labels(...)``, ``patient_ids``, ``len()``, iteration and ``summary()``.

=================  ======================================================================
catalogue          dataset
=================  ======================================================================
:class:`PTBXL`     PTB-XL 1.0.x: six benchmark label sets, recommended strat_fold split
:class:`CinC2017`  PhysioNet/CinC 2017 AF challenge: N / A / O / ~
:class:`CinC2021`  PhysioNet/CinC 2020/2021: SNOMED-CT Dx codes, source databases
:class:`CPSC2018`  CPSC 2018 original ``.mat`` structs: 9 classes when REFERENCE.csv is there
:class:`MITBIH`    MIT-BIH Arrhythmia: beats with AAMI classes, rhythm episodes, DS1/DS2
:class:`BIDMC`     BIDMC PPG and Respiration: PPG/ECG, breath annotations, 1 Hz numerics
=================  ======================================================================

:func:`open_dataset` recognises which one a folder is; :mod:`~cardiolens.datasets.splits` makes
patient-grouped splits; :func:`build_window_cache` writes a memory-mapped cache of windows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cardiolens.datasets.base import STANDARD_12_LEADS, Catalogue, LabelMatrix, multi_hot
from cardiolens.datasets.bidmc import BIDMC
from cardiolens.datasets.cache import WindowCache, build_window_cache
from cardiolens.datasets.cinc2017 import CinC2017
from cardiolens.datasets.cinc2021 import CinC2021, source_database
from cardiolens.datasets.cpsc2018 import CPSC2018
from cardiolens.datasets.mitbih import AAMI_CLASSES, DS1, DS2, MITBIH, PACED
from cardiolens.datasets.ptbxl import LABEL_SETS, PTBXL
from cardiolens.datasets.splits import (
    check_patient_disjoint,
    folds_to_splits,
    grouped_kfold,
    leaking_patients,
    patient_split,
)
from cardiolens.errors import DatasetError

CATALOGUES: dict[str, type[Catalogue]] = {
    "ptbxl": PTBXL,
    "cinc2017": CinC2017,
    "cinc2021": CinC2021,
    "cpsc2018": CPSC2018,
    "mitbih": MITBIH,
    "bidmc": BIDMC,
}

__all__ = [
    "AAMI_CLASSES",
    "BIDMC",
    "CATALOGUES",
    "CPSC2018",
    "DS1",
    "DS2",
    "LABEL_SETS",
    "MITBIH",
    "PACED",
    "PTBXL",
    "STANDARD_12_LEADS",
    "Catalogue",
    "CinC2017",
    "CinC2021",
    "LabelMatrix",
    "WindowCache",
    "build_window_cache",
    "check_patient_disjoint",
    "dataset_root",
    "detect_dataset",
    "folds_to_splits",
    "grouped_kfold",
    "leaking_patients",
    "multi_hot",
    "open_dataset",
    "patient_split",
    "source_database",
]


def _headers_have_dx(headers: list[Path], limit: int = 5) -> bool:
    for hea in headers[:limit]:
        try:
            text = hea.read_text(encoding="latin-1")
        except OSError:
            continue
        if re.search(r"^#\s*Dx\s*:", text, flags=re.MULTILINE):
            return True
    return False


def _is_cpsc_struct(mat: Path) -> bool:
    import scipy.io

    try:
        return any(name == "ECG" for name, _, _ in scipy.io.whosmat(str(mat)))
    except Exception:  # scipy raises several types on files that are not MAT files
        return False


def detect_dataset(path: str | Path) -> str | None:
    """Name the catalogue (a key of :data:`CATALOGUES`) whose layout ``path`` has, or None.

    Recognised by the files present: ``ptbxl_database.csv`` (PTB-XL); a ``dx_mapping*.csv`` or
    headers with ``# Dx:`` (CinC 2020/2021); ``REFERENCE.csv`` with ``A*.hea`` records (CinC 2017);
    ``NNN.hea`` with ``NNN.atr`` (MIT-BIH); ``bidmc*`` files (BIDMC); ``.mat`` files holding an ``ECG``
    struct and no headers (CPSC 2018).
    """
    root = Path(path)
    if not root.is_dir():
        return None
    names = {p.name for p in root.iterdir()}
    if "ptbxl_database.csv" in names:
        return "ptbxl"
    headers = sorted(root.glob("*.hea"))
    if any(n.startswith("dx_mapping") and n.endswith(".csv") for n in names) and headers:
        return "cinc2021"
    if headers and _headers_have_dx(headers):
        return "cinc2021"
    if "REFERENCE.csv" in names and any(re.fullmatch(r"A\d+", h.stem) for h in headers):
        return "cinc2017"
    if any(re.fullmatch(r"\d{3}", h.stem) and f"{h.stem}.atr" in names for h in headers):
        return "mitbih"
    if any(re.fullmatch(r"bidmc\d+", h.stem) for h in headers) or any(
        re.fullmatch(r"bidmc_\d+_(Breaths|Numerics|Fix)\.(csv|txt)", n) for n in names
    ):
        return "bidmc"
    mats = [root / n for n in sorted(names) if n.endswith(".mat") and n[:-4] + ".hea" not in names]
    if mats and _is_cpsc_struct(mats[0]):
        return "cpsc2018"
    return None


def dataset_root(path: str | Path) -> Path:
    """``path`` when it is a dataset folder, else the one dataset folder directly inside it (as an
    unpacked archive often holds); ``path`` unchanged when it holds none.

    Raises:
        DatasetError: the folder holds several datasets.
    """
    root = Path(path)
    if not root.is_dir() or detect_dataset(root) is not None:
        return root
    found = [(p, detect_dataset(p)) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    found = [(p, k) for p, k in found if k is not None]
    if len(found) > 1:
        listed = ", ".join(f"{p.name} ({k})" for p, k in found)
        raise DatasetError(f"{path}: holds several datasets ({listed}); open one of them")
    return found[0][0] if found else root


def open_dataset(path: str | Path, **kwargs: Any) -> Catalogue:
    """Open a dataset folder with the catalogue its layout matches.

    A folder holding exactly one dataset folder (as an unpacked archive often does) is opened too.

    Args:
        path: the dataset folder.
        **kwargs: passed to the catalogue (e.g. ``fs=500`` for PTB-XL).

    Raises:
        DatasetError: the folder does not exist, or matches no known layout (the message lists what
            was looked for), or holds several datasets.

    Example:
        >>> db = open_dataset("mit-bih-arrhythmia-database-1.0.0")  # doctest: +SKIP
        >>> print(db.summary()["records"])
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file; open_dataset takes a dataset folder (load files with load_record)")
    root = dataset_root(root)
    kind = detect_dataset(root)
    if kind is None:
        raise DatasetError(
            f"{path}: not a dataset layout cardiolens knows. Looked for ptbxl_database.csv (PTB-XL), "
            "dx_mapping*.csv or '# Dx:' headers (CinC 2020/2021), REFERENCE.csv with A*.hea (CinC 2017), "
            "NNN.hea with NNN.atr (MIT-BIH), bidmcNN.hea / bidmc_NN_*.csv (BIDMC), and .mat files with an ECG "
            "struct (CPSC 2018)"
        )
    return CATALOGUES[kind](root, **kwargs)
