"""benchmarks/nbpo_noise.py: result files, the flip-ranking AUCs, the authors' loop (samplers.nbpo_authors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import load_benchmark
from recsampling.data.synthetic import make_world
from recsampling.bench.noise import label_noise_task, mislabel_pairs
from recsampling.models import make_model
from recsampling.samplers.nbpo import AUTHORS_FLIP_INIT
from recsampling.samplers.nbpo_authors import authors_sampler


@pytest.fixture(autouse=True)
def _threads(restore_threads):
    """main() sets its own torch thread count."""


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("nbpo_noise")


def test_quick_smoke_run_does_not_overwrite_the_recorded_results(tmp_path, monkeypatch, bench):
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "nbpo_noise.py"))  # results/ beside the script
    result = bench.main(["--quick", "--seeds", "1", "--noise", "0.0", "--methods", "bpr", "--epochs", "1",
                         "--l2", "0.01"])
    assert (tmp_path / "results" / "nbpo_noise_quick.json").is_file()
    assert not (tmp_path / "results" / "nbpo_noise.json").exists()
    # --quick shrinks the world and caps seeds and epochs; the smaller ones asked for hold
    assert (result["config"]["seeds"], result["config"]["epochs"], result["config"]["n_users"]) == (1, 1, 150)


def test_quick_authors_run_reports_the_flip_ranking_against_the_mislabeled_pairs(tmp_path, bench):
    result = bench.main(["--quick", "--protocol", "authors", "--seeds", "1", "--noise", "0.2", "--methods", "bpr",
                         "nbpo", "--epochs", "2", "--out", str(tmp_path / "r.json"), "--json"])
    block = result["noise"]["0.2"]
    for key in ("flip_auc_mislabeled", "rarity_auc_mislabeled", "score_auc_mislabeled", "score_auc_mislabeled_bpr"):
        assert 0.0 <= block[key] <= 1.0, key
    world = block["world"]
    # the paper's noise: a fifth of the training part of the truth is hidden, among the unvoted pairs
    assert world["hidden_fraction_of_true_positives"] == pytest.approx(0.2, abs=0.03)
    assert 0 < world["unvoted_hidden_share"] < world["unvoted_true_positive_share"]
    cfg = result["config"]
    assert (cfg["protocol"], cfg["noise_model"], cfg["factors"], cfg["batch_size"], cfg["patience"]) == (
        "authors", "liked", 50, 5000, 0)
    assert block["nbpo"]["eta"] == 0.02 and block["nbpo"]["lambda_phi"] == 1.0 and block["bpr"]["lambda_r"] == 1.0


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("name", ["nbpo", "bpr", "bpo"])
def test_authors_sampler_step_is_the_authors_update(name):
    """One batch's gradient of (loss x rows), what the Trainer's sgd steps on, is -decay^e (dW - lambda W) of
    the authors' loops (_NBPO.py / _BPR.py / _BPO.py), written out here in numpy over the same draws."""
    world = make_world(30, 40, 150, n_logged_lists=0, n_test_items=0, random_state=0)
    train = world.clicks
    k, lam_r, lam_phi, decay = 4, 0.5, 1.0, 0.99
    params = {"n_negatives": k}
    if name == "nbpo":
        params.update(flip_dim=5, flip_l2=0.0, flip_init=AUTHORS_FLIP_INIT)
    sampler = authors_sampler(name, params, lam_r, lam_phi if name == "nbpo" else 0.0, decay)
    model = make_model("mf", train, factors=5, user_bias=False, item_bias=False, random_state=0)
    with torch.no_grad():
        for w in model.parameters():
            w.copy_(torch.rand(w.shape, dtype=w.dtype) / np.sqrt(5))
    rng = np.random.default_rng(0)
    sampler.prepare(train, rng)
    batch = next(iter(sampler.batches(10_000, rng)))  # the whole epoch in one batch, epoch 1
    np.testing.assert_array_equal(batch.users, np.sort(batch.users))  # the authors' order: user by user
    b = batch.to("cpu")
    rows = len(b)
    (sampler.loss(model, b) * rows).backward()

    U = model.user_factors.weight.detach().double().numpy()
    V = model.item_factors.weight.detach().double().numpy()
    u, i, js = batch.users, batch.items[:, 0], batch.items[:, 1:]
    dU, dV = np.zeros_like(U), np.zeros_like(V)
    xi = (U[u] * V[i]).sum(1)
    if name == "nbpo":
        P = sampler.flip_.P.weight.detach().double().numpy()
        Q = sampler.flip_.Q.weight.detach().double().numpy()
        dP, dQ = np.zeros_like(P), np.zeros_like(Q)
        gi = (P[u] * Q[i]).sum(1)
    for c in range(k):  # the voted pair's term once per drawn negative
        j = js[:, c]
        xj = (U[u] * V[j]).sum(1)
        if name == "bpr":
            d = _sig(-(xi - xj))[:, None]
            np.add.at(dU, u, d * (V[i] - V[j]))
            np.add.at(dV, i, d * U[u])
            np.add.at(dV, j, -d * U[u])
            continue
        if name == "bpo":
            di, dj = _sig(-xi), -_sig(xj)
        else:
            gj = (P[u] * Q[j]).sum(1)
            di, dj = _sig(-gi) * _sig(-xi), _sig(gj) * _sig(-xj) - _sig(xj)
            np.add.at(dP, u, (-_sig(gi) * _sig(xi))[:, None] * Q[i] + (_sig(-gj) * _sig(xj))[:, None] * Q[j])
            np.add.at(dQ, i, (-_sig(gi) * _sig(xi))[:, None] * P[u])
            np.add.at(dQ, j, (_sig(-gj) * _sig(xj))[:, None] * P[u])
        np.add.at(dU, u, di[:, None] * V[i] + dj[:, None] * V[j])
        np.add.at(dV, i, di[:, None] * U[u])
        np.add.at(dV, j, dj[:, None] * U[u])
    grads = [(model.user_factors.weight, dU - lam_r * U), (model.item_factors.weight, dV - lam_r * V)]
    if name == "nbpo":
        grads += [(sampler.flip_.P.weight, dP - lam_phi * P), (sampler.flip_.Q.weight, dQ - lam_phi * Q)]
    for w, ascent in grads:
        np.testing.assert_allclose(w.grad.double().numpy(), -decay * ascent, rtol=2e-4, atol=1e-5)


def test_liked_noise_keeps_the_test_and_the_truth_fixed_across_rates_and_nests_the_training_noise():
    """--noise-model liked: one seed's test positives and ranking candidates are the same at every rate; the
    training clicks lose a nested share ~ rho of the truth's training part; the AUC pool marks those as mislabeled."""
    parts = {r: label_noise_task(r, 1, n_users=150, n_items=200, interactions=2500, noise_model="liked",
                                 liked_unexposed=1.0) for r in (0.0, 0.2, 0.4)}
    pairs = lambda x: set(zip(x.user_index().tolist(), x.item_index().tolist()))  # noqa: E731
    (t0, _, h0), (t2, w2, h2), (t4, _, _) = parts[0.0], parts[0.2], parts[0.4]
    assert pairs(t0.test) == pairs(t2.test) == pairs(t4.test) == pairs(h0) == pairs(h2)
    assert pairs(t0.known) == pairs(t2.known) == pairs(t4.known)  # the same excluded pairs at every rate
    assert pairs(t4.train) <= pairs(t2.train) <= pairs(t0.train)  # nested
    lost = 1 - t4.train.nnz / t0.train.nnz
    assert lost == pytest.approx(0.4, abs=0.05)
    u, i, mislabeled = mislabel_pairs(t2.train, h2, w2, 1)
    assert set(zip(u[mislabeled].tolist(), i[mislabeled].tolist())) == pairs(t0.train) - pairs(t2.train)
