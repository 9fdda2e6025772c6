"""Issue 17's reproductions as tests: every bad input is a clear error or gives the correct result.

The contract, for each case: the Python API raises ``ValueError`` (or returns the right thing);
the command exits 2 with exactly one ``recsampling: error:`` line on stderr, no traceback, and no
file left behind in the output folder; nothing ever exits 139. Organised by the issue's items.
Cases tests/test_cli.py already runs (the config, split.json and recommender.json edits, bench
--tuned, disk full, --device, ...) stay there; item 6 (fold-in) is tests/test_foldin.py, item 7
(two-tower determinism) tests/test_models.py, item 8 (divergence) tests/test_train.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from recsampling.cli import main
from recsampling.data import Interactions
from recsampling.recommender import Recommender
from tests.test_cli import _edit_checkpoint, _one_error_line, _rated_csv


def _world(n_users=30, n_items=20, nnz=300, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    return Interactions.from_indices(rng.integers(0, n_users, nnz), rng.integers(0, n_items, nnz),
                                     (n_users, n_items))


@pytest.fixture(scope="module")
def fitted() -> Recommender:
    return Recommender(model_params={"factors": 8}, epochs=1, n_threads=1, device="cpu", random_state=0).fit(_world())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """'train --out' on a small rated CSV: (the CSV, the model folder)."""
    folder = tmp_path_factory.mktemp("abuse")
    data = _rated_csv(folder / "rated.csv")
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(folder / "model"), "-q"]) == 0
    return data, folder / "model"


@pytest.fixture
def model_dir(trained, tmp_path):
    import shutil

    return shutil.copytree(trained[1], tmp_path / "model")


def _error(capsys, argv, out=None) -> str:
    """Run the command in this process: exit 2, one error line, and no temporary left in ``out``."""
    capsys.readouterr()
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith("recsampling: error: ")
    if out is not None:
        assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.startswith(".saving")]
    return line


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    """The command (or ``python -c`` for a list starting with "-c") in a fresh process."""
    cmd = [sys.executable, *argv] if argv[0] == "-c" else [sys.executable, "-m", "recsampling.cli", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode not in (139, -11), proc.stderr  # a segfault
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


# --------------------------------------------------------------------------- 1. the CSR bounds (a segfault)
_ITEM1 = textwrap.dedent("""
    import numpy as np, scipy.sparse as sp, torch
    from recsampling import Recommender
    from recsampling.data import Interactions

    def refused(make):
        try:
            make()
        except ValueError as e:
            print("refused:", e)
        else:
            print("ACCEPTED")

    m = sp.csr_matrix((np.ones(3, np.float32), np.array([0, 1, 10**7]), np.array([0, 2, 3])), shape=(2, 4))
    def fit(it):
        Recommender(optimizer="sgd", epochs=1, n_threads=1, device="cpu").fit(it)
    refused(lambda: fit(Interactions(matrix=m, user_ids=np.arange(2), item_ids=np.arange(4))))
    refused(lambda: fit(Interactions.from_csr(m)))
    coo = sp.coo_matrix((np.ones(2, np.float32), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 4))
    coo.row[1] = 5  # edited after scipy checked it
    refused(lambda: fit(Interactions.from_csr(coo)))
""")


def test_1_a_csr_outside_its_shape_is_refused_before_any_kernel_runs():
    proc = _run(["-c", _ITEM1])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused: ") for line in lines), proc.stdout
    assert "index 10000000" in lines[0]


def _edit_blob(path, edit):
    from recsampling._checksums import record_checksum

    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)
    record_checksum(path)  # whoever edited the file rewrote the manifest too


def _big_index(blob):
    blob["train"]["indices"][-1] = 10**7


def _negative_index(blob):
    blob["train"]["indices"][0] = -1


def _short_indptr(blob):
    blob["train"]["indptr"] = blob["train"]["indptr"][:-1]


@pytest.mark.parametrize("edit, expected", [(_big_index, "column index 10000000"), (_negative_index, "column index -1"),
                                            (_short_indptr, "indptr must have")])
def test_1_a_checkpoint_with_edited_indices_is_one_line_not_a_crash(model_dir, capsys, edit, expected):
    _edit_blob(model_dir / "model.pt", edit)
    assert expected in _error(capsys, ["recommend", "--model-dir", str(model_dir), "--users", "0"])
    assert expected in _error(capsys, ["evaluate", "--model-dir", str(model_dir)])


def test_1_the_edited_checkpoint_in_a_fresh_process(model_dir):
    _edit_blob(model_dir / "model.pt", _big_index)
    proc = _run(["recommend", "--model-dir", str(model_dir), "--users", "0"])
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("recsampling: error: "), proc.stderr


# --------------------------------------------------------------------------- 2. a file's columns
def test_2_a_files_rating_column_is_read_and_the_threshold_applied_in_python(tmp_path):
    from recsampling.data import load_dataset

    data = load_dataset(str(_rated_csv(tmp_path / "rated.csv", "userId,movieId,rating,timestamp")))
    d = data.interactions.describe()
    assert d["has_ratings"] and d["has_timestamps"] and (d["rating_min"], d["rating_max"]) == (1.0, 5.0)
    assert data.interactions.to_implicit(4).nnz == data.interactions.nnz // 2  # the 1-star half is dropped


@pytest.mark.parametrize("flag, expected", [
    (["--timestamp-col", "when"], "'when'"),
    (["--item-col", "user_id"], "user_id"),
])
def test_2_a_column_flag_the_file_cannot_honour_is_one_line(tmp_path, capsys, flag, expected):
    data = _rated_csv(tmp_path / "rated.csv")
    assert expected in _error(capsys, ["train", "--dataset", str(data), *flag, "--out", str(tmp_path / "m")], tmp_path)
    assert not (tmp_path / "m").exists()


def test_2_a_non_numeric_rating_names_file_column_and_line(tmp_path, capsys):
    data = tmp_path / "bad.csv"
    data.write_text("user_id,item_id,rating\n1,2,5\n1,3,five\n")
    line = _error(capsys, ["datasets", "describe", str(data)])
    assert "bad.csv" in line and "'rating'" in line and "five" in line


# --------------------------------------------------------------------------- 3. raw ids kept exactly
def test_3_big_and_text_ids_from_a_file_round_trip_through_train_and_recommend(tmp_path, capsys):
    rows = [f"{2**63 + u},00{i},5" for u in range(12) for i in range(u % 5, u % 5 + 6)]
    data = tmp_path / "ids.csv"
    data.write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "model"
    assert main(["train", "--dataset", str(data), "--epochs", "1", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["recommend", "--model-dir", str(out), "--users", str(2**63 + 3), "--json"]) == 0
    items = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["recommendations"][str(2**63 + 3)]
    assert items and all(isinstance(i, str) and i.startswith("00") for i in items)  # "007" stays "007"
    rec = Recommender.load(out)
    assert rec.train_.user_ids.dtype == np.uint64 and int(rec.train_.user_ids.max()) == 2**63 + 11


@pytest.mark.parametrize("ids", [np.array([1, "1", 2.5], dtype=object), np.array([2**64 - 1, 0, 7], dtype=np.uint64)])
def test_3_raw_ids_of_mixed_or_unsigned_types_recommend_after_save_and_load(tmp_path, ids):
    it = Interactions.from_arrays(np.repeat(ids, 4), [0, 1, 2, 3, 2, 3, 4, 5, 0, 2, 4, 5])
    rec = Recommender(epochs=1, n_threads=1, device="cpu", random_state=0).fit(it)
    back = Recommender.load(rec.save(tmp_path / "m"))
    assert [type(x) for x in back.train_.user_ids] == [type(x) for x in it.user_ids]
    np.testing.assert_array_equal(back.recommend(ids[:2], k=2, raw_ids=True)[0], rec.recommend(ids[:2], k=2, raw_ids=True)[0])


# --------------------------------------------------------------------------- 4. evaluation data in the model's index space
def test_4_evaluate_refuses_a_data_file_whose_ids_changed_since_training(trained, tmp_path, capsys):
    import shutil

    data, model = trained
    changed = tmp_path / "rated.csv"
    changed.write_text(data.read_text().replace("\n0,", "\n1000,"))  # user 0 is now user 1000
    folder = shutil.copytree(model, tmp_path / "model")
    line = _error(capsys, ["evaluate", "--model-dir", str(folder), "--dataset", str(changed)])
    assert "ids differ from this model's" in line


# --------------------------------------------------------------------------- 5. checksums of every saved file
def _flip(path, n=64):
    raw = bytearray(path.read_bytes())
    at = len(raw) // 2
    raw[at:at + n] = bytes(b ^ 0xFF for b in raw[at:at + n])
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("name", ["model.pt", "recommender.json", "split.json"])
def test_5_a_corrupted_file_of_a_model_folder_is_named(model_dir, capsys, name):
    path = model_dir / name
    if name.endswith(".json"):  # still valid JSON: only the checksum can tell
        path.write_text(path.read_text().replace("0", "1", 1))
    else:
        _flip(path)
    line = _error(capsys, ["evaluate", "--model-dir", str(model_dir)])
    assert f"{name}' is corrupted or was changed" in line


def test_5_a_split_json_saved_before_it_had_a_checksum_loads_with_a_warning(model_dir, capsys, caplog):
    manifest = model_dir / "SHA256SUMS"
    manifest.write_text("".join(line + "\n" for line in manifest.read_text().splitlines()
                                if not line.endswith("split.json")))
    with caplog.at_level("WARNING"):
        assert main(["evaluate", "--model-dir", str(model_dir), "--json", "-q"]) == 0
    assert any("split.json has no checksum" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- 9. tuning
def test_9_run_study_records_its_settings_and_refuses_a_rerun_with_other_epochs(tmp_path):
    optuna = pytest.importorskip("optuna")
    from recsampling.data.splits import validation_split
    from recsampling.tuning import run_study

    inner = validation_split(_world(), 0.2, random_state=0)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    args = dict(n_trials=1, storage=storage, study_name="s", heartbeat_interval=None, device="cpu", n_threads=1)
    study = run_study("mf", "bpr", inner.train, inner.eval_test, epochs=1, **args)
    assert {k: study.user_attrs[k] for k in ("model", "sampler", "epochs", "metric")} == \
        {"model": "mf", "sampler": "bpr", "epochs": 1, "metric": "ndcg@10"}
    for change, expected in ((dict(epochs=2), "epochs=1"), (dict(epochs=1, metric="recall@10"), "metric='ndcg@10'")):
        with pytest.raises(ValueError, match=expected):
            run_study("mf", "bpr", inner.train, inner.eval_test, **{**args, **change})
    with pytest.raises(ValueError, match="sampler='bpr'"):
        run_study("mf", "dns", inner.train, inner.eval_test, epochs=1, **args)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1  # nothing ran


# --------------------------------------------------------------------------- 10. one line, not a traceback
def _factors(meta, value):
    meta["model"]["params"]["factors"] = value


@pytest.mark.parametrize("value", [10**12, 10**6])
def test_10_an_edited_factors_is_found_before_the_model_is_built(model_dir, capsys, value):
    _edit_checkpoint(model_dir / "model.pt", lambda m: _factors(m, value))
    line = _error(capsys, ["recommend", "--model-dir", str(model_dir), "--users", "0"])
    assert "do not fit the model" in line and "out of memory" not in line


@pytest.mark.parametrize("shape, expected", [((10**12, 10), "of memory"), ((10**10, 10**10), "int64"),
                                            ((3, -1), "integers >= 0"), ((3,), "n_users, n_items")])
def test_10_a_shape_that_cannot_be_built_is_a_value_error(shape, expected):
    with pytest.raises(ValueError, match=expected):
        Interactions.from_indices([0, 1], [0, 1], shape)


@pytest.mark.parametrize("make, expected", [
    (lambda it: Interactions.from_dataframe(__import__("pandas").DataFrame({"user_id": [[1, 2], [3]], "item_id": [1, 2]})),
     "'user_id' holds list values"),
    (lambda it: Interactions.from_dataframe(__import__("pandas").DataFrame({"user_id": [1, 2], "item_id": [{1}, 2]})),
     "'item_id' holds set values"),
    (lambda it: Interactions.from_arrays([[1], [2]], [1, 2]), "users must be one-dimensional"),
    (lambda it: Interactions.from_arrays([1, 2, 3], [1, 2]), "same length"),
])
def test_10_unusable_ids_are_a_value_error(make, expected):
    with pytest.raises(ValueError, match=expected):
        make(None)


@pytest.mark.parametrize("params, expected", [
    (dict(sampler_params={"n_negatives": 10**12}), "n_negatives=1000000000000 is more than the 20 items"),
    (dict(sampler_params={"n_negatives": 21}), "n_negatives=21 is more than the 20 items"),
    (dict(sampler="dns", sampler_params={"n_candidates": 21}), "n_candidates=21 is more than the 20 items"),
    (dict(sampler="dla", sampler_params={"n_sampled": 10**9}), "n_sampled=1000000000 is more than"),
    (dict(model_params={"factors": 10**12}), "factors=1000000000000.*of memory"),
    (dict(model="twotower", model_params={"factors": 10**12}), "factors=1000000000000.*of memory"),
])
def test_10_sizes_beyond_the_catalogue_or_memory_are_a_value_error_before_training(params, expected):
    with pytest.raises(ValueError, match=expected):
        Recommender(epochs=1, n_threads=1, device="cpu", **params).fit(_world())


def test_10_the_trainer_itself_bounds_a_samplers_counts():
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    train = _world()
    with pytest.raises(ValueError, match="n_negatives=1000000000000 is more than the 20 items"):
        Trainer(epochs=1, device="cpu", progress=False).fit(make_model("mf", train), make_sampler("bpr", n_negatives=10**12),
                                                            train)


@pytest.mark.parametrize("call, expected", [
    (lambda rec: rec.recommend(k=10**10), "top-10000000000 lists.*of memory"),
    (lambda rec: rec.recommend_new_user([1, 2], k=10**10), "top-10000000000 lists.*of memory"),
    (lambda rec: rec.evaluate(rec.train_, ks=(10, 10**10)), "cut-off k=10000000000 is more than the 20 items"),
])
def test_10_list_lengths_that_cannot_be_allocated_are_a_value_error(fitted, call, expected):
    with pytest.raises(ValueError, match=expected):
        call(fitted)


def test_10_a_list_longer_than_the_catalogue_is_padded(fitted):
    ids, scores = fitted.recommend([0], k=25, exclude_seen=False)
    assert ids.shape == (1, 25) and (ids[0, 20:] == -1).all() and sorted(ids[0, :20]) == list(range(20))


def test_10_train_refuses_sizes_before_training_and_leaves_no_folder(tmp_path, capsys):
    data = _rated_csv(tmp_path / "rated.csv")
    flags = ["--sampler", "dla", "--sampler-param", "n_sampled=1000000000"]
    assert "n_sampled=1000000000 is more than the 20 items" in _error(
        capsys, ["train", "--dataset", str(data), "--out", str(tmp_path / "m"), *flags], tmp_path)
    assert not (tmp_path / "m").exists()


def test_10_sizes_in_a_fresh_process(tmp_path):
    data = _rated_csv(tmp_path / "rated.csv")
    proc = _run(["train", "--dataset", str(data), "--sampler-param", "n_negatives=1000000000000",
                 "--out", str(tmp_path / "m")])
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "more than the 20 items" in err[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rated.csv"]


# --------------------------------------------------------------------------- 11. output
def test_11_a_piped_fit_draws_no_bar_and_logs_one_line_per_epoch(capsys, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="recsampling.progress"):
        Recommender(epochs=3, n_threads=1, device="cpu", progress=True, random_state=0).fit(_world())
    assert "\r" not in capsys.readouterr().err  # stderr is not a terminal here: no tqdm bar
    lines = [r.getMessage() for r in caplog.records if r.name == "recsampling.progress"]
    assert len(lines) == 3 and lines[-1].startswith("bpr: epoch 3/3, loss ")


def test_11_pyarrow_is_a_dependency_of_the_main_install():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert "pyarrow" in cfg["options"]["install_requires"]
