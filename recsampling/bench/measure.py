"""What the speed scripts under ``benchmarks/`` measure with: wall time of repeats, memory, the machine.

- :func:`best_and_median`: a function's best and median wall time over repeats, after a warm-up;
- :func:`epoch_rate`: a fit's training samples per second, the first epoch (compiles, bindings) left out;
- :func:`peak_rss_mb` / :func:`rss_mb` / :func:`reset_peak_rss`: this process's resident memory
  (Linux ``/proc/self/status``), and a reset of its peak;
- :func:`peak_rss_gib`: the peak by ``getrusage`` (``ru_maxrss``), in GiB;
- :func:`loadavg` / :func:`machine` / :func:`cpu_model`: the load averages and the machine, to print
  beside a timing.

A timing claim is a ratio against a baseline measured in the same run (STYLE.md), printed with
the machine's load.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Callable

__all__ = ["best_and_median", "epoch_rate", "peak_rss_mb", "rss_mb", "reset_peak_rss", "peak_rss_gib", "loadavg", "machine",
           "cpu_model"]


def best_and_median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """``(best, median)`` seconds of ``repeats`` calls of ``fn``, after one untimed warm-up call
    (allocations, thread pools, lazy imports)."""
    import numpy as np

    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts)), float(np.median(ts))


def epoch_rate(history) -> float:
    """Median ``samples_per_s`` over the epochs of a Trainer's ``history`` after the first (which pays
    for numba's compile when its disk cache is cold, and for the kernel's binding); the first alone
    when it is the only one."""
    import numpy as np

    rates = [h["samples_per_s"] for h in history]
    return float(np.median(rates[1:] if len(rates) > 1 else rates))


def _status_mb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` in MiB; None where there is none (not Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory in MiB (``VmHWM``, which :func:`reset_peak_rss` resets; else ``ru_maxrss``)."""
    mb = _status_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if mb is None else mb


def rss_mb() -> float:
    """Resident memory now in MiB (``VmRSS``; NaN where it cannot be read)."""
    mb = _status_mb("VmRSS")
    return float("nan") if mb is None else mb


def reset_peak_rss() -> bool:
    """Reset the peak of :func:`peak_rss_mb` to the current resident memory (Linux: ``5`` into
    ``/proc/self/clear_refs``); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gib() -> float:
    """This process's peak resident memory so far in GiB (``ru_maxrss``, which Linux reports in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2.0**30


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01 (empty where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """``when`` (UTC, to the minute), ``cpu`` and ``cpu_count`` of this run."""
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}


def cpu_model(default: str = "") -> str:
    """The CPU's ``model name`` of ``/proc/cpuinfo``; ``default`` where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), default)
    except OSError:
        return default
