"""The authors' protocol (recsampling.bench.saito, recsampling.samplers.saito): their preprocessing,
metrics, validation metric and training losses against their formulas, on tiny fake Coat folders."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_fake_coat
from recsampling.bench.saito import (AuthorsData, AuthorsEvaluation, authors_metrics, distinct_draws, paired_diffs,
                                     unbiased_validation_dcg)
from recsampling.samplers.saito import authors_params, authors_sampler


def _reference_metrics(scores, relevance, k, discount="authors", inv=None):
    """One user's DCG@k, Recall@k, MAP@k written out rank by rank (the authors' src/evaluate/metrics.py)."""
    order = np.argsort(-scores, kind="stable")
    y = relevance[order]
    v = np.ones_like(y) if inv is None else inv[order]
    if y.sum() == 0:
        return 0.0, 0.0, 0.0
    z = y.sum() if inv is None else v[y > 0].sum()
    k = min(k, y.size)
    dcg = rec = ap = 0.0
    for r in range(1, k + 1):  # r is the 1-based rank
        disc = (1.0 if r == 1 else 1.0 / np.log2(r)) if discount == "authors" else 1.0 / np.log2(r + 1)
        dcg += y[r - 1] * v[r - 1] * disc
        rec += y[r - 1] * v[r - 1]
        if y[r - 1] > 0:
            ap += (y[:r] * v[:r]).sum() / r
    return dcg / z, rec / z, ap / z


@pytest.mark.parametrize("discount", ["authors", "standard"])
@pytest.mark.parametrize("weighted", [False, True])
def test_authors_metrics_match_a_rank_by_rank_reference(discount, weighted):
    rng = np.random.default_rng(3)
    n_users, width = 25, 9
    sizes = rng.integers(2, width + 1, n_users)
    mask = np.arange(width)[None, :] < sizes[:, None]
    scores = rng.normal(size=(n_users, width))
    relevance = (rng.random((n_users, width)) < 0.25) * mask * 1.0
    relevance[0] = 0.0  # a user without a relevant candidate
    inv = 1.0 / rng.uniform(0.05, 1.0, (n_users, width)) if weighted else None
    for users in ("all", "relevant"):
        got = authors_metrics(scores, mask, relevance, ks=(1, 3, 5, 12), discount=discount, users=users,
                                    inv_propensity=inv)
        has = relevance.sum(1) > 0
        assert got["n_users"] == (n_users if users == "all" else has.sum())
        for k in (1, 3, 5, 12):
            ref = np.array([_reference_metrics(scores[u, :sizes[u]], relevance[u, :sizes[u]], k, discount,
                                               None if inv is None else inv[u, :sizes[u]]) for u in range(n_users)])
            ref = ref if users == "all" else ref[has]
            np.testing.assert_allclose([got[f"dcg@{k}"], got[f"recall@{k}"], got[f"map@{k}"]], ref.mean(0), rtol=1e-12)


def test_authors_dcg_hand_values():
    # ranks: item 0 (relevant), item 2, item 1 (relevant), item 3: ranks 1 and 2 both weigh 1, rank 3 1/log2(3)
    scores = np.array([[0.9, 0.1, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]])
    mask = np.ones((2, 4), bool)
    rel = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # the second user has no relevant item
    got = authors_metrics(scores, mask, rel, ks=(2, 3))
    assert got["dcg@2"] == pytest.approx((1.0 + 0.0) / 2 / 2)  # averaged with the second user's 0
    assert got["dcg@3"] == pytest.approx((1.0 + 1.0 / np.log2(3)) / 2 / 2)
    assert got["map@3"] == pytest.approx((1.0 + 2.0 / 3.0) / 2 / 2)
    std = authors_metrics(scores, mask, rel, ks=(3,), discount="standard", users="relevant")
    assert std["dcg@3"] == pytest.approx((1.0 + 0.5) / 2) and std["n_users"] == 1


def test_distinct_draws_are_distinct_in_range_and_uniform():
    rng = np.random.default_rng(0)
    out = distinct_draws(np.array([0, 3, 10, 50]), 10, rng)
    assert (out[0] == -1).all()
    assert sorted(out[1][out[1] >= 0]) == [0, 1, 2] and (out[1] == -1).sum() == 7
    assert sorted(out[2]) == list(range(10))
    assert len(set(out[3])) == 10 and out[3].min() >= 0 and out[3].max() < 50
    many = distinct_draws(np.full(20_000, 5), 2, rng)
    assert (many[:, 0] != many[:, 1]).all()
    freq = np.bincount(many.ravel(), minlength=5) / many.size
    np.testing.assert_allclose(freq, 0.2, atol=0.01)  # every item is in a row's pair with probability 2/5


def test_authors_preprocessing_follows_their_steps(tmp_path):
    write_fake_coat(tmp_path / "coat")
    data = AuthorsData("coat", str(tmp_path), positives="threshold", propensity="users", seed=1)
    ratings = data.ds.interactions.ratings
    n_items, n_pairs = data.n_items, data.n_users * data.n_items
    assert data.is_pos.sum() == (ratings >= 4).sum()
    assert data.in_val.sum() == int(np.ceil(0.1 * n_pairs))  # 10% of all pairs, labeled or not
    np.testing.assert_allclose(data.theta, np.clip(np.sqrt(data.item_counts / data.n_users), 1e-6, 1))
    flat = data.pos_users * n_items + data.pos_items
    assert data.is_pos[flat].all() and not data.in_val[flat].any()
    # BPR: j among the user's unlabeled training pairs; UBPR: any training pair of the user but i itself
    b = data.bpr
    jb = b["users"] * n_items + b["neg"]
    assert not data.is_pos[jb].any() and not data.in_val[jb].any()
    u = data.ubpr
    ju = u["users"] * n_items + u["neg"]
    assert not data.in_val[ju].any() and (u["neg"] != u["pos"]).all()
    np.testing.assert_array_equal(u["click_j"], data.is_pos[ju])
    # each training positive keeps min(10, pool) distinct j
    pool = (data.unlabeled.reshape(-1, n_items)).sum(1)
    per_row = np.bincount(np.searchsorted(np.sort(flat), b["users"] * n_items + b["pos"]), minlength=flat.size)
    np.testing.assert_array_equal(per_row, np.minimum(10, pool[np.sort(flat) // n_items]))
    assert AuthorsData("coat", str(tmp_path), propensity="ones").theta.tolist() == [1.0] * n_items


def test_bernoulli_positives_keep_every_top_rating_and_some_low_ones(tmp_path):
    write_fake_coat(tmp_path / "coat", n_users=60, n_items=20)
    data = AuthorsData("coat", str(tmp_path), positives="bernoulli", seed=0)
    tr = data.ds.interactions
    kept = data.is_pos[tr.user_index() * data.n_items + tr.item_index()]
    assert kept[tr.ratings == 5].all()  # P = 0.1 + 0.9 * 15/15 = 1
    low = kept[tr.ratings == 1]
    assert 0 < low.mean() < 0.3  # P = 0.1


def test_authors_losses_are_their_formulas(tmp_path):
    """The authors' pairwise loss (our library's ``ubpr_terms``) and pointwise loss against the
    authors' TensorFlow expressions written out in numpy."""
    from recsampling.models import make_model
    from recsampling.samplers.saito import AuthorsPairwise, AuthorsPointwise

    write_fake_coat(tmp_path / "coat")
    data = AuthorsData("coat", str(tmp_path))
    model = make_model("mf", data.train, factors=4, item_bias=False, random_state=0)
    U = model.user_factors.weight.detach().numpy().astype(np.float64)
    V = model.item_factors.weight.detach().numpy().astype(np.float64)
    l2 = 0.5 * ((U ** 2).sum() + (V ** 2).sum())
    rng = np.random.default_rng(0)
    u = data.ubpr
    s = AuthorsPairwise(u["users"], u["pos"], u["neg"], data.theta, u["click_j"].astype(np.float32), beta=0.05, lam=0.01,
                 steps=1)
    s.prepare(data.train, rng)
    batch = next(s.batches(64, np.random.default_rng(1)))
    users, items, c = batch.users, batch.items, batch.labels[:, 1].astype(float)
    th_i, th_j = data.theta[items[:, 0]], data.theta[items[:, 1]]
    x = (U[users] * (V[items[:, 0]] - V[items[:, 1]])).sum(1)
    local = -(1 / th_i) * (1 - c / th_j) * np.log(1 / (1 + np.exp(-x)))
    want = np.clip(local, -0.05, 1e6).mean() + 0.01 * l2
    got = s.loss(model, batch.to("cpu"))
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)
    assert (c > 0).any()  # the batch holds clicked j, whose weight is negative
    p = AuthorsPointwise(data.pos_users, data.pos_items, data.theta, data.unlabeled, data.n_items,
                  weight=0.7, clip=0.2, lam=0.01, steps=1)
    p.prepare(data.train, rng)
    batch = next(p.batches(32, np.random.default_rng(2)))
    users, items, y = batch.users, batch.items[:, 0], batch.labels[:, 0].astype(float)
    assert y.sum() == 16 and not data.is_pos[(users * data.n_items + items)[16:]].any()
    sig = 1 / (1 + np.exp(-(U[users] * V[items]).sum(1)))
    th = np.clip(np.where(y > 0.5, data.theta[items], 1.0), 0.2, 1.0)
    local = np.clip((y / th) * (1 - sig) ** 2 + 0.7 * (1 - y / th) * sig ** 2, -1000, 1000)
    want = local.sum() / (y + 0.7 * (1 - y)).sum() + 0.01 * l2
    got = p.loss(model, batch.to("cpu"))
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)


def test_random_baseline_is_the_expectation_over_orders(tmp_path):
    write_fake_coat(tmp_path / "coat")
    data = AuthorsData("coat", str(tmp_path))
    ev = AuthorsEvaluation(data.ds.test)
    exact = ev.random_order()
    rng = np.random.default_rng(0)
    runs = [authors_metrics(rng.random(ev.mask.shape), ev.mask, ev.rel) for _ in range(4000)]
    for key in ("dcg@3", "recall@5", "map@3", "map@8"):
        assert np.mean([r[key] for r in runs]) == pytest.approx(exact[key], abs=0.01)


def test_unbiased_validation_dcg_ranks_an_oracle_above_its_reverse(tmp_path):
    write_fake_coat(tmp_path / "coat", n_users=40, n_items=30)
    data = AuthorsData("coat", str(tmp_path), propensity="ones")
    held = np.zeros((data.n_users, data.n_items))
    held[data.val_users, data.val_items] = 1.0

    class Tables:  # score(u, i) = 1 for a held-out positive, else 0
        def __init__(self, sign):
            self.sign = sign

        def embedding_tables(self):
            return self.sign * held, np.eye(data.n_items)

    oracle = unbiased_validation_dcg(Tables(1.0), data)
    n = np.bincount(data.val_users)[np.unique(data.val_users)]
    d = np.r_[1.0, 1.0 / np.log2(np.arange(2, 6))]
    assert oracle == pytest.approx(np.mean([d[:min(5, m)].sum() / m for m in n]))  # every positive on top
    assert unbiased_validation_dcg(Tables(-1.0), data) < 0.5 * oracle


def test_authors_params_and_loops_follow_each_method(tmp_path):
    """The tuned values with the overrides, and each method's loop: its pairs, propensities, weight, clip."""
    p = authors_params("coat", "naive")  # Rel-MF's values, then trained without propensities
    assert (p["dim"], p["clip"], p["beta"], p["ubpr_clip"]) == (300, pytest.approx(0.0028088911), None, None)
    p = authors_params("coat", "ubpr", "replication", factors=8, lam=0.5, beta=None, clip=0.1)
    assert (p["dim"], p["lam"], p["beta"], p["ubpr_clip"]) == (8, 0.5, None, 0.1)
    assert authors_params("coat", "ubpr")["beta"] == pytest.approx(0.007984890088077323)
    write_fake_coat(tmp_path / "coat")
    data = AuthorsData("coat", str(tmp_path))
    bpr = authors_sampler("bpr", data, authors_params("coat", "bpr"), steps=3)
    assert bpr.steps == 3 and bpr.users is data.bpr["users"] and bpr.beta is None
    assert bpr.theta.numpy().tolist() == [1.0] * data.n_items and not bpr.click_j.any()
    ubpr = authors_sampler("ubpr", data, authors_params("coat", "ubpr"), steps=3)
    np.testing.assert_allclose(ubpr.theta.numpy(), data.theta.astype(np.float32))
    assert ubpr.click_j.sum() == data.ubpr["click_j"].sum()
    wmf = authors_sampler("wmf", data, authors_params("coat", "wmf"), steps=3)
    assert wmf.weight == pytest.approx(0.886018545949848) and wmf.clip == 0.0
    relmf = authors_sampler("relmf", data, authors_params("coat", "relmf"), steps=3)
    assert relmf.weight == 1.0 and relmf.clip == pytest.approx(0.002808891158289788)
    with pytest.raises(ValueError, match="unknown method"):
        authors_sampler("dns", data, {}, steps=1)


def test_paired_diffs_are_run_by_run():
    runs = {"bpr": [{"x": 1.0}, {"x": 2.0}, {"x": 4.0}], "a": [{"x": 2.0}, {"x": 2.0}, {"x": 6.0}]}
    out = paired_diffs(runs, "bpr", ["x"])
    d = np.array([1.0, 0.0, 2.0])
    assert out["a/x"] == {"diff": pytest.approx(1.0), "se": pytest.approx(d.std(ddof=1) / np.sqrt(3))}
    assert out["bpr/x"] == {"diff": 0.0, "se": 0.0}
    assert paired_diffs({"bpr": runs["bpr"][:1]}, "bpr", ["x"]) == {} and paired_diffs(runs, "none", ["x"]) == {}


def test_run_authors_compares_every_method_with_bpr_run_by_run(tmp_path):
    from recsampling.bench.saito import PAIRED_KEYS, authors_markdown, run_authors
    from recsampling.samplers.saito import REPLICATION_RESULTS

    write_fake_coat(tmp_path / "coat")
    seeds_seen = []

    def prepare(seed):
        seeds_seen.append(seed)
        return AuthorsData("coat", str(tmp_path), seed=seed)

    def params_of(method):
        return authors_params("coat", method, factors=4)

    res = run_authors(prepare, ["bpr", "ubpr"], params_of, seeds=2, redraw=True, steps=3, batch_size=8, lr=0.01)
    assert len(seeds_seen) == 2 and seeds_seen[1] == seeds_seen[0] + 1  # redraw: a new draw for the second run
    assert all(len(res["runs"][m][k]) == 2 for m in ("bpr", "ubpr") for k in PAIRED_KEYS)
    assert res["ratios_vs_bpr"]["bpr/dcg@5"] == pytest.approx(1.0)
    assert res["ratios_vs_bpr"]["ubpr/dcg@5"] == pytest.approx(res["methods"]["ubpr"]["dcg@5"]
                                                             / res["methods"]["bpr"]["dcg@5"])
    assert res["paired_vs_bpr"]["bpr/dcg@5"] == {"diff": 0.0, "se": 0.0}
    assert res["params"]["ubpr"]["dim"] == 4 and "beta" in res["params"]["ubpr"] and "beta" not in res["params"]["bpr"]
    assert res["replication"] is REPLICATION_RESULTS["coat"]  # a Coat folder: the replication's table beside ours
    assert res["replication_ratios_vs_bpr"]["ubpr/dcg@5"] == pytest.approx(0.132963 / 0.128614)
    text = authors_markdown(res, "coat", 2)
    assert "### coat, the authors' protocol (mean ± s.e. over 2 runs" in text and "The replication" in text
    assert "Tuned" not in text  # no tuning asked for
