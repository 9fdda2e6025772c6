"""Fold-in of new users: the objective's minimum, the sampler's objective, and trained-like rankings."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsampling.data.interactions import Interactions
from recsampling.foldin import fold_in, objective_for
from recsampling.recommender import Recommender
from recsampling.samplers import make_sampler
from recsampling.scoring import topk


def _planted(n_users: int = 300, n_items: int = 200, per_user: int = 30, seed: int = 0):
    """Users pick items by a Gumbel top-k of planted rank-4 scores; 20% of each user's picks held out."""
    rng = np.random.default_rng(seed)
    scores = 1.5 * rng.normal(size=(n_users, 4)) @ rng.normal(size=(4, n_items)) + 0.5 * rng.normal(size=n_items)
    items = np.argsort(-(scores + rng.gumbel(size=scores.shape)), axis=1)[:, :per_user].ravel()
    users = np.repeat(np.arange(n_users), per_user)
    test = rng.random(users.size) < 0.2
    return tuple(Interactions.from_indices(users[m], items[m], (n_users, n_items)) for m in (~test, test))


def _ndcg(U, V, train, test) -> float:
    from recsampling.evaluation import evaluate

    return evaluate((U, V), test, train=train, metrics=("ndcg",), ks=(10,)).to_dict()["ndcg@10"]


def _overlap(U1, U2, V, train) -> float:
    seen = getattr(train, "matrix", train)
    a, _ = topk(U1, V, 10, exclude=seen)
    b, _ = topk(U2, V, 10, exclude=seen)
    return float(np.mean([len(set(x) & set(y)) for x, y in zip(a, b)]))


def _objective(u, V, items, objective, l2, free, q=None, k=1.0, w=1.0):
    """The fold-in objective of one user written from its definition (a loop over the user's items)."""
    n = V.shape[0]
    neg = np.setdiff1d(np.arange(n), items)
    s = V @ u
    qn = torch.ones(neg.size, dtype=u.dtype) if q is None else torch.as_tensor(q[neg], dtype=u.dtype)
    qn = qn / qn.sum()
    terms = []
    for i in items:
        if objective == "bpr":
            terms.append((qn * F.softplus(-(s[i] - s[neg]))).sum())
        elif objective == "logistic":
            terms.append(w * F.softplus(-s[i]))
        else:
            terms.append(-(s[i] - torch.logsumexp(torch.cat([s[i:i + 1], s[neg]]), 0)))
    f = torch.stack(terms).mean()
    if objective == "logistic":
        f = f + k * (qn * F.softplus(s[neg])).sum()
    return f + l2 * u[free].pow(2).sum()


@pytest.mark.parametrize("objective,popularity", [("bpr", False), ("bpr", True), ("logistic", False),
                                                  ("logistic", True), ("softmax", False)])
def test_fold_in_is_the_minimum_of_the_objective(objective, popularity):
    rng = np.random.default_rng(1)
    n, d = 40, 5
    V = rng.normal(size=(n, d))
    V[:, -1] = rng.normal(size=n)  # an item-bias column, its user column fixed at 1
    rows = [rng.choice(n, size=s, replace=False) for s in (1, 3, 7, 12)]
    X = sp.csr_matrix((np.ones(sum(r.size for r in rows)), np.concatenate(rows),
                       np.cumsum([0] + [r.size for r in rows])), shape=(len(rows), n))
    q = rng.random(n) + 0.1 if popularity else None
    U = fold_in(V, X, objective=objective, l2=0.01, fixed_columns={d - 1: 1.0}, negative_probs=q,
                n_negatives=3, positive_weight=2.0)
    assert U.shape == (4, d) and U.dtype == np.float32
    np.testing.assert_array_equal(U[:, -1], 1.0)
    Vt = torch.as_tensor(V)
    for r, items in enumerate(rows):
        u = torch.tensor(U[r], dtype=torch.float64, requires_grad=True)
        f = _objective(u, Vt, np.sort(items), objective, 0.01, slice(0, d - 1), q, k=3.0, w=2.0)
        (grad,) = torch.autograd.grad(f, u)
        assert grad[:-1].abs().max() < 1e-3, (r, grad)
        with torch.no_grad():  # and no nearby point is better
            for _ in range(5):
                other = u.clone()
                other[:-1] += 0.05 * torch.as_tensor(rng.normal(size=d - 1))
                assert _objective(other, Vt, np.sort(items), objective, 0.01, slice(0, d - 1), q, 3.0, 2.0) >= f


def test_fold_in_batches_users_independently_and_samples_negatives_for_large_catalogues():
    rng = np.random.default_rng(2)
    V = rng.normal(size=(2000, 6))
    X = sp.random(30, 2000, density=0.01, random_state=3, format="csr")
    X.data[:] = 1.0
    X = X[np.diff(X.indptr) > 0]
    together = fold_in(V, X, l2=0.01)
    alone = np.vstack([fold_in(V, X[r], l2=0.01) for r in range(X.shape[0])])
    np.testing.assert_allclose(together, alone, rtol=1e-3, atol=1e-3)
    # with fewer candidates than unobserved items the sum over negatives is estimated from seeded draws
    sampled = fold_in(V, X, l2=0.01, max_negatives=1000, random_state=0)
    np.testing.assert_array_equal(sampled, fold_in(V, X, l2=0.01, max_negatives=1000, random_state=0))
    cos = (sampled * together).sum(1) / np.linalg.norm(sampled, axis=1) / np.linalg.norm(together, axis=1)
    assert cos.mean() > 0.97 and cos.min() > 0.9


def test_fold_in_rejects_bad_input():
    V = np.ones((5, 3))
    X = sp.csr_matrix(np.eye(2, 5))
    with pytest.raises(ValueError, match="at least one item"):
        fold_in(V, sp.csr_matrix((2, 5)))
    with pytest.raises(ValueError, match="5 columns"):
        fold_in(V, sp.csr_matrix(np.eye(2, 4)))
    with pytest.raises(ValueError, match="objective must be one of"):
        fold_in(V, X, objective="als")
    with pytest.raises(ValueError, match="fixed_columns"):
        fold_in(V, X, fixed_columns={3: 1.0})
    with pytest.raises(ValueError, match="every item"):
        fold_in(V, sp.csr_matrix(np.ones((1, 5))))
    with pytest.raises(ValueError, match="l2 must be"):
        fold_in(V, X, l2=-1.0)


def test_objective_for_follows_the_sampler(caplog):
    train = _planted(40, 30, 8)[0]
    rng = np.random.default_rng(0)
    pop = make_sampler("popularity", alpha=0.5)
    pop.prepare(train, rng)
    kw = objective_for(pop)
    assert kw["objective"] == "bpr"
    np.testing.assert_allclose(kw["negative_probs"], pop.item_probs_)
    assert objective_for(make_sampler("bpr")) == {"objective": "bpr"}
    assert objective_for(make_sampler("bpo")) == {"objective": "logistic", "n_negatives": 4, "positive_weight": 4.0}
    assert objective_for(make_sampler("bpo", n_negatives=2, positive_weight=1.0))["positive_weight"] == 1.0
    assert objective_for(make_sampler("inbatch")) == {"objective": "softmax"}

    class Custom(torch.nn.Module):
        name = "mine"

    with caplog.at_level(logging.WARNING, logger="recsampling"):
        assert objective_for(Custom()) == {"objective": "bpr"}
    assert "mine" in caplog.text
    Custom.fold_in_objective = "softmax"
    assert objective_for(Custom()) == {"objective": "softmax"}


def _fit(sampler: str, train: Interactions) -> Recommender:
    return Recommender("mf", sampler, model_params={"factors": 16}, optimizer="sgd", lr=0.05, l2=0.005,
                       epochs=30, n_threads=1, random_state=0, device="cpu").fit(train)


@pytest.mark.parametrize("sampler", ["bpr", "bpo"])
def test_folded_in_users_rank_like_the_trained_ones(sampler):
    # fold every training user back in from their own training items: the vectors the fold-in finds
    # must rank the held-out items about as well as the trained vectors, and recommend mostly the same
    train, test = _planted()
    rec = _fit(sampler, train)
    U, V = rec.model_.embedding_tables()
    folded = rec.new_user_vectors(train)
    assert folded.shape == U.shape
    np.testing.assert_array_equal(folded[:, 16], 1.0)  # MF's constant column stays constant
    trained_ndcg, folded_ndcg = _ndcg(U, V, train, test), _ndcg(folded, V, train, test)
    assert folded_ndcg >= 0.9 * trained_ndcg, (folded_ndcg, trained_ndcg)
    assert _overlap(U, folded, V, train) >= 6.0


def test_recommend_new_user_takes_index_lists_and_validates_them():
    train, _ = _planted(60, 40, 10)
    rec = _fit("bpr", train)
    items = train.matrix[3].indices
    one = rec.new_user_vectors([items])
    two = rec.new_user_vectors([items, train.matrix[5].indices])
    np.testing.assert_allclose(one[0], two[0], rtol=1e-4, atol=1e-5)
    ids, _ = rec.recommend_new_user(items, k=5)
    expected, _ = topk(one, rec.model_.embedding_tables()[1], 5, exclude=train.matrix[3])
    np.testing.assert_array_equal(ids, expected[0])
    with pytest.raises(ValueError, match=r"for one user: \[items\]"):
        rec.new_user_vectors(list(items))
    with pytest.raises(ValueError, match=r"in \[0, 40\)"):
        rec.new_user_vectors([[0, 40]])
    with pytest.raises(ValueError, match="at least one item"):
        rec.new_user_vectors([[1], []])


@pytest.mark.slow
def test_ml100k_folded_in_users_match_the_trained_ones(shared_data):
    # issue 17, item 6: MF-BPR at the README's settings on ML-100K (rating >= 4, 80/20 split)
    from recsampling.data import random_split, read_movielens

    data = read_movielens(shared_data / "ml-100k").to_implicit(4.0)
    split = random_split(data, test_fraction=0.2, random_state=0)
    rec = Recommender(model="mf", sampler="bpr", model_params={"factors": 64}, sampler_params={"n_negatives": 1},
                      optimizer="sgd", lr=0.05, l2=0.005, epochs=50, n_threads=1, random_state=0).fit(split.train)
    U, V = rec.model_.embedding_tables()
    active = split.train.user_counts() > 0
    folded = U.copy()
    folded[active] = rec.new_user_vectors(split.train.matrix[active])
    trained_ndcg = _ndcg(U, V, split.train, split.eval_test)
    folded_ndcg = _ndcg(folded, V, split.train, split.eval_test)
    assert folded_ndcg >= 0.9 * trained_ndcg, (folded_ndcg, trained_ndcg)
    assert _overlap(U[active], folded[active], V, split.train.matrix[active]) >= 6.0
