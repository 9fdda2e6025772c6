"""Rel-MF, naive pointwise and UBPR: hand values, unbiasedness on a known world, stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from recsampling.data.interactions import Interactions
from recsampling.models.base import EmbeddingModel
from recsampling.samplers.base import SAMPLERS, make_sampler
from recsampling.samplers.mnar import (
    UBPR,
    NaivePointwise,
    RelMF,
    delta_losses,
    ideal_pairwise_terms,
    ideal_pointwise_loss,
    relmf_loss,
    ubpr_terms,
)


class TableModel(EmbeddingModel):
    """score(u, i) = S[u, i]: user vectors are the rows of S, item vectors the unit basis."""

    def __init__(self, scores: np.ndarray):
        super().__init__(*scores.shape)
        self.S = nn.Parameter(torch.as_tensor(scores, dtype=torch.float32))

    def user_embeddings(self, users=None):
        return self.S if users is None else self.S[users]

    def item_embeddings(self, items=None):
        eye = torch.eye(self.n_items, dtype=self.S.dtype)
        return eye if items is None else eye[items]


def _world(seed=0, n_users=5, n_items=6, theta_min=0.2):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(theta_min, 1.0, size=(n_users, n_items))
    gamma = rng.uniform(0.0, 1.0, size=(n_users, n_items))
    scores = rng.normal(0.0, 1.5, size=(n_users, n_items))
    return theta, gamma, scores


def _one_batch(sampler, train, rng, batch_size=None):
    batch = next(iter(sampler.batches(batch_size or train.nnz, rng)))
    return batch, batch.to("cpu")


# --------------------------------------------------------------------------- plain functions
def test_delta_losses_hand_values():
    s = torch.tensor([0.0, math.log(3.0)])
    d1, d0 = delta_losses(s, "squared")
    torch.testing.assert_close(d1, torch.tensor([0.25, 0.0625]))
    torch.testing.assert_close(d0, torch.tensor([0.25, 0.5625]))
    d1, d0 = delta_losses(s, "log")
    torch.testing.assert_close(d1, torch.tensor([math.log(2.0), -math.log(0.75)]))
    torch.testing.assert_close(d0, torch.tensor([math.log(2.0), -math.log(0.25)]))
    with pytest.raises(ValueError, match="delta"):
        delta_losses(s, "hinge")


def test_relmf_loss_hand_values():
    s = math.log(3.0)  # sigma = 0.75: delta1 = 1/16, delta0 = 9/16
    # click with theta = 0.25: 4 * 1/16 + (1 - 4) * 9/16
    assert relmf_loss([s], [1.0], [0.25]).item() == pytest.approx(4 / 16 - 3 * 9 / 16)
    # theta = 1e-6 is clipped to M = 0.1: 10 * 1/16 - 9 * 9/16
    assert relmf_loss([s], [1.0], [1e-6]).item() == pytest.approx(10 / 16 - 9 * 9 / 16)
    # an unclicked pair is delta0 whatever theta is
    assert relmf_loss([s], [0.0], [1e-6]).item() == pytest.approx(9 / 16)
    # log family, s = 0, click with theta = 0.5: 2 log 2 - log 2
    assert relmf_loss([0.0], [1.0], [0.5], delta="log").item() == pytest.approx(math.log(2.0))
    # naive = theta 1: the click's term is delta1 alone
    assert relmf_loss([s], [1.0], [1.0]).item() == pytest.approx(1 / 16)


def test_ubpr_terms_hand_values():
    # s_ui - s_uj = 0: -log sigma(0) = log 2
    t = ubpr_terms([0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.25], clip=None)
    torch.testing.assert_close(t, torch.tensor([2 * math.log(2.0), 2 * (1 - 4) * math.log(2.0)],
                                               dtype=torch.float64))
    t = ubpr_terms([0.0], [0.0], [1.0], [0.5], [1.0], [0.25], clip=None, beta=0.5)
    assert t.item() == pytest.approx(-0.5)


# --------------------------------------------------------------------------- (a) unbiasedness
@pytest.mark.parametrize("delta", ["squared", "log"])
def test_relmf_expectation_equals_ideal_loss_exactly_and_naive_does_not(delta):
    theta, gamma, scores = _world()
    s = torch.as_tensor(np.abs(scores) + 0.5)  # positive scores: naive's error cannot cancel out
    ideal = ideal_pointwise_loss(s, gamma, delta).item()
    # the estimator is linear in Y, so E_Y[L_IPS(Y)] = L_IPS(E[Y]) with E[Y] = theta * gamma
    expected_ips = relmf_loss(s, theta * gamma, theta, delta, clip=None).item()
    expected_naive = relmf_loss(s, theta * gamma, 1.0, delta, clip=None).item()
    assert expected_ips == pytest.approx(ideal, rel=1e-12)
    assert abs(expected_naive - ideal) > 0.02


@pytest.mark.parametrize("delta", ["squared", "log"])
def test_relmf_monte_carlo_over_clicks_matches_ideal_loss(delta):
    theta, gamma, scores = _world(seed=1)
    rng = np.random.default_rng(7)
    n_draws = 4000
    clicks = rng.random((n_draws,) + theta.shape) < theta * gamma  # Y = O R
    s = torch.as_tensor(scores)
    ips = relmf_loss(s, clicks.astype(float), theta, delta, clip=None, reduction="none").mean(dim=(1, 2)).numpy()
    naive = relmf_loss(s, clicks.astype(float), 1.0, delta, clip=None, reduction="none").mean(dim=(1, 2)).numpy()
    ideal = ideal_pointwise_loss(s, gamma, delta).item()
    se = ips.std(ddof=1) / math.sqrt(n_draws)
    assert abs(ips.mean() - ideal) < 4 * se
    se_naive = naive.std(ddof=1) / math.sqrt(n_draws)
    assert abs(naive.mean() - ideal) > 10 * se_naive


def test_clipping_biases_only_when_propensities_fall_below_m():
    theta, gamma, scores = _world(seed=2, theta_min=0.05)
    s = torch.as_tensor(scores)
    ideal = ideal_pointwise_loss(s, gamma).item()
    assert relmf_loss(s, theta * gamma, theta, clip=0.01).item() == pytest.approx(ideal, rel=1e-12)
    assert relmf_loss(s, theta * gamma, theta, clip=0.5).item() != pytest.approx(ideal, rel=1e-3)


def test_ubpr_monte_carlo_over_clicks_matches_ideal_pairwise_loss():
    theta, gamma, scores = _world(seed=3)
    rng = np.random.default_rng(11)
    n_draws = 4000
    y = (rng.random((n_draws,) + theta.shape) < theta * gamma).astype(float)
    s = torch.as_tensor(scores)
    off_diag = ~torch.eye(theta.shape[1], dtype=torch.bool)  # pairs i != j

    def pair_sum(terms):
        return terms[..., off_diag].sum(dim=(-1, -2))

    si, sj = s[:, :, None], s[:, None, :]
    ips = pair_sum(ubpr_terms(si, sj, y[..., :, None], theta[:, :, None], y[..., None, :], theta[:, None, :],
                              clip=None)).numpy()
    naive = pair_sum(ubpr_terms(si, sj, y[..., :, None], 1.0, y[..., None, :], 1.0, clip=None)).numpy()
    ideal = pair_sum(ideal_pairwise_terms(si, sj, gamma[:, :, None], gamma[:, None, :])).item()
    se = ips.std(ddof=1) / math.sqrt(n_draws)
    assert abs(ips.mean() - ideal) < 4 * se
    assert abs(naive.mean() - ideal) > 10 * naive.std(ddof=1) / math.sqrt(n_draws)


# --------------------------------------------------------------------------- the samplers
def _clicks_with_every_user_active(seed=4, n_users=5, n_items=6):
    theta, gamma, scores = _world(seed=seed, n_users=n_users, n_items=n_items)
    rng = np.random.default_rng(seed)
    y = rng.random(theta.shape) < theta * gamma
    y[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # at least one click each
    y[:, -1] = False  # and at least one unclicked item each
    u, i = np.nonzero(y)
    train = Interactions.from_indices(u, i, theta.shape, propensities=theta[u, i])
    return train, theta, scores


@pytest.mark.parametrize("delta", ["squared", "log"])
def test_relmf_sampler_batch_loss_is_unbiased_for_the_full_estimator(delta):
    train, theta, scores = _clicks_with_every_user_active()
    model = TableModel(scores)
    sampler = RelMF(n_negatives=2, delta=delta, clip=None, propensities="data", floor=None)
    rng = np.random.default_rng(0)
    sampler.prepare(train, rng)
    y = train.matrix.toarray()
    full = relmf_loss(torch.as_tensor(scores), y, np.where(y > 0, theta, 1.0), delta, clip=None).item()
    losses = []
    with torch.no_grad():
        for _ in range(1500):
            for batch in sampler.batches(3, rng):  # several batches per epoch
                losses.append(sampler.loss(model, batch.to("cpu")).item())
    losses = np.asarray(losses)
    se = losses.std(ddof=1) / math.sqrt(losses.size)
    assert abs(losses.mean() - full) < 4 * se + 1e-6


def test_relmf_sampler_hand_computed_batch():
    # one user, three items, a click on item 0 with theta 0.25; k = 1 unclicked draw
    train = Interactions.from_indices([0], [0], (1, 3), propensities=[0.25])
    scores = np.array([[math.log(3.0), 0.0, -1.0]])
    sampler = RelMF(n_negatives=1, propensities="data")
    rng = np.random.default_rng(0)
    sampler.prepare(train, rng)
    batch, tb = _one_batch(sampler, train, rng)
    j = int(batch.items[0, 1])
    assert j in (1, 2)
    w_u = 2 / (1 * 1)  # N0_u / (n_u k)
    c = 1 / 3  # nnz / (n_items * active users)
    click = 4 / 16 - 3 * 9 / 16
    unclicked = w_u * torch.sigmoid(torch.tensor(scores[0, j])).item() ** 2
    got = sampler.loss(TableModel(scores), tb).item()
    assert got == pytest.approx(c * (click + unclicked), rel=1e-5)


def test_naive_pointwise_is_relmf_with_theta_one():
    train, theta, scores = _clicks_with_every_user_active()
    naive = NaivePointwise(n_negatives=2)
    same = RelMF(n_negatives=2, propensities=1.0, clip=None)
    for s in (naive, same):
        s.prepare(train, np.random.default_rng(0))
    b1, t1 = _one_batch(naive, train, np.random.default_rng(5))
    b2, t2 = _one_batch(same, train, np.random.default_rng(5))
    np.testing.assert_array_equal(b1.items, b2.items)
    np.testing.assert_allclose(b1.weights[:, 0], 1.0)  # the click's 1/theta
    model = TableModel(scores)
    assert naive.loss(model, t1).item() == pytest.approx(same.loss(model, t2).item())


def test_the_clicks_negative_weight_is_bounded_by_clipping():
    train, theta, scores = _clicks_with_every_user_active()
    tiny = np.full(train.n_items, 1e-6)
    for clip in (0.1, 0.05):
        sampler = RelMF(propensities=tiny, clip=clip)
        sampler.prepare(train, np.random.default_rng(0))
        batch, _ = _one_batch(sampler, train, np.random.default_rng(1))
        weight_on_delta0 = 1.0 - batch.weights[:, 0].astype(np.float64)
        assert weight_on_delta0.min() >= 1 - 1 / clip - 1e-4
        np.testing.assert_allclose(weight_on_delta0, 1 - 1 / clip, rtol=1e-5)
    ub = UBPR(propensities=tiny, clip=0.1, n_negatives=3)
    ub.prepare(train, np.random.default_rng(0))
    batch, _ = _one_batch(ub, train, np.random.default_rng(1))
    # (1/theta_i)(1 - Y_j/theta_j) lies in [10 * (1 - 10), 10]
    pair_weight = batch.weights[:, 1:]
    assert pair_weight.min() >= 10 * (1 - 10) - 1e-3
    assert pair_weight.max() <= 10 + 1e-4


@pytest.mark.parametrize("make", [
    lambda: RelMF(delta="squared", propensities=np.full(6, 1e-6)),
    lambda: RelMF(delta="log", propensities=np.full(6, 1e-6)),
    lambda: UBPR(n_negatives=3, beta=None, propensities=np.full(6, 1e-6)),
])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_tiny_propensities_give_finite_loss_and_gradients(make, scale):
    train, _, scores = _clicks_with_every_user_active()
    model = TableModel(scale * scores)
    sampler = make()
    sampler.prepare(train, np.random.default_rng(0))
    _, tb = _one_batch(sampler, train, np.random.default_rng(1))
    loss = sampler.loss(model, tb)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(model.S.grad).all()


def test_log_family_click_term_is_unbounded_without_floor_and_bounded_with_it():
    s = torch.tensor([0.0, 10.0, 100.0])
    raw = relmf_loss(s, torch.ones(3), torch.full((3,), 0.5), "log", reduction="none")
    assert raw[2] < raw[1] < raw[0] and raw[2] < -40  # softplus(s) - 2 s -> -infinity
    floored = relmf_loss(s, torch.ones(3), torch.full((3,), 0.5), "log", floor=0.0, reduction="none")
    assert floored.min() >= 0
    # squared is bounded below by 1 - 1/M without a floor
    sq = relmf_loss(torch.tensor([100.0]), torch.ones(1), torch.full((1,), 1e-6), "squared")
    assert sq.item() == pytest.approx(1 - 1 / 0.1)


def test_ubpr_batches_draw_j_from_all_other_items_with_correct_labels():
    train, theta, scores = _clicks_with_every_user_active()
    sampler = UBPR(n_negatives=50, clip=None, beta=None, propensities="data")
    sampler.prepare(train, np.random.default_rng(0))
    y = train.matrix.toarray() > 0
    seen_clicked_j = False
    for batch in sampler.batches(4, np.random.default_rng(1)):
        u, items = batch.users, batch.items
        i, j = items[:, 0], items[:, 1:]
        assert y[u, i].all()
        assert (j != i[:, None]).all()
        clicked = y[u[:, None], j]
        np.testing.assert_array_equal(batch.labels[:, 1:], clicked)
        seen_clicked_j |= clicked.any()
        expected = (1 / theta[u, i])[:, None] * (1 - clicked / np.where(clicked, theta[u[:, None], j], 1.0))
        np.testing.assert_allclose(batch.weights[:, 1:], expected, rtol=1e-5)
        np.testing.assert_allclose(batch.weights[:, 0], 1 / theta[u, i], rtol=1e-5)
        assert batch.mask is None
    assert seen_clicked_j  # j is not restricted to unclicked items


def test_ubpr_sampler_batch_loss_is_unbiased_for_the_full_estimator():
    train, theta, scores = _clicks_with_every_user_active()
    n_items = train.n_items
    model = TableModel(scores)
    sampler = UBPR(n_negatives=2, clip=None, beta=None, propensities="data")
    rng = np.random.default_rng(0)
    sampler.prepare(train, rng)
    y = train.matrix.toarray()
    s = torch.as_tensor(scores)
    th = np.where(y > 0, theta, 1.0)
    terms = ubpr_terms(s[:, :, None], s[:, None, :], y[:, :, None], th[:, :, None], y[:, None, :], th[:, None, :],
                       clip=None)
    full = terms[:, ~np.eye(n_items, dtype=bool)].sum().item() / (train.nnz * (n_items - 1))
    losses = []
    with torch.no_grad():
        for _ in range(1500):
            for batch in sampler.batches(train.nnz, rng):
                losses.append(sampler.loss(model, batch.to("cpu")).item())
    losses = np.asarray(losses)
    se = losses.std(ddof=1) / math.sqrt(losses.size)
    assert abs(losses.mean() - full) < 4 * se + 1e-6


# --------------------------------------------------------------------------- contract details
def test_registered_names():
    assert SAMPLERS["relmf"] is RelMF
    assert SAMPLERS["pointwise"] is NaivePointwise
    assert SAMPLERS["ubpr"] is UBPR
    assert isinstance(make_sampler("ubpr", beta=0.01), UBPR)


def test_plain_interactions_fall_back_to_popularity_propensities():
    train = Interactions.from_indices([0, 1, 2, 2], [0, 0, 0, 1], (3, 3))
    for sampler in (RelMF(clip=None), UBPR(clip=None)):
        sampler.prepare(train, np.random.default_rng(0))
        np.testing.assert_allclose(sampler.theta_, [1.0, 1.0, 1.0, math.sqrt(1 / 3)])


@pytest.mark.parametrize("make, match", [
    (lambda: RelMF(delta="hinge"), "delta"),
    (lambda: RelMF(n_negatives=0), "n_negatives"),
    (lambda: RelMF(clip=2.0), "clip"),
    (lambda: RelMF(floor=0.5), "floor"),
    (lambda: RelMF(unobserved_weight="all"), "unobserved_weight"),
    (lambda: UBPR(beta=-1.0), "beta"),
    (lambda: UBPR(clip=0.0), "clip"),
])
def test_bad_parameters_raise_value_errors_at_prepare(make, match):
    train = Interactions.from_indices([0, 1], [0, 1], (2, 3))
    with pytest.raises(ValueError, match=match):
        make().prepare(train, np.random.default_rng(0))


# --------------------------------------------------------------------------- real data (slow)
@pytest.mark.slow
def test_relmf_beats_the_naive_pointwise_loss_on_coat(shared_data):
    """The paper's direction on Coat's randomized test (rating >= 4 relevant, test items ranked)."""
    from recsampling.data.datasets import load_dataset
    from recsampling.evaluation import evaluate
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    ds = load_dataset("coat", data_dir=shared_data)
    train, test = ds.interactions.to_implicit(4.0), ds.test.to_implicit(4.0)
    dcg = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is several times faster on a shared machine
    try:
        for name, params in (("pointwise", {}), ("relmf", {"propensities": "popularity"})):
            model = make_model("mf", train, factors=32, random_state=0)
            Trainer(epochs=30, batch_size=256, lr=0.005, l2=1e-4, device="cpu", random_state=0, backend="torch",
                    progress=False).fit(model, make_sampler(name, **params), train)
            dcg[name] = evaluate(model, test, ks=(5,), metrics=["dcg"], protocol="test_items",
                                 test_items=ds.info["test_items"], device="cpu")["dcg@5"]
    finally:
        torch.set_num_threads(threads)
    assert 0.7 < dcg["pointwise"] < dcg["relmf"] < 1.3
