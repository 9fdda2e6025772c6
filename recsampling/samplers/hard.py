r"""Dynamic top-k hard negatives from the current model, mixed with uniform ones (STAR / ADORE).

Papers
------
- J. Zhan, J. Mao, Y. Liu, J. Guo, M. Zhang, S. Ma, "Optimizing Dense Retrieval Model Training
  with Hard Negatives", SIGIR 2021. ADORE retrieves the hard negatives of each query with the
  *current* model (the top-ranked irrelevant passages), STAR mixes static hard negatives with
  random ones "to stabilize training" (Sec. 4.2: the random negatives keep the loss from
  focusing on a few hard ones).

Adaptation to recommendation
----------------------------
A query is a user, a passage an item, the retriever the model being trained, "the top-ranked
irrelevant passages" the top-``K`` items of the user that are not training positives. The model
is re-scored with the library's batched top-k (:func:`recsampling.scoring.topk`, training items
excluded exactly) once per epoch by default, or every ``refresh_every`` optimizer steps (ADORE
re-retrieves at every step; the table is the periodic approximation that keeps a step cheap). Each negative column of a row is
a hard one (uniform over the table's ranks ``skip_top .. K-1`` of the user) with probability
``hard_ratio`` and else a uniform unobserved item (exact rejection), STAR's mixture.

The loss is BPR (Rendle et al., UAI 2009, eq. 5 as a loss)::

    (1)  ℓ(u, i, j) = −ln σ(x̂_ui − x̂_uj)

averaged over the batch's (positive, negative) pairs.

``skiphard`` is the false-negative aware variant that skips the top ``skip_top`` ranks: the
items the model ranks highest among the unobserved ones are the likeliest to be relevant items
the user never met (false negatives; Cai et al., CIKM 2022, Sec. 3, find that the top-ranked
unlabeled passages of a strong retriever are often relevant), so it draws from ranks
``skip_top .. K-1`` only.

When the table is built
-----------------------
The sampler sees the model in :meth:`loss` only (``batches`` draws indices without it), so the
table is rebuilt there: with ``refresh_every=None`` (the default) at the first step of every
epoch, with an integer at the first step of a fit and every ``refresh_every`` steps after. An
epoch in steps depends on the data and the batch size (15 steps on the quick suite world, a
fixed step count may never come round in a short fit), an epoch does not: hence the default.
The batches of an epoch are drawn lazily, one step ahead of the loss, so each draw uses the
latest table, except that a refresh at step ``t`` comes after batch ``t`` was drawn (the
epoch's first batch still uses the previous epoch's table); the first batch of a fit (no table
yet) draws uniform negatives in the hard columns.
There is no fused kernel for these samplers: they train on the torch path (any model, CPU or
CUDA).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from recsampling._utils import check_int
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler, register
from recsampling.samplers.negatives import bpr_loss, positive_rows, users_with_negatives

__all__ = ["TopHardSampler", "SkipHardSampler"]


def _check_ratio(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@register("tophard")
class TopHardSampler(Sampler):
    """Negatives from the current model's top-``K`` unseen items, mixed with uniform ones (STAR / ADORE).

    Parameters
    ----------
    n_negatives : int, default 1
        Negatives per training interaction.
    top_k : int, default 50
        ``K``: the table holds each user's ``K`` highest-scored non-training items.
    refresh_every : int or None, default None
        When the table is rebuilt: None, at the start of every epoch; an integer ``N >= 1``,
        every ``N`` optimizer steps (batches), counted over the whole fit.
    hard_ratio : float, default 0.5
        Probability that a negative column is drawn from the table (else uniform), in [0, 1].
    skip_top : int, default 0
        Ranks ``0 .. skip_top-1`` of the table are never drawn (``skiphard``'s knob); must be
        below ``top_k``.

    Notes
    -----
    A user with fewer than ``skip_top + 1`` non-training items in the table draws its hard
    columns uniformly.
    """

    fold_in_objective = "bpr"
    demo_params = {"top_k": 50, "hard_ratio": 0.5}

    def __init__(self, n_negatives: int = 1, top_k: int = 50, refresh_every: int | None = None, hard_ratio: float = 0.5,
                 skip_top: int = 0):
        super().__init__()
        self.n_negatives = n_negatives
        self.top_k = top_k
        self.refresh_every = refresh_every
        self.hard_ratio = hard_ratio
        self.skip_top = skip_top

    @classmethod
    def search_space(cls, trial) -> dict:
        return {**super().search_space(trial),
                "top_k": trial.suggest_categorical("top_k", (20, 50, 100, 200)),
                "hard_ratio": trial.suggest_float("hard_ratio", 0.1, 1.0)}

    def _validate(self) -> None:
        check_int(self.n_negatives, "n_negatives")
        check_int(self.top_k, "top_k")
        # None: rebuild the table once per epoch; an integer: every that many optimizer steps
        check_int(self.refresh_every, "refresh_every", none_ok=True)
        check_int(self.skip_top, "skip_top", 0)
        _check_ratio(self.hard_ratio, "hard_ratio")
        if self.skip_top >= self.top_k:
            raise ValueError(f"skip_top ({self.skip_top}) must be below top_k ({self.top_k})")

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        """Validate, index the positives; the table is built at the first step (see the module docstring)."""
        self._validate()
        super().prepare(train, rng)
        self._has_negative = users_with_negatives(train)
        self.users_ = train.user_index()
        self.items_ = train.item_index()
        #: (n_users, K) int64: each user's top-K non-training items by the model, -1 pads; None before the first step
        self.table_: np.ndarray | None = None
        self._table_len = None
        self.steps_ = 0
        #: steps at which the table was rebuilt, in order
        self.refreshed_at_: list[int] = []
        self._epoch_start = False

    def refresh(self, model: nn.Module) -> None:
        """Rebuild the top-``K`` table from ``model`` (training items excluded): :func:`recsampling.scoring.topk`."""
        from recsampling.scoring import topk

        self._check_prepared()
        with torch.no_grad():
            U, V = model.embedding_tables()
        k = min(int(self.top_k), self.train_.n_items)
        ids, _ = topk(U, V, k, exclude=self.train_, device="cpu")
        self.table_ = ids
        self._table_len = (ids >= 0).sum(axis=1)
        self.refreshed_at_.append(int(self.steps_))

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every training interaction once, in random order, with ``n_negatives`` negatives.

        A :class:`Batch` of ``users`` (B,), ``items`` (B, 1 + k) (column 0 the positive, the
        others hard or uniform negatives, never a training positive) and ``mask`` (B, 1 + k)
        (False only for a user with no unobserved item: the positive stands in).
        """
        self._check_prepared()
        k = int(self.n_negatives)
        if self.training:
            self._epoch_start = True  # a training epoch: its first step may rebuild the table (:meth:`_step`)
        for _, users, items, mask in positive_rows(self.train_, self.users_, self.items_, k, batch_size, rng,
                                                   order=self.epoch_order(self.users_.size, rng),
                                                   has_negative=self._has_negative):
            hard = rng.random((users.size, k)) < self.hard_ratio
            if self.table_ is not None:
                start = int(self.skip_top)
                span = self._table_len[users] - start  # drawable ranks start .. len-1
                hard &= (span > 0)[:, None] & mask[:, 1:]
                if hard.any():
                    r, c = np.nonzero(hard)
                    rank = start + (rng.random(r.size) * span[r]).astype(np.int64)
                    items[r, 1 + c] = self.table_[users[r], rank]
            yield Batch(users, items, mask=mask if not mask.all() else None)

    def _step(self, model: nn.Module) -> None:
        """Count an optimizer step; rebuild the table first if due (see ``refresh_every``)."""
        if self.training:
            every = self.refresh_every
            if self.table_ is None or (self._epoch_start if every is None else self.steps_ % int(every) == 0):
                self.refresh(model)
            self._epoch_start = False
            self.steps_ += 1

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        self._step(model)
        s = model.score(batch.users, batch.items)
        return bpr_loss(s[:, :1], s[:, 1:], None if batch.mask is None else batch.mask[:, 1:])

    def n_samples(self) -> int:
        self._check_prepared()
        return int(self.users_.size)


@register("skiphard")
class SkipHardSampler(TopHardSampler):
    """False-negative aware top-k hard negatives: ``tophard`` that never draws the top ``skip_top`` ranks.

    Parameters are :class:`TopHardSampler`'s, with ``skip_top=10`` by default (hard negatives
    from the model's ranks 10..K-1 of the user's unseen items).
    """

    demo_params = {"top_k": 50, "hard_ratio": 0.5, "skip_top": 10}

    def __init__(self, n_negatives: int = 1, top_k: int = 50, refresh_every: int | None = None, hard_ratio: float = 0.5,
                 skip_top: int = 10):
        super().__init__(n_negatives=n_negatives, top_k=top_k, refresh_every=refresh_every, hard_ratio=hard_ratio,
                         skip_top=skip_top)

    @classmethod
    def search_space(cls, trial) -> dict:
        space = super().search_space(trial)
        return {**space, "skip_top": trial.suggest_categorical("skip_top", (2, 5, 10))}
