"""benchmarks/scale.py: --help, a usage error, and a --quick run that reports every step the issue names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"
STEPS = {"mf+bpr", "mf+nbpo", "mf+relmf", "mf+ubpr", "twotower+bpr", "implicit+als"}


def _run(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_help_names_the_sizes_and_the_json_flag():
    out = _run("--help", timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for flag in ("--interactions", "--json", "--quick", "--threads"):
        assert flag in out.stdout


def test_a_negative_torch_sample_is_a_usage_error():
    out = _run("--torch-sample", "-1", timeout=120)
    assert out.returncode == 2 and "--torch-sample" in out.stderr


@pytest.mark.slow
def test_quick_run_reports_every_step_with_time_ratio_and_peak():
    out = _run("--quick", "--json", "--threads", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["build_s"] > 0 and 0 < res["build_peak_gib"] < 8
    assert res["topk_speedup_vs_implicit"] > 0 and res["topk_same_lists_as_implicit"] > 0.99
    assert STEPS <= set(res["steps"])
    for key in STEPS:
        row = res["steps"][key]
        assert row["epoch_s"] > 0 and row["ratio_vs_implicit_bpr"] > 0 and 0 < row["peak_gib"] < 8, key
    assert all(res["steps"][f"mf+{s}"]["backend"] == "fused" for s in ("bpr", "nbpo", "relmf", "ubpr"))
    assert res["steps"]["twotower+bpr"]["backend"] == "torch"  # the side features take the torch path
    assert set(res["sizes"]) == {str(res["interactions"])}
