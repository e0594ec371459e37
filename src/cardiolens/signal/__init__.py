"""Signal processing on numpy arrays and Records (never imports torch)."""

from cardiolens.signal.record import Annotations, Record

__all__ = ["Annotations", "Record"]
