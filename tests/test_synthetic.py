"""The synthetic world: determinism, the truth arrays, and that the draws follow the stated model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recsampling.data import Interactions
from recsampling.data.synthetic import LoggedLists, SyntheticWorld, make_world


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return make_world(random_state=0)


@pytest.fixture(scope="module")
def noisy() -> SyntheticWorld:
    return make_world(400, 600, 30_000, label_noise=0.3, n_logged_lists=0, random_state=3)


def _pairs(x: Interactions) -> set:
    return set(zip(x.user_index().tolist(), x.item_index().tolist()))


def _gini(counts: np.ndarray) -> float:
    c = np.sort(counts).astype(np.float64)
    n = c.size
    return float(1 - 2 * np.sum(np.cumsum(c) / c.sum()) / n + 1 / n)


# ---------------------------------------------------------------------------- determinism
def test_same_seed_same_world_other_seed_other_world():
    a = make_world(200, 300, 8_000, n_logged_lists=500, random_state=7)
    b = make_world(200, 300, 8_000, n_logged_lists=500, random_state=np.random.default_rng(7))
    c = make_world(200, 300, 8_000, n_logged_lists=500, random_state=8)
    for name in ("relevance", "exposure", "item_popularity", "unbiased_test_items", "unbiased_test_labels",
                 "user_features", "item_features"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.clicks.matrix != b.clicks.matrix).nnz == 0
    np.testing.assert_array_equal(a.clicks.timestamps, b.clicks.timestamps)
    np.testing.assert_array_equal(a.logs.items, b.logs.items)
    np.testing.assert_array_equal(a.logs.clicks, b.logs.clicks)
    assert not np.array_equal(a.relevance, c.relevance)
    assert (a.clicks.matrix != c.clicks.matrix).nnz > 0


def test_parts_are_coupled_across_parameters():
    """Changing the noise rate or position bias changes only that part of the world."""
    w0 = make_world(300, 400, 12_000, n_logged_lists=2_000, random_state=1)
    w1 = make_world(300, 400, 12_000, n_logged_lists=2_000, label_noise=0.2, position_eta=2.0, random_state=1)
    w2 = make_world(300, 400, 12_000, n_logged_lists=2_000, label_noise=0.4, random_state=1)
    np.testing.assert_array_equal(w0.relevance, w1.relevance)
    assert _pairs(w0.true_positives) == _pairs(w1.true_positives) == _pairs(w2.true_positives)
    assert _pairs(w1.hidden_positives) <= _pairs(w2.hidden_positives)  # nested as the rate grows
    np.testing.assert_array_equal(w0.logs.items, w1.logs.items)
    assert (w1.logs.examined <= w0.logs.examined).all()  # stronger bias examines a subset
    np.testing.assert_array_equal(w0.unbiased_test_labels, w2.unbiased_test_labels)


# ---------------------------------------------------------------------------- truth arrays
def test_truth_arrays_have_the_documented_shapes_and_ranges(world):
    U, I = 943, 1682
    assert world.shape == (U, I) and world.clicks.shape == (U, I)
    for name in ("relevance", "exposure"):
        arr = getattr(world, name)
        assert arr.shape == (U, I) and arr.dtype == np.float32, name
        assert arr.min() > 0 and arr.max() <= 1, name
    assert world.exposure.max() == 1.0  # the most popular items are always exposed
    assert world.item_popularity.shape == (I,) and world.item_popularity.max() == 1.0
    assert world.item_propensity.shape == (I,)
    np.testing.assert_allclose(world.item_propensity, world.exposure.mean(0), rtol=1e-5)
    assert world.user_noise_rate.shape == (U,) and world.item_noise_rate.shape == (I,)
    assert world.user_features.shape == (U, 16) and world.item_features.shape == (I, 16)
    assert world.user_features.dtype == np.float32
    assert world.clicks.user_features is world.user_features
    assert world.clicks.item_features is world.item_features
    assert world.unbiased_test_items.shape == (U, 16) and world.unbiased_test_items.dtype == np.int64
    assert world.unbiased_test_labels.shape == (U, 16)
    assert world.logs.items.shape == (20 * U, 10) and world.logs.users.shape == (20 * U,)
    assert world.position_propensity.shape == (10,)
    assert world.clicks.ratings is None
    assert world.hidden_positives.nnz == 0 and world.user_noise_rate.max() == 0
    with pytest.raises(ValueError):
        world.relevance[0, 0] = 0.5  # read-only truth


def test_relevance_mean_and_click_count_hit_their_targets(world):
    assert world.relevance.mean() == pytest.approx(0.2, abs=0.01)
    p = world.exposure.astype(np.float64) * world.relevance
    assert p.sum() == pytest.approx(100_000, rel=0.01)
    # observed count = a sum of independent Bernoulli(exposure*relevance): within 4 standard deviations
    sd = np.sqrt((p * (1 - p)).sum())
    assert abs(world.clicks.nnz - p.sum()) < 4 * sd
    # and per item, clicks follow exposure*relevance (correlation of counts with expectations)
    assert np.corrcoef(world.clicks.item_counts(), p.sum(0))[0, 1] > 0.98


def test_popularity_is_long_tailed_and_exposure_is_mnar(world):
    counts = world.clicks.item_counts()
    top = np.sort(counts)[::-1][: len(counts) // 5].sum() / counts.sum()
    assert top > 0.5
    assert _gini(counts) > 0.5
    # the MNAR strength drives the tail: no popularity effect gives a much flatter click distribution
    flat = make_world(400, 600, 30_000, exposure_eta=0.0, n_logged_lists=0, random_state=0)
    assert _gini(flat.clicks.item_counts()) < 0.35
    assert np.ptp(flat.exposure, axis=1).max() < 1e-6  # exposure does not depend on the item
    # exposure increases with popularity (for a given user)
    rho = stats.spearmanr(world.item_popularity, world.exposure[0])[0]
    assert rho > 0.99


def test_clicks_carry_their_true_propensities_and_timestamps(world):
    c = world.clicks
    np.testing.assert_array_equal(c.propensities, world.exposure[c.user_index(), c.item_index()])
    assert c.timestamps is not None and c.timestamps.dtype.kind == "i"
    assert c.timestamps.min() >= 874_724_710 and c.timestamps.max() <= 893_286_638
    assert len(np.unique(c.timestamps)) > 0.9 * c.nnz
    assert make_world(100, 200, 3_000, timestamps=False, n_logged_lists=0).clicks.timestamps is None


def test_features_carry_the_latent_factors(world):
    """A linear map of the user features recovers most of the latent user factors."""
    X = np.hstack([world.user_features, np.ones((world.n_users, 1), np.float32)])
    coef, *_ = np.linalg.lstsq(X, world.user_factors, rcond=None)
    resid = world.user_factors - X @ coef
    r2 = 1 - resid.var(0) / world.user_factors.var(0)
    assert r2.mean() > 0.5


def test_clicks_follow_exposure_times_relevance_per_item_and_per_user(world):
    """The thinned draw is exact: per-item and per-user counts have the Bernoulli-sum spread."""
    p = world.click_probability().astype(np.float64)
    counts = world.true_positives.matrix
    for axis in (0, 1):
        mean, var = p.sum(axis), (p * (1 - p)).sum(axis)
        got = np.asarray(counts.sum(axis=axis)).ravel()
        ok = mean >= 20
        z = (got[ok] - mean[ok]) / np.sqrt(var[ok])
        assert 0.85 < np.mean(z ** 2) < 1.15, axis  # chi-square per degree of freedom
        assert np.abs(z).max() < 5, axis


def test_truth_on_demand_equals_the_dense_arrays(world):
    rng = np.random.default_rng(0)
    u = rng.integers(0, world.n_users, 500)
    i = rng.integers(0, world.n_items, 500)
    np.testing.assert_array_equal(world.relevance_of(u, i), world.relevance[u, i])
    np.testing.assert_array_equal(world.exposure_of(u, i), world.exposure[u, i])
    rows = np.array([5, 0, 942])
    np.testing.assert_array_equal(world.relevance_of(rows), world.relevance[rows])
    np.testing.assert_array_equal(world.exposure_of(rows), world.exposure[rows])
    block = world.relevance_of(rows[:, None], world.unbiased_test_items[rows])  # broadcast
    assert block.shape == (3, 16) and block.dtype == np.float32
    np.testing.assert_array_equal(world.test_relevance()[rows], block)
    np.testing.assert_allclose(world.expected_clicks(), world.click_probability().sum(dtype=np.float64), rtol=1e-6)
    with pytest.raises(ValueError, match="users must be indices"):
        world.relevance_of([943], [0])
    with pytest.raises(ValueError, match="integer"):
        world.exposure_of([0.5], [0])
    with pytest.raises(ValueError, match="broadcast"):
        world.relevance_of([0, 1], [0, 1, 2])


def test_clicks_do_not_depend_on_the_block_size(monkeypatch):
    from recsampling.data import synthetic

    a = make_world(300, 200, 6_000, n_logged_lists=0, random_state=4)
    monkeypatch.setattr(synthetic, "_BLOCK_USERS", 7)
    monkeypatch.setattr(synthetic, "_CLICK_CAP", 3)  # nearly every user overflows its slots: drawn again
    b = make_world(300, 200, 6_000, n_logged_lists=0, random_state=4)
    assert (a.clicks.matrix != b.clicks.matrix).nnz == 0
    np.testing.assert_array_equal(a.clicks.propensities, b.clicks.propensities)


def test_a_world_above_the_dense_bound_builds_and_evaluates_without_dense_arrays(monkeypatch):
    from recsampling.data import synthetic
    from recsampling.evaluation import evaluate

    small = make_world(150, 120, 3_000, n_logged_lists=300, random_state=6)
    dense = small.relevance  # built while the bound allows it
    monkeypatch.setattr(synthetic, "DENSE_MAX_PAIRS", 150 * 120 - 1)
    big = make_world(150, 120, 3_000, n_logged_lists=300, random_state=6)  # the same world, "too large"
    assert (big.clicks.matrix != small.clicks.matrix).nnz == 0
    for name in ("relevance", "exposure"):
        with pytest.raises(ValueError, match="relevance_of"):
            getattr(big, name)
    with pytest.raises(ValueError, match="DENSE_MAX_PAIRS"):
        big.noise_rate()
    # evaluation takes the world itself and computes the truth per chunk of users
    rng = np.random.default_rng(0)
    tables = (rng.standard_normal((150, 8)), rng.standard_normal((120, 8)))
    kw = dict(ks=(5,), metrics=["true_ndcg", "true_recall"], device="cpu")
    full = evaluate(tables, big.unbiased_test, train=big.clicks, relevance=big, **kw).to_dict()
    ref = evaluate(tables, small.unbiased_test, train=small.clicks, relevance=dense, **kw).to_dict()
    items = dict(protocol="test_items", test_items=big.unbiased_test_items)
    mar = evaluate(tables, big.unbiased_test, relevance=big, **items, **kw).to_dict()
    mar_ref = evaluate(tables, small.unbiased_test, relevance=dense, **items, **kw).to_dict()
    for key in ("true_ndcg@5", "true_recall@5"):
        assert full[key] == pytest.approx(ref[key], rel=1e-9) and 0 < full[key] < 1
        assert mar[key] == pytest.approx(mar_ref[key], rel=1e-9)


@pytest.mark.slow
def test_an_ml20m_shaped_world_stays_far_below_its_dense_size():
    """138,493 x 26,744 pairs (a dense float32 array: 14.8 GB) with few clicks builds in small memory."""
    import subprocess
    import sys

    # a small world first compiles every numba kernel (LLVM's memory is not the world's: on a fresh
    # clone without numba's cache it alone reaches ~1.4 GiB); then the peak is reset (Linux
    # clear_refs) and measured over the big build only, interpreter and torch included
    code = ("from recsampling.data.synthetic import make_world; "
            "make_world(300, 200, 3000, n_logged_lists=200, random_state=1); "
            "open('/proc/self/clear_refs', 'w').write('5'); "
            "w = make_world(138_493, 26_744, 200_000, n_logged_lists=20_000, random_state=0); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(w.true_positives.nnz, hwm)")
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure the build's own peak memory")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    nnz, peak_kib = map(int, out.stdout.split())
    assert abs(nnz - 200_000) < 5 * np.sqrt(200_000) + 0.02 * 200_000
    assert peak_kib < 2**20  # under 1 GiB


# ---------------------------------------------------------------------------- label noise
def test_label_noise_hides_the_asked_fraction_of_true_positives(noisy):
    tp, clicks, hidden = _pairs(noisy.true_positives), _pairs(noisy.clicks), _pairs(noisy.hidden_positives)
    assert clicks <= tp and hidden <= tp
    assert not clicks & hidden and clicks | hidden == tp
    n = noisy.true_positives.nnz
    frac = noisy.hidden_positives.nnz / n
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    np.testing.assert_array_equal(
        noisy.hidden_positives.propensities,
        noisy.exposure[noisy.hidden_positives.user_index(), noisy.hidden_positives.item_index()])
    q = noisy.noise_rate()
    assert q.shape == noisy.shape and q.min() >= 0 and q.max() <= 1


def test_noise_rates_vary_and_match_what_was_hidden(noisy):
    assert noisy.item_noise_rate.std() > 0.05 and noisy.user_noise_rate.std() > 0.05
    tp = noisy.true_positives.item_counts()
    hid = noisy.hidden_positives.item_counts()
    ok = tp >= 30
    rho = stats.spearmanr(hid[ok] / tp[ok], noisy.item_noise_rate[ok])[0]
    assert rho > 0.8
    # the stated per-item rate is the expected hidden fraction: totals agree
    assert (noisy.item_noise_rate * tp).sum() == pytest.approx(hid.sum(), rel=0.05)
    even = make_world(400, 600, 30_000, label_noise=0.3, noise_heterogeneity=0.0, n_logged_lists=0, random_state=3)
    np.testing.assert_allclose(even.item_noise_rate, 0.3, atol=1e-5)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _inter_digest(x: Interactions) -> str:
    m = x.matrix.tocsr()
    return _digest(m.indptr.astype(np.int64), m.indices.astype(np.int64), x.propensities, x.timestamps)


@pytest.mark.parametrize("name, kw, expected", [
    ("clean", {}, ("caa0ae9de2ccee98", "d77044adce071ce6", "28aae08d190c234f", "0a9e0f5cc718fd4e")),
    ("clicks", dict(label_noise=0.3), ("0e03ad1e12c65843", "d9732dc609a2f139", "28aae08d190c234f", "0a9e0f5cc718fd4e")),
    ("linear", dict(label_noise=0.1, logging_ranker="linear"),
     ("8a614b54ac27b3e2", "5344f82aa2858a91", "28aae08d190c234f", "73af1e55eab7c995")),
])
def test_worlds_of_the_other_noise_models_are_those_drawn_before_the_liked_model(name, kw, expected):
    """Adding label_noise_model="liked" left every other world of a seed as it was: digests of the clicks, the
    hidden pairs, the randomized test and the logged lists, recorded with the code before the change."""
    w = make_world(120, 150, 3000, random_state=5, **kw)
    got = (_inter_digest(w.clicks), _inter_digest(w.hidden_positives),
           _digest(w.unbiased_test_items, w.unbiased_test_labels),
           _digest(w.logs.users, w.logs.items, w.logs.clicks, w.logs.relevance))
    assert got == expected


def test_liked_label_noise_hides_a_nested_share_of_a_fixed_truth():
    """label_noise_model="liked": the truth (clicks + liked-but-unexposed pairs) is the same at every rho; rho of it
    is hidden, nested across rho, on rarely exposed pairs; the rest of the world is that of the clicks model."""
    kw = dict(n_logged_lists=0, label_noise_model="liked", random_state=2)
    worlds = {r: make_world(200, 300, 4_000, label_noise=r, **kw) for r in (0.0, 0.2, 0.4)}
    base = make_world(200, 300, 4_000, n_logged_lists=0, random_state=2)  # the clicks model, no noise
    truth = _pairs(worlds[0.0].true_positives)
    assert _pairs(base.clicks) < truth  # the clicks plus the liked-but-unexposed pairs
    extra = truth - _pairs(base.clicks)
    assert len(extra) == pytest.approx(base.clicks.nnz, rel=0.1)  # liked_unexposed=1.0: as many as the clicks
    eu, ei = np.array(sorted(extra)).T
    assert base.relevance[eu, ei].mean() > 1.5 * base.relevance.mean()  # liked items ...
    assert base.exposure[eu, ei].mean() < 0.5 * base.exposure[base.clicks.user_index(), base.clicks.item_index()].mean()
    hidden = {}
    for r, w in worlds.items():
        t, c, h = _pairs(w.true_positives), _pairs(w.clicks), _pairs(w.hidden_positives)
        assert t == truth and not c & h and c | h == truth
        n = len(truth)
        assert abs(len(h) / n - r) < 4 * np.sqrt(max(r * (1 - r), 1e-12) / n) + 1e-12  # hidden share ~ rho
        hidden[r] = h
        np.testing.assert_array_equal(w.unbiased_test_labels, base.unbiased_test_labels)
        np.testing.assert_array_equal(w.relevance, base.relevance)
    assert not hidden[0.0] and hidden[0.2] <= hidden[0.4]  # nested: the comparison across rho is paired
    w = worlds[0.4]
    q = w.noise_rate()
    tu, ti = w.true_positives.user_index(), w.true_positives.item_index()
    assert q[tu, ti].mean() == pytest.approx(0.4, rel=1e-3)
    # concentrated where a uniform sampler draws: the hidden pairs are on rarely exposed, unpopular items
    hu, hi = w.hidden_positives.user_index(), w.hidden_positives.item_index()
    cu, ci = w.clicks.user_index(), w.clicks.item_index()
    assert w.exposure[hu, hi].mean() < 0.6 * w.exposure[cu, ci].mean()
    # the flip rates: the expected hidden share of each item's truth
    assert (w.item_noise_rate * w.true_positives.item_counts()).sum() == pytest.approx(len(hidden[0.4]), rel=0.05)
    assert w.label_noise_model == "liked" and w.params["liked_unexposed"] == 1.0
    # liked_unexposed=0: the truth is the clicks of the clicks model
    w0 = make_world(200, 300, 4_000, label_noise=0.2, liked_unexposed=0, **kw)
    assert _pairs(w0.true_positives) == _pairs(base.clicks)


def test_liked_label_noise_validates_its_arguments():
    with pytest.raises(ValueError, match="label_noise_model"):
        make_world(50, 60, 300, label_noise=0.1, label_noise_model="unvoted")  # replaced by "liked"
    with pytest.raises(ValueError, match="DENSE_MAX_PAIRS"):
        make_world(20_000, 10_000, 1_000, label_noise=0.1, label_noise_model="liked")
    with pytest.raises(ValueError, match="liked_unexposed is a parameter"):
        make_world(50, 60, 300, liked_unexposed=0.5)
    for bad in (-0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="liked_unexposed"):
            make_world(50, 60, 300, label_noise_model="liked", liked_unexposed=bad)
    with pytest.raises(ValueError, match="more liked-but-unexposed pairs than the world has"):
        make_world(50, 60, 300, label_noise_model="liked", liked_unexposed=50.0)
    with pytest.raises(ValueError, match="cannot be reached"):  # fully exposed pairs are never hidden
        # here about 44% of the clicks are fully exposed
        make_world(50, 60, 500, label_noise=0.8, label_noise_model="liked", liked_unexposed=0.0, relevance_rate=0.5)


# ---------------------------------------------------------------------------- logged lists
@pytest.mark.parametrize("eta", [0.5, 1.0, 2.0])
def test_logged_clicks_follow_position_propensity_times_relevance(eta):
    w = make_world(300, 500, 15_000, n_logged_lists=30_000, position_eta=eta, n_test_items=0, random_state=2)
    logs = w.logs
    assert isinstance(logs, LoggedLists)
    theta = (1.0 / np.arange(1, 11)) ** eta
    np.testing.assert_allclose(logs.position_propensity, theta, rtol=1e-6)
    np.testing.assert_array_equal(logs.clicks, logs.examined & logs.relevant)
    np.testing.assert_array_equal(logs.relevance, w.relevance[logs.users[:, None], logs.items])
    # E[click_k] = theta_k * E[relevance at k]
    expected = theta * logs.relevance.mean(0)
    observed = logs.clicks.mean(0)
    sd = np.sqrt(expected * (1 - expected) / logs.n_lists)
    assert (np.abs(observed - expected) < 4 * sd + 1e-9).all()
    # lists hold distinct items, ranked by a noisy but informative logging ranker
    s = np.sort(logs.items, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all()
    assert np.all(np.diff(logs.relevance.mean(0)) < 0)
    assert (np.diff(logs.relevance, axis=1) > 0).any()  # noisy: not sorted by the truth
    df = logs.to_dataframe()
    assert len(df) == logs.n_lists * 10 and set(df["position"]) == set(range(1, 11))


def test_linear_logging_ranker_is_a_weak_feature_ranker_that_improves_with_labels():
    kw = dict(n_users=300, n_items=500, target_interactions=15_000, n_logged_lists=20_000, n_test_items=0,
              feature_noise=0.0, random_state=4)
    truth = make_world(**kw)
    few = make_world(**kw, logging_ranker="linear", logging_labels=300)
    many = make_world(**kw, logging_ranker="linear", logging_labels=30_000)
    # the rest of the world is the same; only the logs change
    assert _pairs(few.clicks) == _pairs(truth.clicks)
    np.testing.assert_array_equal(few.relevance, truth.relevance)
    assert few.describe()["logged_lists"] == 20_000
    for w in (few, many):
        logs = w.logs
        np.testing.assert_array_equal(logs.clicks, logs.examined & logs.relevant)
        np.testing.assert_array_equal(logs.relevance, w.relevance[logs.users[:, None], logs.items])
        top = logs.relevance.mean(0)
        assert top[0] > top[-1]  # informative: better items at the top on average
    # more labels, a better ranker; the true relevance orders best of all
    top1 = [w.logs.relevance[:, 0].mean() for w in (few, many, truth)]
    assert top1[0] < top1[1] < top1[2]
    assert few.params["logging_ranker"] == "linear" and few.params["logging_labels"] == 300


def test_linear_logging_ranker_needs_features_and_known_names():
    with pytest.raises(ValueError, match="logging_ranker"):
        make_world(50, 60, 100, logging_ranker="svm")
    with pytest.raises(ValueError, match="side features"):
        make_world(50, 60, 100, logging_ranker="linear", n_item_features=0)
    with pytest.raises(ValueError, match="logging_labels"):
        make_world(50, 60, 100, logging_ranker="linear", logging_labels=0)


# ---------------------------------------------------------------------------- unbiased test set
def test_unbiased_test_items_are_uniform_and_labelled_by_relevance(world):
    items = world.unbiased_test_items
    s = np.sort(items, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all()  # distinct per user
    counts = np.bincount(items.ravel(), minlength=world.n_items)
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue > 1e-3
    # uniform, so unrelated to popularity (unlike the clicks)
    assert abs(stats.spearmanr(counts, world.item_popularity)[0]) < 0.1
    rel = world.test_relevance()
    n = rel.size
    assert abs(world.unbiased_test_labels.mean() - rel.mean()) < 4 * np.sqrt(rel.mean() / n)
    # the positives Interactions are exactly the labelled-1 test pairs
    pu, pk = np.nonzero(world.unbiased_test_labels)
    assert _pairs(world.unbiased_test) == set(zip(pu.tolist(), items[pu, pk].tolist()))
    assert (world.unbiased_test.propensities == 1).all()


# ---------------------------------------------------------------------------- export
@pytest.mark.parametrize("fmt,name,sep", [("100k", "u.data", "\t"), ("1m", "ratings.dat", "::")])
def test_to_movielens_round_trips_through_pandas(tmp_path, fmt, name, sep):
    w = make_world(120, 200, 4_000, n_logged_lists=0, random_state=5)
    out = w.to_movielens(tmp_path / fmt, fmt=fmt)
    assert out.name == name
    df = pd.read_csv(out, sep=sep, header=None, names=["user", "item", "rating", "timestamp"], engine="python")
    assert len(df) == w.clicks.nnz
    assert (df["rating"] == 5).all() and df["user"].min() >= 1 and df["item"].min() >= 1
    back = Interactions.from_indices(df["user"] - 1, df["item"] - 1, w.shape, timestamps=df["timestamp"])
    assert (back.matrix != w.clicks.matrix).nnz == 0
    np.testing.assert_array_equal(back.timestamps, w.clicks.timestamps)


@pytest.mark.parametrize("fmt", ["100k", "1m"])
def test_to_movielens_loads_with_the_readers_when_present(tmp_path, fmt):
    from recsampling.data.readers import read_movielens as reader

    w = make_world(120, 200, 4_000, n_logged_lists=0, random_state=5)
    w.to_movielens(tmp_path / "ml", fmt=fmt)
    back = reader(tmp_path / "ml")
    df = back.to_dataframe()
    got = set(zip(df["user_id"].astype(int) - 1, df["item_id"].astype(int) - 1))
    assert got == _pairs(w.clicks)


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="target_interactions"):
        make_world(50, 60, 10_000)  # more clicks than relevant pairs
    with pytest.raises(ValueError, match="label_noise"):
        make_world(50, 60, 100, label_noise=1.0)
    with pytest.raises(ValueError, match="n_test_items"):
        make_world(50, 60, 100, n_test_items=61)
    with pytest.raises(ValueError, match="log_candidates"):
        make_world(50, 60, 100, list_length=10, log_candidates=5)
    with pytest.raises(ValueError, match="fmt"):
        make_world(50, 60, 100, n_logged_lists=0).to_movielens("/tmp/never", fmt="20m")


def test_the_config_holds_every_argument_and_params_records_them_checked():
    """make_world's arguments (but the seed) are the fields of its config, in order; params holds them checked."""
    import inspect
    from dataclasses import fields

    from recsampling.data.synthetic import _WorldConfig

    args = list(inspect.signature(make_world).parameters)
    assert [f.name for f in fields(_WorldConfig)] == args[:-1] and args[-1] == "random_state"
    w = make_world(np.int64(40), 50, 200, relevance_rate=np.float32(0.25), n_logged_lists=None, n_test_items=0,
                   random_state=np.random.default_rng(0))
    p = w.params
    assert type(p["n_users"]) is int and type(p["relevance_rate"]) is float and p["target_interactions"] == 200
    assert p["n_logged_lists"] == 20 * 40 and p["log_candidates"] == 50 and p["random_state"] == "Generator"
    assert set(p) == set(args) - {"liked_unexposed"} | {"relevance_offset", "exposure_scale", "noise_scale"}


@pytest.mark.slow
def test_movielens_1m_sized_world_builds_with_its_statistics():
    w = make_world(6040, 3706, 1_000_209, random_state=0)
    p_sum = float(np.sum(w.exposure.astype(np.float64) * w.relevance))
    assert p_sum == pytest.approx(1_000_209, rel=0.02)
    assert abs(w.true_positives.nnz - p_sum) < 5 * np.sqrt(p_sum)
    assert _gini(w.clicks.item_counts()) > 0.5
    assert w.logs.items.shape == (20 * 6040, 10) and w.unbiased_test_items.shape == (6040, 16)
