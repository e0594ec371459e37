"""PTB-XL (Wagner et al., Scientific Data 7:154, 2020) in the PhysioNet layout.

Layout::

    ptbxl_database.csv      one row per ECG: ecg_id, patient_id, scp_codes, strat_fold, filename_lr/hr, ...
    scp_statements.csv      the 71 SCP-ECG statements: diagnostic/form/rhythm flags, diagnostic class/subclass
    records100/NNNNN/NNNNN_lr.hea/.dat   100 Hz
    records500/NNNNN/NNNNN_hr.hea/.dat   500 Hz

Label sets follow the published benchmark code of Strodthoff et al. (IEEE JBHI 25(5), 2021;
``code/utils/utils.py`` of ``helme/ecg_ptbxl_benchmarking``), functions ``compute_label_aggregations``
and ``select_data``:

- ``all``: every SCP statement of the record;
- ``diagnostic``: the statements with ``diagnostic == 1``;
- ``subdiagnostic`` / ``superdiagnostic``: their ``diagnostic_subclass`` / ``diagnostic_class``
  (NORM, MI, STTC, CD, HYP);
- ``form`` / ``rhythm``: the statements with ``form == 1`` / ``rhythm == 1``.

The published code aggregates **every statement listed in ``scp_codes`` regardless of its
likelihood** (a statement with likelihood 0, "unknown", counts as present); that is the default here
(``min_likelihood=None``). Classes seen in no more than ``min_samples`` records are dropped (the
published experiments use ``min_samples=0``), except for ``diagnostic``, which the published code
never filters; records left without any label are dropped (``drop_empty=True``). Classes are sorted
alphabetically, as scikit-learn's ``MultiLabelBinarizer`` orders them.

The recommended split uses ``strat_fold``: folds 1-8 train, 9 validation, 10 test (the folds are
patient-disjoint and the validation/test folds hold only human-validated labels).
"""

from __future__ import annotations

import ast
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiolens.datasets.base import STANDARD_12_LEADS, Catalogue, LabelMatrix, list_counts, multi_hot, require_files
from cardiolens.errors import DatasetError

log = logging.getLogger(__name__)

LABEL_SETS = ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")
SUPERCLASSES = {
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
    "MI": "myocardial infarction",
    "NORM": "normal ECG",
    "STTC": "ST/T change",
}
RECOMMENDED_FOLDS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}
_REQUIRED_COLUMNS = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")


def _fold_to_split(fold: int) -> str:
    for split, folds in RECOMMENDED_FOLDS.items():
        if fold in folds:
            return split
    return "unassigned"


class PTBXL(Catalogue):
    """The PTB-XL catalogue.

    Args:
        root: the folder holding ``ptbxl_database.csv``.
        fs: 100 (``records100``) or 500 (``records500``); :meth:`load` reads that rate.
        missing: what to do with database rows whose signal files are absent at ``fs`` (a subset or a
            partial download): ``"error"`` (default) raises a DatasetError counting them, ``"drop"``
            leaves them out of :attr:`records` (logged and noted in :meth:`summary`).

    Example:
        >>> db = PTBXL("ptb-xl-1.0.3", fs=100)  # doctest: +SKIP
        >>> y = db.labels("superdiagnostic")
        >>> train = db.split("train")
    """

    name = "ptbxl"
    title = "PTB-XL"

    def __init__(self, root: str | Path, *, fs: int = 100, missing: str = "error") -> None:
        if fs not in (100, 500):
            raise DatasetError(f"{root}: PTB-XL is published at 100 or 500 Hz, not fs={fs}")
        if missing not in ("error", "drop"):
            raise DatasetError(f"missing must be 'error' or 'drop', not {missing!r}")
        self.fs = int(fs)
        self.missing = missing
        self.n_missing = 0
        super().__init__(root)

    def config(self) -> dict[str, Any]:
        return {"fs": self.fs, "missing": self.missing}

    def metadata_files(self) -> list[Path]:
        return [self.root / "ptbxl_database.csv", self.root / "scp_statements.csv"]

    # -- layout -------------------------------------------------------------------------------
    def _build_records(self) -> pd.DataFrame:
        folder = f"records{self.fs}"
        require_files(self.root, ["ptbxl_database.csv", "scp_statements.csv"], "PTB-XL")
        if not (self.root / folder).is_dir():
            raise DatasetError(f"{self.root}: PTB-XL folder has no {folder}/ (the {self.fs} Hz records)")
        db = pd.read_csv(self.root / "ptbxl_database.csv")
        lacking = [c for c in _REQUIRED_COLUMNS if c not in db.columns]
        if lacking:
            raise DatasetError(f"{self.root / 'ptbxl_database.csv'}: columns {', '.join(lacking)} are missing")
        self.statements = self._read_statements()

        def parse(text: str, ecg_id: int) -> dict[str, float]:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise DatasetError(
                    f"{self.root / 'ptbxl_database.csv'}: ecg_id {ecg_id}: bad scp_codes {text!r}"
                ) from None
            if not isinstance(value, dict):
                raise DatasetError(f"{self.root / 'ptbxl_database.csv'}: ecg_id {ecg_id}: scp_codes is not a dict")
            return {str(k): float(v) for k, v in value.items()}

        db["ecg_id"] = db["ecg_id"].astype(int)
        db["scp_codes"] = [parse(t, e) for t, e in zip(db["scp_codes"], db["ecg_id"], strict=True)]
        db["strat_fold"] = db["strat_fold"].astype(int)
        filename = db["filename_lr"] if self.fs == 100 else db["filename_hr"]
        present = self._present_headers(self.root / folder)
        exists = np.array([str(f) in present for f in filename])
        patient = [
            str(int(p)) if pd.notna(p) else f"ecg{e}" for p, e in zip(db["patient_id"], db["ecg_id"], strict=True)
        ]
        records = db.assign(
            record_id=db["ecg_id"].astype(str),
            patient_id=patient,
            fs=float(self.fs),
            fold=db["strat_fold"],
            split=[_fold_to_split(f) for f in db["strat_fold"]],
            path=[str(self.root / f"{f}.hea") for f in filename],
        )
        self.n_missing = int((~exists).sum())
        if self.n_missing:
            absent = records.loc[~exists, "record_id"].tolist()
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            problem = (
                f"{self.n_missing} of {len(records)} records listed in ptbxl_database.csv have no {self.fs} Hz "
                f"files in {folder}/ (ecg_id {shown})"
            )
            if self.missing == "error":
                raise DatasetError(f"{self.root}: {problem}; pass missing='drop' to leave them out")
            log.warning("%s: %s; left out", self.root, problem)
            self.notes.append(f"{problem}: left out (missing='drop')")
            records = records.loc[exists]
        first = ["record_id", "patient_id", "fs", "fold", "split", "path"]
        return records[first + [c for c in records.columns if c not in first]]

    def _read_statements(self) -> pd.DataFrame:
        path = self.root / "scp_statements.csv"
        statements = pd.read_csv(path, index_col=0)
        lacking = [
            c
            for c in ("diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
            if c not in statements.columns
        ]
        if lacking:
            raise DatasetError(f"{path}: columns {', '.join(lacking)} are missing")
        return statements

    @staticmethod
    def _present_headers(folder: Path) -> set[str]:
        """Relative names (``records100/00000/00001_lr``) of every header under ``folder``."""
        present: set[str] = set()
        base = folder.parent
        for dirpath, _, filenames in os.walk(folder):
            rel = Path(dirpath).relative_to(base).as_posix()
            present.update(f"{rel}/{f[:-4]}" for f in filenames if f.endswith(".hea"))
        return present

    # -- labels -------------------------------------------------------------------------------
    def label_lists(self, label_set: str = "superdiagnostic", *, min_likelihood: float | None = None) -> pd.Series:
        """The classes of every record in one label set, before any class filtering.

        Args:
            label_set: one of :data:`LABEL_SETS`.
            min_likelihood: ``None`` (the published behaviour) counts every statement in
                ``scp_codes`` whatever its likelihood (0 means "unknown" there). A number keeps only
                diagnostic statements whose likelihood is at least this; statements that are not
                diagnostic (pure form and rhythm statements, nearly always recorded with likelihood 0)
                are kept regardless.

        Returns:
            A Series indexed by record id holding sorted lists of class names.
        """
        if label_set not in LABEL_SETS:
            raise DatasetError(f"unknown PTB-XL label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")
        st = self.statements
        diagnostic = st.index[st["diagnostic"] == 1.0]
        wanted = {
            "all": None,
            "diagnostic": set(diagnostic),
            "form": set(st.index[st["form"] == 1.0]),
            "rhythm": set(st.index[st["rhythm"] == 1.0]),
        }
        sub = st.loc[diagnostic, "diagnostic_subclass"].dropna().to_dict()
        sup = st.loc[diagnostic, "diagnostic_class"].dropna().to_dict()
        diagnostic_set = set(diagnostic)

        def classes(codes: dict[str, float]) -> list[str]:
            keys = list(codes)
            if min_likelihood is not None:
                keys = [k for k in keys if k not in diagnostic_set or codes[k] >= min_likelihood]
            if label_set == "subdiagnostic":
                found = {sub[k] for k in keys if k in sub}
            elif label_set == "superdiagnostic":
                found = {sup[k] for k in keys if k in sup}
            elif wanted[label_set] is None:
                found = set(keys)
            else:
                found = {k for k in keys if k in wanted[label_set]}
            return sorted(found)

        values = [classes(c) for c in self.records["scp_codes"]]
        return pd.Series(values, index=pd.Index(self.records["record_id"], name="record_id"), name=label_set)

    def labels(
        self,
        label_set: str = "superdiagnostic",
        *,
        min_samples: int = 0,
        drop_empty: bool = True,
        min_likelihood: float | None = None,
    ) -> LabelMatrix:
        """Multi-hot labels of one label set, built as the published PTB-XL benchmark builds them.

        Args:
            label_set: ``all``, ``diagnostic``, ``subdiagnostic``, ``superdiagnostic``, ``form`` or ``rhythm``.
            min_samples: keep classes present in more than this many records (counted over the whole
                catalogue, as published; not applied to ``diagnostic``, as published).
            drop_empty: leave out records with no class of this set (as published). With False every
                record keeps its row, possibly all zeros.
            min_likelihood: see :meth:`label_lists`; None is the published behaviour.

        Returns:
            A LabelMatrix whose ``record_ids`` say which records the rows are.
        """
        lists = self.label_lists(label_set, min_likelihood=min_likelihood)
        if label_set != "diagnostic":
            counts = pd.Series([c for x in lists for c in x], dtype=object).value_counts()
            keep = set(counts.index[counts > min_samples])
            lists = lists.apply(lambda x: [c for c in x if c in keep])
        if drop_empty:
            lists = lists[lists.apply(len) > 0]
        matrix = multi_hot(lists.tolist(), lists.index.tolist())
        matrix.descriptions = {c: self._describe(c, label_set) for c in matrix.classes}
        return matrix

    def _describe(self, code: str, label_set: str) -> str:
        if label_set == "superdiagnostic":
            return SUPERCLASSES.get(code, "")
        if code in self.statements.index:
            return str(self.statements.loc[code, "description"])
        return ""

    # -- splits -------------------------------------------------------------------------------
    def split(self, name: str) -> list[str]:
        """Record ids of the recommended ``train`` (folds 1-8), ``val`` (9) or ``test`` (10) split."""
        if name not in RECOMMENDED_FOLDS:
            raise DatasetError(f"unknown PTB-XL split {name!r}; choose train, val or test")
        return self.records.loc[self.records["split"] == name, "record_id"].tolist()

    def recommended_split(self) -> dict[str, list[str]]:
        """The recommended split: folds 1-8 train, 9 validation, 10 test."""
        return {name: self.split(name) for name in RECOMMENDED_FOLDS}

    def _summary_extra(self) -> dict[str, Any]:
        folds = self.records["fold"].value_counts().sort_index()
        return {
            "leads": list(STANDARD_12_LEADS),
            "duration_s": 10,
            "folds": {str(k): int(v) for k, v in folds.items()},
            "splits": {k: len(v) for k, v in self.recommended_split().items()},
            "labels": {
                "superdiagnostic": list_counts(self.label_lists("superdiagnostic")),
                "classes_per_label_set": {s: len(self.labels(s).classes) for s in LABEL_SETS},
            },
        }
