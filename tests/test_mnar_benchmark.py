"""benchmarks/mnar.py on tiny data: the Yahoo! R3 path (files absent / a fake set), --tune, propensity norms."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark
from recsampling.data.interactions import Interactions

KS = (3, 5, 8)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("mnar")


@pytest.fixture(autouse=True)
def _threads(restore_threads):
    """main() sets its own torch thread count."""


def write_fake_yahoo(folder: Path, n_users: int = 30, n_items: int = 20, seed: int = 0) -> Path:
    """Files in Yahoo! R3's format: tab-separated user, item, rating; 1-based ids; 5 test items per user."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for part, per_user in (("train", 6), ("test", 5)):
        rows = []
        for u in range(1, n_users + 1):
            for i in rng.choice(n_items, per_user, replace=False) + 1:
                rows.append(f"{u}\t{i}\t{rng.integers(1, 6)}")
        (folder / f"ydata-ymusic-rating-study-v1_0-{part}.txt").write_text("\n".join(rows) + "\n")
    return folder


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_yahoo_r3_without_its_files_is_a_one_line_error(bench, tmp_path):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--no-write"])
    message = str(exc.value)
    assert message.startswith("benchmarks/mnar.py: cannot load 'yahoo-r3'")
    assert "ydata-ymusic-rating-study-v1_0-train.txt" in message and "\n" not in message


def test_yahoo_r3_fake_set_gives_every_figure_with_standard_errors(bench, tmp_path, capsys):
    write_fake_yahoo(tmp_path / "yahoo-r3")
    assert bench.main(["--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--quick", "--seeds", "2",
                       "--json", "--no-write"]) == 0
    out = last_json(capsys)
    assert set(out["methods"]) == {"naive", "bpr", "relmf", "ubpr"}  # no true propensities off synthetic
    assert out["data"]["n_users"] == 30 and out["data"]["n_items"] == 20
    for figures in out["methods"].values():
        for m in ("dcg", "recall", "map"):
            for k in KS:
                assert np.isfinite(figures[f"all/{m}@{k}"]) and f"all/{m}@{k}_se" in figures
        assert 0.0 <= figures["all/recall@8"] <= 1.0
        # 5 test items per user: every candidate is in the top 5, so the rare share is the candidates' share
        assert figures["all/rare_share@5"] == pytest.approx(figures["all/rare_share_random"])
        assert 0.0 <= figures["all/rare_share@3"] <= 1.0
    assert out["tuning"] == {}
    assert all(np.isfinite(f["authors/dcg@5"]) for f in out["methods"].values())  # the authors' metrics too


def test_tune_gives_each_method_the_same_budget_and_uses_its_best_values(bench, tmp_path, capsys):
    write_fake_yahoo(tmp_path / "yahoo-r3")
    assert bench.main(["--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--quick", "--seeds", "1",
                       "--methods", "naive,ubpr", "--tune", "2", "--json", "--no-write"]) == 0
    out = last_json(capsys)
    assert out["config"]["tune"] == 2 and out["config"]["tune_metric"] == "snips_dcg@5"
    for method in ("naive", "ubpr"):
        t = out["tuning"][method]
        assert t["n_trials"] == 2 and t["metric"] == "snips_dcg@5" and np.isfinite(t["best_value"])
        assert t["valid_clicks"] > 0 and t["fit_clicks"] > 0
        assert {"lr", "l2", "factors"} <= set(t["best_params"])
    assert {"clip", "eta", "beta"} <= set(out["tuning"]["ubpr"]["best_params"])
    assert "clip" not in out["tuning"]["naive"]["best_params"]  # the naive loss has no propensity knob


def test_tuned_values_reach_the_sampler_and_the_model(bench):
    args = argparse.Namespace(
        eta=0.5, clip=0.1, propensity_norm="max", n_negatives=4, delta="squared", unobserved_weight="unbiased",
        ubpr_negatives=4, beta=0.0)
    name, params = bench.sampler_for("ubpr", args, overrides={"clip": 0.02, "eta": 0.3, "beta": 0.5,
                                                               "n_negatives": 2, "lr": 0.1})
    assert name == "ubpr" and params["clip"] == 0.02 and params["eta"] == 0.3 and params["beta"] == 0.5
    assert params["n_negatives"] == 2 and "lr" not in params
    name, params = bench.sampler_for("naive", args, overrides={"n_negatives": 8})
    assert name == "pointwise" and params["n_negatives"] == 8 and "clip" not in params
    name, params = bench.sampler_for("naive_weighted", args, overrides={"unobserved_weight": 0.3})
    assert name == "pointwise" and params["unobserved_weight"] == 0.3  # the tuned weight of unclicked pairs


def test_propensity_norms(bench):
    # item counts 4, 2, 1, 0 over 4 users
    train = Interactions.from_indices([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0, 1, 1, 2], (4, 4))
    assert bench.item_propensities(train, 0.5, "max") == "popularity"  # the sampler's (n_i / max n)^eta
    users = bench.item_propensities(train, 0.5, "users")
    np.testing.assert_allclose(users, [1.0, np.sqrt(0.5), 0.5, 1e-6])  # (n_i / n_users)^0.5, floored at 1e-6
    flat = bench.item_propensities(train, 0.5, "flat")  # (mean of 4, 2, 1 over 4 users)^0.5 for every item
    np.testing.assert_allclose(flat, np.full(4, np.sqrt(7 / 3 / 4)))
    with pytest.raises(ValueError, match="propensity norm"):
        bench.item_propensities(train, 0.5, "median")


# ------------------------------------------------------------------------------- --protocol authors
def write_fake_coat(folder: Path, n_users: int = 12, n_items: int = 15, seed: int = 0) -> Path:
    """Dense ``train.ascii`` / ``test.ascii`` in Coat's format: 6 self-selected and 5 random items per user."""
    rng = np.random.default_rng(seed)
    train, test = np.zeros((n_users, n_items), int), np.zeros((n_users, n_items), int)
    for u in range(n_users):
        items = rng.permutation(n_items)
        train[u, items[:6]] = rng.integers(1, 6, 6)
        test[u, items[6:11]] = rng.integers(1, 6, 5)
    folder.mkdir(parents=True)
    for name, m in (("train.ascii", train), ("test.ascii", test)):
        (folder / name).write_text("\n".join(" ".join(map(str, row)) for row in m) + "\n")
    return folder


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
def test_authors_metrics_match_a_rank_by_rank_reference(bench, discount, weighted):
    rng = np.random.default_rng(3)
    n_users, width = 25, 9
    sizes = rng.integers(2, width + 1, n_users)
    mask = np.arange(width)[None, :] < sizes[:, None]
    scores = rng.normal(size=(n_users, width))
    relevance = (rng.random((n_users, width)) < 0.25) * mask * 1.0
    relevance[0] = 0.0  # a user without a relevant candidate
    inv = 1.0 / rng.uniform(0.05, 1.0, (n_users, width)) if weighted else None
    for users in ("all", "relevant"):
        got = bench.authors_metrics(scores, mask, relevance, ks=(1, 3, 5, 12), discount=discount, users=users,
                                    inv_propensity=inv)
        has = relevance.sum(1) > 0
        assert got["n_users"] == (n_users if users == "all" else has.sum())
        for k in (1, 3, 5, 12):
            ref = np.array([_reference_metrics(scores[u, :sizes[u]], relevance[u, :sizes[u]], k, discount,
                                               None if inv is None else inv[u, :sizes[u]]) for u in range(n_users)])
            ref = ref if users == "all" else ref[has]
            np.testing.assert_allclose([got[f"dcg@{k}"], got[f"recall@{k}"], got[f"map@{k}"]], ref.mean(0), rtol=1e-12)


def test_authors_dcg_hand_values(bench):
    # ranks: item 0 (relevant), item 2, item 1 (relevant), item 3: ranks 1 and 2 both weigh 1, rank 3 1/log2(3)
    scores = np.array([[0.9, 0.1, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]])
    mask = np.ones((2, 4), bool)
    rel = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # the second user has no relevant item
    got = bench.authors_metrics(scores, mask, rel, ks=(2, 3))
    assert got["dcg@2"] == pytest.approx((1.0 + 0.0) / 2 / 2)  # averaged with the second user's 0
    assert got["dcg@3"] == pytest.approx((1.0 + 1.0 / np.log2(3)) / 2 / 2)
    assert got["map@3"] == pytest.approx((1.0 + 2.0 / 3.0) / 2 / 2)
    std = bench.authors_metrics(scores, mask, rel, ks=(3,), discount="standard", users="relevant")
    assert std["dcg@3"] == pytest.approx((1.0 + 0.5) / 2) and std["n_users"] == 1


def test_distinct_draws_are_distinct_in_range_and_uniform(bench):
    rng = np.random.default_rng(0)
    out = bench.distinct_draws(np.array([0, 3, 10, 50]), 10, rng)
    assert (out[0] == -1).all()
    assert sorted(out[1][out[1] >= 0]) == [0, 1, 2] and (out[1] == -1).sum() == 7
    assert sorted(out[2]) == list(range(10))
    assert len(set(out[3])) == 10 and out[3].min() >= 0 and out[3].max() < 50
    many = bench.distinct_draws(np.full(20_000, 5), 2, rng)
    assert (many[:, 0] != many[:, 1]).all()
    freq = np.bincount(many.ravel(), minlength=5) / many.size
    np.testing.assert_allclose(freq, 0.2, atol=0.01)  # every item is in a row's pair with probability 2/5


def test_authors_preprocessing_follows_their_steps(bench, tmp_path):
    write_fake_coat(tmp_path / "coat")
    data = bench.AuthorsData("coat", str(tmp_path), positives="threshold", propensity="users", seed=1)
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
    assert bench.AuthorsData("coat", str(tmp_path), propensity="ones").theta.tolist() == [1.0] * n_items


def test_bernoulli_positives_keep_every_top_rating_and_some_low_ones(bench, tmp_path):
    write_fake_coat(tmp_path / "coat", n_users=60, n_items=20)
    data = bench.AuthorsData("coat", str(tmp_path), positives="bernoulli", seed=0)
    tr = data.ds.interactions
    kept = data.is_pos[tr.user_index() * data.n_items + tr.item_index()]
    assert kept[tr.ratings == 5].all()  # P = 0.1 + 0.9 * 15/15 = 1
    low = kept[tr.ratings == 1]
    assert 0 < low.mean() < 0.3  # P = 0.1


def test_authors_losses_are_their_formulas(bench, tmp_path):
    """The benchmark's pairwise loss (our library's ``ubpr_terms``) and pointwise loss against the
    authors' TensorFlow expressions written out in numpy."""
    from recsampling.models import make_model

    write_fake_coat(tmp_path / "coat")
    data = bench.AuthorsData("coat", str(tmp_path))
    pairwise, pointwise = bench._authors_samplers()
    model = make_model("mf", data.train, factors=4, item_bias=False, random_state=0)
    U = model.user_factors.weight.detach().numpy().astype(np.float64)
    V = model.item_factors.weight.detach().numpy().astype(np.float64)
    l2 = 0.5 * ((U ** 2).sum() + (V ** 2).sum())
    rng = np.random.default_rng(0)
    u = data.ubpr
    s = pairwise(u["users"], u["pos"], u["neg"], data.theta, u["click_j"].astype(np.float32), beta=0.05, lam=0.01,
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
    p = pointwise(data.pos_users, data.pos_items, data.theta, data.unlabeled, data.n_items,
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


def test_random_baseline_is_the_expectation_over_orders(bench, tmp_path):
    write_fake_coat(tmp_path / "coat")
    data = bench.AuthorsData("coat", str(tmp_path))
    ev = bench.AuthorsEvaluation(data.ds.test)
    exact = ev.baselines(data.item_counts, n_ties=2)["random"]
    rng = np.random.default_rng(0)
    runs = [bench.authors_metrics(rng.random(ev.mask.shape), ev.mask, ev.rel) for _ in range(4000)]
    for key in ("dcg@3", "recall@5", "map@3", "map@8"):
        assert np.mean([r[key] for r in runs]) == pytest.approx(exact[key], abs=0.01)


def test_protocol_authors_on_a_yahoo_folder_gives_every_figure(bench, tmp_path, capsys):
    write_fake_yahoo(tmp_path / "yahoo-r3")
    assert bench.main(["--protocol", "authors", "--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--quick",
                       "--json", "--no-write"]) == 0
    out = last_json(capsys)
    assert out["protocol"] == "authors" and out["config"]["seeds"] == 2 and out["config"]["max_iters"] == 100
    assert set(out["methods"]) == {"wmf", "naive", "relmf", "bpr", "ubpr"}
    assert out["data"]["propensity"] == "max"  # their Yahoo! R3 formula (n_i / max n)^0.5
    for figures in out["methods"].values():
        for m in ("dcg", "recall", "map"):
            for k in KS:
                assert np.isfinite(figures[f"{m}@{k}"]) and f"{m}@{k}_se" in figures
                assert np.isfinite(figures[f"ours/{m}@{k}"])
    assert out["ratios_vs_bpr"]["bpr/dcg@5"] == 1.0 and out["replication"] == {}
    assert out["params"]["ubpr"]["dim"] == 100  # their tuned Yahoo! R3 values
    assert out["params"]["bpr"] == {"dim": 140, "lam": pytest.approx(7.0114e-6, rel=1e-4)}


def test_protocol_authors_tune_gives_each_method_the_same_budget(bench, tmp_path, capsys):
    write_fake_coat(tmp_path / "coat")
    assert bench.main(["--protocol", "authors", "--data-dir", str(tmp_path), "--quick", "--seeds", "1",
                       "--max-iters", "20", "--methods", "relmf,ubpr", "--tune", "2", "--json", "--no-write"]) == 0
    out = last_json(capsys)
    for m, extra in (("relmf", "clip"), ("ubpr", "beta")):
        t = out["tuning"][m]
        assert t["n_trials"] == 2 and np.isfinite(t["best_value"]) and {"dim", "lam", extra} <= set(t["best_params"])
        assert out["params"][m]["dim"] == t["best_params"]["dim"]  # the tuned values are the ones trained


def test_protocol_authors_flags(bench, tmp_path, capsys):
    with pytest.raises(SystemExit, match="coat and yahoo-r3"):
        bench.main(["--protocol", "authors", "--dataset", "synthetic", "--no-write"])
    with pytest.raises(SystemExit, match="unknown method 'dns'"):
        bench.main(["--protocol", "authors", "--methods", "dns", "--no-write"])
    with pytest.raises(SystemExit) as exc:  # argparse: exit status 2 with a usage line
        bench.main(["--beta", "-1"])
    assert exc.value.code == 2
    write_fake_coat(tmp_path / "coat")
    assert bench.main(["--protocol", "authors", "--data-dir", str(tmp_path), "--quick", "--seeds", "1",
                       "--max-iters", "5", "--methods", "ubpr", "--beta", "off", "--clip", "0.1", "--factors", "8",
                       "--json", "--no-write"]) == 0
    p = last_json(capsys)["params"]["ubpr"]
    assert p["beta"] is None and p["ubpr_clip"] == 0.1 and p["dim"] == 8


def test_protocol_authors_reproduces_the_replications_popularity_row_on_coat(bench, shared_data):
    """No training: the preprocessing and the metrics alone must give the replication's ``ip`` row."""
    data = bench.AuthorsData("coat", str(shared_data))
    info = data.info()
    assert (info["positives"], info["test_relevant"], info["test_users_with_relevant"]) == (1905, 219, 101)
    base = bench.AuthorsEvaluation(data.ds.test).baselines(data.item_counts)
    rep = bench.REPLICATION_COAT["popularity"]
    for key in ("dcg@3", "dcg@5", "recall@5", "map@5"):
        assert base["popularity"][key] == pytest.approx(rep[key], abs=0.004)  # ties among equal counts move it
    assert base["random"]["dcg@3"] == pytest.approx(0.0573, abs=1e-4)  # far below the 0.164 of graded relevance


def test_unbiased_validation_dcg_ranks_an_oracle_above_its_reverse(bench, tmp_path):
    write_fake_coat(tmp_path / "coat", n_users=40, n_items=30)
    data = bench.AuthorsData("coat", str(tmp_path), propensity="ones")
    held = np.zeros((data.n_users, data.n_items))
    held[data.val_users, data.val_items] = 1.0

    class Tables:  # score(u, i) = 1 for a held-out positive, else 0
        def __init__(self, sign):
            self.sign = sign

        def embedding_tables(self):
            return self.sign * held, np.eye(data.n_items)

    oracle = bench.unbiased_validation_dcg(Tables(1.0), data)
    n = np.bincount(data.val_users)[np.unique(data.val_users)]
    d = np.r_[1.0, 1.0 / np.log2(np.arange(2, 6))]
    assert oracle == pytest.approx(np.mean([d[:min(5, m)].sum() / m for m in n]))  # every positive on top
    assert bench.unbiased_validation_dcg(Tables(-1.0), data) < 0.5 * oracle


def test_authors_redraw_gives_each_run_its_own_split_and_pairs(bench, tmp_path, capsys):
    write_fake_coat(tmp_path / "coat")
    figures = {}
    for flags in ([], ["--authors-redraw"]):
        assert bench.main(["--protocol", "authors", "--data-dir", str(tmp_path), "--quick", "--seeds", "2",
                           "--max-iters", "20", "--methods", "bpr", "--json", "--no-write"] + flags) == 0
        out = last_json(capsys)
        figures[bool(flags)] = out["methods"]["bpr"]
        assert out["config"]["authors_redraw"] is bool(flags)
    # run 0 is the same in both (the base draw), run 1 trains on another split and other pairs
    assert figures[True]["ours/dcg@5"] != figures[False]["ours/dcg@5"]
    one = bench.AuthorsData("coat", str(tmp_path), seed=1)
    two = bench.AuthorsData("coat", str(tmp_path), seed=2)
    assert (one.in_val != two.in_val).any() and one.is_pos.sum() == two.is_pos.sum()


def test_ours_protocol_beta_off_is_the_unclamped_estimator(bench, tmp_path, capsys):
    write_fake_yahoo(tmp_path / "yahoo-r3")
    assert bench.main(["--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--quick", "--seeds", "1", "--epochs", "1",
                       "--methods", "ubpr", "--beta", "off", "--json", "--no-write"]) == 0
    config = last_json(capsys)["config"]
    assert config["beta"] is None and config["clip"] == 0.1  # the flags' defaults of this protocol otherwise
