"""Propensities: relative popularity, data-given (column, per item, per pair), clipping."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsampling.data.interactions import Interactions
from recsampling.propensity import click_propensities, clip_propensities, popularity_propensity


@pytest.fixture
def train() -> Interactions:
    # item counts: item0 = 4, item1 = 1, item2 = 0, item3 = 2
    users = [0, 1, 2, 3, 0, 1, 2]
    items = [0, 0, 0, 0, 1, 3, 3]
    return Interactions.from_indices(users, items, (4, 4))


def test_popularity_propensity_matches_hand_values(train):
    np.testing.assert_allclose(popularity_propensity(train), np.sqrt([1.0, 0.25, 0.0, 0.5]))
    np.testing.assert_allclose(popularity_propensity(train, eta=1.0), [1.0, 0.25, 0.0, 0.5])
    np.testing.assert_allclose(popularity_propensity(train, eta=0.0), [1.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("eta", [-0.5, np.nan, np.inf])
def test_popularity_propensity_rejects_bad_eta(train, eta):
    with pytest.raises(ValueError, match="eta"):
        popularity_propensity(train, eta=eta)


def test_clip_bounds_from_below_and_keeps_the_rest():
    theta = np.array([0.0, 1e-6, 0.05, 0.1, 0.7, 1.0])
    np.testing.assert_allclose(clip_propensities(theta), [0.1, 0.1, 0.1, 0.1, 0.7, 1.0])
    np.testing.assert_allclose(clip_propensities(theta, clip=0.01), [0.01, 0.01, 0.05, 0.1, 0.7, 1.0])
    np.testing.assert_allclose(clip_propensities(theta[1:], clip=None), theta[1:])


def test_clip_errors_name_the_problem():
    with pytest.raises(ValueError, match="clipping is off"):
        clip_propensities([0.0, 0.5], clip=None)
    with pytest.raises(ValueError, match=r"clip must be in \(0, 1\]"):
        clip_propensities([0.5], clip=0.0)
    with pytest.raises(ValueError, match=r"clip must be in \(0, 1\]"):
        clip_propensities([0.5], clip=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clip_propensities([0.5, 1.2])
    with pytest.raises(ValueError, match="finite"):
        clip_propensities([np.nan])


def test_click_propensities_auto_falls_back_to_popularity(train):
    got = click_propensities(train)
    expected = np.sqrt([1.0, 0.25, 1.0, 1.0, 1.0, 0.5, 0.5])  # CSR order: (0,0) (0,1) (1,0) (1,3) ...
    pop = popularity_propensity(train)[train.item_index()]
    np.testing.assert_allclose(got, pop)
    np.testing.assert_allclose(np.sort(got), np.sort(expected))


def test_click_propensities_reads_the_column_when_present():
    col = [0.2, 0.3, 0.4]
    data = Interactions.from_indices([0, 1, 1], [1, 0, 2], (2, 3), propensities=col)
    np.testing.assert_allclose(click_propensities(data), col)
    np.testing.assert_allclose(click_propensities(data, "data"), col)
    # asking for popularity ignores the column
    np.testing.assert_allclose(click_propensities(data, "popularity"), [1.0, 1.0, 1.0])


def test_click_propensities_per_item_and_per_pair(train):
    per_item = np.array([0.5, 0.25, 0.125, 1.0])
    np.testing.assert_allclose(click_propensities(train, per_item), per_item[train.item_index()])
    dense = np.arange(16, dtype=float).reshape(4, 4) / 16.0
    expected = dense[train.user_index(), train.item_index()]
    np.testing.assert_allclose(click_propensities(train, dense), expected)
    np.testing.assert_allclose(click_propensities(train, sp.csr_matrix(dense)), expected)
    np.testing.assert_allclose(click_propensities(train, 1.0), np.ones(train.nnz))


def test_click_propensities_errors(train):
    with pytest.raises(ValueError, match="has none"):
        click_propensities(train, "data")
    with pytest.raises(ValueError, match="unknown propensity source"):
        click_propensities(train, "exposure")
    with pytest.raises(ValueError, match="shape"):
        click_propensities(train, np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        click_propensities(train, sp.csr_matrix(np.ones((3, 4))))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        click_propensities(train, np.full(4, 2.0))
