"""recsampling.bench.noise: the label-noise task, the mislabel pairs and the figures over them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recsampling.bench import noise as bn
from recsampling.models import make_model

SMALL = dict(n_users=60, n_items=80, interactions=900)
QUICK = dict(n_users=150, n_items=200, interactions=2500)  # "liked" needs enough unexposed likes


def _pairs(x):
    return set(zip(x.user_index().tolist(), x.item_index().tolist()))


@pytest.fixture(scope="module")
def clicks_task():
    return bn.label_noise_task(0.3, 0, noise_model="clicks", **SMALL)


@pytest.fixture(scope="module")
def liked_task():
    return bn.label_noise_task(0.3, 0, noise_model="liked", **QUICK)


def test_clicks_task_tests_on_every_true_positive_outside_train(clicks_task):
    task, world, held_out = clicks_task
    truth, train = _pairs(world.true_positives), _pairs(task.train)
    assert train <= _pairs(world.clicks) and train <= truth
    assert _pairs(task.test) == truth - train
    hidden = _pairs(world.hidden_positives)
    assert _pairs(held_out) == _pairs(task.test) - hidden and hidden & _pairs(task.test)
    assert task.valid is None and task.ks == (10,)


def test_liked_task_excludes_the_hidden_training_pairs_from_the_ranking(liked_task):
    task, world, held_out = liked_task
    assert _pairs(task.test) == _pairs(held_out)
    truth = _pairs(world.true_positives)
    # the 80% part = train + the pairs hidden from it; they and the held-out 20% make the truth
    assert _pairs(task.train) | _pairs(task.valid) | _pairs(held_out) == truth
    assert not _pairs(task.train) & _pairs(task.valid)


def test_the_same_seed_gives_the_same_task_and_bad_arguments_are_named():
    a, _, _ = bn.label_noise_task(0.2, 3, **QUICK)
    b, _, _ = bn.label_noise_task(0.2, 3, **QUICK)
    assert _pairs(a.train) == _pairs(b.train) and _pairs(a.test) == _pairs(b.test)
    with pytest.raises(ValueError, match="noise_model"):
        bn.label_noise_task(0.2, 0, noise_model="votes", **SMALL)
    with pytest.raises(ValueError, match="exposure"):
        bn.label_noise_task(0.2, 0, exposure="some", **SMALL)


def test_full_exposure_world_exposes_every_pair():
    _, world, _ = bn.label_noise_task(0.2, 0, noise_model="clicks", exposure="full", **SMALL)
    assert world.exposure.min() > 0.95


def test_mislabel_pairs_are_the_unvoted_pairs_minus_the_held_out_ones(clicks_task):
    task, world, held_out = clicks_task
    u, i, mislabeled = bn.mislabel_pairs(task.train, held_out, world, 0)
    got = set(zip(u.tolist(), i.tolist()))
    n_users, n_items = task.train.shape
    every = {(a, b) for a in range(n_users) for b in range(n_items)}
    assert len(got) == u.size and got == every - _pairs(task.train) - _pairs(held_out)
    marked = set(zip(u[mislabeled].tolist(), i[mislabeled].tolist()))
    assert marked == _pairs(world.true_positives) & got


def test_mislabel_pairs_sample_users_beyond_the_cap(clicks_task, monkeypatch):
    task, world, held_out = clicks_task
    monkeypatch.setattr(bn, "AUC_MAX_PAIRS", 20 * task.train.n_items)
    u, _, _ = bn.mislabel_pairs(task.train, held_out, world, 0)
    assert np.unique(u).size == 20
    np.testing.assert_array_equal(u, np.sort(u))


def test_pair_scores_are_the_models_scores_in_chunks(clicks_task):
    train = clicks_task[0].train
    model = make_model("mf", train, factors=4, random_state=0)
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, train.n_users, 37), rng.integers(0, train.n_items, 37)
    with torch.no_grad():
        ref = np.array([float(model.score(torch.tensor([a]), torch.tensor([[b]]))[0, 0]) for a, b in zip(u, i)])
    np.testing.assert_allclose(bn.pair_scores(model, u, i, chunk=5), ref, rtol=1e-6)
    assert bn.pair_scores(model, u[:0], i[:0]).shape == (0,)


def test_miss_rates_weigh_exposure_and_noise_by_relevance():
    world = SimpleNamespace(relevance=np.array([[1.0, 0.0], [1.0, 2.0]]),
                            exposure=np.array([[1.0, 0.5], [0.5, 1.0]]),
                            noise_rate=lambda: np.array([[0.0, 0.0], [0.5, 0.5]]))
    items, users = bn.miss_rates(world)
    # pair misses: [[0, 0.5], [0.75, 0.5]]
    np.testing.assert_allclose(items, [0.375, 0.5])
    np.testing.assert_allclose(users, [0.0, (0.75 + 2 * 0.5) / 3])


def test_spearman_is_none_for_a_constant_and_rank_based_otherwise():
    assert bn.spearman(np.ones(5), np.arange(5.0)) is None
    assert bn.spearman(np.arange(5.0), np.exp(np.arange(5.0))) == pytest.approx(1.0)
    assert bn.spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)


def test_world_stats_count_the_hidden_positives_of_the_training_part(liked_task):
    task, world, held_out = liked_task
    pairs = bn.mislabel_pairs(task.train, held_out, world, 0)
    s = bn.world_stats(task.train, task.test, world, pairs)
    n_hidden = task.valid.nnz  # the hidden pairs of the training part
    unvoted = task.train.n_users * task.train.n_items - task.train.nnz
    assert s["hidden_positives"] == n_hidden and s["train_clicks"] == task.train.nnz
    assert s["hidden_fraction_of_true_positives"] == pytest.approx(n_hidden / (n_hidden + task.train.nnz))
    assert s["unvoted_hidden_share"] == pytest.approx(n_hidden / unvoted)
    assert s["unvoted_true_positive_share"] == pytest.approx((task.test.nnz + n_hidden) / unvoted)
    assert 0 < s["drawn_hidden_share"] < s["drawn_true_positive_share"] < 1
    assert 0 <= s["rarity_auc_mislabeled"] <= 1 and s["relevance_auc_mislabeled"] > 0.5


def test_world_stats_at_zero_noise_have_no_mislabel_auc():
    task, world, held_out = bn.label_noise_task(0.0, 0, noise_model="clicks", **SMALL)
    s = bn.world_stats(task.train, task.test, world, bn.mislabel_pairs(task.train, held_out, world, 0))
    assert s["hidden_positives"] == 0 and s["rarity_auc_mislabeled"] is None


class _OracleFlips:
    """A fitted flip model that knows the world's noise rates."""

    def __init__(self, world):
        self.world = world
        self.item_flip_rates_ = world.item_noise_rate
        self.user_flip_rates_ = world.user_noise_rate

    def flip_rates(self, users, items, pairs=True):
        return self.world.noise_rate()[users, items]


@pytest.mark.parametrize("model", ["clicks", "liked"])
def test_flip_figures_of_an_oracle_flip_model(model, clicks_task, liked_task):
    task, world, held_out = clicks_task if model == "clicks" else liked_task
    pairs = bn.mislabel_pairs(task.train, held_out, world, 0)
    out = bn.flip_figures(_OracleFlips(world), world, task.train, task.test, pairs)
    assert out["item_flip_spearman"] == pytest.approx(1.0) and out["user_flip_spearman"] == pytest.approx(1.0)
    assert out["mean_flip_rate"] == pytest.approx(world.item_noise_rate.mean())
    assert out["pair_flip_spearman"] == pytest.approx(1.0) and out["flip_auc_mislabeled"] > 0.5
    assert (out["item_flip_spearman_total_miss"] is None) == (model == "liked")
    assert set(out) >= {"pair_flip_spearman", "user_rarity_spearman", "item_flip_spearman_popularity"}


def test_flip_figures_of_a_sampler_without_flip_rates_are_empty(clicks_task):
    task, world, held_out = clicks_task
    assert bn.flip_figures(object(), world, task.train, task.test, ((), (), ())) == {}


def _run(ndcg, flip=None):
    r = {"ndcg@10": ndcg, "recall@10": ndcg / 2, "true_ndcg@10": ndcg * 3, "score_auc_mislabeled": 0.6}
    if flip is not None:
        r.update({f: flip for f in ("flip_auc_mislabeled", "item_flip_spearman", "user_flip_spearman",
                                    "item_flip_spearman_total_miss", "user_flip_spearman_total_miss",
                                    "pair_flip_spearman", "item_rarity_spearman", "user_rarity_spearman")})
    return r


def test_summarize_means_seeds_and_names_the_headline():
    raw = {"0.2": {"base": [_run(0.1), _run(0.3)], "flip": [_run(0.3, 0.7), _run(0.5, 0.9)]}}
    world_raw = {"0.2": [{"rarity_auc_mislabeled": 0.4, "drawn_hidden_share": 0.1},
                         {"rarity_auc_mislabeled": 0.6, "drawn_hidden_share": 0.3}]}
    block = bn.summarize(raw, world_raw, headline="flip", baselines=("base", "absent"))["0.2"]
    assert block["base"]["ndcg@10"] == pytest.approx(0.2) and block["base"]["ndcg@10_sem"] == pytest.approx(0.1)
    assert block["world"] == pytest.approx({"rarity_auc_mislabeled": 0.5, "drawn_hidden_share": 0.2})
    assert block["rarity_auc_mislabeled_sem"] == pytest.approx(0.1)
    assert block["score_auc_mislabeled_base"] == block["score_auc_mislabeled_flip"] == pytest.approx(0.6)
    assert block["flip_auc_mislabeled"] == pytest.approx(0.8) and block["flip_rank_correlation"] == pytest.approx(0.8)
    assert block["flip_vs_base_ndcg@10"] == pytest.approx(2.0) and "flip_vs_absent_ndcg@10" not in block
    lines = bn.table_lines({"0.2": block}, ["base", "flip"], headline="flip", baseline="base")
    assert len(lines) == 1 + 3 + 2 and "FLIP/BASE ndcg 2.0" in lines[-1]
    assert "0.2000±0.1000" in lines[1]


def test_summarize_without_the_headline_method_has_no_flip_keys():
    raw = {"0.0": {"base": [_run(0.1)]}}
    block = bn.summarize(raw, {"0.0": [{"rarity_auc_mislabeled": None}]}, headline="flip")["0.0"]
    assert "flip_auc_mislabeled" not in block and block["rarity_auc_mislabeled"] is None
    assert block["base"]["ndcg@10_sem"] == 0.0
    assert len(bn.table_lines({"0.0": block}, ["base"], headline="flip", baseline="base")) == 4
