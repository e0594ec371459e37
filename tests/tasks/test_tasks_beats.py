"""Beat detection tasks: targets, decoding, matching and scoring on simulated signals; the MIT-BIH and
BIDMC tasks on real records; the shipped ``beats-ecg`` model and the input contract of ``detect_beats``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.signal.record import Record
from cardiolens.tasks.metrics import match_peaks
from cardiolens.tasks.suite import get_task, list_tasks
from cardiolens.tasks.tasks_beats import (
    beat_targets,
    choose_threshold,
    complement,
    decode_beats,
    detect_beats,
    fuse_beats,
    locate_beats,
    ppg_reference,
    refine_beats,
    segment_spans,
    target_beats,
)

torch.set_num_threads(1)

# the shipped model is fold 0 of the cross-validation: it never saw these records (MODEL_CARD.md, split.json)
SHIPPED_HELD_OUT = ("104", "108", "118", "124", "205", "209")


def bumps(n: int, at: list[int] | np.ndarray, height: float = 0.9, width: float = 2.0) -> np.ndarray:
    """A probability curve with a Gaussian bump of ``height`` at each position."""
    t = np.arange(n)[:, None]
    return (height * np.exp(-0.5 * ((t - np.asarray(at)[None]) / width) ** 2)).max(axis=1)


def test_beat_tasks_are_registered_as_per_sample_tasks_scored_by_f1():
    assert {"mitbih-beats", "bidmc-ppg-beats"} <= set(list_tasks())
    ecg, ppg = get_task("mitbih-beats"), get_task("bidmc-ppg-beats")
    assert (ecg.kind, ecg.modality, ecg.fs, ecg.score_key) == ("per-sample", "ECG", 100.0, "f1")
    assert (ppg.kind, ppg.modality, ppg.fs, ppg.score_key) == ("per-sample", "PPG", 50.0, "f1")


# -- targets, decoding, matching, scoring -----------------------------------------------------------
@pytest.mark.parametrize(("fs", "half_width_s"), [(100.0, 0.05), (50.0, 0.06), (360.0, 0.05)])
def test_targets_encode_exactly_the_beats_they_were_built_from(fs, half_width_s):
    rng = np.random.default_rng(int(fs))
    n = int(60 * fs)
    beats = np.cumsum(rng.integers(int(0.3 * fs), int(1.6 * fs), size=100))
    beats = beats[beats < n - fs]
    y = beat_targets(beats, n, fs, half_width_s)
    h = round(half_width_s * fs)
    assert y.shape == (1, n) and y.dtype == np.float32
    assert y.sum() == beats.size * (2 * h + 1)  # a box of 2h+1 samples per beat
    assert np.array_equal(target_beats(y, fs, half_width_s), beats)


def test_beats_cut_by_the_edge_of_an_item_are_recovered():
    fs, hw = 100.0, 0.05  # boxes of +-5 samples
    y = beat_targets([2, 50, 98], 100, fs, hw)
    assert y[0, :8].all() and not y[0, 8:45].any()
    assert target_beats(y, fs, hw).tolist() == [2, 50, 98]
    # beats just outside the item mark its edges and are found on the edge samples
    assert target_beats(beat_targets([-3, 103], 100, fs, hw), fs, hw).tolist() == [0, 99]


def test_decoding_keeps_maxima_over_the_threshold_a_refractory_period_apart():
    p = np.zeros(300)
    p[[50, 60, 150, 280, 299]] = [0.7, 0.9, 0.4, 0.8, 0.95]
    peaks, confidence = decode_beats(p, 100.0, 0.5, 0.2)
    # 50 loses to the higher 60 within 200 ms, 150 is under the threshold, 280 loses to 299 (the last sample)
    assert peaks.tolist() == [60, 299]
    assert confidence.tolist() == [0.9, 0.95]
    assert decode_beats(p, 100.0, 0.3, 0.05)[0].tolist() == [50, 60, 150, 280, 299]
    assert decode_beats(p[None], 100.0, 0.5, 0.2)[0].tolist() == [60, 299]  # (1, samples) as predicted
    with pytest.raises(CardiolensError, match="one probability per sample"):
        decode_beats(np.zeros((2, 10)), 100.0)


def test_decoding_drops_p_waves_near_a_beat_but_follows_a_fast_rhythm():
    fs, n = 100.0, 3000
    slow = np.arange(100, 2900, 100)  # 60 bpm, with a weaker bump 240 ms before each beat (a tall P wave)
    p = np.maximum(bumps(n, slow, 0.95), bumps(n, slow - 24, 0.7))
    assert np.array_equal(decode_beats(p, fs)[0], slow)
    assert decode_beats(p, fs, refractory_s=0.2)[0].size == 2 * slow.size  # a 200 ms period keeps the P waves
    fast = np.arange(50, 2950, 24)  # 250 bpm: a fixed 300 ms period would keep every other beat
    assert np.array_equal(decode_beats(bumps(n, fast, 0.9), fs)[0], fast)


def test_beats_are_moved_onto_the_peak_of_the_signal_at_its_own_rate():
    fs = 360.0
    t = np.arange(int(10 * fs))
    r = np.arange(200, 3400, 300)
    ecg = np.zeros(t.size)
    for k in r:
        ecg += np.exp(-0.5 * ((t - k) / 3.0) ** 2) - 0.3 * np.exp(-0.5 * ((t - k - 12) / 4.0) ** 2)
    rough = r + np.tile([-9, 7, 4, -5], r.size)[: r.size]  # where a 100 Hz model put them
    assert np.array_equal(refine_beats(ecg, fs, rough), r)
    assert np.array_equal(refine_beats(-ecg, fs, rough), r)  # an inverted lead: its (negative) R peaks
    ppg = np.cos(2 * np.pi * (t - 200) / 300)  # maxima at 200, 500, ...
    assert np.array_equal(refine_beats(ppg, fs, rough, "PPG"), r)
    probability = np.zeros(1000)
    probability[np.round(r * 100 / fs).astype(int)] = 0.9  # the same beats seen by a model at 100 Hz
    samples, confidence = locate_beats(probability, 100.0, ecg, fs)
    assert np.array_equal(samples, r) and np.all(confidence == 0.9)


def test_matching_is_one_to_one_and_closest_first_within_the_tolerance():
    ref = np.array([100, 200, 300])
    assert match_peaks(ref, np.array([115]), 15)[0] == 1
    assert match_peaks(ref, np.array([116]), 15)[0] == 0
    tp, offsets = match_peaks(ref, np.array([195, 203]), 15)  # two detections near one beat
    assert tp == 1 and offsets.tolist() == [3]
    assert match_peaks(np.array([100, 120]), np.array([110]), 15)[0] == 1  # one detection, two beats
    assert match_peaks(ref, np.array([], dtype=np.int64), 15)[0] == 0


def test_score_counts_missed_and_false_beats_at_150_ms():
    task, fs, n = get_task("mitbih-beats"), 100.0, 6000
    beats = np.arange(50, 5950, 80)  # every 800 ms
    y = beat_targets(beats, n, fs)
    kept = beats[2:]  # two beats missed
    extra = beats[10:13] + 54  # three detections halfway between two detections, 260 ms from a beat
    late = bumps(n, np.r_[kept + 14, extra])[None]  # 140 ms late: still within 150 ms
    s = task.score([y], [late])
    assert (s["tp"], s["fn"], s["fp"]) == (beats.size - 2, 2, 3)
    assert s["f1"] == pytest.approx(2 * s["tp"] / (2 * s["tp"] + 5))
    assert s["se"] == pytest.approx((beats.size - 2) / beats.size) and s["threshold"] == 0.5
    too_late = bumps(n, beats + 16)[None]  # 160 ms late: every beat missed, every detection false
    s = task.score([y], [too_late])
    assert (s["tp"], s["fn"], s["fp"], s["f1"]) == (0, beats.size, beats.size, 0.0)


def test_decoding_threshold_is_chosen_on_validation_items():
    task, fs, n = get_task("mitbih-beats"), 100.0, 3000
    beats = np.arange(40, 2960, 90)
    y = beat_targets(beats, n, fs)
    weak = bumps(n, beats, height=0.35)[None]  # a model whose beats peak at 0.35
    assert task.score([y], [weak])["tp"] == 0  # nothing at the default 0.5
    t = choose_threshold(task, [y], [weak])
    assert t <= 0.35
    assert task.score([y], [weak], [t])["f1"] == 1.0


def test_fusion_drops_unsupported_classical_beats_and_adds_confident_model_beats():
    fs, model_fs, n = 360.0, 100.0, 3600  # 10 s
    r = np.arange(180, 3500, 288)  # R peaks every 800 ms
    t = np.arange(n)[:, None]
    ecg = np.exp(-0.5 * ((t - r[None]) / 3.0) ** 2).sum(axis=1)
    missed, noise = r[4], r[7] + 144  # the classical detector misses a beat and fires between two
    slightly_off = r[2] + 29  # 80 ms off the R peak: still a beat for the scoring (150 ms)
    classical = np.sort(np.r_[np.setdiff1d(r, [missed, r[2]]), slightly_off, noise])
    at = np.round(r * model_fs / fs).astype(int)
    m = int(n * model_fs / fs)
    p = np.maximum(bumps(m, np.delete(at, 9), height=0.9), bumps(m, at[[9]], height=0.3))  # beat 9: barely seen
    fused = fuse_beats(classical, p, model_fs, ecg, fs, keep_threshold=0.1, add_threshold=0.8)
    assert noise not in fused  # a classical detection the model does not believe in is dropped
    assert missed in fused  # a beat only the model finds (0.9 >= 0.8) is added, on its R peak
    assert r[9] in fused and slightly_off in fused  # classical beats with support (0.3, 80 ms away) are kept
    assert np.array_equal(fused, np.sort(np.r_[np.setdiff1d(r, [r[2]]), slightly_off]))  # and nothing twice
    # 0 keeps every classical beat and None adds nothing: the classical detector alone
    assert np.array_equal(fuse_beats(classical, p, model_fs, ecg, fs, 0.0, None), classical)
    # a model beat under the adding threshold is not added; a keeping threshold over the support drops
    assert missed not in fuse_beats(classical, p, model_fs, ecg, fs, 0.1, 0.95)
    assert r[9] not in fuse_beats(classical, p, model_fs, ecg, fs, 0.5, 0.8)


def test_items_are_cut_halfway_between_beats_around_excluded_spans():
    fs, n = 100.0, 20_000
    beats = np.arange(37, n, 83)
    spans = complement([(5000, 5999)], n)  # 50-60 s left out (inclusive end)
    assert spans == [(0, 5000), (6000, n)]
    items, dropped = segment_spans(spans, beats, fs, 60.0, 10.0)
    assert not dropped and items[0] == (0, 5000) and items[-1][1] == n
    assert sum(b - a for a, b in items) == n - 1000
    for (_, b), (c, _) in zip(items[1:], items[2:], strict=False):
        assert b == c  # contiguous inside a span
    for a, b in items[1:]:
        assert 30 * fs <= b - a <= 90 * fs
    inner_cuts = [a for a, _ in items[2:]]
    assert inner_cuts and all(np.abs(beats - c).min() >= 40 for c in inner_cuts)  # halfway between beats
    assert segment_spans([(0, 500)], beats, fs, 60.0, 10.0) == ([], [(0, 500)])


def test_beat_tasks_refuse_another_sampling_rate(tmp_path):
    with pytest.raises(CardiolensError, match="defined at 100 Hz"):
        get_task("mitbih-beats").load(tmp_path, 250.0)
    with pytest.raises(CardiolensError, match="defined at 50 Hz"):
        get_task("bidmc-ppg-beats").load(tmp_path, 100.0)


# -- real data --------------------------------------------------------------------------------------
def test_mitbih_items_hold_every_annotated_beat_outside_flutter(mitdb_dir):
    from cardiolens.datasets import MITBIH
    from cardiolens.tasks.tasks_beats import mitbih_reference

    task = get_task("mitbih-beats")
    data = task.load(mitdb_dir, 100.0, records=["101:0", "207"], progress=False)  # item ids name their record
    db = MITBIH(mitdb_dir)
    assert set(data.groups) == {"101", "207"} and data.leads == ["MLII"]
    for rid in ("101", "207"):
        beats, episodes = mitbih_reference(db, rid)
        mine = [i for i, item in enumerate(data.item_ids) if item.startswith(f"{rid}:")]
        found, covered = [], 0
        for i in mine:
            start = int(data.item_ids[i].split(":")[1])
            x, y = data.signals[i], data.targets[i]
            assert x.shape == y.shape and x.dtype == np.float32 and 10 * 100 <= x.shape[1] <= 90 * 100
            found.append(target_beats(y, 100.0) + round(start * 100 / 360))
            covered += x.shape[1]
        found = np.concatenate(found)
        expected = np.round(beats * 100 / 360).astype(np.int64)
        if rid == "101":  # the whole record, every beat, where it was annotated (10 ms resolution)
            assert np.array_equal(found, expected) and abs(covered - 650_000 * 100 / 360) <= 2
        else:  # 207: nothing from its six flutter episodes, every beat of the long pieces between them
            assert len(episodes) == 6
            in_vf = np.zeros(found.size, dtype=bool)
            for a, b in episodes:
                in_vf |= (found >= a * 100 / 360) & (found <= b * 100 / 360)
            assert not in_vf.any()
            assert np.isin(found, expected).all() and found.size >= expected.size - 15


def test_mitbih_every_lead_gives_items_of_its_own_with_the_same_beats(mitdb_dir):
    task = get_task("mitbih-beats")
    first = task.load(mitdb_dir, 100.0, records=["101"], progress=False)
    both = task.load(mitdb_dir, 100.0, records=["101"], leads="all", progress=False)
    assert len(both) == 2 * len(first) and set(both.groups) == {"101"}
    assert both.info["lead_per_record"] == {"101": ["MLII", "V1"]}
    extra = [i for i, item in enumerate(both.item_ids) if item.endswith(":V1")]
    assert [both.item_ids[i].removesuffix(":V1") for i in extra] == list(first.item_ids)
    for k, i in enumerate(extra):  # same beat targets, another lead's signal
        np.testing.assert_array_equal(both.targets[i], first.targets[k])
        assert not np.allclose(both.signals[i], first.signals[k])
    with pytest.raises(CardiolensError, match="leads must be 'first' or 'all'"):
        task.load(mitdb_dir, 100.0, records=["101"], leads="V1", progress=False)


def test_ppg_reference_pulses_are_systolic_peaks_the_classical_detector_agrees_with(bidmc_dir):
    from cardiolens.datasets import BIDMC
    from cardiolens.signal.peaks import ppg_peaks

    db = BIDMC(bidmc_dir)
    ecg, ppg = db.ecg("bidmc01"), db.ppg("bidmc01")
    x = ppg.signal[0].astype(np.float64)
    ref = ppg_reference(ecg.signal[0], x, ppg.fs)
    assert 0.4 < ref.lag_s < 0.9 and ref.trusted_fraction > 0.9
    assert abs(ref.pulses.size - ref.r_peaks.size) < 0.05 * ref.r_peaks.size  # one pulse per heart beat
    assert np.all(np.diff(ref.pulses) >= 0.3 * ppg.fs)
    # an independent check of the rule: Elgendi's PPG detector finds the same pulses
    found = ppg_peaks(x, ppg.fs)
    found = found[np.any([(found >= a) & (found < b) for a, b in ref.spans], axis=0)]
    tp, _ = match_peaks(ref.pulses, found, round(0.15 * ppg.fs))
    assert tp / ref.pulses.size > 0.97 and tp / found.size > 0.97
    # the task's items carry exactly these pulses at 50 Hz
    data = get_task("bidmc-ppg-beats").load(bidmc_dir, 50.0, records=["bidmc01"], progress=False)
    got = np.concatenate(
        [
            target_beats(y, 50.0, 0.06) + round(int(i.split(":")[1]) * 50 / 125)
            for i, y in zip(data.item_ids, data.targets, strict=True)
        ]
    )
    assert np.abs(got - np.round(ref.pulses * 50 / 125)).max() <= 1 and got.size == ref.pulses.size


# -- the shipped model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def beats_ecg():
    from cardiolens.models import load_model

    return load_model("beats-ecg")


def test_shipped_beats_ecg_finds_the_beats_of_a_record_it_never_saw(beats_ecg, mitdb_dir):
    from cardiolens.io import load_record

    assert beats_ecg.config.task == "mitbih-beats" and beats_ecg.config.thresholds
    record = load_record(mitdb_dir / "118.hea").crop(0, 600)  # 10 minutes, RBBB with atrial premature beats
    samples, confidence = detect_beats(beats_ecg, record)
    ann = record.annotations
    reference = ann.sample[np.isin(ann.symbol, list("NLRBAaJSVrFejnE/fQ?"))]
    tp, offsets = match_peaks(reference, samples, round(0.15 * record.fs))
    f1 = 2 * tp / (reference.size + samples.size)
    assert f1 > 0.995, (tp, reference.size, samples.size)
    assert np.median(np.abs(offsets)) * 1000 / record.fs < 10  # moved onto the R peak, not just near it
    assert confidence.shape == samples.shape and confidence.min() >= beats_ecg.config.thresholds[0]


def test_shipped_beats_ecg_marks_the_beats_of_the_demo_signal(beats_ecg):
    from cardiolens.analysis import find_beats, simulated_record

    record = simulated_record(20)  # neurokit2's ECG at 72 bpm, 500 Hz, leads II and PLETH
    samples, _ = detect_beats(beats_ecg, record)  # picks lead II, the ECG
    assert 60 / np.median(np.diff(samples) / record.fs) == pytest.approx(72, abs=3)
    classical = find_beats(record, "II").samples
    tp, _ = match_peaks(classical, samples, round(0.15 * record.fs))
    assert tp == classical.size == samples.size


def test_detect_beats_refuses_records_it_cannot_read(beats_ecg):
    from cardiolens.models import build_task_model, create_model

    t = np.arange(0, 3, 1 / 360)
    short = Record(np.sin(2 * np.pi * 1.2 * t)[None], 360.0, leads=["II"], name="short")
    with pytest.raises(RecordError, match="shorter than the 5 s"):
        detect_beats(beats_ecg, short)
    t = np.arange(0, 30, 1 / 125)
    ppg_only = Record(np.sin(2 * np.pi * 1.2 * t)[None], 125.0, leads=["PLETH"], name="ppg")
    with pytest.raises(RecordError, match="no ECG lead"):
        detect_beats(beats_ecg, ppg_only)
    both = Record(np.vstack([np.sin(2 * np.pi * 1.2 * t), np.cos(2 * np.pi * 1.2 * t)]), 125.0, leads=["II", "PLETH"])
    with pytest.raises(RecordError, match="'PLETH' is PPG"):
        detect_beats(beats_ecg, both, lead="PLETH")
    classifier = build_task_model(
        create_model("resnet1d", widths=(8,), blocks=(1,), strides=(1,), dilations=(1,)),
        task="cinc2017-rhythm",
        kind="multiclass",
        classes=["N", "A", "O", "~"],
        fs=100.0,
        leads=["I"],
        window=500,
        backbone_name="resnet1d",
    )
    with pytest.raises(ModelInputError, match="not a beat detector"):
        detect_beats(classifier, both)
