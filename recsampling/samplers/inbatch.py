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
:meth:`InBatchSampler.accidental_hits` finds them from the training CSR when the loss runs (on the
loss's device; the drawn batch holds only users and items).

The softmax over the distinct items
-----------------------------------
Eq. (4) sums over the batch's B columns, and a batch repeats popular items: on ML-1M a batch of
4,096 interactions holds about 1,650 distinct items. The loss is computed over the U distinct
items j of the batch, each column weighted by its count n_j in the batch (a weight is a
``+ log n_j`` on the logit), which is the same sum::

    Σ_c exp(s^c(x_r, y_c)) = Σ_j n_j exp(s^c(x_r, j))            (over the unmasked columns)

With ``mask_hits`` every duplicate of the row's own target is a hit, so the target's column
counts once; the other positives of u_r are masked, every other item counts n_j times, as the B
columns do. The loss, and its gradient, are those of eq. (4) over the B columns (tested against
autograd of that formulation); the work and memory are (B, U) instead of (B, B). The forward and
backward are written out (:class:`_BatchSoftmax`): three matrix products and a few passes over
one (B, U) buffer, the softmax's exponentials kept from the forward for the backward.

Under torchrun (:mod:`recsampling.distributed`) the columns are the global batch's distinct
items: every rank's items are gathered (indices only), each rank computes their vectors with its
copy of the weights (the same on every rank) and DDP averages the gradients, which gives the
gradient of the global batch's loss; ``log p_c`` is the same, and the accidental hits of a row are
masked against every rank's items.

Both models work: the logits are the dot products of ``model.user_embeddings(users)`` and
``model.item_embeddings(items)``, which include the folded biases.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
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
    A :class:`Batch` holds ``users`` (B,) and ``items`` (B, 1) (each row's positive; the candidate
    set of a row is the whole batch's positive items). ``log p_c`` is looked up in the sampler's
    table of every item; the accidental hits are found when the loss runs
    (:meth:`accidental_hits`). The batch size is the number of negatives: larger batches give a
    better estimate.
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
        # tables that follow the sampler to its device (not saved: derived from the data): log p_c
        # and the training CSR that accidental_hits reads (on CPU they share the arrays' memory)
        m = train.matrix
        self.register_buffer("_log_q", torch.from_numpy(self.log_q_), persistent=False)
        self.register_buffer("_indptr", _shared(m.indptr), persistent=False)
        self.register_buffer("_indices", _shared(m.indices), persistent=False)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every training interaction once, in random order."""
        self._check_prepared()
        check_int(batch_size, "batch_size")
        order = self.epoch_order(self.users_.size, rng)
        for start in range(0, order.size, batch_size):
            idx = order[start:start + batch_size]
            yield Batch(self.users_[idx], self.items_[idx, None])

    def accidental_hits(self, users: Tensor, items: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The (row, column) pairs where column ``c``'s item is a training positive of row ``r``'s user.

        Parameters
        ----------
        users : int Tensor or array (B,)
            The rows' users.
        items : int Tensor or array (C,)
            The columns' items, distinct.
        targets : int Tensor or array (B,), optional
            The column of each row's own target: left out (the target is not a hit).

        Returns
        -------
        rows, cols : int64 Tensors (n,)
            On the sampler's device, computed there from the training CSR (no (B, C) matrix).
        """
        rows, cols = self._positives(torch.as_tensor(users), torch.as_tensor(items))  # on the CSR's device
        if targets is not None:
            keep = cols != torch.as_tensor(targets, device=cols.device).long()[rows]
            rows, cols = rows[keep], cols[keep]
        return rows, cols

    def _positives(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """The training positives of the rows' users that are among ``items``: their rows and columns.

        On CPU a numba pass over the users' CSR rows (:func:`recsampling.fast.draws.positives_among`:
        with torch ops the lookup of every positive of a batch's users, about 1.6M of them on ML-1M
        at batch 4,096, took 40% of an in-batch step); elsewhere the same with torch ops.
        """
        self._check_prepared()
        dev = self._indptr.device
        if dev.type == "cpu":
            from recsampling.fast.draws import positives_among

            rows, cols = positives_among(self.train_.matrix, users.cpu().numpy(), items.cpu().numpy())
            return torch.from_numpy(rows), torch.from_numpy(cols)
        return _positives_among(self._indptr, self._indices, self.train_.n_items, users.to(dev), items.to(dev))

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Eq. (4) over the batch, as a softmax over its distinct items (see the module docstring).

        Under torchrun the columns are every rank's batch (the global batch).
        """
        users = batch.users
        items, offset = batch.items[:, 0], 0
        if self.shard_[1] > 1:
            from recsampling import distributed

            ctx = distributed.context()
            items = distributed.gather_rows(items, ctx)  # indices only: the vectors are computed here
            offset = ctx.rank * users.shape[0]
        uniq, inverse, counts = torch.unique(items, return_inverse=True, return_counts=True)
        target = inverse[offset:offset + users.shape[0]]
        u = model.user_embeddings(users)
        v = model.item_embeddings(uniq)
        log_n = counts.to(u.dtype).log()
        bias = log_n - self._log_q[uniq].to(u.dtype) if self.logq else log_n
        hits = None
        if self.mask_hits:  # flat positions in (B, U), the rows' own targets among them
            rows, cols = self._positives(users, uniq)
            hits = (rows * uniq.numel() + cols).to(u.device)
        # the (B, U) logits go into a buffer kept across batches when a backward will follow
        workspace = self._workspace if torch.is_grad_enabled() else None
        return _BatchSoftmax.apply(u, v, bias, log_n[target], target, hits, float(self.temperature), workspace)

    @property
    def _workspace(self) -> "_Workspace":
        ws = self.__dict__.get("_ws")
        if ws is None:
            ws = self.__dict__["_ws"] = _Workspace()
        return ws


def _positives_among(indptr: Tensor, indices: Tensor, n_items: int, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`recsampling.fast.draws.positives_among` with torch ops on the CSR's device (GPUs)."""
    dev = indptr.device
    users = users.long()
    items = items.long()
    column = torch.full((n_items,), -1, dtype=torch.int64, device=dev)
    column[items] = torch.arange(items.numel(), device=dev)
    # the users' rows of the CSR, concatenated: the row of each entry and its place in `indices`
    starts = indptr.index_select(0, users).long()
    lengths = indptr.index_select(0, users + 1).long() - starts
    total = int(lengths.sum())
    rows = torch.repeat_interleave(torch.arange(users.numel(), device=dev), lengths, output_size=total)
    pos = torch.arange(total, device=dev).add_((starts - (torch.cumsum(lengths, 0) - lengths)).index_select(0, rows))
    cols = column.index_select(0, indices.index_select(0, pos).long())
    keep = cols >= 0
    return rows[keep], cols[keep]


def _shared(a: np.ndarray) -> Tensor:
    """A tensor over ``a``'s memory (read-only arrays of the immutable Interactions included)."""
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


class _Workspace:
    """The (B, U) buffer of :class:`_BatchSoftmax`, reused from batch to batch.

    A new (B, U) tensor per batch is a fresh allocation of tens of MB; above glibc's largest mmap
    threshold (32 MB) the C allocator maps it from the system on every batch, and filling it cost
    as much as the matrix product that writes it (2 threads, B = 4,096, U = 2,500: ``addmm`` 33 ms
    into a new tensor, 17 ms into a kept one). On ML-1M at batch 4,096 (U about 1,650, 27 MB) the
    heap keeps the block and the kept buffer saved about 2% of a step (41.7 -> 40.8 ms). The buffer grows to the largest batch seen and belongs to one forward at a time: a forward takes
    it over, and the backward of an earlier forward then refuses to run (its exponentials were
    overwritten) instead of returning a wrong gradient.
    """

    def __init__(self):
        self.buffer: Tensor | None = None
        self.owner = 0  # the number of the forward that holds the buffer

    def take(self, shape: tuple[int, int], like: Tensor) -> tuple[Tensor, int]:
        """A (B, U) view of the buffer for a new forward, and that forward's number."""
        n = shape[0] * shape[1]
        b = self.buffer
        if b is None or b.numel() < n or b.device != like.device or b.dtype != like.dtype:
            b = self.buffer = torch.empty(n, device=like.device, dtype=like.dtype)
        self.owner += 1
        return b[:n].view(shape), self.owner


class _BatchSoftmax(torch.autograd.Function):
    r"""Mean over rows of the in-batch softmax cross-entropy over count-weighted distinct columns.

    Row r's loss is ``lse_r - (z_rt - log n_t)``, with ``t`` its target column, the logits
    ``z_rj = s_rj/τ + bias_j`` (``bias_j = log n_j - log p_j``) and ``lse_r`` their log-sum-exp
    over the row. With ``hits`` (flat indices into (B, U), the row's own target allowed among
    them) those entries are left out of the sum and the target's logit counts once
    (``z_rt - log n_t``). The gradient of the logits is ``softmax_r - onehot(t)`` (over B),
    ``∂/∂u = G v / τ`` and ``∂/∂v = Gᵀ u / τ``; the exponentials of the forward are kept in place
    for it (one (B, U) buffer, the only one).

    The hits are zeroed after the exponential, and the row maximum that keeps it from
    overflowing is taken over every column: an exponential of −∞ (or of anything that
    underflows) is far slower than of an ordinary number on CPU. That maximum may then belong to
    a hit; while the row's own logit is within 60 of it (``exp(-60)`` is an ordinary float) the
    sum is exact, and a batch with a row beyond that masks its hits with −∞ before the maximum.
    """

    @staticmethod
    def forward(ctx, u, v, bias, log_n_target, target, hits, temperature, workspace=None):
        B, U = u.shape[0], v.shape[0]
        out = None
        if workspace is not None:
            out, ctx.number = workspace.take((B, U), u)
        z = torch.addmm(bias[None, :], u, v.T, alpha=1.0 / temperature, out=out)  # (B, U), the only big tensor
        ctx.workspace = workspace
        flat = z.view(-1)
        at = torch.arange(B, device=z.device) * U + target
        z_target = flat[at] - log_n_target  # the row's own logit, counted once
        top = z.amax(1, keepdim=True)
        if hits is not None:
            flat[at] = z_target
            if bool((z_target - top[:, 0] < -_UNDERFLOW).any()):  # a hit far above the target: exact max
                flat[hits] = float("-inf")
                flat[at] = z_target
                top = z.amax(1, keepdim=True)
        z.sub_(top).exp_()
        if hits is not None:
            flat[hits] = 0.0
            flat[at] = (z_target - top[:, 0]).exp()
        total = z.sum(1)
        lse = top[:, 0] + total.log()
        ctx.save_for_backward(u, v, z, total, at)
        ctx.temperature = temperature
        ctx.done = False
        return (lse - z_target).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        if ctx.done:
            raise RuntimeError("the in-batch softmax's backward runs once (its buffer is reused in place)")
        ctx.done = True
        if ctx.workspace is not None and ctx.workspace.owner != ctx.number:
            raise RuntimeError("the in-batch softmax's buffer was taken by a later loss before this backward: "
                               "call backward() before computing the next in-batch loss")
        u, v, e, total, at = ctx.saved_tensors
        scale = grad / (u.shape[0] * ctx.temperature)
        g = e.mul_((scale / total)[:, None])  # softmax / (B τ), in place of the exponentials
        g.view(-1)[at] -= scale
        grad_u = g @ v if ctx.needs_input_grad[0] else None
        grad_v = g.T @ u if ctx.needs_input_grad[1] else None
        return grad_u, grad_v, None, None, None, None, None, None


#: how far (in logits) a hit may lie above the row's own logit before the softmax masks it exactly
_UNDERFLOW = 60.0
