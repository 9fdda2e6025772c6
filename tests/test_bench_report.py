"""Reports: mean +- s.e. over seeds, the per-method Markdown table, the suite's tables."""

from __future__ import annotations

import pytest

from recsampling.bench.report import (false_negative_rates, markdown, mean_se, mean_se_by, mean_se_text, method_table,
                                      summary, tidy)


def test_mean_se_over_runs():
    runs = [{"a": 1.0, "b": None, "c": 2.0}, {"a": 3.0, "b": None, "c": None}]
    assert mean_se(runs) == {"a": 2.0, "a_se": 1.0, "b": None, "c": 2.0}
    assert mean_se(runs, suffix="_sem", always=True) == {"a": 2.0, "a_sem": 1.0, "b": None, "b_sem": None,
                                                         "c": 2.0, "c_sem": 0.0}
    with pytest.raises(ValueError, match="at least one run"):
        mean_se([])


def test_method_table_rows_follow_the_summary():
    s = mean_se_by({"bpr": [{"all/x": 0.5}, {"all/x": 0.7}], "naive": [{"all/x": 0.25}]})
    text = method_table(s, ["x", "y"], group="all")
    lines = text.splitlines()
    assert lines[0] == "| method | x | y |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| bpr | 0.6000 ± 0.1000 |  |"  # s.e. of (0.5, 0.7): 0.1414 / sqrt(2)
    assert lines[3] == "| naive | 0.2500 |  |"  # one run: no standard error
    eta = method_table({"0.5": s["bpr"]}, ["all/x"], digits=2, label="eta", headers=["x at 0.5"]).splitlines()
    assert eta == ["| eta | x at 0.5 |", "|---|---|", "| 0.5 | 0.60 ± 0.10 |"]


def test_mean_se_text_of_one_figure():
    d = {"a": 0.5, "a_se": 0.25, "b": 1.0, "c": None}
    assert mean_se_text(d, "a") == "0.5000 ± 0.2500" and mean_se_text(d, "a", digits=1) == "0.5 ± 0.2"
    assert mean_se_text(d, "b") == "1.0000" and mean_se_text(d, "c") == mean_se_text(d, "z") == ""


def _rec(dataset, model, method, seed, value, fn=None):
    return {"key": f"{dataset}__{model}__{method}__seed{seed}", "dataset": dataset, "model": model, "method": method,
            "seed": seed, "config": {"iterations": 5, "learning_rate": 0.1, "model_params": {}}, "status": "ok",
            "metrics": {"ndcg@10": value}, "train_s": 1.0, "samples_per_s": 10.0, "eval_s": 0.1,
            "final_loss": 0.5, "finished_at": "now", "false_negative_rate": fn}


def test_suite_tables_from_records():
    recs = [_rec("d", "m", "b", 1, 0.3, 0.2), _rec("d", "m", "b", 0, 0.1, 0.4), _rec("d", "m", "a", 0, 0.5)]
    df = tidy(recs, {"d": ("ndcg@10",)}, order=lambda r: (r["method"],))
    assert list(df["method"]) == ["a", "b", "b"] and list(df["seed"]) == [0, 0, 1]
    assert list(df["epochs"]) == [5, 5, 5] and list(df["lr"]) == [0.1, 0.1, 0.1]  # a peer's names renamed
    table = summary(df)
    b = table[table["method"] == "b"].iloc[0]
    assert b["ndcg@10"] == pytest.approx(0.2) and b["n_seeds"] == 2
    text = markdown(table, "# head", {"d": ("ndcg@10",)}, "foot")
    assert "**0.5000**" in text and text.rstrip().endswith("foot")
    assert false_negative_rates(recs, "d") == {"m+b": pytest.approx(0.3)}


def test_write_section_replaces_only_its_own_section(tmp_path):
    from recsampling.bench.report import write_section

    path = tmp_path / "RESULTS.md"
    write_section(path, ["<!-- a:begin -->", "A1", "<!-- a:end -->"], "<!-- a:begin -->", "<!-- a:end -->")
    assert path.read_text() == "# Benchmark results\n\n<!-- a:begin -->\nA1\n<!-- a:end -->\n"
    write_section(path, ["<!-- b:begin -->", "B1", "<!-- b:end -->"], "<!-- b:begin -->", "<!-- b:end -->")
    write_section(path, ["<!-- a:begin -->", "A2", "A3", "<!-- a:end -->"], "<!-- a:begin -->", "<!-- a:end -->")
    assert path.read_text() == ("# Benchmark results\n\n<!-- a:begin -->\nA2\nA3\n<!-- a:end -->\n\n"
                                "<!-- b:begin -->\nB1\n<!-- b:end -->\n")


def test_mean_and_se_nests_mean_se_and_marks_a_single_value():
    from recsampling.bench.report import mean_and_se

    got = mean_and_se([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": None}], single=float("nan"))
    assert got["a"] == {"mean": 2.0, "se": 1.0}
    assert got["b"]["mean"] == 2.0 and got["b"]["se"] != got["b"]["se"]  # one value: NaN


def test_ratios_to_a_baseline():
    from recsampling.bench.report import ratios_to

    s = {"a": {"x": 2.0, "y": 3.0}, "base": {"x": 4.0, "y": 0.0}, "c": {"x": None}}
    assert ratios_to(s, "base", ["x", "y"]) == {"a/x": 0.5, "base/x": 1.0}  # a zero baseline figure is left out
    assert ratios_to(s, "base", ["x", "z"], with_baseline=False) == {"a/x": 0.5}  # missing / None: left out
    assert ratios_to(s, "missing", ["x"]) == {}


def test_write_table_writes_a_titled_table_between_its_markers(tmp_path):
    from recsampling.bench.report import write_table

    path = tmp_path / "RESULTS.md"
    lines = write_table(path, "t", "Title", "Intro.", ["", "a", "b"], [["x", "1", ""]], "Foot.", left=2)
    assert lines == ["<!-- t:begin -->", "## Title", "", "Intro.", "", "| | a | b |", "|---|---|---:|",
                     "| x | 1 | |", "", "Foot.", "<!-- t:end -->"]
    write_table(path, "t", "Title 2", "Intro.", ["a"], [["1"]])
    assert path.read_text() == ("# Benchmark results\n\n<!-- t:begin -->\n## Title 2\n\nIntro.\n\n| a |\n|---|\n"
                                "| 1 |\n<!-- t:end -->\n")
