"""The benchmark suite: cells, resume, reports, tuned parameters, the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recsampling import suite
from recsampling.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(datasets=("synthetic",), models=("mf", "implicit"), samplers=("bpr", "als"), seeds=(0, 1), quick=True,
             epochs=1, progress=False)


@pytest.fixture(autouse=True)
def tiny_world(monkeypatch):
    """A smaller quick world keeps these tests at a few seconds each."""
    monkeypatch.setitem(suite.DATASETS["synthetic"]["quick"], "world",
                        dict(n_users=120, n_items=150, target_interactions=2_500))


def test_grid_runs_writes_reports_and_resumes(tmp_path):
    res = suite.run_suite(tmp_path, **SMALL)
    assert sorted(res.ran) == sorted(c.key for c in suite.plan(["synthetic"], ["mf", "implicit"], [0, 1],
                                                                 ["bpr", "als"], quick=True, epochs=1))
    # "bpr" names our sampler and implicit's BPR: mf+bpr, implicit+bpr, implicit+als, 2 seeds each
    assert len(res.ran) == 6 and not res.reused and not res.failed
    df = pd.read_csv(res.files["csv"])
    assert len(df) == 6
    assert set(df["method"]) == {"bpr", "als"} and set(df["model"]) == {"mf", "implicit"}
    for col in ("true_ndcg@10", "dcg@5", "recall@5", "map@5", "train_s", "samples_per_s", "seed"):
        assert df[col].notna().all(), col
    assert df["true_ndcg@10"].between(0, 1).all()
    md = Path(res.files["markdown"]).read_text()
    assert "| mf + bpr |" in md and "| implicit + als |" in md and "**" in md and " ± " in md
    assert res.files["plots"] and all(Path(p).stat().st_size > 1000 for p in res.files["plots"])
    # our sampler's drawn negatives are measured against the truth (the peers draw none we can see)
    assert set(res.false_negative_rate) == {"mf+bpr"} and 0 < res.false_negative_rate["mf+bpr"] < 1
    assert any(p.endswith("synthetic_false_negatives.png") for p in res.files["plots"])

    again = suite.run_suite(tmp_path, **SMALL)
    assert not again.ran and len(again.reused) == 6
    assert pd.read_csv(again.files["csv"]).equals(df)


def test_only_missing_stale_or_broken_cells_rerun(tmp_path):
    kw = {**SMALL, "models": ("mf",), "samplers": ("bpr",), "plots": False}
    first = suite.run_suite(tmp_path, **kw)
    cells = tmp_path / "cells"
    a, b = sorted(cells.glob("*.json"))
    a.unlink()  # lost (a run killed before the cell finished)
    b.write_text('{"key": "trunc')  # a torn file is not a finished cell
    again = suite.run_suite(tmp_path, **kw)
    assert sorted(again.ran) == sorted(first.ran) and not again.reused
    longer = suite.run_suite(tmp_path, **{**kw, "epochs": 2})
    assert len(longer.ran) == 2, "a changed configuration must not reuse the old cells"
    assert not list(cells.glob("*.tmp*"))


def test_cells_are_seeded(tmp_path):
    kw = {**SMALL, "models": ("mf",), "samplers": ("bpr",), "seeds": (3,), "plots": False}
    one = suite.run_suite(tmp_path / "a", **kw)
    two = suite.run_suite(tmp_path / "b", **kw)
    m1 = json.loads((tmp_path / "a" / "cells" / f"{one.ran[0]}.json").read_text())["metrics"]
    m2 = json.loads((tmp_path / "b" / "cells" / f"{two.ran[0]}.json").read_text())["metrics"]
    assert m1 == pytest.approx(m2)


def test_absent_dataset_is_skipped_not_fatal(tmp_path):
    res = suite.run_suite(tmp_path / "out", datasets=("yahoo-r3",), models=("mf",), samplers=("bpr",), seeds=(0,),
                          quick=True, epochs=1, data_dir=tmp_path / "empty", progress=False)
    assert "yahoo-r3" in res.skipped_datasets and not res.ran
    assert res.files["csv"] is None


def test_report_joins_runs_of_different_subsets(tmp_path, capsys):
    kw = {**SMALL, "seeds": (0,), "plots": False}
    own = suite.run_suite(tmp_path, **{**kw, "models": ("mf",), "samplers": ("bpr",)})
    other = suite.run_suite(tmp_path, **{**kw, "models": ("implicit",), "samplers": ("als",)})
    assert len(pd.read_csv(other.files["csv"])) == 1  # a run reports only its own cells
    assert cli_main(["bench", "--report", "--out", str(tmp_path), "--no-plots", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["results"]["synthetic"]) == {"mf + bpr", "implicit + als"}
    assert len(pd.read_csv(out["csv"])) == 2 and own.ran
    assert cli_main(["bench", "--report", "--out", str(tmp_path / "empty")]) == 2  # nothing finished: one line


def test_plan_rejects_bad_names():
    with pytest.raises(ValueError, match="model"):
        suite.plan(["synthetic"], ["svd"], [0])
    with pytest.raises(ValueError, match="method"):
        suite.plan(["synthetic"], ["mf"], [0], samplers=["nope"])
    with pytest.raises(ValueError, match="dataset"):
        suite.plan(["netflix"], ["mf"], [0])
    # in-batch negatives belong to the two-tower model only
    grid = suite.grid()
    assert {c.method for c in suite.plan(["synthetic"], ["mf"], [0])} == set(grid["mf"])
    assert "inbatch" not in grid["mf"] and "inbatch" in grid["twotower"]


def test_tuned_study_feeds_the_grid(tmp_path):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    rc = cli_main(["tune", "--quick", "--model", "mf", "--sampler", "bpr", "--trials", "2", "--epochs", "1",
                   "--storage", storage, "--json", "--plots", str(tmp_path / "plots")])
    assert rc == 0
    from recsampling.tuning import load_tuned

    tuned = load_tuned(storage)
    best = tuned[("synthetic", "mf", "bpr")]
    (cell,) = suite.plan(["synthetic"], ["mf"], [0], ["bpr"], quick=True, tuned=tuned)
    assert cell.config["lr"] == best["lr"] and cell.config["l2"] == best["l2"]
    assert cell.config["factors"] == best["model_params"]["factors"]
    assert cell.config["sampler_params"] == best["sampler_params"] and cell.config["tuned"] == "synthetic-mf-bpr"
    # a study of another data set leaves that data set's defaults alone
    (other,) = suite.plan(["coat"], ["mf"], [0], ["bpr"], quick=True, tuned=tuned)
    assert other.config["tuned"] is None and other.config["lr"] == suite.BASE["lr"]
    assert list((tmp_path / "plots").glob("*history.png"))


def test_bench_command_errors_are_one_line(capsys, tmp_path):
    assert cli_main(["bench", "--models", "svd", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "svd" in err[0]
    assert cli_main(["bench", "--tuned", str(tmp_path / "none.db"), "--out", str(tmp_path)]) == 2


@pytest.mark.slow
def test_quick_script_end_to_end_and_rerun(tmp_path):
    """``benchmarks/run.py --quick`` twice (the second reuses every cell), on the synthetic world with one
    seed: every model x sampler cell, the report, the plots and the false-negative figures (the whole
    --quick run, Coat included, is a benchmark: minutes on two cores)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--datasets", "synthetic", "--seeds", "1",
           "--out", str(tmp_path), "--json", "--quiet", "--data-dir", str(ROOT.parent / "shared" / "data")]
    first = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    assert first["ran"] > 0 and not first["failed"] and first["reused"] == 0
    assert Path(first["csv"]).is_file() and Path(first["markdown"]).is_file()
    assert any(p.endswith(".png") for p in first["plots"])
    assert first["false_negative_rate"] and all(0 <= v <= 1 for v in first["false_negative_rate"].values())
    second = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    assert second["ran"] == 0 and second["reused"] == first["ran"]


@pytest.mark.parametrize("args", [["--seeds", "0"], ["--threads", "-1"], ["--seeds", "two"]])
def test_bad_counts_are_usage_errors_before_any_cell_runs(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as e:
        suite.main(["--quick", "--out", str(tmp_path), *args])
    assert e.value.code == 2 and f"argument {args[0]}: must be an integer >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())



def test_opt_in_peers_join_only_when_named():
    default = {(c.model, c.method) for c in suite.plan(["synthetic"], None, [0])}
    assert ("implicit", "itemknn") not in default and not any(m == "baseline" for m, _ in default)
    named = [(c.model, c.method) for c in suite.plan(["synthetic"], None, [0], samplers=["itemknn", "most_popular"])]
    assert named == [("implicit", "itemknn"), ("baseline", "most_popular")]


def test_opt_in_peers_run_and_report(tmp_path):
    res = suite.run_suite(tmp_path, **{**SMALL, "models": None, "samplers": ("itemknn", "most_popular"),
                                       "seeds": (0,)})
    assert sorted(res.ran) == ["synthetic__baseline__most_popular__seed0", "synthetic__implicit__itemknn__seed0"]
    table = res.table.set_index("method")
    assert table.loc["itemknn", "true_ndcg@10"] > 0 and table.loc["most_popular", "true_ndcg@10"] > 0


def test_a_quick_run_without_out_leaves_the_recorded_suite_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default folders are relative to the working directory
    for argv, folder in ((["--quick", "--report"], "suite_quick"), (["--report"], "suite")):
        with pytest.raises(ValueError, match=f"no finished cells in benchmarks/results/{folder}$"):
            suite.main(argv)
