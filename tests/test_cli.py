"""The recsampling command: datasets describe, errors as one line, train/recommend, the demo."""

from __future__ import annotations

import json
from pathlib import Path

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
    assert "mf + bpr" in d["methods"] and "twotower + inbatch" in d["methods"]
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


# --------------------------------------------------------------------------- abuse (issue 17): one line, exit 2
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and "error:" in err[0], err
    return err[0]


def _rated_csv(path, header="user_id,item_id,rating,timestamp", n_users=30, n_items=20, per_user=8, seed=0):
    """Each user rates ``per_user`` items, half of them 1 star and half 5 stars."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = [f"{u},{i},{1 if k % 2 else 5},{1000 + u * per_user + k}"
            for u in range(n_users) for k, i in enumerate(rng.choice(n_items, per_user, replace=False))]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A model trained by 'train --out' on a small rated CSV (1 epoch), for the commands that read one."""
    folder = tmp_path_factory.mktemp("saved")
    data = _rated_csv(folder / "rated.csv")
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(folder / "model"), "-q"]) == 0
    return folder / "model"


@pytest.fixture
def model_copy(saved_model, tmp_path):
    import shutil

    return Path(shutil.copytree(saved_model, tmp_path / "model"))


@pytest.mark.parametrize("header", ["user_id,item_id,rating,timestamp", "userId,movieId,rating,timestamp",
                                    "User ID,Product ID,Stars,Time"])
def test_a_files_rating_and_timestamp_columns_are_recognised(tmp_path, capsys, header):
    data = _rated_csv(tmp_path / "rated.csv", header)
    assert main(["datasets", "describe", str(data), "--json"]) == 0
    d = _last_json(capsys)
    assert d["has_ratings"] and d["has_timestamps"] and (d["rating_min"], d["rating_max"]) == (1.0, 5.0)


def test_train_applies_the_threshold_to_a_files_ratings_and_evaluate_keeps_the_columns(tmp_path, capsys):
    from recsampling.recommender import Recommender

    data = _rated_csv(tmp_path / "rated.csv")  # 240 ratings, 120 of them 5 stars
    out = tmp_path / "model"
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(out), "--json", "-q"]) == 0
    trained = _last_json(capsys)
    train = Recommender.load(out).train_
    assert train.ratings.min() >= 4.0 and 0 < train.nnz < 120  # the 1-star ratings are not positives
    assert main(["evaluate", "--model-dir", str(out), "--json", "-q"]) == 0
    assert _last_json(capsys)["ndcg@10"] == pytest.approx(trained["ndcg@10"])
    everything = tmp_path / "all"
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(everything), "--rating-col", "none",
                 "-q"]) == 0
    assert Recommender.load(everything).train_.nnz > 120  # no ratings read: every pair is a positive
    assert json.loads((everything / "split.json").read_text())["rating_col"] == "none"  # evaluate reads none too


def test_column_flags_name_a_files_columns_only(tmp_path, capsys):
    assert main(["train", "--dataset", "synthetic", "--user-col", "uid"]) == 2
    assert "--user-col" in _one_error_line(capsys)
    data = _rated_csv(tmp_path / "rated.csv")
    assert main(["datasets", "describe", str(data), "--rating-col", "stars"]) == 2
    assert "['stars']" in _one_error_line(capsys)


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "synthetic", "--device", "tpu"],
    ["train", "--dataset", "synthetic", "--device", "gpu"],
    ["tune", "--quick", "--device", "gpu"],
    ["train", "--dataset", "synthetic", "--epochs", "0"],
    ["train", "--dataset", "synthetic", "--batch-size", "-1"],
    ["train", "--dataset", "synthetic", "--threshold", "nan"],
    ["train", "--dataset", "synthetic", "-k", "0"],
    ["recommend", "--model-dir", "x", "--users", "1", "--top", "0"],
    ["bench", "--seeds", "0"],
    ["frobnicate"],
])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv):
    assert main(argv) == 2
    _one_error_line(capsys)


def test_a_device_torch_cannot_use_is_refused_before_any_work(tmp_path, capsys):
    import torch

    from recsampling.recommender import Recommender

    if not torch.cuda.is_available():  # the case: tune --device cuda without a GPU
        assert main(["tune", "--quick", "--device", "cuda", "--run-dir", str(tmp_path)]) == 2
        assert "no CUDA device" in _one_error_line(capsys) and not (tmp_path / "studies.db").exists()
    data = _rated_csv(tmp_path / "rated.csv")
    from recsampling.data import load_dataset

    with pytest.raises(ValueError, match="device must be"):
        Recommender(device="gpu", epochs=1).fit(load_dataset(str(data)).interactions)


@pytest.mark.parametrize("text, expected", [
    ("[trainer]\nepochz = 1\n", "'epochz' (did you mean 'epochs'?)"),
    ('modle = "mf"\n', "'modle' (did you mean 'model'?)"),
    ("model_params = [1, 2]\n", "model_params must be a table"),
    ('sampler = 3\n', "sampler must be a name"),
    ("[trainer\n", "could not be parsed as TOML"),
])
def test_a_bad_config_is_one_clear_line(tmp_path, capsys, text, expected):
    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main(["train", "--dataset", "synthetic", "--config", str(config)]) == 2
    assert expected in _one_error_line(capsys)


def test_a_json_config_must_be_an_object_in_utf8(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text("[1, 2]")
    assert main(["train", "--dataset", "synthetic", "--config", str(config)]) == 2
    assert "got a list" in _one_error_line(capsys)
    config.write_bytes(b"\xff\xfe{}")
    assert main(["train", "--dataset", "synthetic", "--config", str(config)]) == 2
    assert "could not be parsed as JSON" in _one_error_line(capsys)


@pytest.mark.parametrize("content, expected", [
    ("[1, 2]", "must hold a JSON object"),
    ('{"seed": "3"}', "seed must be int"),
    ('{"datset": "x.csv"}', "unknown key 'datset'"),
    ("{", "not valid JSON"),
])
def test_a_bad_split_json_is_one_clear_line(model_copy, capsys, content, expected):
    from recsampling._checksums import record_checksum

    (model_copy / "split.json").write_text(content)
    record_checksum(model_copy / "split.json")  # an edit, not corruption: the checksum is right
    assert main(["evaluate", "--model-dir", str(model_copy)]) == 2
    assert expected in _one_error_line(capsys)


def _edit_json(path, change):
    from recsampling._checksums import record_checksum

    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    record_checksum(path)  # an edit, not corruption: the checksum is right


def _edit_checkpoint(path, change):
    import torch

    from recsampling._checksums import record_checksum

    blob = torch.load(path, weights_only=True)
    meta = json.loads(blob["meta"])
    change(meta)
    blob["meta"] = json.dumps(meta)
    torch.save(blob, path)
    record_checksum(path)


@pytest.mark.parametrize("change, expected", [
    (lambda m: m["params"].update(extra=1), "unknown key(s) ['extra']"),
    (lambda m: m["params"].pop("model"), "missing key(s) ['model']"),
    (lambda m: m.pop("history"), "missing key(s) ['history']"),
    (lambda m: m.update(params=[1]), "must be a JSON object"),
    (lambda m: m["params"].update(model="twotower"), "not from one save"),
])
def test_an_edited_recommender_json_is_one_clear_line(model_copy, capsys, change, expected):
    _edit_json(model_copy / "recommender.json", change)
    assert main(["recommend", "--model-dir", str(model_copy), "--users", "0"]) == 2
    assert expected in _one_error_line(capsys)


@pytest.mark.parametrize("change", [lambda m: m["model"].update(n_users=m["model"]["n_users"] + 1),
                                    lambda m: m["model"]["params"].update(factors=8),
                                    lambda m: m["model"].update(name="twotower"),
                                    lambda m: m["model"].update(name="nope")])
def test_an_edited_checkpoint_is_one_clear_line(model_copy, capsys, change):
    _edit_checkpoint(model_copy / "model.pt", change)
    assert main(["recommend", "--model-dir", str(model_copy), "--users", "0"]) == 2
    assert "model.pt" in _one_error_line(capsys)


def test_sizes_beyond_the_catalogue_or_memory_are_refused_before_allocating(saved_model, tmp_path, capsys):
    data = _rated_csv(tmp_path / "rated.csv")  # 20 items
    for flag in (["--sampler-param", "n_negatives=1000000000000"], ["--sampler", "dns", "--sampler-param",
                                                                     "n_candidates=21"], ["-k", "10000000000"]):
        assert main(["train", "--dataset", str(data), *flag]) == 2
        assert "more than the 20 items" in _one_error_line(capsys)
    assert main(["train", "--dataset", str(data), "--model-param", "factors=1000000000000"]) == 2
    assert "of memory" in _one_error_line(capsys)
    assert main(["evaluate", "--model-dir", str(saved_model), "-k", "10000000000"]) == 2
    assert "more than the 20 items" in _one_error_line(capsys)
    # more items than the catalogue holds is every item the user has not seen
    assert main(["recommend", "--model-dir", str(saved_model), "--users", "0,1", "--top", "10000000000",
                 "--json"]) == 0
    recs = _last_json(capsys)["recommendations"]
    assert all(len(items) == len(set(items)) and 0 < len(items) <= 20 for items in recs.values())


def test_bench_with_a_storage_that_is_not_a_database_is_one_line(tmp_path, capsys):
    for url in (f"sqlite:///{tmp_path / 'not-a-db'}", "sqlite:///not-a-db"):
        assert main(["bench", "--tuned", url, "--out", str(tmp_path / "run")]) == 2
        _one_error_line(capsys)
    (tmp_path / "text.db").write_text("hello")
    assert main(["bench", "--tuned", f"sqlite:///{tmp_path / 'text.db'}", "--out", str(tmp_path / "run")]) == 2
    assert "cannot be opened" in _one_error_line(capsys)


def test_parquet_with_list_valued_ids_is_one_line(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"user_id": [[1, 2], [3]], "item_id": [1, 2]}).to_parquet(tmp_path / "lists.parquet")
    assert main(["datasets", "describe", str(tmp_path / "lists.parquet")]) == 2
    assert "'user_id' holds list values" in _one_error_line(capsys)


# --------------------------------------------------------------------------- a full disk leaves nothing behind
def _enospc(*args, **kwargs):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_found_before_training(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    from recsampling.recommender import Recommender

    data = _rated_csv(tmp_path / "rated.csv")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 100))
    fitted = []
    monkeypatch.setattr(Recommender, "fit", lambda self, *a, **k: fitted.append(1))
    assert main(["train", "--dataset", str(data), "--out", str(tmp_path / "model")]) == 2
    assert "100 B free" in _one_error_line(capsys)
    assert not fitted and sorted(p.name for p in tmp_path.iterdir()) == ["rated.csv"]


def test_a_save_that_fails_leaves_no_file_and_the_old_model_intact(saved_model, model_copy, tmp_path, capsys,
                                                                   monkeypatch):
    import torch

    from recsampling.recommender import Recommender

    def partial_then_full(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"\0" * 1000)
        _enospc()

    monkeypatch.setattr(torch, "save", partial_then_full)
    data = _rated_csv(tmp_path / "rated.csv")
    before = {p.name: p.read_bytes() for p in model_copy.iterdir()}
    for out in (tmp_path / "new", model_copy):  # a folder this run would create, and one holding a model
        assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(out), "-q"]) == 2
        assert "No space left on device" in _one_error_line(capsys)
    assert not (tmp_path / "new").exists()
    assert {p.name: p.read_bytes() for p in model_copy.iterdir()} == before
    assert Recommender.load(model_copy).train_.nnz > 0


def test_a_bench_write_that_fails_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    from pathlib import Path as _Path

    real = _Path.write_text

    def full_for_temporaries(self, text, *args, **kwargs):
        if ".tmp" in self.name:
            real(self, text[: len(text) // 2], *args, **kwargs)
            _enospc()
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(_Path, "write_text", full_for_temporaries)
    out = tmp_path / "run"
    assert main(["bench", "--quick", "--datasets", "synthetic", "--models", "mf", "--samplers", "bpr", "--seeds", "1",
                 "--epochs", "1", "--no-plots", "--quiet", "--out", str(out)]) == 2
    assert "No space left on device" in _one_error_line(capsys)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_atomic_write_removes_its_temporary_on_any_failure(tmp_path):
    from recsampling._files import atomic_write

    target = tmp_path / "f.txt"
    target.write_text("old")

    def fails(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fails)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    atomic_write(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_an_unwritable_out_folder_is_refused_before_training(tmp_path, capsys):
    data = _rated_csv(tmp_path / "rated.csv")
    assert main(["train", "--dataset", str(data), "--out", str(data / "model")]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys)


# --------------------------------------------------------------------------- output: progress and verbosity
def test_piped_training_writes_one_line_per_epoch_and_no_bar(tmp_path, capsys, caplog):
    import logging

    data = _rated_csv(tmp_path / "rated.csv")
    with caplog.at_level(logging.INFO, logger="recsampling.progress"):
        assert main(["train", "--dataset", str(data), "--epochs", "2"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "recsampling.progress"]
    assert len(lines) == 2 and "epoch 2/2" in lines[1]
    assert "\r" not in capsys.readouterr().err  # stderr is no terminal here: no tqdm bar
    caplog.clear()
    assert main(["-q", "train", "--dataset", str(data), "--epochs", "2"]) == 0
    assert not [r for r in caplog.records if r.name == "recsampling.progress"]


def test_verbosity_flags_set_the_library_level_and_are_restored(tmp_path, caplog):
    import logging

    data = _rated_csv(tmp_path / "rated.csv")
    before = logging.getLogger("recsampling").level
    with caplog.at_level(logging.NOTSET):
        assert main(["-v", "datasets", "describe", str(data)]) == 0
        assert any("columns" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
        caplog.clear()
        assert main(["datasets", "describe", str(data)]) == 0
        assert not [r for r in caplog.records if r.levelno == logging.INFO]
    assert logging.getLogger("recsampling").level == before


def test_tune_reports_each_trial_and_records_its_settings(tmp_path, capsys, caplog):
    import logging

    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with caplog.at_level(logging.INFO):
        assert main(["tune", "--quick", "--trials", "1", "--epochs", "1", "--storage", storage, "--json"]) == 0
    assert any(r.getMessage().startswith("Trial 0 finished") for r in caplog.records)
    study = optuna.load_study(study_name="synthetic-mf-bpr", storage=storage)
    assert study.user_attrs["epochs"] == 1 and study.user_attrs["quick"] is True


def test_tune_refuses_a_study_run_with_other_epochs(tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="synthetic-mf-bpr", storage=storage, direction="maximize")
    for key, value in {"epochs": 5, "quick": True, "split_seed": 0, "metric": "ndcg@10"}.items():
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(value=0.1))
    capsys.readouterr()
    assert main(["tune", "--quick", "--epochs", "3", "--storage", storage]) == 2
    assert "--epochs 5" in _one_error_line(capsys)
    assert len(optuna.load_study(study_name="synthetic-mf-bpr", storage=storage).trials) == 1


def test_tune_whose_trials_all_fail_exits_1_without_tracebacks(tmp_path, capsys, monkeypatch):
    from recsampling.recommender import Recommender

    def broken(self, *args, **kwargs):
        raise ValueError("this fit is broken")

    monkeypatch.setattr(Recommender, "fit", broken)
    assert main(["tune", "--quick", "--trials", "2", "--epochs", "1", "--run-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "every trial this run started failed (2" in err
