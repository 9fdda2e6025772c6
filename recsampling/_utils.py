"""Small helpers shared by the whole package: random state, device, threads, memory, and the
validators of scalar arguments (:func:`check_int`, :func:`check_number`) every module uses, so
that a bad count or rate reads the same everywhere.
"""

from __future__ import annotations

import logging
import math
from typing import Union

import numpy as np

RandomState = Union[int, np.random.Generator, None]

logger = logging.getLogger("recsampling")


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Resolve ``int | Generator | None`` into a ``numpy.random.Generator``.

    Parameters
    ----------
    random_state : int, numpy.random.Generator or None
        A seed, an existing generator (returned as is), or None for fresh entropy.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"random_state must be an int, a numpy.random.Generator or None, got {type(random_state).__name__}"
    )


def check_int(value, name: str, low: int = 1, *, high: int | None = None, none_ok: bool = False) -> int | None:
    """``value`` as an ``int`` in ``[low, high]`` (a bool is not an integer), else a ``ValueError``.

    Parameters
    ----------
    value : object
        The argument (a Python or numpy integer).
    name : str
        Its name, for the message: ``"n_negatives must be an integer >= 1, got 0"``.
    low : int, default 1
    high : int, optional
        Upper bound (inclusive); the message then names the range.
    none_ok : bool, default False
        Accept None (returned as is); the message then says ``or None``.

    Returns
    -------
    int or None
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {bound}{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def check_number(value, name: str, low: float | None = None, *, strict: bool = False,
                 high: float | None = None, high_strict: bool = False, none_ok: bool = False) -> float | None:
    """``value`` as a finite ``float`` in ``[low, high]`` (each end open when strict), else a ``ValueError``.

    Parameters
    ----------
    value : object
        The argument (a Python or numpy real number; a bool is not a number).
    name : str
        Its name, for the message: ``"lr must be a finite number > 0, got -1"``.
    low : float, optional
        Lower bound; None: none.
    strict : bool, default False
        Exclude ``low`` itself.
    high : float, optional
        Upper bound; None: none (``"label_noise must be a finite number >= 0 and < 1, got 1"``).
    high_strict : bool, default False
        Exclude ``high`` itself.
    none_ok : bool, default False
        Accept None (returned as is); the message then says ``or None``.

    Returns
    -------
    float or None
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (low is not None and (value < low or (strict and value == low))) \
            or (high is not None and (value > high or (high_strict and value == high))):
        bounds = ([] if low is None else [f"{'>' if strict else '>='} {low:g}"]) \
            + ([] if high is None else [f"{'<' if high_strict else '<='} {high:g}"])
        bound = (" " + " and ".join(bounds)) if bounds else ""
        raise ValueError(f"{name} must be a finite number{bound}{' or None' if none_ok else ''}, got {value!r}")
    return float(value)


def torch_seed(rng: np.random.Generator) -> int:
    """Draw a seed for a local ``torch.Generator`` from ``rng`` (never seeds torch globally)."""
    return int(rng.integers(0, 2**62))


def resolve_device(device: str | None = "auto"):
    """Turn ``"auto"`` into CUDA when torch sees a GPU, else CPU; pass anything else through.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` (or None), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        for anything but auto, cpu, cuda and cuda:N (``"gpu"``, ``"tpu"``, ``"mps"``, ...), and
        for a CUDA device torch does not see.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bad = f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):  # torch's own message lists devices this package does not run on
        raise ValueError(bad) from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(bad)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r} was asked for, but torch sees {n} CUDA device(s): cuda:0..cuda:{n - 1}")
    return dev


def to_jsonable(value):
    """``value`` with numpy scalars / arrays, tuples and paths turned into JSON types (recursively)."""
    from pathlib import PurePath

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    return value


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not tell)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def check_memory(need_bytes: float, what: str, lower: str) -> None:
    """Refuse, before anything is allocated, a size beyond the machine's physical memory.

    Parameters
    ----------
    need_bytes : float
        An estimate (a lower bound) of what the allocation takes.
    what : str
        What needs it, for the message (e.g. ``"the model (factors=64, 943 users x 1682 items)"``).
    lower : str
        What to lower, for the message (e.g. ``"factors"``).

    Raises
    ------
    ValueError
        when ``need_bytes`` exceeds the physical memory.
    """
    from recsampling._files import format_size

    memory = physical_memory()
    if memory is not None and need_bytes > memory:
        raise ValueError(f"{what} would need about {format_size(need_bytes)} of memory; this machine has "
                         f"{format_size(memory)}: lower {lower}")


def positive_int(text: str) -> int:
    """``argparse`` type of a count flag (``--seeds``, ``--threads``, ...): an integer >= 1.

    A bad value ends the script with argparse's one-line usage error and exit status 2, before any work.

    Parameters
    ----------
    text : str
        The flag's value as typed.

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        when ``text`` is not an integer >= 1.
    """
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


class ThreadSettings:
    """The thread counts of torch, numba and BLAS/OpenMP before :func:`set_threads` changed them.

    Returned by :func:`set_threads`; :meth:`restore` puts the previous settings back. Also a
    context manager (``with set_threads(2): ...`` restores on exit).

    Attributes
    ----------
    n_threads : int
        The count that was set.
    """

    def __init__(self, n_threads: int, torch_threads: int, numba_threads: int | None, limiter):
        self.n_threads = n_threads
        self._torch = torch_threads
        self._numba = numba_threads
        self._limiter = limiter

    def restore(self) -> None:
        """Put back the torch, numba and BLAS thread counts that were in force before."""
        import torch

        if self._limiter is not None:  # first: it also resets the OpenMP pool torch uses
            self._limiter.restore_original_limits()
            self._limiter = None
        if self._numba is not None:
            import numba

            numba.set_num_threads(self._numba)
        torch.set_num_threads(self._torch)

    def __enter__(self) -> "ThreadSettings":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def resolve_threads(n_threads: int | None) -> int:
    """``n_threads`` checked, or the machine's cores when None, capped by numba's thread pool.

    Parameters
    ----------
    n_threads : int or None
        A thread count >= 1, or None for ``os.cpu_count()`` shared among the processes torchrun
        started on this machine (``LOCAL_WORLD_SIZE``): 16 cores and 4 processes give 4 each.

    Returns
    -------
    int
        At most ``numba.config.NUMBA_NUM_THREADS`` (the size of numba's pool, fixed at import).
    """
    import os

    if n_threads is None:
        try:
            local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError:
            local = 1
        n = (os.cpu_count() or 1) // local
    else:
        n = check_int(n_threads, "n_threads", 1, none_ok=True)
    try:
        import numba

        n = min(n, int(numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return max(1, n)


def set_threads(n_threads: int | None = None) -> ThreadSettings:
    """Set the thread count of torch, numba and BLAS/OpenMP at once.

    Parameters
    ----------
    n_threads : int or None, default None
        Threads for ``torch.set_num_threads``, ``numba.set_num_threads`` and threadpoolctl's
        ``threadpool_limits`` (BLAS and OpenMP pools); None: the machine's cores
        (``os.cpu_count()``). Capped by numba's pool size (``NUMBA_NUM_THREADS``), so that every
        library gets the same count.

    Returns
    -------
    ThreadSettings
        The previous settings; call ``.restore()`` (or use it as a context manager) to put them
        back.

    Raises
    ------
    ValueError
        When ``n_threads`` is not None or an integer >= 1.
    """
    import torch

    n = resolve_threads(n_threads)
    old_torch = torch.get_num_threads()
    old_numba = None
    try:
        import numba

        old_numba = numba.get_num_threads()
        numba.set_num_threads(n)
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    limiter = None
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass
    if torch.get_num_threads() != n:  # threadpoolctl may have set torch's OpenMP pool already
        torch.set_num_threads(n)
    return ThreadSettings(n, old_torch, old_numba, limiter)
