r"""Fused CPU kernel for matrix factorization with every per-pair sampler: one hogwild numba epoch.

One kernel serves bpr, popularity, dns, bpo, nbpo, pointwise, relmf and ubpr. Each visited
training positive ``(u, i)`` becomes one *row*: the positive in column 0 and ``k`` items drawn for
it in columns 1..k, exactly the row the sampler's torch path builds. The kernel

1. draws the row's items (uniform or alias-popularity draws with exact rejection of u's positives,
   or ``implicit``-style skipping; UBPR's uniform draw over all items but ``i``),
2. scores them, ``x_c = <p_u, q_c> + b_c (+ b_u)``,
3. computes ``g_c = ∂ℓ_row/∂x_c`` of the sampler's row loss ``ℓ_row`` (the loss written in that
   sampler's module docstring, per row, so that the batch loss of the torch path is the mean of
   ``ℓ_row`` over its rows),
4. steps every parameter the row touches on ``ℓ_row + l2 * reg_row`` with SGD or Adagrad, where
   ``reg_row = ||p_u||² + b_u² + Σ_c (||q_c||² + b_c²)`` is the Trainer's regularization of the
   row (every column, as on the torch path).

A step of the kernel on one row is the torch path's step on a batch of that one row (SGD on the
batch sum, Adagrad on the batch mean: for one row the same); ``tests/test_fast_mf.py`` checks
every sampler against autograd. Epochs visit every training positive once, in random *chunks* of
one user's positives: each user's positives are shuffled and cut into runs of :data:`CHUNK`, and the
runs of all users are visited in a uniformly random order (:func:`_visit_order`). The user's factor
row and CSR row (the collision test's binary search) then stay in cache for up to :data:`CHUNK`
consecutive rows instead of being a cache miss per row once the user table outgrows the cache
(measured on ML-20M's shape, 138,493 x 26,744: the epoch took half the time of a per-positive
shuffle; ML-100K's NDCG@10 did not change). Blocks of :data:`BLOCK_SIZE` rows are the units of
parallel work, updating the shared tables without locks (hogwild, Niu et al. 2011). With
``n_threads=1`` an epoch is bit-for-bit reproducible for a seed.

The row losses (``w`` are the sampler's weights; σ the logistic function)
--------------------------------------------------------------------------
- ``BPR`` (bpr, popularity, dns): ``ℓ = 1/n Σ_{j∈S} m_j softplus(-(x_0 - x_j))`` with ``S`` the
  ``n`` negatives used: all ``k`` drawn, or for DNS the ``n`` highest-scored of the ``k``
  candidates (selection without gradient); ``m_j`` is 0 for a skipped collision.
- ``BPO``: ``ℓ = w_+ softplus(-x_0) + Σ_j m_j softplus(x_j)``.
- ``NBPO``: the surrogate of eqs. (9)-(10) or the exact likelihood (6) of
  :mod:`recsampling.samplers.nbpo`, with flip logits ``γ_c = γ_0 + c_u + e_c + P_u·Q_c`` (each part
  present or not by the sampler's ``flip``) and ``flip_l2`` on the flip parameters of the row;
  the flip parameters step with ``flip_lr`` and their own optimizer state.
- ``REL`` (pointwise, relmf): ``ℓ = c [clamp_floor(w_0 δ1(x_0) + (1 - w_0) δ0(x_0)) + w_u Σ_j δ0(x_j)]``
  with ``w_0 = 1/θ̃_ui`` of the click and ``w_u`` the user's unobserved weight.
- ``UBPR``: ``ℓ = 1/k Σ_j clamp_{-β}((1/θ̃_ui)(1 - Y_uj/θ̃_uj) softplus(-(x_0 - x_j)))``.

A clamp passes no gradient where it acts (as torch's ``clamp``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from recsampling.fast.draws import (_FASTMATH, _GOLDEN, BLOCK_SIZE, _bounded, _draw_item, _is_positive,
                                    _lower_bound, _mix, prefetch_row)

__all__ = ["CHUNK", "LOSS_BPR", "LOSS_BPO", "LOSS_NBPO", "LOSS_REL", "LOSS_UBPR", "OPT_SGD", "OPT_ADAGRAD",
           "DRAW_REJECT", "DRAW_OTHER", "gather_vectors", "mf_epoch", "mf_rows", "spread_vectors"]

# loss kinds
LOSS_BPR, LOSS_BPO, LOSS_NBPO, LOSS_REL, LOSS_UBPR = 0, 1, 2, 3, 4
# optimizers
OPT_SGD, OPT_ADAGRAD = 0, 1
# draws: from the negative distribution with rejection of u's positives (or skip); or uniform over
# every item but the row's positive (UBPR)
DRAW_REJECT, DRAW_OTHER = 0, 1

# integer options (``iopt``) and float options (``fopt``) of the kernel, by index
I_LOSS, I_OPT, I_K, I_NSEL, I_EXACT, I_LOGDELTA, I_FLOOR, I_BETA, I_DRAW, I_SKIP, I_PREFETCH = range(11)
N_IOPT = 11
F_LR, F_L2, F_FLIP_LR, F_FLIP_L2, F_FLIP_OFFSET, F_SCALE, F_FLOOR, F_BETA, F_POSW = range(9)
N_FOPT = 9
ADAGRAD_EPS = 1e-10  # torch.optim.Adagrad's default
#: Consecutive rows of one user in an epoch (a run of its shuffled positives; see the module docstring)
CHUNK = 32


@numba.njit(nogil=True, cache=True, inline="always")
def _sigmoids(x):
    """``(σ(x), σ(-x))`` from one ``exp``, neither formed by a cancellation (``e = exp(-|x|) <= 1``)."""
    # a float32 exp: the tables' precision, at a fraction of the float64 call's cost (the float64
    # exp and log were measured at about a quarter of an MF-BPR row's time)
    e = np.float64(math.exp(np.float32(-abs(x))))
    inv = 1.0 / (1.0 + e)
    if x >= 0:
        return inv, e * inv
    return e * inv, inv


@numba.njit(nogil=True, cache=True, inline="always")
def _logistic(x):
    """``(σ(x), σ(-x), softplus(-x))`` of one logit from one ``exp`` and one ``log``.

    ``softplus(-x) = -log σ(x)``; the other log terms follow from it: ``softplus(x) =
    softplus(-x) + x`` and ``log σ(-x) = -softplus(-x) - x``. The log is taken of the larger of
    the two σ's, ``σ(|x|) >= 1/2`` (float32, as the exp of :func:`_sigmoids`), so it is exact to
    float32's absolute precision in both tails.
    """
    s, sn = _sigmoids(x)
    if x >= 0:
        return s, sn, np.float64(-math.log(np.float32(s)))
    return s, sn, np.float64(-math.log(np.float32(sn))) - x


@numba.njit(nogil=True, cache=True, inline="always")
def _step1(w, acc, r, g, lr, adagrad):
    if adagrad:
        a = acc[r] + g * g
        acc[r] = a
        w[r] = w[r] - lr * g / (math.sqrt(a) + ADAGRAD_EPS)
    else:
        w[r] = w[r] - lr * g


@numba.njit(nogil=True, cache=True, inline="always")
def _step_line(w, acc, r, g, lr, adagrad):
    """:func:`_step1` on a spread vector (the value of ``r`` at ``w[r, 0]``, :func:`_spread`)."""
    if adagrad:
        a = acc[r, 0] + g * g
        acc[r, 0] = a
        w[r, 0] = w[r, 0] - lr * g / (math.sqrt(a) + ADAGRAD_EPS)
    else:
        w[r, 0] = w[r, 0] - lr * g


@numba.njit(nogil=True, cache=True, inline="always")
def _multiplicities(cols, me):
    """``me[c]``: how often ``cols[c]`` stands in columns c.., or 0 where it stood earlier (a repeat).

    An item drawn twice gets one step on its summed gradient at its first column, as autograd
    sums the repeats.
    """
    L = cols.shape[0]
    for c in range(L):
        me[c] = 1.0
    for c in range(1, L):
        for e in range(c):
            if me[e] > 0 and cols[e] == cols[c]:
                me[e] += 1.0
                me[c] = 0.0
                break


@numba.njit(nogil=True, cache=True, inline="always")
def _merge(cols, g, me, ge):
    """``ge[c]``: the gradient of item ``cols[c]`` summed over its columns, at its first column."""
    L = cols.shape[0]
    for c in range(L):
        ge[c] = g[c]
    for c in range(1, L):
        if me[c] == 0:
            for e in range(c):
                if me[e] > 0 and cols[e] == cols[c]:
                    ge[e] += g[c]
                    break


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _score(U, V, u, cols, me, x, pu):
    """Scores ``x_c = <U_u, V_c>`` of the row's columns and the squared norms of the rows it reads.

    Copies ``U_u`` into ``pu`` (every step of the row uses the values from before it) and returns
    ``||U_u||² + Σ_c ||V_c||²`` (a repeated item counted once per column, as the Trainer's
    regularization of the row). One pass over the factors per distinct item.
    """
    d = U.shape[1]
    L = cols.shape[0]
    j = cols[0]
    s = np.float32(0.0)
    q2 = np.float32(0.0)
    p2 = np.float32(0.0)
    for f in range(d):
        p = U[u, f]
        q = V[j, f]
        pu[f] = p
        s += p * q
        q2 += q * q
        p2 += p * p
    x[0] = s
    reg = p2 + me[0] * q2
    for c in range(1, L):
        if me[c] == 0:  # a repeat: the first column's score (filled below once its item is scored)
            continue
        j = cols[c]
        s = np.float32(0.0)
        q2 = np.float32(0.0)
        for f in range(d):
            q = V[j, f]
            s += pu[f] * q
            q2 += q * q
        x[c] = s
        reg += me[c] * q2
    for c in range(1, L):
        if me[c] == 0:
            for e in range(c):
                if cols[e] == cols[c]:
                    x[c] = x[e]
                    break
    return reg


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _factor_step(U, aU, V, aV, u, cols, ge, me, l2x2, lr, adagrad, pu, gu):
    """Step ``U[u]`` and the rows ``V[cols]`` of a factorization on the row's item gradients ``ge``.

    The objective's part is ``Σ_c g_c <U_u, V_c>`` plus ``l2x2 / 2`` times the squared norms of
    ``U_u`` and of every column's ``V_c``; ``ge``, ``me`` are the summed gradients and
    multiplicities of :func:`_merge` and :func:`_multiplicities`, ``pu`` holds ``U_u`` from before
    the row's step (:func:`_score`). One pass per distinct item reads ``V_c``, adds its part
    ``g_c V_c`` to the user's gradient ``gu`` and steps it; a last pass steps ``U_u``.
    """
    L = cols.shape[0]
    d = U.shape[1]
    lr32 = np.float32(lr)
    l2x2_32 = np.float32(l2x2)
    for f in range(d):
        gu[f] = l2x2_32 * pu[f]
    for c in range(L):
        m = me[c]
        if m == 0:
            continue
        j = cols[c]
        gc = np.float32(ge[c])
        ml2 = np.float32(m) * l2x2_32
        if adagrad:
            for f in range(d):
                v = V[j, f]
                gu[f] += gc * v
                gv = gc * pu[f] + ml2 * v
                a = aV[j, f] + gv * gv
                aV[j, f] = a
                V[j, f] = v - lr32 * gv / (np.float32(math.sqrt(a)) + np.float32(ADAGRAD_EPS))
        elif gc == 0:  # e.g. DNS's unselected candidates: only their L2
            if ml2 != 0:
                shrink = np.float32(1.0) - lr32 * ml2
                for f in range(d):
                    V[j, f] *= shrink
        else:
            for f in range(d):
                v = V[j, f]
                gu[f] += gc * v
                V[j, f] = v - lr32 * (gc * pu[f] + ml2 * v)
    if adagrad:
        for f in range(d):
            g = gu[f]
            a = aU[u, f] + g * g
            aU[u, f] = a
            U[u, f] = pu[f] - lr32 * g / (np.float32(math.sqrt(a)) + np.float32(ADAGRAD_EPS))
    else:
        for f in range(d):
            U[u, f] = pu[f] - lr32 * gu[f]


@numba.njit(nogil=True, cache=True, fastmath=_FASTMATH, inline="always")
def _row(u, cols, mask, w0, wu, pw, tables, accs, flips, flip_accs, iopt, fopt, x, g, gg, ge, me, gm, pu, gu, pf, pg):
    """Score one row, take its loss and step every parameter it touches; returns the row loss.

    ``cols`` (L,) are the row's items (column 0 the positive), ``mask`` (L,) 0/1 whether a column
    enters the loss, ``w0`` the positive's weight (1/θ̃ of REL/UBPR), ``wu`` the user's weight
    (REL), ``pw`` (L,) per-column weights (UBPR's ``1 - Y_uj/θ̃_uj``). ``x``, ``g``, ``gg``,
    ``ge``, ``me``, ``gm`` (L,), ``pu``, ``gu`` (d,), ``pf``, ``pg`` (flip dim,) are scratch buffers.
    The vectors of the tuples (biases, flip offsets, their sums) are spread (:func:`_spread`).
    """
    U, V, bu, bi = tables
    aU, aV, abu, abi = accs
    P, Q, cu, ci = flips
    aP, aQ, acu, aci = flip_accs
    L = cols.shape[0]
    kind = iopt[I_LOSS]
    adagrad = iopt[I_OPT] == OPT_ADAGRAD
    lr = fopt[F_LR]
    l2x2 = 2.0 * fopt[F_L2]
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    _multiplicities(cols, me)
    # scores, and the squared norms the regularization needs, in one pass per item
    reg = _score(U, V, u, cols, me, x, pu)
    for c in range(L):
        g[c] = 0.0
        gg[c] = 0.0
    if has_bi:
        for c in range(L):
            b = bi[cols[c], 0]
            x[c] += b
            reg += b * b
    if has_bu:
        for c in range(L):
            x[c] += bu[u, 0]
        reg += bu[u, 0] * bu[u, 0]
    loss = 0.0
    if kind == LOSS_BPR:
        n = iopt[I_NSEL]
        k = L - 1
        if n < k:  # DNS: keep the n highest-scored usable candidates (no gradient through the choice)
            for _ in range(n):
                best = -1
                for c in range(1, L):
                    if mask[c] > 0 and gg[c] == 0.0 and (best < 0 or x[c] > x[best]):
                        best = c
                if best > 0:
                    gg[best] = 1.0
        else:
            for c in range(1, L):
                gg[c] = 1.0
        inv_n = 1.0 / n
        for c in range(1, L):
            if gg[c] > 0 and mask[c] > 0:
                _, sneg, sp = _logistic(x[0] - x[c])  # σ(-z), softplus(-z) of z = x_0 - x_c
                loss += mask[c] * sp * inv_n
                e = mask[c] * sneg * inv_n
                g[0] -= e
                g[c] += e
            gg[c] = 0.0
    elif kind == LOSS_BPO:
        posw = fopt[F_POSW]
        _, sneg, sp = _logistic(x[0])
        loss += posw * sp
        g[0] = -posw * sneg
        for c in range(1, L):
            if mask[c] > 0:
                spos, _, sp = _logistic(x[c])
                loss += mask[c] * (sp + x[c])  # softplus(x_c)
                g[c] = mask[c] * spos
    elif kind == LOSS_NBPO:
        posw = fopt[F_POSW]
        offset = fopt[F_FLIP_OFFSET]
        has_pq = P.shape[0] > 0
        has_cu = cu.shape[0] > 0
        has_ci = ci.shape[0] > 0
        exact = iopt[I_EXACT] != 0
        freg = 0.0  # ||P_u||² + Σ_c ||Q_c||²
        if has_pq:
            freg = _score(P, Q, u, cols, me, gm, pf)
        else:
            for c in range(L):
                gm[c] = 0.0
        for c in range(L):
            gam = gm[c] + offset
            if has_cu:
                gam += cu[u, 0]
            if has_ci:
                gam += ci[cols[c], 0]
            wgt = posw if c == 0 else mask[c]
            if wgt == 0:
                continue
            # one exp and one log1p per logit give every term: -log σ(z) = spz, log σ(-z) = -spz - z
            xc = x[c]
            sx, snx, spx = _logistic(xc)
            sg, sng, spg = _logistic(gam)
            if c == 0:
                if exact:
                    loss += wgt * (spx + spg + gam)  # -[log σ(x) + log σ(-γ)]
                    g[c] = -wgt * snx
                    gg[c] = wgt * sg
                else:
                    loss -= wgt * (sng * -spx + sx * (-spg - gam))
                    g[c] = -wgt * sng * snx
                    gg[c] = wgt * sx * sg
            else:
                if exact:
                    p = snx + sx * sg  # σ(-x) + σ(x) σ(γ), both terms without cancellation
                    if p > 1e-300:
                        log_p = math.log(p)
                    else:  # both terms underflow: log-sum-exp of their logs
                        a = -spx - xc
                        b = -spx - spg
                        m = max(a, b)
                        log_p = m + math.log(math.exp(a - m) + math.exp(b - m))
                        p = math.exp(log_p)
                    loss -= wgt * log_p
                    g[c] = wgt * sx * snx * sng / p
                    gg[c] = -wgt * sx * sg * sng / p
                else:
                    loss -= wgt * (sg * -spx + (-spx - xc) + sx * -spg)
                    g[c] = wgt * (sx - sg * snx)
                    gg[c] = -wgt * sx * sng
        # the flip parameters: γ-gradient gg, flip_l2 on every column's parameters
        flr = fopt[F_FLIP_LR]
        fl2x2 = 2.0 * fopt[F_FLIP_L2]
        fl2 = fopt[F_FLIP_L2]
        if has_pq or has_ci:
            _merge(cols, gg, me, ge)  # the γ-gradient of each distinct item, at its first column
        if has_pq:
            loss += fl2 * freg
            _factor_step(P, aP, Q, aQ, u, cols, ge, me, fl2x2, flr, adagrad, pf, pg)
        if has_cu:
            acc = 0.0
            for c in range(L):
                acc += gg[c]
            loss += fl2 * cu[u, 0] * cu[u, 0]
            _step_line(cu, acu, u, acc + fl2x2 * cu[u, 0], flr, adagrad)
        if has_ci:
            for c in range(L):
                if me[c] == 0:
                    continue
                j = cols[c]
                loss += fl2 * me[c] * ci[j, 0] * ci[j, 0]
                _step_line(ci, aci, j, ge[c] + me[c] * fl2x2 * ci[j, 0], flr, adagrad)
    elif kind == LOSS_REL:
        scale = fopt[F_SCALE]
        if iopt[I_LOGDELTA] != 0:
            sx, snx, sp = _logistic(x[0])
            d1, d1p = sp, -snx
            d0, d0p = sp + x[0], sx
        else:
            sx, snx = _sigmoids(x[0])
            d1, d1p = snx * snx, -2.0 * snx * snx * sx
            d0, d0p = sx * sx, 2.0 * sx * sx * snx
        click = w0 * d1 + (1.0 - w0) * d0
        if iopt[I_FLOOR] != 0 and click < fopt[F_FLOOR]:
            loss += scale * fopt[F_FLOOR]
        else:
            loss += scale * click
            g[0] = scale * (w0 * d1p + (1.0 - w0) * d0p)
        for c in range(1, L):
            if mask[c] > 0 and wu != 0:
                if iopt[I_LOGDELTA] != 0:
                    sx, _, sp = _logistic(x[c])
                    loss += scale * wu * (sp + x[c])
                    g[c] = scale * wu * sx
                else:
                    sx, snx = _sigmoids(x[c])
                    loss += scale * wu * sx * sx
                    g[c] = scale * wu * 2.0 * sx * sx * snx
    else:  # LOSS_UBPR
        inv_k = 1.0 / (L - 1)
        has_beta = iopt[I_BETA] != 0
        beta = fopt[F_BETA]
        for c in range(1, L):
            _, sneg, sp = _logistic(x[0] - x[c])
            wgt = w0 * pw[c]
            term = wgt * sp
            if has_beta and term < -beta:
                loss -= beta * inv_k
                continue
            loss += term * inv_k
            e = wgt * sneg * inv_k
            g[0] -= e
            g[c] += e
    # the model's parameters: loss gradient g plus the Trainer's l2 on every column
    _merge(cols, g, me, ge)
    _factor_step(U, aU, V, aV, u, cols, ge, me, l2x2, lr, adagrad, pu, gu)
    if has_bi:
        for c in range(L):
            if me[c] > 0:
                j = cols[c]
                _step_line(bi, abi, j, ge[c] + me[c] * l2x2 * bi[j, 0], lr, adagrad)
    if has_bu:
        acc = 0.0
        for c in range(L):
            acc += g[c]
        _step_line(bu, abu, u, acc + l2x2 * bu[u, 0], lr, adagrad)
    return loss + fopt[F_L2] * reg


@numba.njit(nogil=True, fastmath=_FASTMATH, cache=True)
def mf_rows(users, items, mask, w0, wu, pw, tables, accs, flips, flip_accs, iopt, fopt):
    """Apply :func:`_row` to given rows in order (serial; for tests and inspection).

    Parameters
    ----------
    users : int64 (B,)
    items : int64 (B, L)
    mask, pw : float64 (B, L)
    w0, wu : float64 (B,)
    tables, accs, flips, flip_accs : tuples of four arrays (see :func:`mf_epoch`)
    iopt : int64 (N_IOPT,)
    fopt : float64 (N_FOPT,)

    Returns
    -------
    float
        The sum of the rows' losses (each before its own step).
    """
    L = items.shape[1]
    x = np.empty(L)
    g = np.empty(L)
    gg = np.empty(L)
    ge = np.empty(L)
    me = np.empty(L)
    gm = np.empty(L)
    pu = np.empty(tables[0].shape[1], dtype=tables[0].dtype)
    gu = np.empty(tables[0].shape[1], dtype=tables[0].dtype)
    pf = np.empty(max(1, flips[0].shape[1]), dtype=flips[0].dtype)
    pg = np.empty(max(1, flips[0].shape[1]), dtype=flips[0].dtype)
    spread = spread_vectors(tables, accs, flips, flip_accs)
    total = 0.0
    for r in range(users.shape[0]):
        total += _row(users[r], items[r], mask[r], w0[r], wu[r], pw[r], spread[0], spread[1], spread[2], spread[3],
                      iopt, fopt, x, g, gg, ge, me, gm, pu, gu, pf, pg)
    gather_vectors((tables, accs, flips, flip_accs), spread)
    return total


@numba.njit(nogil=True, cache=True)
def _visit_order(indptr, chunk, seed):
    """An epoch's order: every user's positives shuffled and cut into chunks, the chunks shuffled.

    Returns ``perm`` (nnz,) int32, the offsets within each user's CSR row in shuffled order
    (``perm[indptr[u]:indptr[u + 1]]`` is a permutation of ``0..n_u - 1``); per chunk its user
    and first position in ``perm`` (a chunk runs to ``chunk`` positions or the end of the row);
    the chunk ids in visiting order; and the random state.
    """
    n_users = indptr.shape[0] - 1
    perm = np.empty(indptr[n_users], dtype=np.int32)
    n_chunks = 0
    for u in range(n_users):
        n_chunks += (indptr[u + 1] - indptr[u] + chunk - 1) // chunk
    chunk_user = np.empty(n_chunks, dtype=np.int32)
    chunk_start = np.empty(n_chunks, dtype=np.int64)
    state = np.uint64(seed)
    c = 0
    for u in range(n_users):
        lo = indptr[u]
        hi = indptr[u + 1]
        for t in range(lo, hi):
            perm[t] = t - lo
        for t in range(hi - 1, lo, -1):  # Fisher-Yates within the row
            state = state + _GOLDEN
            r = lo + _bounded(_mix(state), t - lo + 1)
            tp = perm[t]
            perm[t] = perm[r]
            perm[r] = tp
        for at in range(lo, hi, chunk):
            chunk_user[c] = u
            chunk_start[c] = at
            c += 1
    visit = np.arange(n_chunks)
    for t in range(n_chunks - 1, 0, -1):  # Fisher-Yates over the chunks
        state = state + _GOLDEN
        r = _bounded(_mix(state), t + 1)
        tv = visit[t]
        visit[t] = visit[r]
        visit[r] = tv
    return perm, chunk_user, chunk_start, visit, state


#: float32 values per 64-byte cache line
_LINE = 16


@numba.njit(nogil=True, cache=True)
def _spread(a):
    """A copy of the vector ``a`` with one element per cache line: an (n, 16) buffer, ``a[r]`` at ``[r, 0]``.

    A dense vector of biases packs 16 items into a cache line, which hogwild threads stepping
    different items then write at once: each write takes the line from the other core. Measured
    on ML-1M (MF-BPR, 64 factors, 2 threads, idle machine): with V's writes removed (a probe, not
    a kernel) the epoch scaled from 1 to 2 threads by 1.23x with the dense item-bias vector and by
    1.9x without it. :func:`mf_epoch` steps spread copies, made and written back around each
    epoch by its caller (spread inside a parallel function, numba lost the writes made through the
    tuples of the loop body).
    """
    buf = np.zeros((a.shape[0], _LINE), dtype=a.dtype)
    buf[:, 0] = a
    return buf


@numba.njit(nogil=True, cache=True)
def spread_vectors(tables, accs, flips, flip_accs):
    """The four table tuples of :func:`mf_epoch` with their vectors (items 2 and 3 of each) spread."""
    return ((tables[0], tables[1], _spread(tables[2]), _spread(tables[3])),
            (accs[0], accs[1], _spread(accs[2]), _spread(accs[3])),
            (flips[0], flips[1], _spread(flips[2]), _spread(flips[3])),
            (flip_accs[0], flip_accs[1], _spread(flip_accs[2]), _spread(flip_accs[3])))


@numba.njit(nogil=True, cache=True)
def gather_vectors(dense, spread):
    """Write the vectors of :func:`spread_vectors`'s tuples ``spread`` back into those of ``dense``."""
    for k in numba.literal_unroll((0, 1, 2, 3)):
        dense[k][2][:] = spread[k][2][:, 0]
        dense[k][3][:] = spread[k][3][:, 0]


@numba.njit(nogil=True, parallel=True, fastmath=_FASTMATH, cache=True)
def mf_epoch(indptr, indices, bitmap, alias_prob, alias_index, click_w, user_w,
             tables, accs, flips, flip_accs, iopt, fopt, seed):
    """One shuffled epoch over every training positive (in chunks of a user's, :func:`_visit_order`),
    hogwild across numba threads.

    Parameters
    ----------
    indptr : int64 (n_users + 1,); indices : int32 (nnz,)
        The training positives, CSR with sorted rows.
    bitmap : uint8
        Bit matrix of the positives (``interaction_bitmap``) or empty (binary search).
    alias_prob, alias_index : float64 / int32 (n_items,) or empty (uniform)
        The negative distribution.
    click_w : float64 (nnz,) or empty
        Per positive: REL's ``1/θ̃`` (w_0), UBPR's ``1/θ̃`` (w_0 and, for a drawn clicked item,
        its ``θ̃`` as ``1/click_w``); empty means 1.
    user_w : float64 (n_users,) or empty
        REL's unobserved weight per user.
    tables : (U (n_users, d), V (n_items, d), b_u (n_users, 16) or empty, b_i (n_items, 16) or empty)
        float32, updated in place; the bias vectors spread, one per cache line
        (:func:`spread_vectors`, :func:`gather_vectors`); ``accs`` the same shapes (Adagrad's sums) or empty arrays.
    flips, flip_accs : (P, Q, c_u, c_i) and their Adagrad sums, NBPO's flip parameters (empty if
        unused; ``c_u``, ``c_i`` spread)
    iopt, fopt : the integer and float options (``I_*``, ``F_*``)
    seed : uint64

    Returns
    -------
    loss_sum : float
    n_rows : int
        Rows stepped (a user without any drawable item has no row for losses with negatives).
    """
    n_items = tables[1].shape[0]
    row_bytes = (n_items + 7) // 8
    k = iopt[I_K]
    L = 1 + k
    draw = iopt[I_DRAW]
    skip = iopt[I_SKIP] != 0
    n_drawable = n_items
    if alias_prob.shape[0] > 0:
        n_drawable = 0
        for t in range(alias_prob.shape[0]):
            if alias_prob[t] > 0.0:
                n_drawable += 1
    perm, chunk_user, chunk_start, visit, state = _visit_order(indptr, CHUNK, seed)
    n_chunks = visit.shape[0]
    per_block = max(1, BLOCK_SIZE // CHUNK)  # chunks per block
    n_blocks = max(1, (n_chunks + per_block - 1) // per_block)
    has_click_w = click_w.shape[0] > 0
    seeds = np.empty(n_blocks, dtype=np.uint64)
    for b in range(n_blocks):
        state = state + _GOLDEN
        seeds[b] = _mix(state)
    loss_sums = np.zeros(n_blocks)
    n_rows = np.zeros(n_blocks, dtype=np.int64)
    d = tables[0].shape[1]
    dp = max(1, flips[0].shape[1])
    has_user_w = user_w.shape[0] > 0
    needs_neg = iopt[I_LOSS] == LOSS_BPR or iopt[I_LOSS] == LOSS_UBPR
    # tuples of arrays are unpacked before the parallel loop and packed again per call: read
    # inside a prange body they are slow (measured: the scoring pass ran at 2/3 the speed)
    U, V, bu, bi = tables
    aU, aV, abu, abi = accs
    P, Q, cu, ci = flips
    aP, aQ, acu, aci = flip_accs
    has_pq = P.shape[0] > 0
    prefetch = iopt[I_PREFETCH] != 0  # set by the caller when more than one thread runs
    for b in numba.prange(n_blocks):
        s = seeds[b]
        # two sets of row buffers: the next row is drawn (its draws do not depend on the model)
        # and its tables prefetched while the current one is stepped
        cols = np.empty(L, dtype=np.int64)
        mask = np.ones(L)
        pw = np.ones(L)
        cols_n = np.empty(L, dtype=np.int64)
        mask_n = np.ones(L)
        pw_n = np.ones(L)
        x = np.empty(L)
        g = np.empty(L)
        gg = np.empty(L)
        ge = np.empty(L)
        me = np.empty(L)
        gm = np.empty(L)
        pu = np.empty(d, dtype=tables[0].dtype)
        gu = np.empty(d, dtype=tables[0].dtype)
        pf = np.empty(dp, dtype=flips[0].dtype)
        pg = np.empty(dp, dtype=flips[0].dtype)
        loss = 0.0
        rows = 0
        q = b * per_block
        q_end = min(n_chunks, (b + 1) * per_block)
        t = 0
        t_end = 0
        lo = 0
        hi = 0
        u_n = np.int64(0)
        w0_n = 1.0
        wu_n = 1.0
        full = False
        have = False  # the current buffers hold a drawn row
        u = np.int64(0)
        w0 = 1.0
        wu = 1.0
        while True:
            # the next row's position: the next positive of the chunk, or the next chunk's first
            while t >= t_end and q < q_end:
                ch = visit[q]
                q += 1
                u_n = np.int64(chunk_user[ch])
                lo = indptr[u_n]
                hi = indptr[u_n + 1]
                full = hi - lo >= n_drawable
                if full and needs_neg and draw != DRAW_OTHER:
                    continue
                wu_n = user_w[u_n] if has_user_w else 1.0
                t = chunk_start[ch]
                t_end = min(chunk_start[ch] + CHUNK, hi)
            more = t < t_end
            if more:
                at = lo + perm[t]  # the positive's CSR position
                t += 1
                i = np.int64(indices[at])
                cols_n[0] = i
                w0_n = click_w[at] if has_click_w else 1.0
                if draw == DRAW_OTHER:
                    for c in range(1, L):
                        s = s + _GOLDEN
                        j = _bounded(_mix(s), n_items - 1)
                        if j >= i:
                            j += 1
                        cols_n[c] = j
                        mask_n[c] = 1.0
                        pw_n[c] = 1.0
                        if _is_positive(bitmap, row_bytes, indptr, indices, u_n, j):
                            # a clicked j enters with 1 - 1/θ̃_uj (its CSR position gives θ̃)
                            aj = _lower_bound(indices, lo, hi, j)
                            pw_n[c] = 1.0 - (click_w[aj] if has_click_w else 1.0)
                else:
                    for c in range(1, L):
                        if full:
                            cols_n[c] = i
                            mask_n[c] = 0.0
                            continue
                        while True:
                            s, j = _draw_item(s, n_items, alias_prob, alias_index)
                            if not _is_positive(bitmap, row_bytes, indptr, indices, u_n, j):
                                cols_n[c] = j
                                mask_n[c] = 1.0
                                break
                            if skip:
                                cols_n[c] = j
                                mask_n[c] = 0.0
                                break
                if prefetch:  # the lines another thread may hold (alone, the prefetches only cost)
                    for c in range(L):
                        prefetch_row(V, cols_n[c])
                    if has_pq:
                        for c in range(L):
                            prefetch_row(Q, cols_n[c])
            if have:
                loss += _row(u, cols, mask, w0, wu, pw, (U, V, bu, bi), (aU, aV, abu, abi), (P, Q, cu, ci),
                             (aP, aQ, acu, aci), iopt, fopt, x, g, gg, ge, me, gm, pu, gu, pf, pg)
                rows += 1
            if not more:
                break
            cols, cols_n = cols_n, cols
            mask, mask_n = mask_n, mask
            pw, pw_n = pw_n, pw
            u = u_n
            w0 = w0_n
            wu = wu_n
            have = True
        loss_sums[b] = loss
        n_rows[b] = rows
    return loss_sums.sum(), n_rows.sum()
