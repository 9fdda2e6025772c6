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

A new sampler is one new file with a :func:`register` decorator line, or a class in another
package declared under the entry point group ``recsampling.samplers`` (see
:mod:`recsampling._registry`). A sampler also says what the rest of the toolkit needs to know
about it: the Optuna space of its knobs (:meth:`Sampler.search_space`), the models it is meant
for (:attr:`Sampler.models`) and the parameters the demo trains it with
(:attr:`Sampler.demo_params`); the suite's grid, the tuning space, the demo table and the CLI
derive from these.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from recsampling._registry import Registry
from recsampling.data.interactions import Interactions

__all__ = ["Sampler", "Batch", "register", "make_sampler", "samplers_for", "SAMPLERS"]

Batch = dict  # str -> numpy.ndarray when drawn, str -> torch.Tensor when given to ``loss``

#: choices of the common knob ``n_negatives`` in :meth:`Sampler.search_space`
NEGATIVES = (1, 2, 4, 8)


def register(name: str) -> Callable[[type["Sampler"]], type["Sampler"]]:
    """Class decorator: make a sampler available by ``name`` (CLI, benchmarks, Optuna, checkpoints)."""
    return SAMPLERS.register(name)


def make_sampler(name: str, **params) -> "Sampler":
    """Build a registered sampler by name, e.g. ``make_sampler("bpr", n_negatives=4)``.

    Raises
    ------
    ValueError
        naming the registered samplers when ``name`` is not one, or the plug-in that failed to load.
    TypeError
        when ``params`` are not the sampler's constructor parameters.
    """
    return SAMPLERS.lookup(name)(**params)


def samplers_for(model: str) -> list[str]:
    """Names of the registered samplers meant for ``model`` (:attr:`Sampler.models`), in registry order."""
    return [name for name, cls in SAMPLERS.classes().items() if cls.fits(model)]


class Sampler(nn.Module):
    """Base class of every training method (see the module docstring for the contract).

    Constructors store their arguments untouched; ``prepare`` validates against the data.
    """

    #: the registry name (set by :func:`register`, or from the entry point's name)
    name: ClassVar[str] = ""
    #: registry names of the models this sampler is meant for; None (the default): every model.
    #: The suite's grid, ``recsampling tune --sampler all`` and the demo pair it with these only;
    #: training does not enforce it (every sampler works with every model).
    models: ClassVar[tuple[str, ...] | None] = None
    #: constructor parameters of the sampler's row in the demo table (``recsampling demo``)
    demo_params: ClassVar[dict[str, Any]] = {}
    #: the objective that folds a new user in (:func:`recsampling.foldin.objective_for`):
    #: ``"bpr"``, ``"logistic"`` or ``"softmax"``; None: not declared
    fold_in_objective: ClassVar[str | None] = None

    @classmethod
    def fits(cls, model: str) -> bool:
        """Whether the sampler is meant for the model registered as ``model`` (:attr:`models`)."""
        return cls.models is None or model in cls.models

    @classmethod
    def search_space(cls, trial) -> dict[str, Any]:
        """Draw the sampler's knobs from an Optuna trial (:func:`recsampling.tuning.search_space`).

        Parameters
        ----------
        trial : optuna.trial.Trial or optuna.trial.FixedTrial

        Returns
        -------
        dict
            Constructor parameters. The default draws ``n_negatives`` from {1, 2, 4, 8} when the
            constructor takes it. A sampler with knobs of its own extends it::

                @classmethod
                def search_space(cls, trial):
                    return {**super().search_space(trial), "tau": trial.suggest_float("tau", 0.05, 1.0)}
        """
        space: dict[str, Any] = {}
        if cls._takes("n_negatives"):
            space["n_negatives"] = trial.suggest_categorical("n_negatives", NEGATIVES)
        return space

    @classmethod
    def _takes(cls, param: str) -> bool:
        """Whether the constructor has a parameter called ``param``."""
        return param in inspect.signature(cls.__init__).parameters

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


#: every sampler: the built-ins (this package's modules) and the plug-ins of the entry point
#: group ``recsampling.samplers``, by name
SAMPLERS: Registry = Registry("sampler", "recsampling.samplers", Sampler, builtins="recsampling.samplers")


def to_tensors(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    """Move a drawn batch to ``device`` (integers stay int64, floats become float32)."""
    out = {}
    for k, v in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if t.is_floating_point():
            t = t.float()
        out[k] = t.to(device, non_blocking=True)
    return out
