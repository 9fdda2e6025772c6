"""The false-negative diagnostic: which drawn entries count as negatives, their true relevance, the callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsampling.data import Interactions, make_world
from recsampling.diagnostics import FalseNegativeMonitor, drawn_negatives, false_negative_share
from recsampling.models import make_model
from recsampling.samplers import Batch, make_sampler
from recsampling.train import Trainer

from test_samplers import checkerboard


def _prepared(name, train, **params):
    s = make_sampler(name, **params)
    s.prepare(train, np.random.default_rng(0))
    return s


def test_what_counts_as_a_negative_per_batch_layout():
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    # the BPR family: columns 1.. (masked ones left out)
    b = Batch(np.array([0, 1]), np.array([[0, 5, 7], [1, 3, 9]]), mask=np.array([[True, True, False], [True, True, True]]))
    u, i, w = drawn_negatives(_prepared("bpr", train), model, b)
    assert sorted(zip(u.tolist(), i.tolist())) == [(0, 5), (1, 3), (1, 9)] and (w == 1).all()
    # labelled rows: the label-0 entries, wherever they are
    b = Batch(np.array([0]), np.array([[4, 5, 6]]), labels=np.array([[0.0, 1.0, 0.0]], np.float32))
    _, i, _ = drawn_negatives(_prepared("bpo", train), model, b)
    assert sorted(i.tolist()) == [4, 6]
    # in-batch: the other rows' positives except the accidental hits
    # (user 0 also likes item 11: an accidental hit of row 0; found by the sampler from the data)
    small = Interactions.from_indices([0, 0, 1, 2], [10, 11, 11, 12], (3, 13))
    b = Batch(np.array([0, 1, 2]), np.array([[10], [11], [12]]))
    u, i, _ = drawn_negatives(_prepared("inbatch", small), make_model("mf", small, factors=4, random_state=0), b)
    assert sorted(zip(u.tolist(), i.tolist())) == [(0, 12), (1, 10), (1, 12), (2, 10), (2, 11)]
    # DNS: only the selected candidate of each row
    dns = _prepared("dns", train, n_candidates=4)
    b = next(iter(dns.batches(8, np.random.default_rng(0))))
    u, i, _ = drawn_negatives(dns, model, b)
    s = model.score(torch.as_tensor(b.users), torch.as_tensor(b.items)).detach().numpy()
    best = b.items[np.arange(len(b)), 1 + s[:, 1:].argmax(axis=1)]
    assert u.tolist() == b.users.tolist() and i.tolist() == best.tolist()


def test_share_is_the_mean_true_relevance_of_the_negatives():
    train = checkerboard()
    pos = train.matrix.toarray() > 0
    model = make_model("mf", train, factors=4, random_state=0)
    # the truth: relevant exactly in the user's own group (the unseen same-group items are false negatives)
    same = (np.arange(train.n_users)[:, None] % 2) == (np.arange(train.n_items)[None, :] % 2)
    relevance = same.astype(np.float32)
    out = false_negative_share(_prepared("bpr", train), model, relevance, threshold=0.5)
    # a uniform unobserved draw: relevant with the share of same-group items among each user's unseen ones
    expected = np.mean([(same[u] & ~pos[u]).sum() / (~pos[u]).sum() for u in range(train.n_users)
                        for _ in range(int(pos[u].sum()))])
    assert out["false_negative_rate"] == pytest.approx(expected, abs=0.05)
    assert out["above_threshold"] == pytest.approx(out["false_negative_rate"])
    assert out["rows"] == train.nnz and out["negatives"] == train.nnz
    # a model that scores the same group high: its top-k hard negatives are mostly false negatives
    with torch.no_grad():
        model.user_factors.weight.zero_()
        model.item_factors.weight.zero_()
        model.user_factors.weight[:, 0] = torch.as_tensor(np.where(np.arange(train.n_users) % 2 == 0, 1.0, -1.0))
        model.item_factors.weight[:, 0] = torch.as_tensor(np.where(np.arange(train.n_items) % 2 == 0, 1.0, -1.0))
    hard = _prepared("tophard", train, top_k=3, hard_ratio=1.0)
    hard.refresh(model)
    assert false_negative_share(hard, model, relevance)["false_negative_rate"] > 0.95
    with pytest.raises(ValueError, match="prepared"):
        false_negative_share(make_sampler("bpr"), model, relevance)
    with pytest.raises(ValueError, match="shape"):
        false_negative_share(_prepared("bpr", train), model, relevance[:, :5])
    with pytest.raises(ValueError, match="n_rows"):
        false_negative_share(_prepared("bpr", train), model, relevance, n_rows=0)


def test_monitor_records_each_epoch_and_leaves_training_as_it_was():
    world = make_world(n_users=80, n_items=120, target_interactions=1500, n_logged_lists=0, random_state=0)
    train, test = world.clicks, world.unbiased_test
    weights = []
    for monitored in (False, True):
        model = make_model("mf", train, factors=4, random_state=0)
        sampler = make_sampler("tophard", top_k=10, refresh_every=2)
        mon = FalseNegativeMonitor(sampler, model, world, train, test, n_rows=500)
        Trainer(epochs=3, batch_size=128, progress=False, random_state=0, device="cpu", n_threads=1,
                callbacks=[mon] if monitored else []).fit(model, sampler, train)
        weights.append(model.item_factors.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])
    assert [h["epoch"] for h in mon.history] == [0, 1, 2]
    for h in mon.history:
        assert 0 <= h["false_negative_rate"] <= 1 and 0 <= h["true_ndcg@10"] <= 1
