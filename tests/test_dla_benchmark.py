"""benchmarks/dla_positions.py on a tiny world: the JSON the issue's check reads, and the log options."""

from __future__ import annotations

import json

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("dla_positions")


@pytest.fixture(autouse=True)
def _threads(restore_threads):
    """main() sets its own torch thread count."""


def _run(bench, capsys, *args) -> dict:
    assert bench.main(["--quick", "--seeds", "1", "--no-write", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_json_holds_the_figures_the_check_reads(bench, capsys):
    r = _run(bench, capsys, "--etas", "1,2")
    assert r["setting1"]["config"]["logging_ranker"] == "linear"
    for eta in ("1.0", "2.0"):
        d = r[f"eta={eta}"]
        assert len(d["true_relative_propensity"]) == len(d["learned_relative_propensity"]) == 10
        assert d["true_relative_propensity"][0] == d["learned_relative_propensity"][0] == 1.0
        assert d["max_rel_error_top10"] >= 0
        assert set(d["ndcg@10"]) == {"clicks_naive", "ips_true_propensity", "dla"}
        assert all(0 < v <= 1 for v in d["ndcg@10"].values())
    # the true curve is (1/k)^eta
    assert r["eta=2.0"]["true_relative_propensity"][1] == pytest.approx(0.25)


def test_logging_ranker_choice_changes_the_logs(bench, capsys):
    linear = _run(bench, capsys, "--etas", "1", "--pos-methods", "clicks_naive")
    rel = _run(bench, capsys, "--etas", "1", "--pos-methods", "clicks_naive", "--logging-ranker", "relevance")
    assert rel["setting1"]["config"]["logging_ranker"] == "relevance"
    assert rel["eta=1.0"]["ndcg@10"] != linear["eta=1.0"]["ndcg@10"]


def test_unknown_method_is_a_clear_error(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--pos-methods", "svm", "--no-write"])
    assert "unknown setting-1 method" in capsys.readouterr().err


def test_setting2_with_a_feature_only_ranker(bench, capsys):
    r = _run(bench, capsys, "--etas", "", "--setting2", "--datasets", "synthetic", "--rec-ranker", "twotower",
             "--rec-methods", "naive,dla")
    assert r["setting2"]["config"]["ranker"] == "twotower"
    summ = r["setting2"]["summary"]["synthetic"]
    assert set(summ) == {"naive", "dla"}
    assert -1 <= summ["dla"]["spearman_learned_vs_true"] <= 1 and 0 < summ["dla"]["dcg@5"]


@pytest.mark.parametrize("flag", ["--seeds", "--lists", "--threads"])
def test_a_zero_count_is_a_usage_error_before_any_work(bench, capsys, flag):
    with pytest.raises(SystemExit) as e:
        bench.main([flag, "0", "--no-write"])
    assert e.value.code == 2 and f"argument {flag}: must be an integer >= 1, got 0" in capsys.readouterr().err
