import json
import multiprocessing as mp
import time

import pytest

optuna = pytest.importorskip("optuna")

from recsampling.data import make_world  # noqa: E402
from recsampling.data.splits import validation_split  # noqa: E402
from recsampling.tuning import run_study, search_space  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _data():
    w = make_world(120, 150, 2000, random_state=0)
    s = validation_split(w.clicks, 0.2, random_state=0)
    return s.train, s.eval_test


def _study(storage, n_trials, name="t", **kw):
    train, valid = _data()
    kw = {"seed": 0, **kw}
    return run_study("mf", "bpr", train, valid, n_trials=n_trials, storage=storage, study_name=name,
                     epochs=3, n_startup_trials=2, n_warmup_steps=1, device="cpu", batch_size=512, **kw)


def test_study_runs_prunes_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = _study(storage, 8)
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert optuna.trial.TrialState.PRUNED in states
    done = {t.number: (t.value, t.params) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert done
    # every trial reported the metric per epoch
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)

    resumed = _study(storage, 3)
    assert len(resumed.trials) == 11
    again = {t.number: (t.value, t.params) for t in resumed.trials if t.number in done}
    assert again == done


def test_search_space_has_method_knobs():
    for sampler, knobs in [("nbpo", {"flip_l2", "n_negatives"}), ("relmf", {"clip", "eta"}),
                           ("ubpr", {"clip", "eta"}), ("dla", {"propensity_lr"}), ("bpr", {"n_negatives"})]:
        trial = optuna.create_study().ask()
        params = search_space(trial, "mf", sampler)
        assert knobs <= set(params["sampler_params"]), sampler
        assert {"lr", "l2", "factors"} <= set(trial.params)
    with pytest.raises(ValueError):
        search_space(optuna.create_study().ask(), "mf", "no-such-sampler")


def _worker(storage):
    import torch
    torch.set_num_threads(1)
    _study(storage, 3, name="shared")


def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="shared", storage=storage, direction="maximize")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(storage,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.is_finished() for t in trials)


@pytest.mark.parametrize("kwargs", [{"sampler": "no-such-sampler"}, {"model": "no-such-model"},
                                    {"metric": "ndcg"}, {"metric": "foo@10"}])
def test_run_study_rejects_bad_arguments_before_creating_a_study(tmp_path, kwargs):
    # a typo must raise, not end as a study of failed trials (which optimize(catch=ValueError) hid)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    train, valid = _data()
    args = {"model": "mf", "sampler": "bpr", "metric": "ndcg@10", **kwargs}
    with pytest.raises(ValueError, match="sampler|model|metric"):
        run_study(args["model"], args["sampler"], train, valid, n_trials=1, storage=storage, study_name="bad",
                  epochs=1, metric=args["metric"], device="cpu")
    assert optuna.study.get_all_study_names(storage=storage) == []


def test_run_study_creates_the_folder_of_a_sqlite_storage(tmp_path, monkeypatch):
    # the README's `--storage sqlite:///runs/tuning/studies.db` on a fresh clone: runs/tuning/ is absent
    monkeypatch.chdir(tmp_path)
    train, valid = _data()
    study = run_study("mf", "bpr", train, valid, n_trials=0, storage="sqlite:///runs/tuning/s.db", study_name="x",
                      epochs=1, device="cpu")
    assert study.study_name == "x" and (tmp_path / "runs" / "tuning" / "s.db").is_file()


@pytest.mark.parametrize("storage", ["runs/s.db", "postgresql://nobody:secret@localhost:1/none"])
def test_run_study_says_when_a_storage_cannot_be_opened(storage):
    train, valid = _data()
    with pytest.raises(ValueError, match="storage") as e:
        run_study("mf", "bpr", train, valid, n_trials=1, storage=storage, epochs=1, device="cpu")
    assert "secret" not in str(e.value)  # nor the password


def test_a_postgres_storage_without_its_driver_names_the_extra(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("psycopg", "psycopg2") else find_spec(name, *a))
    train, valid = _data()
    with pytest.raises(ValueError, match=r"recsampling\[postgres\]"):
        run_study("mf", "bpr", train, valid, n_trials=1, storage="postgresql://u@localhost/db", epochs=1, device="cpu")


@pytest.mark.parametrize("kwargs", [{"heartbeat_interval": 5, "grace_period": 5}, {"heartbeat_interval": 0},
                                    {"heartbeat_interval": None, "retries": 1}, {"retries": -1}, {"seed": -1}])
def test_run_study_rejects_bad_worker_settings_before_creating_a_study(tmp_path, kwargs):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match="heartbeat|grace|retries|seed"):
        _study(storage, 1, **kwargs)
    assert not (tmp_path / "s.db").exists()


def test_a_trial_whose_worker_died_is_failed_and_run_again_on_sqlite(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    dead = optuna.create_study(study_name="t", storage=storage, direction="maximize")
    lost = dead.ask()  # a worker drew a configuration, wrote a heartbeat and died in the trial
    search_space(lost, "mf", "bpr")
    optuna.storages.RDBStorage(storage).record_heartbeat(lost._trial_id)
    # past the grace period by more than a second: the storage's clock may count whole seconds, and
    # 0.5 s of margin let a fresh clone's first trial start before the lost one counted as stale
    time.sleep(3.5)

    study = _study(storage, 1, heartbeat_interval=1, grace_period=2, retries=1)  # the next worker to start
    trials = sorted(study.trials, key=lambda t: t.number)
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert len(trials) == 2 and trials[1].state.is_finished()
    assert trials[1].params == lost.params  # the one trial this call ran was the retry


def test_tune_summary_counts_finished_trials_only(tmp_path, capsys):
    from recsampling.cli import main

    storage = f"sqlite:///{tmp_path / 's.db'}"
    other = optuna.create_study(study_name="synthetic-mf-bpr", storage=storage, direction="maximize")
    running = other.ask()  # another worker is in a trial, alive (fresh heartbeat)
    optuna.storages.RDBStorage(storage).record_heartbeat(running._trial_id)
    assert main(["tune", "--quick", "--trials", "2", "--epochs", "1", "--storage", storage, "--json", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["studies"][0]
    assert row["running"] == 1 and row["finished"] == 2 == row["complete"] + row["pruned"] + row["failed"]
