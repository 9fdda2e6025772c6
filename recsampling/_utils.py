"""Small helpers shared by the whole package: random state, device, logging."""

from __future__ import annotations

import logging
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
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
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
