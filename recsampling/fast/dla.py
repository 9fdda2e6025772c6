r"""Fused CPU kernel for matrix factorization with DLA on candidate sets (setting 2 of
:mod:`recsampling.samplers.dla`): mini-batch steps on ``L_f + L_g``, computed in numba.

Ai, Bi, Luo, Guo, Croft, "Unbiased Learning to Rank with Unbiased Propensity Estimation",
SIGIR 2018; the losses and their numbers are those of :mod:`recsampling.samplers.dla`.

Unlike the per-row kernel of :mod:`recsampling.fast.mf`, DLA's losses (6)-(7) are normalized by
the total weight of a *batch*, so this kernel steps once per mini-batch, exactly as the torch path
does (``DLASampler.batches``: every click once per epoch in random order, split into near-equal
batches by ``numpy.array_split``; each row is the click and ``n_sampled`` items drawn uniformly
from the user's unclicked items with exact rejection). For a batch of rows ``n`` with user
``u_n``, items ``j_nc`` (``c = 0`` the click), scores ``x_nc = <p_u, q_j> + b_j (+ b_u)`` and the
link ``t = x`` (``"exp"``) or ``t = log σ(x)`` (``"sigmoid"``, eq. (4')):

- ``R_nc = softmax_c(t_n)``, ``log w_n = min(max_i g(i) − g(j_n0), log M)``,
  ``log v_n = min(logmeanexp_{c≥1} t_nc − t_n0, log M)`` (clip ``M`` = ``max_weight``);
- ``ω_n = softmax_n(log w_n)`` and ``ν_n = softmax_n(log v_n)`` over the batch's valid rows (a row
  of a user without unclicked items has weight 0);
- eq. (6): ``L_f = −Σ_n ω_n log R_n0``, so ``∂L_f/∂x_nc = ω_n (R_nc − δ_c0) t'(x_nc)``;
- eq. (7) with the softmax of ``g`` over the catalogue, ``P = softmax(g)``:
  ``L_g = −Σ_n ν_n log P_{j_n0} + λ_g mean_n e_{j_n0}²``, so ``∂L_g/∂g(i) = P_i − Σ_{n: j_n0=i} ν_n``
  for every item (dense) plus the shrinkage of ``e``; ``g(i) = b_bucket(i) + e_i``, eq. (8);
- the Trainer's ``l2 · mean_n (||p_u||² + b_u² + Σ_c (||q_c||² + b_c²))``.

A batch is computed in two parallel passes: the rows (draws, scores, softmax, the per-row
gradient coefficients, ``h_n = Σ_c a_nc q_c`` with the old item vectors and a copy of the old
``p_u``), then, after the batch-wide normalization, each distinct item of the batch (its gradient
summed over its occurrences) and each distinct user (summed over its rows) with their steps; the
propensity logits step last (dense over the catalogue). Every gradient is the full-batch gradient
at the parameters before the step, as autograd's, and every sum runs in a fixed order, so an
epoch gives the same result for any number of threads (no hogwild). Steps are
the torch optimizers': SGD on the batch sum (``lr · B · ∇mean``), Adagrad on the batch mean
(``torch.optim.Adagrad``, eps 1e-10); ``g`` uses ``propensity_lr`` as
``DLASampler.param_groups`` gives it. ``tests/test_fast_dla.py`` checks a batch step against
autograd.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from recsampling._utils import check_int
from recsampling.fast.draws import _FASTMATH, _GOLDEN, _bounded, _draw_item, _is_positive, _mix
from recsampling.fast.mf import ADAGRAD_EPS, _logistic
from recsampling.fast.mf import _step1 as _update

__all__ = ["dla_epoch", "dla_batch", "OPT_SGD", "OPT_ADAGRAD"]

OPT_SGD, OPT_ADAGRAD = 0, 1

# integer options (``iopt``) and float options (``fopt``), by index
I_OPT, I_K, I_SIGMOID, I_LEARN, I_BATCH = range(5)
N_IOPT = 5
F_LR, F_L2, F_PLR, F_PL2, F_LOGMW = range(5)
N_FOPT = 5


@numba.njit(nogil=True, cache=True)
def _group(keys, count, distinct, offsets, order):
    """Counting sort of ``keys`` (m,): the distinct keys in first-seen order, their offsets into
    ``order`` (positions of each key's occurrences, increasing). ``count`` is all zeros on entry
    and on exit. Returns the number of distinct keys."""
    m = keys.shape[0]
    nd = 0
    for t in range(m):
        k = keys[t]
        if count[k] == 0:
            distinct[nd] = k
            nd += 1
        count[k] += 1
    offsets[0] = 0
    for a in range(nd):
        k = distinct[a]
        offsets[a + 1] = offsets[a] + count[k]
        count[k] = offsets[a]  # from here on: the next free slot of key k
    for t in range(m):
        k = keys[t]
        order[count[k]] = t
        count[k] += 1
    for a in range(nd):
        count[distinct[a]] = 0
    return nd


@numba.njit(nogil=True, cache=True)
def _chunks(n, n_threads):
    """Number of parallel chunks for ``n`` units (a few per thread)."""
    return max(1, min(n, 4 * n_threads))


@numba.njit(nogil=True, parallel=True, fastmath=_FASTMATH, cache=True)
def _rows_pass(draws, perm, lo, seed, users, cols, valid, tables, g_all, gmax, iopt, fopt, A, asum, H, P, lwf, lwv,
               logr0, n_threads):
    """Pass 1 over the rows of a batch. With ``draws`` (an epoch) it first builds row ``n`` from
    the click ``perm[lo + n]``: the click and ``k`` uniform draws from the user's unclicked items
    (exact rejection; any items for a user without one, row invalid), on a random stream that
    depends on the row's position in the epoch only; else ``users``, ``cols``, ``valid`` are given.
    Then: the gradient coefficients ``A[n, c] = (R_nc − δ_c0) t'(x_nc)``, their sum,
    ``H[n] = Σ_c A[n, c] q_c`` (old item vectors), ``P[n] = p_u`` (old user vector), the log
    weights of (6) and (7) (−inf for an invalid row) and ``log R_n0``."""
    indptr, indices, bitmap, full, users_all, items_all = draws
    U, V, bu, bi = tables
    B = users.shape[0]
    L = cols.shape[1]
    d = U.shape[1]
    n_items = V.shape[0]
    row_bytes = (n_items + 7) // 8
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    draw = perm.shape[0] > 0
    sigmoid = iopt[I_SIGMOID] != 0
    learn = iopt[I_LEARN] != 0
    logmw = fopt[F_LOGMW]
    logk = math.log(L - 1)
    empty_p = np.empty(0, dtype=np.float64)
    empty_a = np.empty(0, dtype=np.int32)
    nch = _chunks(B, n_threads)
    for ch in numba.prange(nch):
        r0 = ch * B // nch
        r1 = (ch + 1) * B // nch
        t = np.empty(L)
        dt = np.empty(L)
        h = np.empty(d, dtype=np.float32)
        for n in range(r0, r1):
            if draw:
                e = perm[lo + n]
                u = np.int64(users_all[e])
                users[n] = u
                cols[n, 0] = items_all[e]
                s = _mix(seed + np.uint64(lo + n) * _GOLDEN)
                if full[u]:
                    valid[n] = 0.0
                    for c in range(1, L):
                        s = s + _GOLDEN
                        cols[n, c] = _bounded(_mix(s), n_items)
                else:
                    valid[n] = 1.0
                    for c in range(1, L):
                        while True:
                            s, j = _draw_item(s, n_items, empty_p, empty_a)
                            if not _is_positive(bitmap, row_bytes, indptr, indices, u, j):
                                cols[n, c] = j
                                break
            u = users[n]
            for f in range(d):
                P[n, f] = U[u, f]
            for c in range(L):
                j = cols[n, c]
                sc = np.float32(0.0)
                for f in range(d):
                    sc += U[u, f] * V[j, f]
                x = np.float64(sc)
                if has_bi:
                    x += bi[j]
                if has_bu:
                    x += bu[u]
                if sigmoid:  # t = log σ(x), t' = σ(−x)
                    _, sneg, sp = _logistic(x)
                    t[c] = -sp
                    dt[c] = sneg
                else:
                    t[c] = x
                    dt[c] = 1.0
            m_all = t[0]
            m_neg = t[1]
            for c in range(1, L):
                m_all = max(m_all, t[c])
                m_neg = max(m_neg, t[c])
            z_all = 0.0
            z_neg = 0.0
            for c in range(L):
                z_all += math.exp(t[c] - m_all)
                if c > 0:
                    z_neg += math.exp(t[c] - m_neg)
            lse = m_all + math.log(z_all)
            logr0[n] = t[0] - lse
            tot = 0.0
            for c in range(L):
                a = (math.exp(t[c] - lse) - (1.0 if c == 0 else 0.0)) * dt[c]
                A[n, c] = a
                tot += a
            asum[n] = tot
            for f in range(d):
                h[f] = 0.0
            for c in range(L):
                a32 = np.float32(A[n, c])
                j = cols[n, c]
                for f in range(d):
                    h[f] += a32 * V[j, f]
            for f in range(d):
                H[n, f] = h[f]
            if valid[n] > 0:
                lwf[n] = min(gmax - g_all[cols[n, 0]], logmw)
                if learn:
                    ref = m_neg + math.log(z_neg) - logk
                    lwv[n] = min(ref - t[0], logmw)
                else:
                    lwv[n] = -np.inf
            else:
                lwf[n] = -np.inf
                lwv[n] = -np.inf


@numba.njit(nogil=True, cache=True)
def _softmax_into(lw, out):
    """``out = softmax(lw)`` over the finite entries (all zeros when none is finite)."""
    m = -np.inf
    for n in range(lw.shape[0]):
        m = max(m, lw[n])
    if m == -np.inf:
        out[:] = 0.0
        return
    z = 0.0
    for n in range(lw.shape[0]):
        e = math.exp(lw[n] - m) if lw[n] > -np.inf else 0.0
        out[n] = e
        z += e
    for n in range(lw.shape[0]):
        out[n] /= z


@numba.njit(nogil=True, parallel=True, fastmath=_FASTMATH, cache=True)
def _step_pass(L, omega, A, asum, H, P, tables, accs, iopt, fopt, items, users, reg_part, n_threads):
    """Pass 2: each distinct item and each distinct user of the batch (one parallel loop; they
    write different tables). An item's gradient sums ``ω_n A[n, c] p_u`` over its occurrences
    (``P``: the old user vectors), a user's ``ω_n H[n]`` over its rows (``H``: the old item
    vectors), each plus the Trainer's l2; then the step. ``reg_part`` gets each chunk's
    ``Σ cnt (||vector||² + bias²)``."""
    idist, ioff, iorder, ni = items
    udist, uoff, uorder, nu_ = users
    U, V, bu, bi = tables
    aU, aV, abu, abi = accs
    B = omega.shape[0]
    d = U.shape[1]
    has_bi = bi.shape[0] > 0
    has_bu = bu.shape[0] > 0
    adagrad = iopt[I_OPT] == OPT_ADAGRAD
    lr = fopt[F_LR] * (1.0 if adagrad else B)  # SGD steps on the batch sum
    lr32 = np.float32(lr)
    eps32 = np.float32(ADAGRAD_EPS)
    rc = 2.0 * fopt[F_L2] / B
    nci = _chunks(ni, n_threads)
    ncu = _chunks(nu_, n_threads)
    for ch in numba.prange(nci + ncu):
        gv = np.empty(d, dtype=np.float32)
        reg = 0.0
        is_item = ch < nci
        if is_item:
            a0 = ch * ni // nci
            a1 = (ch + 1) * ni // nci
        else:
            a0 = (ch - nci) * nu_ // ncu
            a1 = (ch - nci + 1) * nu_ // ncu
        for a in range(a0, a1):
            for f in range(d):
                gv[f] = 0.0
            gb = 0.0
            if is_item:
                j = idist[a]
                cnt = ioff[a + 1] - ioff[a]
                for p in range(ioff[a], ioff[a + 1]):
                    e = iorder[p]
                    n = e // L
                    gc = omega[n] * A[n, e - n * L]
                    if gc != 0.0:
                        gb += gc
                        g32 = np.float32(gc)
                        for f in range(d):
                            gv[f] += g32 * P[n, f]
                W = V
                aW = aV
                r = j
            else:
                u = udist[a]
                cnt = uoff[a + 1] - uoff[a]
                for p in range(uoff[a], uoff[a + 1]):
                    n = uorder[p]
                    w = omega[n]
                    if w != 0.0:
                        gb += w * asum[n]
                        w32 = np.float32(w)
                        for f in range(d):
                            gv[f] += w32 * H[n, f]
                W = U
                aW = aU
                r = u
            r32 = np.float32(rc * cnt)
            q2 = np.float32(0.0)
            for f in range(d):
                q = W[r, f]
                q2 += q * q
                gv[f] += r32 * q
            reg += cnt * np.float64(q2)
            if adagrad:
                for f in range(d):
                    g = gv[f]
                    s = aW[r, f] + g * g
                    aW[r, f] = s
                    W[r, f] -= lr32 * g / (np.sqrt(s) + eps32)
            else:
                for f in range(d):
                    W[r, f] -= lr32 * gv[f]
            if is_item and has_bi:
                b = bi[r]
                reg += cnt * b * b
                _update(bi, abi, r, gb + rc * cnt * b, lr, adagrad)
            elif not is_item and has_bu:
                b = bu[r]
                reg += cnt * b * b
                _update(bu, abu, r, gb + rc * cnt * b, lr, adagrad)
        reg_part[ch] = reg


@numba.njit(nogil=True, cache=True)
def _propensity_logits(prop, g_all):
    """``g_all[i] = b_bucket(i) + e_i`` (eq. (8)) or the fixed log propensities; returns max g."""
    buckets, blog, elog, fixed_log = prop
    n = g_all.shape[0]
    if fixed_log.shape[0] > 0:
        for i in range(n):
            g_all[i] = fixed_log[i]
    else:
        for i in range(n):
            v = 0.0
            if blog.shape[0] > 0:
                v += blog[buckets[i]]
            if elog.shape[0] > 0:
                v += elog[i]
            g_all[i] = v
    m = -np.inf
    for i in range(n):
        m = max(m, g_all[i])
    return m


@numba.njit(nogil=True, cache=True)
def _propensity_step(cols, nu, g_all, prop, prop_accs, iopt, fopt, wsum, gbuf):
    """Step ``g`` on eq. (7): ``∂/∂g(i) = P_i − Σ_{n: j_n0 = i} ν_n`` (dense) plus the shrinkage of
    ``e``; returns ``L_g`` of the batch (before the step)."""
    buckets, blog, elog, fixed_log = prop
    ablog, aelog = prop_accs
    B = cols.shape[0]
    n = g_all.shape[0]
    adagrad = iopt[I_OPT] == OPT_ADAGRAD
    lr = fopt[F_PLR] * (1.0 if adagrad else B)
    pl2 = fopt[F_PL2] if elog.shape[0] > 0 else 0.0
    m = -np.inf
    for i in range(n):
        m = max(m, g_all[i])
    z = 0.0
    for i in range(n):
        z += math.exp(g_all[i] - m)
    lse = m + math.log(z)
    loss = 0.0
    for r in range(B):
        i = cols[r, 0]
        wsum[i] += nu[r]
        if nu[r] > 0.0:
            loss -= nu[r] * (g_all[i] - lse)
    any_w = False
    for r in range(B):
        if nu[r] > 0.0:
            any_w = True
    for i in range(n):
        gbuf[i] = (math.exp(g_all[i] - lse) if any_w else 0.0) - wsum[i]
    if pl2 != 0.0:
        for r in range(B):
            i = cols[r, 0]
            e = elog[i]
            loss += pl2 * e * e / B
    if blog.shape[0] > 0:
        gb = np.zeros(blog.shape[0])
        for i in range(n):
            gb[buckets[i]] += gbuf[i]
        for b in range(blog.shape[0]):
            _update(blog, ablog, b, gb[b], lr, adagrad)
    if elog.shape[0] > 0:
        if pl2 != 0.0:
            for r in range(B):  # the shrinkage of e, per click of the batch
                i = cols[r, 0]
                gbuf[i] += 2.0 * pl2 * elog[i] / B
        for i in range(n):
            _update(elog, aelog, i, gbuf[i], lr, adagrad)
    for r in range(B):
        wsum[cols[r, 0]] = 0.0
    return loss


@numba.njit(nogil=True, cache=True)
def _batch_step(draws, perm, lo, seed, users, cols, valid, tables, accs, prop, prop_accs, iopt, fopt, ws, n_threads):
    """One step of ``L_f + L_g + l2·reg`` on a batch of ``users.shape[0]`` rows (drawn here when
    ``perm`` is not empty, see :func:`_rows_pass`); returns the batch loss (mean scale, before the
    step)."""
    (A, asum, H, P, lwf, lwv, logr0, omega, nu, g_all, wsum, gbuf, ucount, icount, idist, ioff, iorder,
     udist, uoff, uorder, reg_part) = ws
    B = users.shape[0]
    L = cols.shape[1]
    gmax = _propensity_logits(prop, g_all)
    Ab = A[:B]
    Hb = H[:B]
    Pb = P[:B]
    _rows_pass(draws, perm, lo, seed, users, cols, valid, tables, g_all, gmax, iopt, fopt, Ab, asum[:B], Hb, Pb,
               lwf[:B], lwv[:B], logr0[:B], n_threads)
    om = omega[:B]
    nub = nu[:B]
    _softmax_into(lwf[:B], om)
    _softmax_into(lwv[:B], nub)
    loss = 0.0
    for n in range(B):
        if om[n] > 0.0:
            loss -= om[n] * logr0[n]
    ni = _group(cols.reshape(-1), icount, idist, ioff, iorder)
    nu_ = _group(users, ucount, udist, uoff, uorder)
    reg_part[:] = 0.0
    _step_pass(L, om, Ab, asum[:B], Hb, Pb, tables, accs, iopt, fopt, (idist, ioff, iorder, ni),
               (udist, uoff, uorder, nu_), reg_part, n_threads)
    loss += fopt[F_L2] * reg_part.sum() / B
    if iopt[I_LEARN] != 0:
        loss += _propensity_step(cols, nub, g_all, prop, prop_accs, iopt, fopt, wsum, gbuf)
    return loss


@numba.njit(nogil=True, cache=True)
def _workspace(b_max, L, d, n_users, n_items, n_threads):
    """Scratch arrays of :func:`_batch_step` for batches of up to ``b_max`` rows."""
    m = max(b_max * L, 1)
    return (np.empty((b_max, L)), np.empty(b_max), np.empty((b_max, d), dtype=np.float32),
            np.empty((b_max, d), dtype=np.float32), np.empty(b_max), np.empty(b_max), np.empty(b_max),
            np.empty(b_max), np.empty(b_max), np.empty(n_items), np.zeros(n_items), np.empty(n_items),
            np.zeros(n_users, dtype=np.int64), np.zeros(n_items, dtype=np.int64),
            np.empty(m, dtype=np.int64), np.empty(m + 1, dtype=np.int64), np.empty(m, dtype=np.int64),
            np.empty(max(b_max, 1), dtype=np.int64), np.empty(max(b_max, 1) + 1, dtype=np.int64),
            np.empty(max(b_max, 1), dtype=np.int64), np.zeros(8 * n_threads))


def _no_draws():
    e64 = np.empty(0, dtype=np.int64)
    e32 = np.empty(0, dtype=np.int32)
    return (e64, e32, np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.bool_), e32, e32)


def dla_batch(users, cols, valid, tables, accs, prop, prop_accs, iopt, fopt, n_threads=1) -> float:
    """One step on given rows (for tests and inspection): ``users`` (B,), ``cols`` (B, L) with the
    click in column 0, ``valid`` (B,) 0/1. Returns the batch loss before the step (as the torch
    path's ``loss``, mean scale)."""
    users = np.ascontiguousarray(users, dtype=np.int64)
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    valid = np.ascontiguousarray(valid, dtype=np.float64)
    B, L = cols.shape
    ws = _workspace(B, L, tables[0].shape[1], tables[0].shape[0], tables[1].shape[0], int(n_threads))
    return float(_batch_step(_no_draws(), np.empty(0, dtype=np.int64), 0, np.uint64(0), users, cols, valid, tables,
                             accs, prop, prop_accs, iopt, fopt, ws, int(n_threads)))


@numba.njit(nogil=True, cache=True)
def _permutation(n, seed):
    """A uniformly random permutation of ``range(n)`` (Fisher-Yates on a splitmix64 stream)."""
    perm = np.arange(n)
    s = np.uint64(seed)
    for t in range(n - 1, 0, -1):
        s = s + _GOLDEN
        r = _bounded(_mix(s), t + 1)
        v = perm[t]
        perm[t] = perm[r]
        perm[r] = v
    return perm, s


@numba.njit(nogil=True, cache=True)
def dla_epoch(indptr, indices, bitmap, full, users_all, items_all, tables, accs, prop, prop_accs, iopt, fopt, seed,
              n_threads):
    """One epoch: every click once in random order, near-equal batches of at most ``iopt[I_BATCH]``
    rows (``numpy.array_split``'s sizes), one step per batch.

    Parameters
    ----------
    indptr : int64 (n_users + 1,); indices : int32 (nnz,)
        The clicks, CSR with sorted rows.
    bitmap : uint8
        ``interaction_bitmap`` of the clicks, or empty (binary search).
    full : bool (n_users,)
        Users without an unclicked item (their rows carry no weight).
    users_all, items_all : int32 (nnz,)
        The clicks as pairs (CSR order).
    tables : (U, V, b_u or empty, b_i or empty), float32, updated in place; ``accs`` their Adagrad sums.
    prop : (buckets int64 (n_items,) or empty, bucket logits, item logits, fixed log propensities)
        float32 logits updated in place (empty when unused); ``prop_accs`` their Adagrad sums.
    iopt, fopt : the options (``I_*``, ``F_*``)
    seed : uint64
    n_threads : int

    Returns
    -------
    loss_sum : float
        Σ over batches of the batch loss times the batch size.
    n_rows : int
    """
    nnz = users_all.shape[0]
    n_items = tables[1].shape[0]
    k = iopt[I_K]
    L = k + 1
    bs = iopt[I_BATCH]
    perm, s = _permutation(nnz, seed)
    draws = (indptr, indices, bitmap, full, users_all, items_all)
    s = _mix(s + _GOLDEN)
    n_batches = max(1, (nnz + bs - 1) // bs)
    base = nnz // n_batches
    extra = nnz % n_batches
    b_max = base + (1 if extra > 0 else 0)
    ws = _workspace(b_max, L, tables[0].shape[1], tables[0].shape[0], n_items, n_threads)
    users = np.empty(b_max, dtype=np.int64)
    cols = np.empty((b_max, L), dtype=np.int64)
    valid = np.empty(b_max)
    loss_sum = 0.0
    lo = 0
    for b in range(n_batches):
        size = base + (1 if b < extra else 0)
        hi = lo + size
        loss_sum += size * _batch_step(draws, perm, lo, s, users[:size], cols[:size], valid[:size], tables, accs,
                                       prop, prop_accs, iopt, fopt, ws, n_threads)
        lo = hi
    return loss_sum, nnz


# ----------------------------------------------------------------------------------------------
# binding to a model and a prepared DLASampler (registered in recsampling.fast.backends)


def _dla_runner(model, sampler, *, optimizer: str, lr: float, l2: float, n_threads: int | None,
                batch_size: int | None = None):
    """Bind the DLA kernel to ``model`` and the prepared ``sampler`` (candidate mode only)."""
    from recsampling.fast.backends import FusedEpochs, _mf_tables, _resolve_threads, _sums, _view
    from recsampling.fast.draws import interaction_bitmap

    if not _dla_accepts(sampler):
        raise ValueError("the fused DLA kernel serves candidate sets only (DLASampler() without logs); "
                         "logged lists (positions) train on the torch path")
    train = getattr(sampler, "train_", None)
    if train is None or sampler.propensity_ is None:
        raise RuntimeError("the sampler must be prepared before a kernel is bound")
    if optimizer not in ("sgd", "adagrad"):
        raise ValueError(f"the fused DLA kernel runs sgd or adagrad, got {optimizer!r}")
    bs = 1024 if batch_size is None else check_int(batch_size, "batch_size", none_ok=True)
    threads = _resolve_threads(n_threads)
    m = train.matrix
    indptr = np.ascontiguousarray(m.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(m.indices, dtype=np.int32)
    n_items = m.shape[1]
    users_all = np.repeat(np.arange(m.shape[0], dtype=np.int32), np.diff(indptr))
    full = np.ascontiguousarray(~sampler._has_negative)
    bitmap = interaction_bitmap(indptr, indices, n_items)
    adagrad = optimizer == "adagrad"
    tables = tuple(_view(t) for t in _mf_tables(model))
    empty1 = np.empty(0, np.float32)
    accs = _sums(tables, adagrad)
    g = sampler.propensity_
    fixed = sampler._fixed_log
    learn = fixed is None
    blog = _view(g.bucket_logits) if learn and g.bucket_logits is not None else empty1
    elog = _view(g.item_logits) if learn and g.item_logits is not None else empty1
    buckets = (np.ascontiguousarray(g.buckets.cpu().numpy(), dtype=np.int64) if blog.size
               else np.empty(0, np.int64))
    fixed_log = np.ascontiguousarray(fixed.numpy(), dtype=np.float32) if fixed is not None else empty1
    prop = (buckets, blog, elog, fixed_log)
    prop_accs = (np.zeros_like(blog), np.zeros_like(elog)) if adagrad else (empty1, empty1)
    mw = sampler._max_weight()
    iopt = np.zeros(N_IOPT, dtype=np.int64)
    fopt = np.zeros(N_FOPT, dtype=np.float64)
    iopt[I_OPT] = OPT_ADAGRAD if adagrad else OPT_SGD
    iopt[I_K] = sampler._n_sampled()
    iopt[I_SIGMOID] = int(sampler.relevance_link == "sigmoid")
    iopt[I_LEARN] = int(learn)
    iopt[I_BATCH] = int(bs)
    fopt[F_LR], fopt[F_L2] = lr, l2
    fopt[F_PLR] = float(sampler.propensity_lr or lr)
    fopt[F_PL2] = float(sampler.propensity_l2)
    fopt[F_LOGMW] = math.inf if mw is None else math.log(mw)

    def run(seed):
        return dla_epoch(indptr, indices, bitmap, full, users_all, indices, tables, accs, prop, prop_accs, iopt,
                         fopt, seed, numba.get_num_threads())

    return FusedEpochs(name=f"numba mf+dla ({optimizer}, batch {bs})", run=run, n_threads=threads,
                       state={"iopt": iopt, "fopt": fopt, "tables": tables, "accs": accs, "prop": prop,
                              "prop_accs": prop_accs})


def _dla_accepts(sampler) -> bool:
    """The kernel serves DLA on candidate sets (setting 2) only."""
    return getattr(sampler, "mode", None) == "candidates"


_dla_runner.accepts = _dla_accepts
