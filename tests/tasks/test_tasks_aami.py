"""AAMI beat classification (``mitbih-aami``): RR features and beat windows worked out by hand, scores,
a simulated MIT-BIH folder the test writes with ``wfdb``, the real records, and whole fine-tuning runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.models import create_model, load_model, save_checkpoint
from cardiolens.tasks.aami_features import (
    ENVELOPE_FEATURES,
    FEATURE_NAMES,
    MORPHOLOGY_FEATURES,
    SHAPE_CONTEXT_FEATURES,
    aami_feature_matrix,
    envelope_features,
    envelope_matrix,
    envelope_names,
    feature_names,
    morphology_features,
    rr_irregularity,
    shape_context_features,
    shape_context_matrix,
    shape_context_names,
    standardise_by_record,
)
from cardiolens.tasks.finetune import FinetuneConfig, finetune
from cardiolens.tasks.suite import get_task, load_task_data
from cardiolens.tasks.tasks_aami import (
    AAMI_TASK_CLASSES,
    RR_FEATURES,
    aami_report,
    aami_score,
    beat_windows,
    load_aami,
    median_beat,
    record_set,
    rr_features,
)
from cardiolens.tasks.trees import balanced_weights, boosted_trees

torch.set_num_threads(1)

# AAMI EC57 classes of the MIT-BIH beat symbols, written out here independently of the catalogue
AAMI_OF = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"), "F": "F"}
BEATS = set("NLRBAaJSVrFejnE/fQ?")


# -- RR features and windows ----------------------------------------------------------------------
def test_rr_features_by_hand():
    # beats at 0, 1, 2, 2.5, 4, 5 s: RR 1, 1, 0.5, 1.5, 1 -> record mean 1.0
    feats = rr_features([0, 100, 200, 250, 400, 500], fs=100, local_beats=2)
    assert feats.shape == (6, 5) and feats.dtype == np.float32
    assert np.isnan(feats[0]).all() and np.isnan(feats[-1]).all()  # pre- / post-RR undefined
    # beat at 2.5 s (premature): pre 0.5, post 1.5; local mean of its own pre-RR and the next (k=2): 1.0
    pre, post, local = 0.5, 1.5, (0.5 + 1.5) / 2
    assert feats[3] == pytest.approx(np.log([pre, post, pre / local, post / local, local]), abs=1e-6)
    # beat at 1 s: local mean clipped at the record's start: (1 + 1) / 2
    assert feats[1] == pytest.approx([0, 0, 0, 0, 0], abs=1e-6)
    # the default local window (10 intervals) spans the whole short record: local mean = record mean
    assert rr_features([0, 100, 200, 250, 400, 500], fs=100)[3, 4] == pytest.approx(0.0, abs=1e-6)


def test_rr_features_do_not_depend_on_the_heart_rate():
    slow = rr_features(np.cumsum([0, 100, 100, 60, 140, 100, 100]), fs=100)
    fast = rr_features(np.cumsum([0, 50, 50, 30, 70, 50, 50]), fs=100)
    assert np.allclose(slow, fast, equal_nan=True)


def test_rr_features_refuse_too_few_or_unsorted_beats():
    with pytest.raises(CardiolensError, match="at least 3"):
        rr_features([0, 100], fs=100)
    with pytest.raises(CardiolensError, match="increasing"):
        rr_features([0, 200, 100], fs=100)


def test_beat_windows_are_centred_and_padded_with_the_edge_values():
    x = np.arange(20, dtype=np.float32)[None, :] * np.array([[1.0], [-1.0]], dtype=np.float32)  # (2, 20)
    w = beat_windows(x, [10, 1, 19], window=6)
    assert w.shape == (3, 2, 6)
    assert w[0, 0].tolist() == [7, 8, 9, 10, 11, 12]  # the beat sits at window // 2
    assert w[0, 1].tolist() == [-7, -8, -9, -10, -11, -12]
    assert w[1, 0].tolist() == [0, 0, 0, 1, 2, 3]  # before the start: the first value
    assert w[2, 0].tolist() == [16, 17, 18, 19, 19, 19]  # past the end: the last value


def test_record_sets_by_name_number_and_list():
    assert len(record_set("DS1")) == 22 and len(record_set("DS2")) == 22
    assert not set(record_set("DS1")) & set(record_set("DS2"))
    assert record_set("ds2,101") == [*record_set("DS2"), "101"]
    assert record_set([100, "7"]) == ["100", "007"]
    with pytest.raises(CardiolensError, match="sets: DS1, DS2, PACED"):
        record_set("DS3")


# -- scores ---------------------------------------------------------------------------------------
def test_aami_score_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3])
    pred = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2])  # one N called S, one S called N, the F called V
    probs = np.eye(4)[pred] * 0.7 + 0.075
    s = aami_score(y, probs)
    assert s["Se_N"] == pytest.approx(3 / 4) and s["PPV_N"] == pytest.approx(3 / 4)
    assert s["Se_S"] == pytest.approx(1 / 2) and s["PPV_S"] == pytest.approx(1 / 2)
    assert s["Se_V"] == 1.0 and s["PPV_V"] == pytest.approx(2 / 3) and s["F1_V"] == pytest.approx(0.8)
    assert s["Se_F"] == 0.0 and np.isnan(s["PPV_F"]) and s["F1_F"] == 0.0
    assert s["sv_f1"] == pytest.approx((0.5 + 0.8) / 2)
    assert s["macro_f1"] == pytest.approx((0.75 + 0.5 + 0.8 + 0.0) / 4)
    assert s["accuracy"] == pytest.approx(6 / 9)
    # a class absent from both reference and prediction is undefined, not zero
    assert np.isnan(aami_score([0, 2], np.eye(4)[[0, 2]])["F1_S"])
    assert aami_score([0, 2], np.eye(4)[[0, 2]])["sv_f1"] == 1.0
    report = aami_report(y, probs)
    assert report["confusion"]["matrix"] == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 1, 0]]
    assert report["reference_counts"] == {"N": 4, "S": 2, "V": 2, "F": 1}
    json.dumps(report)  # plain JSON values


# -- a simulated MIT-BIH folder ---------------------------------------------------------------------
FS = 360


def _simulated_record(folder: Path, name: str, seed: int, leads=("MLII", "V1"), paced=False, seconds=60):
    """A record with N beats every ~0.8 s, premature S beats, wide V beats, F beats and one Q beat."""
    rng = np.random.default_rng(seed)
    n = seconds * FS
    t = np.arange(n)
    x = 0.02 * rng.standard_normal((n, len(leads)))
    samples, symbols, k, pos = [], [], 0, int(0.5 * FS)
    while pos < n - int(0.5 * FS):
        if paced:
            symbol = "/"
        else:
            symbol = {5: "A", 9: "V", 14: "F", 23: "Q"}.get(k % 25, "N")
            symbol = "L" if symbol == "N" and k % 7 == 3 else symbol
        width, amp = {"V": (0.05, -1.6), "F": (0.03, -0.6)}.get(symbol, (0.012, 1.2))
        for c in range(len(leads)):
            x[:, c] += amp * (1 - 0.3 * c) * np.exp(-0.5 * ((t - pos) / (width * FS)) ** 2)
        samples.append(pos)
        symbols.append(symbol)
        k += 1
        premature = not paced and k % 25 in (5, 9)  # the next beat is an S or a V: it comes early
        pos += int((0.5 if premature else 0.8) * FS) + int(rng.integers(-5, 6))
    wfdb.wrsamp(
        name,
        fs=FS,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=x,
        fmt=["212"] * len(leads),
        adc_gain=[200.0] * len(leads),
        baseline=[1024] * len(leads),
        write_dir=str(folder),
    )
    # a rhythm annotation at the start: not a beat
    wfdb.wrann(
        name,
        "atr",
        np.array([1, *samples]),
        symbol=["+", *symbols],
        aux_note=["(N", *[""] * len(symbols)],
        write_dir=str(folder),
    )
    return np.array(samples), symbols


@pytest.fixture(scope="module")
def simulated_mitdb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mitdb")
    truth = {}
    for i, name in enumerate(["101", "106", "108", "109"]):
        truth[name] = _simulated_record(folder, name, seed=i)
    truth["102"] = _simulated_record(folder, "102", seed=9, leads=("V5", "V2"), paced=True)
    return folder, truth


def test_beats_become_items_with_aami_classes_rr_features_and_centred_windows(simulated_mitdb):
    folder, truth = simulated_mitdb
    data = load_aami(folder, 100.0, progress=False)
    assert data.info["excluded_records"] == ["102"] and data.leads == ["MLII"]
    expected_ids, expected_classes = [], []
    for name in ["101", "106", "108", "109"]:
        samples, symbols = truth[name]
        for s, sym in list(zip(samples, symbols, strict=True))[1:-1]:  # first and last beat: no RR
            if sym in AAMI_OF:  # class Q is left out
                expected_ids.append(f"{name}:{s}")
                expected_classes.append(AAMI_OF[sym])
    assert data.item_ids.tolist() == expected_ids
    assert [AAMI_TASK_CLASSES[k] for k in data.targets] == expected_classes
    assert set(expected_classes) == {"N", "S", "V", "F"}
    assert data.groups.tolist() == [i.split(":")[0] for i in expected_ids]
    assert all(x.shape == (1, 200) for x in data.signals) and data.extra.shape == (len(data), 5)
    # the annotated beat is at the window's centre: N beats peak there (their neighbours 0.5-0.8 s away)
    normal = [i for i, c in enumerate(expected_classes) if c == "N"]
    assert all(abs(int(np.argmax(data.signals[i][0, 75:126])) - 25) <= 1 for i in normal)
    assert all(data.signals[i][0, 100] > 0.8 for i in normal)
    # the RR features are those of all the record's beats (the Q beat too), at 360 Hz
    samples, _ = truth["101"]
    rr = rr_features(samples, FS)
    first = [i for i, g in enumerate(data.item_ids) if g.startswith("101:")]
    kept = [int(i.split(":")[1]) for i in data.item_ids[first]]
    assert np.allclose(data.extra[first], rr[np.searchsorted(samples, kept)])
    premature = data.extra[np.asarray(expected_classes) == "S", 2]  # log(pre / local)
    assert (premature < -0.2).all()


def test_the_template_option_adds_each_records_median_beat(simulated_mitdb):
    assert median_beat(np.array([[[0, 1, 5]], [[2, 1, 1]], [[1, 9, 2]]])).tolist() == [[1, 1, 2]]
    folder, _ = simulated_mitdb
    plain = load_aami(folder, 100.0, records=["101", "106"], progress=False)
    data = load_aami(folder, 100.0, records=["101", "106"], template=True, progress=False)
    assert data.leads == ["MLII", "MLII median"] and all(x.shape == (2, 200) for x in data.signals)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(plain.signals, data.signals, strict=True))
    of_101 = [x[1] for x, i in zip(data.signals, data.item_ids, strict=True) if i.startswith("101:")]
    assert all(np.array_equal(t, of_101[0]) for t in of_101)  # one template per record
    assert abs(int(np.argmax(of_101[0])) - 100) <= 1  # the typical (N) beat peaks at the centre
    assert not np.array_equal(of_101[0], data.signals[-1][1])


def test_the_other_lead_is_the_records_lead_not_named_and_gives_features_per_lead(simulated_mitdb):
    folder, _ = simulated_mitdb
    named = load_aami(folder, 250.0, records=["101"], leads=("MLII", "V1"), template=True, progress=False)
    other = load_aami(folder, 250.0, records=["101"], leads=("MLII", "other"), template=True, progress=False)
    assert other.leads == ["MLII", "other", "MLII median", "other median"]
    assert all(np.array_equal(a, b) for a, b in zip(named.signals, other.signals, strict=True))
    features = aami_feature_matrix(other)
    assert features.shape == (len(other), len(feature_names(2))) and len(feature_names(2)) == len(FEATURE_NAMES) + 22
    one = aami_feature_matrix(load_aami(folder, 250.0, records=["101"], template=True, progress=False))
    assert np.allclose(
        features[:, : len(RR_FEATURES) + len(MORPHOLOGY_FEATURES)],
        one[:, : len(RR_FEATURES) + len(MORPHOLOGY_FEATURES)],
    )


def test_paced_records_are_kept_only_when_asked_and_their_leads_are_checked(simulated_mitdb):
    folder, _ = simulated_mitdb
    with pytest.raises(DatasetError, match="record 102 has no lead MLII \\(it has V5, V2\\)"):
        load_aami(folder, 100.0, include_paced=True, progress=False)
    data = load_aami(folder, 100.0, records=["102"], include_paced=True, leads=["V5"], progress=False)
    assert len(data) == 0 and data.info["excluded_records"] == []  # paced beats are class Q


def test_missing_records_are_named(simulated_mitdb):
    folder, _ = simulated_mitdb
    with pytest.raises(DatasetError, match="not in this folder: 100 103 105 .* 234 \\(22 of 26"):
        load_aami(folder, 100.0, train_records="101,106,108,109", test_records="DS2", progress=False)
    with pytest.raises(CardiolensError, match="both train and test"):
        load_aami(folder, 100.0, train_records="101,106", test_records="106", progress=False)
    with pytest.raises(CardiolensError, match="both train_records and test_records"):
        load_aami(folder, 100.0, train_records="101", progress=False)


def test_a_fixed_train_test_split_is_carried_by_the_items(simulated_mitdb):
    folder, _ = simulated_mitdb
    data = load_aami(folder, 100.0, train_records="101,106,108", test_records="109", progress=False)
    split = data.info["split"]
    assert set(split) == set(data.item_ids.tolist())
    assert {split[i] for i in data.item_ids if i.startswith("109:")} == {"test"}
    assert {split[i] for i in data.item_ids if not i.startswith("109:")} == {"train"}


def test_finetune_on_beats_groups_folds_by_record_and_reads_the_rr_features(simulated_mitdb, tmp_path):
    folder, _ = simulated_mitdb
    cfg = FinetuneConfig(
        task="mitbih-aami",
        data=str(folder),
        backbone="resnet1d",
        folds=2,
        val_fraction=0.5,  # 2 records left for training and validation in each fold
        epochs=1,
        min_steps=0,  # one epoch, however few the items
        batch_size=32,
        out=str(tmp_path / "run"),
        progress=False,
        bootstrap=30,  # the intervals are not what this test checks
        cache_dir=str(tmp_path / "cache"),
    )
    results = finetune(cfg)
    assert set(results["folds"]) == {"0", "1"} and results["patients"] == 4
    folds = json.loads((tmp_path / "run" / "folds.json").read_text())
    by_record: dict[str, set] = {}
    for item, fold in folds.items():
        by_record.setdefault(item.split(":")[0], set()).add(fold)
    assert all(len(f) == 1 for f in by_record.values())  # a record never spans two folds
    for key in ("sv_f1", "F1_V", "Se_S", "accuracy"):
        assert 0 <= results["oof"][key]["value"] <= 1
    model = load_model(tmp_path / "run" / "fold-0" / "model")
    assert model.config.n_extra == 5 and model.config.window == 200 and model.config.classes == ["N", "S", "V", "F"]
    with np.load(tmp_path / "run" / "oof.npz") as z:
        assert z["probs"].shape == (results["items"], 4)
        assert np.allclose(z["probs"].sum(axis=1), 1, atol=1e-5)


def test_train_and_test_records_run_as_one_fixed_split(simulated_mitdb, tmp_path):
    folder, _ = simulated_mitdb
    cfg = FinetuneConfig(
        task="mitbih-aami",
        data=str(folder),
        backbone="resnet1d",
        epochs=1,
        min_steps=0,  # one epoch, however few the items
        val_fraction=0.5,
        batch_size=32,
        load_options={"train_records": "101,106,108", "test_records": "109"},
        out=str(tmp_path / "run"),
        progress=False,
        bootstrap=30,
        cache_dir=str(tmp_path / "cache"),
    )
    results = finetune(cfg)
    assert list(results["folds"]) == ["0"] and results["split"] == "fixed" and results["patients"] == 1
    split = json.loads((tmp_path / "run" / "fold-0" / "model" / "split.json").read_text())
    assert {i.split(":")[0] for i in split["test"]} == {"109"}
    assert {i.split(":")[0] for i in split["train"] + split["val"]} == {"101", "106", "108"}


def test_linear_probe_on_a_gpt_reads_the_rr_features_too(simulated_mitdb, tmp_path):
    folder, _ = simulated_mitdb
    gpt = create_model("gpt", n_layer=1, n_head=2, n_embd=16, block_size=256, dropout=0.0, fs=100.0)
    save_checkpoint(gpt, tmp_path / "tiny-gpt", "a tiny untrained GPT for a test")
    cfg = FinetuneConfig(
        task="mitbih-aami",
        data=str(folder),
        backbone=str(tmp_path / "tiny-gpt"),
        policy="linear",
        folds=2,
        fold_ids=[0],
        val_fraction=0.5,
        epochs=1,
        min_steps=0,  # one epoch, however few the items
        out=str(tmp_path / "probe"),
        progress=False,
        bootstrap=30,  # the intervals are not what this test checks
        cache_dir=str(tmp_path / "cache"),
    )
    results = finetune(cfg)
    head = load_model(tmp_path / "probe" / "fold-0" / "model").head
    assert head.in_features == 16 + 5
    assert 0 <= results["folds"]["0"]["test"]["accuracy"] <= 1


def test_unknown_task_lists_the_beat_task():
    with pytest.raises(CardiolensError, match="tasks: .*mitbih-aami"):
        get_task("mitbih-aaami")


# -- patient-relative beat features ------------------------------------------------------------------
def _pulse(width_s: float, amp: float, fs: float = 250.0, shift_s: float = 0.0) -> np.ndarray:
    t = (np.arange(500) - 250) / fs  # a 2 s window, the beat at its centre
    return amp * np.exp(-0.5 * ((t - shift_s) / width_s) ** 2)


def _feature(features: np.ndarray, name: str) -> np.ndarray:
    return features[:, MORPHOLOGY_FEATURES.index(name)]


def test_a_beat_like_its_records_median_beat_has_unit_features_and_a_wide_inverted_one_does_not():
    normal, wide = _pulse(0.012, 1.2), _pulse(0.05, -1.6)
    f = morphology_features(np.stack([normal, wide]), np.stack([normal, normal]), 250.0)
    assert _feature(f, "corr_qrs")[0] == pytest.approx(1) and _feature(f, "rms_difference")[0] == pytest.approx(0)
    assert _feature(f, "qrs_height")[0] == pytest.approx(1, abs=1e-3)
    assert _feature(f, "slope_ratio")[0] == pytest.approx(1, abs=1e-3)
    assert _feature(f, "qrs_max_time")[0] == 0 and _feature(f, "qrs_min")[0] == pytest.approx(0, abs=1e-3)
    assert _feature(f, "corr_qrs")[1] < -0.5 and _feature(f, "rms_difference")[1] > 0.3
    assert _feature(f, "qrs_time_above_30pct")[1] > 3 * _feature(f, "qrs_time_above_30pct")[0]
    # a record's gain and offset change nothing: amplitudes are in units of its median beat's QRS height
    scaled = morphology_features(5 * np.stack([normal, wide]) + 2, 5 * np.stack([normal, normal]) + 2, 250.0)
    assert np.allclose(scaled, f)
    # a beat 40 ms late peaks 40 ms after the annotation
    late = morphology_features(_pulse(0.012, 1.2, shift_s=0.04)[None], normal[None], 250.0)
    assert _feature(late, "qrs_max_time")[0] == pytest.approx(0.04)


def test_morphology_features_refuse_mismatched_or_too_short_windows():
    with pytest.raises(CardiolensError, match="must both be \\(N, window\\)"):
        morphology_features(np.zeros((3, 500)), np.zeros((2, 500)), 250.0)
    with pytest.raises(CardiolensError, match="0.25 s before and 0.45 s after"):
        morphology_features(np.zeros((3, 100)), np.zeros((3, 100)), 250.0)


def test_rr_irregularity_is_zero_for_a_regular_rhythm_at_any_rate_and_high_for_an_irregular_one():
    for rr in (150, 300):
        assert np.allclose(rr_irregularity(np.arange(40) * rr), 0)
    rng = np.random.default_rng(0)
    af = np.cumsum(rng.uniform(100, 300, size=80))
    irregular = rr_irregularity(af)
    assert irregular.shape == (80, 3) and (irregular[20:60] > 0.1).all()
    # one premature beat in a regular rhythm raises the local mean near it only
    ectopic = np.arange(40) * 200.0
    ectopic[20] -= 80
    local = rr_irregularity(ectopic, half_widths=(2,))[:, 0]
    assert local[19:23].min() > 0.1 and local[:15].max() == 0 and local[26:].max() == 0
    with pytest.raises(CardiolensError, match="strictly increasing"):
        rr_irregularity([0, 100, 100])


def test_shape_context_finds_rare_beats_where_the_records_own_beat_drifts():
    # 300 normal beats whose QRS turns from upright to inverted through the record (as in MIT-BIH
    # 108), and every 20th beat a wide ectopic one
    drift = np.linspace(1.0, -1.0, 300)
    beats = np.stack([_pulse(0.012, 1.2) * d + _pulse(0.03, 0.4, shift_s=0.02) for d in drift])
    ectopic = np.arange(10, 300, 20)
    beats[ectopic] = _pulse(0.06, -1.5)
    f = shape_context_features(beats, 250.0)
    assert f.shape == (300, len(SHAPE_CONTEXT_FEATURES))
    column = {n: f[:, i] for i, n in enumerate(SHAPE_CONTEXT_FEATURES)}
    normal = np.setdiff1d(np.arange(300), ectopic)
    # the ectopic shape is 15 of 300 beats, and rare among each beat's neighbours
    assert column["qrs_prevalence_95"][ectopic] == pytest.approx(15 / 300)
    assert column["qrs_prevalence_local_90"][ectopic].max() < 0.1
    # near the polarity turn a normal shape is shared by fewer beats, still far more than the ectopic one
    assert np.median(column["qrs_prevalence_local_90"][normal]) > 0.8
    assert column["qrs_prevalence_local_90"][normal].min() > 0.4
    # against its neighbours' median beat every normal beat fits, though the record's median beat does not
    assert column["corr_qrs_local"][normal].min() > 0.95 and column["corr_qrs_local"][ectopic].max() < 0.5
    assert column["rms_difference_local"][ectopic].min() > 5 * column["rms_difference_local"][normal].max()
    record_median = np.median(beats, axis=0)
    far_from_it = morphology_features(beats[normal], np.broadcast_to(record_median, beats[normal].shape), 250.0)
    assert _feature(far_from_it, "corr_qrs").min() < 0  # what the record-median features miss
    with pytest.raises(CardiolensError, match="0.25 s before and 0.45 s after"):
        shape_context_features(beats[:, 200:300], 250.0)


def test_envelope_features_ignore_a_flipped_qrs_and_see_a_wide_one():
    normal = _pulse(0.012, 1.2) + _pulse(0.03, 0.4, shift_s=0.02)
    flipped, wide = -normal, _pulse(0.04, -1.5)
    template = np.broadcast_to(normal, (3, normal.size))
    f = envelope_features(np.stack([normal, flipped, wide]), template, 250.0)
    assert f.shape == (3, len(ENVELOPE_FEATURES))
    corr, width = f[:, 0], f[:, 1]
    assert corr[0] == pytest.approx(1) and width[0] == pytest.approx(1)
    assert corr[1] == pytest.approx(1) and width[1] == pytest.approx(1)  # negated: the same envelope
    assert width[2] > 2 and corr[2] < corr[0]  # about 3x as wide a QRS
    signed = morphology_features(np.stack([normal, flipped]), template[:2], 250.0)
    assert _feature(signed, "corr_qrs")[1] == pytest.approx(-1)  # what the signed features say instead
    with pytest.raises(CardiolensError, match="must both be \\(N, window\\)"):
        envelope_features(np.zeros((3, 500)), np.zeros((2, 500)), 250.0)
    with pytest.raises(CardiolensError, match="R \\+- 0.15 s"):
        envelope_features(np.zeros((3, 60)), np.zeros((3, 60)), 250.0)


def test_envelope_matrix_of_items_adds_per_record_standardised_copies(simulated_mitdb):
    folder, _ = simulated_mitdb
    data = load_aami(folder, 250.0, template=True, progress=False)
    f = envelope_matrix(data)
    assert f.shape == (len(data), len(envelope_names())) and np.isfinite(f).all()
    records = np.array([i.split(":")[0] for i in data.item_ids.tolist()])
    for r in np.unique(records):  # each standardised copy has median 0 within its record
        assert np.median(f[records == r, len(ENVELOPE_FEATURES) :], axis=0) == pytest.approx(0, abs=1e-9)


def test_shape_context_of_items_follows_each_records_beat_order(simulated_mitdb):
    folder, _ = simulated_mitdb
    data = load_aami(folder, 250.0, template=True, progress=False)
    matrix = shape_context_matrix(data)
    assert matrix.shape == (len(data), len(shape_context_names())) and np.isfinite(matrix).all()
    one = np.flatnonzero(np.char.startswith(data.item_ids.astype(str), "109:"))
    alone = shape_context_features(np.stack([data.signals[i][0] for i in one]), 250.0)
    assert np.allclose(matrix[one, : len(SHAPE_CONTEXT_FEATURES)], alone)


def test_standardising_within_records_removes_each_records_scale_and_offset():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 3))
    z = standardise_by_record(np.concatenate([a, 3 * a + 7]), ["a"] * 50 + ["b"] * 50)
    assert np.allclose(z[:50], z[50:], rtol=5e-3, atol=5e-3) and np.allclose(np.median(z[:50], axis=0), 0)
    assert balanced_weights([0, 0, 0, 1], 2).tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2])


def test_boosted_trees_on_patient_relative_features_find_the_v_beats_of_an_unseen_record(simulated_mitdb):
    folder, _ = simulated_mitdb
    with pytest.raises(CardiolensError, match="template=True"):
        aami_feature_matrix(load_aami(folder, 250.0, records=["101"], progress=False))
    data = load_aami(folder, 250.0, template=True, progress=False)
    features = aami_feature_matrix(data)
    assert features.shape == (len(data), len(FEATURE_NAMES)) and np.isfinite(features).all()
    test = np.char.startswith(data.item_ids.astype(str), "109:")
    model = boosted_trees().fit(
        features[~test], data.targets[~test], sample_weight=balanced_weights(data.targets[~test], 4)
    )
    score = aami_score(data.targets[test], model.predict_proba(features[test]))
    assert score["F1_V"] > 0.9 and score["Se_N"] > 0.9


# -- real records -------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_real_records_load_as_beats_with_the_annotated_aami_counts(mitdb_dir, tmp_path):
    data = load_task_data("mitbih-aami", mitdb_dir, 100.0, cache_dir=tmp_path, records=["208", "209"], progress=False)
    for rid in ("208", "209"):
        ann = wfdb.rdann(str(mitdb_dir / rid), "atr")
        beats = [s for s in ann.symbol if s in BEATS][1:-1]
        expected = {c: sum(AAMI_OF.get(s) == c for s in beats) for c in AAMI_TASK_CLASSES}
        mine = data.targets[np.char.startswith(data.item_ids.astype(str), f"{rid}:")]
        assert {c: int(np.sum(mine == k)) for k, c in enumerate(AAMI_TASK_CLASSES)} == expected
    assert data.info["class_counts"]["F"] > 300 and data.info["class_counts"]["S"] > 300  # 208: F, 209: S
    assert np.isfinite(data.extra).all() and data.signals[0].shape == (1, 200)
    again = load_task_data("mitbih-aami", mitdb_dir, 100.0, cache_dir=tmp_path, records=["208", "209"], progress=False)
    assert np.array_equal(again.extra, data.extra) and again.item_ids.tolist() == data.item_ids.tolist()


@pytest.mark.realdata
def test_real_ventricular_beats_differ_from_their_records_median_beat_and_premature_beats_are_early(mitdb_dir):
    data = load_aami(mitdb_dir, 250.0, records=["208", "209"], template=True, progress=False)
    features = aami_feature_matrix(data)
    corr = features[:, FEATURE_NAMES.index("corr_qrs")]
    pre_rr = features[:, FEATURE_NAMES.index("log_pre_rr")]
    n, s, v = (data.targets == AAMI_TASK_CLASSES.index(c) for c in "NSV")
    assert np.median(corr[n]) > 0.9 and np.median(corr[v]) < 0.75  # 208: 992 V beats
    assert np.median(pre_rr[s]) < -0.2 < np.median(pre_rr[n])  # 209: 383 S beats, before their time


@pytest.mark.realdata
def test_real_folder_excludes_paced_records_and_names_the_missing_ds2(mitdb_dir):
    data = load_aami(mitdb_dir, 100.0, records=["101", "102"], progress=False)
    assert data.info["excluded_records"] == ["102"] and set(data.groups) == {"101"}
    with pytest.raises(DatasetError, match="not in this folder: 100 103 105"):
        load_aami(mitdb_dir, 100.0, train_records="DS1", test_records="DS2", progress=False)
