"""The estimator front: fit / recommend / new user / evaluate / save / load."""

from __future__ import annotations

import numpy as np
import pytest

from recsampling.data.interactions import Interactions
from recsampling.recommender import Recommender
from tests.test_samplers import checkerboard


def _raw_train() -> Interactions:
    base = checkerboard()
    return Interactions.from_arrays([f"u{u}" for u in base.user_index()], base.item_index() + 1000)


def _fit(**kw) -> Recommender:
    kw = {"model_params": {"factors": 8}, "epochs": 15, "lr": 0.05, "batch_size": 32, "random_state": 0,
          "device": "cpu", **kw}
    return Recommender(**kw).fit(_raw_train())


def test_constructor_stores_arguments_untouched_and_fit_returns_self():
    mp = {"factors": 8}
    rec = Recommender(model_params=mp, lr=0.05)
    assert rec.model_params is mp and rec.lr == 0.05 and not hasattr(rec, "model_")
    with pytest.raises(ValueError, match="not fitted"):
        rec.recommend([0])
    assert rec.fit(checkerboard()) is rec
    assert hasattr(rec, "model_") and hasattr(rec, "history_") and rec.train_.nnz == checkerboard().nnz


def test_recommend_excludes_seen_and_stays_in_the_users_group():
    rec = _fit()
    train = rec.train_
    ids, scores = rec.recommend(np.arange(10), k=5)
    assert ids.shape == scores.shape == (10, 5)
    seen = train.matrix.toarray() > 0
    assert not seen[np.arange(10)[:, None], ids].any()
    assert np.all(np.diff(scores, axis=1) <= 0)
    # checkerboard: user u's group is u % 2 (raw ids sort as strings, so use the index map)
    group_u = np.array([int(str(x)[1:]) % 2 for x in train.user_ids[:10]])
    group_i = (train.item_ids[ids] - 1000) % 2
    assert (group_i == group_u[:, None]).mean() >= 0.8
    with_seen, _ = rec.recommend(np.arange(10), k=5, exclude_seen=False)
    assert seen[np.arange(10)[:, None], with_seen].mean() > 0.5


def test_recommend_with_raw_ids_and_padding():
    rec = _fit(epochs=2)
    ids, _ = rec.recommend(["u3", "u0"], k=3, raw_ids=True)
    assert ids.shape == (2, 3) and all(x in set(rec.train_.item_ids) for x in ids.ravel())
    ids_all, _ = rec.recommend(["u3"], k=40, raw_ids=True)  # fewer candidates than k
    assert ids_all[0, -1] is None
    with pytest.raises(ValueError, match="unknown user id"):
        rec.recommend(["nobody"], raw_ids=True)
    with pytest.raises(ValueError, match=r"unknown user id 3 \(int\d+\); this model's user ids look like 'u\d+' \(str\)"):
        rec.recommend([3], raw_ids=True)  # raw ids match by value and type: the message shows which


def test_recommend_new_user_folds_in_without_retraining():
    rec = _fit()
    before = rec.model_.embedding_tables()[1].copy()
    liked = [1000, 1002, 1004, 1006]  # group 0 items
    ids, scores = rec.recommend_new_user(liked, k=5, raw_ids=True)
    assert ids.shape == (5,) and not set(ids) & set(liked)
    assert np.mean([(x - 1000) % 2 == 0 for x in ids]) >= 0.8
    np.testing.assert_array_equal(before, rec.model_.embedding_tables()[1])
    with pytest.raises(ValueError, match="at least one item"):
        rec.recommend_new_user([], k=3)


def test_evaluate_gives_metrics():
    train = checkerboard()
    rng = np.random.default_rng(0)
    mask = rng.random(train.nnz) < 0.8
    tr, te = train.subset(mask), train.subset(~mask)
    rec = Recommender(model_params={"factors": 8}, epochs=15, lr=0.05, batch_size=32, random_state=0,
                      device="cpu").fit(tr)
    res = rec.evaluate(te, ks=(5,)).to_dict()
    assert res["recall@5"] > 0.2 and 0 < res["ndcg@5"] <= 1


@pytest.mark.parametrize("model", ["mf", "twotower"])
def test_save_load_round_trip(tmp_path, model):
    rec = _fit(model=model, epochs=3, sampler="popularity", sampler_params={"alpha": 0.5})
    rec.save(tmp_path / "rec")
    back = Recommender.load(tmp_path / "rec")
    assert back.get_params()["sampler_params"] == {"alpha": 0.5}
    assert back.sampler_.alpha == 0.5
    a, sa = rec.recommend(["u1", "u2"], k=4, raw_ids=True)
    b, sb = back.recommend(["u1", "u2"], k=4, raw_ids=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)
    assert back.history_.losses == rec.history_.losses
    with pytest.raises(ValueError, match="not a saved Recommender"):
        Recommender.load(tmp_path / "nothing")


def test_same_seed_same_recommendations():
    a = _fit(epochs=3).recommend(k=5)[0]
    b = _fit(epochs=3).recommend(k=5)[0]
    np.testing.assert_array_equal(a, b)


def test_bad_parameters_are_reported():
    with pytest.raises(ValueError, match="unknown model"):
        Recommender(model="svd").fit(checkerboard())
    with pytest.raises(ValueError, match="unknown sampler"):
        Recommender(sampler="nope").fit(checkerboard())
    with pytest.raises(ValueError, match="bad parameters for sampler"):
        Recommender(sampler_params={"bogus": 1}).fit(checkerboard())
