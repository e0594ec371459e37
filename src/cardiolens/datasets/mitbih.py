"""MIT-BIH Arrhythmia Database (Moody & Mark 2001) in the PhysioNet layout.

Layout: ``NNN.hea`` + ``NNN.dat`` (format 212, 360 Hz, 2 leads, 30 min) + ``NNN.atr`` (reference
beat and rhythm annotations) for 48 records (100-234), with optional ``RECORDS``/``ANNOTATORS``.

Beats are the annotations whose symbol is a WFDB beat code; non-beat annotations (rhythm changes
``+``, noise ``~``, artefact ``|``, ventricular flutter waves ``!``, ...) are excluded. Each beat gets
its AAMI EC57 class (:data:`AAMI_CLASSES`). Rhythm episodes run from one ``+`` annotation (aux
``(AFIB``, ``(N``, ...) to the next, the last one to the end of the record.

Inter-patient evaluation follows de Chazal et al. (IEEE TBME 51(7), 2004): train on :data:`DS1`,
test on :data:`DS2`, and leave out the four paced records (:data:`PACED`), as AAMI practice does.

Patient ids: the record id, except that records 201 and 202 come from the same man (the database
directory says so), so both get patient id ``"201"`` and a grouped split keeps them together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiolens.datasets.base import Catalogue, value_counts
from cardiolens.errors import DatasetError
from cardiolens.io import read_annotations
from cardiolens.signal.record import Annotations

FS = 360.0
DS1 = (101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208, 209, 215, 220, 223, 230)
DS2 = (100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222, 228, 231, 232, 233, 234)
PACED = (102, 104, 107, 217)
# Records taken from one subject (MIT-BIH directory of records): record -> patient id.
SAME_PATIENT = {"202": "201"}

# AAMI EC57 heartbeat classes from MIT-BIH beat symbols.
AAMI_CLASSES = {
    "N": "N",
    "L": "N",
    "R": "N",
    "e": "N",
    "j": "N",
    "A": "S",
    "a": "S",
    "J": "S",
    "S": "S",
    "V": "V",
    "E": "V",
    "F": "F",
    "/": "Q",
    "f": "Q",
    "Q": "Q",
}
AAMI_NAMES = {
    "N": "normal and bundle branch block beats",
    "S": "supraventricular ectopic beats",
    "V": "ventricular ectopic beats",
    "F": "fusion of ventricular and normal beats",
    "Q": "paced, fusion of paced and normal, and unclassifiable beats",
}
# Every WFDB beat annotation code; the ones outside AAMI_CLASSES (B r n ?) do not occur in MIT-BIH
# but do in other WFDB databases: they are kept as beats with no AAMI class.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def _header_facts(hea: Path) -> dict[str, Any]:
    lines = hea.read_text(encoding="latin-1").splitlines()
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    try:
        parts = body[0].split()
        n_sig, fs, n = int(parts[1]), float(parts[2].split("/")[0]), int(parts[3])
    except (IndexError, ValueError):
        raise DatasetError(f"{hea}: malformed WFDB record line") from None
    leads = [ln.split()[-1] for ln in body[1 : 1 + n_sig]]
    age: float = np.nan
    sex = ""
    comments = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    if comments:  # first comment line: "age sex ..." (e.g. "# 69 M 1085 1629 x1"; "-1" = unknown age)
        match = re.match(r"^(-?\d+)\s+([MF])\b", comments[0])
        if match:
            age = float(match.group(1)) if int(match.group(1)) >= 0 else np.nan
            sex = match.group(2)
    return {"fs": fs, "n_samples": n, "n_leads": n_sig, "leads": leads, "age": age, "sex": sex}


class MITBIH(Catalogue):
    """The MIT-BIH Arrhythmia Database catalogue.

    Args:
        root: the folder holding ``NNN.hea``/``.dat``/``.atr``.

    Example:
        >>> db = MITBIH("mit-bih-arrhythmia-database-1.0.0")  # doctest: +SKIP
        >>> beats = db.beats("101")
        >>> beats["aami"].value_counts()
    """

    name = "mitbih"
    title = "MIT-BIH Arrhythmia Database"

    def _build_records(self) -> pd.DataFrame:
        headers = sorted(p for p in self.root.glob("*.hea") if re.fullmatch(r"\d{3}", p.stem))
        if not headers:
            raise DatasetError(f"{self.root}: no MIT-BIH records (NNN.hea) found")
        rows = []
        for hea in headers:
            rid = hea.stem
            if not (self.root / f"{rid}.atr").is_file():
                raise DatasetError(f"{self.root}: record {rid} has no reference annotation file {rid}.atr")
            number = int(rid)
            ds = "DS1" if number in DS1 else "DS2" if number in DS2 else ""
            rows.append(
                {
                    "record_id": rid,
                    "patient_id": SAME_PATIENT.get(rid, rid),
                    "ds": ds,
                    "paced": number in PACED,
                    **_header_facts(hea),
                    "path": str(hea),
                }
            )
        self.notes.append(
            "patient id is the record id, except records 201 and 202, which come from one subject (patient 201)"
        )
        self.notes.append("AAMI practice excludes the paced records 102, 104, 107, 217 (column 'paced')")
        return pd.DataFrame(rows)

    def _normalise_id(self, record_id: object) -> str:
        return str(record_id).zfill(3) if isinstance(record_id, (int, np.integer)) else str(record_id)

    def annotations(self, record_id: str | int) -> Annotations:
        """All reference annotations of a record (beats, rhythm changes, noise, ...)."""
        row = self.row(record_id)
        return read_annotations(Path(row["path"]).with_suffix(""), extension="atr")

    def beats(self, record_id: str | int) -> pd.DataFrame:
        """Beat annotations of a record: ``sample``, ``symbol`` and ``aami`` (N/S/V/F/Q).

        Non-beat annotations are excluded; beat symbols outside the AAMI table get ``aami`` None.
        """
        ann = self.annotations(record_id)
        is_beat = np.array([s in BEAT_SYMBOLS for s in ann.symbol], dtype=bool)
        beats = ann.select(is_beat)
        return pd.DataFrame(
            {
                "sample": beats.sample,
                "symbol": beats.symbol,
                "aami": pd.array([AAMI_CLASSES.get(s) for s in beats.symbol], dtype=object),
            }
        )

    def rhythms(self, record_id: str | int) -> pd.DataFrame:
        """Rhythm episodes of a record: ``start``, ``end`` (exclusive, samples) and ``rhythm`` (``AFIB``, ``N``...)."""
        ann = self.annotations(record_id)
        n = int(self.row(record_id)["n_samples"])
        idx = [i for i, s in enumerate(ann.symbol) if s == "+" and ann.aux[i].startswith("(")]
        starts = [int(ann.sample[i]) for i in idx]
        rhythms = [ann.aux[i].lstrip("(").strip() for i in idx]
        ends = starts[1:] + [n]
        return pd.DataFrame({"start": starts, "end": ends, "rhythm": rhythms})

    def aami_counts(self, record_ids: list[str] | None = None) -> dict[str, int]:
        """AAMI class counts over records (all by default; reads the annotation files only)."""
        total = dict.fromkeys(AAMI_NAMES, 0)
        for rid in self.record_ids if record_ids is None else record_ids:
            for cls, count in self.beats(rid)["aami"].value_counts().items():
                total[str(cls)] += int(count)
        return total

    def _summary_extra(self) -> dict[str, Any]:
        leads = value_counts(" ".join(x) for x in self.records["leads"])
        return {
            "leads": leads,
            "duration_min": round(float((self.records["n_samples"] / self.records["fs"]).mean() / 60), 1),
            "ds": value_counts(x or "other" for x in self.records["ds"]),
            "paced": [r for r, p in zip(self.record_ids, self.records["paced"], strict=True) if p],
            "beats_aami": self.aami_counts(),
        }
