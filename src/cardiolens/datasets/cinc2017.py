"""PhysioNet/Computing in Cardiology Challenge 2017 (AF classification from a short single-lead ECG).

Layout (``training2017/``)::

    REFERENCE.csv       A00001,N  (no header row; N normal, A AF, O other rhythm, ~ noisy)
    A00001.hea/.mat     single lead (AliveCor), 300 Hz, int16 at 1000/mV, 9-61 s

The challenge published no patient identifiers, so every record is treated as its own patient
(``patient_id == record_id``); a patient-grouped split is then a record-level split, and records of
one person may fall on both sides of it. The challenge also published no folds: use
:func:`cardiolens.datasets.splits.grouped_kfold` (stratified by class) for cross-validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiolens.datasets.base import Catalogue, LabelMatrix, multi_hot, require_files
from cardiolens.errors import DatasetError

FS = 300.0
CLASSES = {"N": "normal sinus rhythm", "A": "atrial fibrillation", "O": "other rhythm", "~": "too noisy to classify"}


class CinC2017(Catalogue):
    """The CinC 2017 training set catalogue.

    Args:
        root: the ``training2017`` folder (or a folder holding it).

    Example:
        >>> db = CinC2017("training2017")  # doctest: +SKIP
        >>> db.class_counts()["A"]
    """

    name = "cinc2017"
    title = "PhysioNet/CinC Challenge 2017"

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not (root / "REFERENCE.csv").exists() and (root / "training2017" / "REFERENCE.csv").exists():
            root = root / "training2017"
        super().__init__(root)

    def metadata_files(self) -> list[Path]:
        return [self.root / "REFERENCE.csv"]

    def _build_records(self) -> pd.DataFrame:
        require_files(self.root, ["REFERENCE.csv"], "CinC 2017 (training2017)")
        path = self.root / "REFERENCE.csv"
        try:
            ref = pd.read_csv(path, header=None, names=["record_id", "label"], dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DatasetError(f"{path}: not a 'record,label' table: {exc}") from None
        if ref.empty:
            raise DatasetError(f"{path}: holds no records")
        ref["record_id"] = ref["record_id"].str.strip()
        ref["label"] = ref["label"].str.strip()
        bad = ref.loc[~ref["label"].isin(list(CLASSES))]
        if not bad.empty:
            row = bad.iloc[0]
            raise DatasetError(
                f"{path}: record {row['record_id']} has label {row['label']!r}; CinC 2017 labels are N, A, O, ~"
            )
        headers = {p.stem for p in self.root.glob("*.hea")}
        present = ref["record_id"].isin(headers)
        absent = ref.loc[~present, "record_id"].tolist()
        shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
        if len(absent) == len(ref):
            raise DatasetError(
                f"{self.root}: none of the {len(ref)} records in REFERENCE.csv has a .hea header ({shown})"
            )
        if absent:  # a subset of the dataset (a few records copied with the full table): list those present
            ref = ref.loc[present].reset_index(drop=True)
            self.notes.append(
                f"a subset: {len(absent)} of the {len(ref) + len(absent)} records in REFERENCE.csv have no .hea "
                f"header here ({shown}) and are not listed"
            )
        self.notes.append(
            "no patient ids are published: each record is its own patient, so grouped splits cannot keep "
            "one person's recordings together"
        )
        self.notes.append("no folds are published: use stratified cross-validation")
        return ref.assign(
            patient_id=ref["record_id"],
            fs=FS,
            label_name=ref["label"].map(CLASSES),
            path=[str(self.root / f"{r}.hea") for r in ref["record_id"]],
        )[["record_id", "patient_id", "fs", "label", "label_name", "path"]]

    def labels(self) -> LabelMatrix:
        """One-hot labels over the classes N, A, O, ~ (in that order)."""
        matrix = multi_hot([[x] for x in self.records["label"]], self.record_ids, classes=list(CLASSES))
        matrix.descriptions = dict(CLASSES)
        return matrix

    def class_counts(self) -> dict[str, int]:
        """Records per class, from REFERENCE.csv (no signal is read)."""
        counts = self.records["label"].value_counts()
        return {c: int(counts.get(c, 0)) for c in CLASSES}

    def stratify_labels(self) -> np.ndarray:
        return self.records["label"].to_numpy(dtype=str)

    def _summary_extra(self) -> dict[str, Any]:
        return {"leads": ["ECG"], "labels": self.class_counts(), "label_names": dict(CLASSES)}
