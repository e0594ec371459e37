"""cardiolens: interpretable foundation models for heart signals (ECG and PPG).

The data half of the package is importable without torch::

    import cardiolens
    rec = cardiolens.load_record("101.hea")
"""

from cardiolens.errors import CardiolensError, DatasetError, RecordError, UnknownFormatError
from cardiolens.io import detect_format, load_record, read_annotations
from cardiolens.signal.record import Annotations, Record

__version__ = "0.1.0"

__all__ = [
    "Annotations",
    "CardiolensError",
    "DatasetError",
    "Record",
    "RecordError",
    "UnknownFormatError",
    "__version__",
    "detect_format",
    "load_record",
    "read_annotations",
]
