"""benchmarks/mnar.py on tiny data: the Yahoo! R3 path (files absent / a fake set), --tune, propensity norms."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark, write_fake_coat
from recsampling.bench.saito import AuthorsData, AuthorsEvaluation
from recsampling.samplers.saito import REPLICATION_RESULTS

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
    data = AuthorsData("coat", str(shared_data))
    info = data.info()
    assert (info["positives"], info["test_relevant"], info["test_users_with_relevant"]) == (1905, 219, 101)
    ev = AuthorsEvaluation(data.ds.test)
    base = {"random": ev.random_order(), "popularity": ev.item_count_order(data.item_counts)}
    rep = REPLICATION_RESULTS["coat"]["popularity"]
    for key in ("dcg@3", "dcg@5", "recall@5", "map@5"):
        assert base["popularity"][key] == pytest.approx(rep[key], abs=0.004)  # ties among equal counts move it
    assert base["random"]["dcg@3"] == pytest.approx(0.0573, abs=1e-4)  # far below the 0.164 of graded relevance


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
    one = AuthorsData("coat", str(tmp_path), seed=1)
    two = AuthorsData("coat", str(tmp_path), seed=2)
    assert (one.in_val != two.in_val).any() and one.is_pos.sum() == two.is_pos.sum()


def test_ours_protocol_beta_off_is_the_unclamped_estimator(bench, tmp_path, capsys):
    write_fake_yahoo(tmp_path / "yahoo-r3")
    assert bench.main(["--dataset", "yahoo-r3", "--data-dir", str(tmp_path), "--quick", "--seeds", "1", "--epochs", "1",
                       "--methods", "ubpr", "--beta", "off", "--json", "--no-write"]) == 0
    config = last_json(capsys)["config"]
    assert config["beta"] is None and config["clip"] == 0.1  # the flags' defaults of this protocol otherwise
