"""benchmarks/training_speed.py: both modes run end to end and print the keys the issue names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training_speed.py"


def _run(*args) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--quick", "--threads", "1", "--json", *args],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_samplers_mode_reports_every_pair():
    res = _run("--samplers", "bpr,inbatch,dla", "--torch-batch", "1024")
    assert res["implicit_samples_per_s"] > 0
    assert set(res["samplers"]) == {"mf+bpr", "mf+dla", "twotower+bpr", "twotower+inbatch", "twotower+dla"}
    for key, row in res["samplers"].items():
        assert row["samples_per_s"] > 0 and row["ratio"] > 0 and 0 <= row["ndcg@10"] <= 1, key
    assert res["samplers"]["mf+bpr"]["backend"] == "fused" and "ndcg@10_torch" in res["samplers"]["mf+bpr"]
    assert res["samplers"]["twotower+inbatch"]["backend"] == "torch"


@pytest.mark.slow
def test_default_mode_keeps_its_keys():
    res = _run("--epochs", "1")
    assert {"ratio", "ours_samples_per_s", "implicit_samples_per_s"} <= set(res)
    assert res["backend"] == "fused"


def test_unknown_sampler_is_a_usage_error():
    out = subprocess.run([sys.executable, str(SCRIPT), "--samplers", "nope"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "unknown model or sampler" in out.stderr
