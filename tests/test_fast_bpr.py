"""The fused numba BPR kernel: negative draws, learning, in-place updates, determinism, errors."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recsampling.fast import bpr as fast_bpr
from recsampling.fast import alias_table, draw_negatives, mf_bpr_epoch, popularity_weights


class TinyMF(nn.Module):
    """Stand-in with MatrixFactorization's attribute names (user_factors, item_factors, biases)."""

    def __init__(self, n_users, n_items, factors=8, item_bias=True, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.user_factors = nn.Embedding(n_users, factors)
        self.item_factors = nn.Embedding(n_items, factors)
        with torch.no_grad():
            self.user_factors.weight.copy_(torch.randn(n_users, factors, generator=g) * 0.1)
            self.item_factors.weight.copy_(torch.randn(n_items, factors, generator=g) * 0.1)
        self.user_biases = None
        self.item_biases = nn.Embedding(n_items, 1) if item_bias else None
        if item_bias:
            nn.init.zeros_(self.item_biases.weight)

    def score(self, users, items):
        s = (self.user_factors(users) * self.item_factors(items)).sum(-1)
        if self.item_biases is not None:
            s = s + self.item_biases(items).squeeze(-1)
        return s


def clustered(n_users=240, n_items=120, n_clusters=4, p_in=0.35, p_out=0.02, seed=0) -> sp.csr_matrix:
    """Users like items of their own cluster: a low-rank, learnable implicit matrix."""
    r = np.random.default_rng(seed)
    cu = r.integers(0, n_clusters, n_users)
    ci = r.integers(0, n_clusters, n_items)
    p = np.where(cu[:, None] == ci[None, :], p_in, p_out)
    m = sp.csr_matrix((r.random((n_users, n_items)) < p).astype(np.float32))
    m.sort_indices()
    return m


def auc(model, m, rng, n=4000):
    """P(score of a held-in positive > score of a random unobserved item of the same user)."""
    coo = m.tocoo()
    dense = m.toarray() > 0
    k = rng.integers(0, m.nnz, n)
    u, i = coo.row[k], coo.col[k]
    j = rng.integers(0, m.shape[1], n)
    keep = ~dense[u, j]
    u, i, j = (torch.as_tensor(a[keep]) for a in (u, i, j))
    with torch.no_grad():
        return float((model.score(u, i) > model.score(u, j)).float().mean())


# ------------------------------------------------------------------------------ negatives
@pytest.mark.parametrize("bitmap", [True, False], ids=["bitmap", "binary-search"])
@pytest.mark.parametrize("alpha", [None, 1.0, 0.5])
def test_redraw_never_returns_a_positive(alpha, bitmap, monkeypatch):
    if not bitmap:
        monkeypatch.setattr(fast_bpr, "BITMAP_MAX_BYTES", 0)
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
        monkeypatch.setattr(fast_bpr, "BITMAP_MAX_BYTES", 0)
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
    model = TinyMF(2, 3)
    loss = mf_bpr_epoch(model, m, lr=0.1, l2=0.0, rng=0, n_threads=1)  # finishes, skips user 0
    assert np.isfinite(loss)


# ------------------------------------------------------------------------------ training
def test_loss_decreases_and_model_learns():
    m = clustered()
    model = TinyMF(*m.shape, factors=16)
    rng = np.random.default_rng(0)
    before = auc(model, m, np.random.default_rng(9))
    losses = [mf_bpr_epoch(model, m, lr=0.05, l2=1e-4, rng=rng, n_threads=1) for _ in range(25)]
    assert losses[0] == pytest.approx(np.log(2), abs=0.02)  # near-zero init scores
    assert losses[-1] < 0.6 * losses[0]
    windows = np.asarray(losses).reshape(5, 5).mean(1)  # drops epoch to epoch, up to SGD noise
    assert (np.diff(windows) < 0).all()
    after = auc(model, m, np.random.default_rng(9))
    assert before < 0.65 < 0.8 < after


@pytest.mark.parametrize("kwargs", [dict(alpha=1.0, collision="skip"), dict(alpha=0.5, n_negatives=3),
                                    dict(n_threads=min(2, numba.config.NUMBA_NUM_THREADS))])
def test_other_modes_learn(kwargs):
    m = clustered(seed=5)
    model = TinyMF(*m.shape, factors=16)
    rng = np.random.default_rng(1)
    losses = [mf_bpr_epoch(model, m, lr=0.05, l2=1e-4, rng=rng, **kwargs) for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0]
    assert auc(model, m, np.random.default_rng(2)) > 0.75


def test_updates_the_torch_tables_in_place():
    m = clustered(seed=3)
    model = TinyMF(*m.shape)
    ptrs = [model.user_factors.weight.data_ptr(), model.item_factors.weight.data_ptr(),
            model.item_biases.weight.data_ptr()]
    before = [t.weight.detach().clone() for t in (model.user_factors, model.item_factors, model.item_biases)]
    u, i = torch.tensor([0, 1]), torch.tensor([2, 3])
    s0 = model.score(u, i).detach().clone()
    mf_bpr_epoch(model, m, lr=0.05, l2=1e-3, rng=0, n_threads=1)
    after = [model.user_factors.weight, model.item_factors.weight, model.item_biases.weight]
    assert [t.data_ptr() for t in after] == ptrs
    for b, a in zip(before, after):
        assert not torch.equal(b, a.detach())
    assert not torch.equal(s0, model.score(u, i).detach())
    assert model.user_factors.weight.requires_grad  # still a normal trainable parameter


def test_without_item_bias():
    m = clustered(seed=4)
    model = TinyMF(*m.shape, item_bias=False)
    loss = mf_bpr_epoch(model, m, lr=0.05, l2=0.0, rng=0, n_threads=1)
    assert np.isfinite(loss)


def test_bitmap_and_binary_search_train_identically(monkeypatch):
    m = clustered(seed=12)
    tables = []
    for limit in (fast_bpr.BITMAP_MAX_BYTES, 0):
        monkeypatch.setattr(fast_bpr, "BITMAP_MAX_BYTES", limit)
        model = TinyMF(*m.shape)
        mf_bpr_epoch(model, m, lr=0.05, l2=1e-3, rng=3, n_threads=1)
        tables.append(model.item_factors.weight.detach().clone())
    assert torch.equal(*tables)


def test_an_epoch_visits_every_interaction_once():
    m = clustered(n_users=3000, n_items=200, p_in=0.3, p_out=0.03, seed=13)
    indptr, indices = fast_bpr._csr_arrays(m)
    n_blocks = -(-m.nnz // fast_bpr.BLOCK_SIZE)
    users, items, offsets, bitmap, _ = fast_bpr._prepare_epoch(indptr, indices, n_blocks, np.uint64(5), True, 25)
    assert n_blocks > 1 and offsets[0] == 0 and offsets[-1] == m.nnz and (np.diff(offsets) > 0).all()
    coo = m.tocoo()
    np.testing.assert_array_equal(np.sort(users.astype(np.int64) * 200 + items),
                                  np.sort(coo.row.astype(np.int64) * 200 + coo.col))
    dense = np.unpackbits(bitmap.reshape(3000, 25), axis=1, bitorder="little")[:, :200]
    np.testing.assert_array_equal(dense, m.toarray() > 0)


def test_one_thread_is_deterministic():
    m = clustered(n_users=3000, n_items=200, p_in=0.3, p_out=0.03, seed=6)  # > 1 block
    assert m.nnz > 40_000
    runs = []
    for seed in (7, 7, 8):
        model = TinyMF(*m.shape, seed=0)
        loss = [mf_bpr_epoch(model, m, lr=0.05, l2=1e-4, alpha=0.5, rng=np.random.default_rng(seed), n_threads=1)
                for _ in range(2)]
        runs.append((loss, model.user_factors.weight.detach().clone(), model.item_biases.weight.detach().clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_works_with_interactions():
    from recsampling.data import Interactions

    m = clustered(seed=8)
    data = Interactions.from_csr(m)
    model = TinyMF(*data.shape)
    assert np.isfinite(mf_bpr_epoch(model, data, lr=0.05, l2=0.0, rng=0, n_threads=1))


def test_real_matrix_factorization_if_present():
    mf = pytest.importorskip("recsampling.models.mf")
    m = clustered(seed=9)
    model = mf.MatrixFactorization(*m.shape, factors=16)
    before = model.item_factors.weight.detach().clone()
    rng = np.random.default_rng(0)
    losses = [mf_bpr_epoch(model, m, lr=0.05, l2=1e-4, rng=rng, n_threads=1) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert not torch.equal(before, model.item_factors.weight.detach())


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(collision="retry"), "collision must be one of"),
    (dict(n_negatives=0), "n_negatives must be an integer >= 1"),
    (dict(n_negatives=1.5), "n_negatives must be an integer >= 1"),
    (dict(alpha=-1.0), "alpha must be a finite number >= 0"),
    (dict(alpha="pop"), "alpha must be a number"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be a finite number > 0"),
    (dict(l2=-0.1), "l2 must be a finite number >= 0"),
    (dict(n_threads=0), "n_threads must be an integer in"),
    (dict(n_threads=numba.config.NUMBA_NUM_THREADS + 1), "n_threads must be an integer in"),
])
def test_bad_options(kwargs, match):
    m = clustered(seed=10)
    args = dict(lr=0.05, l2=0.0, rng=0) | kwargs
    with pytest.raises(ValueError, match=match):
        mf_bpr_epoch(TinyMF(*m.shape), m, **args)


def test_bad_model_or_data():
    m = clustered(seed=11)
    with pytest.raises(ValueError, match="train is 240 users x 120 items but the model has 10 users"):
        mf_bpr_epoch(TinyMF(10, 120), m, lr=0.1, l2=0.0, rng=0)
    with pytest.raises(ValueError, match="Interactions or a scipy sparse"):
        mf_bpr_epoch(TinyMF(*m.shape), m.toarray(), lr=0.1, l2=0.0, rng=0)
    with pytest.raises(ValueError, match="must be float32"):
        mf_bpr_epoch(TinyMF(*m.shape).double(), m, lr=0.1, l2=0.0, rng=0)
    no_items = TinyMF(*m.shape)
    del no_items.item_factors
    with pytest.raises(ValueError, match="no attribute 'item_factors'"):
        mf_bpr_epoch(no_items, m, lr=0.1, l2=0.0, rng=0)
    with pytest.raises(ValueError, match="users must be in"):
        draw_negatives(m, np.array([240]), rng=0)
