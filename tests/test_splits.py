"""Splits: disjoint, union = input, fractions, seeds, time order, cold users counted."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recsampling.data.interactions import Interactions
from recsampling.data.splits import Split, leave_one_out, random_split, temporal_split, validation_split


@pytest.fixture
def data(rng) -> Interactions:
    """60 users with 1..40 interactions each over 200 items, distinct timestamps, ratings, features."""
    counts = rng.integers(1, 41, size=60)
    counts[[3, 17, 41]] = 1  # a few single-interaction users
    users = np.repeat(np.arange(60), counts)
    items = np.concatenate([rng.choice(200, size=c, replace=False) for c in counts])
    times = rng.permutation(users.size) * 10 + 1_000_000
    return Interactions.from_indices(users, items, (60, 200), ratings=rng.integers(1, 6, users.size),
                                     timestamps=times, user_ids=np.arange(60) + 100,
                                     item_features=rng.random((200, 3)))


def _pairs(x: Interactions) -> set:
    return set(zip(x.user_index().tolist(), x.item_index().tolist()))


def _check_partition(split: Split, data: Interactions) -> None:
    assert isinstance(split, Split)
    for part in (split.train, split.test):
        assert part.shape == data.shape
        assert part.user_ids is data.user_ids and part.item_ids is data.item_ids
        assert part.item_features is data.item_features
    assert not (_pairs(split.train) & _pairs(split.test))
    assert _pairs(split.train) | _pairs(split.test) == _pairs(data)
    # the columns travel with their pairs
    key = dict(zip(zip(data.user_index().tolist(), data.item_index().tolist()), data.timestamps.tolist()))
    for part in (split.train, split.test):
        assert [key[p] for p in zip(part.user_index().tolist(), part.item_index().tolist())] == \
            part.timestamps.tolist()
    assert split.info["train_interactions"] + split.info["test_interactions"] == data.nnz


def test_random_split_partition_fraction_and_seed(data):
    split = random_split(data, test_fraction=0.25, random_state=7)
    _check_partition(split, data)
    n = data.user_counts()
    assert split.test.user_counts().tolist() == np.floor(0.25 * n + 0.5).astype(int).tolist()
    assert split.info["method"] == "random" and split.info["random_state"] == 7
    again = random_split(data, test_fraction=0.25, random_state=7)
    assert _pairs(again.test) == _pairs(split.test)
    other = random_split(data, test_fraction=0.25, random_state=8)
    assert _pairs(other.test) != _pairs(split.test)
    gen = random_split(data, 0.25, np.random.default_rng(7))
    assert _pairs(gen.test) == _pairs(split.test)


def test_random_split_rejects_bad_fraction(data):
    for bad in (0, 1, 1.5, -0.1, "0.2"):
        with pytest.raises(ValueError, match="test_fraction must be a number strictly between 0 and 1"):
            random_split(data, test_fraction=bad)


def test_leave_one_out_by_time_picks_each_users_latest(data):
    split = leave_one_out(data, by="time", random_state=0)
    _check_partition(split, data)
    assert (split.test.user_counts() == 1).all()
    latest = np.full(data.n_users, -1)
    np.maximum.at(latest, data.user_index(), data.timestamps)
    assert split.test.timestamps.tolist() == latest.tolist()
    tr_max = np.full(data.n_users, -1)
    np.maximum.at(tr_max, split.train.user_index(), split.train.timestamps)
    assert (tr_max < latest).all()


def test_leave_one_out_random_is_seeded_and_counts_single_users_as_cold(data, caplog):
    singles = int((data.user_counts() == 1).sum())
    assert singles > 0
    with caplog.at_level(logging.WARNING, logger="recsampling"):
        split = leave_one_out(data, by="random", random_state=3)
    _check_partition(split, data)
    assert _pairs(leave_one_out(data, by="random", random_state=3).test) == _pairs(split.test)
    assert _pairs(leave_one_out(data, by="random", random_state=4).test) != _pairs(split.test)
    assert split.info["cold_users"] == singles == split.cold_users.size
    assert split.info["eval_users"] == data.n_users - singles
    assert "excluded from evaluation" in caplog.text
    assert split.eval_test.nnz == data.n_users - singles
    assert set(split.eval_test.user_index().tolist()) == set(split.eval_users.tolist())


def test_leave_one_out_ties_and_errors():
    tied = Interactions.from_indices([0, 0, 0], [0, 1, 2], (1, 3), timestamps=[5, 9, 9])
    picks = {int(leave_one_out(tied, random_state=s).test.item_index()[0]) for s in range(20)}
    assert picks == {1, 2}  # the latest time, ties broken at random
    with pytest.raises(ValueError, match="needs timestamps"):
        leave_one_out(Interactions.from_indices([0], [0], (1, 1)), by="time")
    with pytest.raises(ValueError, match="by must be 'time' or 'random'"):
        leave_one_out(tied, by="last")


def test_temporal_global_cut_respects_time_and_counts_cold_users(data):
    split = temporal_split(data, test_fraction=0.2)
    _check_partition(split, data)
    cut = split.info["cut_time"]
    assert split.train.timestamps.max() < cut <= split.test.timestamps.min()
    assert split.test.nnz == int(np.floor(0.2 * data.nnz + 0.5))  # distinct times: exact share
    cold = (split.test.user_counts() > 0) & (split.train.user_counts() == 0)
    assert split.info["cold_users"] == int(cold.sum())
    assert split.info["cold_test_interactions"] == int(split.test.user_counts()[cold].sum())


def test_temporal_global_cut_keeps_ties_together():
    data = Interactions.from_indices([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], (3, 3), timestamps=[1, 2, 3, 3, 3])
    split = temporal_split(data, test_fraction=0.2)
    assert split.info["cut_time"] == 3
    assert split.test.nnz == 3 and split.train.timestamps.max() == 2
    assert split.info["cold_users"] == 2  # users 1 and 2 appear only after the cut
    assert split.eval_users.size == 0


def test_temporal_per_user_takes_each_users_latest_fraction(data):
    split = temporal_split(data, test_fraction=0.3, per_user=True)
    _check_partition(split, data)
    n = data.user_counts()
    assert split.test.user_counts().tolist() == np.floor(0.3 * n + 0.5).astype(int).tolist()
    tr_max = np.full(data.n_users, -np.inf)
    np.maximum.at(tr_max, split.train.user_index(), split.train.timestamps)
    te_min = np.full(data.n_users, np.inf)
    np.minimum.at(te_min, split.test.user_index(), split.test.timestamps)
    assert (tr_max < te_min).all()
    assert _pairs(temporal_split(data, 0.3, per_user=True).test) == _pairs(split.test)  # deterministic
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(Interactions.from_indices([0], [0], (1, 1)))


def test_validation_split_carves_from_train(data):
    outer = random_split(data, 0.2, random_state=1)
    val = validation_split(outer.train, fraction=0.1, random_state=2)
    _check_partition(val, outer.train)
    assert val.info["method"] == "validation" and val.info["validation_fraction"] == 0.1
    assert not (_pairs(val.test) & _pairs(outer.test))
    n = outer.train.user_counts()
    assert val.test.user_counts().tolist() == np.floor(0.1 * n + 0.5).astype(int).tolist()
    assert _pairs(validation_split(outer.train, 0.1, random_state=2).test) == _pairs(val.test)
    with pytest.raises(ValueError, match="not a Split"):
        validation_split(outer)


def test_split_requires_one_index_space(data):
    small = Interactions.from_indices([0], [0], (1, 1))
    with pytest.raises(ValueError, match="one index space"):
        Split(data, small, {})


def test_split_is_fast_on_half_a_million_interactions():
    rng = np.random.default_rng(0)
    n = 500_000
    data = Interactions.from_indices(rng.integers(0, 6000, n), rng.integers(0, 4000, n), (6000, 4000),
                                     timestamps=rng.integers(0, 10**9, n))
    import time

    start = time.perf_counter()
    random_split(data, 0.2, random_state=0)
    leave_one_out(data, random_state=0)
    temporal_split(data, 0.2, per_user=True)
    assert time.perf_counter() - start < 10.0  # vectorized: well under a second each on one core
