"""Signal processing on numpy arrays and Records (never imports torch).

Submodules: :mod:`~cardiolens.signal.record` (the Record), :mod:`~cardiolens.signal.filters`,
:mod:`~cardiolens.signal.resample`, :mod:`~cardiolens.signal.normalize`,
:mod:`~cardiolens.signal.peaks`, :mod:`~cardiolens.signal.quality` and
:mod:`~cardiolens.signal.tokenize`. Their public functions are re-exported here (note that
``cardiolens.signal.resample``, ``.normalize`` and ``.tokenize`` are therefore the functions; import
from the submodule path to reach a module itself).
"""

from cardiolens.signal.record import Annotations, Record  # noqa: I001  (Record first: the others import it)
from cardiolens.signal.filters import (
    bandpass,
    clean,
    clean_ecg,
    clean_ppg,
    highpass,
    lead_modality,
    lowpass,
    notch,
    remove_baseline,
)
from cardiolens.signal.normalize import normalize
from cardiolens.signal.peaks import ecg_peaks, heart_rate, ppg_peaks, rr_intervals
from cardiolens.signal.quality import LeadQuality, QualityReport, check_quality
from cardiolens.signal.resample import rate_ratio, resample, resample_record
from cardiolens.signal.tokenize import detokenize, span_scale, tokenize

__all__ = [
    "Annotations",
    "LeadQuality",
    "QualityReport",
    "Record",
    "bandpass",
    "check_quality",
    "clean",
    "clean_ecg",
    "clean_ppg",
    "detokenize",
    "ecg_peaks",
    "heart_rate",
    "highpass",
    "lead_modality",
    "lowpass",
    "normalize",
    "notch",
    "ppg_peaks",
    "rate_ratio",
    "remove_baseline",
    "resample",
    "resample_record",
    "rr_intervals",
    "span_scale",
    "tokenize",
]
