"""The sampler interface every training method implements.

A sampler answers "which examples do we train on, and with which loss?". It

1. is prepared once per fit with the training :class:`~recsampling.data.Interactions`
   (``prepare``): it precomputes what it needs (popularity, propensities, the positives for
   rejection) and creates its own learnable parameters, if any, sized to the data;
2. draws one epoch of vectorized batches with a seeded ``numpy.random.Generator``
   (``batches``); a batch is a dict of numpy arrays with at least

   - ``"users"``: int64, shape (B,)
   - ``"items"``: int64, shape (B, L): the candidate list of each row, whose meaning is the
     sampler's (BPR: column 0 the positive, columns 1..k the negatives; a pointwise method:
     items with ``"labels"``; DLA: a ranked list with ``"clicks"``);

   plus any extra arrays the loss needs (labels, weights, positions, clicks);
3. turns model scores into a scalar loss (``loss``), with gradients for the model and for the
   sampler's own parameters. The Trainer adds L2 on the embeddings of ``users`` and ``items``.

Samplers are ``torch.nn.Module`` so that learnable ones (NBPO's flip rates, DLA's propensity
model) are seen by the optimizer and saved with checkpoints. A sampler without parameters is
an ``nn.Module`` with none.

A new sampler is one new file plus one :func:`register` decorator line.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from recsampling.data.interactions import Interactions

__all__ = ["Sampler", "Batch", "register", "make_sampler", "SAMPLERS"]

Batch = dict  # str -> numpy.ndarray when drawn, str -> torch.Tensor when given to ``loss``

SAMPLERS: dict[str, type["Sampler"]] = {}


def register(name: str) -> Callable[[type["Sampler"]], type["Sampler"]]:
    """Class decorator: make a sampler available by ``name`` (CLI, benchmarks, Optuna)."""

    def deco(cls):
        if name in SAMPLERS and SAMPLERS[name] is not cls:
            raise ValueError(f"sampler name {name!r} is already registered to {SAMPLERS[name].__name__}")
        cls.name = name
        SAMPLERS[name] = cls
        return cls

    return deco


def make_sampler(name: str, **params) -> "Sampler":
    """Build a registered sampler by name, e.g. ``make_sampler("bpr", n_negatives=4)``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](**params)


class Sampler(nn.Module):
    """Base class of every training method (see the module docstring for the contract).

    Constructors store their arguments untouched; ``prepare`` validates against the data.
    """

    name: ClassVar[str] = ""

    def __init__(self):
        super().__init__()
        self.train_: Interactions | None = None
        # (rank, world_size): the Trainer sets it under torchrun; an epoch visits this rank's
        # rows only (:meth:`epoch_order`)
        self.shard_: tuple[int, int] = (0, 1)

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        """Bind to the training data; create data-sized parameters. Called once per fit."""
        if train.nnz == 0:
            raise ValueError("the training data has no interactions")
        self.train_ = train

    def n_samples(self) -> int:
        """Rows drawn per epoch (default: one per training interaction, as implicit does)."""
        self._check_prepared()
        return int(self.train_.nnz)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch of batches of numpy arrays (vectorized, never a loop per example).

        The rows of an epoch come in :meth:`epoch_order`, which is what makes a sampler work
        under torchrun.
        """
        raise NotImplementedError

    def epoch_order(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A random order of the epoch's ``n`` rows, this process's share of them under torchrun.

        One process: ``rng.permutation(n)``. Rank ``r`` of ``W``: its disjoint shard, padded to
        ``ceil(n / W)`` rows (:func:`recsampling.distributed.shard_order`).
        """
        from recsampling.distributed import shard_order

        return shard_order(n, rng, self.shard_)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Scalar loss of a batch (tensors already on the model's device)."""
        raise NotImplementedError

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups of the sampler's own learnable parameters.

        Parameters
        ----------
        lr : float
            The Trainer's learning rate.

        Returns
        -------
        list of dict
            Default: one group of every parameter that requires a gradient, at ``lr`` (empty
            for a sampler without parameters). Override to give them their own lr or settings;
            their L2 belongs in the sampler's loss.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": float(lr)}] if params else []

    def _check_prepared(self) -> None:
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__}.prepare(train, rng) must be called before drawing batches")

    def extra_repr(self) -> str:
        return self.name


def to_tensors(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    """Move a drawn batch to ``device`` (integers stay int64, floats become float32)."""
    out = {}
    for k, v in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if t.is_floating_point():
            t = t.float()
        out[k] = t.to(device, non_blocking=True)
    return out
