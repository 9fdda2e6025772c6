"""The sampler interface every training method implements.

A sampler answers "which examples do we train on, and with which loss?". It

1. is prepared once per fit with the training :class:`~recsampling.data.Interactions`
   (``prepare``): it precomputes what it needs (popularity, propensities, the positives for
   rejection) and creates its own learnable parameters, if any, sized to the data;
2. draws one epoch of vectorized batches with a seeded ``numpy.random.Generator``
   (``batches``); a batch is a :class:`Batch` of numpy arrays: ``users`` (B,), ``items``
   (B, L) (each row's entries; column 0 the positive where the sampler has one), and the
   optional ``mask``, ``labels`` and ``weights`` (B, L), each with one meaning (see
   :class:`Batch`). The Trainer moves it with :meth:`Batch.to`;
3. turns model scores into a scalar loss (``loss``, reading the fields of the :class:`Batch` of
   tensors), with gradients for the model and for the sampler's own parameters. The Trainer adds
   L2 on the embeddings of ``users`` and ``items``.

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
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Iterator, Union

import numpy as np
import torch
from torch import Tensor, nn

from recsampling._registry import Registry
from recsampling.data.interactions import Interactions

__all__ = ["Sampler", "Batch", "register", "make_sampler", "samplers_for", "SAMPLERS"]

Array = Union[np.ndarray, Tensor]


@dataclass(frozen=True, eq=False)
class Batch:
    """One batch of a sampler's rows: numpy arrays when drawn, torch tensors after :meth:`to`.

    ``B`` rows of ``L`` entries each (an entry is a (user, item) pair the loss scores). Every
    field has one meaning for every sampler; what a sampler puts in them is in its ``batches``
    docstring.

    Attributes
    ----------
    users : int64, shape (B,)
        The user of each row.
    items : int64, shape (B, L)
        The items of each row. Column 0 is the row's positive (the training interaction, the
        click) for every sampler that has one; DLA's logged lists hold the shown list in order.
    mask : bool, shape (B, L), or None
        True where an entry is real, False where it is padding: nothing was left to draw (a
        user who interacted with every drawable item: the positive itself stands in those
        columns, :func:`~recsampling.samplers.negatives.positive_rows`) or a skipped collision
        (``collision="skip"``). None: every entry is real (a sampler whose rows are never padded).
    labels : float32, shape (B, L), or None
        The observed feedback of each entry: 1 clicked / voted, 0 not (DLA's logged lists: the
        click counts).
    weights : float32, shape (B, L), or None
        Per-entry loss weights: inverse propensities (Rel-MF: ``1/θ`` of the click in column 0,
        the user's unclicked weight in the others), pair weights (UBPR: column ``j ≥ 1`` weighs
        the pair (0, j), column 0 holds the click's ``1/θ``).

    A :class:`Sampler` of your own yields these; the shapes and dtype kinds are checked when
    one is built (no pass over the data).
    """

    users: Array
    items: Array
    mask: Array | None = None
    labels: Array | None = None
    weights: Array | None = None

    def __post_init__(self):
        _check_field("users", self.users, 1, "int")
        _check_field("items", self.items, 2, "int")
        B, L = self.items.shape
        if self.users.shape[0] != B:
            raise ValueError(f"Batch: users has {self.users.shape[0]} rows but items has {B}")
        for name, kind in (("mask", "bool"), ("labels", "float"), ("weights", "float")):
            value = getattr(self, name)
            if value is not None:
                _check_field(name, value, 2, kind)
                if tuple(value.shape) != (B, L):
                    raise ValueError(f"Batch: {name} must have the shape of items {(B, L)}, got {tuple(value.shape)}")

    def __len__(self) -> int:
        """``B``, the number of rows."""
        return int(self.users.shape[0])

    def to(self, device: torch.device | str) -> "Batch":
        """The batch as torch tensors on ``device`` (the one conversion the Trainer uses).

        numpy arrays become tensors without a copy where they can (integers become int64,
        floats float32, bools stay bool) and are moved with ``non_blocking=True``; tensors are
        moved as they are.
        """
        device = torch.device(device)
        out = object.__new__(Batch)  # the fields were checked when this batch was built
        for name in _FIELDS:
            value = getattr(self, name)
            object.__setattr__(out, name, None if value is None else _tensor_on(value, device))
        return out


_FIELDS = tuple(f.name for f in fields(Batch))
_NUMPY_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def _kind(value) -> str:
    """``"bool"``, ``"int"``, ``"float"`` or ``"other"``: the dtype kind of an array or tensor."""
    if isinstance(value, np.ndarray):
        return _NUMPY_KINDS.get(value.dtype.kind, "other")
    if value.dtype == torch.bool:
        return "bool"
    return "float" if value.is_floating_point() else "other" if value.is_complex() else "int"


def _check_field(name: str, value, ndim: int, kind: str) -> None:
    if not isinstance(value, (np.ndarray, Tensor)):
        raise ValueError(f"Batch: {name} must be a numpy array or a torch tensor, got {type(value).__name__}")
    if value.ndim != ndim or _kind(value) != kind:
        raise ValueError(f"Batch: {name} must be a {ndim}-d {kind} array, got shape {tuple(value.shape)} and dtype "
                         f"{value.dtype}")


def _tensor_on(value: Array, device: torch.device) -> Tensor:
    t = value if isinstance(value, Tensor) else torch.from_numpy(np.ascontiguousarray(value))
    if t.dtype not in _KEPT:
        t = t.float() if t.is_floating_point() else t.long()
    return t.to(device, non_blocking=True)


_KEPT = (torch.int64, torch.float32, torch.bool)


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
        """One epoch of :class:`Batch` es of numpy arrays (vectorized, never a loop per example).

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

    #: constructor parameters that count the items drawn per training row
    ROW_ITEM_COUNTS: ClassVar[tuple[str, ...]] = ("n_negatives", "n_candidates", "n_sampled")

    def row_item_counts(self) -> dict[str, int]:
        """The counts of items this sampler draws per training row, by parameter name.

        The Trainer bounds each by the catalogue and the batch they make by memory before anything
        is drawn. Default: whichever of :attr:`ROW_ITEM_COUNTS` the sampler holds as an integer; a
        sampler whose setting leaves one unused (DLA on logged lists) leaves it out.
        """
        counts = {}
        for name in self.ROW_ITEM_COUNTS:
            value = getattr(self, name, None)
            if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                counts[name] = int(value)
        return counts

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Scalar loss of a :class:`Batch` of tensors already on the model's device."""
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

