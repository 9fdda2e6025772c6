"""recsampling.bench.dla: the DLA benchmark's biased logs and eq. (7)'s closed form."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from recsampling.bench.dla import biased_logs, irw_closed_form


def test_irw_closed_form_recovers_the_propensities_of_expected_clicks():
    rng = np.random.default_rng(0)
    rel = rng.uniform(0.05, 0.95, (500, 10))
    theta = (1.0 / np.arange(1, 11)) ** 1.5
    clicks = theta * rel  # expected clicks: P(click) = theta_k * r_nk
    np.testing.assert_allclose(irw_closed_form(np.log(rel), clicks), theta / theta[0], rtol=1e-12)


def test_biased_logs_are_lists_of_distinct_items_with_position_biased_clicks():
    rng = np.random.default_rng(1)
    world = SimpleNamespace(relevance=rng.uniform(0.2, 0.8, (30, 80)))
    logs = biased_logs(world, n_lists=4000, eta=1.0, bias=2.0, seed=3)
    assert logs["items"].shape == logs["clicks"].shape == (4000, 10) and logs["users"].shape == (4000,)
    assert all(len(set(row)) == 10 for row in logs["items"][:50]) and logs["items"].max() < 80
    rate = logs["clicks"].mean(0)
    assert rate[0] > 2 * rate[4]  # (1/k)^eta: position 5 is seen a fifth as often
    again = biased_logs(world, n_lists=4000, eta=1.0, bias=2.0, seed=3)
    assert all(np.array_equal(logs[k], again[k]) for k in logs)  # seeded
    # the promotion moves the promoted items up: their share of the shown slots grows with the bias
    flat = biased_logs(world, n_lists=4000, eta=1.0, bias=0.0, seed=3)
    counts = np.bincount(logs["items"].ravel(), minlength=80)
    counts0 = np.bincount(flat["items"].ravel(), minlength=80)
    assert np.std(counts) > 1.5 * np.std(counts0)
    with pytest.raises(ValueError):
        biased_logs(world, n_lists=10, eta=1.0, bias=1.0, seed=0, n_cand=200)  # more candidates than items
