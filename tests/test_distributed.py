"""Work spread over several processes: Optuna workers on PostgreSQL, data-parallel training under torchrun."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from _postgres import postgres_server, postgres_url  # noqa: F401 (the fixtures)

from recsampling.data import make_world
from recsampling.data.splits import validation_split
from recsampling.distributed import Context, shard_order
from recsampling.tuning import _open_storage, run_study, search_space

# ---- Optuna workers on PostgreSQL
# `recsampling tune` processes sharing one study: their draws differ, and the trial of a worker
# killed mid-trial is failed (heartbeat) and run again, never left RUNNING.

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = {"COMPLETE", "PRUNED", "FAIL"}
_CLI = "import sys; from recsampling.cli import main; sys.exit(main(sys.argv[1:]))"
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _params(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_workers_with_the_same_seed_draw_different_parameters_and_one_process_replays_them(tmp_path):
    w = make_world(120, 150, 2000, random_state=0)
    s = validation_split(w.clicks, 0.2, random_state=0)

    def open_study(path):
        return run_study("mf", "bpr", s.train, s.eval_test, n_trials=0, storage=f"sqlite:///{path}",
                         study_name="shared", seed=0, epochs=1, device="cpu", n_startup_trials=5,
                         heartbeat_interval=None)  # asked trials below are never run: no heartbeat

    # two workers that both started on the empty study, then ask for a trial each
    first, second = open_study(tmp_path / "shared.db"), open_study(tmp_path / "shared.db")
    drawn = []
    for worker in (first, second):
        trial = worker.ask()
        search_space(trial, "mf", "bpr")
        drawn.append(trial.params)
    assert drawn[0] != drawn[1]
    # one process with the same seed on a fresh study draws the same, trial after trial
    alone = open_study(tmp_path / "alone.db")
    replay = []
    for _ in drawn:
        trial = alone.ask()
        search_space(trial, "mf", "bpr")
        alone.tell(trial, 0.0)
        replay.append(trial.params)
    assert replay == drawn


def _tune(args, **kw):
    return subprocess.Popen([sys.executable, "-c", _CLI, "tune", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **_ONE_THREAD}, **kw)


def _worker(proc) -> str:
    return f"{socket.gethostname()}:{proc.pid}"


def _wait(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_tune_workers_on_postgres_a_killed_workers_trial_is_failed_and_retried(postgres_url):  # noqa: F811
    grace = 4
    common = ["--quick", "--epochs", "1", "--storage", postgres_url, "--heartbeat", "1",
              "--grace-period", str(grace), "--retry-failed", "1", "--json", "--quiet"]
    storage = _open_storage(postgres_url)

    def trials():
        try:
            return optuna.load_study(study_name="synthetic-mf-bpr", storage=storage).get_trials(deepcopy=False)
        except KeyError:  # no worker has made the study yet
            return []

    a, b = _tune([*common, "--trials", "4"]), _tune([*common, "--trials", "50"])
    c = None
    try:
        # b is killed while it trains in one of its trials (all 4 parameters drawn)
        _wait(lambda: [t for t in trials() if t.state.name == "RUNNING" and len(t.params) == 4
                       and t.user_attrs.get("worker") == _worker(b)], 90, "worker b to train in a trial")
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        killed_at = time.monotonic()
        time.sleep(0.3)  # a trial a has just begun has its worker attribute by then
        at_kill = trials()
        lost = [t for t in at_kill if t.state.name == "RUNNING" and t.user_attrs.get("worker") != _worker(a)]
        assert len(lost) == 1, "b was killed between two trials"
        lost = lost[0]
        not_a = sum(t.user_attrs.get("worker") != _worker(a) for t in at_kill)
        # b restarted once its lost trial is stale, beside a (which may fail and retry it first)
        time.sleep(max(0.0, killed_at + grace + 1 - time.monotonic()))
        c = _tune([*common, "--trials", "1"])
        ended = []  # a and c, in the order they end
        _wait(lambda: ended.extend(p for p in (a, c) if p not in ended and p.poll() is not None) or len(ended) == 2,
              120, "workers a and c to end")
        outs = {p: p.communicate() for p in ended}
        assert [p.returncode for p in ended] == [0, 0], [outs[p][1][-2000:] for p in ended]
    finally:
        for p in (a, b, c):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()

    final = sorted(trials(), key=lambda t: t.number)
    assert {t.state.name for t in final} <= FINISHED  # nothing left RUNNING (or queued)
    assert len(final) == not_a + 4 + 1  # b's trials until the kill, a's 4, c's 1: every one accounted for
    by_number = {t.number: t for t in final}
    assert by_number[lost.number].state.name == "FAIL"
    assert [t.number for t in final if t.state.name == "FAIL"] == [lost.number]
    retries = [t for t in final if t.system_attrs.get("failed_trial") is not None]
    assert [t.system_attrs["failed_trial"] for t in retries] == [lost.number]
    assert retries[0].state.name in ("COMPLETE", "PRUNED") and retries[0].params == lost.params
    fresh = [_params(t) for t in final if t not in retries]
    assert len(set(fresh)) == len(fresh)  # no parameter set drawn twice
    # the summary of the worker that ended last: its trials in flight (if any) are not counted as done
    row = json.loads(outs[ended[-1]][0].strip().splitlines()[-1])["studies"][0]
    assert row["finished"] + row["running"] == len(final) and row["waiting"] == 0 and row["failed"] == 1
    assert row["finished"] == row["complete"] + row["pruned"] + row["failed"]


# ---- data-parallel training under torchrun (gloo, 2 CPU processes)
TESTS = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_shards_are_disjoint_cover_every_row_and_have_equal_sizes():
    n, world = 1001, 3
    rng = np.random.default_rng(0)
    shards = [shard_order(n, rng, (r, world)) for r in range(world)]
    assert {s.size for s in shards} == {-(-n // world)}
    owned = [set(s.tolist()) for s in shards]
    assert set().union(*owned) == set(range(n))
    assert sum(len(o) for o in owned) == n  # the padding repeats a rank's own rows only
    assert all(np.all(np.asarray(sorted(o)) % world == r) for r, o in enumerate(owned))
    # one process: the plain permutation, the same draws as before sharding existed
    assert np.array_equal(shard_order(n, np.random.default_rng(5)), np.random.default_rng(5).permutation(n))


def test_context_outside_torchrun_is_one_process(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    from recsampling.distributed import context

    assert context() == Context(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5"):
        context()


def test_fused_backend_is_refused_under_torchrun(monkeypatch):
    from recsampling.data.synthetic import make_world
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    train = make_world(n_users=60, n_items=40, target_interactions=300, random_state=0).clicks
    # a fake two-process context: the refusal comes before any process group is needed
    monkeypatch.setattr("recsampling.distributed.context", lambda: Context(0, 2, 0))
    monkeypatch.setattr("recsampling.distributed.init", lambda device: Context(0, 2, 0))
    with pytest.raises(ValueError, match="torchrun started 2"):
        Trainer(epochs=1, optimizer="sgd", backend="fused", progress=False).fit(
            make_model("mf", train, factors=4, random_state=0), make_sampler("bpr"), train)


@pytest.mark.slow
def test_every_rank_ends_with_the_same_weights_and_inbatch_sees_the_global_batch(tmp_path):
    _run(TORCHRUN + [str(TESTS / "ddp_worker.py"), str(tmp_path)])
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name, fit in ranks[0]["fits"].items():
        assert fit["world_size"] == 2, name
        assert fit["digest"] == ranks[1]["fits"][name]["digest"], f"{name}: the ranks' weights differ"
        assert np.isfinite(fit["loss"]), name
    for r in ranks:
        assert r["inbatch_grad_error"] < 1e-6


@pytest.mark.slow
def test_two_processes_match_one_in_quality_and_repeat_exactly():
    cmd = ["recsampling", "train", "--dataset", "synthetic", "--epochs", "5", "--json", "--threads", "1"]
    exe = str(Path(sys.executable).with_name("recsampling"))
    one = json.loads(_run([exe] + cmd[1:]).stdout.strip().splitlines()[-1])
    runs = []
    for _ in range(2):
        out = _run(TORCHRUN + ["--no-python", exe] + cmd[1:]).stdout.strip().splitlines()
        assert sum("ndcg@10" in line for line in out) == 1  # only rank 0 prints
        runs.append(json.loads(out[-1]))
    two = runs[0]
    assert one["world_size"] == 1 and two["world_size"] == 2
    se = np.hypot(one["ndcg@10_sem"], two["ndcg@10_sem"])
    assert abs(two["ndcg@10"] - one["ndcg@10"]) <= 2 * se, (one["ndcg@10"], two["ndcg@10"], se)
    assert runs[0] == runs[1]  # same seed, same world size: the same result
