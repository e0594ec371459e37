"""Record validation and its small API."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens import Annotations, Record, RecordError


def _rec() -> Record:
    ann = Annotations(np.array([50, 150, 250]), ["N", "V", "N"])
    sig = np.vstack([np.sin(np.arange(300) / 7), np.cos(np.arange(300) / 7)])
    return Record(sig, fs=100, leads=["I", "II"], units="mV", name="r", annotations=ann)


def test_signal_is_float32_channels_first() -> None:
    rec = Record(np.arange(10, dtype=np.int16), fs=10)
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (1, 10)
    assert rec.leads == ["ch0"] and rec.units == ["unknown"] and rec.duration == 1.0


def test_crop_shifts_annotations() -> None:
    part = _rec().crop(1.0, 2.0)
    assert part.n_samples == 100
    assert part.annotations.sample.tolist() == [50] and part.annotations.symbol == ["V"]
    with pytest.raises(RecordError, match="leaves no samples"):
        _rec().crop(5, 6)


def test_select_leads_by_name_case_insensitive() -> None:
    rec = _rec().select_leads(["ii", "I"])
    assert rec.leads == ["II", "I"]
    assert np.allclose(rec.signal[1], _rec().signal[0])
    with pytest.raises(RecordError, match="leads are I, II"):
        _rec().select_leads("V1")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"signal": np.zeros((2, 3, 4)), "fs": 10}, "shaped"),
        ({"signal": np.zeros((1, 0)), "fs": 10}, "empty"),
        ({"signal": np.array(["a", "b"]), "fs": 10}, "numeric"),
        ({"signal": np.ones((2, 5)), "fs": 10, "leads": ["I"]}, "1 lead names for 2 channels"),
        ({"signal": np.ones((2, 5)), "fs": 10, "leads": ["I", "I"]}, "repeat"),
        ({"signal": np.ones(5), "fs": "fast"}, "must be a number"),
        ({"signal": np.ones(5), "fs": -1}, "positive"),
        ({"signal": np.array([1.0, np.nan, 2.0]), "fs": 10, "leads": ["V2"]}, "NaN.*V2"),
    ],
)
def test_invalid_records_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        Record(**kwargs)
