"""Random draws shared by the fused kernels: splitmix64 streams, alias tables, collision tests.

Negatives
---------
- uniform (``alpha=None`` or ``alpha=0``): j uniform over all items;
- popularity (``alpha > 0``): P(j) proportional to n_j ** alpha, n_j the item's number of training
  interactions (items never interacted with are never drawn), by Walker's alias method (O(1) per
  draw) over the weights that the samplers define
  (:func:`recsampling.samplers.negatives.popularity_weights`). ``alpha=1`` is the distribution of
  ``implicit``'s draw (the item of a random nonzero).

Collisions (j is one of the user's positives) are checked exactly, with one bit test in a bit
matrix of the interactions (n_users * n_items / 8 bytes, up to ``BITMAP_MAX_BYTES``) or, for
larger matrices, by binary search in the user's sorted CSR row:

- ``"redraw"``: draw again until j is not a positive (exact rejection sampling, the
  distribution restricted to the user's unobserved items);
- ``"skip"``: the draw is kept and marked (``implicit``'s behaviour, its issue #255); the loss
  leaves that pair out.

Random numbers come from splitmix64 streams (Steele, Lea, Flood 2014), one per parallel block of
:data:`BLOCK_SIZE` interactions, all seeded from the caller's ``numpy.random.Generator``.
:func:`draw_negatives` draws exactly as the kernels do, for inspection and tests.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from recsampling._utils import RandomState, check_int, check_number, check_random_state

__all__ = ["BITMAP_MAX_BYTES", "BLOCK_SIZE", "alias_table", "draw_negatives", "interaction_bitmap", "positives_among"]

#: Interactions per parallel block (the unit of work and of random streams).
BLOCK_SIZE = 1 << 15

#: Largest bit matrix of the interactions built for collision tests (bytes); above it, binary search.
BITMAP_MAX_BYTES = 64 << 20

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
def _lower_bound(indices, start, end, j):
    """The first position in the sorted slice ``indices[start:end]`` whose value is >= ``j``."""
    lo = start
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(nogil=True, cache=True, inline="always")
def _in_row(indices, start, end, j):
    """Whether ``j`` is in the sorted slice ``indices[start:end]`` (binary search)."""
    k = _lower_bound(indices, start, end, j)
    return k < end and indices[k] == j


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


# fastmath without the no-NaN / no-inf assumptions: reassociation lets LLVM vectorize the loops
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@intrinsic
def prefetch_row(typingctx, table, row):
    """Hint the CPU to fetch ``table[row]`` (a row of a C-contiguous 2-D array) for writing.

    ``llvm.prefetch`` (read-write, high locality) on each 64-byte line of the row; no effect on
    results. The fused kernels issue it one row ahead for the rows they will step: on a shared
    item table the line another core just wrote is the cost of a hogwild step, and the fetch
    then overlaps the current row's arithmetic.
    """
    sig = types.void(table, row)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        first = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], context.get_constant(types.intp, 0)],
                                         wraparound=False)
        base = builder.bitcast(first, ir.IntType(8).as_pointer())
        row_bytes = builder.mul(builder.extract_value(ary.shape, 1), context.get_constant(types.intp, aryty.dtype.bitwidth // 8))
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()] + [ir.IntType(32)] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        rw, locality, data = (ir.Constant(ir.IntType(32), v) for v in (1, 3, 1))
        with cgutils.for_range_slice(builder, context.get_constant(types.intp, 0), row_bytes,
                                     context.get_constant(types.intp, 64)) as (offset, _):
            builder.call(fn, [builder.gep(base, [offset]), rw, locality, data])
        return context.get_dummy_value()

    return sig, codegen


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


# ---------------------------------------------------------------------------------------------
# validation and the model-level entry point


def _csr_arrays(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """int64 indptr and int32 indices as read-only views (one numba signature for every input)."""
    out = []
    for arr, dtype in ((matrix.indptr, np.int64), (matrix.indices, np.int32)):
        view = np.ascontiguousarray(arr, dtype=dtype).view()
        view.flags.writeable = False
        out.append(view)
    return out[0], out[1]


@numba.njit(nogil=True, cache=True)
def _positives_among_kernel(indptr, indices, users, column):  # pragma: no cover - compiled
    n = 0
    for r in range(users.shape[0]):
        u = users[r]
        for t in range(indptr[u], indptr[u + 1]):
            if column[indices[t]] >= 0:
                n += 1
    rows = np.empty(n, dtype=np.int64)
    cols = np.empty(n, dtype=np.int64)
    k = 0
    for r in range(users.shape[0]):
        u = users[r]
        for t in range(indptr[u], indptr[u + 1]):
            c = column[indices[t]]
            if c >= 0:
                rows[k] = r
                cols[k] = c
                k += 1
    return rows, cols


def positives_among(matrix: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) pairs where ``items[col]`` is a positive of ``users[row]`` in ``matrix``.

    Two passes over the users' CSR rows (count, then fill), one lookup per positive in a dense
    item-to-column table: no (rows, columns) matrix and no array per positive outside ``items``.
    In-batch negatives' accidental hits on CPU (:meth:`recsampling.samplers.InBatchSampler.accidental_hits`).

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix (n_users, n_items)
    users : int array (B,)
    items : int array (C,)
        Distinct items.

    Returns
    -------
    rows, cols : int64 arrays (n,)
        Ordered by row, then by the positives' order in the CSR row.
    """
    indptr, indices = _csr_arrays(matrix)
    column = np.full(matrix.shape[1], -1, dtype=np.int64)
    column[np.asarray(items, dtype=np.int64)] = np.arange(len(items), dtype=np.int64)
    return _positives_among_kernel(indptr, indices, np.asarray(users, dtype=np.int64), column)


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
    """The alias table of the popularity negatives (empty arrays: uniform draws)."""
    # imported here, not above: recsampling.data.synthetic imports this module while the data package initializes
    from recsampling.samplers.negatives import popularity_weights

    if alpha is None or alpha == 0:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.int32)
    counts = np.bincount(indices, minlength=n_items)
    return alias_table(popularity_weights(counts, alpha))


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
    from recsampling.samplers.negatives import _as_csr, _check_collision, _check_users

    check_int(n_negatives, "n_negatives")
    check_number(alpha, "alpha", 0.0, none_ok=True)
    _check_collision(collision)
    matrix = _as_csr(train, "train")
    indptr, indices = _csr_arrays(matrix)
    n_users, n_items = matrix.shape
    users = _check_users(users, n_users)
    prob, alias = _negative_table(indices, n_items, alpha)
    n_drawable = n_items if prob.size == 0 else int((prob > 0).sum())
    full = np.diff(indptr)[users] >= n_drawable
    if collision == "redraw" and full.any():
        raise ValueError(f"user {int(users[full][0])} has interacted with every drawable item: no negative exists")
    bitmap = interaction_bitmap(indptr, indices, n_items)
    return _draw_negatives_kernel(indptr, indices, bitmap, users, n_items, int(n_negatives), prob, alias,
                                  collision == "skip", _seed(rng))
