"""The one interface every dataset catalogue offers: :class:`Catalogue`.

A catalogue is built from a folder in its publisher's layout. It checks the layout (a
:class:`~cardiolens.errors.DatasetError` naming the folder and what is missing), lists the records in
a pandas DataFrame (one row per record: ``record_id``, ``path``, ``patient_id``, ``fs`` and the
dataset's own columns: labels, folds, demographics) and loads any record through
:func:`cardiolens.io.load_record`. Catalogues read metadata only; signals are read on demand.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cardiolens.errors import DatasetError
from cardiolens.io import load_record
from cardiolens.signal.record import Record

STANDARD_12_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass
class LabelMatrix:
    """Multi-hot labels of a set of records.

    Attributes:
        y: uint8 array shaped (records, classes); ``y[i, j] == 1`` when record ``i`` has class ``j``.
        classes: one name (code) per column.
        record_ids: one record id per row, in the order of ``y``.
        descriptions: a readable description per class, where the publisher gives one.
    """

    y: np.ndarray
    classes: list[str]
    record_ids: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.uint8).reshape(len(self.record_ids), len(self.classes))

    def __len__(self) -> int:
        return len(self.record_ids)

    def counts(self) -> pd.Series:
        """Number of records carrying each class."""
        return pd.Series(self.y.sum(axis=0).astype(int), index=self.classes, name="records")

    def to_frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame indexed by record id, one column per class."""
        return pd.DataFrame(self.y, index=pd.Index(self.record_ids, name="record_id"), columns=self.classes)


def multi_hot(
    label_lists: Iterable[Iterable[str]], record_ids: Iterable[str], classes: Iterable[str] | None = None
) -> LabelMatrix:
    """Turn one list of class names per record into a :class:`LabelMatrix`.

    Args:
        label_lists: the classes of each record.
        record_ids: one id per record.
        classes: the columns, in this order; by default every class seen, sorted (as scikit-learn's
            ``MultiLabelBinarizer`` orders them, which the published benchmarks use).
    """
    lists = [list(x) for x in label_lists]
    ids = [str(r) for r in record_ids]
    cols = sorted({c for x in lists for c in x}) if classes is None else [str(c) for c in classes]
    col = {c: j for j, c in enumerate(cols)}
    y = np.zeros((len(lists), len(cols)), dtype=np.uint8)
    for i, labels in enumerate(lists):
        for c in labels:
            j = col.get(str(c))
            if j is not None:
                y[i, j] = 1
    return LabelMatrix(y, cols, ids)


def require_files(root: Path, names: Iterable[str], what: str) -> None:
    """Raise a DatasetError naming ``root`` and every file of ``names`` it lacks."""
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DatasetError(f"{root}: not a {what} folder: missing {', '.join(missing)}")


def check_folder(root: str | Path, what: str) -> Path:
    """The folder as a Path, or a DatasetError when it does not exist, is a file or is empty."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist (expected a {what} folder)")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a {what} folder")
    if not any(root.iterdir()):
        raise DatasetError(f"{root}: folder is empty (expected a {what} folder)")
    return root


class Catalogue(ABC):
    """A dataset in its publisher's layout: records, patients, labels, folds.

    Subclasses set :attr:`name` and :attr:`title`, check the layout and fill :attr:`records` in
    :meth:`_build_records`.

    Attributes:
        root: the dataset folder.
        records: one row per record with at least ``record_id`` (str), ``path`` (the file to load),
            ``patient_id`` (str) and ``fs`` (Hz).
        notes: caveats a user should know (shown by :meth:`summary`).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""

    def __init__(self, root: str | Path) -> None:
        self.root = check_folder(root, self.title)
        self.notes: list[str] = []
        records = self._build_records()
        for column in ("record_id", "path", "patient_id", "fs"):
            if column not in records.columns:
                raise AssertionError(f"{type(self).__name__}._build_records lacks column {column}")
        if records.empty:
            raise DatasetError(f"{self.root}: no {self.title} records found")
        records["record_id"] = records["record_id"].astype(str)
        records["patient_id"] = records["patient_id"].astype(str)
        self.records: pd.DataFrame = records.reset_index(drop=True)
        self._position = {rid: i for i, rid in enumerate(self.records["record_id"])}
        if len(self._position) != len(self.records):
            dup = self.records["record_id"][self.records["record_id"].duplicated()].iloc[0]
            raise DatasetError(f"{self.root}: record id {dup!r} appears more than once")

    @abstractmethod
    def _build_records(self) -> pd.DataFrame:
        """Check the layout and list the records."""

    # -- identity -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor settings that change what the catalogue lists or loads (part of cache keys)."""
        return {}

    def metadata_files(self) -> list[Path]:
        """Files besides the records' own whose content the catalogue reads (label tables, ...)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, records={len(self)})"

    # -- records ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, record_id: object) -> bool:
        return self._normalise_id(record_id) in self._position

    def _normalise_id(self, record_id: object) -> str:
        """The record id a user's spelling stands for (catalogues accept numbers where ids are numeric)."""
        return str(record_id)

    def __iter__(self) -> Iterator[Record]:
        """Load every record in catalogue order."""
        for rid in self.record_ids:
            yield self.load(rid)

    @property
    def record_ids(self) -> list[str]:
        """Record ids in catalogue order."""
        return self.records["record_id"].tolist()

    @property
    def patient_ids(self) -> np.ndarray:
        """The patient id of every record, aligned with :attr:`record_ids` (use as ``groups``)."""
        return self.records["patient_id"].to_numpy(dtype=str)

    @property
    def n_patients(self) -> int:
        return int(self.records["patient_id"].nunique())

    def row(self, record_id: str | int) -> pd.Series:
        """The catalogue row of one record, or a DatasetError naming the folder."""
        rid = self._normalise_id(record_id)
        try:
            return self.records.iloc[self._position[rid]]
        except KeyError:
            raise DatasetError(f"{self.root}: no record {rid!r} in this {self.title} catalogue") from None

    def patient_of(self, record_id: str | int) -> str:
        return str(self.row(record_id)["patient_id"])

    def path(self, record_id: str | int) -> Path:
        """The file :meth:`load` reads for a record."""
        return Path(self.row(record_id)["path"])

    def load(self, record_id: str | int, **kwargs: Any) -> Record:
        """Read one record through :func:`cardiolens.io.load_record`.

        Args:
            record_id: the record's id (``records["record_id"]``).
            **kwargs: passed to :func:`cardiolens.io.load_record` (``leads=``, ``nan_policy=``, ...).

        Returns:
            The Record, with ``metadata`` holding ``dataset``, ``record_id`` and ``patient_id``.
        """
        row = self.row(record_id)
        record = load_record(Path(row["path"]), **kwargs)
        record.metadata.update(
            {"dataset": self.name, "record_id": str(row["record_id"]), "patient_id": str(row["patient_id"])}
        )
        return record

    def files(self, record_ids: Iterable[str] | None = None) -> dict[str, list[Path]]:
        """The files that make up each record (header, signal, annotations), found by file stem.

        Each folder is listed once, so this stays fast for tens of thousands of records.
        """
        ids = self.record_ids if record_ids is None else [self._normalise_id(r) for r in record_ids]
        listing: dict[Path, dict[str, list[Path]]] = {}
        out: dict[str, list[Path]] = {}
        for rid in ids:
            path = self.path(rid)
            folder = path.parent
            if folder not in listing:
                by_stem: dict[str, list[Path]] = {}
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_file():
                            by_stem.setdefault(entry.name.split(".", 1)[0], []).append(Path(entry.path))
                listing[folder] = by_stem
            out[rid] = sorted(listing[folder].get(path.name.split(".", 1)[0], [path]))
        return out

    # -- labels -------------------------------------------------------------------------------
    def labels(self, *args: Any, **kwargs: Any) -> LabelMatrix:
        """Multi-hot labels; catalogues without record labels raise a DatasetError saying so."""
        raise DatasetError(f"{self.root}: {self.title} has no record-level labels")

    def stratify_labels(self) -> np.ndarray | None:
        """One label per record for stratified splits, or None when the dataset has none."""
        return None

    # -- summary ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts, sampling rates, leads and label counts as plain JSON-friendly values."""
        fs = sorted({float(f) for f in self.records["fs"].dropna()})
        out: dict[str, Any] = {
            "dataset": self.title,
            "catalogue": type(self).__name__,
            "root": str(self.root),
            "records": len(self),
            "patients": self.n_patients,
            "fs": [int(f) if f.is_integer() else f for f in fs],
        }
        out.update(self._summary_extra())
        if self.notes:
            out["notes"] = {str(i + 1): note for i, note in enumerate(self.notes)}
        return out

    def _summary_extra(self) -> dict[str, Any]:
        return {}


def value_counts(values: Iterable[Any]) -> dict[str, int]:
    """Counts of each value, most frequent first, as a plain dict."""
    series = pd.Series(list(values), dtype=object)
    return {str(k): int(v) for k, v in series.value_counts().items()}


def list_counts(lists: Iterable[Iterable[Any]]) -> dict[str, int]:
    """Counts of each element over lists of elements (multi-label counts), most frequent first."""
    return value_counts(x for items in lists for x in items)
