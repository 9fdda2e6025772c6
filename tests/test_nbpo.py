"""BPO / NBPO: the loss math against hand computation, the authors' update rule, stability,
readable flip rates, and learning on a tiny noisy world."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recsampling.data.interactions import Interactions
from recsampling.models.base import EmbeddingModel
from recsampling.samplers.base import Batch, make_sampler
from recsampling.samplers.nbpo import BPOSampler, NBPOSampler, bpo_nll, nbpo_nll, nbpo_surrogate


class TinyMF(EmbeddingModel):
    def __init__(self, n_users, n_items, dim=4, seed=0):
        super().__init__(n_users, n_items)
        g = torch.Generator().manual_seed(seed)
        self.U = nn.Parameter(0.1 * torch.randn(n_users, dim, generator=g))
        self.V = nn.Parameter(0.1 * torch.randn(n_items, dim, generator=g))

    def user_embeddings(self, users=None):
        return self.U if users is None else self.U[users]

    def item_embeddings(self, items=None):
        return self.V if items is None else self.V[items]


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def _tiny_train():
    # 3 users x 6 items
    m = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1]], dtype=np.float32))
    return Interactions.from_csr(m)


XS = [-2.0, -0.3, 0.0, 0.7, 3.0]
GS = [-4.0, -1.0, 0.5, 2.0]


def test_bpo_nll_equals_hand_computed():
    x = torch.tensor(XS, dtype=torch.float64)
    for y in (0.0, 1.0):
        got = bpo_nll(x, torch.full_like(x, y)).numpy()
        want = [-(y * math.log(_sig(v)) + (1 - y) * math.log(1 - _sig(v))) for v in XS]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_nbpo_exact_nll_equals_hand_computed():
    xx, gg = np.meshgrid(XS, GS, indexing="ij")
    x, g = torch.tensor(xx), torch.tensor(gg)
    p1 = np.vectorize(lambda a, b: _sig(a) * (1 - _sig(b)))(xx, gg)  # P(observed = 1), eq. (4)
    np.testing.assert_allclose(nbpo_nll(x, g, torch.ones_like(x)).numpy(), -np.log(p1), rtol=1e-12)
    np.testing.assert_allclose(nbpo_nll(x, g, torch.zeros_like(x)).numpy(), -np.log1p(-p1), rtol=1e-12)


def test_nbpo_exact_reduces_to_bpo_when_flip_rate_is_zero():
    x = torch.tensor(XS, dtype=torch.float64)
    g = torch.full_like(x, -60.0)
    for y in (0.0, 1.0):
        lab = torch.full_like(x, y)
        np.testing.assert_allclose(nbpo_nll(x, g, lab).numpy(), bpo_nll(x, lab).numpy(), atol=1e-12)


def test_surrogate_gradient_is_the_authors_update_rule():
    xx, gg = np.meshgrid(XS, GS, indexing="ij")
    sx = 1 / (1 + np.exp(-xx))
    sg = 1 / (1 + np.exp(-gg))
    # ascent directions of _NBPO.py, eqs. (7)-(8)
    rule = {
        1.0: ((1 - sg) * (1 - sx), -sx * sg),
        0.0: (sg * (1 - sx) - sx, sx * (1 - sg)),
    }
    for y, (dx_want, dg_want) in rule.items():
        x = torch.tensor(xx, requires_grad=True)
        g = torch.tensor(gg, requires_grad=True)
        nbpo_surrogate(x, g, torch.full_like(x, y)).sum().backward()
        np.testing.assert_allclose(-x.grad.numpy(), dx_want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(-g.grad.numpy(), dg_want, rtol=1e-10, atol=1e-12)


def test_exact_gradient_matches_finite_differences():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([-2.0, 0.4, 1.5], dtype=torch.float64, requires_grad=True)
    lab = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: nbpo_nll(a, b, lab), (x, g))


@pytest.mark.parametrize("fn", ["bpo", "exact", "surrogate"])
def test_no_nan_or_inf_at_extreme_scores_and_flip_logits(fn):
    vals = [-50.0, -20.0, 0.0, 20.0, 50.0]
    xx, gg = np.meshgrid(vals, vals, indexing="ij")
    for y in (0.0, 1.0):
        x = torch.tensor(xx, dtype=torch.float32, requires_grad=True)
        g = torch.tensor(gg, dtype=torch.float32, requires_grad=True)
        lab = torch.full_like(x, y)
        if fn == "bpo":
            out = bpo_nll(x, lab)
        elif fn == "exact":
            out = nbpo_nll(x, g, lab)
        else:
            out = nbpo_surrogate(x, g, lab)
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert torch.isfinite(x.grad).all()
        if fn != "bpo":
            assert torch.isfinite(g.grad).all()


@pytest.mark.parametrize("objective", ["exact", "surrogate"])
def test_sampler_loss_stable_with_extreme_model_and_flip_parameters(objective):
    train = _tiny_train()
    s = NBPOSampler(n_negatives=2, objective=objective, flip="item")
    s.prepare(train, np.random.default_rng(0))
    model = TinyMF(3, 6, dim=1)
    with torch.no_grad():
        model.U.fill_(1.0)
        model.V.copy_(torch.tensor([[50.0], [-50.0], [50.0], [-50.0], [50.0], [-50.0]]))
        s.flip_.item_logit.weight.copy_(torch.tensor([[60.0], [-40.0], [-60.0], [40.0], [60.0], [-40.0]]))
    batch = Batch(torch.tensor([0, 1, 2]), torch.tensor([[0, 2, 3], [1, 4, 5], [3, 0, 2]]),
                  labels=torch.tensor([[1.0, 0, 0]] * 3))
    loss = s.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    for p in list(model.parameters()) + list(s.parameters()):
        assert torch.isfinite(p.grad).all()


def _batch():
    return Batch(torch.tensor([0, 2]), torch.tensor([[1, 3, 4], [5, 0, 2]]),
                 labels=torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_bpo_sampler_loss_is_the_weighted_row_likelihood():
    train = _tiny_train()
    model = TinyMF(3, 6)
    batch = _batch()
    x = model.score(batch.users, batch.items).detach().double().numpy()
    for pw, w in ((None, 2.0), (1.0, 1.0)):
        s = BPOSampler(n_negatives=2, positive_weight=pw)
        s.prepare(train, np.random.default_rng(0))
        want = np.mean([-w * math.log(_sig(r[0])) - sum(math.log(1 - _sig(v)) for v in r[1:]) for r in x])
        assert float(s.loss(model, batch).detach()) == pytest.approx(want, rel=1e-5)


def test_nbpo_exact_sampler_loss_is_the_likelihood_plus_flip_l2():
    train = _tiny_train()
    model = TinyMF(3, 6)
    batch = _batch()
    s = NBPOSampler(n_negatives=2, objective="exact", flip="factor", flip_dim=3, flip_l2=0.01)
    s.prepare(train, np.random.default_rng(1))
    x = model.score(batch.users, batch.items).detach().double().numpy()
    P = s.flip_.P.weight.detach().double().numpy()
    Q = s.flip_.Q.weight.detach().double().numpy()
    rows = []
    for r, u in enumerate(batch.users.tolist()):
        its = batch.items[r].tolist()
        g = [P[u] @ Q[i] for i in its]
        nll = -2.0 * math.log(_sig(x[r, 0]) * (1 - _sig(g[0])))
        nll -= sum(math.log(1 - _sig(x[r, c]) * (1 - _sig(g[c]))) for c in (1, 2))
        reg = P[u] @ P[u] + sum(Q[i] @ Q[i] for i in its)
        rows.append(nll + 0.01 * reg)
    assert float(s.loss(model, batch).detach()) == pytest.approx(np.mean(rows), rel=1e-5)


def test_flip_rates_readable_and_start_small():
    train = _tiny_train()
    for flip in ("factor", "item", "user", "user+item"):
        s = NBPOSampler(flip=flip, flip_init=0.02, flip_dim=8)
        s.prepare(train, np.random.default_rng(0))
        grid = s.flip_rates()
        assert grid.shape == (3, 6)
        assert ((grid > 0) & (grid < 0.5)).all()
        logit = np.log(grid / (1 - grid))
        assert abs(logit.mean() - math.log(0.02 / 0.98)) < 1.0
        assert s.item_flip_rates_.shape == (6,) and s.user_flip_rates_.shape == (3,)
        np.testing.assert_allclose(s.item_flip_rates_, grid.mean(0), rtol=1e-5)
        np.testing.assert_allclose(s.user_flip_rates_, grid.mean(1), rtol=1e-5)
        pairs = s.flip_rates(users=[0, 2], items=[5, 1], pairs=True)
        np.testing.assert_allclose(pairs, [grid[0, 5], grid[2, 1]], rtol=1e-6)
        if flip != "factor":
            np.testing.assert_allclose(grid, 0.02, rtol=1e-5)


def test_constant_flip_learns_nothing_and_is_the_soft_label_surrogate():
    train = _tiny_train()
    s = NBPOSampler(flip="constant", flip_init=0.5)
    s.prepare(train, np.random.default_rng(0))
    assert not [p for p in s.parameters() if p.requires_grad]
    np.testing.assert_allclose(s.flip_rates(), 0.5, rtol=1e-6)
    np.testing.assert_allclose(s.item_flip_rates_, 0.5, rtol=1e-6)
    # the loss equals the surrogate at the fixed flip logit γ = logit(0.5) = 0
    model = TinyMF(3, 6, seed=1)
    batch = next(s.batches(8, np.random.default_rng(0))).to("cpu")
    x = model.score(batch.users, batch.items)
    w = torch.where(batch.labels > 0.5, 4.0, 1.0) * batch.mask
    want = (w * nbpo_surrogate(x, torch.zeros_like(x), batch.labels)).sum(-1).mean()
    assert float(s.loss(model, batch).detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    with pytest.raises(ValueError):
        NBPOSampler(flip="constant", flip_init=1.0).prepare(train, np.random.default_rng(0))


def test_param_groups_give_flip_parameters_their_own_lr():
    s = NBPOSampler(flip_lr=0.5)
    s.prepare(_tiny_train(), np.random.default_rng(0))
    (group,) = s.param_groups(0.01)
    assert group["lr"] == 0.5
    assert {id(p) for p in group["params"]} == {id(p) for p in s.parameters()}
    s2 = NBPOSampler()
    s2.prepare(_tiny_train(), np.random.default_rng(0))
    assert s2.param_groups(0.01)[0]["lr"] == 0.01


@pytest.mark.parametrize(
    "params",
    [{"flip": "bogus"}, {"objective": "em"}, {"flip_init": 0.7}, {"flip_init": 0.0}, {"n_negatives": 0},
     {"flip_l2": -1.0}, {"flip_dim": 0}, {"positive_weight": -2.0}],
)
def test_bad_parameters_raise_value_error(params):
    with pytest.raises(ValueError):
        NBPOSampler(**params).prepare(_tiny_train(), np.random.default_rng(0))


def test_batches_pair_each_vote_with_unvoted_uniform_draws():
    train = _tiny_train()
    s = make_sampler("nbpo", n_negatives=3)
    s.prepare(train, np.random.default_rng(0))
    batches = list(s.batches(4, np.random.default_rng(1)))
    users = np.concatenate([b.users for b in batches])
    items = np.concatenate([b.items for b in batches])
    labels = np.concatenate([b.labels for b in batches])
    assert items.shape == (train.nnz, 4) and labels.shape == (train.nnz, 4)
    assert (labels[:, 0] == 1).all() and (labels[:, 1:] == 0).all()
    dense = train.matrix.toarray()
    assert (dense[users, items[:, 0]] == 1).all()
    assert (dense[users[:, None], items[:, 1:]] == 0).all()
    assert sorted(zip(users, items[:, 0])) == sorted(zip(train.user_index(), train.item_index()))


def _noisy_world(seed=0, n_users=120, n_items=60, dim=3):
    """Low-rank truth; items 0..29 lose 60% of their true positives, items 30..59 none."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n_users, dim)), rng.normal(size=(n_items, dim))
    logits = a @ b.T
    truth = logits > np.quantile(logits, 0.8, axis=1, keepdims=True)
    noisy_item = np.arange(n_items) < n_items // 2
    hide = truth & noisy_item[None, :] & (rng.random(truth.shape) < 0.6)
    observed = truth & ~hide
    return Interactions.from_csr(sp.csr_matrix(observed.astype(np.float32))), truth, hide, noisy_item


def _fit(sampler, train, epochs=60, seed=0, lr=0.05):
    rng = np.random.default_rng(seed)
    sampler.prepare(train, rng)
    model = TinyMF(*train.shape, dim=8, seed=seed)
    groups = [{"params": list(model.parameters())}] + sampler.param_groups(lr)
    opt = torch.optim.Adam(groups, lr=lr)
    for _ in range(epochs):
        for batch in sampler.batches(256, rng):
            t = batch.to("cpu")
            loss = sampler.loss(model, t) + 1e-4 * model.regularization(t.users, t.items).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def test_nbpo_learns_on_a_tiny_noisy_world():
    from scipy.stats import mannwhitneyu

    train, truth, hide, noisy_item = _noisy_world()
    s = NBPOSampler(flip="item", flip_lr=0.05, flip_l2=1e-3)
    model = _fit(s, train, epochs=20)
    with torch.no_grad():
        scores = (model.U @ model.V.T).numpy()
    unvoted = ~train.matrix.toarray().astype(bool)
    pos, neg = scores[hide], scores[unvoted & ~truth]
    auc = mannwhitneyu(pos, neg).statistic / (pos.size * neg.size)
    assert auc > 0.8  # hidden true positives rank above true negatives
    rates = s.item_flip_rates_
    assert np.isfinite(rates).all()
    assert rates[noisy_item].mean() > rates[~noisy_item].mean()  # flips learned where noise was injected


def test_skip_collisions_and_users_without_unvoted_items_are_masked():
    m = sp.csr_matrix(np.array([[1, 1, 1, 1], [1, 0, 0, 1]], dtype=np.float32))  # user 0 has seen all
    train = Interactions.from_csr(m)
    for collision in ("redraw", "skip"):
        s = BPOSampler(n_negatives=3, collision=collision)
        s.prepare(train, np.random.default_rng(0))
        for b in s.batches(8, np.random.default_rng(0)):
            seen = m.toarray()[b.users[:, None], b.items] > 0
            assert b.mask[:, 0].all()
            assert not (seen[:, 1:] & b.mask[:, 1:]).any()
            assert not b.mask[b.users == 0, 1:].any()
            loss = s.loss(TinyMF(2, 4), b.to("cpu"))
            assert torch.isfinite(loss)
