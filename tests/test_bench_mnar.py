"""recsampling.bench.mnar: the MNAR benchmark's figures on a randomized test set."""

from __future__ import annotations

import numpy as np
import pytest

from recsampling.bench.mnar import item_propensities, rare_candidates
from recsampling.data.interactions import Interactions


def test_propensity_norms():
    # item counts 4, 2, 1, 0 over 4 users
    train = Interactions.from_indices([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0, 1, 1, 2], (4, 4))
    assert item_propensities(train, 0.5, "max") == "popularity"  # the sampler's (n_i / max n)^eta
    users = item_propensities(train, 0.5, "users")
    np.testing.assert_allclose(users, [1.0, np.sqrt(0.5), 0.5, 1e-6])  # (n_i / n_users)^0.5, floored at 1e-6
    flat = item_propensities(train, 0.5, "flat")  # (mean of 4, 2, 1 over 4 users)^0.5 for every item
    np.testing.assert_allclose(flat, np.full(4, np.sqrt(7 / 3 / 4)))
    with pytest.raises(ValueError, match="propensity norm"):
        item_propensities(train, 0.5, "median")


# ------------------------------------------------------------------------------- --protocol authors


def test_rare_candidates_keep_the_less_clicked_items():
    # item counts 4, 2, 1, 0: the median (1.5) keeps items 2 and 3
    train = Interactions.from_indices([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0, 1, 1, 2], (4, 4))
    cand = np.array([[0, 1, 2, -1], [3, 2, 1, 0], [-1, -1, -1, -1], [1, 3, -1, -1]])
    rare, threshold = rare_candidates(train, cand, 0.5)
    assert threshold == 1.5
    np.testing.assert_array_equal(rare, [[-1, -1, 2, -1], [3, 2, -1, -1], [-1, -1, -1, -1], [-1, 3, -1, -1]])
