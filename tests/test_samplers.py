"""The shared sampler contract (every registered sampler x every registered model) and the BPR family.

The contract runs on plain Interactions only: a sampler that needs more (logged lists,
propensities) must fall back to something it can derive from the interactions.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsampling.data.interactions import Interactions
from recsampling.data.synthetic import make_world
from recsampling.models import MODELS, make_model
from recsampling.samplers import SAMPLERS, Batch, make_sampler
from recsampling.samplers.negatives import draw_negatives
from recsampling.train import Trainer


def checkerboard(n_users: int = 40, n_items: int = 30, p: float = 0.6, seed: int = 0) -> Interactions:
    """Users and items in two groups; a user interacts only within their group (with prob p)."""
    rng = np.random.default_rng(seed)
    same = (np.arange(n_users)[:, None] % 2) == (np.arange(n_items)[None, :] % 2)
    u, i = np.nonzero(same & (rng.random((n_users, n_items)) < p))
    return Interactions.from_indices(u, i, (n_users, n_items))


def _auc(model, train: Interactions, rng) -> float:
    """P(score of a training positive > score of a random non-positive of the same user)."""
    U, V = model.embedding_tables()
    S = U @ V.T
    pos = train.matrix.toarray() > 0
    wins = []
    for u in range(train.n_users):
        p, n = S[u, pos[u]], S[u, ~pos[u]]
        if p.size and n.size:
            wins.append((p[:, None] > n[None, :]).mean())
    return float(np.mean(wins))


def _check_batch(batch) -> None:
    """The Batch contract: users (B,) and items (B, L) int64; mask bool, labels and weights float32, all (B, L)."""
    assert isinstance(batch, Batch)
    torch_side = isinstance(batch.users, torch.Tensor)
    i64, b8, f32 = (torch.int64, torch.bool, torch.float32) if torch_side else (np.int64, np.bool_, np.float32)
    users, items = batch.users, batch.items
    assert users.dtype == i64 and users.ndim == 1
    assert items.dtype == i64 and items.ndim == 2 and items.shape[0] == users.shape[0] == len(batch)
    for field, dtype in (("mask", b8), ("labels", f32), ("weights", f32)):
        value = getattr(batch, field)
        if value is not None:
            assert isinstance(value, torch.Tensor if torch_side else np.ndarray), field
            assert value.dtype == dtype and tuple(value.shape) == tuple(items.shape), field
    if batch.mask is not None:
        assert batch.mask[:, 0].all()  # column 0 is the positive: always real


NAMES = sorted(SAMPLERS)
MODEL_NAMES = list(MODELS)  # the built-ins and any installed plug-in model


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_sampler_contract(name, model_name):
    train = checkerboard()
    rng = np.random.default_rng(0)
    sampler = make_sampler(name)
    sampler.prepare(train, rng)
    model = make_model(model_name, train, factors=8, random_state=0)
    pos = train.matrix.toarray() > 0
    rows = 0
    for batch in sampler.batches(16, rng):
        _check_batch(batch)
        users, items = batch.users, batch.items
        assert users.min() >= 0 and users.max() < train.n_users
        assert items.min() >= 0 and items.max() < train.n_items
        if getattr(sampler, "collision", None) == "redraw" and items.shape[1] > 1:
            negative = np.ones(items[:, 1:].shape, bool) if batch.labels is None else batch.labels[:, 1:] == 0
            if batch.mask is not None:
                negative &= batch.mask[:, 1:]
            hits = pos[users[:, None], items[:, 1:]]
            assert not (hits & negative).any(), "a user's own positive was drawn as a negative"
        rows += users.shape[0]
    assert rows == sampler.n_samples()

    # a finite scalar loss with gradients for the model
    batch = next(iter(sampler.batches(16, rng))).to("cpu")
    _check_batch(batch)
    loss = sampler.loss(model, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)

    # a short fit ranks the held-in positives above random items
    model = make_model(model_name, train, factors=8, random_state=0)
    Trainer(epochs=15, batch_size=32, lr=0.05, progress=False, random_state=0, device="cpu").fit(
        model, make_sampler(name), train)
    assert _auc(model, train, rng) > 0.75


_LOGS = {"users": np.arange(6), "items": np.arange(30).reshape(6, 5) % 10,
         "clicks": np.tile(np.array([1, 0, 1, 0, 0], np.int8), (6, 1))}
_SETTINGS = [(name, {}) for name in NAMES] + [
    (name, {"collision": "skip"}) for name in ("bpr", "popularity", "dns", "bpo", "nbpo")] + [("dla", {"logs": _LOGS})]


@pytest.mark.parametrize("name,params", _SETTINGS, ids=[f"{n}-{'-'.join(p)}" for n, p in _SETTINGS])
def test_every_sampler_yields_one_batch_layout_and_masks_what_it_could_not_draw(name, params):
    # user 0 interacted with every item: nothing left to draw for its rows
    base = checkerboard(n_users=12, n_items=10)
    u, i = base.matrix.nonzero()
    u, i = np.concatenate([u, np.zeros(10, np.int64)]), np.concatenate([i, np.arange(10)])
    train = Interactions.from_indices(u, i, base.shape)
    sampler = make_sampler(name, **params)
    sampler.prepare(train, np.random.default_rng(0))
    for batch in sampler.batches(8, np.random.default_rng(1)):
        _check_batch(batch)
        _check_batch(batch.to("cpu"))
        if batch.mask is not None:  # a padded entry holds the row's positive itself
            full = batch.users == 0
            assert not batch.mask[full, 1:].any()
            assert (batch.items[full, 1:] == batch.items[full, :1]).all()
        model = make_model("mf", train, factors=4, random_state=0)
        assert torch.isfinite(sampler.loss(model, batch.to("cpu")))


def test_batch_checks_its_shapes_and_moves_as_one():
    users, items = np.arange(3), np.zeros((3, 2), np.int64)
    with pytest.raises(ValueError, match="users has 2 rows but items has 3"):
        Batch(users[:2], items)
    with pytest.raises(ValueError, match="mask must have the shape of items"):
        Batch(users, items, mask=np.ones((3, 1), bool))
    with pytest.raises(ValueError, match="labels must be a 2-d float array"):
        Batch(users, items, labels=np.ones((3, 2), np.int64))
    with pytest.raises(ValueError, match="items must be a 2-d int array"):
        Batch(users, items[:, 0])
    b = Batch(users.astype(np.int32), items, mask=np.ones((3, 2), bool), weights=np.full((3, 2), 0.1)).to("cpu")
    assert b.users.dtype == torch.int64 and b.mask.dtype == torch.bool and b.labels is None
    assert b.weights.dtype == torch.float32 and float(b.weights[0, 0]) == pytest.approx(0.1)
    with pytest.raises(AttributeError):
        b.users = b.items  # frozen


# --------------------------------------------------------------------------- draw_negatives
def test_draw_negatives_redraw_is_exact_and_uniform_over_unobserved():
    rng = np.random.default_rng(1)
    m = sp.random(50, 20, density=0.7, format="csr", random_state=1)
    m.data[:] = 1
    users = np.repeat(np.arange(50), 400)
    neg = draw_negatives(m, users, 2, rng)
    assert neg.shape == (users.size, 2) and neg.dtype == np.int64
    dense = m.toarray() > 0
    assert not dense[users[:, None], neg].any()
    # user 0: every unobserved item comes up, uniformly
    free = np.flatnonzero(~dense[0])
    got = np.bincount(neg[users == 0].ravel(), minlength=20)[free]
    expected = 800 / free.size
    assert np.all(np.abs(got - expected) < 5 * np.sqrt(expected) + 1)
    assert got.sum() == 800


def test_draw_negatives_popularity_proportions():
    rng = np.random.default_rng(2)
    m = sp.csr_matrix((1, 6))  # one user without positives: the plain distribution
    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    n = 60000
    neg = draw_negatives(m, np.zeros(n, np.int64), 1, rng, item_probs=probs)
    obs = np.bincount(neg.ravel(), minlength=6)
    assert obs[5] == 0
    exp = probs[:5] * n
    chi2 = (((obs[:5] - exp) ** 2) / exp).sum()
    assert chi2 < 20.5  # 4 degrees of freedom, p ~ 0.0004


def test_draw_negatives_redraw_renormalizes_popularity_over_unobserved():
    rng = np.random.default_rng(3)
    m = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    probs = np.array([0.7, 0.1, 0.1, 0.1])
    neg = draw_negatives(m, np.zeros(30000, np.int64), 1, rng, item_probs=probs)
    obs = np.bincount(neg.ravel(), minlength=4) / 30000
    np.testing.assert_allclose(obs, [0, 1 / 3, 1 / 3, 1 / 3], atol=0.015)


def test_draw_negatives_skip_mode_reports_collisions():
    rng = np.random.default_rng(4)
    m = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    users = np.array([0] * 5000 + [1] * 100)
    neg, valid = draw_negatives(m, users, 1, rng, collision="skip")
    assert valid.shape == neg.shape == (5100, 1) and valid.dtype == bool
    hit = np.isin(neg[:5000, 0], [0, 1])
    np.testing.assert_array_equal(~hit, valid[:5000, 0])
    assert 0.45 < hit.mean() < 0.55
    assert valid[5000:].all()


def test_draw_negatives_errors():
    rng = np.random.default_rng(0)
    full = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="every drawable item"):
        draw_negatives(full, np.array([0]), 1, rng)
    with pytest.raises(ValueError, match="collision"):
        draw_negatives(full, np.array([0]), 1, rng, collision="retry")
    with pytest.raises(ValueError, match="users must be in"):
        draw_negatives(full, np.array([5]), 1, rng, collision="skip")
    with pytest.raises(ValueError, match="item_probs"):
        draw_negatives(full, np.array([0]), 1, rng, item_probs=np.ones(2))


# --------------------------------------------------------------------------- the BPR family
def test_bpr_batch_layout_and_epoch_covers_every_interaction():
    train = checkerboard()
    s = make_sampler("bpr", n_negatives=3)
    rng = np.random.default_rng(0)
    s.prepare(train, rng)
    pairs = []
    for b in s.batches(50, rng):
        assert b.items.shape[1] == 4 and b.mask is None  # redraw: nothing is ever padded
        pairs.append(b.users * train.n_items + b.items[:, 0])
    pairs = np.sort(np.concatenate(pairs))
    np.testing.assert_array_equal(pairs, np.sort(train.user_index() * train.n_items + train.item_index()))


def test_popularity_sampler_follows_counts_and_skip_mode_masks():
    train = checkerboard(p=0.5, seed=3)
    rng = np.random.default_rng(0)
    s = make_sampler("popularity", alpha=1.0, collision="skip", n_negatives=4)
    s.prepare(train, rng)
    negs, valids = [], []
    for _ in range(20):
        for b in s.batches(256, rng):
            negs.append(b.items[:, 1:].ravel())
            valids.append(b.mask[:, 1:].ravel())
    negs = np.concatenate(negs)
    counts = train.item_counts()
    freq = np.bincount(negs, minlength=train.n_items) / negs.size
    np.testing.assert_allclose(freq, counts / counts.sum(), atol=0.01)
    assert 0 < 1 - np.concatenate(valids).mean() < 1  # some collisions skipped, not all


def test_skip_mode_loss_counts_a_skipped_triple_as_zero():
    # implicit's skip: no update for that triple, the others keep their per-example weight (the
    # batch loss is the mean of its rows' losses, as in the fused kernel)
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    s = make_sampler("bpr", collision="skip")
    s.prepare(train, np.random.default_rng(0))
    batch = Batch(torch.tensor([0, 1]), torch.tensor([[0, 2], [1, 3]]), mask=torch.tensor([[True, True], [True, False]]))
    from recsampling.samplers.negatives import bpr_loss

    sc = model.score(batch.users, batch.items)
    torch.testing.assert_close(s.loss(model, batch), bpr_loss(sc[:1, :1], sc[:1, 1:]) / 2)


def test_dns_picks_the_highest_scored_candidate():
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    s = make_sampler("dns", n_candidates=5)
    s.prepare(train, np.random.default_rng(0))
    b = next(iter(s.batches(8, np.random.default_rng(1)))).to("cpu")
    assert b.items.shape == (8, 6)
    sc = model.score(b.users, b.items)
    hardest = sc[:, 1:].max(1).values
    torch.testing.assert_close(s.loss(model, b), (-torch.nn.functional.logsigmoid(sc[:, 0] - hardest)).mean())
    with pytest.raises(ValueError, match="n_negatives"):
        make_sampler("dns", n_candidates=2, n_negatives=3).prepare(train, np.random.default_rng(0))


def test_inbatch_logq_and_accidental_hits():
    # user 0 likes items 0 and 1; a batch with rows (0, 0) and (0, 1): each is the other's hit
    train = Interactions.from_indices([0, 0, 1, 2], [0, 1, 2, 2], (3, 4))
    s = make_sampler("inbatch")
    s.prepare(train, np.random.default_rng(0))
    b = next(iter(s.batches(10, np.random.default_rng(0))))
    order = {(int(u), int(i)): r for r, (u, i) in enumerate(zip(b.users, b.items[:, 0]))}
    r00, r01, r12 = order[(0, 0)], order[(0, 1)], order[(1, 2)]
    # over the batch's distinct items (item 2 is in two rows), each row's target column left out
    uniq, inverse = np.unique(b.items[:, 0], return_inverse=True)
    rows, cols = s.accidental_hits(b.users, uniq, targets=inverse)
    distinct = np.zeros((len(b), uniq.size), bool)
    distinct[rows.numpy(), cols.numpy()] = True
    assert not distinct[np.arange(len(b)), inverse].any()
    # the (B, B) hits: a column whose item is a positive of the row's user, the row itself left out
    rows, cols = s.accidental_hits(b.users, uniq)
    hits = np.zeros((len(b), uniq.size), bool)
    hits[rows.numpy(), cols.numpy()] = True
    hits = hits[:, inverse]
    np.fill_diagonal(hits, False)
    assert hits[r00, r01] and hits[r01, r00]
    assert not hits[r00, r12] and not hits.diagonal().any()
    # (row, column) pairs are exactly the data's positives, the targets left out
    want = train.matrix[b.users][:, b.items[:, 0]].toarray() > 0
    np.fill_diagonal(want, False)
    np.testing.assert_array_equal(hits, want)
    log_q = np.log(train.item_counts()[b.items[:, 0]] / 4)
    np.testing.assert_allclose(log_q[r12], np.log(2 / 4), rtol=1e-6)
    # the loss equals a hand-written softmax with corrected, masked logits
    model = make_model("mf", train, factors=3, random_state=0)
    t = b.to("cpu")
    U = model.user_embeddings(t.users)
    V = model.item_embeddings(t.items[:, 0])
    logits = U @ V.T - torch.as_tensor(log_q, dtype=torch.float32)[None, :]
    logits[torch.as_tensor(hits)] = -np.inf
    want = -(logits.diagonal() - torch.logsumexp(logits, 1)).mean()
    torch.testing.assert_close(s.loss(model, t), want)


def test_inbatch_positives_among_the_columns_cpu_kernel_and_torch_ops_agree_with_scipy():
    from recsampling.fast.draws import positives_among
    from recsampling.samplers.inbatch import _positives_among

    rng = np.random.default_rng(0)
    m = sp.random(50, 40, density=0.2, format="csr", random_state=0)
    m.data[:] = 1
    users = rng.integers(0, 50, 64)  # repeated users, and users without positives among the columns
    items = rng.choice(40, 15, replace=False)
    want = m[users][:, items].toarray() > 0
    for rows, cols in (positives_among(m, users, items),
                       _positives_among(torch.as_tensor(m.indptr), torch.as_tensor(m.indices), 40,
                                        torch.as_tensor(users), torch.as_tensor(items))):
        got = np.zeros_like(want)
        got[np.asarray(rows), np.asarray(cols)] = True
        np.testing.assert_array_equal(got, want)
        assert len(rows) == want.sum()  # each pair once
    assert want.any() and not want.all()


def _plain_inbatch_loss(sampler, model, b):
    """Eq. (4) over the B columns with autograd (the formulation the distinct-items softmax replaces)."""
    users, items = b.users, b.items[:, 0]
    logits = model.user_embeddings(users) @ model.item_embeddings(items).T / sampler.temperature
    if sampler.logq:
        logits = logits - sampler._log_q[items].to(logits.dtype)[None, :]
    if sampler.mask_hits:
        pos = torch.as_tensor(sampler.train_.matrix[users.numpy()][:, items.numpy()].toarray() > 0)
        logits = logits.masked_fill(pos.fill_diagonal_(False), float("-inf"))
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(users)))


@pytest.mark.parametrize("params", [{}, {"mask_hits": False}, {"logq": False, "temperature": 0.5}])
@pytest.mark.parametrize("model_name", ["mf", "twotower"])
def test_inbatch_softmax_over_distinct_items_has_the_loss_and_gradient_of_the_plain_one(model_name, params):
    world = make_world(n_users=120, n_items=80, target_interactions=1500, random_state=0)
    train = world.clicks
    s = make_sampler("inbatch", **params)
    s.prepare(train, np.random.default_rng(0))
    b = next(iter(s.batches(256, np.random.default_rng(1)))).to("cpu")
    assert torch.unique(b.items).numel() < len(b)  # duplicates: the count weights are exercised
    model = make_model(model_name, train, factors=8, random_state=0).double()
    s.double()
    grads = []
    for loss_fn in (s.loss, lambda m, x: _plain_inbatch_loss(s, m, x)):
        model.zero_grad()
        loss = loss_fn(model, b)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (l1, g1), (l2, g2) = grads
    torch.testing.assert_close(l1, l2, rtol=0, atol=1e-9)
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    assert max(float(a.abs().max()) for a in g1) > 1e-3  # a gradient that is there


def test_inbatch_softmax_keeps_its_buffer_across_batches_and_refuses_a_stale_backward():
    world = make_world(n_users=120, n_items=80, target_interactions=1500, random_state=0)
    s = make_sampler("inbatch")
    s.prepare(world.clicks, np.random.default_rng(0))
    model = make_model("mf", world.clicks, factors=8, random_state=0).double()
    s.double()
    batches = [b.to("cpu") for b in s.batches(100, np.random.default_rng(1))][:3]
    for b in batches:  # batches of different distinct-item counts through one buffer: each the plain gradient
        got = []
        for loss_fn in (s.loss, lambda m, x: _plain_inbatch_loss(s, m, x)):
            model.zero_grad()
            loss_fn(model, b).backward()
            got.append([p.grad.clone() for p in model.parameters()])
        for a, c in zip(*got):
            torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    first = s.loss(model, batches[0])
    s.loss(model, batches[1])  # takes the buffer over: the first loss's exponentials are gone
    with pytest.raises(RuntimeError, match="call backward"):
        first.backward()
    pending = s.loss(model, batches[0])
    with torch.no_grad():  # a loss without a backward leaves the buffer to the pending one
        s.loss(model, batches[1])
    pending.backward()


def test_inbatch_softmax_is_exact_when_a_hit_towers_over_the_target():
    # a hit's logit 200 above the row's own: zeroing it after the exponential would lose the row
    # (exp underflows), so the softmax masks it before the maximum
    train = Interactions.from_indices([0, 0, 1, 1], [0, 1, 0, 2], (2, 3))
    s = make_sampler("inbatch", logq=False)
    s.prepare(train, np.random.default_rng(0))
    b = Batch(np.array([0, 1]), np.array([[0], [2]])).to("cpu")
    model = make_model("mf", train, factors=2, random_state=0, item_bias=False)
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.tensor([[10.0, 0.0], [1.0, 0.0]]))
        model.item_factors.weight.copy_(torch.tensor([[0.0, 1.0], [20.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(s.loss(model, b), _plain_inbatch_loss(s, model, b))
    # row 1 (user 1, target item 2, logit 0): item 0 is user 1's positive, its hit, at logit 300
    with torch.no_grad():
        model.item_factors.weight.copy_(torch.tensor([[300.0, 0.0], [0.0, 0.0], [0.0, 1.0]]))
    loss = s.loss(model, b)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, _plain_inbatch_loss(s, model, b))


def test_fused_kernels_are_a_lookup_not_a_sampler_flag():
    from recsampling.fast import find_kernel

    train = checkerboard()
    mf = make_model("mf", train, factors=4, random_state=0)
    for name in ("bpr", "popularity", "dns", "bpo", "nbpo", "pointwise", "relmf", "ubpr"):
        s = make_sampler(name)
        assert not hasattr(s, "supports_fused") and not hasattr(s, "fused_epoch")
        assert find_kernel(mf, s, "sgd", "cpu") is not None
        assert find_kernel(mf, s, "adam", "cpu") is None
    assert find_kernel(mf, make_sampler("inbatch"), "sgd", "cpu") is None


@pytest.mark.parametrize("bad", [{"n_negatives": 0}, {"collision": "again"}])
def test_bad_parameters_fail_in_prepare(bad):
    with pytest.raises(ValueError):
        make_sampler("bpr", **bad).prepare(checkerboard(), np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha"):
        make_sampler("popularity", alpha=-1).prepare(checkerboard(), np.random.default_rng(0))


def test_users_without_any_negative_are_left_out_of_redraw_epochs():
    # user 0 has every item with positive popularity (items 0-2; item 3 is never interacted with)
    train = Interactions.from_indices([0, 0, 0, 1], [0, 1, 2, 0], (2, 4))
    rng = np.random.default_rng(0)
    pop = make_sampler("popularity")
    pop.prepare(train, rng)
    assert pop.n_samples() == 1
    assert all((b.users == 1).all() for b in pop.batches(4, rng))
    uni = make_sampler("bpr")  # uniform: item 3 is still a negative for user 0
    uni.prepare(train, rng)
    assert uni.n_samples() == 4
    with pytest.raises(ValueError, match="every drawable item"):
        draw_negatives(train.matrix, np.array([0]), 1, rng, item_probs=np.array([1.0, 1.0, 1.0, 0.0]))


def test_no_drawable_negative_at_all_is_a_clear_error():
    train = Interactions.from_indices([0, 0, 0], [0, 1, 2], (1, 4))  # one user; item 3 never interacted with
    rng = np.random.default_rng(0)
    make_sampler("bpr").prepare(train, rng)  # uniform: item 3 is a negative
    with pytest.raises(ValueError, match="popularity: no user .* never draw an item without training interactions"):
        make_sampler("popularity").prepare(train, rng)
    full = Interactions.from_indices([0, 0], [0, 1], (1, 2))
    with pytest.raises(ValueError, match="bpr: no user has an unobserved item"):
        make_sampler("bpr").prepare(full, rng)
    with pytest.raises(ValueError, match=r"^popularity: no user has an unobserved item to draw as a negative; nothing"):
        make_sampler("popularity", alpha=0).prepare(full, rng)  # alpha = 0 is uniform: no popularity reason


def test_param_groups_default_covers_every_own_parameter():
    train = checkerboard()
    rng = np.random.default_rng(0)
    plain = make_sampler("bpr")
    plain.prepare(train, rng)
    assert plain.param_groups(0.1) == []
    nbpo = make_sampler("nbpo", flip="item")
    nbpo.prepare(train, rng)
    base = super(type(nbpo), nbpo).param_groups(0.1)  # the base class's default
    assert base[0]["lr"] == 0.1
    assert {id(p) for p in base[0]["params"]} == {id(p) for p in nbpo.parameters()}
