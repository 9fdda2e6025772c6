r"""In-batch negatives with the sampling-bias (logQ) correction.

Paper: X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei, E. Chi,
"Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations", RecSys 2019.

A batch is B training interactions ``(u_r, i_r)``, drawn as one shuffled pass over the data.
The other rows' positive items serve as the negatives of each row, so an item appears as a
negative with probability proportional to its frequency; the batch softmax is therefore biased
towards penalizing popular items. Yi et al. correct every logit by the log of the item's
sampling probability (Sec. 3, eq. 3)::

    (3)  s^c(x_r, y_c) = s(x_r, y_c) − log p_c

and minimize the batch softmax cross-entropy (eq. 2 with the corrected logits, eq. 4)::

    (4)  L = −(1/B) Σ_r log [ exp(s^c(x_r, y_r)) / Σ_c exp(s^c(x_r, y_c)) ]

Here ``p_c`` is known exactly (no streaming estimate needed): in an epoch every interaction is
drawn once, so an item c is in the batch with probability ``n_c / nnz`` per slot, and
``log p_c = log(n_c / nnz)``. ``logq=False`` drops the correction (the plain in-batch softmax).
``temperature`` divides the logits (before the correction).

Accidental hits
---------------
Column c is an *accidental hit* for row r when its item is one of u_r's training positives but
not the row's own target: another row with the same item (duplicates in the batch) or another of
u_r's positives. Treating those as negatives would push down items the user is known to like, so
their logits are masked to −∞ (left out of the softmax); the diagonal (the target) is always kept.
The mask is computed when the batch is drawn (the :class:`~recsampling.samplers.base.Batch`'s
``hits``, (B, B) bool) from the CSR matrix.

Under torchrun (:mod:`recsampling.distributed`) the columns are the global batch: every rank's
items are gathered (with their gradient), ``log p_c`` is the same, and the accidental hits of a
row are masked against every rank's items.

Both models work: the logits are the dot products of ``model.user_embeddings(users)`` and
``model.item_embeddings(items)``, which include the folded biases.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler, register

__all__ = ["InBatchSampler"]


@register("inbatch")
class InBatchSampler(Sampler):
    """In-batch softmax negatives with the logQ correction (Yi et al., RecSys 2019).

    Parameters
    ----------
    logq : bool, default True
        Subtract ``log p_c`` (the item's in-batch sampling probability) from every logit.
    temperature : float, default 1.0
        Logits are divided by it before the correction.
    mask_hits : bool, default True
        Mask accidental hits (in-batch items that are positives of the row's user) out of the
        softmax (see the module docstring).

    Notes
    -----
    A :class:`Batch` holds ``users`` (B,), ``items`` (B, 1) (each row's positive; the candidate
    set of a row is the whole batch's positive items) and ``hits`` (B, B) (with ``mask_hits``);
    ``log p_c`` is looked up in the sampler's table of every item.
    The batch size is the number of negatives: larger batches give a better estimate.
    """

    #: the grid pairs it with the two-tower model only (it trains MF too)
    models = ("twotower",)
    fold_in_objective = "softmax"

    def __init__(self, logq: bool = True, temperature: float = 1.0, mask_hits: bool = True):
        super().__init__()
        self.logq = logq
        self.temperature = temperature
        self.mask_hits = mask_hits

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        check_number(self.temperature, "temperature", 0.0, strict=True)
        super().prepare(train, rng)
        self.users_ = train.user_index()
        self.items_ = train.item_index()
        counts = train.item_counts().astype(np.float64)
        with np.errstate(divide="ignore"):
            self.log_q_ = np.log(counts / counts.sum()).astype(np.float32)
        # the same table as a tensor that follows the sampler to its device (not saved: derived)
        self.register_buffer("_log_q", torch.from_numpy(self.log_q_), persistent=False)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every training interaction once, in random order."""
        self._check_prepared()
        check_int(batch_size, "batch_size")
        order = self.epoch_order(self.users_.size, rng)
        m = self.train_.matrix
        for start in range(0, order.size, batch_size):
            idx = order[start:start + batch_size]
            users, items = self.users_[idx], self.items_[idx]
            hits = None
            if self.mask_hits and self.shard_[1] == 1:  # under torchrun: against every rank's items, in loss
                # (B, B): is column c's item a positive of row r's user? (scipy row+column slicing)
                hits = m[users][:, items].toarray() > 0
                np.fill_diagonal(hits, False)
            yield Batch(users, items[:, None], hits=hits)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Eq. (4) over the batch; under torchrun the columns are every rank's batch (the global batch)."""
        u = model.user_embeddings(batch.users)
        items = batch.items[:, 0]
        v = model.item_embeddings(items)
        hits, offset = batch.hits, 0
        if self.shard_[1] > 1:
            from recsampling import distributed

            ctx = distributed.context()
            v = distributed.gather_rows(v, ctx, grad=True)  # each rank's rows get their gradient back
            items = distributed.gather_rows(items, ctx)
            offset = ctx.rank * u.shape[0]
            if self.mask_hits:
                users = batch.users.cpu().numpy()
                h = self.train_.matrix[users][:, items.cpu().numpy()].toarray() > 0
                h[np.arange(users.size), offset + np.arange(users.size)] = False
                hits = torch.from_numpy(h).to(u.device)
        log_q = self._log_q[items]
        # (B, B) is the big tensor here: edit the fresh product in place (its backward needs only u
        # and v), which saves up to three B x B copies per step
        logits = u @ v.T
        if self.temperature != 1:
            logits.div_(float(self.temperature))
        if self.logq:
            logits.sub_(log_q.to(logits.dtype)[None, :])
        if hits is not None:
            logits.masked_fill_(hits, float("-inf"))
        target = offset + torch.arange(logits.shape[0], device=logits.device)
        return F.cross_entropy(logits, target)
