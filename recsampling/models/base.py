"""The model contract: every model is two embedding tables, however they are computed.

A model implements ``user_embeddings(users)`` and ``item_embeddings(items)``; the score of a
pair is the dot product of the two. Biases are folded into the tables (MF appends a constant 1
to the user vector and the item bias to the item vector), so top-k scoring only ever needs the
two tables, on any device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["EmbeddingModel"]


class EmbeddingModel(nn.Module):
    """Base class of MF and the two-tower model.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the index spaces (``Interactions.shape``).

    Notes
    -----
    Subclasses implement :meth:`user_embeddings` and :meth:`item_embeddings`. ``score`` and
    ``recommend`` are shared.
    """

    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        if n_users < 1 or n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}")
        self.n_users = int(n_users)
        self.n_items = int(n_items)

    # -- to implement --------------------------------------------------------------------
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
