"""The two-tower model: ID embeddings plus optional feature towers, one projection per side.

Each side (user, item) computes its vector as (Yi et al., RecSys 2019, Sec. 3, the query and
candidate towers)::

    h_u = [e_u ; MLP_user(x_u)]            # ID embedding and/or feature tower output
    u   = W_user h_u + c_user              # projection to `factors`

and the score is ``s(u, i) = <u, v> (+ b_i)``. With IDs alone (no features) the projection is
skipped: the vector *is* the ID embedding, which makes the model MF without biases. An optional
item bias is folded into the tables as in MF (the user vector gets a constant 1 column).

Features are dense float32 matrices (one row per user / item, e.g. ML-100K's age, gender and
occupation, genres), stored as buffers so they move with the model and are saved with it. A
tower computes only the rows it is asked for; ``user_embeddings()`` without indices computes
all of them in chunks (bounded memory).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import RandomState, check_int, check_random_state, torch_seed
from recsampling.models.base import EmbeddingModel, register_model, skip_init

__all__ = ["TwoTower"]

_CHUNK = 65536


def _mlp(n_in: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [skip_init(nn.Linear, n_in, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n_in = int(h)
    return nn.Sequential(*layers)


class _Tower(nn.Module):
    """One side: optional ID embedding, optional feature MLP, projection to ``factors``."""

    def __init__(self, n: int, factors: int, features: np.ndarray | None, hidden: Sequence[int],
                 dropout: float, use_ids: bool, init_std: float, gen: torch.Generator, name: str):
        super().__init__()
        self.n = n
        if features is not None:
            feats = np.asarray(features, dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != n:
                raise ValueError(f"{name}_features must have shape ({n}, n_features), got {feats.shape}")
            if torch.get_default_device().type == "meta":  # shapes only (see base.skip_init)
                self.register_buffer("features", torch.empty(feats.shape))
            else:
                if not np.isfinite(feats).all():
                    raise ValueError(f"{name}_features has NaN or infinite values")
                self.register_buffer("features", torch.from_numpy(feats.copy()))
        else:
            self.features = None
        if not use_ids and features is None:
            raise ValueError(f"the {name} tower has neither IDs (use_ids=False) nor {name}_features; give one")
        self.ids = skip_init(nn.Embedding, n, factors) if use_ids else None
        width = factors if use_ids else 0
        if features is not None:
            self.mlp = _mlp(self.features.shape[1], hidden, dropout)
            width += int(hidden[-1]) if len(hidden) else self.features.shape[1]
            self.proj = skip_init(nn.Linear, width, factors)
        else:
            self.mlp = None
            self.proj = None
        with torch.no_grad():
            if self.ids is not None:
                self.ids.weight.normal_(0.0, init_std, generator=gen)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    bound = 1.0 / np.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.zero_()

    def forward(self, idx: Tensor) -> Tensor:
        parts = []
        if self.ids is not None:
            parts.append(self.ids(idx))
        if self.mlp is not None:
            parts.append(self.mlp(self.features[idx]))
        h = torch.cat(parts, -1) if len(parts) > 1 else parts[0]
        return self.proj(h) if self.proj is not None else h


@register_model("twotower")
class TwoTower(EmbeddingModel):
    """Two-tower model over IDs and optional dense side features.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the index spaces.
    factors : int, default 64
        Width of the output vectors.
    user_features, item_features : numpy.ndarray of shape (n, n_features), optional
        Dense side features (``Interactions.user_features`` / ``item_features``).
    hidden : sequence of int, default (128,)
        Hidden layer widths of each feature MLP (ReLU).
    dropout : float, default 0.0
        Dropout after each hidden layer (training mode only).
    use_ids : bool, default True
        Learn an ID embedding per user and item. Without IDs a side needs features.
    item_bias : bool, default True
        A per-item bias folded into the tables (constant 1 column on the user side).
    init_std : float, default 0.1
        Std of the ID embeddings' initialization.
    random_state : int, numpy.random.Generator or None
        Seeds the initialization through a local ``torch.Generator``.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 64,
        user_features: np.ndarray | None = None,
        item_features: np.ndarray | None = None,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.0,
        use_ids: bool = True,
        item_bias: bool = True,
        init_std: float = 0.1,
        random_state: RandomState = None,
    ):
        super().__init__(n_users, n_items)
        factors = check_int(factors, "factors")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {hidden}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.factors = int(factors)
        self.hidden = hidden
        self.dropout = float(dropout)
        self.use_ids = bool(use_ids)
        self.has_item_bias = bool(item_bias)
        self.init_std = float(init_std)
        gen = torch.Generator().manual_seed(torch_seed(check_random_state(random_state)))
        self.user_tower = _Tower(self.n_users, self.factors, user_features, hidden, self.dropout, self.use_ids,
                                 self.init_std, gen, "user")
        self.item_tower = _Tower(self.n_items, self.factors, item_features, hidden, self.dropout, self.use_ids,
                                 self.init_std, gen, "item")
        self.item_biases = skip_init(nn.Embedding, self.n_items, 1) if self.has_item_bias else None
        if self.item_biases is not None:
            nn.init.zeros_(self.item_biases.weight)

    def get_params(self) -> dict:
        """Constructor parameters (JSON-able, features excluded: they live in the state dict)."""
        return {"factors": self.factors, "hidden": list(self.hidden), "dropout": self.dropout,
                "use_ids": self.use_ids, "item_bias": self.has_item_bias, "init_std": self.init_std,
                "user_features_shape": None if self.user_tower.features is None
                else list(self.user_tower.features.shape),
                "item_features_shape": None if self.item_tower.features is None
                else list(self.item_tower.features.shape)}

    @property
    def dim(self) -> int:
        """Width of the folded embedding vectors (``factors`` + 1 with the item bias)."""
        return self.factors + int(self.has_item_bias)

    def fixed_user_columns(self) -> dict[int, float]:
        """The constant 1 appended to the user vector that multiplies ``b_i`` (with the item bias)."""
        return {self.factors: 1.0} if self.has_item_bias else {}

    def _side(self, tower: _Tower, idx: Tensor | None) -> Tensor:
        if idx is not None:
            flat = idx.reshape(-1)
            dropout_on = self.training and self.dropout > 0
            if self.hidden and tower.mlp is not None and flat.numel() > 1 and not dropout_on:
                # a hidden feature MLP is the costly part, and batches repeat users and (in lists of
                # candidates) items many times: run it once per distinct index and gather; the same
                # values, and the gather's backward sums the repeats' gradients (not with dropout on:
                # each occurrence keeps its own dropout mask; not for linear towers, where the sort
                # costs more than it saves). The gather is F.embedding, whose CPU backward sums each
                # row's repeats in a fixed order: the backward of plain indexing (``out[inverse]``,
                # an index_put_ with accumulate) adds them with atomic float adds in parallel when
                # torch has more than one thread, so the gradients, and every fit, changed from run
                # to run.
                uniq, inverse = torch.unique(flat, return_inverse=True)
                return F.embedding(inverse, tower(uniq)).reshape(*idx.shape, self.factors)
            return tower(flat).reshape(*idx.shape, self.factors)
        dev = self.device
        return torch.cat([tower(torch.arange(s, min(s + _CHUNK, tower.n), device=dev))
                          for s in range(0, tower.n, _CHUNK)])

    def user_embeddings(self, users: Tensor | None = None) -> Tensor:
        u = self._side(self.user_tower, users)
        if self.has_item_bias:
            u = torch.cat([u, torch.ones(*u.shape[:-1], 1, dtype=u.dtype, device=u.device)], -1)
        return u

    def item_embeddings(self, items: Tensor | None = None) -> Tensor:
        v = self._side(self.item_tower, items)
        if self.has_item_bias:
            idx = items if items is not None else torch.arange(self.n_items, device=v.device)
            v = torch.cat([v, self.item_biases(idx)], -1)
        return v

    def regularization(self, users: Tensor, items: Tensor) -> Tensor:
        """Per row: squared norm of the user vector and of the row's item vectors (biases included)."""
        r = self._side(self.user_tower, users).pow(2).sum(-1)
        q = self._side(self.item_tower, items).pow(2).sum(-1)
        if self.has_item_bias:
            q = q + self.item_biases(items).pow(2).squeeze(-1)
        if items.dim() == users.dim() + 1:
            q = q.sum(-1)
        return r + q

    @classmethod
    def from_params(cls, n_users: int, n_items: int, params: dict) -> "TwoTower":
        p = dict(params)
        ushape, ishape = p.pop("user_features_shape", None), p.pop("item_features_shape", None)
        return cls(n_users, n_items, user_features=None if ushape is None else np.zeros(ushape, np.float32),
                   item_features=None if ishape is None else np.zeros(ishape, np.float32), **p)

    def extra_repr(self) -> str:
        uf = None if self.user_tower.features is None else self.user_tower.features.shape[1]
        itf = None if self.item_tower.features is None else self.item_tower.features.shape[1]
        return (f"n_users={self.n_users}, n_items={self.n_items}, factors={self.factors}, "
                f"user_features={uf}, item_features={itf}, use_ids={self.use_ids}")
