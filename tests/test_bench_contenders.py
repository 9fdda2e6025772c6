"""The benchmark layer's contenders: one fit interface for ours and the peers."""

from __future__ import annotations

import numpy as np
import pytest

from recsampling.bench.contenders import PEERS, Fit, ImplicitFactors, Ours, Popularity, peer
from recsampling.data import Interactions
from recsampling.tasks import Task


def _world(rng, test: bool = False) -> Interactions:
    """Two blocks of users, each clicking 6 of its own half of the items (``test``: 2 more of them)."""
    users, items = [], []
    for u in range(40):
        drawn = rng.choice(15, size=8, replace=False) + 15 * (u % 2)
        for i in drawn[6:] if test else drawn[:6]:
            users.append(u)
            items.append(int(i))
    return Interactions.from_indices(np.array(users), np.array(items), (40, 30))


def _scores(fit: Fit) -> np.ndarray:
    if isinstance(fit.model, tuple):
        U, V = fit.model
    else:
        U, V = fit.model.embedding_tables()
    return np.asarray(U) @ np.asarray(V).T


def test_ours_fits_a_registered_model_and_sampler_and_reports_its_checkpoints(rng):
    train = _world(rng)
    seen = []
    params = dict(factors=8, epochs=3, batch_size=64, lr=0.05, optimizer="adam")
    fit = Ours("mf", "bpr").fit(train, params, 0, on_checkpoint=lambda step, model, sampler: seen.append(
        (step, type(sampler).__name__)))
    assert [s for s, _ in seen] == [1, 2, 3] and seen[0][1] != "NoneType"
    assert fit.samples > 0 and fit.train_s > 0 and np.isfinite(fit.loss) and len(fit.history) == 3
    again = Ours("mf", "bpr").fit(train, params, 0)
    np.testing.assert_array_equal(_scores(fit), _scores(again))  # same seed, same model


def test_ours_rejects_an_unknown_sampler_and_an_unknown_parameter(rng):
    with pytest.raises(ValueError, match="nope"):
        Ours("mf", "nope").fit(_world(rng), dict(epochs=1), 0)
    with pytest.raises(ValueError, match="mf \\+ bpr.*epoch"):
        Ours("mf", "bpr").fit(_world(rng), dict(epoch=1), 0)


def test_popularity_ranks_by_training_clicks(rng):
    train = _world(rng)
    fit = Popularity("baseline", "most_popular").fit(train, {})
    counts = np.asarray(train.matrix.sum(axis=0)).ravel()
    np.testing.assert_array_equal(_scores(fit)[0], counts)
    assert fit.samples == train.nnz


def test_implicit_factor_models_checkpoint_every_tenth_and_score_through_the_task(rng):
    pytest.importorskip("implicit")
    train = _world(rng)
    als = peer("implicit", "als")
    assert isinstance(als, ImplicitFactors) and als.label == "implicit + als"
    steps = []
    fit = als.fit(train, dict(factors=4, regularization=0.01, iterations=20), 0,
                  on_checkpoint=lambda step, tables, sampler: steps.append((step, sampler)))
    assert steps == [(k, None) for k in range(2, 21, 2)]
    assert fit.samples == train.nnz * 20 and _scores(fit).shape == (40, 30)
    scores = _scores(fit)
    own = np.arange(30)[None, :] // 15 == (np.arange(40) % 2)[:, None]
    assert scores[own].mean() > scores[~own].mean()  # it found the blocks
    rng2 = np.random.default_rng(1)
    test = _world(rng2, test=True)
    task = Task("tiny", _world(np.random.default_rng(1)), test)
    tables = als.fit(task.train, dict(factors=4, regularization=0.01, iterations=20), 0).model
    assert 0.0 < task.figures(tables, ["ndcg@5"], device="cpu")["ndcg@5"] <= 1.0


def test_item_knn_rejects_an_unknown_similarity(rng):
    pytest.importorskip("implicit")
    with pytest.raises(ValueError, match="similarity"):
        peer("implicit", "itemknn").fit(_world(rng), {"K": 5, "similarity": "jaccard"})


def test_every_peer_has_a_distinct_label():
    labels = [c.label for c in PEERS]
    assert len(set(labels)) == len(labels) and peer("implicit", "nope") is None


def test_ours_selects_on_a_validation_set_and_checkpoints_every_k_epochs(rng):
    train, valid = _world(np.random.default_rng(3)), _world(np.random.default_rng(3), test=True)
    steps = []
    fit = Ours("mf", "bpr").fit(train, dict(factors=8, epochs=4, batch_size=64, lr=0.05, metric="ndcg@5"), 0,
                                valid=valid, checkpoint_every=2,
                                on_checkpoint=lambda step, model, sampler: steps.append(step))
    assert steps == [2, 4]
    assert fit.result.best_epoch is not None and "ndcg@5" in fit.history[-1]
    with pytest.raises(ValueError, match="checkpoint_every"):
        Ours("mf", "bpr").fit(train, dict(epochs=1), 0, checkpoint_every=0)


def test_a_peer_space_draws_every_knob_inside_its_range_and_its_grid_lies_inside_it():
    import optuna

    for contender in PEERS:
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        drawn = contender.search_space(trial)
        assert set(drawn) == {k.name for k in contender.space}, contender.label
        for knob in contender.space:
            values = [drawn[knob.name], *knob.grid]
            if knob.choices:
                assert all(v in knob.choices for v in values), knob
            else:
                assert all(knob.low <= v <= knob.high for v in values), knob
        assert set(contender.grid()) == {k.name for k in contender.space if k.grid}


def test_speed_params_layer_defaults_overrides_and_the_torch_setting(rng):
    from recsampling.bench.contenders import speed_params

    train = _world(rng)
    settings = {"defaults": {"optimizer": "sgd", "lr": 0.05}, "overrides": {"dla": {"lr": 0.5}},
                "torch_only": {"optimizer": "adam"}}
    assert speed_params("mf", "bpr", train, settings) == {"optimizer": "sgd", "lr": 0.05,
                                                          "sampler_params": {"n_negatives": 1}}
    assert speed_params("mf", "dla", train, settings) == {"optimizer": "sgd", "lr": 0.5, "sampler_params": {}}
    featured = Interactions.from_csr(train.matrix, item_features=rng.random((train.n_items, 3)).astype(np.float32))
    assert speed_params("twotower", "bpr", featured, settings)["optimizer"] == "adam"


def test_tune_peer_returns_the_best_trials_parameters_and_its_best_checkpoint(rng):
    from recsampling.bench.contenders import tune_peer

    train, test = _world(rng), _world(rng, test=True)
    task = Task("tiny", train, test)
    als = peer("implicit", "als")
    params, value, study = tune_peer(als, task, 4, seed=0, max_iterations=6, metric="ndcg@5")
    assert len(study.trials) == 4 and value == study.best_value
    assert set(params) == {"factors", "regularization", "alpha", "iterations"}
    assert {k: params[k] for k in study.best_params} == study.best_params
    best = study.best_trial
    # the value is the best checkpoint's (every tenth of the 6 iterations: each one), and it is where the trial stood
    assert params["iterations"] == max(best.intermediate_values, key=best.intermediate_values.get)
    assert value == best.intermediate_values[params["iterations"]] and 1 <= params["iterations"] <= 6
    # refitting the best parameters for that many iterations gives the value back (seeded fits)
    refit = als.fit(train, params, 0)
    assert task.figures(refit.model, ["ndcg@5"], device="cpu")["ndcg@5"] == pytest.approx(value)


def test_tune_peer_fits_a_peer_without_parameters_once_and_checks_its_trials(rng):
    from recsampling.bench.contenders import tune_peer

    task = Task("tiny", _world(rng), _world(rng, test=True))
    params, value, study = tune_peer(peer("baseline", "most_popular"), task, 3, metric="ndcg@5")
    assert params == {} and study is None and 0.0 < value <= 1.0
    with pytest.raises(ValueError, match="n_trials"):
        tune_peer(peer("implicit", "als"), task, 0)


def test_tune_ours_keeps_the_best_trials_best_epoch_and_refits_to_its_value(rng):
    from recsampling.bench.contenders import refit_ours, trial_counts, tune_ours

    train, test = _world(rng), _world(rng, test=True)
    task = Task("tiny", train, test)
    fit = dict(optimizer="adagrad", batch_size=256, device="cpu", n_threads=1)
    config, value, study = tune_ours("mf", "bpr", task, 3, seed=0, epochs=3, metric="ndcg@5", **fit)
    best = study.best_trial
    assert value == study.best_value and set(config) >= {"lr", "l2", "model_params", "sampler_params", "epochs"}
    assert config["epochs"] == max(best.intermediate_values, key=best.intermediate_values.get) + 1
    assert trial_counts(study)["run"] == 3 and trial_counts(None) == {"run": 0, "complete": 0, "pruned": 0}
    counts = trial_counts(study)
    assert counts["complete"] + counts["pruned"] <= counts["run"]
    # the best configuration trained again for its best epochs on the same data scores what the trial saw there
    rec = refit_ours("mf", "bpr", config, train, 0, metric="ndcg@5", epochs=3, **fit)
    assert len(rec.history_.history) == config["epochs"]
    assert task.figures(rec, ["ndcg@5"], device="cpu")["ndcg@5"] == pytest.approx(value, abs=1e-6)


def test_fit_l2_grid_keeps_the_best_validation_fit(rng):
    from recsampling.bench.contenders import fit_l2_grid

    train, valid = _world(rng), _world(rng, test=True)
    params = dict(factors=4, epochs=2, batch_size=256, optimizer="adam", lr=0.01, metric="ndcg@5")
    fit, l2, score = fit_l2_grid(Ours("mf", "bpr"), train, params, [10.0, 1e-4], 0, valid=valid)
    scores = {g: Ours("mf", "bpr").fit(train, {**params, "l2": g}, 0, valid=valid).result.best_metric
              for g in (10.0, 1e-4)}
    assert l2 == max(scores, key=scores.get) and score == pytest.approx(scores[l2])
    assert fit.result.best_metric == pytest.approx(score)
    fit, l2, score = fit_l2_grid(Ours("mf", "bpr"), train, params, [10.0, 1e-4], 0)
    assert l2 == 10.0 and score is None  # no validation: the first of the grid


def test_checkpoint_figures_read_the_asked_steps_and_match_a_plain_fit(rng):
    from recsampling.bench.contenders import checkpoint_figures

    train, test = _world(rng), _world(rng, test=True)
    task = Task("tiny", train, test)
    params = dict(factors=8, epochs=3, batch_size=64, lr=0.05, optimizer="adam")
    got = checkpoint_figures(Ours("mf", "bpr"), params, task, 0, {1, 3}, ("ndcg@5", "recall@5"))
    assert sorted(got) == [1, 3] and list(got[3]) == ["ndcg@5", "recall@5"]
    plain = Ours("mf", "bpr").fit(train, params, 0)
    assert got[3] == task.figures(plain.model, ["ndcg@5", "recall@5"], device="cpu")  # the seeded fit, at its end


def test_grid_search_reads_every_point_at_its_checkpoints_and_keeps_the_best(rng):
    pytest.importorskip("implicit")
    from recsampling.bench.contenders import checkpoint_figures, grid_search

    task = Task("tiny", _world(rng), _world(rng, test=True))
    als = peer("implicit", "als")
    grid = {"factors": [4, 8], "reg": [0.01, 10.0]}

    def params(point, n):
        return dict(factors=point["factors"], regularization=point["reg"], alpha=1.0, iterations=n)

    best, sweep = grid_search(als, params, grid, (2, 4), task, 0, metric="ndcg@5", figures=("ndcg@5", "recall@5"))
    assert [(r["factors"], r["reg"], r["epochs"]) for r in sweep] == [
        (f, g, n) for f in (4, 8) for g in (0.01, 10.0) for n in (2, 4)]
    assert list(sweep[0]) == ["factors", "reg", "epochs", "valid_ndcg@5", "valid_recall@5"]
    assert best == max(sweep, key=lambda r: r["valid_ndcg@5"])
    point = {k: best[k] for k in grid}  # a refit of the best row gives its figure back (seeded fits)
    again = checkpoint_figures(als, params(point, best["epochs"]), task, 0, {best["epochs"]}, ("ndcg@5",))
    assert again[best["epochs"]]["ndcg@5"] == pytest.approx(best["valid_ndcg@5"])


def test_tuning_tasks_carve_the_validation_part_out_of_the_training_part():
    from recsampling.bench.contenders import tuning_tasks

    world = dict(n_users=60, n_items=80, target_interactions=900, n_logged_lists=0)
    final, valid = tuning_tasks("synthetic", 3, world=world, metrics=("ndcg",), ks=(5,))
    assert final.train.shape == valid.train.shape and valid.test.nnz > 0
    assert valid.train.nnz + valid.test.nnz == final.train.nnz
    assert (valid.train.matrix.multiply(valid.test.matrix)).nnz == 0  # disjoint
    assert (final.train.matrix.multiply(valid.test.matrix)).nnz == valid.test.nnz  # held out of the training part
    again, _ = tuning_tasks("synthetic", 3, world=world, metrics=("ndcg",), ks=(5,))
    assert (again.train.matrix != final.train.matrix).nnz == 0
