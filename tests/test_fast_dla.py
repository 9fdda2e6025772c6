"""The fused DLA kernel (candidate sets) against autograd: same batch loss, same batch step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsampling.data import Interactions
from recsampling.fast import backends
from recsampling.fast import dla as K
from recsampling.models import MatrixFactorization
from recsampling.samplers import make_sampler
from recsampling.train import Trainer


def _data(seed=0, n_users=9, n_items=12, density=0.3):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < density
    dense[:, 0] = True  # a popular item
    dense[np.arange(n_users - 1), rng.integers(1, n_items, n_users - 1)] = True
    dense[-1] = True  # a user who clicked everything: rows without weight
    return Interactions.from_csr(sp.csr_matrix(dense.astype(np.float32)))


def _torch_step(model, sampler, batch, optimizer, lr, l2):
    """The Trainer's torch step on one batch (SGD on the batch sum, Adagrad on the mean)."""
    opt = Trainer(optimizer=optimizer, lr=lr, l2=l2, device="cpu", progress=False)._optimizer(model, sampler)
    t = batch.to("cpu")
    loss = sampler.loss(model, t) + l2 * model.regularization(t.users, t.items).mean()
    opt.zero_grad()
    (loss * len(t) if optimizer == "sgd" else loss).backward()
    opt.step()
    return float(loss.detach()), opt


def _assert_same(model, ref_model, sampler, ref_sampler, what):
    for (k, a), (_, b) in zip(model.state_dict().items(), ref_model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"{k} {what}")
    for (k, a), (_, b) in zip(sampler.state_dict().items(), ref_sampler.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=f"sampler {k} {what}")


CASES = [  # (optimizer, sampler params, user bias): both links, learned and fixed propensities
    ("sgd", {}, False),
    ("sgd", {"relevance_link": "sigmoid", "max_weight": 2.0, "propensity_lr": 0.3}, True),
    ("sgd", {"fixed_propensity": "random"}, False),
    ("sgd", {"fixed_propensity": "random", "relevance_link": "sigmoid"}, True),
    ("adagrad", {"exposure_features": ("item",), "propensity_l2": 0.1}, True),
    ("adagrad", {"relevance_link": "sigmoid", "max_weight": None, "propensity_lr": 0.02}, False),
    ("adagrad", {"fixed_propensity": "random", "exposure_features": ("popularity",)}, False),
    ("adagrad", {"fixed_propensity": "random", "relevance_link": "sigmoid", "max_weight": 3.0}, True),
]


@pytest.mark.parametrize("optimizer,params,user_bias", CASES,
                         ids=[f"{o}-{'-'.join(f'{k}={v}' for k, v in p.items())}-ub{b}" for o, p, b in CASES])
def test_batch_step_matches_autograd(optimizer, params, user_bias):
    train = _data()
    params = dict(params)
    if params.get("fixed_propensity") == "random":
        params["fixed_propensity"] = np.random.default_rng(5).uniform(0.05, 1.0, train.n_items)
    sampler = make_sampler("dla", n_sampled=4, **params)
    sampler.prepare(train, np.random.default_rng(1))
    model = MatrixFactorization(*train.shape, factors=5, user_bias=user_bias, random_state=2)
    with torch.no_grad():
        model.user_factors.weight.mul_(8.0)  # scores of order 1: the softmaxes are not flat
        model.item_biases.weight.normal_(0, 0.3)
        if user_bias:
            model.user_biases.weight.normal_(0, 0.3)
        if sampler.fixed_propensity is None:  # start away from 0 so that every term of g counts
            for p in sampler.propensity_.parameters():
                p.normal_(0, 0.5)
    ref_model, ref_sampler = copy.deepcopy(model), copy.deepcopy(sampler)
    batches = list(sampler.batches(16, np.random.default_rng(3)))[:2]
    lr, l2 = (0.05, 0.01) if optimizer == "sgd" else (0.1, 0.02)
    runner = backends.find_kernel(model, sampler, optimizer, "cpu")(model, sampler, optimizer=optimizer, lr=lr, l2=l2,
                                                                     n_threads=2, batch_size=16)
    st = runner.state
    ref_opt = None
    for step, b in enumerate(batches):  # two steps: Adagrad's sums carry over
        if ref_opt is None:
            want, ref_opt = _torch_step(ref_model, ref_sampler, b, optimizer, lr, l2)
        else:
            t = b.to("cpu")
            loss = ref_sampler.loss(ref_model, t) + l2 * ref_model.regularization(t.users, t.items).mean()
            ref_opt.zero_grad()
            (loss * len(t) if optimizer == "sgd" else loss).backward()
            ref_opt.step()
            want = float(loss.detach())
        got = K.dla_batch(b.users, b.items, b.mask[:, 1], st["tables"], st["accs"], st["prop"], st["prop_accs"],
                          st["iopt"], st["fopt"], n_threads=2)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
        _assert_same(model, ref_model, sampler, ref_sampler, f"after step {step}")


def test_epoch_of_forced_rows_matches_autograd():
    # every user has one unclicked item, so every draw is forced and one batch holds the epoch:
    # the epoch kernel's own draws, options and step equal the torch path's
    # (unequal popularity: with one popularity bucket its logit's gradient is 0 up to rounding, and
    # Adagrad's first step, lr · sign(gradient), would then follow the rounding)
    clicks = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.float32)
    train = Interactions.from_csr(sp.csr_matrix(clicks))
    sampler = make_sampler("dla", n_sampled=3, relevance_link="sigmoid")
    sampler.prepare(train, np.random.default_rng(0))
    model = MatrixFactorization(4, 3, factors=4, user_bias=True, random_state=0)
    ref_model, ref_sampler = copy.deepcopy(model), copy.deepcopy(sampler)
    batch = next(ref_sampler.batches(100, np.random.default_rng(0)))
    want, _ = _torch_step(ref_model, ref_sampler, batch, "adagrad", 0.1, 0.01)
    runner = backends.find_kernel(model, sampler, "adagrad", "cpu")(model, sampler, optimizer="adagrad", lr=0.1,
                                                                     l2=0.01, n_threads=1, batch_size=100)
    loss, rows = runner.epoch(np.random.default_rng(0))
    assert rows == 8 and loss == pytest.approx(want, rel=1e-5)
    _assert_same(model, ref_model, sampler, ref_sampler, "after the epoch")


def _clustered(seed=0, n_users=120, n_items=60, n_clusters=3, p_in=0.35, p_out=0.01):
    rng = np.random.default_rng(seed)
    cu = rng.integers(0, n_clusters, n_users)
    ci = np.arange(n_items) % n_clusters
    p = np.where(cu[:, None] == ci[None, :], p_in, p_out)
    return Interactions.from_csr(sp.csr_matrix((rng.random((n_users, n_items)) < p).astype(np.float32)))


def _auc(model, train, rng):
    """AUC of the training clicks against uniformly random items of the same users."""
    m = train.matrix.tocoo()
    with torch.no_grad():
        s = (model.user_factors.weight @ model.item_factors.weight.T).numpy()
        if model.item_biases is not None:
            s = s + model.item_biases.weight.numpy().reshape(1, -1)
    pos = s[m.row, m.col]
    neg = s[m.row, rng.integers(0, train.n_items, m.nnz)]
    return float((pos[:, None] > neg[None, :2000]).mean())


def test_fused_epochs_learn_and_are_deterministic():
    train = _clustered()
    kw = dict(epochs=6, batch_size=64, optimizer="adagrad", lr=0.1, l2=1e-4, backend="fused", progress=False)
    fits = []
    for n_threads in (1, 1, 2):
        model = MatrixFactorization(*train.shape, factors=8, random_state=0)
        before = _auc(model, train, np.random.default_rng(9))
        sampler = make_sampler("dla", n_sampled=5)
        res = Trainer(random_state=4, n_threads=n_threads, **kw).fit(model, sampler, train)
        assert res.backend == "fused" and np.isfinite(res.losses).all()
        fits.append((model, sampler))
    after = _auc(fits[0][0], train, np.random.default_rng(9))
    assert before < 0.6 and after > 0.85
    # one thread: bit-for-bit reproducible; the batch step sums in a fixed order, so two threads too
    for model, sampler in fits[1:]:
        for (k, a), (_, b) in zip(model.state_dict().items(), fits[0][0].state_dict().items()):
            assert torch.equal(a, b), k
        assert np.array_equal(sampler.item_propensities_, fits[0][1].item_propensities_)


def test_logged_lists_stay_on_torch():
    train = _data()
    logs = {"users": np.arange(4), "items": np.tile(np.arange(3), (4, 1)), "clicks": np.eye(4, 3)}
    model = MatrixFactorization(*train.shape, factors=3, random_state=0)
    cands, positions = make_sampler("dla"), make_sampler("dla", logs=logs)
    assert backends.find_kernel(model, cands, "sgd", "cpu") is not None
    assert backends.find_kernel(model, cands, "adam", "cpu") is None
    assert backends.find_kernel(model, positions, "sgd", "cpu") is None
    res = Trainer(epochs=1, optimizer="sgd", lr=0.01, progress=False, random_state=0).fit(model, positions, train)
    assert res.backend == "torch"
    positions.prepare(train, np.random.default_rng(0))
    with pytest.raises(ValueError, match="candidate sets only"):
        K._dla_runner(model, positions, optimizer="sgd", lr=0.1, l2=0.0, n_threads=1)
