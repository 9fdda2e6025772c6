"""The recsampling command: datasets describe, errors as one line, train/recommend, the demo."""

from __future__ import annotations

import json

import pytest

from recsampling.cli import main


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_describe_ml100k_json(shared_data, capsys):
    assert main(["datasets", "describe", "ml-100k", "--data-dir", str(shared_data), "--json"]) == 0
    d = _last_json(capsys)
    assert (d["users"], d["items"], d["interactions"]) == (943, 1682, 100000)


def test_describe_synthetic_json(capsys):
    assert main(["datasets", "describe", "synthetic", "--json"]) == 0
    d = _last_json(capsys)
    assert d["users"] == 943 and d["items"] == 1682 and 80_000 < d["interactions"] < 120_000


def test_malformed_csv_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1,2\n,3\n")
    assert main(["datasets", "describe", str(bad), "--json"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "user_id" in err[0] and "Traceback" not in err[0]


def test_missing_dataset_says_where_to_put_files(tmp_path, capsys):
    assert main(["datasets", "describe", "ml-100k", "--data-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "u.data" in err[0]


def test_train_save_recommend_roundtrip(tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", "--dataset", "synthetic", "--epochs", "2", "--out", str(out), "--json",
                 "--sampler-param", "n_negatives=1"]) == 0
    d = _last_json(capsys)
    assert 0.0 <= d["ndcg@10"] <= 1.0 and d["sampler"] == "bpr"
    assert main(["recommend", "--model-dir", str(out), "--users", "0,1", "--top", "5", "--json"]) == 0
    recs = _last_json(capsys)["recommendations"]
    assert set(recs) == {"0", "1"} and all(len(v) == 5 for v in recs.values())


def test_unknown_sampler_is_one_line_error(capsys):
    assert main(["train", "--dataset", "synthetic", "--sampler", "nope", "--epochs", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


@pytest.mark.slow
def test_demo_quick_json(capsys):
    import logging

    log = logging.getLogger("recsampling")
    level = log.level
    log.setLevel(logging.INFO)
    try:
        assert main(["demo", "--quick", "--json"]) == 0
        assert log.level == logging.INFO  # the demo silences its evaluation, then restores the user's level
    finally:
        log.setLevel(level)
    d = _last_json(capsys)
    assert "mf + bpr (uniform)" in d["methods"]
    assert all(0.0 < m["true_ndcg@10"] <= 1.0 for m in d["methods"].values())


def test_literal_nan_user_id_is_rejected(tmp_path, capsys):
    bad = tmp_path / "nan.csv"
    bad.write_text("user_id,item_id\n1,2\nnan,3\n")
    assert main(["datasets", "describe", str(bad)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "user_id" in err[0] and "line 3" in err[0]


def test_train_and_evaluate_rank_the_randomized_test_items(shared_data, tmp_path, capsys):
    # Coat has a randomized test set: the README's protocol ranks each user's 16 test items
    from recsampling.data import load_dataset
    from recsampling.recommender import Recommender

    out = tmp_path / "model"
    data = ["--dataset", "coat", "--data-dir", str(shared_data), "--json", "-k", "5"]
    assert main(["train", *data, "--epochs", "1", "--out", str(out)]) == 0
    trained = _last_json(capsys)
    assert main(["evaluate", "--model-dir", str(out), *data]) == 0
    evaluated = _last_json(capsys)
    ds = load_dataset("coat", data_dir=shared_data)
    expected = Recommender.load(out).evaluate(ds.test.to_implicit(4.0), ks=(5,), protocol="test_items",
                                              test_items=ds.info["test_items"]).to_dict()
    assert trained["dcg@5"] == pytest.approx(expected["dcg@5"])
    assert evaluated["dcg@5"] == pytest.approx(expected["dcg@5"])


def test_tune_rejects_an_unknown_sampler_before_running_any_study(tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    rc = main(["tune", "--quick", "--sampler", "bpr,nope", "--trials", "1", "--epochs", "1",
               "--run-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]
    db = tmp_path / "studies.db"
    assert not db.exists() or optuna.study.get_all_study_names(storage=f"sqlite:///{db}") == []


def _pairs_csv(path, n_users=40, n_items=30, per_user=8, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = [f"{u},{i},5" for u in range(n_users) for i in rng.choice(n_items, per_user, replace=False)]
    path.write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    return path


def test_evaluate_reuses_the_training_split(tmp_path, capsys, caplog):
    # a data set without a randomized test set: evaluate must redraw train's holdout, not the default one
    data = _pairs_csv(tmp_path / "pairs.csv")
    out = tmp_path / "model"
    assert main(["train", "--dataset", str(data), "--seed", "3", "--test-fraction", "0.3", "--epochs", "2",
                 "--out", str(out), "--json", "--quiet"]) == 0
    trained = _last_json(capsys)
    assert main(["evaluate", "--model-dir", str(out), "--json"]) == 0
    assert _last_json(capsys)["ndcg@10"] == pytest.approx(trained["ndcg@10"])
    caplog.clear()
    assert main(["evaluate", "--model-dir", str(out), "--seed", "4", "--json"]) == 0
    assert "trained with --seed 3" in caplog.text


def test_evaluate_without_split_file_or_dataset_is_one_line_error(tmp_path, capsys):
    data = _pairs_csv(tmp_path / "pairs.csv")
    out = tmp_path / "model"
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    (out / "split.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dataset" in err[0]


def test_train_takes_backend_and_threads(capsys):
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--optimizer", "sgd", "--backend", "fused",
                 "--threads", "1", "--json"]) == 0
    assert 0.0 <= _last_json(capsys)["ndcg@10"] <= 1.0
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--optimizer", "adam", "--backend", "fused"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no kernel" in err[0]
