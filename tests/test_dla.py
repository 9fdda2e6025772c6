"""DLA (Ai et al., SIGIR 2018): loss math, detached weights, propensity recovery, stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from recsampling.data.interactions import Interactions
from recsampling.models.base import EmbeddingModel
from recsampling.samplers.base import SAMPLERS, Batch, make_sampler
from recsampling.samplers.dla import DLASampler, ipw_softmax_loss, log_ratio_weights

CPU = torch.device("cpu")


# ------------------------------------------------------------------------------------ helpers
class TableModel(EmbeddingModel):
    """Scores read from a fixed (n_users, n_items) table (for hand-computed losses)."""

    def __init__(self, table):
        table = torch.as_tensor(np.asarray(table, dtype=np.float32))
        super().__init__(*table.shape)
        self.table = nn.Parameter(table.clone())

    def score(self, users, items):
        return self.table[users.unsqueeze(-1), items] if items.dim() == 2 else self.table[users, items]

    def regularization(self, users, items):
        return torch.zeros(users.shape[0])


class FeatureModel(EmbeddingModel):
    """A bilinear model over fixed features (cannot memorize single clicks, like the paper's ranker)."""

    def __init__(self, user_features, item_features, dim=16, seed=0):
        super().__init__(user_features.shape[0], item_features.shape[0])
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("xu", torch.as_tensor(np.array(user_features, dtype=np.float32)))
        self.register_buffer("xi", torch.as_tensor(np.array(item_features, dtype=np.float32)))
        self.A = nn.Parameter(torch.randn(self.xu.shape[1], dim, generator=gen) * 0.1)
        self.B = nn.Parameter(torch.randn(self.xi.shape[1], dim + 1, generator=gen) * 0.1)

    def user_embeddings(self, users=None):
        x = self.xu if users is None else self.xu[users]
        u = x @ self.A
        return torch.cat([u, torch.ones(u.shape[:-1] + (1,))], -1)

    def item_embeddings(self, items=None):
        x = self.xi if items is None else self.xi[items]
        return x @ self.B


def _logs_batch(logs) -> Batch:
    """Logged lists as one batch of tensors: the clicks are the labels."""
    return Batch(np.asarray(logs["users"], np.int64), np.asarray(logs["items"], np.int64),
                 labels=np.asarray(logs["clicks"], np.float32)).to(CPU)


def _train(train, sampler, model, epochs, lr=0.01, batch_size=256, seed=0):
    """A minimal loop (Adam on the model and on the sampler's own parameter group)."""
    rng = np.random.default_rng(seed)
    sampler.prepare(train, rng)
    groups = [{"params": list(model.parameters())}] + sampler.param_groups(lr)
    opt = torch.optim.Adam(groups, lr=lr)
    for _ in range(epochs):
        for batch in sampler.batches(batch_size, rng):
            loss = sampler.loss(model, batch.to(CPU))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return sampler


def _tiny_logs():
    # 2 users x 4 items; two lists of length 3
    users = np.array([0, 1])
    items = np.array([[0, 1, 2], [3, 2, 0]])
    clicks = np.array([[0, 1, 1], [1, 0, 1]], dtype=np.int8)
    return {"users": users, "items": items, "clicks": clicks}


def _tiny_train():
    m = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 0, 1]], dtype=np.float32))
    return Interactions.from_csr(m)


# ------------------------------------------------------------------------------------ loss math
def test_registered():
    assert SAMPLERS["dla"] is DLASampler
    assert isinstance(make_sampler("dla"), DLASampler)


def test_log_ratio_weights_are_ratios_to_the_first_position_and_clipped():
    g = torch.tensor([[1.0, 0.0, 3.0]], requires_grad=True)
    lw = log_ratio_weights(g)
    assert torch.allclose(lw, torch.tensor([[0.0, 1.0, -2.0]]))  # log(P_1/P_k) = g_1 - g_k
    assert not lw.requires_grad
    lw = log_ratio_weights(g, max_weight=math.exp(0.5))
    assert torch.allclose(lw, torch.tensor([[0.0, 0.5, -2.0]]))
    lw = log_ratio_weights(g, reference=torch.tensor([2.0]))
    assert torch.allclose(lw, torch.tensor([[1.0, 2.0, -1.0]]))


def test_ipw_softmax_loss_hand_values():
    # list A: softmax([0, ln2, 0]) = [1/4, 1/2, 1/4], click at 2 with weight 2
    # list B: softmax([0, 0, 0]) = 1/3 each, clicks at 1 and 3 with weights 1 and 4
    logits = torch.tensor([[0.0, math.log(2.0), 0.0], [0.0, 0.0, 0.0]])
    clicks = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    weights = torch.tensor([[7.0, 2.0, 9.0], [1.0, 5.0, 4.0]])  # unclicked weights must not matter
    got = ipw_softmax_loss(logits, clicks, torch.log(weights))
    want = (2 * math.log(2.0) + 1 * math.log(3.0) + 4 * math.log(3.0)) / 7.0
    assert got.item() == pytest.approx(want, rel=1e-6)
    # unweighted: plain mean over the clicks
    got = ipw_softmax_loss(logits, clicks)
    assert got.item() == pytest.approx((math.log(2.0) + 2 * math.log(3.0)) / 3.0, rel=1e-6)


def test_ipw_softmax_loss_without_clicks_is_zero_and_differentiable():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = ipw_softmax_loss(logits, torch.zeros(2, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(2, 3))


def test_position_losses_match_the_paper_by_hand():
    logs = _tiny_logs()
    scores = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -0.5, 0.3]], dtype=np.float32)
    model = TableModel(scores)
    sampler = DLASampler(logs=logs)
    sampler.prepare(_tiny_train(), np.random.default_rng(0))
    g = np.array([0.7, -0.2, -1.1], dtype=np.float32)
    with torch.no_grad():
        sampler.propensity_.logits.copy_(torch.from_numpy(g))
    batch = _logs_batch(logs)
    loss_f, loss_g = sampler.losses(model, batch)

    s = scores[logs["users"][:, None], logs["items"]].astype(np.float64)
    c = logs["clicks"].astype(np.float64)
    gg = np.broadcast_to(g.astype(np.float64), s.shape)

    def log_softmax(x):
        return x - np.log(np.exp(x).sum(1, keepdims=True))

    def weighted(lp, w):
        return -(w * c * lp).sum() / (w * c).sum()

    w = np.exp(gg[:, :1] - gg)  # P_1 / P_k, eq. (5)
    v = np.exp(s[:, :1] - s)    # R_1 / R_k, eq. (5)
    assert loss_f.item() == pytest.approx(weighted(log_softmax(s), w), rel=1e-5)
    assert loss_g.item() == pytest.approx(weighted(log_softmax(gg), v), rel=1e-5)
    assert sampler.loss(model, batch).item() == pytest.approx(loss_f.item() + loss_g.item(), rel=1e-6)
    np.testing.assert_allclose(sampler.position_propensities_, np.exp(g - g[0]), rtol=1e-6)


def test_weights_are_detached_no_gradient_crosses_between_f_and_g():
    logs = _tiny_logs()
    model = TableModel(np.random.default_rng(0).normal(size=(2, 4)))
    sampler = DLASampler(logs=logs)
    sampler.prepare(_tiny_train(), np.random.default_rng(0))
    with torch.no_grad():
        sampler.propensity_.logits.copy_(torch.tensor([0.3, -0.4, 0.9]))
    batch = _logs_batch(logs)
    loss_f, loss_g = sampler.losses(model, batch)
    g_param = sampler.propensity_.logits
    assert torch.autograd.grad(loss_f, g_param, allow_unused=True)[0] is None
    assert torch.autograd.grad(loss_g, model.table, allow_unused=True)[0] is None
    # and each loss does move its own model
    assert torch.autograd.grad(loss_f, model.table, retain_graph=True)[0].abs().sum() > 0
    assert torch.autograd.grad(loss_g, g_param, retain_graph=True)[0].abs().sum() > 0


def test_candidate_losses_by_hand():
    # setting 2: w = exp(max g - g(i)) over the catalogue, v = mean_j exp(s_uj) / exp(s_ui),
    # L_g with the softmax of g over the whole catalogue
    train = _tiny_train()
    scores = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -0.5, 0.3]], dtype=np.float32)
    model = TableModel(scores)
    sampler = DLASampler(n_sampled=2, exposure_features=("item",), propensity_l2=0.0, max_weight=None)
    sampler.prepare(train, np.random.default_rng(0))
    g = np.array([0.2, -1.0, 0.5, -0.3], dtype=np.float32)
    with torch.no_grad():
        sampler.propensity_.item_logits.copy_(torch.from_numpy(g))
    users = np.array([0, 1, 1])
    items = np.array([[2, 1, 3], [0, 1, 2], [3, 2, 2]])
    clicks = np.zeros(items.shape, dtype=np.float32)
    clicks[:, 0] = 1
    batch = Batch(users, items, mask=np.ones(items.shape, bool), labels=clicks).to(CPU)
    loss_f, loss_g = sampler.losses(model, batch)

    s = scores[users[:, None], items].astype(np.float64)
    g64 = g.astype(np.float64)
    w = np.exp(g64.max() - g64[items[:, 0]])
    lp_f = s[:, 0] - np.log(np.exp(s).sum(1))
    assert loss_f.item() == pytest.approx(-(w * lp_f).sum() / w.sum(), rel=1e-5)
    v = np.exp(s[:, 1:]).mean(1) / np.exp(s[:, 0])
    lp_g = g64[items[:, 0]] - np.log(np.exp(g64).sum())
    assert loss_g.item() == pytest.approx(-(v * lp_g).sum() / v.sum(), rel=1e-5)
    np.testing.assert_allclose(sampler.item_propensities_, np.exp(g64 - g64.max()), rtol=1e-6)
    assert sampler.position_propensities_ is None


def test_fixed_propensity_gives_ipw_and_naive_losses_and_no_learning():
    logs = _tiny_logs()
    model = TableModel(np.random.default_rng(1).normal(size=(2, 4)))
    batch = _logs_batch(logs)
    naive = DLASampler(logs=logs, fixed_propensity=np.ones(3))
    naive.prepare(_tiny_train(), np.random.default_rng(0))
    assert naive.param_groups(0.1) == []
    s = model.score(batch.users, batch.items)
    assert naive.loss(model, batch).item() == pytest.approx(ipw_softmax_loss(s, batch.labels).item(), rel=1e-6)
    theta = np.array([1.0, 0.5, 0.25])
    ips = DLASampler(logs=logs, fixed_propensity=theta)
    ips.prepare(_tiny_train(), np.random.default_rng(0))
    want = ipw_softmax_loss(s, batch.labels, torch.log(torch.tensor(1.0 / theta, dtype=torch.float32)).expand(2, 3))
    assert ips.loss(model, batch).item() == pytest.approx(want.item(), rel=1e-6)
    np.testing.assert_allclose(ips.position_propensities_, theta, rtol=1e-6)


# ------------------------------------------------------------------------------------ behaviour
def test_learns_position_propensities_close_to_the_truth():
    from recsampling.data.synthetic import make_world

    world = make_world(300, 400, target_interactions=6000, n_logged_lists=12000, position_eta=1.0,
                       feature_noise=0.0, random_state=0)
    model = FeatureModel(world.user_features, world.item_features, dim=16, seed=0)
    sampler = _train(world.clicks, DLASampler(logs=world.logs, propensity_lr=0.05), model, epochs=5)
    learned = sampler.position_propensities_
    truth = world.position_propensity / world.position_propensity[0]
    assert learned[0] == pytest.approx(1.0)
    assert np.all(np.diff(learned[:5]) < 0)
    rel = np.abs(learned[1:5] / truth[1:5] - 1.0)  # (1/k)^1 at k = 2..5
    assert rel.max() < 0.25, (learned, truth)
    # and far from the naive answer (the raw click-through rate by position)
    ctr = world.logs.clicks.mean(0)
    assert np.abs(learned[4] / truth[4] - 1) < np.abs(ctr[4] / ctr[0] / truth[4] - 1)


def test_learns_item_propensities_without_positions():
    from recsampling.data.synthetic import make_world
    from scipy.stats import spearmanr

    world = make_world(200, 300, target_interactions=5000, random_state=1)
    model = TableModel(np.zeros((200, 300)))
    model.table.data.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))
    sampler = _train(world.clicks, DLASampler(n_sampled=10, exposure_features=("item",), propensity_lr=0.05),
                     model, epochs=5, lr=0.05)
    learned = sampler.item_propensities_
    assert learned.shape == (300,) and learned.max() == pytest.approx(1.0)
    assert np.all((learned > 0) & np.isfinite(learned))
    rho = spearmanr(learned, world.item_propensity).statistic
    assert rho > 0.6


def test_stable_for_extreme_scores_and_propensities():
    logs = _tiny_logs()
    model = TableModel(np.array([[1e4, -1e4, 3e3, 0.0], [-5e3, 0.0, 1e4, -1e4]]))
    sampler = DLASampler(logs=logs)
    sampler.prepare(_tiny_train(), np.random.default_rng(0))
    with torch.no_grad():
        sampler.propensity_.logits.copy_(torch.tensor([80.0, -80.0, 0.0]))  # weights up to e^160
    batch = _logs_batch(logs)
    loss = sampler.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(model.table.grad).all() and torch.isfinite(sampler.propensity_.logits.grad).all()
    tiny = DLASampler(logs=logs, fixed_propensity=np.array([1.0, 1e-30, 1e-12]))
    tiny.prepare(_tiny_train(), np.random.default_rng(0))
    assert torch.isfinite(tiny.loss(model, batch))


def test_batches_positions_and_candidates():
    logs = _tiny_logs()
    logs["clicks"] = np.array([[0, 1, 1], [0, 0, 0]], dtype=np.int8)  # second list has no click
    s = DLASampler(logs=logs)
    s.prepare(_tiny_train(), np.random.default_rng(0))
    assert s.n_samples() == 1
    (b,) = list(s.batches(8, np.random.default_rng(0)))
    assert b.items.tolist() == [[0, 1, 2]] and b.labels.tolist() == [[0, 1, 1]] and b.mask is None

    train = _tiny_train()
    c = DLASampler(n_sampled=3)
    c.prepare(train, np.random.default_rng(0))
    assert c.n_samples() == train.nnz
    rows = list(c.batches(2, np.random.default_rng(0)))
    items = np.concatenate([r.items for r in rows])
    users = np.concatenate([r.users for r in rows])
    assert items.shape == (train.nnz, 4)
    dense = train.matrix.toarray()
    assert np.all(dense[users, items[:, 0]] == 1)            # column 0: the click
    assert np.all(dense[users[:, None], items[:, 1:]] == 0)  # the rest: unclicked
    assert all(r.labels[:, 0].all() and not r.labels[:, 1:].any() and r.mask.all() for r in rows)


def test_sigmoid_link_applies_the_losses_to_log_sigmoid_scores():
    logs = _tiny_logs()
    scores = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, -0.5, 0.3]], dtype=np.float32)
    model = TableModel(scores)
    batch = _logs_batch(logs)
    sig = DLASampler(logs=logs, relevance_link="sigmoid")
    sig.prepare(_tiny_train(), np.random.default_rng(0))
    with torch.no_grad():
        sig.propensity_.logits.copy_(torch.tensor([0.0, -0.7, -1.2]))
    lf, lg = sig.losses(model, batch)
    # the same as the exp link on a model whose scores are log σ(s): P(r = 1) = σ(s)
    logsig = TableModel(torch.nn.functional.logsigmoid(torch.as_tensor(scores)).numpy())
    ref = DLASampler(logs=logs)
    ref.prepare(_tiny_train(), np.random.default_rng(0))
    ref.load_state_dict(sig.state_dict())
    rf, rg = ref.losses(logsig, batch)
    assert lf.item() == pytest.approx(rf.item(), rel=1e-6) and lg.item() == pytest.approx(rg.item(), rel=1e-6)
    # and not the same as the exp link on the raw scores
    ef, eg = ref.losses(model, batch)
    assert abs(eg.item() - lg.item()) > 1e-3


def test_batches_have_near_equal_sizes():
    # the losses are normalized per batch: no small remainder batch (its step would be the noisiest)
    rng = np.random.default_rng(0)
    users = rng.integers(0, 2, size=1000)
    logs = {"users": users, "items": rng.integers(0, 4, size=(1000, 3)), "clicks": np.ones((1000, 3), np.int8)}
    s = DLASampler(logs=logs)
    s.prepare(_tiny_train(), np.random.default_rng(0))
    sizes = [len(b) for b in s.batches(300, np.random.default_rng(1))]
    assert sum(sizes) == 1000 and len(sizes) == 4 and max(sizes) <= 300 and max(sizes) - min(sizes) <= 1
    c = DLASampler(n_sampled=2)
    c.prepare(_tiny_train(), np.random.default_rng(0))  # 4 clicks in batches of at most 3
    assert [len(b) for b in c.batches(3, np.random.default_rng(1))] == [2, 2]


def test_propensities_recovered_when_the_relevance_model_is_right():
    # f fixed at the true log-relevance: g alone must find (1/k)^eta (eq. (7) is unbiased)
    from recsampling.data.synthetic import make_world

    world = make_world(300, 400, target_interactions=6000, n_logged_lists=30000, position_eta=1.0,
                       n_test_items=0, random_state=3)
    model = TableModel(np.log(np.asarray(world.relevance, dtype=np.float64)))
    model.table.requires_grad_(False)
    sampler = DLASampler(logs=world.logs, relevance_link="exp")
    rng = np.random.default_rng(0)
    sampler.prepare(world.clicks, rng)
    opt = torch.optim.Adagrad(sampler.propensity_.parameters(), lr=0.5)
    for _ in range(8):
        for batch in sampler.batches(2048, rng):
            _, loss_g = sampler.losses(model, batch.to(CPU))
            opt.zero_grad()
            loss_g.backward()
            opt.step()
    truth = world.position_propensity / world.position_propensity[0]
    rel = np.abs(sampler.position_propensities_[1:] / truth[1:] - 1.0)
    assert rel.max() < 0.1, (sampler.position_propensities_, truth)


@pytest.mark.parametrize("kwargs, match", [
    ({"relevance_link": "softmax"}, "relevance_link"),
    ({"n_sampled": 0}, "n_sampled"),
    ({"exposure_features": ("position",)}, "exposure_features"),
    ({"max_weight": 0.5}, "max_weight"),
    ({"propensity_lr": -1.0}, "propensity_lr"),
    ({"fixed_propensity": np.ones(3)}, "fixed_propensity"),
    ({"logs": {"users": np.array([0]), "items": np.array([0, 1])}}, "logs"),
    ({"logs": {"users": np.array([0]), "items": np.array([[0, 9]]), "clicks": np.array([[1, 0]])}}, "items"),
    ({"logs": {"users": np.array([0]), "items": np.array([[0, 1]]), "clicks": np.array([[0, 0]])}}, "no click"),
])
def test_bad_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DLASampler(**kwargs).prepare(_tiny_train(), np.random.default_rng(0))


def test_trainer_uses_the_propensity_learning_rate():
    from recsampling.data.synthetic import make_world
    from recsampling.train import Trainer

    world = make_world(100, 150, target_interactions=2000, n_logged_lists=3000, random_state=2)
    model = FeatureModel(world.user_features, world.item_features, dim=8)
    sampler = DLASampler(logs=world.logs, propensity_lr=0.05)
    trainer = Trainer(epochs=2, batch_size=256, lr=0.01, progress=False, random_state=0, device="cpu")
    trainer.fit(model, sampler, world.clicks)
    opt = trainer._optimizer(model, sampler)
    assert any(g["lr"] == 0.05 and any(p is sampler.propensity_.logits for p in g["params"])
               for g in opt.param_groups)
    p = sampler.position_propensities_
    assert p.shape == (world.logs.list_length,) and p[0] == 1.0 and np.all(p[1:] < 1.0)
