"""The fused MF kernel against autograd: same loss, same step, for every sampler it serves."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsampling.data import Interactions
from recsampling.fast import backends
from recsampling.fast import mf as K
from recsampling.models import MatrixFactorization, TwoTower, make_model
from recsampling.samplers import make_sampler
from recsampling.train import Trainer

CASES = [
    ("bpr", {}),
    ("bpr", {"n_negatives": 3}),
    ("bpr", {"collision": "skip"}),
    ("popularity", {"alpha": 0.5}),
    ("dns", {"n_candidates": 5, "n_negatives": 2}),
    ("bpo", {}),
    ("bpo", {"positive_weight": 1.0, "n_negatives": 2}),
    ("nbpo", {}),
    ("nbpo", {"objective": "exact", "flip_dim": 3, "flip_l2": 0.1}),
    ("nbpo", {"flip": "user+item", "flip_lr": 0.3, "flip_l2": 0.05}),
    ("nbpo", {"flip": "constant", "objective": "exact"}),
    ("pointwise", {}),
    ("relmf", {}),
    ("relmf", {"delta": "log", "n_negatives": 2}),
    ("relmf", {"unobserved_weight": "balanced", "clip": 0.3}),
    ("ubpr", {"n_negatives": 3}),
    ("ubpr", {"beta": None, "clip": 0.5}),
]


def _data(seed=0, n_users=7, n_items=9, density=0.35, user_bias=False):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, 0] = True  # a popular item (UBPR then often draws clicked items)
    dense[np.arange(n_users), rng.integers(1, n_items, n_users)] = False
    return Interactions.from_csr(sp.csr_matrix(dense.astype(np.float32)))


def _row_arrays(name, batch):
    """The kernel's per-row inputs from a torch-path batch (numpy)."""
    items = batch.items
    B, L = items.shape
    mask = np.ones((B, L)) if batch.mask is None else batch.mask.astype(np.float64)
    w0 = np.ones(B)
    wu = np.ones(B)
    pw = np.ones((B, L))
    if name in ("relmf", "pointwise"):
        w0 = batch.weights[:, 0].astype(np.float64)  # the click's 1/theta
        wu = batch.weights[:, 1].astype(np.float64)  # the user's unclicked weight (every drawn column)
    if name == "ubpr":
        pw[:, 1:] = batch.weights[:, 1:].astype(np.float64)  # the pair weights
    return batch.users.astype(np.int64), items.astype(np.int64), mask, w0, wu, pw


def _torch_steps(model, sampler, rows, optimizer, lr, l2):
    """Step the torch path on each row as a batch of one (the kernel's step definition)."""
    trainer = Trainer(optimizer=optimizer, lr=lr, l2=l2, device="cpu", progress=False)
    opt = trainer._optimizer(model, sampler)
    total = 0.0
    for b in rows:
        t = b.to("cpu")
        loss = sampler.loss(model, t) + l2 * model.regularization(t.users, t.items).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    return total


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{'-'.join(map(str, p.values()))}" for n, p in CASES])
def test_kernel_step_matches_autograd(name, params, optimizer):
    train = _data()
    sampler = make_sampler(name, **params)
    rng = np.random.default_rng(1)
    sampler.prepare(train, rng)
    model = MatrixFactorization(*train.shape, factors=4, user_bias=name in ("relmf", "bpo"), random_state=2)
    if model.user_biases is not None:
        with torch.no_grad():
            model.user_biases.weight.normal_(0, 0.1)
            model.item_biases.weight.normal_(0, 0.1)
    ref_model, ref_sampler = copy.deepcopy(model), copy.deepcopy(sampler)
    batches = list(sampler.batches(1, np.random.default_rng(3)))[:6]
    lr, l2 = (0.1, 0.01) if optimizer == "sgd" else (0.05, 0.01)
    want = _torch_steps(ref_model, ref_sampler, batches, optimizer, lr, l2)
    runner = backends.find_kernel(model, sampler, optimizer, "cpu")(model, sampler, optimizer=optimizer, lr=lr, l2=l2,
                                                                     n_threads=1)
    st = runner.state
    arrays = [np.concatenate(a) for a in zip(*(_row_arrays(name, b) for b in batches))]
    got = K.mf_rows(*arrays, st["tables"], st["accs"], st["flips"], st["flip_accs"], st["iopt"], st["fopt"])
    if not (name == "nbpo" and params.get("objective", "surrogate") == "surrogate"):  # surrogate: only gradients
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)
    for (k, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"{k} after the step")
    for (k, a), (_, b) in zip(sampler.state_dict().items(), ref_sampler.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"sampler {k} after the step")


@pytest.mark.parametrize("name", ["bpr", "dns", "bpo", "nbpo", "relmf", "ubpr"])
def test_epoch_of_one_forced_row_matches_autograd(name):
    # one user, two items, one positive: every draw is item 1, so the epoch kernel's own draw,
    # options and loss can be compared with the torch path's batch exactly
    train = Interactions.from_csr(sp.csr_matrix(np.array([[1.0, 0.0]], dtype=np.float32)))
    sampler = make_sampler(name)
    sampler.prepare(train, np.random.default_rng(0))
    model = MatrixFactorization(1, 2, factors=3, random_state=0)
    ref_model, ref_sampler = copy.deepcopy(model), copy.deepcopy(sampler)
    _torch_steps(ref_model, ref_sampler, list(ref_sampler.batches(1, np.random.default_rng(0))), "sgd", 0.2, 0.01)
    runner = backends.find_kernel(model, sampler, "sgd", "cpu")(model, sampler, optimizer="sgd", lr=0.2, l2=0.01,
                                                                 n_threads=1)
    loss, rows = runner.epoch(np.random.default_rng(0))
    assert rows == 1 and np.isfinite(loss)
    for (k, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=k)


def test_lookup_takes_mf_shaped_models_only():
    train = _data()
    s = make_sampler("bpr")
    s.prepare(train, np.random.default_rng(0))
    mf = make_model("mf", train, factors=4, random_state=0)
    assert backends.model_kind(mf) == "mf"
    assert backends.find_kernel(mf, s, "sgd", "cpu") is not None
    assert backends.find_kernel(mf, s, "adagrad", "cpu") is not None
    assert backends.find_kernel(mf, s, "adam", "cpu") is None
    assert backends.find_kernel(mf, make_sampler("inbatch"), "sgd", "cpu") is None
    ids_only = TwoTower(*train.shape, factors=4, random_state=0)
    assert backends.model_kind(ids_only) == "mf"
    with_features = TwoTower(*train.shape, factors=4, item_features=np.eye(train.n_items, dtype=np.float32),
                             random_state=0)
    assert backends.model_kind(with_features) is None
    assert backends.find_kernel(with_features, s, "sgd", "cpu") is None


def test_two_fused_epochs_with_one_thread_are_identical():
    train = _data(seed=4, n_users=40, n_items=30)
    out = []
    for _ in range(2):
        model = MatrixFactorization(*train.shape, factors=8, random_state=0)
        s = make_sampler("nbpo")
        s.prepare(train, np.random.default_rng(0))
        run = backends.find_kernel(model, s, "adagrad", "cpu")(model, s, optimizer="adagrad", lr=0.05, l2=1e-3,
                                                              n_threads=1)
        rng = np.random.default_rng(5)
        losses = [run.epoch(rng)[0] for _ in range(3)]
        out.append((losses, model.user_factors.weight.detach().clone(), s.flip_.P.weight.detach().clone()))
    assert out[0][0] == out[1][0]
    assert torch.equal(out[0][1], out[1][1]) and torch.equal(out[0][2], out[1][2])


# ------------------------------------------------------------------------------ epochs
def clustered(n_users=240, n_items=120, n_clusters=4, p_in=0.35, p_out=0.02, seed=0) -> Interactions:
    """Users like items of their own cluster: a low-rank, learnable implicit matrix."""
    r = np.random.default_rng(seed)
    cu = r.integers(0, n_clusters, n_users)
    ci = r.integers(0, n_clusters, n_items)
    p = np.where(cu[:, None] == ci[None, :], p_in, p_out)
    return Interactions.from_csr(sp.csr_matrix((r.random((n_users, n_items)) < p).astype(np.float32)))


def auc(model, train, rng, n=4000):
    """P(score of a held-in positive > score of a random unobserved item of the same user)."""
    m = train.matrix
    coo = m.tocoo()
    dense = m.toarray() > 0
    k = rng.integers(0, m.nnz, n)
    u, i = coo.row[k], coo.col[k]
    j = rng.integers(0, m.shape[1], n)
    keep = ~dense[u, j]
    u, i, j = (torch.as_tensor(a[keep]) for a in (u, i, j))
    with torch.no_grad():
        return float((model.score(u, i) > model.score(u, j)).float().mean())


def _runner(model, train, name="bpr", optimizer="sgd", lr=0.05, l2=1e-4, n_threads=1, **params):
    s = make_sampler(name, **params)
    s.prepare(train, np.random.default_rng(0))
    return backends.find_kernel(model, s, optimizer, "cpu")(model, s, optimizer=optimizer, lr=lr, l2=l2,
                                                             n_threads=n_threads)


@pytest.mark.parametrize("name,params,optimizer", [
    ("bpr", {}, "sgd"), ("popularity", {"alpha": 1.0, "collision": "skip"}, "sgd"), ("dns", {}, "adagrad"),
    ("bpo", {}, "adagrad"), ("nbpo", {}, "sgd"), ("relmf", {}, "adagrad"), ("ubpr", {}, "adagrad"),
])
def test_every_sampler_learns_in_the_kernel(name, params, optimizer):
    train = clustered(seed=5)
    model = MatrixFactorization(*train.shape, factors=16, random_state=0)
    run = _runner(model, train, name, optimizer, lr=0.05 if optimizer == "sgd" else 0.02, n_threads=2, **params)
    rng = np.random.default_rng(1)
    before = auc(model, train, np.random.default_rng(2))
    # 16 epochs: here a user's ~12 positives are one chunk of the visiting order (mf.CHUNK), and
    # relmf with adagrad then needs 16 epochs for what a per-positive shuffle reached in 12
    losses = [run.epoch(rng)[0] for _ in range(16)]
    assert np.isfinite(losses).all()
    assert before < 0.6 and auc(model, train, np.random.default_rng(2)) > 0.72


def test_kernel_updates_the_torch_tables_in_place():
    train = clustered(seed=3)
    model = MatrixFactorization(*train.shape, factors=8, random_state=0)
    ptrs = [p.data_ptr() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    _runner(model, train, l2=1e-3).epoch(0)
    assert [p.data_ptr() for p in model.parameters()] == ptrs
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
    assert model.user_factors.weight.requires_grad  # still a normal trainable parameter


def test_an_epoch_visits_every_positive_once_in_chunks_of_one_user():
    train = clustered(n_users=300, n_items=600, p_in=0.5, p_out=0.03, seed=13)
    m = train.matrix
    indptr = m.indptr.astype(np.int64)
    perm, chunk_user, chunk_start, visit, _ = K._visit_order(indptr, K.CHUNK, np.uint64(5))
    sizes = np.diff(indptr)
    assert sizes.max() > 2 * K.CHUNK  # some users have several chunks
    for u in range(m.shape[0]):  # each row's offsets are a permutation, not the CSR order
        np.testing.assert_array_equal(np.sort(perm[indptr[u]:indptr[u + 1]]), np.arange(sizes[u]))
    assert not np.array_equal(perm, np.concatenate([np.arange(n) for n in sizes]))
    np.testing.assert_array_equal(np.sort(visit), np.arange(visit.size))
    assert not np.array_equal(visit, np.arange(visit.size))
    # the chunks, in visiting order, cover every CSR position once, each within its user's row
    covered = []
    for ch in visit:
        u, start = chunk_user[ch], chunk_start[ch]
        end = min(start + K.CHUNK, indptr[u + 1])
        assert indptr[u] <= start < end
        covered.append(indptr[u] + perm[start:end])
    np.testing.assert_array_equal(np.sort(np.concatenate(covered)), np.arange(m.nnz))


def test_bitmap_and_binary_search_train_identically(monkeypatch):
    from recsampling.fast import draws

    train = clustered(seed=12)
    tables = []
    for limit in (draws.BITMAP_MAX_BYTES, 0):
        monkeypatch.setattr(draws, "BITMAP_MAX_BYTES", limit)
        model = MatrixFactorization(*train.shape, factors=8, random_state=0)
        _runner(model, train, "ubpr", l2=1e-3).epoch(3)
        tables.append(model.item_factors.weight.detach().clone())
    assert torch.equal(*tables)


def test_a_user_with_every_item_is_left_out_of_pairwise_rows():
    train = Interactions.from_csr(sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0]], dtype=np.float32)))
    model = MatrixFactorization(2, 3, factors=4, random_state=0)
    before = model.user_factors.weight[0].detach().clone()
    loss, rows = _runner(model, train, l2=0.0).epoch(0)
    assert rows == 1 and np.isfinite(loss)  # user 0 has no negative: no row, no update
    assert torch.equal(before, model.user_factors.weight[0].detach())
