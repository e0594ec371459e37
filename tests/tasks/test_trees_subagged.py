"""The subagged tree ensemble of the CinC 2017 benchmark (cardiolens.tasks.trees.SubaggedTrees)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens.tasks.trees import SubaggedTrees


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + 2 * (x[:, 2] > 1.5)  # classes 0-3, class 2/3 rarer
    return x, y


def test_members_see_a_stratified_share_and_their_mean_is_the_prediction():
    x, y = _data()
    bag = SubaggedTrees(members=3, share=0.8, seed=5).fit(x, y)
    assert len(bag.models_) == 3
    for model in bag.models_:
        assert model.n_features_in_ == 6
        assert model.get_params()["max_features"] == 0.5
        assert np.array_equal(model.classes_, bag.classes_)  # stratified: every member saw every class
    members = np.mean([m.predict_proba(x) for m in bag.models_], axis=0)
    assert np.allclose(bag.predict_proba(x), members)
    assert np.allclose(bag.predict_proba(x).sum(axis=1), 1.0)
    assert np.array_equal(bag.predict(x), bag.classes_[members.argmax(axis=1)])
    # the members differ (other items, other feature draws), and the same seed gives the same bag
    assert not np.allclose(bag.models_[0].predict_proba(x), bag.models_[1].predict_proba(x))
    again = SubaggedTrees(members=3, share=0.8, seed=5).fit(x, y)
    assert np.allclose(again.predict_proba(x), bag.predict_proba(x))
    assert not np.allclose(SubaggedTrees(members=3, seed=6).fit(x, y).predict_proba(x), bag.predict_proba(x))


def test_the_bag_learns_the_rule():
    x, y = _data(400)
    xt, yt = _data(400, seed=1)
    bag = SubaggedTrees(members=3).fit(x, y)
    assert (bag.predict(xt) == yt).mean() > 0.8


@pytest.mark.parametrize("kwargs", [{"members": 0}, {"share": 0.0}, {"share": 1.5}, {"max_features": 0.0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="members >= 1"):
        SubaggedTrees(**kwargs)


def test_with_groups_each_member_sees_whole_patients_and_the_settings_given():
    x, y = _data(300)
    patients = np.arange(300) // 30  # 10 patients of 30 items
    weights = np.where(y == 0, 1.0, 3.0)
    bag = SubaggedTrees(members=4, share=0.7, seed=1, params={"max_iter": 20, "max_leaf_nodes": 7})
    seen = []
    for model in bag.fit(x, y, sample_weight=weights, groups=patients).models_:
        assert model.get_params()["max_iter"] == 20 and model.get_params()["max_leaf_nodes"] == 7
        assert model.n_iter_ <= 20
    # the members' item draws: 7 whole patients each, not all the same
    for m in range(4):
        keep = np.random.default_rng(1 + m).choice(np.arange(10), 7, replace=False)
        seen.append(frozenset(keep.tolist()))
    assert len(set(seen)) > 1
    # a member fitted on its 7 patients, with their weights, is the bag's member
    rows = np.flatnonzero(np.isin(patients, list(seen[0])))
    from cardiolens.tasks.trees import boosted_trees

    alone = boosted_trees(1).set_params(max_iter=20, max_leaf_nodes=7, max_features=0.5)
    alone.fit(x[rows], y[rows], sample_weight=weights[rows])
    np.testing.assert_allclose(alone.predict_proba(x), bag.models_[0].predict_proba(x))


def test_a_member_without_a_rare_class_counts_it_as_zero_and_says_so(caplog):
    x, y = _data(200, seed=3)
    patients = np.arange(200) // 20  # 10 patients
    y = np.where(patients == 9, 1, 2 * (x[:, 0] > 0))  # class 1 only in patient 9: a member may lack a middle class
    bag = SubaggedTrees(members=4, share=0.5, seed=0, params={"max_iter": 10})
    with caplog.at_level("WARNING", logger="cardiolens.tasks.trees"):
        bag.fit(x, y, groups=patients)
    saw = [1 in m.classes_ for m in bag.models_]
    assert 0 < sum(saw) < 4  # some members drew patient 9, some did not
    assert sum("no item of class [1]" in r.message for r in caplog.records) == 4 - sum(saw)
    assert bag.classes_.tolist() == [0, 1, 2]
    mean = np.zeros((200, 3))
    for model in bag.models_:
        mean[:, [bag.classes_.tolist().index(c) for c in model.classes_]] += model.predict_proba(x)
    np.testing.assert_allclose(bag.predict_proba(x), mean / 4)  # columns matched by class, not position
    assert np.allclose(bag.predict_proba(x).sum(axis=1), 1.0)


def test_group_shares_round_half_up_and_bad_groups_are_refused():
    x, y = _data(100)
    bag = SubaggedTrees(members=2, share=0.5, params={"max_iter": 5}).fit(x, y, groups=np.arange(100) // 20)
    for model in bag.models_:
        assert model.n_features_in_ == 6
    rows = bag._rows(y, np.arange(100) // 20, seed=0)
    assert len(rows) == 60  # 0.5 of 5 patients: 3 (2.5 rounded half up), 20 items each
    with pytest.raises(ValueError, match="keeps every group"):
        SubaggedTrees(share=0.8).fit(x, y, groups=np.arange(100) // 50)  # 0.8 of 2 rounds to 2
    with pytest.raises(ValueError, match="99 groups for 100 items"):
        SubaggedTrees().fit(x, y, groups=np.arange(99))
    with pytest.raises(ValueError, match="one class only"):
        SubaggedTrees(share=0.5).fit(x, np.repeat([0, 1], 50), groups=np.repeat([0, 1, 2, 3], 25))
