"""recsampling.bench.measure: repeats' wall time, memory and the machine of the speed scripts."""

from __future__ import annotations

import numpy as np

from recsampling.bench import measure


def test_best_and_median_warm_up_once_then_time_each_repeat(monkeypatch):
    calls = []
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # repeats of 3 s, 1 s and 2 s

    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    assert measure.best_and_median(lambda: calls.append(1), 3) == (1.0, 2.0)
    assert len(calls) == 4  # the warm-up is not timed


def test_memory_and_machine_figures():
    before = measure.rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert measure.rss_mb() > before + 32 and measure.peak_rss_mb() >= measure.rss_mb()
    assert measure.peak_rss_gib() * 1024 >= measure.rss_mb() - 1
    del block
    if measure.reset_peak_rss():  # Linux: the peak comes back to what is resident now
        assert measure.peak_rss_mb() < before + 48
    load = measure.loadavg()
    assert len(load) in (0, 3) and all(x >= 0 for x in load)
    assert set(measure.machine()) == {"when", "cpu", "cpu_count"}


def test_epoch_rate_leaves_the_first_epoch_out():
    from recsampling.bench.measure import epoch_rate

    assert epoch_rate([{"samples_per_s": 1.0}, {"samples_per_s": 10.0}, {"samples_per_s": 20.0}]) == 15.0
    assert epoch_rate([{"samples_per_s": 3.0}]) == 3.0


def test_cpu_model_reads_cpuinfo_or_gives_the_default(monkeypatch):
    import builtins

    name = measure.cpu_model("fallback")
    assert isinstance(name, str) and name
    real_open = builtins.open

    def no_cpuinfo(path, *a, **k):
        if path == "/proc/cpuinfo":
            raise OSError("none")
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_cpuinfo)
    assert measure.cpu_model("fallback") == "fallback"
