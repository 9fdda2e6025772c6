"""The shared helpers: thread settings of torch, numba and BLAS."""

from __future__ import annotations

import os

import numba
import pytest
import torch
from threadpoolctl import threadpool_info

from recsampling._utils import resolve_threads, set_threads


def _blas_threads() -> set[int]:
    return {d["num_threads"] for d in threadpool_info()}


def test_set_threads_sets_every_library_and_restores():
    before = (torch.get_num_threads(), numba.get_num_threads(), _blas_threads())
    with set_threads(1) as s:
        assert s.n_threads == 1
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
        assert _blas_threads() <= {1}
    assert (torch.get_num_threads(), numba.get_num_threads(), _blas_threads()) == before


def test_resolve_threads_shares_the_cores_among_torchrun_processes(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_threads(None) == max(1, min((os.cpu_count() or 1) // 2, numba.config.NUMBA_NUM_THREADS))
    assert resolve_threads(3) == min(3, numba.config.NUMBA_NUM_THREADS)  # an explicit count stands


def test_resolve_threads_defaults_to_the_cores_capped_by_numba(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_threads(None) == min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS)
    assert resolve_threads(10_000) == numba.config.NUMBA_NUM_THREADS
    assert resolve_threads(1) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_threads_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1 or None"):
        set_threads(bad)
