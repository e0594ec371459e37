"""BIDMC PPG and Respiration Dataset (Pimentel et al., IEEE TBME 64(8), 2016) in the PhysioNet layout.

Layout (53 ICU recordings of 8 minutes from 46 patients: the Fix files name each recording's MIMIC II
subject, and bidmc06-09, bidmc20-23 and bidmc38-39 share one, so they are one patient in every split)::

    bidmcNN.hea/.dat        WFDB, 125 Hz: RESP, PLETH, V, AVR, II (some also I, III, MCL, ABP, ART, CVP)
    bidmc_NN_Breaths.csv    two annotators' breath onsets in samples ("breaths ann1/ann2 [signal sample no]")
    bidmc_NN_Numerics.csv   HR, PULSE, RESP, SpO2 at 1 Hz ("Time [s], HR, PULSE, RESP, SpO2")
    bidmc_NN_Fix.txt        age, gender, location, MIMIC II source ids

Ages are as published: ``90+`` is read as 90 (column ``age_raw`` keeps the text), ``NaN`` as missing;
gender ``?`` as unknown.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiolens.datasets.base import Catalogue, value_counts
from cardiolens.errors import DatasetError
from cardiolens.signal.record import Record

FS = 125.0
PPG_LEAD = "PLETH"
ECG_LEAD = "II"


def _number(record_id: str) -> str:
    return record_id[len("bidmc") :]


def read_fix(path: Path) -> dict[str, Any]:
    """Age, sex, location and the MIMIC II subject (``mimic_subject``, e.g. ``s03386``) from a
    ``bidmc_NN_Fix.txt`` file."""
    facts: dict[str, Any] = {"age": np.nan, "age_raw": "", "sex": "", "location": "", "mimic_subject": ""}
    if not path.is_file():
        return facts
    for line in path.read_text(encoding="latin-1").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "age":
            facts["age_raw"] = value
            match = re.match(r"^(\d+(?:\.\d+)?)\+?$", value)
            facts["age"] = float(match.group(1)) if match else np.nan
        elif key == "gender":
            facts["sex"] = value if value in ("M", "F") else ""
        elif key == "location":
            facts["location"] = value
        elif key == "mimic ii matched wdb id":
            facts["mimic_subject"] = value
    return facts


class BIDMC(Catalogue):
    """The BIDMC PPG and Respiration catalogue.

    Args:
        root: the folder holding ``bidmcNN.hea`` and the ``bidmc_NN_*`` files.

    Example:
        >>> db = BIDMC("bidmc-1.0.0")  # doctest: +SKIP
        >>> ppg = db.ppg("bidmc01")
        >>> db.breaths("bidmc01").shape
    """

    name = "bidmc"
    title = "BIDMC PPG and Respiration Dataset"

    def _build_records(self) -> pd.DataFrame:
        headers = sorted(p for p in self.root.glob("bidmc*.hea") if re.fullmatch(r"bidmc\d+", p.stem))
        if not headers:
            raise DatasetError(f"{self.root}: no BIDMC records (bidmcNN.hea) found")
        rows = []
        lacking_breaths = []
        for hea in headers:
            rid = hea.stem
            num = _number(rid)
            lines = [ln for ln in hea.read_text(encoding="latin-1").splitlines() if ln.strip() and ln[0] != "#"]
            try:
                parts = lines[0].split()
                n_sig, fs, n = int(parts[1]), float(parts[2].split("/")[0]), int(parts[3])
            except (IndexError, ValueError):
                raise DatasetError(f"{hea}: malformed WFDB record line") from None
            leads = [ln.split()[-1] for ln in lines[1 : 1 + n_sig]]
            if not (self.root / f"bidmc_{num}_Breaths.csv").is_file():
                lacking_breaths.append(rid)
            fix = read_fix(self.root / f"bidmc_{num}_Fix.txt")
            rows.append(
                {
                    "record_id": rid,
                    # recordings of one MIMIC II subject are one patient (a recording without a Fix file is its own)
                    "patient_id": fix["mimic_subject"] or rid,
                    "fs": fs,
                    "n_samples": n,
                    "leads": leads,
                    **fix,
                    "path": str(hea),
                }
            )
        if lacking_breaths:
            self.notes.append(
                f"{len(lacking_breaths)} records have no breath annotations: {', '.join(lacking_breaths)}"
            )
        return pd.DataFrame(rows)

    def _csv(self, record_id: str | int, kind: str) -> Path:
        rid = self.row(record_id)["record_id"]
        path = self.root / f"bidmc_{_number(rid)}_{kind}.csv"
        if not path.is_file():
            raise DatasetError(f"{self.root}: record {rid} has no {path.name}")
        return path

    def _normalise_id(self, record_id: object) -> str:
        if isinstance(record_id, (int, np.integer)):
            return f"bidmc{int(record_id):02d}"
        return str(record_id)

    def ppg(self, record_id: str | int) -> Record:
        """The fingertip PPG (``PLETH``, normalised units) of a record."""
        return self.load(record_id, leads=[PPG_LEAD])

    def ecg(self, record_id: str | int, lead: str = ECG_LEAD) -> Record:
        """One ECG lead (``II`` by default, mV) of a record."""
        return self.load(record_id, leads=[lead])

    def breaths(self, record_id: str | int, annotator: int | None = None) -> pd.DataFrame | np.ndarray:
        """Breath onsets (samples at 125 Hz) marked by the two annotators.

        Args:
            record_id: ``bidmc01`` (or the number 1).
            annotator: None for a DataFrame with columns ``ann1``, ``ann2`` (nullable integers: the
                annotators marked different numbers of breaths), or 1 / 2 for that annotator's onsets
                as an int64 array.
        """
        path = self._csv(record_id, "Breaths")
        table = pd.read_csv(path, skipinitialspace=True)
        if table.shape[1] < 2:
            raise DatasetError(f"{path}: expected two annotator columns, found {list(table.columns)}")
        out = pd.DataFrame(
            {
                "ann1": pd.to_numeric(table.iloc[:, 0], errors="coerce").round().astype("Int64"),
                "ann2": pd.to_numeric(table.iloc[:, 1], errors="coerce").round().astype("Int64"),
            }
        )
        if annotator is None:
            return out
        if annotator not in (1, 2):
            raise DatasetError(f"annotator must be 1 or 2, not {annotator!r}")
        return out[f"ann{annotator}"].dropna().to_numpy(dtype=np.int64)

    def numerics(self, record_id: str | int) -> pd.DataFrame:
        """The 1 Hz numerics: ``time_s`` and the monitor's HR, PULSE, RESP, SpO2 (NaN where missing)."""
        path = self._csv(record_id, "Numerics")
        table = pd.read_csv(path, skipinitialspace=True)
        table.columns = [c.strip() for c in table.columns]
        table = table.rename(columns={"Time [s]": "time_s"})
        return table.apply(pd.to_numeric, errors="coerce")

    def _summary_extra(self) -> dict[str, Any]:
        return {
            "leads": value_counts(x for leads in self.records["leads"] for x in leads),
            "duration_min": round(float((self.records["n_samples"] / self.records["fs"]).mean() / 60), 1),
            "sex": value_counts(x or "unknown" for x in self.records["sex"]),
            "location": value_counts(self.records["location"]),
        }
