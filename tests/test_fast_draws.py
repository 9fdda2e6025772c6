"""The fused kernels' random draws: rejection, skipping, popularity, alias tables, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsampling.fast import draws as fast_draws
from recsampling.fast import alias_table, draw_negatives
from recsampling.samplers.negatives import popularity_weights


def clustered(n_users=240, n_items=120, n_clusters=4, p_in=0.35, p_out=0.02, seed=0) -> sp.csr_matrix:
    """Users like items of their own cluster: a low-rank, learnable implicit matrix."""
    r = np.random.default_rng(seed)
    cu = r.integers(0, n_clusters, n_users)
    ci = r.integers(0, n_clusters, n_items)
    p = np.where(cu[:, None] == ci[None, :], p_in, p_out)
    m = sp.csr_matrix((r.random((n_users, n_items)) < p).astype(np.float32))
    m.sort_indices()
    return m


# ------------------------------------------------------------------------------ negatives
@pytest.mark.parametrize("bitmap", [True, False], ids=["bitmap", "binary-search"])
@pytest.mark.parametrize("alpha", [None, 1.0, 0.5])
def test_redraw_never_returns_a_positive(alpha, bitmap, monkeypatch):
    if not bitmap:
        monkeypatch.setattr(fast_draws, "BITMAP_MAX_BYTES", 0)
    m = clustered(n_users=60, n_items=40, p_in=0.8, p_out=0.2, seed=1)
    users = np.repeat(np.arange(60), 200)
    neg = draw_negatives(m, users, n_negatives=3, alpha=alpha, collision="redraw", rng=0)
    assert neg.shape == (users.size, 3)
    assert (neg >= 0).all() and (neg < 40).all()
    dense = m.toarray() > 0
    assert not dense[users[:, None], neg].any()


@pytest.mark.parametrize("bitmap", [True, False], ids=["bitmap", "binary-search"])
def test_skip_marks_collisions_and_keeps_the_rest(bitmap, monkeypatch):
    if not bitmap:
        monkeypatch.setattr(fast_draws, "BITMAP_MAX_BYTES", 0)
    m = clustered(n_users=30, n_items=20, p_in=0.9, p_out=0.3, seed=2)
    users = np.repeat(np.arange(30), 300)
    neg = draw_negatives(m, users, collision="skip", rng=1)[:, 0]
    dense = m.toarray() > 0
    drawn = neg >= 0
    assert not dense[users[drawn], neg[drawn]].any()
    # uniform draws: the skipped share is the users' mean density
    assert abs((~drawn).mean() - dense.mean()) < 0.02


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_popularity_draw_proportions(alpha):
    r = np.random.default_rng(3)
    counts = np.concatenate([r.zipf(1.6, 49).clip(1, 400), [0]])  # long tail plus one unseen item
    n_items = counts.size
    rows = np.concatenate([np.zeros(1, int), np.arange(1, counts.sum() + 1)])  # user 0: no positives
    cols = np.concatenate([np.zeros(0, int), np.repeat(np.arange(n_items), counts)])
    m = sp.csr_matrix((np.ones(cols.size, np.float32), (rows[1:], cols)), shape=(counts.sum() + 1, n_items))
    neg = draw_negatives(m, np.zeros(200_000, np.int64), alpha=alpha, rng=4)[:, 0]
    freq = np.bincount(neg, minlength=n_items) / neg.size
    w = popularity_weights(counts, alpha)
    expected = w / w.sum()
    np.testing.assert_allclose(freq, expected, atol=0.004)
    if alpha > 0:
        assert freq[-1] == 0  # an item nobody interacted with is never drawn by popularity


def test_popularity_redraw_is_the_restricted_distribution():
    counts = np.array([50, 30, 10, 5, 5])
    cols = np.repeat(np.arange(5), counts)
    rows = np.arange(1, cols.size + 1)
    m = sp.csr_matrix((np.ones(cols.size + 2, np.float32),
                       (np.r_[0, 0, rows], np.r_[0, 3, cols])), shape=(cols.size + 1, 5))
    neg = draw_negatives(m, np.zeros(100_000, np.int64), alpha=1.0, rng=5)[:, 0]
    counts = np.bincount(m.indices, minlength=5).astype(float)
    counts[[0, 3]] = 0  # user 0's positives
    np.testing.assert_allclose(np.bincount(neg, minlength=5) / neg.size, counts / counts.sum(), atol=0.006)


def test_alias_table_never_draws_zero_weight():
    prob, alias = alias_table(np.array([0.0, 3.0, 0.0, 1.0]))
    assert prob[0] == 0 and prob[2] == 0
    assert set(alias[[0, 2]]) <= {1, 3}
    with pytest.raises(ValueError, match="positive sum"):
        alias_table(np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        alias_table(np.array([1.0, -1.0]))


def test_user_with_every_item_has_no_negative():
    m = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="every drawable item"):
        draw_negatives(m, np.array([0]), rng=0)


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(collision="retry"), "collision must be one of"),
    (dict(n_negatives=0), "n_negatives must be an integer >= 1"),
    (dict(n_negatives=1.5), "n_negatives must be an integer >= 1"),
    (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
    (dict(alpha="pop"), "alpha must be a finite number >= 0 or None"),
])
def test_bad_options(kwargs, match):
    m = clustered(seed=10)
    with pytest.raises(ValueError, match=match):
        draw_negatives(m, np.array([0, 1]), rng=0, **kwargs)


def test_bad_data():
    m = clustered(seed=11)
    with pytest.raises(ValueError, match="Interactions or a scipy sparse"):
        draw_negatives(m.toarray(), np.array([0]), rng=0)
    with pytest.raises(ValueError, match="users must be in"):
        draw_negatives(m, np.array([240]), rng=0)
