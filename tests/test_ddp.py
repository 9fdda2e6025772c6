# ---- data-parallel training under torchrun (gloo, 2 CPU processes)
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsampling.distributed import Context, shard_order

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
