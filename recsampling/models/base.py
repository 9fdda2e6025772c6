"""The model contract: every model is two embedding tables, however they are computed.

A model implements ``user_embeddings(users)`` and ``item_embeddings(items)``; the score of a
pair is the dot product of the two. Biases are folded into the tables (MF appends a constant 1
to the user vector and the item bias to the item vector), so top-k scoring only ever needs the
two tables, on any device.

A model registers itself by name (:func:`register_model`, or the entry point group
``recsampling.models`` for a model of another package) and says what the rest of the toolkit
needs: how to build it from the training Interactions (:meth:`EmbeddingModel.from_interactions`,
side features included), how to rebuild it from a checkpoint (:meth:`EmbeddingModel.get_params`
and :meth:`EmbeddingModel.from_params`) and the Optuna space of its knobs
(:meth:`EmbeddingModel.search_space`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from recsampling._registry import Registry

if TYPE_CHECKING:
    from recsampling.data.interactions import Interactions

__all__ = ["EmbeddingModel", "MODELS", "register_model", "FACTORS"]

#: choices of ``factors`` in :meth:`EmbeddingModel.search_space`
FACTORS = (16, 32, 64, 128)


def skip_init(module_cls: type[nn.Module], *args, **kwargs) -> nn.Module:
    """``torch.nn.utils.skip_init`` on torch's default device rather than always the CPU.

    A model built under ``with torch.device("meta"):`` then has the shapes of its weights and
    allocates nothing, which is how :func:`recsampling.checkpoint.load_checkpoint` compares a
    checkpoint's parameters with its stored weights before building the real model.
    """
    kwargs.setdefault("device", torch.get_default_device())
    return torch.nn.utils.skip_init(module_cls, *args, **kwargs)


class EmbeddingModel(nn.Module):
    """Base class of MF and the two-tower model.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the index spaces (``Interactions.shape``).

    Notes
    -----
    Subclasses implement :meth:`user_embeddings`, :meth:`item_embeddings` and :meth:`get_params`.
    ``score`` and ``recommend`` are shared.
    """

    #: the registry name (set by :func:`register_model`, or from the entry point's name)
    name: ClassVar[str] = ""

    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        if n_users < 1 or n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}")
        self.n_users = int(n_users)
        self.n_items = int(n_items)

    # -- to implement --------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-able) from which :meth:`from_params` rebuilds the model.

        Checkpoints store them; learned values (and buffers such as feature matrices) live in
        the state dict.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_params() to be saved")

    def user_embeddings(self, users: Tensor | None = None) -> Tensor:
        """Vectors of ``users`` (any shape of indices -> shape + (d,)); all users when None."""
        raise NotImplementedError

    def item_embeddings(self, items: Tensor | None = None) -> Tensor:
        """Vectors of ``items`` (any shape of indices -> shape + (d,)); all items when None."""
        raise NotImplementedError

    def regularization(self, users: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the parameters these ``users`` and ``items`` touch, per batch row.

        ``users`` has shape (B,), ``items`` shape (B, L). The Trainer multiplies by its ``l2``.
        The default penalizes the embedding vectors themselves.
        """
        u = self.user_embeddings(users).pow(2).sum(-1)
        v = self.item_embeddings(items).pow(2).sum(-1).sum(-1)
        return u + v

    def fixed_user_columns(self) -> dict[int, float]:
        """Columns of the user vectors that are constants, not parameters: ``{column: value}``.

        The 1 that multiplies a folded item bias is one. A fold-in (:mod:`recsampling.foldin`)
        holds them at their value and solves for the other columns. The default: none.
        """
        return {}

    # -- construction (the defaults fit a constructor ``cls(n_users, n_items, **params)``) --------
    @classmethod
    def from_interactions(cls, train: "Interactions", **params) -> "EmbeddingModel":
        """A model sized to ``train``, with its side features where the model takes them.

        Parameters
        ----------
        train : Interactions
        **params
            Constructor parameters. When the constructor takes ``user_features`` /
            ``item_features``, those not given are ``train.user_features`` /
            ``train.item_features``, unless ``use_features=False`` is passed.

        Returns
        -------
        EmbeddingModel
        """
        takes = inspect.signature(cls.__init__).parameters
        sides = [side for side in ("user_features", "item_features") if side in takes]
        if sides and params.pop("use_features", True):
            for side in sides:
                params.setdefault(side, getattr(train, side))
        return cls(train.n_users, train.n_items, **params)

    @classmethod
    def from_params(cls, n_users: int, n_items: int, params: dict[str, Any]) -> "EmbeddingModel":
        """An untrained model from :meth:`get_params` output (its weights are loaded next)."""
        return cls(n_users, n_items, **params)

    @classmethod
    def search_space(cls, trial) -> dict[str, Any]:
        """Draw the model's knobs from an Optuna trial (:func:`recsampling.tuning.search_space`).

        Returns
        -------
        dict
            Constructor parameters; the default draws ``factors`` from {16, 32, 64, 128} when the
            constructor takes it. Override (calling ``super()``) to add knobs.
        """
        if "factors" in inspect.signature(cls.__init__).parameters:
            return {"factors": trial.suggest_categorical("factors", FACTORS)}
        return {}

    # -- shared --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """Scores of user-item pairs.

        Parameters
        ----------
        users : Tensor of int, shape (B,)
        items : Tensor of int, shape (B,) or (B, L)

        Returns
        -------
        Tensor of shape (B,) or (B, L)
        """
        u = self.user_embeddings(users)
        v = self.item_embeddings(items)
        if items.dim() == users.dim() + 1:
            u = u.unsqueeze(-2)
        return (u * v).sum(-1)

    def recommend(self, users=None, k: int = 10, exclude=None, device: str = "auto"):
        """Top-``k`` items of ``users`` by score (the shared :func:`recsampling.scoring.topk`).

        Parameters
        ----------
        users : array of int, optional
            User indices; all users when None.
        k : int
        exclude : scipy sparse users x items matrix or Interactions, optional
            Items to leave out per user (e.g. the training interactions).
        device : str
            Where to score (``"auto"``: CUDA when present).

        Returns
        -------
        ids, scores : numpy arrays of shape (n_users, k)
            Short lists are padded with -1 (ids) and -inf (scores).
        """
        from recsampling.scoring import topk

        U, V = self.embedding_tables()
        exclude = getattr(exclude, "matrix", exclude)
        return topk(U, V, k, exclude=exclude, users=users, device=device)

    @torch.no_grad()
    def embedding_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """All user and all item vectors as float32 numpy arrays (what scoring consumes)."""
        was = self.training
        self.eval()
        try:
            return (self.user_embeddings().float().cpu().numpy(), self.item_embeddings().float().cpu().numpy())
        finally:
            self.train(was)


def register_model(name: str) -> Callable[[type[EmbeddingModel]], type[EmbeddingModel]]:
    """Class decorator: make a model available by ``name`` (CLI, Recommender, Optuna, checkpoints)."""
    return MODELS.register(name)


#: every model: the built-ins and the plug-ins of the entry point group ``recsampling.models``
MODELS: Registry = Registry("model", "recsampling.models", EmbeddingModel, builtins="recsampling.models")
