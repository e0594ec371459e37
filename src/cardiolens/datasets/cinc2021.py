"""PhysioNet/Computing in Cardiology Challenge 2020/2021 (12-lead ECG, SNOMED-CT diagnoses).

Layout: WFDB records (``.hea`` + ``.mat`` holding ``val``), flat or in one folder per source
database, each header carrying ``# Age:``, ``# Sex:`` and ``# Dx:`` (comma-separated SNOMED-CT
codes). The code table comes from the challenge's evaluation code: one
``dx_mapping_scored_and_unscored.csv`` (``Dx,SNOMEDCTCode,Abbreviation,scored``) or the pair
``dx_mapping_scored.csv`` + ``dx_mapping_unscored.csv``; it is looked for in the folder and its
parent, or given with ``mapping=``. Without it the 30 scored codes of 2021 (:data:`SCORED_2021`)
still name the scored classes; other codes stay unnamed.

The source database is told by the record name's prefix (:func:`source_database`). No patient ids
are published, so every record is treated as its own patient. The 2021 scoring treats four pairs of
codes as one class (:data:`EQUIVALENT_CODES`); :meth:`CinC2021.labels` merges them by default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiolens.datasets.base import Catalogue, LabelMatrix, list_counts, multi_hot, value_counts
from cardiolens.errors import DatasetError

# Prefix of the record name -> source database (Reyna et al., CinC 2021; Perez Alday et al., 2020).
SOURCE_PREFIXES = {
    "A": "CPSC",
    "Q": "CPSC-Extra",
    "I": "INCART",
    "S": "PTB",
    "HR": "PTB-XL",
    "E": "Georgia",
}
# JS records come from one release of two Chinese databases: JS00001-JS10646 Chapman-Shaoxing,
# JS10647-JS45551 Ningbo.
JS_CHAPMAN_LAST = 10646

# The 30 SNOMED-CT codes scored in 2021 (code -> abbreviation), used when no mapping CSV is found.
SCORED_2021 = {
    "164889003": "AF",
    "164890007": "AFL",
    "6374002": "BBB",
    "426627000": "Brady",
    "733534002": "CLBBB",
    "713427006": "CRBBB",
    "270492004": "IAVB",
    "713426002": "IRBBB",
    "39732003": "LAD",
    "445118002": "LAnFB",
    "164909002": "LBBB",
    "251146004": "LQRSV",
    "698252002": "NSIVCB",
    "426783006": "NSR",
    "284470004": "PAC",
    "10370003": "PR",
    "365413008": "PRWP",
    "427172004": "PVC",
    "164947007": "LPR",
    "111975006": "LQT",
    "164917005": "QAb",
    "47665007": "RAD",
    "59118001": "RBBB",
    "427393009": "SA",
    "426177001": "SB",
    "427084000": "STach",
    "63593006": "SVPB",
    "164934002": "TAb",
    "59931005": "TInv",
    "17338001": "VPB",
}
# Pairs the 2021 scoring counts as one class (CLBBB|LBBB, CRBBB|RBBB, PAC|SVPB, PVC|VPB).
EQUIVALENT_CODES = (
    ("733534002", "164909002"),
    ("713427006", "59118001"),
    ("284470004", "63593006"),
    ("427172004", "17338001"),
)
MAPPING_FILES = ("dx_mapping_scored_and_unscored.csv",)
MAPPING_PAIR = ("dx_mapping_scored.csv", "dx_mapping_unscored.csv")


def source_database(record_id: str) -> str:
    """The source database of a challenge record, from its name (``E07500`` -> ``Georgia``).

    Returns ``"unknown"`` for names matching no published prefix.
    """
    match = re.match(r"^([A-Za-z]+)(\d+)$", record_id)
    if not match:
        return "unknown"
    prefix, number = match.group(1).upper(), int(match.group(2))
    if prefix == "JS":
        return "Chapman-Shaoxing" if number <= JS_CHAPMAN_LAST else "Ningbo"
    return SOURCE_PREFIXES.get(prefix, "unknown")


def read_mapping(path: str | Path) -> pd.DataFrame:
    """Read a challenge code table into columns ``code, name, abbreviation, scored`` (indexed by code).

    Accepts the combined ``dx_mapping_scored_and_unscored.csv`` or one of the pair
    ``dx_mapping_scored.csv`` / ``dx_mapping_unscored.csv`` (scored told by the file name).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: SNOMED-CT mapping file does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not a CSV table: {exc}") from None
    columns = {c.strip().lower().replace(" ", ""): c for c in table.columns}
    code_col = columns.get("snomedctcode") or columns.get("snomedct") or columns.get("code")
    name_col = columns.get("dx")
    abbr_col = columns.get("abbreviation")
    if code_col is None or name_col is None or abbr_col is None:
        raise DatasetError(f"{path}: expected columns Dx, SNOMEDCTCode, Abbreviation; found {list(table.columns)}")
    if "scored" in columns:
        scored = table[columns["scored"]].str.strip().str.lower().isin(["true", "1", "yes"])
    else:
        scored = pd.Series(path.name.lower() == "dx_mapping_scored.csv", index=table.index)
    out = pd.DataFrame(
        {
            "code": table[code_col].str.strip(),
            "name": table[name_col].str.strip(),
            "abbreviation": table[abbr_col].str.strip(),
            "scored": scored.to_numpy(dtype=bool),
        }
    )
    out = out[out["code"] != ""].drop_duplicates("code")
    return out.set_index("code", drop=False)


def parse_header(hea: Path) -> dict[str, Any]:
    """Facts of one challenge header without reading its signal: leads, fs, samples, age, sex, Dx codes."""
    try:
        lines = hea.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise DatasetError(f"{hea}: cannot read header: {exc}") from None
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    if not body:
        raise DatasetError(f"{hea}: header has no record line")
    parts = body[0].split()
    try:
        n_sig, fs = int(parts[1]), float(parts[2].split("/")[0])
        n_samples = int(parts[3]) if len(parts) > 3 else None
    except (IndexError, ValueError):
        raise DatasetError(f"{hea}: malformed record line {body[0]!r}") from None
    leads = [ln.split()[-1] for ln in body[1 : 1 + n_sig]]
    facts: dict[str, Any] = {"n_leads": n_sig, "fs": fs, "n_samples": n_samples, "leads": leads}
    comments = {}
    for ln in lines:
        if ln.startswith("#"):
            key, sep, value = ln.lstrip("#").partition(":")
            if sep:
                comments[key.strip().lower()] = value.strip()
    age = comments.get("age", "")
    try:
        facts["age"] = float(age)
    except ValueError:
        facts["age"] = np.nan
    facts["sex"] = comments.get("sex", "Unknown") or "Unknown"
    facts["has_dx"] = "dx" in comments
    facts["dx"] = [c.strip() for c in comments.get("dx", "").split(",") if c.strip()]
    return facts


class CinC2021(Catalogue):
    """The CinC 2020/2021 catalogue (any subset of its source databases).

    Args:
        root: folder of ``.hea``/``.mat`` records (searched recursively).
        mapping: the SNOMED-CT code table; by default looked for in ``root`` and its parent.

    Example:
        >>> db = CinC2021("training")  # doctest: +SKIP
        >>> y = db.labels("scored")
        >>> db.records.groupby("source").size()
    """

    name = "cinc2021"
    title = "PhysioNet/CinC Challenge 2020/2021"

    def __init__(self, root: str | Path, *, mapping: str | Path | None = None) -> None:
        self._mapping_arg = None if mapping is None else Path(mapping)
        super().__init__(root)

    def config(self) -> dict[str, Any]:
        return {"mapping": [str(f) for f in self.mapping_files]}

    def metadata_files(self) -> list[Path]:
        return list(self.mapping_files)

    # -- layout -------------------------------------------------------------------------------
    def _find_mapping(self) -> list[Path]:
        if self._mapping_arg is not None:
            return [self._mapping_arg]
        for folder in (self.root, self.root.parent):
            for name in MAPPING_FILES:
                if (folder / name).is_file():
                    return [folder / name]
            if all((folder / n).is_file() for n in MAPPING_PAIR):
                return [folder / n for n in MAPPING_PAIR]
        return []

    def _build_records(self) -> pd.DataFrame:
        headers = sorted(self.root.rglob("*.hea"))
        if not headers:
            raise DatasetError(f"{self.root}: no WFDB headers (.hea) found: not a CinC 2020/2021 folder")
        rows = []
        for hea in headers:
            facts = parse_header(hea)
            rid = hea.stem
            rows.append({"record_id": rid, "patient_id": rid, "source": source_database(rid), **facts})
            rows[-1]["path"] = str(hea)
        records = pd.DataFrame(rows)
        if not records["has_dx"].any():
            raise DatasetError(
                f"{self.root}: headers carry no '# Dx:' line: not a CinC 2020/2021 folder "
                "(CinC 2017 and MIT-BIH headers have other catalogues)"
            )
        no_dx = int((~records["has_dx"]).sum())
        if no_dx:
            self.notes.append(f"{no_dx} headers have no '# Dx:' line: those records have no labels")
        files = self._find_mapping()
        self.mapping_files = files
        self.mapping_path = files[0] if files else None
        if files:
            self.mapping = pd.concat([read_mapping(f) for f in files]).drop_duplicates("code")
        else:
            self.mapping = pd.DataFrame(
                {"code": list(SCORED_2021), "name": "", "abbreviation": list(SCORED_2021.values()), "scored": True}
            ).set_index("code", drop=False)
            self.notes.append(
                f"no SNOMED-CT mapping CSV ({MAPPING_FILES[0]}) in {self.root} or its parent: the 30 codes "
                "scored in 2021 are named by abbreviation, other codes stay unnamed; pass mapping= to name them"
            )
        abbr = self.mapping["abbreviation"].to_dict()
        records["dx_abbreviations"] = [[abbr.get(c, c) for c in dx] for dx in records["dx"]]
        unknown = sorted({c for dx in records["dx"] for c in dx} - set(self.mapping.index))
        if unknown and files:
            self.notes.append(f"codes not in the mapping: {', '.join(unknown)}")
        self.notes.append("no patient ids are published: each record is its own patient")
        first = ["record_id", "patient_id", "source", "fs", "n_leads", "n_samples", "age", "sex", "dx"]
        return records[first + ["dx_abbreviations", "leads", "path"]]

    # -- codes and labels ---------------------------------------------------------------------
    def code_name(self, code: str | int) -> str:
        """The diagnosis name of a SNOMED-CT code (its abbreviation when no name is known)."""
        code = str(code)
        if code not in self.mapping.index:
            raise DatasetError(f"SNOMED-CT code {code} is not in the mapping ({self.mapping_path or 'built-in'})")
        row = self.mapping.loc[code]
        return str(row["name"] or row["abbreviation"])

    def code_abbreviation(self, code: str | int) -> str:
        code = str(code)
        if code not in self.mapping.index:
            raise DatasetError(f"SNOMED-CT code {code} is not in the mapping ({self.mapping_path or 'built-in'})")
        return str(self.mapping.loc[code, "abbreviation"])

    @property
    def scored_codes(self) -> list[str]:
        """The scored codes, in the mapping's order."""
        return self.mapping.loc[self.mapping["scored"], "code"].tolist()

    def _code_of_abbreviation(self, name: str) -> str:
        """The code of a mapping abbreviation (``AF`` -> ``164889003``, any case); where one abbreviation
        has several codes, the scored one. ``name`` itself when none matches (the caller names it)."""
        abbreviations = self.mapping["abbreviation"].str.upper()
        matches = [str(c) for c in abbreviations.index[abbreviations == name.strip().upper()]]
        scored = [c for c in matches if c in set(self.scored_codes)]
        chosen = scored if len(scored) == 1 else matches
        if len(chosen) > 1:
            raise DatasetError(f"{name} abbreviates several codes ({', '.join(chosen)}): name the code")
        return chosen[0] if chosen else name

    def labels(
        self, classes: str | list[str] = "scored", *, merge_equivalent: bool = True, drop_empty: bool = False
    ) -> LabelMatrix:
        """Multi-hot labels over SNOMED-CT codes.

        Args:
            classes: ``"scored"`` (the challenge's scored codes, in the mapping's order), ``"all"``
                (every code found in the headers: mapped ones in the mapping's order, then others
                sorted) or an explicit list of codes (or of the mapping's abbreviations: ``AF``).
            merge_equivalent: count each pair of :data:`EQUIVALENT_CODES` as one class named
                ``"code1|code2"``, as the 2021 scoring does.
            drop_empty: leave out records with none of the classes.

        Returns:
            A LabelMatrix; ``descriptions`` give the abbreviations (``"CLBBB|LBBB"``).
        """
        if isinstance(classes, str):
            if classes == "scored":
                codes = self.scored_codes
            elif classes == "all":
                seen = {c for dx in self.records["dx"] for c in dx}
                codes = [c for c in self.mapping.index if c in seen] + sorted(seen - set(self.mapping.index))
            else:
                raise DatasetError(f"classes must be 'scored', 'all' or a list of codes, not {classes!r}")
        else:
            known = set(self.mapping.index) | {c for dx in self.records["dx"] for c in dx}
            codes = [c if c in known else self._code_of_abbreviation(c) for c in map(str, classes)]
            # a code neither in the mapping nor in any header is a typo or another coding, not a rare class
            unknown = [c for c in codes if c not in known]
            if unknown:
                abbr = self.mapping["abbreviation"].to_dict()
                listed = ", ".join(f"{c} ({abbr.get(c, '?')})" for c in self.scored_codes[:30])
                raise DatasetError(
                    f"unknown SNOMED-CT code(s) {', '.join(unknown)}: neither in the mapping nor in any header "
                    f"of {self.root}; scored codes: {listed}"
                )
        alias = {}
        if merge_equivalent:
            for a, b in EQUIVALENT_CODES:
                alias[a] = alias[b] = f"{a}|{b}"
        names: list[str] = []
        for c in codes:
            name = alias.get(c, c)
            if name not in names:
                names.append(name)
        lists = [[alias.get(c, c) for c in dx] for dx in self.records["dx"]]
        matrix = multi_hot(lists, self.record_ids, classes=names)
        abbr = self.mapping["abbreviation"].to_dict()
        matrix.descriptions = {n: "|".join(abbr.get(c, c) for c in n.split("|")) for n in names}
        if drop_empty:
            keep = matrix.y.sum(axis=1) > 0
            matrix = LabelMatrix(
                matrix.y[keep], matrix.classes, list(np.asarray(matrix.record_ids)[keep]), matrix.descriptions
            )
        return matrix

    def _summary_extra(self) -> dict[str, Any]:
        leads = value_counts(" ".join(x) for x in self.records["leads"])
        return {
            "sources": value_counts(self.records["source"]),
            "leads": list(self.records["leads"].iloc[0]) if len(leads) == 1 else leads,
            "mapping": ", ".join(map(str, self.mapping_files)) or "built-in (scored 2021 codes)",
            "labels": list_counts(self.records["dx_abbreviations"]),
            "scored_classes": len(self.labels("scored").classes),
        }
