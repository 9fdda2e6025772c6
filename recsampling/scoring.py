"""Batched top-k scoring: the one implementation that turns two embedding tables into rankings.

Every model of the toolkit ends as a user table ``U`` (n_users × d) and an item table ``V``
(n_items × d); the score of a pair is ``U_u · V_i``. :func:`topk` ranks all items for many users
at once, in chunks of users whose score matrix (``rows × n_items`` float32) fits in
``memory_budget_mb``, so memory never grows with ``n_users × n_items``.

On CPU (the path the benchmark ``benchmarks/scoring_speed.py`` measures):

1. ``torch.get_num_threads()`` worker threads each take chunks of users (about 1 MiB of scores,
   at least 256 rows) and compute ``U[chunk] @ V.T`` with numpy's BLAS on one thread;
2. while the chunk is still in the core's cache, a one-pass numba kernel selects the top-k per
   row: a sorted buffer of k (score, item) pairs, blocks of 8 items skipped when none beats the
   k-th score, and the already-seen items (a users × items CSR, e.g. the training interactions)
   skipped exactly by walking the row's sorted CSR indices in step (no ``-inf`` writes, no
   Python loop per user).

The workers meet only at the end (no parallel region per chunk). On CUDA: the chunk is one
``torch.mm``, the seen items are set to ``-inf`` by one scatter built from the CSR
``indptr``/``indices``, and ``torch.topk`` keeps ``k + 1`` candidates; the extra one tells
whether the k-th place ties with an item left out, and only such rows are re-ranked by a stable
full sort.

Determinism
-----------
Ties are broken by item index: among equal scores the **lower item index ranks first**, both for
which items enter the top-k and for their order. Results are therefore identical whatever the
chunk size or device (up to floating-point differences of the matrix product between devices).
Items scored ``-inf`` (excluded ones) are never returned: a row with fewer than ``k`` candidates
is padded with id ``-1`` and score ``-inf``.

:func:`rank_candidates` ranks each user's own short list of candidate items instead of the
catalogue (the randomized-test protocol of Coat and Yahoo! R3), with the same tie rule.

:func:`iter_score_chunks` yields the masked score chunks themselves (excluded items at ``-inf``)
for evaluation code that needs more than the top-k, e.g. the full-ranking AUC of
:mod:`recsampling.evaluation`.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numba
import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from recsampling._utils import check_int, check_memory, check_number, resolve_device

__all__ = ["topk", "rank_candidates", "iter_score_chunks", "topk_of_scores", "chunk_rows"]

logger = logging.getLogger(__name__)

_NEG_INF = float("-inf")
# Bytes per scored item per row that the budget must cover: the float32 score chunk (4) plus, in
# the worst case (every row tied at the k-th place), a stable sort of a third of the chunk at a
# time (float32 values + int64 indices = 12 per cell, over a third of the rows: 4). Chunk rows
# are chosen so that ``rows * n_items * _BYTES_PER_CELL <= budget``.
_BYTES_PER_CELL = 8
# CPU path (see the module docstring): each of ``torch.get_num_threads()`` worker threads takes
# chunks of ``rows`` users, computes their scores with numpy's BLAS on one thread (OpenBLAS in the
# numpy wheels; on the AMD EPYC of the benchmark machine its sgemm was ~2.5x faster than torch's
# MKL) and selects the top-k with the numba kernel while the chunk is still in the core's cache.
# No parallel region per chunk: the workers only meet at the end (robust on a busy machine).
_CPU_CHUNK_BYTES = 2**20
_CPU_MIN_ROWS = 256


def chunk_rows(n_items: int, memory_budget_mb: float, n_rows: int | None = None) -> int:
    """Number of user rows scored at once so that a chunk fits in ``memory_budget_mb``.

    Parameters
    ----------
    n_items : int
        Width of a score row.
    memory_budget_mb : float
        Memory for the score chunk and the top-k workspace, in MiB.
    n_rows : int, optional
        Total number of rows; the result never exceeds it.

    Returns
    -------
    int
        At least 1 (one row is always scored, even if it exceeds the budget).
    """
    rows = int(memory_budget_mb * 2**20) // max(1, int(n_items) * _BYTES_PER_CELL)
    rows = max(1, rows)
    if n_rows is not None:
        rows = max(1, min(rows, int(n_rows)))
    return rows


def _as_tensor(x, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.ndim != 2:
            raise ValueError(f"{name} must be two-dimensional (rows x factors), got shape {tuple(t.shape)}")
        t = t.to(device=device, dtype=torch.float32)
        finite = bool(torch.isfinite(t).all()) if t.device.type != "cpu" else bool(np.isfinite(t.numpy()).all())
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iufb":
            raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"{name} must be two-dimensional (rows x factors), got shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        finite = bool(np.isfinite(arr).all())
        t = torch.from_numpy(arr).to(device)
    if not finite:
        raise ValueError(f"{name} has NaN or infinite values; scores would not be comparable")
    return t


def _check_users(users, n_users: int) -> np.ndarray:
    if users is None:
        return np.arange(n_users, dtype=np.int64)
    if isinstance(users, torch.Tensor):
        users = users.detach().cpu().numpy()
    arr = np.asarray(users)
    if arr.ndim != 1:
        raise ValueError(f"users must be a one-dimensional index array, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"users must hold integer indices, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.int64)  # a private, writable copy
    if arr.size and (arr.min() < 0 or arr.max() >= n_users):
        bad = arr[(arr < 0) | (arr >= n_users)][0]
        raise ValueError(f"users must be indices in [0, {n_users}), found {bad}")
    return arr


def _check_exclude(exclude, n_users: int, n_items: int) -> sp.csr_matrix | None:
    if exclude is None:
        return None
    exclude = getattr(exclude, "matrix", exclude)  # an Interactions
    if not sp.issparse(exclude):
        raise ValueError(f"exclude must be a scipy sparse users x items matrix or Interactions, "
                         f"got {type(exclude).__name__}")
    if exclude.shape != (n_users, n_items):
        raise ValueError(f"exclude must have shape (n_users, n_items) = {(n_users, n_items)}, "
                         f"got {exclude.shape}")
    exclude = exclude.tocsr()
    if not exclude.has_canonical_format:
        exclude = exclude.copy()
        exclude.sum_duplicates()
    return exclude


def _chunk_mask_index(exclude: sp.csr_matrix, rows: np.ndarray, n_items: int) -> np.ndarray:
    """Flat positions ``row_in_chunk * n_items + item`` of the excluded entries of ``rows``."""
    indptr = exclude.indptr
    start = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - start
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    # positions into exclude.indices of every entry of every row, without a per-row loop
    offsets = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) + np.repeat(start - offsets, lengths)
    row_in_chunk = np.repeat(np.arange(rows.size, dtype=np.int64), lengths)
    return row_in_chunk * n_items + exclude.indices[pos].astype(np.int64)


def _prepare(user_vectors, item_vectors, exclude, users, device):
    dev = resolve_device(device)
    V = _as_tensor(item_vectors, "item_vectors", dev)
    U = _as_tensor(user_vectors, "user_vectors", dev)
    if U.shape[1] != V.shape[1]:
        raise ValueError(f"user_vectors and item_vectors must have the same number of factors, "
                         f"got {U.shape[1]} and {V.shape[1]}")
    users = _check_users(users, U.shape[0])
    exclude = _check_exclude(exclude, U.shape[0], V.shape[0])
    return dev, U, V, users, exclude


def iter_score_chunks(
    user_vectors,
    item_vectors,
    exclude=None,
    users=None,
    device: str = "auto",
    memory_budget_mb: float = 256,
    progress: bool = False,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield masked score chunks ``(start, stop, scores)`` over the selected users.

    Parameters
    ----------
    user_vectors, item_vectors, exclude, users, device, memory_budget_mb, progress
        As in :func:`topk`.

    Yields
    ------
    start, stop : int
        The chunk covers positions ``start:stop`` of ``users``.
    scores : torch.Tensor
        float32 (stop - start, n_items) on the scoring device, excluded items at ``-inf``. The
        buffer is reused by the next chunk: copy what you keep.
    """
    dev, U, V, users, exclude = _prepare(user_vectors, item_vectors, exclude, users, device)
    yield from _score_chunks(dev, U, V, users, exclude, memory_budget_mb, progress)


def _score_chunks(dev, U, V, users, exclude, memory_budget_mb, progress, mask=True):
    n, n_items = users.size, V.shape[0]
    if n == 0:
        return
    rows = chunk_rows(n_items, memory_budget_mb, n)
    # zeros, not empty: rules out uninitialized memory as the source of an 'invalid value
    # encountered in dot' warning seen once in CI (not reproduced; the results were right)
    buf = torch.zeros((rows, n_items), dtype=torch.float32, device=dev)
    Vt = V.T
    contiguous = n > 0 and bool(np.all(np.diff(users) == 1))
    users_t = torch.from_numpy(users).to(dev) if not contiguous else None
    bar = tqdm(total=n, desc="scoring", unit="user", disable=not progress, leave=False)
    try:
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            out = buf[: stop - start]
            if contiguous:
                Uc = U[users[0] + start: users[0] + stop]
            else:
                Uc = U.index_select(0, users_t[start:stop])
            if dev.type == "cpu":  # numpy's BLAS (see _CPU_CHUNK_BYTES)
                np.dot(Uc.numpy(), Vt.numpy(), out=out.numpy())
            else:
                torch.mm(Uc, Vt, out=out)
            if exclude is not None and mask:
                flat = _chunk_mask_index(exclude, users[start:stop], n_items)
                if flat.size and dev.type == "cpu":
                    out.numpy().reshape(-1)[flat] = _NEG_INF  # one thread, no wake-ups
                elif flat.size:
                    out.view(-1).index_fill_(0, torch.from_numpy(flat).to(dev), _NEG_INF)
            yield start, stop, out
            bar.update(stop - start)
    finally:
        bar.close()


_BLOCK = 8


@numba.njit(cache=True, nogil=True, fastmath={"nnan", "nsz"})  # no NaN: inputs are checked finite
def _select_kernel(S, k, indptr, indices, rows, out_idx, out_val):  # pragma: no cover - compiled
    """Per row of ``S``: the ``k`` best columns, without the CSR-excluded ones or ``-inf``.

    One pass per row keeps a buffer of ``k`` (value, column) pairs sorted by value. Columns
    are visited in ascending order and a candidate only displaces strictly smaller values, so
    among equal scores the lower column wins and comes first. Once the buffer is full, blocks
    of ``_BLOCK`` columns are tested against the k-th value first and skipped when nothing in
    them beats it (most blocks). ``rows[r]`` is the CSR row of chunk row ``r`` (``-1``: nothing
    excluded); the row's sorted excluded columns are walked in step, and only looked at for a
    column that would enter the buffer.
    """
    n, m = S.shape
    neg_inf = np.float32(-np.inf)
    for r in range(n):
        row = S[r]
        vals = out_val[r]
        ids = out_idx[r]
        for j in range(k):
            vals[j] = neg_inf
            ids[j] = -1
        u = rows[r]
        p = indptr[u] if u >= 0 else 0
        pend = indptr[u + 1] if u >= 0 else 0
        cnt = 0
        thresh = neg_inf
        j = 0
        while j < m:
            if cnt == k and j + _BLOCK <= m:
                blk = row[j: j + _BLOCK]
                mx = blk[np.uint64(0)]  # unsigned indices: no negative-index wrap-around code
                for t in range(1, _BLOCK):
                    mx = max(mx, blk[np.uint64(t)])
                if not (mx > thresh):
                    j += _BLOCK
                    continue
                end = j + _BLOCK
            else:
                end = j + 1
            while j < end:
                v = row[j]
                if v > thresh or (cnt < k and v != neg_inf):
                    while p < pend and indices[p] < j:
                        p += 1
                    if not (p < pend and indices[p] == j):
                        if cnt < k:
                            i = cnt - 1
                            cnt += 1
                        else:
                            i = k - 2
                        while i >= 0 and vals[i] < v:
                            vals[i + 1] = vals[i]
                            ids[i + 1] = ids[i]
                            i -= 1
                        vals[i + 1] = v
                        ids[i + 1] = j
                        if cnt == k:
                            thresh = vals[k - 1]
                j += 1


_EMPTY_PTR = np.zeros(2, dtype=np.int64)
_EMPTY_IDX = np.zeros(0, dtype=np.int32)


def _topk_chunk(scores: torch.Tensor, k: int, exclude: sp.csr_matrix | None = None,
                rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic top-k of a score chunk (ties: lower item index first) as numpy arrays.

    On CPU a one-pass numba selection that also skips the ``exclude`` rows ``rows`` (so the
    chunk need not be masked). On CUDA (the chunk must then be masked) ``torch.topk`` of
    ``k + 1`` values; the tie checks run on the small (rows, k + 1) result.
    """
    if scores.device.type == "cpu":
        n = scores.shape[0]
        out_idx = np.empty((n, k), dtype=np.int64)
        out_val = np.empty((n, k), dtype=np.float32)
        if exclude is None:
            _select_kernel(scores.numpy(), k, _EMPTY_PTR, _EMPTY_IDX, np.full(n, -1, np.int64), out_idx, out_val)
        else:
            _select_kernel(scores.numpy(), k, exclude.indptr, exclude.indices, rows, out_idx, out_val)
        return out_val, out_idx
    if exclude is not None:
        raise ValueError("on CUDA the score chunk must already be masked")
    n_items = scores.shape[1]
    kk = min(k + 1, n_items)
    vals_t, idx_t = torch.topk(scores, kk, dim=1, largest=True, sorted=True)
    vals, idx = vals_t.cpu().numpy(), idx_t.cpu().numpy()
    if kk > k:
        # which items enter the top-k is ambiguous only when the k-th place ties with the
        # first item left out; those (rare) rows are re-ranked with a stable full sort
        amb = np.flatnonzero((vals[:, k - 1] == vals[:, k]) & np.isfinite(vals[:, k - 1]))
        vals, idx = vals[:, :k].copy(), idx[:, :k].copy()
        if amb.size:
            step = max(1, scores.shape[0] // 3)  # a stable sort needs 12 bytes per cell
            for s in range(0, amb.size, step):
                r = amb[s: s + step]
                rows = scores.index_select(0, torch.from_numpy(r).to(scores.device))
                sv, si = torch.sort(rows, dim=1, descending=True, stable=True)
                vals[r], idx[r] = sv[:, :k].cpu().numpy(), si[:, :k].cpu().numpy()
    # order inside the top-k: score descending, then item index ascending (rows with ties only)
    tied = np.flatnonzero(np.any(vals[:, 1:] == vals[:, :-1], axis=1)) if k > 1 else np.empty(0, np.int64)
    if tied.size:
        v, i = vals[tied], idx[tied]
        order = np.lexsort((i, -v), axis=1)
        vals[tied] = np.take_along_axis(v, order, axis=1)
        idx[tied] = np.take_along_axis(i, order, axis=1)
    return vals, idx


def topk_of_scores(scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` columns of each row of a score matrix, e.g. a chunk of :func:`iter_score_chunks`.

    Parameters
    ----------
    scores : torch.Tensor or array, shape (n, n_items)
        Scores; ``-inf`` marks an excluded column, never returned.
    k : int
        Columns per row (>= 1); may exceed ``n_items``.

    Returns
    -------
    ids, scores : numpy.ndarray, shape (n, k)
        As :func:`topk` returns them: best first, ties to the lower column, ``-1`` / ``-inf`` padding.
    """
    check_int(k, "k")
    S = torch.as_tensor(scores, dtype=torch.float32)
    if S.ndim != 2:
        raise ValueError(f"scores must be two-dimensional (rows x items), got shape {tuple(S.shape)}")
    n, kk = S.shape[0], min(int(k), S.shape[1])
    ids = np.full((n, int(k)), -1, dtype=np.int64)
    vals = np.full((n, int(k)), _NEG_INF, dtype=np.float32)
    if n and kk:
        v, i = _topk_chunk(S.contiguous(), kk)
        i[~np.isfinite(v)] = -1
        ids[:, :kk], vals[:, :kk] = i, v
    return ids, vals


def topk(
    user_vectors,
    item_vectors,
    k: int,
    exclude=None,
    users=None,
    device: str = "auto",
    memory_budget_mb: float = 256,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items by dot-product score for many users, with seen items removed exactly.

    Parameters
    ----------
    user_vectors : array-like or torch.Tensor, shape (n_users, d)
        User embedding table (numpy or torch, any float dtype; scored in float32).
    item_vectors : array-like or torch.Tensor, shape (n_items, d)
        Item embedding table.
    k : int
        Number of items per user (>= 1). ``k`` may exceed the number of candidates (the rows are
        padded), but not the memory: output beyond the machine's memory is a ``ValueError``.
    exclude : scipy sparse matrix or Interactions, shape (n_users, n_items), optional
        Items never to return per user (e.g. the training interactions); rows are indexed like
        ``user_vectors`` (not like ``users``).
    users : array-like of int, optional
        Rows of ``user_vectors`` (and of ``exclude``) to score; all users when None.
    device : str or torch.device
        ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"``, ``"cuda"``, ...
    memory_budget_mb : float
        Memory for one chunk of scores and the top-k workspace (MiB). Chunk rows are chosen so
        that ``rows × n_items × 8`` bytes fit (the scores and the
        worst-case tie-breaking sort; the index of the excluded entries comes on top); at least one row is scored at a time.
    progress : bool
        Show a tqdm bar over users.

    Returns
    -------
    ids : numpy.ndarray of int64, shape (n, k)
        Item indices, best first; ``-1`` pads rows with fewer than ``k`` candidates.
    scores : numpy.ndarray of float32, shape (n, k)
        Their scores; ``-inf`` where the id is ``-1``.

    Notes
    -----
    Ties are broken deterministically: among equal scores the lower item index ranks first.
    ``n`` is ``len(users)`` (or ``n_users``). Results are the same for any ``memory_budget_mb``.
    """
    k = check_int(k, "k")
    check_number(memory_budget_mb, "memory_budget_mb", 0.0, strict=True)
    dev, U, V, users, exclude = _prepare(user_vectors, item_vectors, exclude, users, device)
    n, n_items = users.size, V.shape[0]
    check_memory(n * k * 12, f"the top-{k} lists of {n} users (ids and scores)", "k")  # k may exceed n_items
    ids = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), _NEG_INF, dtype=np.float32)
    kk = min(k, n_items)
    if n == 0:
        return ids, scores
    if dev.type == "cpu":
        _topk_cpu(U.numpy(), V.numpy(), users, exclude, kk, memory_budget_mb, progress, ids, scores)
    else:
        for start, stop, chunk in _score_chunks(dev, U, V, users, exclude, memory_budget_mb, progress):
            vals, idx = _topk_chunk(chunk, kk)
            ids[start:stop, :kk] = idx
            scores[start:stop, :kk] = vals
    gone = ~np.isfinite(scores) & (scores < 0)
    ids[gone] = -1
    return ids, scores


_blas_controller = None


def _one_blas_thread():
    """A context limiting numpy's BLAS to one thread (each topk worker is one thread)."""
    global _blas_controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy / implicit
        import contextlib

        return contextlib.nullcontext()
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def _topk_cpu(U, V, users, exclude, k, memory_budget_mb, progress, ids, scores):
    """CPU top-k: worker threads each score a chunk (BLAS, 1 thread) and select in its cache."""
    n, n_items = users.size, V.shape[0]
    workers = max(1, min(torch.get_num_threads(), -(-n // _CPU_MIN_ROWS)))
    rows = max(_CPU_MIN_ROWS, _CPU_CHUNK_BYTES // (4 * n_items))
    rows = min(rows, chunk_rows(n_items, memory_budget_mb / workers, n))
    workers = max(1, min(workers, -(-n // rows)))
    VT = V.T
    contiguous = bool(np.all(np.diff(users) == 1))
    if exclude is None:
        indptr, indices, erows = _EMPTY_PTR, _EMPTY_IDX, None
    else:
        indptr, indices, erows = exclude.indptr, exclude.indices, users
    starts = list(range(0, n, rows))
    counter = itertools.count()
    out_i = ids[:, :k] if k == ids.shape[1] else np.empty((n, k), dtype=np.int64)
    out_v = scores[:, :k] if k == scores.shape[1] else np.empty((n, k), dtype=np.float32)
    bar = tqdm(total=n, desc="scoring", unit="user", disable=not progress, leave=False)
    lock = threading.Lock()

    def work():
        buf = np.zeros((rows, n_items), dtype=np.float32)  # not empty: see _score_chunks
        no_rows = np.full(rows, -1, dtype=np.int64)
        while True:
            c = next(counter)
            if c >= len(starts):
                return
            start = starts[c]
            stop = min(start + rows, n)
            out = buf[: stop - start]
            Uc = U[users[0] + start: users[0] + stop] if contiguous else U[users[start:stop]]
            np.dot(Uc, VT, out=out)
            r = no_rows[: stop - start] if erows is None else erows[start:stop]
            _select_kernel(out, k, indptr, indices, r, out_i[start:stop], out_v[start:stop])
            if progress:
                with lock:
                    bar.update(stop - start)

    try:
        with _one_blas_thread():
            if workers == 1:
                work()
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    for f in [pool.submit(work) for _ in range(workers)]:
                        f.result()
    finally:
        bar.close()
    if out_i is not ids:
        ids[:, :k] = out_i
        scores[:, :k] = out_v


def _check_candidates(candidates, n_users: int, n_items: int) -> np.ndarray:
    arr = candidates.detach().cpu().numpy() if isinstance(candidates, torch.Tensor) else np.asarray(candidates)
    if arr.ndim != 2 or arr.shape[0] != n_users or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"candidates must be an integer array of shape (n_users={n_users}, n), -1 padded, got "
                         f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.max() >= n_items or arr.min() < -1):
        raise ValueError(f"candidates must be item indices in [0, {n_items}) or -1 (padding)")
    return arr


@torch.no_grad()
def rank_candidates(
    user_vectors,
    item_vectors,
    candidates,
    users=None,
    device: str = "auto",
    memory_budget_mb: float = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank each user's own candidate items by dot-product score, best first.

    Parameters
    ----------
    user_vectors, item_vectors : array-like or torch.Tensor
        The embedding tables, as in :func:`topk`.
    candidates : array of int, shape (n_users, L)
        Row ``u`` holds user ``u``'s candidate items (e.g. the randomized test items of Coat),
        ``-1`` padded; rows are indexed like ``user_vectors``.
    users : array-like of int, optional
        Rows to rank (default all).
    device : str
        Scoring device (``"auto"``: CUDA when present).
    memory_budget_mb : float
        Memory for one chunk of candidate vectors (rows x L x d floats).

    Returns
    -------
    ids : numpy.ndarray of int64, shape (n, L)
        The candidates of each selected user, best first; the ``-1`` padding comes last.
    scores : numpy.ndarray of float32, shape (n, L)
        Their scores; ``-inf`` where the id is ``-1``.

    Notes
    -----
    Ties are broken as in :func:`topk`: among equal scores the lower item index ranks first,
    whatever the order of the candidates in their row.
    """
    check_number(memory_budget_mb, "memory_budget_mb", 0.0, strict=True)
    dev, U, V, users, _ = _prepare(user_vectors, item_vectors, None, users, device)
    cand = _check_candidates(candidates, U.shape[0], V.shape[0])
    n, L = users.size, cand.shape[1]
    ids = np.full((n, L), -1, dtype=np.int64)
    scores = np.full((n, L), _NEG_INF, dtype=np.float32)
    if n == 0 or L == 0:
        return ids, scores
    big = np.iinfo(np.int64).max
    rows = chunk_rows(L * (U.shape[1] + 8), memory_budget_mb, n)
    for s in range(0, n, rows):
        u = users[s: s + rows]
        # candidates sorted by item index (padding last), so a stable sort breaks ties towards the lower index
        key = np.sort(np.where(cand[u] >= 0, cand[u], big), axis=1)
        c = torch.from_numpy(np.where(key == big, -1, key)).to(dev)
        valid = c >= 0
        sc = torch.einsum("bd,bld->bl", U[torch.from_numpy(u).to(dev)], V[c.clamp(min=0)])
        sc = torch.where(valid, sc, torch.full_like(sc, _NEG_INF))
        vals, order = torch.sort(sc, dim=1, descending=True, stable=True)
        ids[s: s + rows] = torch.gather(c, 1, order).cpu().numpy()
        scores[s: s + rows] = vals.cpu().numpy()
    return ids, scores
