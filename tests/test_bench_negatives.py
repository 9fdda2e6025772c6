"""The false-negative benchmarks' monitored fit."""

from __future__ import annotations

import pytest

from recsampling.bench.negatives import monitored_fit
from recsampling.data import make_world
from recsampling.samplers import make_sampler


@pytest.fixture(scope="module")
def world():
    return make_world(n_users=60, n_items=80, target_interactions=800, n_logged_lists=0, random_state=0)


def test_monitored_fit_records_every_epoch_and_is_seeded(world):
    sampler = make_sampler("bpr")
    fit = monitored_fit(sampler, world, seed=3, epochs=2, rows=500)
    assert fit.sampler is sampler and fit.seconds > 0
    assert [h["epoch"] for h in fit.history] == [0, 1]
    for h in fit.history:
        assert 0.0 <= h["false_negative_rate"] <= 1.0 and 0.0 < h["true_ndcg@10"] <= 1.0
    again = monitored_fit(make_sampler("bpr"), world, seed=3, epochs=2, rows=500)
    assert again.history == fit.history
    other = monitored_fit(make_sampler("bpr"), world, seed=4, epochs=2, rows=500)
    assert other.history != fit.history

