"""The hard-negative samplers: warp, tophard / skiphard and cet (the shared contract is in test_samplers.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsampling.data import make_world
from recsampling.evaluation import evaluate
from recsampling.models import make_model
from recsampling.samplers import make_sampler
from recsampling.samplers.cet import true_negative_probability
from recsampling.samplers.warp import warp_weights
from recsampling.train import Trainer

from test_samplers import checkerboard

NEW = ("warp", "tophard", "skiphard", "cet")


def _batches(sampler, seed, n=3):
    return [b for _, b in zip(range(n), sampler.batches(16, np.random.default_rng(seed)))]


@pytest.mark.parametrize("name", NEW)
def test_same_seed_same_batches_and_loss(name):
    train = checkerboard()
    out = []
    for _ in range(2):
        model = make_model("mf", train, factors=4, random_state=0)
        s = make_sampler(name, **({} if name == "warp" else {"top_k": 10, "skip_top": 2 if name == "skiphard" else 0}))
        s.prepare(train, np.random.default_rng(0))
        first = _batches(s, 1, 1)[0]
        loss = float(s.loss(model, first.to("cpu")).detach())  # builds the table (tophard family)
        out.append(([b.items.copy() for b in _batches(s, 2)], loss))
    (a, la), (b, lb) = out
    assert la == lb and all((x == y).all() for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["tophard", "skiphard", "cet"])
def test_hard_columns_come_from_the_models_top_k_unseen_items(name):
    train = checkerboard()
    pos = train.matrix.toarray() > 0
    model = make_model("mf", train, factors=4, random_state=0)
    skip = 3 if name == "skiphard" else 0
    s = make_sampler(name, n_negatives=4, top_k=8, hard_ratio=1.0, skip_top=skip)
    s.prepare(train, np.random.default_rng(0))
    assert all(b.mask is None for b in _batches(s, 0))  # before the first step: uniform stand-ins
    s.refresh(model)
    U, V = model.embedding_tables()
    S = U @ V.T
    S[pos] = -np.inf
    ranks = np.argsort(-S, axis=1, kind="stable")
    for b in _batches(s, 1, 5):
        negs = b.items[:, 1:]
        assert not pos[b.users[:, None], negs].any()
        allowed = ranks[b.users, skip:8]
        assert (negs[:, :, None] == allowed[:, None, :]).any(axis=2).all()
    # the table is rebuilt in loss, at the first step and every refresh_every
    s = make_sampler(name, top_k=8, refresh_every=2, skip_top=skip)
    s.prepare(train, np.random.default_rng(0))
    b = _batches(s, 0, 1)[0].to("cpu")
    tables = []
    for _ in range(3):
        s.loss(model, b)
        tables.append(s.table_)
    assert tables[0] is tables[1] and tables[2] is not tables[1]


@pytest.mark.parametrize("name", ["tophard", "skiphard", "cet"])
def test_by_default_the_table_is_rebuilt_at_the_start_of_each_epoch(name):
    from recsampling.scoring import topk

    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    s = make_sampler(name, top_k=8, skip_top=2 if name == "skiphard" else 0)
    assert s.refresh_every is None
    ends = []  # each epoch's top-8 of the model, taken after the epoch

    def record(epoch, logs):
        U, V = model.embedding_tables()
        ends.append(topk(U, V, 8, exclude=train, device="cpu")[0])

    Trainer(epochs=2, batch_size=64, lr=0.05, progress=False, random_state=0, device="cpu", n_threads=1,
            callbacks=[record]).fit(model, s, train)
    per_epoch = -(-s.n_samples() // 64)
    assert per_epoch > 1 and s.refreshed_at_ == [0, per_epoch]
    np.testing.assert_array_equal(s.table_, ends[0])  # epoch 1's table: the model as epoch 0 left it
    assert not np.array_equal(ends[0], ends[1])  # the model moved, so a stale table would differ


def test_an_integer_refresh_every_counts_steps_over_the_whole_fit():
    train = checkerboard()
    s = make_sampler("tophard", top_k=8, refresh_every=3)
    Trainer(epochs=2, batch_size=64, lr=0.05, progress=False, random_state=0, device="cpu", n_threads=1).fit(
        make_model("mf", train, factors=4, random_state=0), s, train)
    steps = 2 * -(-s.n_samples() // 64)
    assert s.steps_ == steps and s.refreshed_at_ == list(range(0, steps, 3))


def test_hard_ratio_zero_draws_no_table_items_beyond_chance():
    train = checkerboard(n_users=40, n_items=30)
    model = make_model("mf", train, factors=4, random_state=0)
    s = make_sampler("tophard", n_negatives=4, top_k=2, hard_ratio=0.0)
    s.prepare(train, np.random.default_rng(0))
    s.refresh(model)
    inside = [np.isin(b.items[r, 1:], s.table_[u]).mean() for b in _batches(s, 0, 10)
              for r, u in enumerate(b.users)]
    assert np.mean(inside) < 0.3  # 2 of ~18 unseen items: about 0.11 by chance


def test_bad_parameters_are_value_errors():
    train = checkerboard()
    cases = [("tophard", {"hard_ratio": 1.5}, "hard_ratio"), ("tophard", {"top_k": 0}, "top_k"),
             ("skiphard", {"top_k": 5, "skip_top": 5}, "skip_top"),
             ("warp", {"margin": -1.0}, "margin"), ("warp", {"pair_loss": "l2"}, "pair_loss"),
             ("cet", {"sel_l2": -1.0}, "sel_l2"), ("cet", {"sel_lr": 0.0}, "sel_lr")]
    cases += [(n, {"refresh_every": v}, "refresh_every") for n in ("tophard", "skiphard", "cet")
              for v in (0, -1, 2.5, True, "epoch")]
    for name, params, match in cases:
        with pytest.raises(ValueError, match=match):
            make_sampler(name, **params).prepare(train, np.random.default_rng(0))


def test_warp_takes_the_first_violator_and_weights_it_by_the_rank_estimate():
    pos = torch.tensor([[0.0], [0.0], [5.0]])
    cand = torch.tensor([[-3.0, -0.5, 2.0, 3.0],     # first violator (> -1): column 1, N = 2
                         [-0.9, -5.0, -5.0, -5.0],   # column 0, N = 1
                         [0.0, 1.0, 2.0, 3.0]])      # none
    first, w = warp_weights(pos, cand, n_items=11, margin=1.0)
    H = lambda k: sum(1.0 / j for j in range(1, k + 1))  # noqa: E731
    assert first[:2].tolist() == [1, 0]
    np.testing.assert_allclose(w.numpy(), [H(10 // 2) / H(10), 1.0, 0.0], rtol=1e-6)


def test_warp_gradient_reaches_only_the_violator_and_rows_without_one_add_nothing():
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    s = make_sampler("warp", n_candidates=5, margin=1.0)
    s.prepare(train, np.random.default_rng(0))
    b = _batches(s, 0, 1)[0].to("cpu")
    w = s.negative_weights(model, b)
    assert ((w[:, 1:] > 0).sum(dim=1) <= 1).all() and (w[:, 0] == 0).all()
    s.loss(model, b).backward()
    grad = model.item_factors.weight.grad.abs().sum(dim=1)
    used = set(b.items[:, 0].tolist()) | set(b.items[:, 1:][w[:, 1:] > 0].tolist())
    assert all(grad[i] == 0 for i in range(train.n_items) if i not in used)
    # a margin no candidate can violate: zero loss
    s.margin = 0.0
    with torch.no_grad():
        model.item_factors.weight.zero_()
        model.item_factors.weight[b.items[:, 0], 0] = 1.0
        model.user_factors.weight.fill_(1.0)
    assert float(s.loss(model, b).detach()) == 0.0


def test_cet_weight_is_the_posterior_of_a_true_negative_and_its_selection_model_learns():
    s_, t_ = torch.tensor([-2.0, 0.0, 3.0, 3.0]), torch.tensor([0.0, 0.0, -4.0, 4.0])
    g, t = torch.sigmoid(s_), torch.sigmoid(t_)
    np.testing.assert_allclose(true_negative_probability(s_, t_).numpy(), ((1 - g) / (1 - t * g)).numpy(), rtol=1e-5)
    w = true_negative_probability(s_, t_)
    assert w[2] < w[3]  # a relevant-looking item the user likely never met: a likely false negative
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    cet = make_sampler("cet", top_k=10, sel_lr=0.2)
    cet.prepare(train, np.random.default_rng(0))
    groups = cet.param_groups(0.01)
    assert groups[0]["lr"] == 0.2 and {id(p) for p in groups[0]["params"]} == {id(p) for p in cet.selection_.parameters()}
    b = _batches(cet, 0, 1)[0].to("cpu")
    cet.loss(model, b).backward()
    assert float(cet.selection_.item_logit.grad.abs().sum()) > 0 and float(cet.selection_.user_logit.grad.abs().sum()) > 0
    nw = cet.negative_weights(model, b)
    assert (nw[:, 0] == 0).all() and ((nw[:, 1:] >= 0) & (nw[:, 1:] <= 1)).all()


@pytest.fixture(scope="module")
def tiny_world():
    return make_world(n_users=150, n_items=200, target_interactions=4000, n_logged_lists=0, random_state=0)


@pytest.mark.parametrize("model_name", ["mf", "twotower"])
@pytest.mark.parametrize("name", NEW)
def test_each_trains_to_above_random_true_ndcg(name, model_name, tiny_world):
    train, test = tiny_world.clicks, tiny_world.unbiased_test

    def true_ndcg(model):
        return evaluate(model, test, train=train, ks=(10,), metrics=("true_ndcg",), relevance=tiny_world,
                        device="cpu").to_dict()["true_ndcg@10"]

    params = {"n_candidates": 10} if name == "warp" else {"top_k": 20, "refresh_every": 5}
    model = make_model(model_name, train, factors=8, random_state=0)
    untrained = true_ndcg(model)
    Trainer(epochs=5, batch_size=256, lr=0.02, progress=False, random_state=0, device="cpu", n_threads=1).fit(
        model, make_sampler(name, **params), train)
    assert true_ndcg(model) > untrained + 0.05
