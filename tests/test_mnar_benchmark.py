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
