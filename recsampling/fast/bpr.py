"""Fused CPU kernel for matrix factorization trained with BPR: one epoch of hogwild SGD in numba.

Paper: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian Personalized
Ranking from Implicit Feedback", UAI 2009.

The model (Rendle et al., Sec. 4.3.1, with an item bias as in the ``implicit`` library)::

    x_ui  = <p_u, q_i> + b_i
    x_uij = x_ui - x_uj                                   # Sec. 4.1

and the criterion BPR-Opt = sum ln sigma(x_uij) - lambda ||Theta||^2 (Sec. 4.1) is maximised by
stochastic gradient steps on single triples (u, i, j) (LearnBPR, Sec. 4.2, Fig. 4), i.e. each
step descends

    l(u, i, j) = -ln sigma(x_uij) + l2/2 * (||p_u||^2 + ||q_i||^2 + ||q_j||^2 + b_i^2 + b_j^2)

    z     = 1 - sigma(x_uij) = sigma(-x_uij)            # -dl/dx_uij
    p_u  <- p_u + lr * (z * (q_i - q_j) - l2 * p_u)
    q_i  <- q_i + lr * (z * p_u         - l2 * q_i)
    q_j  <- q_j + lr * (-z * p_u        - l2 * q_j)
    b_i  <- b_i + lr * (z  - l2 * b_i)
    b_j  <- b_j + lr * (-z - l2 * b_j)

(the paper's Fig. 4 update with the regularization "``l2`` times the vector", as ``implicit``
does it; every update uses the parameter values from before the step). A user bias would cancel
in x_uij: it gets no gradient from BPR and is left untouched.

What an epoch is
----------------
One epoch is **one shuffled pass over all training interactions**: every stored (u, i) of the
CSR matrix is visited exactly once, in a uniformly random order (the same definition as the
torch path's samplers). Users therefore appear in proportion to their activity, as in
``implicit``, which instead draws nnz random nonzeros *with replacement* (the paper's LearnBPR
bootstraps triples with replacement too; both avoid the user-wise order the paper warns
against, Sec. 4.2). For each visited
positive, ``n_negatives`` negatives j are drawn and each triple (u, i, j) is one SGD step.

The shuffle is a random-bucket shuffle: each interaction is sent to one of B blocks uniformly at
random, then each block is Fisher-Yates shuffled on its own; the concatenation is a uniformly
random permutation. The blocks are also the units of parallel work (B depends only on nnz, never
on the number of threads).

Negatives
---------
- uniform (``alpha=None`` or ``alpha=0``): j uniform over all items;
- popularity (``alpha > 0``): P(j) proportional to n_j ** alpha, n_j the item's number of training
  interactions (items never interacted with are never drawn), by Walker's alias method (O(1) per
  draw). ``alpha=1`` is the distribution of ``implicit``'s draw (the item of a random nonzero).

Collisions (j is one of the user's positives) are checked exactly, with one bit test in a bit
matrix of the interactions (built per epoch, n_users * n_items / 8 bytes, up to
``BITMAP_MAX_BYTES``) or, for larger matrices, by binary search in the user's sorted CSR row:

- ``"redraw"``: draw again until j is not a positive (exact rejection sampling, the
  distribution restricted to the user's unobserved items). A user who has every drawable item
  has no negative at all; their samples are skipped and counted.
- ``"skip"``: no update for that triple (``implicit``'s behaviour, its issue #255); counted.

Threads and reproducibility
---------------------------
Blocks run in a numba ``prange`` (``parallel=True, nogil=True``) and update the shared tables
without locks (hogwild, Niu et al. 2011). Random numbers come from one splitmix64 stream per
block, all seeded from the caller's ``numpy.random.Generator``. With ``n_threads=1`` an epoch is
bit-for-bit reproducible for a fixed seed (on the same machine and numba build: ``fastmath``
lets the compiler vectorize the dot products, which fixes their summation order at compile time).
With more than one thread the draws are the same but the interleaving of the lock-free updates
is not, so results are **not** bit-reproducible.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp

from recsampling._utils import RandomState, check_random_state

__all__ = [
    "BITMAP_MAX_BYTES",
    "BLOCK_SIZE",
    "alias_table",
    "bpr_sgd_epoch",
    "draw_negatives",
    "interaction_bitmap",
    "mf_bpr_epoch",
    "popularity_weights",
]

logger = logging.getLogger("recsampling")

#: Interactions per parallel block (the unit of work and of random streams).
BLOCK_SIZE = 1 << 15

#: Largest bit matrix of the interactions built for collision tests (bytes); above it, binary search.
BITMAP_MAX_BYTES = 64 << 20

_COLLISIONS = ("redraw", "skip")

# ---------------------------------------------------------------------------------------------
# random numbers: splitmix64 (Steele, Lea, Flood 2014); all constants typed uint64 so that numba
# never promotes to float64.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV32 = 1.0 / 4294967296.0


@numba.njit(nogil=True, cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@numba.njit(nogil=True, cache=True, inline="always")
def _bounded(r, n):
    """An integer in [0, n) from the high 32 bits of ``r`` (Lemire's multiply-shift, n < 2**32)."""
    return np.int64(((r >> _S32) * np.uint64(n)) >> _S32)


@numba.njit(nogil=True, cache=True, inline="always")
def _in_row(indices, start, end, j):
    """Whether ``j`` is in the sorted slice ``indices[start:end]`` (binary search)."""
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        v = indices[mid]
        if v < j:
            lo = mid + 1
        elif v > j:
            hi = mid
        else:
            return True
    return False


@numba.njit(nogil=True, cache=True, inline="always")
def _draw_item(state, n_items, alias_prob, alias_index):
    """One item from the uniform (empty alias table) or alias distribution; returns (state, j)."""
    state = state + _GOLDEN
    r = _mix(state)
    k = _bounded(r, n_items)
    if alias_prob.shape[0] == 0:
        return state, k
    if (r & _LOW32) * _INV32 < alias_prob[k]:
        return state, k
    return state, np.int64(alias_index[k])


@numba.njit(nogil=True, cache=True, inline="always")
def _is_positive(bitmap, row_bytes, indptr, indices, u, j):
    """Whether (u, j) is a training interaction: one bit test, or a binary search in u's row."""
    if bitmap.shape[0] > 0:
        return ((bitmap[u * row_bytes + (j >> 3)] >> (j & 7)) & 1) != 0
    return _in_row(indices, indptr[u], indptr[u + 1], j)


@numba.njit(nogil=True, cache=True)
def _build_bitmap(indptr, indices, row_bytes):
    """Row-major bit matrix of the interactions, ``row_bytes`` bytes per user."""
    n_users = indptr.shape[0] - 1
    bitmap = np.zeros(n_users * row_bytes, dtype=np.uint8)
    for u in range(n_users):
        base = u * row_bytes
        for k in range(indptr[u], indptr[u + 1]):
            j = indices[k]
            bitmap[base + (j >> 3)] |= np.uint8(1 << (j & 7))
    return bitmap


@numba.njit(nogil=True, cache=True, inline="always")
def _draw_negative(state, indptr, indices, bitmap, row_bytes, u, n_items, alias_prob, alias_index, skip):
    """A negative for user ``u``; returns (state, j) with j = -1 for a skipped collision."""
    while True:
        state, j = _draw_item(state, n_items, alias_prob, alias_index)
        if not _is_positive(bitmap, row_bytes, indptr, indices, u, j):
            return state, j
        if skip:
            return state, np.int64(-1)


@numba.njit(nogil=True, cache=True)
def _prepare_epoch(indptr, indices, n_blocks, seed, use_bitmap, row_bytes):
    """Shuffle the interactions into ``n_blocks`` random buckets (and build the bit matrix).

    Each interaction goes to a uniformly random block; within a block the interactions keep CSR
    order here (the SGD pass Fisher-Yates shuffles each block, which makes the concatenation a
    uniform permutation). Serial on purpose: two sequential passes over the CSR arrays cost a
    few ms per million interactions, and on a shared machine every extra parallel region waits
    for the slowest thread.

    Returns
    -------
    users, items : int32 arrays, shape (nnz,)
    offsets : int64 array, shape (n_blocks + 1,)
    bitmap : uint8 array, shape (n_users * row_bytes,) or (0,)
    state : uint64, the random state after the draws
    """
    n_users = indptr.shape[0] - 1
    nnz = indices.shape[0]
    state = np.uint64(seed)
    bitmap = np.zeros(n_users * row_bytes if use_bitmap else 0, dtype=np.uint8)
    bucket = np.empty(nnz, dtype=np.int32)
    offsets = np.zeros(n_blocks + 1, dtype=np.int64)
    for u in range(n_users):
        base = u * row_bytes
        for k in range(indptr[u], indptr[u + 1]):
            state = state + _GOLDEN
            b = _bounded(_mix(state), n_blocks)
            bucket[k] = b
            offsets[b + 1] += 1
            if use_bitmap:
                j = indices[k]
                bitmap[base + (j >> 3)] |= np.uint8(1 << (j & 7))
    for b in range(n_blocks):
        offsets[b + 1] += offsets[b]
    fill = offsets[:n_blocks].copy()
    users = np.empty(nnz, dtype=np.int32)
    items = np.empty(nnz, dtype=np.int32)
    for u in range(n_users):
        for k in range(indptr[u], indptr[u + 1]):
            b = bucket[k]
            pos = fill[b]
            users[pos] = u
            items[pos] = indices[k]
            fill[b] = pos + 1
    return users, items, offsets, bitmap, state


# fastmath without the no-NaN / no-inf assumptions: reassociation lets LLVM vectorize the loops
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(nogil=True, parallel=True, fastmath=_FASTMATH, cache=True)
def bpr_sgd_epoch(
    indptr,
    indices,
    user_factors,
    item_factors,
    item_biases,
    lr,
    l2,
    n_negatives,
    alias_prob,
    alias_index,
    skip,
    seed,
    use_bitmap,
):
    """One shuffled epoch of hogwild BPR-SGD over numpy arrays (the numba kernel).

    Parameters
    ----------
    indptr : int64 array, shape (n_users + 1,)
    indices : int32 array, shape (nnz,)
        The users x items training matrix in CSR form, column indices sorted within each row.
    user_factors : float32 array, shape (n_users, d)
    item_factors : float32 array, shape (n_items, d)
        Updated in place.
    item_biases : float32 array, shape (n_items,) or (0,)
        Updated in place; an empty array means "no item bias".
    lr, l2 : float
        Learning rate and L2 coefficient (the step subtracts ``lr * l2 * vector``).
    n_negatives : int
        Negatives (and SGD steps) per visited positive.
    alias_prob : float64 array, shape (n_items,) or (0,)
    alias_index : int32 array, shape (n_items,) or (0,)
        Alias table of the negative distribution (:func:`alias_table`); empty means uniform.
    skip : bool
        True: a negative that is a positive is skipped; False: redrawn (exact rejection).
    seed : uint64
        Seed of the epoch's random streams.
    use_bitmap : bool
        Build the interactions' bit matrix (n_users * ceil(n_items / 8) bytes) for one-load
        collision tests; False: binary search in the sorted CSR row instead (same draws).

    Returns
    -------
    loss_sum : float
        Sum of ``-log sigma(x_uij)`` over the triples updated (before their update).
    n_updates : int
        Triples updated.
    n_skipped : int
        Triples skipped (collisions in ``skip`` mode, users without any negative).
    """
    n_users = indptr.shape[0] - 1
    n_items = item_factors.shape[0]
    d = item_factors.shape[1]
    nnz = indices.shape[0]
    has_bias = item_biases.shape[0] > 0
    row_bytes = (n_items + 7) // 8
    if alias_prob.shape[0] > 0:
        n_drawable = 0
        for k in range(alias_prob.shape[0]):
            # zero-weight items have prob 0 and are never an alias target (see alias_table)
            if alias_prob[k] > 0.0:
                n_drawable += 1
    else:
        n_drawable = n_items
    n_blocks = max(1, (nnz + BLOCK_SIZE - 1) // BLOCK_SIZE)
    users, items, offsets, bitmap, state = _prepare_epoch(indptr, indices, n_blocks, seed, use_bitmap, row_bytes)
    seeds = np.empty(n_blocks, dtype=np.uint64)
    for b in range(n_blocks):
        state = state + _GOLDEN
        seeds[b] = _mix(state)
    loss_sums = np.zeros(n_blocks, dtype=np.float64)
    n_updates = np.zeros(n_blocks, dtype=np.int64)
    n_skipped = np.zeros(n_blocks, dtype=np.int64)
    lr_ = np.float32(lr)
    l2_ = np.float32(l2)
    for b in numba.prange(n_blocks):
        s = seeds[b]
        lo = offsets[b]
        hi = offsets[b + 1]
        # Fisher-Yates inside the block (the bucket assignment already mixed across blocks)
        for t in range(hi - 1, lo, -1):
            s = s + _GOLDEN
            r = lo + _bounded(_mix(s), t - lo + 1)
            tu = users[t]
            users[t] = users[r]
            users[r] = tu
            ti = items[t]
            items[t] = items[r]
            items[r] = ti
        loss = 0.0
        done = 0
        skipped = 0
        for t in range(lo, hi):
            u = users[t]
            i = items[t]
            if indptr[u + 1] - indptr[u] >= n_drawable:
                skipped += n_negatives
                continue
            for _ in range(n_negatives):
                s, j = _draw_negative(s, indptr, indices, bitmap, row_bytes, u, n_items, alias_prob,
                                      alias_index, skip)
                if j < 0:
                    skipped += 1
                    continue
                x = np.float32(0.0)
                for f in range(d):
                    x += user_factors[u, f] * (item_factors[i, f] - item_factors[j, f])
                if has_bias:
                    x += item_biases[i] - item_biases[j]
                # -log sigma(x) and z = sigma(-x), computed without overflow
                if x > 0:
                    e = math.exp(-x)
                    loss += math.log1p(e)
                    z = e / (np.float32(1.0) + e)
                else:
                    e = math.exp(x)
                    loss += math.log1p(e) - x
                    z = np.float32(1.0) / (np.float32(1.0) + e)
                for f in range(d):
                    pu = user_factors[u, f]
                    qi = item_factors[i, f]
                    qj = item_factors[j, f]
                    user_factors[u, f] = pu + lr_ * (z * (qi - qj) - l2_ * pu)
                    item_factors[i, f] = qi + lr_ * (z * pu - l2_ * qi)
                    item_factors[j, f] = qj + lr_ * (-z * pu - l2_ * qj)
                if has_bias:
                    bi = item_biases[i]
                    bj = item_biases[j]
                    item_biases[i] = bi + lr_ * (z - l2_ * bi)
                    item_biases[j] = bj + lr_ * (-z - l2_ * bj)
                done += 1
        loss_sums[b] = loss
        n_updates[b] = done
        n_skipped[b] = skipped
    return loss_sums.sum(), n_updates.sum(), n_skipped.sum()


@numba.njit(nogil=True, cache=True)
def _draw_negatives_kernel(indptr, indices, bitmap, users, n_items, n_negatives, alias_prob, alias_index, skip,
                           seed):
    out = np.empty((users.shape[0], n_negatives), dtype=np.int64)
    row_bytes = (n_items + 7) // 8
    s = np.uint64(seed)
    for t in range(users.shape[0]):
        for r in range(n_negatives):
            s, j = _draw_negative(s, indptr, indices, bitmap, row_bytes, users[t], n_items, alias_prob,
                                  alias_index, skip)
            out[t, r] = j
    return out


@numba.njit(nogil=True, cache=True)
def _alias_kernel(p):
    n = p.shape[0]
    prob = np.zeros(n, dtype=np.float64)
    alias = np.arange(n).astype(np.int32)
    scaled = p * n
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for k in range(n):
        if scaled[k] < 1.0:
            small[ns] = k
            ns += 1
        else:
            large[nl] = k
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    for k in range(nl):
        prob[large[k]] = 1.0
    for k in range(ns):
        # rounding leftovers: a slot that should be full (zero-weight slots stay at 0)
        if scaled[small[k]] > 0.0:
            prob[small[k]] = 1.0
    return prob, alias


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table for drawing index k with probability ``weights[k] / weights.sum()``.

    Parameters
    ----------
    weights : array of float, shape (n,)
        Non-negative, finite, with a positive sum.

    Returns
    -------
    prob : float64 array, shape (n,)
        Probability of keeping slot k (0 for a zero-weight item, which is never drawn).
    alias : int32 array, shape (n,)
        The item drawn instead when slot k is not kept.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-d array, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    total = w.sum()
    if not total > 0:
        raise ValueError("weights must have a positive sum (at least one drawable item)")
    prob, alias = _alias_kernel(w / total)
    # a zero-weight item is never kept and never an alias target (only slots with scaled mass
    # >= 1 become targets); a zero-weight slot left over by rounding points at the heaviest item
    zero = w == 0
    prob[zero] = 0.0
    alias[zero & (alias == np.arange(w.size))] = int(np.argmax(w))
    return prob, alias


def popularity_weights(item_counts: np.ndarray, alpha: float) -> np.ndarray:
    """Negative-sampling weights ``n_j ** alpha`` (0 for items never interacted with).

    Parameters
    ----------
    item_counts : array of int, shape (n_items,)
        Training interactions per item.
    alpha : float
        Exponent, >= 0; 0 gives every item weight 1 (uniform, including unseen items).

    Returns
    -------
    numpy.ndarray of float64, shape (n_items,)
    """
    c = np.asarray(item_counts, dtype=np.float64)
    if alpha == 0:
        return np.ones_like(c)
    return np.where(c > 0, np.power(c, alpha, where=c > 0, out=np.zeros_like(c)), 0.0)


# ---------------------------------------------------------------------------------------------
# validation and the model-level entry point


def _check_csr(train: Any) -> sp.csr_matrix:
    matrix = getattr(train, "matrix", train)
    if not sp.issparse(matrix):
        raise ValueError(
            f"train must be an Interactions or a scipy sparse users x items matrix, got {type(train).__name__}"
        )
    matrix = matrix.tocsr()
    if not matrix.has_sorted_indices:
        matrix = matrix.copy()
        matrix.sort_indices()
    return matrix


def _csr_arrays(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """int64 indptr and int32 indices as read-only views (one numba signature for every input)."""
    out = []
    for arr, dtype in ((matrix.indptr, np.int64), (matrix.indices, np.int32)):
        view = np.ascontiguousarray(arr, dtype=dtype).view()
        view.flags.writeable = False
        out.append(view)
    return out[0], out[1]


def interaction_bitmap(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> np.ndarray:
    """The interactions as a row-major bit matrix, or an empty array when it would be too big.

    Parameters
    ----------
    indptr : int64 array, shape (n_users + 1,)
    indices : int32 array, shape (nnz,)
    n_items : int

    Returns
    -------
    numpy.ndarray of uint8
        ``ceil(n_items / 8)`` bytes per user (bit ``j % 8`` of byte ``j // 8`` is item j), or an
        empty array when that exceeds :data:`BITMAP_MAX_BYTES` (the kernels then binary-search
        the sorted CSR rows instead; same results, slower).
    """
    row_bytes = (n_items + 7) // 8
    if (indptr.shape[0] - 1) * row_bytes > BITMAP_MAX_BYTES:
        return np.empty(0, dtype=np.uint8)
    return _build_bitmap(indptr, indices, row_bytes)


def _negative_table(indices: np.ndarray, n_items: int, alpha: float | None) -> tuple[np.ndarray, np.ndarray]:
    if alpha is None or alpha == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int32)
    counts = np.bincount(indices, minlength=n_items)
    return alias_table(popularity_weights(counts, alpha))


def _check_options(n_negatives: int, alpha: float | None, collision: str) -> None:
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, (int, np.integer)) or n_negatives < 1:
        raise ValueError(f"n_negatives must be an integer >= 1, got {n_negatives!r}")
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise ValueError(f"alpha must be a number >= 0 or None (uniform), got {alpha!r}")
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0 or None (uniform), got {alpha!r}")
    if collision not in _COLLISIONS:
        raise ValueError(f"collision must be one of {_COLLISIONS}, got {collision!r}")


def _table(model: Any, name: str, optional: bool = False) -> np.ndarray | None:
    if not hasattr(model, name):
        raise ValueError(f"model has no attribute {name!r}; expected a MatrixFactorization-like model")
    emb = getattr(model, name)
    if emb is None:
        if optional:
            return None
        raise ValueError(f"model.{name} is None; expected an embedding table")
    weight = getattr(emb, "weight", emb)
    if hasattr(weight, "detach"):  # a torch tensor / parameter
        if weight.device.type != "cpu":
            raise ValueError(f"model.{name} is on {weight.device}; the fused kernel needs CPU tables (model.cpu())")
        arr = weight.data.numpy()
    else:
        arr = weight
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"model.{name} must be a torch embedding or a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.float32:
        raise ValueError(f"model.{name} must be float32, got {arr.dtype}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"model.{name} must be a writable C-contiguous table (it is updated in place)")
    return arr


def _resolve_threads(n_threads: int | None) -> int:
    limit = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return numba.get_num_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or not 1 <= n_threads <= limit:
        raise ValueError(f"n_threads must be an integer in [1, {limit}] (numba's thread pool) or None, got {n_threads!r}")
    return int(n_threads)


def _seed(rng: RandomState) -> np.uint64:
    gen = check_random_state(rng)
    return np.uint64(gen.integers(0, 2**63, dtype=np.int64))


def draw_negatives(
    train: Any,
    users: np.ndarray,
    *,
    n_negatives: int = 1,
    alpha: float | None = None,
    collision: str = "redraw",
    rng: RandomState = None,
) -> np.ndarray:
    """Draw negatives for ``users`` exactly as the epoch kernel does (for inspection and tests).

    Parameters
    ----------
    train : Interactions or scipy sparse matrix
        users x items training interactions.
    users : array of int, shape (n,)
    n_negatives : int
    alpha : float or None
        None or 0: uniform; > 0: popularity ** alpha.
    collision : {"redraw", "skip"}
    rng : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray of int64, shape (n, n_negatives)
        Item indices; -1 marks a skipped collision (``collision="skip"``).
    """
    _check_options(n_negatives, alpha, collision)
    matrix = _check_csr(train)
    indptr, indices = _csr_arrays(matrix)
    n_users, n_items = matrix.shape
    users = np.asarray(users)
    if users.ndim != 1 or users.dtype.kind not in "iu":
        raise ValueError(f"users must be a 1-d integer array, got shape {users.shape} and dtype {users.dtype}")
    users = users.astype(np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"users must be in [0, {n_users}), got values in [{users.min()}, {users.max()}]")
    prob, alias = _negative_table(indices, n_items, alpha)
    n_drawable = n_items if prob.size == 0 else int((prob > 0).sum())
    full = np.diff(indptr)[users] >= n_drawable
    if collision == "redraw" and full.any():
        raise ValueError(f"user {int(users[full][0])} has interacted with every drawable item: no negative exists")
    bitmap = interaction_bitmap(indptr, indices, n_items)
    return _draw_negatives_kernel(indptr, indices, bitmap, users, n_items, int(n_negatives), prob, alias,
                                  collision == "skip", _seed(rng))


def mf_bpr_epoch(
    model: Any,
    train: Any,
    *,
    lr: float,
    l2: float,
    n_negatives: int = 1,
    alpha: float | None = None,
    collision: str = "redraw",
    rng: RandomState,
    n_threads: int | None = None,
) -> float:
    """Train a matrix factorization model for one BPR epoch with the fused CPU kernel, in place.

    Parameters
    ----------
    model : MatrixFactorization (or anything with the same attributes)
        Needs ``user_factors`` and ``item_factors`` (CPU ``torch.nn.Embedding``, float32) and optionally ``item_biases`` (``nn.Embedding(n_items, 1)`` or None). The torch
        tables are updated in place, so the model is usable right after. ``user_biases`` is
        left untouched (it cancels in BPR).
    train : Interactions or scipy sparse matrix
        users x items training interactions; every stored entry is a positive.
    lr : float
        SGD learning rate, > 0.
    l2 : float
        L2 coefficient, >= 0: each step subtracts ``lr * l2 * vector`` from the vectors it touches.
    n_negatives : int, default 1
        Negatives per positive; each (u, i, j) triple is one SGD step.
    alpha : float or None, default None
        None (or 0): uniform negatives. > 0: negatives drawn with probability proportional to
        item popularity ** alpha (alpha=1 is ``implicit``'s distribution).
    collision : {"redraw", "skip"}, default "redraw"
        What to do when a drawn negative is one of the user's positives: draw again (exact
        rejection) or skip the step (``implicit``'s behaviour).
    rng : int, numpy.random.Generator or None
        Seeds the epoch (one draw from it).
    n_threads : int or None
        Threads of the hogwild pass; None uses numba's current setting. Only ``n_threads=1`` is
        bit-reproducible for a fixed seed.

    Returns
    -------
    float
        Mean BPR loss ``-log sigma(x_ui - x_uj)`` over the epoch's updated triples, each taken
        just before its update (nan when no triple was updated).

    Notes
    -----
    One epoch is a shuffled pass over all training interactions (see the module docstring).
    """
    _check_options(n_negatives, alpha, collision)
    for name, value, low in (("lr", lr, 0.0), ("l2", l2, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < low or (name == "lr" and value == 0):
            expected = "> 0" if name == "lr" else ">= 0"
            raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")
    threads = _resolve_threads(n_threads)
    matrix = _check_csr(train)
    uf = _table(model, "user_factors")
    itf = _table(model, "item_factors")
    ib = _table(model, "item_biases", optional=True)
    n_users, n_items = matrix.shape
    if uf.ndim != 2 or itf.ndim != 2 or uf.shape[1] != itf.shape[1]:
        raise ValueError(f"user and item factor tables must be 2-d with equal widths, got {uf.shape} and {itf.shape}")
    if uf.shape[0] != n_users or itf.shape[0] != n_items:
        raise ValueError(
            f"train is {n_users} users x {n_items} items but the model has {uf.shape[0]} users and "
            f"{itf.shape[0]} items"
        )
    if itf.dtype != uf.dtype:
        raise ValueError(f"user and item tables must share a dtype, got {uf.dtype} and {itf.dtype}")
    if ib is None:
        ib = np.empty(0, dtype=itf.dtype)
    else:
        if ib.dtype != itf.dtype or ib.size != n_items:
            raise ValueError(f"item_biases must hold {n_items} values of {itf.dtype}, got {ib.shape} {ib.dtype}")
        ib = ib.reshape(-1)
    indptr, indices = _csr_arrays(matrix)
    prob, alias = _negative_table(indices, n_items, alpha)
    seed = _seed(rng)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        use_bitmap = (indptr.shape[0] - 1) * ((n_items + 7) // 8) <= BITMAP_MAX_BYTES
        loss_sum, updates, skipped = bpr_sgd_epoch(
            indptr, indices, uf, itf, ib, float(lr), float(l2), int(n_negatives), prob, alias,
            collision == "skip", seed, use_bitmap,
        )
    finally:
        numba.set_num_threads(previous)
    if skipped:
        logger.debug("mf_bpr_epoch: %d of %d triples skipped", skipped, skipped + updates)
    return float(loss_sum / updates) if updates else float("nan")
