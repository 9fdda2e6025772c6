"""recsampling.bench.mnar: the MNAR benchmark's figures on a randomized test set."""

from __future__ import annotations

import numpy as np
import pytest

from recsampling.bench.mnar import item_propensities, rare_candidates
from recsampling.data.interactions import Interactions


def test_propensity_norms():
    # item counts 4, 2, 1, 0 over 4 users
    train = Interactions.from_indices([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0, 1, 1, 2], (4, 4))
    assert item_propensities(train, 0.5, "max") == "popularity"  # the sampler's (n_i / max n)^eta
    users = item_propensities(train, 0.5, "users")
    np.testing.assert_allclose(users, [1.0, np.sqrt(0.5), 0.5, 1e-6])  # (n_i / n_users)^0.5, floored at 1e-6
    flat = item_propensities(train, 0.5, "flat")  # (mean of 4, 2, 1 over 4 users)^0.5 for every item
    np.testing.assert_allclose(flat, np.full(4, np.sqrt(7 / 3 / 4)))
    with pytest.raises(ValueError, match="propensity norm"):
        item_propensities(train, 0.5, "median")


# ------------------------------------------------------------------------------- --protocol authors


def test_rare_candidates_keep_the_less_clicked_items():
    # item counts 4, 2, 1, 0: the median (1.5) keeps items 2 and 3
    train = Interactions.from_indices([0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0, 1, 1, 2], (4, 4))
    cand = np.array([[0, 1, 2, -1], [3, 2, 1, 0], [-1, -1, -1, -1], [1, 3, -1, -1]])
    rare, threshold = rare_candidates(train, cand, 0.5)
    assert threshold == 1.5
    np.testing.assert_array_equal(rare, [[-1, -1, 2, -1], [3, 2, -1, -1], [-1, -1, -1, -1], [-1, 3, -1, -1]])


def test_tune_on_clicks_is_seeded_and_tunes_on_the_training_clicks_only():
    from recsampling.bench.contenders import Ours
    from recsampling.bench.mnar import tune_on_clicks
    from recsampling.data.synthetic import make_world

    train = make_world(60, 80, 800, n_logged_lists=0, random_state=0).clicks
    seen = []

    def fit(part, hp):
        seen.append((part.nnz, sorted(hp)))
        return Ours("mf", "bpr").fit(part, dict(factors=4, epochs=1, lr=hp["lr"], batch_size=64), 0).model

    def space(trial):
        return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True), "unused": trial.suggest_int("unused", 0, 3)}

    a = tune_on_clicks(train, fit, space, 3, metric="snips_dcg@5", seed=1, drop=("unused",))
    b = tune_on_clicks(train, fit, space, 3, metric="snips_dcg@5", seed=1, drop=("unused",))
    assert a["best_params"] == b["best_params"] and a["best_value"] == b["best_value"]  # seeded
    assert a["n_trials"] == 3 and list(a["best_params"]) == ["lr"]  # the dropped knob is neither trained nor reported
    assert a["fit_clicks"] + a["valid_clicks"] == train.nnz and all(n == a["fit_clicks"] for n, _ in seen)
    assert all(keys == ["lr"] for _, keys in seen)
    assert tune_on_clicks(train, fit, space, 1, metric="ndcg@5", seed=1)["metric"] == "ndcg@5"


def test_randomized_markdown_shows_what_the_run_measured():
    from recsampling.bench.mnar import randomized_markdown

    keys = [f"{g}/{m}@{k}" for g in ("all", "rare") for m in ("dcg", "recall", "map", "dcg_norm", "rare_share")
            for k in (3, 5, 8)]
    row = {k: 0.5 for k in keys} | {"all/rare_share_random": 0.25}
    info = {"rare_item_max_clicks": 3.0, "rare_items": 7, "n_items": 20}
    real = randomized_markdown({"naive": row, "ubpr": row}, info, dataset="coat", seeds=2)
    assert real.startswith("### coat: randomized test") and "| ubpr | 0.5000 |" in real and "random order: 0.250" in real
    assert "Ideal loss" not in real and "authors' metrics" not in real and "Tuned" not in real
    world = randomized_markdown({"naive": row | {"ideal_loss": 0.1, "ideal_loss_se": 0.01}}, info, dataset="synthetic",
                                seeds=2, tuning={"naive": {"best_value": 0.2, "best_params": {"lr": 0.01}}},
                                tune_text="Tuned here:")
    assert "| naive | 0.10000 ± 0.01000 |" in world and "Tuned here:" in world and "lr=0.01" in world
