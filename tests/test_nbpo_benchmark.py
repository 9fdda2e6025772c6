"""benchmarks/nbpo_noise.py: where a run writes its results."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


@pytest.fixture(autouse=True)
def _threads(restore_threads):
    """main() sets its own torch thread count."""


def test_quick_smoke_run_does_not_overwrite_the_recorded_results(tmp_path, monkeypatch):
    bench = load_benchmark("nbpo_noise")
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "nbpo_noise.py"))  # results/ beside the script
    result = bench.main(["--quick", "--seeds", "1", "--noise", "0.0", "--methods", "bpr", "--epochs", "1",
                         "--l2", "0.01"])
    assert (tmp_path / "results" / "nbpo_noise_quick.json").is_file()
    assert not (tmp_path / "results" / "nbpo_noise.json").exists()
    # --quick shrinks the world and caps seeds and epochs; the smaller ones asked for hold
    assert (result["config"]["seeds"], result["config"]["epochs"], result["config"]["n_users"]) == (1, 1, 150)
