"""benchmarks/tuned_quality.py: every contender tuned with the same budget, on a tiny synthetic world."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "tuned_quality.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


def test_quick_json_has_every_contender_with_its_tuned_figures(tmp_path):
    out = tmp_path / "tq.json"
    names = ["mf+bpr", "implicit+als", "implicit+bpr", "implicit+itemknn", "popularity"]
    r = _run("--quick", "--json", "--trials", "2", "--seeds", "2", "--threads", "1", "--contenders", ",".join(names),
             "--out", str(out))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == json.loads(out.read_text())
    assert list(got["contenders"]) == names and got["finished"] and got["trials"] == 2
    for name, c in got["contenders"].items():
        for fig in ("ndcg@10", "recall@10"):
            assert 0.0 < c[fig]["mean"] <= 1.0 and c[fig]["se"] >= 0.0
        assert len(c["per_seed"]) == 2
        assert c["trials"]["run"] == (0 if name == "popularity" else 2)
    assert set(got["contenders"]["implicit+als"]["best_params"]) == {"factors", "regularization", "alpha", "iterations"}
    assert {"K", "similarity"} <= set(got["contenders"]["implicit+itemknn"]["best_params"])
    assert got["contenders"]["mf+bpr"]["best_params"]["epochs"] in (1, 2)
    assert got["best_ours_mf"] == {"name": "mf+bpr", "ndcg@10": got["contenders"]["mf+bpr"]["ndcg@10"]}
    assert got["implicit_als"] == {"name": "implicit+als", "ndcg@10": got["contenders"]["implicit+als"]["ndcg@10"]}
    assert got["target_met"] == (got["best_ours_mf"]["ndcg@10"]["mean"] >= got["implicit_als"]["ndcg@10"]["mean"])


def test_an_unknown_contender_is_a_usage_error_naming_the_known_ones():
    r = _run("--quick", "--contenders", "mf+nope")
    assert r.returncode == 2 and "mf+nope" in r.stderr and "implicit+als" in r.stderr
