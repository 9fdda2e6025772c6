"""recsampling.bench.dla: the DLA benchmark's worlds, logs, eq. (7)'s closed form, figures, summaries and tables."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from recsampling.bench.dla import (biased_logs, examination, headline, irw_closed_form, log_array, max_rel_error,
                                   position_figures, position_world, positions_text, rec_figures, rec_text,
                                   summarize_positions)
from recsampling.bench.report import mean_se_by


def test_irw_closed_form_recovers_the_propensities_of_expected_clicks():
    rng = np.random.default_rng(0)
    rel = rng.uniform(0.05, 0.95, (500, 10))
    theta = (1.0 / np.arange(1, 11)) ** 1.5
    clicks = theta * rel  # expected clicks: P(click) = theta_k * r_nk
    np.testing.assert_allclose(irw_closed_form(np.log(rel), clicks), theta / theta[0], rtol=1e-12)


def test_biased_logs_are_lists_of_distinct_items_with_position_biased_clicks():
    rng = np.random.default_rng(1)
    world = SimpleNamespace(relevance=rng.uniform(0.2, 0.8, (30, 80)))
    logs = biased_logs(world, n_lists=4000, eta=1.0, bias=2.0, seed=3)
    assert logs["items"].shape == logs["clicks"].shape == (4000, 10) and logs["users"].shape == (4000,)
    assert all(len(set(row)) == 10 for row in logs["items"][:50]) and logs["items"].max() < 80
    rate = logs["clicks"].mean(0)
    assert rate[0] > 2 * rate[4]  # (1/k)^eta: position 5 is seen a fifth as often
    again = biased_logs(world, n_lists=4000, eta=1.0, bias=2.0, seed=3)
    assert all(np.array_equal(logs[k], again[k]) for k in logs)  # seeded
    # the promotion moves the promoted items up: their share of the shown slots grows with the bias
    flat = biased_logs(world, n_lists=4000, eta=1.0, bias=0.0, seed=3)
    counts = np.bincount(logs["items"].ravel(), minlength=80)
    counts0 = np.bincount(flat["items"].ravel(), minlength=80)
    assert np.std(counts) > 1.5 * np.std(counts0)
    with pytest.raises(ValueError):
        biased_logs(world, n_lists=10, eta=1.0, bias=1.0, seed=0, n_cand=200)  # more candidates than items


class _Dot:
    """A model scoring ``U[u] . V[i]``: what the figures read of a fitted relevance model."""

    def __init__(self, U, V):
        self.U, self.V = np.asarray(U, np.float32), np.asarray(V, np.float32)

    def embedding_tables(self):
        return self.U, self.V

    def score(self, users, items):
        import torch

        u = torch.from_numpy(self.U)[users]  # items (B,) or (B, L), as EmbeddingModel.score
        return (u.unsqueeze(1) * torch.from_numpy(self.V)[items]).sum(-1) if items.dim() == 2 else (
            u * torch.from_numpy(self.V)[items]).sum(-1)


def test_examination_and_the_worst_relative_error_over_positions_2_to_10():
    theta = examination(2.0)
    np.testing.assert_allclose(theta, 1.0 / np.arange(1, 11) ** 2)
    curve = theta.copy()
    curve[3] *= 1.5  # position 4 off by 50%
    curve[0] = 7.0  # position 1 is not compared
    assert max_rel_error(curve, theta) == pytest.approx(0.5)
    np.testing.assert_allclose(max_rel_error(np.stack([theta, curve]), theta, axis=1), [0.0, 0.5])


def test_position_world_logs_the_lists_or_the_promoted_ones():
    cfg = dict(n_users=40, n_items=80, target_interactions=400, feature_noise=0.0)
    world, logs = position_world(cfg, 1.0, 0, 300)
    assert world.relevance.shape == (40, 80) and log_array(logs, "items").shape == (300, 10)
    assert log_array(logs, "clicks").sum() > 0 and world.logs is logs
    world_b, logs_b = position_world(cfg, 1.0, 0, 300, logging_bias=2.0)
    assert isinstance(logs_b, dict) and logs_b["items"].shape == (300, 10)
    again = biased_logs(world_b, 300, 1.0, 2.0, 0)
    assert all(np.array_equal(logs_b[k], again[k]) for k in again)


def test_position_figures_learned_curve_and_closed_forms():
    rng = np.random.default_rng(0)
    rel = rng.uniform(0.05, 0.95, (20, 30))
    users = rng.integers(0, 20, 200)
    items = np.stack([rng.permutation(30)[:10] for _ in users])
    clicks = (rng.random((200, 10)) < examination(1.0) * rel[users[:, None], items]).astype(np.int8)
    logs = {"users": users, "items": items, "clicks": clicks}
    model = _Dot(rng.standard_normal((20, 4)), rng.standard_normal((30, 4)))
    world = SimpleNamespace(relevance=rel)
    curve = examination(1.0) * 1.1
    curve[0] = 1.0
    sampler = SimpleNamespace(position_propensities_=curve)
    fixed = position_figures(model, sampler, world, logs, 1.0, learned=False, relevance_link="sigmoid")
    assert set(fixed) == {"ndcg@10"} and 0 < fixed["ndcg@10"] <= 1
    r = position_figures(model, sampler, world, logs, 1.0, learned=True, relevance_link="exp")
    assert r["ndcg@10"] == fixed["ndcg@10"] and r["learned"] == curve.tolist()
    assert r["max_rel_error_top10"] == pytest.approx(0.1)
    np.testing.assert_allclose(r["irw_closed_form_true_relevance"], irw_closed_form(np.log(rel[users[:, None], items]),
                                                                                    clicks))
    scores = model.U[users][:, None, :] @ model.V[items].transpose(0, 2, 1)  # link "exp": the scores as they are
    np.testing.assert_allclose(r["irw_closed_form_ranker"], irw_closed_form(scores[:, 0, :], clicks), rtol=1e-5)


def _seed(true, nd_a, nd_b, learned=None):
    out = {"true": list(true), "a": {"ndcg@10": nd_a, "fit_s": 1.0}, "b": {"ndcg@10": nd_b, "fit_s": 3.0}}
    if learned is not None:
        cf = list(true)
        out["b"].update(learned=list(learned), max_rel_error_top10=float(max_rel_error(np.array(learned), true)),
                        irw_closed_form_ranker=list(learned), irw_closed_form_true_relevance=cf)
    return out


def test_summarize_positions_over_seeds_finds_the_learned_method():
    true = examination(1.0)
    low, high = true.copy(), true.copy()
    low[4] *= 0.8
    high[4] *= 1.4  # the mean curve is 10% off at position 5
    runs = {1.0: [_seed(true, 0.5, 0.6, low), _seed(true, 0.7, 0.8, high)], 2.0: [_seed(true, 0.4, 0.3)]}
    s = summarize_positions(runs, ["a", "b"])
    d = s["1.0"]
    assert d["n_seeds"] == 2 and d["ndcg@10/a"] == pytest.approx(0.6) and d["ndcg@10/a_se"] == pytest.approx(0.1)
    assert d["ndcg@10/b_per_seed"] == [0.6, 0.8] and d["fit_s/b"] == 3.0
    assert d["max_rel_error_top10"] == pytest.approx(0.1) and d["worst_position"] == 5
    assert d["max_rel_error_top10_per_seed"] == [0.2, 0.4]
    assert d["irw_closed_form_ranker_max_rel_error_top10"] == pytest.approx(0.1)
    assert d["irw_closed_form_true_relevance_max_rel_error_top10_per_seed"] == [0.0, 0.0]
    assert "learned_relative_propensity" not in s["2.0"] and s["2.0"]["ndcg@10/a_se"] is None
    top = headline(s, ["a", "b"])
    assert set(top) == {"eta=1.0", "eta=2.0"}
    assert top["eta=1.0"]["ndcg@10"] == {"a": d["ndcg@10/a"], "b": d["ndcg@10/b"]}
    assert top["eta=1.0"]["max_rel_error_top10"] == d["max_rel_error_top10"]
    assert "max_rel_error_top10" not in top["eta=2.0"]
    lines = "\n".join(positions_text(s, "twotower", ["a", "b"])).splitlines()
    assert lines[1] == "## Setting 1: logged lists (twotower ranker)"
    assert "| eta | true ndcg@10 a | true ndcg@10 b |" in lines and "| 2.0 | 0.4000 | 0.3000 |" in lines
    assert sum(line.startswith("  learned ") for line in lines) == 1


def test_rec_text_tables_and_the_spearman_lines_in_the_given_order():
    runs = {"x": [{"dcg@5": 1.0, "recall@5": 0.5, "map@5": 0.2, "true_ndcg@5": 0.4}],
            "y": [{"dcg@5": 2.0, "recall@5": 0.5, "map@5": 0.2, "true_ndcg@5": 0.4, "spearman_learned_vs_true": 0.5,
                   "spearman_popularity_vs_true": 0.25}] * 2}
    lines = "\n".join(rec_text({"synthetic": mean_se_by(runs)}, ("z", "y", "x"))).splitlines()
    assert lines[1] == "## Setting 2: synthetic (rank the randomized test items)"
    assert lines[3] == "| method | dcg@5 | recall@5 | map@5 | true_ndcg@5 |" and lines[5].startswith("| x | 1.0000 |")
    assert lines[-1] == ("y: Spearman(learned item propensity, true) = 0.5000 ± 0.0000; "
                         "Spearman(popularity, true) = 0.2500 ± 0.0000")


def test_rec_figures_on_a_randomized_task():
    from recsampling.bench.mnar import load_randomized_task

    task = load_randomized_task("synthetic", "", 0, quick=True, ks=(3, 5))
    rng = np.random.default_rng(0)
    model = _Dot(rng.standard_normal((task.train.n_users, 4)), rng.standard_normal((task.train.n_items, 4)))
    world = task.source.info["world"]
    sampler = SimpleNamespace(item_propensities_=np.asarray(world.item_propensity))  # the true ones
    plain = rec_figures(model, sampler, task, (3, 5), spearman=False)
    assert list(plain) == [f"{m}@{k}" for k in (3, 5) for m in ("dcg", "recall", "map", "true_ndcg")]
    r = rec_figures(model, sampler, task, (3, 5), spearman=True)
    assert r["spearman_learned_vs_true"] == pytest.approx(1.0) and -1 <= r["spearman_popularity_vs_true"] <= 1
    assert {k: r[k] for k in plain} == plain
