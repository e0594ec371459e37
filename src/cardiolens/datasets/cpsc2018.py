"""The China Physiological Signal Challenge 2018 in its original layout (Liu et al., JMIHI 8(7), 2018).

Layout::

    A0001.mat ...       MATLAB struct ``ECG`` with ``data`` (12 x samples, mV), ``sex``, ``age``
    REFERENCE.csv       Recording,First_label,Second_label,Third_label (classes 1-9), when distributed

Every record is 500 Hz with the 12 standard leads in the order I II III aVR aVL aVF V1-V6. The
folder may come without ``REFERENCE.csv`` (as the samples here do): the records then carry no labels,
:meth:`CPSC2018.labels` says so, and everything else works. No patient ids are published: each record
is treated as its own patient. Age and sex live inside each ``.mat`` file, so they are read with the
signal (:meth:`CPSC2018.load`) or, for all records at once, by :meth:`CPSC2018.demographics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cardiolens.datasets.base import STANDARD_12_LEADS, Catalogue, LabelMatrix, multi_hot, value_counts
from cardiolens.errors import DatasetError

FS = 500.0
CLASSES = {1: "Normal", 2: "AF", 3: "I-AVB", 4: "LBBB", 5: "RBBB", 6: "PAC", 7: "PVC", 8: "STD", 9: "STE"}
_REFERENCE_COLUMNS = ("Recording", "First_label", "Second_label", "Third_label")


class CPSC2018(Catalogue):
    """The CPSC 2018 catalogue (original ``.mat`` structs).

    Args:
        root: folder of ``A*.mat`` files (with ``REFERENCE.csv`` when labels are available).
        reference: a ``REFERENCE.csv`` elsewhere; by default ``root/REFERENCE.csv`` when present.
    """

    name = "cpsc2018"
    title = "CPSC 2018"

    def __init__(self, root: str | Path, *, reference: str | Path | None = None) -> None:
        self._reference_arg = None if reference is None else Path(reference)
        super().__init__(root)

    def metadata_files(self) -> list[Path]:
        return [] if self.reference is None else [self.reference]

    @property
    def has_labels(self) -> bool:
        return self.reference is not None

    def _build_records(self) -> pd.DataFrame:
        mats = sorted(p for p in self.root.glob("*.mat") if not (p.with_suffix(".hea")).exists())
        if not mats:
            headers = list(self.root.glob("*.hea"))
            hint = " (the .mat files here have WFDB headers: open it as CinC 2020/2021)" if headers else ""
            raise DatasetError(f"{self.root}: no CPSC 2018 .mat files without WFDB headers{hint}")
        ids = [p.stem for p in mats]
        records = pd.DataFrame(
            {
                "record_id": ids,
                "patient_id": ids,
                "fs": FS,
                "n_leads": len(STANDARD_12_LEADS),
                "path": [str(p) for p in mats],
            }
        )
        self.reference = self._reference_arg
        if self.reference is None and (self.root / "REFERENCE.csv").is_file():
            self.reference = self.root / "REFERENCE.csv"
        if self.reference is None:
            records["labels"] = [[] for _ in ids]
            records["first_label"] = pd.array([pd.NA] * len(ids), dtype="Int64")
            self.notes.append(
                f"no REFERENCE.csv in {self.root}: these records carry no labels "
                "(pass reference= if it lives elsewhere)"
            )
        else:
            labels = self._read_reference(self.reference)
            unlabeled = [r for r in ids if r not in labels]
            if unlabeled:
                self.notes.append(f"{len(unlabeled)} records are not in {self.reference.name}: they have no labels")
            records["labels"] = [labels.get(r, []) for r in ids]
            records["first_label"] = pd.array([x[0] if x else pd.NA for x in records["labels"]], dtype="Int64")
        self.notes.append("no patient ids are published: each record is its own patient")
        return records

    def _read_reference(self, path: Path) -> dict[str, list[int]]:
        if not path.is_file():
            raise DatasetError(f"{path}: REFERENCE.csv does not exist")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        lacking = [c for c in _REFERENCE_COLUMNS[:2] if c not in table.columns]
        if lacking:
            raise DatasetError(f"{path}: expected columns {', '.join(_REFERENCE_COLUMNS)}; {lacking} missing")
        out: dict[str, list[int]] = {}
        for _, row in table.iterrows():
            classes = []
            for col in _REFERENCE_COLUMNS[1:]:
                value = str(row.get(col, "")).strip()
                if not value:
                    continue
                try:
                    number = int(float(value))
                except ValueError:
                    raise DatasetError(f"{path}: record {row['Recording']}: label {value!r} is not a number") from None
                if number not in CLASSES:
                    raise DatasetError(f"{path}: record {row['Recording']}: label {number} is not one of 1-9")
                if number not in classes:
                    classes.append(number)
            out[str(row["Recording"]).strip()] = classes
        return out

    def labels(self, *, drop_empty: bool = True) -> LabelMatrix:
        """Multi-hot labels over the 9 classes (columns named Normal, AF, I-AVB, ... in class order 1-9).

        Raises:
            DatasetError: the folder has no ``REFERENCE.csv``, so there are no labels.
        """
        if not self.has_labels:
            raise DatasetError(
                f"{self.root}: no REFERENCE.csv, so these CPSC 2018 records carry no labels "
                "(loading records and building window caches still work)"
            )
        lists = [[CLASSES[c] for c in x] for x in self.records["labels"]]
        matrix = multi_hot(lists, self.record_ids, classes=list(CLASSES.values()))
        matrix.descriptions = {v: f"class {k}" for k, v in CLASSES.items()}
        if drop_empty:
            keep = matrix.y.sum(axis=1) > 0
            matrix = LabelMatrix(matrix.y[keep], matrix.classes, list(np.asarray(matrix.record_ids)[keep]))
        return matrix

    def stratify_labels(self) -> np.ndarray | None:
        if not self.has_labels:
            return None
        return self.records["first_label"].astype(str).to_numpy()

    def demographics(self, *, progress: bool = False) -> pd.DataFrame:
        """Age and sex of every record, read from the ``.mat`` files (reads every file)."""
        rows = []
        for rid in tqdm(self.record_ids, desc="CPSC 2018 demographics", disable=not progress):
            meta = self.load(rid).metadata
            rows.append({"record_id": rid, "age": meta.get("age"), "sex": meta.get("sex")})
        return pd.DataFrame(rows)

    def _summary_extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"leads": list(STANDARD_12_LEADS)}
        if self.has_labels:
            out["labels"] = value_counts(CLASSES[c] for x in self.records["labels"] for c in x)
        else:
            out["labels"] = "none (no REFERENCE.csv)"
        return out
