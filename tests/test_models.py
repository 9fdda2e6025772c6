"""MF and the two-tower model: shapes, bias folding, seeded init, features, make_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsampling.data.interactions import Interactions
from recsampling.models import MatrixFactorization, TwoTower, make_model


def _train(features: bool = False) -> Interactions:
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, 12, 60), rng.integers(0, 9, 60)
    kw = {}
    if features:
        kw = {"user_features": rng.random((12, 3)), "item_features": rng.random((9, 5))}
    return Interactions.from_indices(u, i, (12, 9), **kw)


@pytest.mark.parametrize("user_bias,item_bias", [(False, True), (True, True), (True, False), (False, False)])
def test_mf_bias_folding_score_is_dot_of_tables(user_bias, item_bias):
    m = MatrixFactorization(12, 9, factors=4, user_bias=user_bias, item_bias=item_bias, random_state=0)
    with torch.no_grad():
        for emb in (m.user_biases, m.item_biases):
            if emb is not None:
                emb.weight.normal_(generator=torch.Generator().manual_seed(1))
    U, V = m.embedding_tables()
    assert U.shape == (12, m.dim) and V.shape == (9, m.dim) and U.dtype == np.float32
    users = torch.tensor([0, 3, 11])
    items = torch.tensor([[0, 1, 8], [2, 2, 5], [7, 0, 3]])
    want = np.einsum("bd,bld->bl", U[users.numpy()], V[items.numpy()])
    np.testing.assert_allclose(m.score(users, items).detach().numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.score(users, items[:, 0]).detach().numpy(), want[:, 0], rtol=1e-5, atol=1e-6)
    p = m.user_factors.weight[users].detach().numpy()
    q = m.item_factors.weight[items[:, 0]].detach().numpy()
    manual = (p * q).sum(1)
    if item_bias:
        manual += m.item_biases.weight[items[:, 0], 0].detach().numpy()
    if user_bias:
        manual += m.user_biases.weight[users, 0].detach().numpy()
    np.testing.assert_allclose(m.score(users, items[:, 0]).detach().numpy(), manual, rtol=1e-5, atol=1e-6)


def test_mf_tables_are_plain_float32_embeddings_seeded_locally():
    state = torch.random.get_rng_state()
    a = MatrixFactorization(5, 7, factors=3, random_state=42)
    b = MatrixFactorization(5, 7, factors=3, random_state=42)
    c = MatrixFactorization(5, 7, factors=3, random_state=43)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator was not touched
    assert isinstance(a.user_factors, torch.nn.Embedding) and a.item_factors.weight.dtype == torch.float32
    assert a.item_biases.weight.shape == (7, 1) and a.user_biases is None
    assert torch.equal(a.user_factors.weight, b.user_factors.weight)
    assert not torch.equal(a.user_factors.weight, c.user_factors.weight)
    assert abs(float(a.item_factors.weight.detach().std()) - 0.1) < 0.06


def test_mf_regularization_counts_touched_rows():
    m = MatrixFactorization(4, 4, factors=2, random_state=0)
    users, items = torch.tensor([1]), torch.tensor([[2, 3]])
    r = m.regularization(users, items)
    w = m.user_factors.weight
    q = m.item_factors.weight
    want = w[1].pow(2).sum() + q[2].pow(2).sum() + q[3].pow(2).sum()  # biases are 0 at init
    torch.testing.assert_close(r, want.reshape(1))


@pytest.mark.parametrize("bad", [{"factors": 0}, {"factors": 2.5}, {"init_std": -1}])
def test_mf_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        MatrixFactorization(3, 3, **bad)


def test_two_tower_ids_only_and_with_features():
    train = _train(features=True)
    ids = make_model("twotower", train, factors=6, use_features=False, random_state=0)
    assert ids.user_tower.features is None
    full = make_model("twotower", train, factors=6, random_state=0)
    assert full.user_tower.features.shape == (12, 3) and full.item_tower.features.shape == (9, 5)
    for m in (ids, full):
        U, V = m.embedding_tables()
        assert U.shape == (12, 7) and V.shape == (9, 7)
        users, items = torch.tensor([1, 5]), torch.tensor([[0, 4], [8, 8]])
        np.testing.assert_allclose(m.score(users, items).detach().numpy(),
                                   np.einsum("bd,bld->bl", U[[1, 5]], V[items.numpy()]), rtol=1e-5, atol=1e-6)
        # the tower for some indices equals those rows of the full table
        np.testing.assert_allclose(m.user_embeddings(torch.tensor([5, 1])).detach().numpy(), U[[5, 1]], rtol=1e-5, atol=1e-6)


def test_two_tower_features_change_the_vectors_and_features_only_works():
    train = _train(features=True)
    m = TwoTower(12, 9, factors=4, user_features=train.user_features, item_features=train.item_features,
                 use_ids=False, random_state=0)
    U, _ = m.embedding_tables()
    assert U.shape == (12, 5)
    # two users with the same features get the same vector without IDs
    feats = np.array(train.user_features)
    feats[1] = feats[0]
    m2 = TwoTower(12, 9, factors=4, user_features=feats, item_features=train.item_features, use_ids=False,
                  random_state=0)
    U2, _ = m2.embedding_tables()
    np.testing.assert_allclose(U2[0], U2[1])
    with pytest.raises(ValueError, match="neither IDs"):
        TwoTower(12, 9, use_ids=False)
    with pytest.raises(ValueError, match="user_features"):
        TwoTower(12, 9, user_features=np.ones((3, 2)))


def test_two_tower_gradients_reach_the_feature_tower():
    train = _train(features=True)
    m = make_model("twotower", train, factors=4, hidden=(8,), random_state=0)
    m.score(torch.tensor([0, 1]), torch.tensor([2, 3])).sum().backward()
    assert m.user_tower.mlp[0].weight.grad.abs().sum() > 0
    assert m.item_tower.proj.weight.grad.abs().sum() > 0


def test_two_tower_batch_with_repeats_matches_one_pair_at_a_time():
    # lists of candidates repeat users and items; scores and gradients must not depend on how a batch groups them
    train = _train(features=True)
    users = torch.tensor([0, 3, 0, 5, 3])
    items = torch.tensor([[1, 2, 1], [2, 2, 7], [1, 0, 8], [4, 1, 1], [7, 7, 7]])
    weights = torch.linspace(-1.0, 2.0, items.numel()).reshape(items.shape)

    def grads(loss_fn):
        m = make_model("twotower", train, factors=4, hidden=(8,), random_state=0)
        loss = loss_fn(m)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in m.parameters()]

    batch_loss, batch_grads = grads(lambda m: (weights * m.score(users, items)).sum())
    one_loss, one_grads = grads(lambda m: sum(weights[r, c] * m.score(users[r:r + 1], items[r, c:c + 1]).sum()
                                              for r in range(items.shape[0]) for c in range(items.shape[1])))
    torch.testing.assert_close(batch_loss, one_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(batch_grads, one_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_make_model_errors():
    train = _train()
    with pytest.raises(ValueError, match="unknown model"):
        make_model("svd", train)
    with pytest.raises(ValueError, match="bad parameters"):
        make_model("mf", train, nonsense=1)


@pytest.mark.parametrize("name", ["mf", "twotower"])
def test_model_recommend_matches_brute_force_and_excludes_seen(name):
    train = _train(features=True)
    m = make_model(name, train, factors=4, random_state=0)
    ids, scores = m.recommend([0, 3], k=3, exclude=train, device="cpu")
    U, V = m.embedding_tables()
    S = U @ V.T
    seen = train.matrix.toarray() > 0
    for row, u in enumerate([0, 3]):
        s = np.where(seen[u], -np.inf, S[u])
        want = np.argsort(-s, kind="stable")[:3]
        want = np.where(np.isfinite(s[want]), want, -1)  # fewer unseen items than k: padded with -1
        np.testing.assert_array_equal(ids[row], want)
        ok = want >= 0
        np.testing.assert_allclose(scores[row][ok], s[want[ok]], rtol=1e-5)
        assert np.isneginf(scores[row][~ok]).all()


def test_two_tower_fits_are_reproducible_with_two_threads():
    # the feature tower's gather of repeated rows once had a backward that summed with atomic adds
    # over threads (plain indexing, index_put_ with accumulate): same seed, different embeddings
    from recsampling.recommender import Recommender

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 8000), np.minimum(rng.zipf(1.5, 8000) - 1, 399)  # popular items repeat
    train = Interactions.from_indices(users, items, (300, 400), user_features=rng.random((300, 16)),
                                      item_features=rng.random((400, 16)))

    def fit():
        rec = Recommender("twotower", "bpr", epochs=2, random_state=0, n_threads=2, device="cpu").fit(train)
        return [torch.from_numpy(t) for t in rec.model_.embedding_tables()]

    first, second = fit(), fit()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("model,params", [("mf", {"user_bias": False, "item_bias": True}),
                                          ("mf", {"user_bias": True, "item_bias": True}),
                                          ("mf", {"user_bias": True, "item_bias": False}),
                                          ("twotower", {"item_bias": True}), ("twotower", {"item_bias": False})])
def test_fixed_user_columns_are_the_constant_columns_of_the_user_table(model, params):
    m = make_model(model, _train(features=True), factors=4, random_state=0, **params)
    with torch.no_grad():  # every parameter moved away from its initial value
        for p in m.parameters():
            p.add_(torch.linspace(0.1, 1.0, p.numel()).reshape(p.shape))
    U, _ = m.embedding_tables()
    fixed = m.fixed_user_columns()
    assert len(fixed) == int(params["item_bias"])
    for column, value in fixed.items():
        np.testing.assert_array_equal(U[:, column], value)
    others = [c for c in range(U.shape[1]) if c not in fixed]
    assert all(np.ptp(U[:, c]) > 0 for c in others)
