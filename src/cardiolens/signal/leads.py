"""Lead-name conventions: which leads are PPG, which ECG lead to prefer."""

from __future__ import annotations

import numbers

from cardiolens.errors import RecordError

PPG_LEAD_NAMES = {"PLETH", "PPG", "PULSE", "BVP", "SPO2WAVE", "IR", "RED"}
# Names that are ECG for certain (modality() calls every unknown name ECG, so checks that must not
# refuse a plain "ch0" ask this set): the 12 leads, MIT-BIH's MLII, BIDMC's V/AVR, single-lead "ECG".
ECG_LEAD_NAMES = frozenset(
    {"I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6", "MLII", "MLI", "V", "ECG", "EKG"}
)
# Leads preferred for beat finding, best first (limb lead II and MLII show the largest R waves).
PREFERRED_ECG_LEADS = ("II", "MLII", "I", "ECG", "V5", "V1")


# Signals recorded beside heart leads that are neither ECG nor PPG (BIDMC, MIMIC, polysomnography).
OTHER_SIGNAL_NAMES = frozenset(
    {"RESP", "RESPIRATION", "ABP", "ART", "CVP", "PAP", "ICP", "SPO2", "SAO2", "CO2", "ETCO2", "TEMP", "EEG", "EOG"}
    | {"EMG", "THOR", "ABDO", "FLOW", "AIRFLOW", "HR", "PULSE RATE", "NBP", "UAP"}
)
# Units of signals that are not heart leads whatever their name.
OTHER_SIGNAL_UNITS = ("mmHg", "%", "degC")


def modality(lead: str, unit: str | None = None) -> str:
    """Classify a lead as ``"ECG"``, ``"PPG"`` or ``"other"`` from its name (and unit).

    Args:
        lead: lead name (``II``, ``MLII``, ``PLETH``, ``RESP``, ...).
        unit: the lead's unit, when known; a pressure unit (``mmHg``) marks a non-heart signal.

    Returns:
        ``"PPG"`` for photoplethysmogram names, ``"other"`` for respiration, pressures and other
        non-heart signals (no beat finding, no heart model reads them), ``"ECG"`` for every other
        name: ECG leads go by too many names to list.
    """
    name = str(lead).strip().upper()
    if name in PPG_LEAD_NAMES or "PLETH" in name or "PPG" in name:  # PPG_IR, PLETH_RED, ...
        return "PPG"
    if name in OTHER_SIGNAL_NAMES or (unit or "").strip() in OTHER_SIGNAL_UNITS:
        return "other"
    return "ECG"


def lead_positions(names: list[str], wanted: list[str | int], source: object = None) -> list[int]:
    """Positions in ``names`` of the ``wanted`` leads, by name (whatever its case) or by position.

    The one rule for choosing leads: :meth:`Record.lead_index` (and so ``select_leads``) and every reader
    of a file that names its leads apply it.

    Raises:
        RecordError: a name that is not there or a position outside the leads, listing the leads.
    """
    folded = [str(name).casefold() for name in names]
    positions = []
    for lead in wanted:
        if isinstance(lead, numbers.Integral) and not isinstance(lead, bool):
            if not -len(names) <= lead < len(names):
                raise RecordError(f"lead index {lead} out of range for {len(names)} leads", source)
            positions.append(int(lead) % len(names))
        elif str(lead).casefold() in folded:
            positions.append(folded.index(str(lead).casefold()))
        else:
            raise RecordError(f"no lead named {lead!r}; leads are {', '.join(map(str, names))}", source)
    return positions
