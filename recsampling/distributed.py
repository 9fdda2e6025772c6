"""Data-parallel training under ``torchrun``: the process group, the rank's shard, rank 0's duties.

``recsampling train ...`` and :meth:`recsampling.train.Trainer.fit` run unchanged under
``torchrun --nproc-per-node N`` (and ``--nnodes`` with the usual rendezvous flags). torchrun sets
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the first fit
initializes the default process group from them (gloo on CPU, NCCL on CUDA, each rank on
``cuda:LOCAL_RANK``). What each rank does:

- **its shard**: rank ``r`` of ``W`` visits the training rows ``t`` with ``t % W == r`` (of every
  sampler's row list, :func:`shard_order`), padded by repeats to ``ceil(n / W)`` rows so that every
  rank takes the same number of steps; its negatives come from its own seeded stream;
- **the step**: the model and the sampler's own parameters (NBPO's flip factors, DLA's
  propensities) are one ``DistributedDataParallel`` module, so gradients are all-reduced (averaged)
  before every optimizer step. ``batch_size`` is the *global* batch: each rank takes
  ``ceil(batch_size / W)`` rows, and the averaged gradient is the single-process gradient of a
  batch of that size (``optimizer="sgd"`` steps on the global sum, as it does on one process);
- **in-batch negatives** gather the item indices of every rank (the softmax runs over the global batch,
  logQ of the global batch, accidental hits masked against every rank's items);
- **rank 0 only** evaluates, logs, shows progress, runs the callbacks and writes checkpoints (in the
  single-process format); its decisions (validation value, early stop) are broadcast so that every
  rank stops at the same epoch, and every rank ends with the same (best) weights.

The fused CPU kernels (:mod:`recsampling.fast`) are single-process: they parallelize one epoch over
threads with hogwild updates, and have no gradient to all-reduce. Under ``torchrun`` with more than
one process, ``backend="auto"`` therefore takes the torch path (one line in the log says so) and
``backend="fused"`` is refused with a ValueError. One process with ``n_threads`` cores remains the
fast way to train MF on one CPU machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Context", "context", "shard_order", "is_main_process"]

logger = logging.getLogger("recsampling")


@dataclass(frozen=True)
class Context:
    """Where this process stands in a data-parallel run.

    Attributes
    ----------
    rank, world_size, local_rank : int
        ``(0, 1, 0)`` outside ``torchrun``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, logs, prints and writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer (torchrun sets it)") from None


def context() -> Context:
    """This process's rank and world size: from the initialized process group, else torchrun's environment."""

    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a run")
    return Context(rank, world, _env_int("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 under it (without starting a process group)."""
    return context().is_main


def init(device) -> Context:
    """Initialize the default process group when torchrun started more than one process.

    Parameters
    ----------
    device : torch.device
        The training device: gloo for CPU, NCCL for CUDA.

    Returns
    -------
    Context
    """

    ctx = context()
    if not ctx.distributed or dist.is_initialized():
        return ctx
    if not dist.is_available():
        raise ValueError(f"WORLD_SIZE={ctx.world_size} asks for {ctx.world_size} processes, but this torch build "
                         "has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    dist.init_process_group(backend=backend)
    logger.info("process group: rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return context()


def rank_device(device, ctx: Context):
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA run under torchrun, else ``device``."""

    if ctx.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def shard_order(n: int, rng: np.random.Generator, shard: tuple[int, int] = (0, 1)) -> np.ndarray:
    """A random order of this process's share of ``n`` rows (the whole of them on one process).

    Parameters
    ----------
    n : int
        Rows of the epoch (e.g. the training interactions).
    rng : numpy.random.Generator
        This rank's stream.
    shard : (rank, world_size)
        Rank ``r`` owns rows ``r, r + W, r + 2W, ...``: the shards are disjoint and cover every
        row. A shard one row short of ``ceil(n / W)`` is padded with one of its own rows, so
        every rank draws the same number of batches (a DDP step needs every rank).

    Returns
    -------
    int64 array
        ``rng.permutation(n)`` on one process; else ``ceil(n / W)`` row indices.
    """
    rank, world = shard
    if world == 1:
        return rng.permutation(n)
    own = np.arange(rank, n, world, dtype=np.int64)
    size = -(-n // world)
    if own.size < size:
        pad = own[rng.integers(own.size, size=size - own.size)] if own.size else np.zeros(size, np.int64)
        own = np.concatenate([own, pad])
    return own[rng.permutation(own.size)]


def broadcast_object(obj, ctx: Context):
    """Rank 0's ``obj`` on every rank (a no-op on one process)."""
    if not ctx.distributed:
        return obj

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values, ctx: Context, device) -> np.ndarray:
    """The sum over ranks of a few float64 numbers (a no-op on one process)."""
    values = np.asarray(values, dtype=np.float64)
    if not ctx.distributed:
        return values

    t = torch.as_tensor(values, device=device)
    dist.all_reduce(t)
    return t.cpu().numpy()


def broadcast_module(module, ctx: Context) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every rank, in place."""
    if not ctx.distributed:
        return

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def gather_rows(x, ctx: Context):
    """Every rank's ``x`` stacked along the first axis, rank order (equal shapes on every rank; no gradient)."""
    if not ctx.distributed:
        return x
    return _gather(x)


def _gather(x):
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)
