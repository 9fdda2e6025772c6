r"""Pairwise samplers of the BPR family: uniform, popularity-biased and dynamic hard negatives.

Papers
------
- S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian Personalized
  Ranking from Implicit Feedback", UAI 2009.
- W. Zhang, T. Chen, J. Wang, Y. Yu, "Optimizing Top-N Collaborative Filtering via Dynamic
  Negative Item Sampling", SIGIR 2013 (DNS).

The loss
--------
Every sampler here draws, for each training interaction (u, i), ``k`` items j from the user's
unobserved items and minimizes the BPR criterion (Rendle et al., Sec. 4.1, eq. 5, written as a
loss to minimize; the L2 term ``λ‖Θ‖²`` is added by the Trainer)::

    (1)  ℓ(u, i, j) = −ln σ(x̂_ui − x̂_uj)

averaged over the batch's triples, computed as ``-F.logsigmoid(s_i - s_j)`` (finite for any
score). A :class:`~recsampling.samplers.base.Batch` holds ``users`` (B,) and ``items`` (B, 1 + k),
column 0 the positive, and with ``collision="skip"`` a ``mask`` (False: a skipped triple).
An epoch is one shuffled pass over the training interactions (``n_samples = nnz``), the same
definition as the fused kernel's.

How the negatives j are drawn
-----------------------------
- ``"bpr"``: j uniform over all items, exactly rejecting the user's positives (the distribution
  restricted to u's unobserved items, as in Rendle et al.'s LearnBPR).
- ``"popularity"``: P(j) ∝ n_j^α, n_j the item's number of training interactions (items never
  interacted with are never drawn when α > 0; α = 0 is uniform). With α = 1 and
  ``collision="skip"`` this reproduces the ``implicit`` library's draw: its CPU BPR
  (``implicit/cpu/bpr.pyx``) takes the item of a uniformly random non-zero of the matrix as the
  negative (so P(j) ∝ n_j) and, when the user has interacted with it, *skips* the triple instead
  of drawing again (implicit issue #255). ``collision="redraw"`` is exact rejection.
- ``"dns"``: DNS (Zhang et al., Alg. 1, "dynamic sampling"): draw ``m = n_candidates`` uniform
  unobserved candidates, score them with the current model and keep the highest-scored one
  (``n_negatives`` > 1 keeps the top ones), i.e. ``j = argmax_{c ∈ C} x̂_uc``; the selection
  takes no gradient, the loss (1) is then taken on the chosen j.

Collisions are handled by :func:`draw_negatives` (vectorized rejection, see there).

The fused path
--------------
All three also train in the fused CPU kernel of :mod:`recsampling.fast.mf` when the Trainer's
lookup (:func:`recsampling.fast.find_kernel`) finds one for the model and optimizer (matrix
factorization, SGD or Adagrad, CPU): the same draws, the same row loss (1), one step per row.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler, register

__all__ = ["draw_negatives", "positive_rows", "users_with_negatives", "popularity_weights", "bpr_loss", "BPRSampler",
           "PopularitySampler", "DNSSampler"]

logger = logging.getLogger("recsampling")

_COLLISIONS = ("redraw", "skip")
_MAX_ROUNDS = 64  # redraw rounds before checking whether the remaining users have any negative at all


def bpr_loss(pos: Tensor, neg: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean of ``-log σ(pos - neg)`` (eq. 1), optionally over the entries where ``weight`` > 0.

    Parameters
    ----------
    pos : Tensor of shape (B, 1) or (B,)
    neg : Tensor of shape (B, k)
    weight : Tensor of shape (B, k), optional
        Per-triple weights (a 0/1 validity mask in ``collision="skip"`` mode): a skipped triple
        adds 0 and still counts in the mean, as ``implicit`` skips its update (so the loss of a
        batch is the mean of its rows' losses, the fused kernel's row loss).
    """
    if pos.dim() == neg.dim() - 1:
        pos = pos.unsqueeze(-1)
    terms = -F.logsigmoid(pos - neg)
    if weight is None:
        return terms.mean()
    return (terms * weight.to(terms.dtype)).mean()


def _as_csr(matrix, name: str = "matrix") -> sp.csr_matrix:
    """``matrix`` (an Interactions or a scipy sparse users x items matrix) as CSR with sorted rows."""
    m = getattr(matrix, "matrix", matrix)
    if not sp.issparse(m):
        raise ValueError(f"{name} must be an Interactions or a scipy sparse users x items matrix, got "
                         f"{type(matrix).__name__}")
    m = m.tocsr()
    if not m.has_sorted_indices:
        m = m.copy()
        m.sort_indices()
    return m


def _check_collision(collision) -> str:
    """``collision`` if it is one of ``"redraw"`` and ``"skip"``, else a ``ValueError``."""
    if collision not in _COLLISIONS:
        raise ValueError(f"collision must be one of {_COLLISIONS}, got {collision!r}")
    return collision


def _check_users(users, n_users: int) -> np.ndarray:
    """``users`` as a 1-d int64 array of row indices in ``[0, n_users)``, else a ``ValueError``."""
    users = np.asarray(users)
    if users.ndim != 1 or (users.size and users.dtype.kind not in "iu"):
        raise ValueError(f"users must be a 1-d integer array, got shape {users.shape} and dtype {users.dtype}")
    users = users.astype(np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"users must be in [0, {n_users}), got values in [{users.min()}, {users.max()}]")
    return users


def _in_rows(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Whether ``items[t]`` is in row ``users[t]`` of a sorted CSR (vectorized binary search)."""
    lo = indptr[users].astype(np.int64)
    end = indptr[users + 1].astype(np.int64)
    hi = end.copy()
    if indices.size == 0:
        return np.zeros(items.shape, dtype=bool)
    longest = int((end - lo).max()) if lo.size else 0
    for _ in range(max(1, longest).bit_length()):
        mid = (lo + hi) >> 1
        v = indices[np.minimum(mid, indices.size - 1)]
        go_right = (mid < hi) & (v < items)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(go_right | (mid >= hi), hi, mid)
    at = np.minimum(lo, indices.size - 1)
    return (lo < end) & (indices[at] == items)


def _item_cdf(item_probs, n_items: int) -> np.ndarray | None:
    if item_probs is None:
        return None
    p = np.asarray(item_probs, dtype=np.float64)
    if p.shape != (n_items,):
        raise ValueError(f"item_probs must have one entry per item ({n_items}), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not p.sum() > 0:
        raise ValueError("item_probs must be finite, non-negative and have a positive sum")
    return np.cumsum(p / p.sum())


def _draw_items(cdf: np.ndarray | None, n_items: int, size, rng: np.random.Generator) -> np.ndarray:
    if cdf is None:
        return rng.integers(0, n_items, size=size, dtype=np.int64)
    j = np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right")
    return np.minimum(j, n_items - 1).astype(np.int64)


def _has_negative(indptr, indices, users, cdf, n_items) -> np.ndarray:
    """Whether each user has at least one drawable item outside their positives."""
    counts = np.diff(indptr)[users]
    if cdf is None:
        return counts < n_items
    p = np.diff(cdf, prepend=0.0) > 0
    drawable = int(p.sum())
    # drawable positives per user (one bincount over the whole matrix, no loop over users)
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    pos_drawable = np.bincount(rows, weights=p[indices], minlength=indptr.size - 1)[users]
    return pos_drawable < drawable


def draw_negatives(
    matrix,
    users: np.ndarray,
    k: int,
    rng: np.random.Generator,
    item_probs: np.ndarray | None = None,
    collision: str = "redraw",
):
    """Draw ``k`` negatives per user, vectorized, with exact rejection of the user's positives.

    Parameters
    ----------
    matrix : scipy sparse users x items matrix or Interactions
        The positives (every stored entry).
    users : array of int, shape (n,)
        The user of each row.
    k : int
        Negatives per row.
    rng : numpy.random.Generator
    item_probs : array of float, shape (n_items,), optional
        Drawing distribution (normalized here); uniform when None.
    collision : {"redraw", "skip"}
        ``"redraw"``: exact rejection sampling. All draws are made at once; the membership of
        each (user, item) in the user's sorted CSR row is tested by a vectorized binary search,
        and only the colliding entries are drawn again (the loop runs over redraw rounds, never
        over examples). ``"skip"``: one draw; collisions are reported in a mask (``implicit``'s
        behaviour: the caller skips those triples).

    Returns
    -------
    negatives : numpy.ndarray of int64, shape (n, k)
        With ``collision="redraw"``, only this.
    valid : numpy.ndarray of bool, shape (n, k)
        With ``collision="skip"`` the return is ``(negatives, valid)``; ``valid`` is False
        where the drawn item is one of the user's positives.

    Raises
    ------
    ValueError
        On bad arguments, and in ``"redraw"`` mode when a user has no drawable unobserved item.
    """
    _check_collision(collision)
    check_int(k, "k")
    m = _as_csr(matrix)
    n_users, n_items = m.shape
    users = _check_users(users, n_users)
    cdf = _item_cdf(item_probs, n_items)
    indptr = m.indptr.astype(np.int64)
    indices = m.indices.astype(np.int64)
    uu = np.repeat(users, k)
    neg = _draw_items(cdf, n_items, uu.size, rng)
    hit = _in_rows(indptr, indices, uu, neg)
    if collision == "skip":
        return neg.reshape(users.size, k), (~hit).reshape(users.size, k)
    rounds = 0
    todo = np.flatnonzero(hit)
    while todo.size:
        rounds += 1
        if rounds % _MAX_ROUNDS == 0:
            stuck = np.unique(uu[todo])
            ok = _has_negative(indptr, indices, stuck, cdf, n_items)
            if not ok.all():
                raise ValueError(f"user {int(stuck[~ok][0])} has interacted with every drawable item: "
                                 "no negative exists (drop such users or use collision='skip')")
        neg[todo] = _draw_items(cdf, n_items, todo.size, rng)
        todo = todo[_in_rows(indptr, indices, uu[todo], neg[todo])]
    return neg.reshape(users.size, k)


def users_with_negatives(train: Interactions, item_probs: np.ndarray | None = None) -> np.ndarray:
    """Whether each user has at least one drawable unobserved item, bool of shape (n_users,).

    Parameters
    ----------
    train : Interactions
    item_probs : array of float, shape (n_items,), optional
        The negative distribution (uniform when None): items of probability 0 are not drawable.
    """
    m = _as_csr(train)
    users = np.arange(m.shape[0])
    return _has_negative(m.indptr.astype(np.int64), m.indices.astype(np.int64), users,
                         _item_cdf(item_probs, m.shape[1]), m.shape[1])


def positive_rows(
    train: Interactions,
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    batch_size: int,
    rng: np.random.Generator,
    *,
    order: np.ndarray,
    has_negative: np.ndarray,
    item_probs: np.ndarray | None = None,
    collision: str = "redraw",
    equal_batches: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of rows "a training positive plus ``k`` drawn items": the generator every such sampler uses.

    The positives ``(users[t], items[t])`` for ``t`` in ``order`` are visited in that order (every
    one once: :meth:`Sampler.epoch_order`, this process's share under torchrun), and each gets
    ``k`` items drawn by :func:`draw_negatives` (``item_probs``, ``collision``).

    Parameters
    ----------
    train : Interactions
        The positives that draws reject.
    users, items : arrays of int, shape (n,)
        The positives to visit (usually every training interaction).
    k : int
        Items drawn per row.
    batch_size : int
        Rows per batch.
    rng : numpy.random.Generator
    order : int array
        Positions in ``users`` / ``items`` to visit, in order.
    has_negative : bool array, shape (n_users,)
        :func:`users_with_negatives` of the same ``item_probs`` (computed once per fit).
    item_probs, collision
        As in :func:`draw_negatives`.
    equal_batches : bool, default False
        Split the epoch into near-equal batches (sizes differ by at most 1) instead of full
        batches and a remainder (for losses normalized per batch, e.g. DLA's).

    Yields
    ------
    idx : int array (B,)
        Positions of the batch's positives in ``users`` / ``items``.
    users : int64 array (B,)
    items : int64 array (B, 1 + k)
        Column 0 the positive, columns 1..k the drawn items.
    mask : bool array (B, 1 + k)
        True where a column is usable: column 0 always; a drawn column unless it is a skipped
        collision (``collision="skip"``) or its user has no drawable unobserved item at all (then
        every drawn column holds the positive itself and is masked).
    """
    batch_size = check_int(batch_size, "batch_size")
    if equal_batches:
        parts = np.array_split(order, max(1, -(-order.size // batch_size)))
    else:
        parts = (order[start:start + batch_size] for start in range(0, order.size, batch_size))
    for idx in parts:
        u = users[idx]
        pos = items[idx]
        out = np.empty((idx.size, 1 + k), dtype=np.int64)
        mask = np.ones((idx.size, 1 + k), dtype=bool)
        out[:, 0] = pos
        ok = has_negative[u]
        if not ok.all():
            out[~ok, 1:] = pos[~ok, None]
            mask[~ok, 1:] = False
        if ok.any():
            drawn = draw_negatives(train.matrix, u[ok], k, rng, item_probs, collision)
            if collision == "skip":
                drawn, valid = drawn
                mask[ok, 1:] = valid
            out[ok, 1:] = drawn
        yield idx, u, out, mask


def popularity_weights(item_counts: np.ndarray, alpha: float) -> np.ndarray:
    """The popularity negative distribution's weights ``n_j ** alpha``, unnormalized.

    The one definition of the distribution: the samplers normalize it (``item_probs_``), the
    fused kernels build their alias table from it (:mod:`recsampling.fast.draws`).

    Parameters
    ----------
    item_counts : array of int, shape (n_items,)
        Training interactions per item.
    alpha : float
        Exponent, >= 0. With ``alpha > 0`` an item never interacted with has weight 0 (it is never
        drawn); ``alpha = 0`` gives every item weight 1 (uniform, unseen items included).

    Returns
    -------
    numpy.ndarray of float64, shape (n_items,)
    """
    c = np.asarray(item_counts, dtype=np.float64)
    if alpha == 0:
        return np.ones_like(c)
    return np.where(c > 0, np.power(c, alpha, where=c > 0, out=np.zeros_like(c)), 0.0)


class _PairwiseSampler(Sampler):
    """One row per training interaction: (u, i) plus ``k`` negatives; BPR loss (eq. 1)."""

    fold_in_objective = "bpr"

    #: popularity exponent of the negative distribution (None: uniform)
    _alpha: float | None = None

    def __init__(self, n_negatives: int = 1, collision: str = "redraw"):
        super().__init__()
        self.n_negatives = n_negatives
        self.collision = collision

    # -- the per-sampler parts ----------------------------------------------------------------
    def _k(self) -> int:
        """Columns of negatives drawn per row."""
        return int(self.n_negatives)

    def _validate(self) -> None:
        check_int(self.n_negatives, "n_negatives")
        _check_collision(self.collision)

    # -- the contract ----------------------------------------------------------------------------
    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        """Validate the parameters, index the positives, build the negative distribution.

        Users with no drawable unobserved item (they interacted with everything) have no
        negative: in ``"redraw"`` mode their interactions are left out of the epochs (logged).
        """
        self._validate()
        super().prepare(train, rng)
        self.item_probs_ = None
        if self._alpha is not None:
            weights = popularity_weights(train.item_counts(), self._alpha)
            self.item_probs_ = weights / weights.sum()
        users = train.user_index()
        items = train.item_index()
        self._has_negative = users_with_negatives(train, self.item_probs_)
        keep = np.ones(users.size, dtype=bool)
        if self.collision == "redraw":
            ok = self._has_negative
            active = train.user_counts() > 0
            keep = ok[users]
            if not keep.all():
                logger.warning("%s: %d users have no drawable unobserved item; their %d interactions are "
                               "left out", self.name, int((~ok & active).sum()), int((~keep).sum()))
                if not keep.any():
                    why = "" if not self._alpha else (" (popularity negatives never draw an item without "
                                                      "training interactions)")
                    raise ValueError(f"{self.name}: no user has an unobserved item to draw as a negative{why}; "
                                     "nothing to train on")
        self.users_ = users[keep]
        self.items_ = items[keep]

    def n_samples(self) -> int:
        self._check_prepared()
        return int(self.users_.size)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every training interaction once, in random order, with its negatives.

        A :class:`Batch` of ``users`` (B,) and ``items`` (B, 1 + k) (column 0 the positive; DNS:
        ``k = n_candidates``); with ``collision="skip"`` also ``mask`` (B, 1 + k), False where a
        drawn item is a positive of the user (the triple is skipped). With ``"redraw"`` no row is
        ever padded (users without a negative are left out in :meth:`prepare`): ``mask`` is None.
        """
        self._check_prepared()
        skip = self.collision == "skip"
        for _, users, items, mask in positive_rows(self.train_, self.users_, self.items_, self._k(), batch_size, rng,
                                                   order=self.epoch_order(self.users_.size, rng),
                                                   has_negative=self._has_negative, item_probs=self.item_probs_,
                                                   collision=self.collision):
            yield Batch(users, items, mask=mask if skip else None)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        s = model.score(batch.users, batch.items)
        return bpr_loss(s[:, :1], s[:, 1:], None if batch.mask is None else batch.mask[:, 1:])


@register("bpr")
class BPRSampler(_PairwiseSampler):
    """Uniform BPR (Rendle et al., UAI 2009): ``n_negatives`` uniform unobserved items per positive.

    Parameters
    ----------
    n_negatives : int, default 1
        Negatives per training interaction (each one a triple of eq. 1).
    collision : {"redraw", "skip"}, default "redraw"
        Exact rejection of the user's positives, or ``implicit``-style skipping.
    """


@register("popularity")
class PopularitySampler(_PairwiseSampler):
    """Popularity-biased negatives: P(j) ∝ n_j^α; α = 1 with ``collision="skip"`` is ``implicit``'s BPR.

    Parameters
    ----------
    alpha : float, default 1.0
        Popularity exponent (0: uniform over all items; items never interacted with are never
        drawn when α > 0).
    n_negatives : int, default 1
    collision : {"redraw", "skip"}, default "redraw"
    """

    demo_params = {"alpha": 0.5}

    def __init__(self, alpha: float = 1.0, n_negatives: int = 1, collision: str = "redraw"):
        super().__init__(n_negatives=n_negatives, collision=collision)
        self.alpha = alpha

    def _validate(self) -> None:
        super()._validate()
        self._alpha = check_number(self.alpha, "alpha", 0.0)


@register("dns")
class DNSSampler(_PairwiseSampler):
    """Dynamic negative sampling (Zhang et al., SIGIR 2013): the hardest of ``m`` uniform candidates.

    Parameters
    ----------
    n_candidates : int, default 10
        ``m``: uniform unobserved candidates drawn per positive (exact rejection).
    n_negatives : int, default 1
        How many of the highest-scored candidates enter the loss (1 in the paper).
    collision : {"redraw", "skip"}, default "redraw"

    Notes
    -----
    The batch's ``items`` is (B, 1 + m): the positive and all candidates; the selection
    happens in :meth:`loss` with the current model, without gradient.
    """

    demo_params = {"n_candidates": 5}

    def __init__(self, n_candidates: int = 10, n_negatives: int = 1, collision: str = "redraw"):
        super().__init__(n_negatives=n_negatives, collision=collision)
        self.n_candidates = n_candidates

    def _k(self) -> int:
        return int(self.n_candidates)

    def _validate(self) -> None:
        super()._validate()
        check_int(self.n_candidates, "n_candidates")
        if self.n_negatives > self.n_candidates:
            raise ValueError(f"n_negatives ({self.n_negatives}) must be <= n_candidates ({self.n_candidates})")

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        s = model.score(batch.users, batch.items)
        cand = s[:, 1:]
        valid = None if batch.mask is None else batch.mask[:, 1:]
        with torch.no_grad():
            sel = cand.detach()
            if valid is not None:
                sel = sel.masked_fill(~valid, float("-inf"))
            top = sel.topk(int(self.n_negatives), dim=1).indices
        neg = cand.gather(1, top)
        weight = None if valid is None else valid.gather(1, top)
        return bpr_loss(s[:, :1], neg, weight)

    def negative_weights(self, model: nn.Module, batch: Batch) -> Tensor:
        """(B, L) weight of each entry as a negative in the loss: 1 on the selected candidates, else 0.

        What :func:`recsampling.diagnostics.false_negative_share` counts for DNS (the candidates
        the loss never sees are not its negatives).
        """
        with torch.no_grad():
            s = model.score(batch.users, batch.items)
            sel = s[:, 1:] if batch.mask is None else s[:, 1:].masked_fill(~batch.mask[:, 1:], float("-inf"))
            top = sel.topk(int(self.n_negatives), dim=1).indices
            out = torch.zeros_like(s)
            ones = torch.ones_like(top, dtype=s.dtype)
            if batch.mask is not None:
                ones = batch.mask[:, 1:].gather(1, top).to(s.dtype)
            out[:, 1:].scatter_(1, top, ones)
        return out
