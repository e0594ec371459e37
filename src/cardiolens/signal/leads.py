"""Lead-name conventions: which leads are PPG, which ECG lead to prefer."""

from __future__ import annotations

PPG_LEAD_NAMES = {"PLETH", "PPG", "PULSE", "BVP", "SPO2WAVE", "IR", "RED"}
# Leads preferred for beat finding, best first (limb lead II and MLII show the largest R waves).
PREFERRED_ECG_LEADS = ("II", "MLII", "I", "ECG", "V5", "V1")


def modality(lead: str) -> str:
    """'PPG' for photoplethysmogram lead names (PLETH, PPG, ...), 'ECG' otherwise."""
    return "PPG" if lead.upper() in PPG_LEAD_NAMES else "ECG"
