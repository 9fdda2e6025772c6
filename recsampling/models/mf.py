"""Matrix factorization with optional user and item biases.

The score of a pair is (Rendle et al., UAI 2009, Sec. 4.3.1, with biases)::

    s(u, i) = <p_u, q_i> + b_u + b_i

The biases are folded into the two embedding tables so that top-k scoring only needs a dot
product: the user vector is ``[p_u, 1, b_u]`` and the item vector ``[q_i, b_i, 1]`` (each extra
column present only when its bias is). ``user_embeddings()`` / ``item_embeddings()`` return
these folded vectors; the raw tables are the attributes ``user_factors``, ``item_factors``,
``user_biases`` and ``item_biases`` (``torch.nn.Embedding``, float32), which the fused numba
kernel (:mod:`recsampling.fast.bpr`) updates in place.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recsampling._utils import RandomState, check_int, check_number, check_random_state, torch_seed
from recsampling.models.base import EmbeddingModel, register_model, skip_init

__all__ = ["MatrixFactorization"]


@register_model("mf")
class MatrixFactorization(EmbeddingModel):
    """Matrix factorization ``s(u, i) = <p_u, q_i> + b_u + b_i``.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the index spaces (``Interactions.shape``).
    factors : int, default 64
        Width of ``p_u`` and ``q_i``.
    user_bias : bool, default False
        Learn a per-user bias ``b_u``. It cancels in pairwise losses (BPR) and only matters for
        pointwise ones.
    item_bias : bool, default True
        Learn a per-item bias ``b_i`` (as the ``implicit`` library's BPR does).
    init_std : float, default 0.1
        Factors start as N(0, init_std^2); biases start at 0.
    random_state : int, numpy.random.Generator or None
        Seeds the initialization through a local ``torch.Generator`` (never the global one).

    Attributes
    ----------
    user_factors, item_factors : torch.nn.Embedding
        (n_users, factors) and (n_items, factors), float32.
    user_biases, item_biases : torch.nn.Embedding of shape (n, 1), or None
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 64,
        user_bias: bool = False,
        item_bias: bool = True,
        init_std: float = 0.1,
        random_state: RandomState = None,
    ):
        super().__init__(n_users, n_items)
        self.factors = check_int(factors, "factors")
        self.init_std = check_number(init_std, "init_std", 0.0)
        self.has_user_bias = bool(user_bias)
        self.has_item_bias = bool(item_bias)
        gen = torch.Generator().manual_seed(torch_seed(check_random_state(random_state)))
        # skip_init: no draw from torch's global generator; every table is filled below
        self.user_factors = skip_init(nn.Embedding, self.n_users, self.factors)
        self.item_factors = skip_init(nn.Embedding, self.n_items, self.factors)
        with torch.no_grad():
            self.user_factors.weight.normal_(0.0, self.init_std, generator=gen)
            self.item_factors.weight.normal_(0.0, self.init_std, generator=gen)
        self.user_biases = skip_init(nn.Embedding, self.n_users, 1) if self.has_user_bias else None
        self.item_biases = skip_init(nn.Embedding, self.n_items, 1) if self.has_item_bias else None
        for emb in (self.user_biases, self.item_biases):
            if emb is not None:
                nn.init.zeros_(emb.weight)

    def get_params(self) -> dict:
        """Constructor parameters (JSON-able), for checkpoints."""
        return {"factors": self.factors, "user_bias": self.has_user_bias, "item_bias": self.has_item_bias,
                "init_std": self.init_std}

    @property
    def dim(self) -> int:
        """Width of the folded embedding vectors."""
        return self.factors + int(self.has_item_bias) + int(self.has_user_bias)

    def fixed_user_columns(self) -> dict[int, float]:
        """The constant 1 of ``[p_u, 1, b_u]`` that multiplies ``b_i`` (when there is an item bias)."""
        return {self.factors: 1.0} if self.has_item_bias else {}

    def _all(self, n: int, users: Tensor | None) -> Tensor:
        return torch.arange(n, device=self.user_factors.weight.device) if users is None else users

    def user_embeddings(self, users: Tensor | None = None) -> Tensor:
        users = self._all(self.n_users, users)
        parts = [self.user_factors(users)]
        if self.has_item_bias:
            parts.append(torch.ones(*users.shape, 1, dtype=parts[0].dtype, device=parts[0].device))
        if self.has_user_bias:
            parts.append(self.user_biases(users))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]

    def item_embeddings(self, items: Tensor | None = None) -> Tensor:
        items = self._all(self.n_items, items)
        parts = [self.item_factors(items)]
        if self.has_item_bias:
            parts.append(self.item_biases(items))
        if self.has_user_bias:
            parts.append(torch.ones(*items.shape, 1, dtype=parts[0].dtype, device=parts[0].device))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        p = self.user_factors(users)
        q = self.item_factors(items)
        if items.dim() == users.dim() + 1:
            p = p.unsqueeze(-2)
        s = (p * q).sum(-1)
        if self.has_item_bias:
            s = s + self.item_biases(items).squeeze(-1)
        if self.has_user_bias:
            bu = self.user_biases(users).squeeze(-1)
            s = s + (bu.unsqueeze(-1) if items.dim() == users.dim() + 1 else bu)
        return s

    def regularization(self, users: Tensor, items: Tensor) -> Tensor:
        """Per row: ``||p_u||^2 + b_u^2 + sum over the row's items of (||q_i||^2 + b_i^2)``."""
        r = self.user_factors(users).pow(2).sum(-1)
        if self.has_user_bias:
            r = r + self.user_biases(users).pow(2).squeeze(-1)
        q = self.item_factors(items).pow(2).sum(-1)
        if self.has_item_bias:
            q = q + self.item_biases(items).pow(2).squeeze(-1)
        if items.dim() == users.dim() + 1:
            q = q.sum(-1)
        return r + q

    def extra_repr(self) -> str:
        return (f"n_users={self.n_users}, n_items={self.n_items}, factors={self.factors}, "
                f"user_bias={self.has_user_bias}, item_bias={self.has_item_bias}")
