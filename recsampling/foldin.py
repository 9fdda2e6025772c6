r"""Fold-in: the vector of a user the model never saw, from the items they interacted with.

The item table ``V`` stays frozen; the new user's vector ``u`` minimizes the objective the model
was trained with, restricted to that one user: the mean of the user's training-row losses plus
the Trainer's L2 on the user's vector (:mod:`recsampling.train`: ``mean(loss) + l2 ·
mean(||touched vectors||²)``, whose user part for one user is ``l2 ||u_free||²``). Columns of
``u`` that are constants in the trained model (the 1 that multiplies a folded item bias,
``EmbeddingModel.fixed_user_columns``) are held at their value, not solved for.

With ``s_j = <u, v_j>``, ``P`` the user's items (``n_u`` of them), ``N`` the others and ``q`` the
negative distribution over ``N`` (uniform, or the popularity sampler's ``n_j^α``), the
objectives are (each the expectation over the sampler's draws of one row's loss, averaged over
the user's rows)::

    "bpr"       (1/n_u) Σ_{i∈P} Σ_{j∈N} q_j · (−ln σ(s_i − s_j))             (Rendle et al., eq. 5)
    "logistic"  (w/n_u) Σ_{i∈P} (−ln σ(s_i)) + k Σ_{j∈N} q_j · (−ln σ(−s_j))  (BPO, Yu & Qin, eq. 1)
    "softmax"   (1/n_u) Σ_{i∈P} −ln [exp(s_i) / (exp(s_i) + Σ_{j∈N} exp(s_j))]

(the softmax over every unobserved item, which logQ-corrected in-batch negatives estimate)

plus ``l2 ||u_free||²``. ``w`` and ``k`` are the pointwise sampler's weight of the voted term and
its number of negatives. Each objective is a convex function of ``u`` (a softplus of a linear or
of a log-sum-exp function), so Newton's method with a backtracking line search finds the
minimum in a handful of steps; gradient and Hessian are written out below, batched over users.

For a catalogue of more than ``max_negatives`` items, each user's sum over ``N`` is estimated
from ``max_negatives`` seeded draws from ``q`` (exact rejection of the user's items); otherwise
it is exact. The (user, positive, negative) pair matrices, the bulk of the work, are computed in
single precision; every sum over them, the gradient and the step in double.

Which objective belongs to a sampler (:func:`objective_for`) is the sampler class's
``fold_in_objective``; the built-ins declare: the BPR family (``bpr``,
``popularity``, ``dns``, ``ubpr``) folds in with ``"bpr"``, the pointwise ones (``bpo``,
``nbpo``, ``pointwise``, ``relmf``) with ``"logistic"``, ``inbatch`` and ``dla`` with
``"softmax"``. Exact for ``bpr``, ``popularity`` and ``bpo``; for the others it is the nearest
of the three (DNS's hard negatives, NBPO's flip rates, Rel-MF's and UBPR's inverse-propensity
weights and DLA's logged lists have no counterpart for a user without training data).
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsampling._utils import RandomState, check_int, check_number, check_random_state

__all__ = ["OBJECTIVES", "fold_in", "objective_for"]

logger = logging.getLogger("recsampling")

_JITTER = 1e-9  # added to the Hessian's diagonal: keeps the Newton system solvable with l2 = 0
_ARMIJO = 1e-4
_HALVINGS = 10


def objective_for(sampler) -> dict:
    """The fold-in objective of the sampler a model was trained with, as :func:`fold_in` keywords.

    Parameters
    ----------
    sampler : Sampler
        A (prepared) sampler: its class's ``fold_in_objective`` names the objective (every
        built-in declares one); a sampler without one gets ``"bpr"`` (logged).

    Returns
    -------
    dict
        ``objective`` and, where they apply, ``negative_probs`` (the popularity sampler's
        distribution), ``n_negatives`` and ``positive_weight`` (pointwise samplers).
    """
    name = getattr(sampler, "name", "") or type(sampler).__name__
    objective = getattr(sampler, "fold_in_objective", None)
    if objective is None:
        logger.warning("fold-in: sampler %r has no fold-in objective (no fold_in_objective attribute); using 'bpr'",
                       name)
        objective = "bpr"
    if objective not in OBJECTIVES:
        raise ValueError(f"sampler {name!r} names the fold-in objective {objective!r}; expected one of {OBJECTIVES}")
    return {"objective": objective, **_KINDS[objective].options(sampler)}


def fold_in(
    item_vectors,
    positives,
    *,
    objective: str = "bpr",
    l2: float = 0.0,
    fixed_columns: dict[int, float] | None = None,
    negative_probs=None,
    n_negatives: int = 1,
    positive_weight: float = 1.0,
    max_negatives: int = 4096,
    max_iter: int = 50,
    tol: float = 1e-7,
    memory_budget_mb: float = 256.0,
    random_state: RandomState = 0,
) -> np.ndarray:
    """Vectors of new users that minimize the training objective with the item table frozen.

    Parameters
    ----------
    item_vectors : array of shape (n_items, d)
        The trained item table (biases folded in, ``model.embedding_tables()[1]``).
    positives : scipy sparse matrix or Interactions of shape (n_new, n_items)
        Row r holds the items new user r interacted with (every stored entry counts once).
    objective : {"bpr", "logistic", "softmax"}, default "bpr"
        See the module docstring; :func:`objective_for` gives the one of a sampler.
    l2 : float, default 0.0
        Weight of ``||u_free||²`` (the Trainer's ``l2``). With 0 the minimum can lie at
        infinity (items that can be ranked above all others); Newton then stops at ``max_iter``.
    fixed_columns : dict of int to float, optional
        Columns of ``u`` held at a constant (``model.fixed_user_columns()``).
    negative_probs : array of shape (n_items,), optional
        The negative distribution ``q`` of ``"bpr"`` and ``"logistic"`` (restricted to each
        user's unobserved items here); uniform when None.
    n_negatives : int, default 1
        ``k`` of ``"logistic"``.
    positive_weight : float, default 1.0
        ``w`` of ``"logistic"``.
    max_negatives : int, default 4096
        With more items than this in the catalogue, each user's sum over the negatives is taken
        over this many seeded draws from ``q`` instead of over every unobserved item.
    max_iter : int, default 50
        Newton steps at most.
    tol : float, default 1e-7
        Stop when every user's Newton decrement ``gᵀH⁻¹g / 2`` is below it.
    memory_budget_mb : float, default 256
        Bound on the work arrays of one batch of users.
    random_state : int, numpy.random.Generator or None, default 0
        Seeds the negative draws (only made for a catalogue of more than ``max_negatives`` items).

    Returns
    -------
    numpy.ndarray of float32, shape (n_new, d)

    Raises
    ------
    ValueError
        On bad arguments, a user without items, or a user who interacted with every item.
    """
    V = np.asarray(item_vectors.detach().cpu() if isinstance(item_vectors, torch.Tensor) else item_vectors)
    if V.ndim != 2 or V.shape[0] < 1 or V.shape[1] < 1:
        raise ValueError(f"item_vectors must be a non-empty 2-D (n_items, d) array, got shape {V.shape}")
    if not np.isfinite(V).all():
        raise ValueError("item_vectors has NaN or infinite values")
    n_items, d = V.shape
    X = _check_positives(positives, n_items)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    l2 = check_number(l2, "l2", 0.0)
    positive_weight = check_number(positive_weight, "positive_weight", 0.0, strict=True)
    k = check_int(n_negatives, "n_negatives")
    max_negatives = check_int(max_negatives, "max_negatives")
    max_iter = check_int(max_iter, "max_iter")
    tol = check_number(tol, "tol", 0.0)
    budget = check_number(memory_budget_mb, "memory_budget_mb", 0.0, strict=True)
    fixed = dict(fixed_columns or {})
    if any(not isinstance(c, (int, np.integer)) or not 0 <= c < d for c in fixed):
        raise ValueError(f"fixed_columns must map column indices in [0, {d}) to values, got {sorted(fixed)}")
    free = np.setdiff1d(np.arange(d), np.fromiter(fixed, dtype=np.int64, count=len(fixed)))
    q = None
    if negative_probs is not None and _KINDS[objective].weighs_negatives:
        q = np.asarray(negative_probs, dtype=np.float64)
        if q.shape != (n_items,) or not np.isfinite(q).all() or (q < 0).any():
            raise ValueError(f"negative_probs must be {n_items} finite numbers >= 0, got shape {q.shape}")
    counts = np.diff(X.indptr)
    if (counts == 0).any():
        raise ValueError(f"every new user needs at least one item; rows {np.flatnonzero(counts == 0)[:5].tolist()} "
                         "have none")
    mass = np.full(X.shape[0], float(n_items)) - counts if q is None else q.sum() - _row_sums(X, q)
    if (mass <= 0).any():
        r = int(np.flatnonzero(mass <= 0)[0])
        raise ValueError(f"new user row {r} has no item to rank below its own (it interacted with every item"
                         f"{'' if q is None else ' of nonzero negative_probs'}); nothing to fold in")
    rng = check_random_state(random_state)

    Vt = torch.from_numpy(np.ascontiguousarray(V, dtype=np.float64))
    base = np.zeros(d)
    for c, value in fixed.items():
        base[c] = float(value)
    sampled = n_items > max_negatives  # else every unobserved item is a candidate: nothing is drawn
    c = max_negatives if sampled else n_items
    outer = None
    if not sampled and 4 * n_items * d * d <= budget * 2**20 / 4:
        V32 = Vt.float()
        outer = (V32.unsqueeze(2) * V32.unsqueeze(1)).reshape(n_items, d * d)  # v_j v_jᵀ, one row per item
    out = np.empty((X.shape[0], d), dtype=np.float32)
    # users with the most items first, so a batch's first row sets its padding and its size
    order = np.lexsort((np.arange(X.shape[0]), -counts))
    start = 0
    while start < order.size:
        m = int(counts[order[start]])
        per_user = 8 * (3 * m * c + (2 if sampled or outer is None else 1) * c * (d + 2) + m * (2 * d + 4) + 3 * d * d)
        end = min(order.size, start + max(1, int(budget * 2**20 // per_user)))
        batch = order[start:end]
        if sampled:
            from recsampling.samplers.negatives import draw_negatives

            neg = draw_negatives(X[batch], np.repeat(np.arange(batch.size), c), 1, rng, item_probs=q)
            cand = _Candidates(Vt[torch.from_numpy(neg.reshape(batch.size, c))])
        else:
            cand = _Candidates(Vt, outer)
        problem = _Problem(cand, Vt, X[batch], objective, q, k, positive_weight, l2, free, base)
        out[batch] = problem.solve(max_iter, tol).numpy()
        start = end
    return out


class _Candidates:
    """The negatives of a batch of users: the whole item table, or each user's own draws.

    ``V`` is (n_items, d), shared by the batch, or (B, c, d); ``outer`` (n_items, d²), float32,
    optionally holds the rows ``v_j v_jᵀ`` of a shared table (one product then gives every user's
    Gram matrix; the Hessian only steers Newton's steps, single precision is enough there).
    """

    def __init__(self, V, outer=None):
        self.V, self.outer = V, outer
        self.V32 = V.float()
        self.shared = V.dim() == 2
        self.c, self.d = V.shape[-2], V.shape[-1]

    def scores(self, u):
        """``<u_b, v_j>`` per user and candidate: (B, d) -> (B, c)."""
        return u @ self.V.T if self.shared else (self.V @ u.unsqueeze(-1)).squeeze(-1)

    def combine(self, y):
        """``Σ_j y_bj v_j``: (B, c) -> (B, d)."""
        return y @ self.V if self.shared else (y.unsqueeze(1) @ self.V).squeeze(1)

    def times(self, M):
        """``M_b V_b`` for a float32 pair matrix: (B, r, c) -> (B, r, d), float64."""
        return (M @ self.V32).double()

    def gram(self, y):
        """``Σ_j y_bj v_j v_jᵀ``: (B, c) -> (B, d, d)."""
        if self.outer is not None:
            return (y.float() @ self.outer).double().reshape(-1, self.d, self.d)
        return _gram(self.V.unsqueeze(0) if self.shared else self.V, y)


class _Problem:
    """One batch of users: padded positives, weighted candidate negatives, Newton's method."""

    def __init__(self, cand, Vt, sub, objective, q, k, positive_weight, l2, free, base):
        n_items, d = Vt.shape
        self.cand, self.kind = cand, _KINDS[objective]
        self.k, self.w, self.l2 = float(k), float(positive_weight), float(l2)
        self.free = torch.from_numpy(free)
        self.base = torch.from_numpy(base)
        counts = np.diff(sub.indptr)
        B, m = sub.shape[0], int(counts.max())
        row_of = np.repeat(np.arange(B), counts)
        slot = np.arange(sub.nnz) - sub.indptr[row_of]
        pos = np.zeros((B, m), dtype=np.int64)
        pos[row_of, slot] = sub.indices
        pw = np.zeros((B, m))
        pw[row_of, slot] = 1.0 / counts[row_of]
        self.VP = Vt[torch.from_numpy(pos)]                                 # (B, m, d)
        self.pw = torch.from_numpy(pw)                                      # (B, m): 1/n_u on the real slots
        if cand.shared:  # every item: the user's own get weight 0
            weights = np.tile(np.ones(n_items) if q is None else q, (B, 1))
            weights[row_of, sub.indices] = 0.0
            self.cw = torch.from_numpy(weights / weights.sum(1, keepdims=True))
        else:  # draws from q: each weighs the same
            self.cw = torch.full((B, cand.c), 1.0 / cand.c, dtype=torch.float64)
        self.log_mass = torch.from_numpy(np.log((n_items - counts).astype(np.float64)))  # log |N| (softmax)
        self.pw32, self.cw32 = self.pw.float(), self.cw.float()
        self.B, self.d = B, d

    # -- the objective --------------------------------------------------------------------------
    def _vector(self, w):
        u = self.base.expand(self.B, self.d).clone()
        u[:, self.free] = w
        return u

    def _scores(self, u):
        return (self.VP @ u.unsqueeze(-1)).squeeze(-1), self.cand.scores(u)  # (B, m), (B, c)

    def value(self, w):
        """The objective of each user at ``w`` (free columns), shape (B,)."""
        sP, sC = self._scores(self._vector(w))
        return self.kind.value(self, sP, sC) + self.l2 * (w * w).sum(1)

    def derivatives(self, w):
        """Gradient and Hessian in the free columns, per user: (B, f), (B, f, f)."""
        sP, sC = self._scores(self._vector(w))
        grad, H = self.kind.derivatives(self, sP, sC)
        fr = self.free
        g = grad[:, fr] + 2.0 * self.l2 * w
        H = H[:, fr][:, :, fr] + (2.0 * self.l2 + _JITTER) * torch.eye(fr.numel(), dtype=H.dtype)
        return g, H

    # -- Newton's method with backtracking ------------------------------------------------------
    def take(self, keep):
        """The same problem for the users where ``keep`` is True (converged ones retire)."""
        sub = copy.copy(self)
        for name in ("VP", "pw", "cw", "pw32", "cw32", "log_mass"):
            setattr(sub, name, getattr(self, name)[keep])
        if not self.cand.shared:
            sub.cand = _Candidates(self.cand.V[keep])
        sub.B = int(keep.sum())
        return sub

    def solve(self, max_iter: int, tol: float):
        """Damped Newton from ``u_free = 0``; returns the full vectors (B, d).

        A user whose Newton decrement ``gᵀH⁻¹g / 2`` falls below ``tol``, or whose objective no
        longer decreases along the Newton direction (the minimum up to rounding), retires from
        the batch; the others go on, up to ``max_iter`` steps.
        """
        result = torch.zeros(self.B, self.free.numel(), dtype=torch.float64)
        rows = torch.arange(self.B)
        prob, w = self, result.clone()
        f = prob.value(w)
        for _ in range(max_iter):
            g, H = prob.derivatives(w)
            step = torch.linalg.solve(H, g.unsqueeze(-1)).squeeze(-1)
            decrement = (g * step).sum(1)                                   # gᵀH⁻¹g
            t = torch.ones(prob.B, dtype=torch.float64)
            todo = decrement / 2 > tol
            for _ in range(_HALVINGS):
                if not bool(todo.any()):
                    break
                trial = prob.value(w - t.unsqueeze(1) * step)
                ok = todo & (trial <= f - _ARMIJO * t * decrement)
                f = torch.where(ok, trial, f)
                todo &= ~ok
                t = torch.where(todo, t / 2, t)
            moved = (decrement / 2 > tol) & ~todo
            w = w - torch.where(moved, t, 0.0).unsqueeze(1) * step
            result[rows] = w
            if not bool(moved.all()):
                if not bool(moved.any()):
                    break
                prob, rows, w, f = prob.take(moved), rows[moved], w[moved], f[moved]
        return self._vector(result)


# ---------------------------------------------------------------------------------------------
# the objectives: each owns its name (what a sampler's ``fold_in_objective`` says), the keywords it
# takes from a sampler, and its value, gradient and Hessian over a batch of users (a _Problem)


class _Kind:
    """One fold-in objective; :data:`OBJECTIVES` lists their names."""

    #: the name samplers declare as their ``fold_in_objective`` and :func:`fold_in` takes
    name: str = ""
    #: whether the objective averages over the negatives with ``negative_probs`` (else ignored)
    weighs_negatives: bool = True

    def options(self, sampler) -> dict:
        """The :func:`fold_in` keywords this objective reads from a (prepared) sampler."""
        return {}

    def value(self, p: _Problem, sP, sC):
        """The objective without the L2 term per user, (B,), from the scores of positives and candidates."""
        raise NotImplementedError

    def derivatives(self, p: _Problem, sP, sC):
        """Gradient (B, d) and Hessian (B, d, d) in every column, without the L2 term."""
        raise NotImplementedError


class _Pairwise(_Kind):
    """BPR's pairwise log-loss against the negative distribution (the popularity sampler's, if any)."""

    name = "bpr"

    def options(self, sampler) -> dict:
        probs = getattr(sampler, "item_probs_", None)
        return {} if probs is None else {"negative_probs": np.asarray(probs, dtype=np.float64)}

    def value(self, p, sP, sC):
        ell = F.softplus(_pairs(sP, sC))                                    # −ln σ(s_i − s_j), (B, m, c)
        return ((ell @ p.cw32.unsqueeze(-1)).squeeze(-1).double() * p.pw).sum(1)

    def derivatives(self, p, sP, sC):
        C, VP, pw, cw = p.cand, p.VP, p.pw, p.cw
        VPt = VP.transpose(1, 2)
        # the pair weights are the outer product pw_i cw_j: each sum over the (B, m, c) pair
        # matrix is its product with one of the two weight vectors
        pw32, cw32 = p.pw32, p.cw32
        sig = torch.sigmoid(_pairs(sP, sC))                     # σ(−D) = −∂ℓ/∂D, D_ij = s_i − s_j
        gP = (sig @ cw32.unsqueeze(-1)).squeeze(-1).double() * pw           # (B, m)
        gC = (pw32.unsqueeze(1) @ sig).squeeze(1).double() * cw             # (B, c)
        grad = C.combine(gC) - (VPt @ gP.unsqueeze(-1)).squeeze(-1)
        h = sig.sub_(sig * sig).mul_(cw32.unsqueeze(1))                     # cw_j ∂²ℓ/∂D², in place
        hC = (pw32.unsqueeze(1) @ h).squeeze(1).double()                    # (B, c)
        cross = (VPt * pw.unsqueeze(1)) @ C.times(h)                        # Σ_ij pw_i cw_j ∂²ℓ v_i v_jᵀ
        H = _gram(VP, h.sum(2).double() * pw) + C.gram(hC) - cross - cross.transpose(1, 2)
        return grad, H


class _Logistic(_Kind):
    """The pointwise log-loss: the voted items as positives (weight ``w``), ``k`` negatives."""

    name = "logistic"

    def options(self, sampler) -> dict:
        k = int(getattr(sampler, "n_negatives", 1))
        w = getattr(sampler, "positive_weight", None)
        return {"n_negatives": k, "positive_weight": float(k if w is None else w)}

    def value(self, p, sP, sC):
        return p.w * (p.pw * F.softplus(-sP)).sum(1) + p.k * (p.cw * F.softplus(sC)).sum(1)

    def derivatives(self, p, sP, sC):
        C, VP, pw, cw = p.cand, p.VP, p.pw, p.cw
        VPt = VP.transpose(1, 2)
        sigP, sigC = torch.sigmoid(sP), torch.sigmoid(sC)
        ap, an = p.w * pw, p.k * cw
        grad = C.combine(an * sigC) - (VPt @ (ap * (1 - sigP)).unsqueeze(-1)).squeeze(-1)
        H = _gram(VP, ap * sigP * (1 - sigP)) + C.gram(an * sigC * (1 - sigC))
        return grad, H


class _Softmax(_Kind):
    """The softmax of each positive against every unobserved item (uniform over them)."""

    name = "softmax"
    weighs_negatives = False

    def value(self, p, sP, sC):
        L = p.log_mass + torch.logsumexp(sC + torch.log(p.cw), 1)
        return (p.pw * F.softplus(L.unsqueeze(1) - sP)).sum(1)

    def derivatives(self, p, sP, sC):
        C, VP, pw, cw = p.cand, p.VP, p.pw, p.cw
        logits = sC + torch.log(cw)
        lse = torch.logsumexp(logits, 1, keepdim=True)
        prob = torch.exp(logits - lse)                                      # softmax over the negatives
        vbar = C.combine(prob)                                              # (B, d)
        z = p.log_mass.unsqueeze(1) + lse - sP                              # (B, m)
        sz = torch.sigmoid(z)
        a = pw * sz
        grad = a.sum(1, keepdim=True) * vbar - (VP.transpose(1, 2) @ a.unsqueeze(-1)).squeeze(-1)
        cov = C.gram(prob) - vbar.unsqueeze(2) * vbar.unsqueeze(1)
        H = _gram(vbar.unsqueeze(1) - VP, pw * sz * (1 - sz)) + a.sum(1)[:, None, None] * cov
        return grad, H


#: every objective by its own name
_KINDS: dict[str, _Kind] = {kind.name: kind for kind in (_Pairwise(), _Logistic(), _Softmax())}

#: the fold-in objectives' names, as samplers declare them (``fold_in_objective``)
OBJECTIVES = tuple(_KINDS)


def _pairs(sP, sC):
    """``s_j − s_i`` for every (positive i, candidate j) of each user, (B, m, c), in float32.

    The pair matrices are the bulk of the work; single precision halves it, and every sum over
    them is taken with float64 weights afterwards.
    """
    return sC.float().unsqueeze(1) - sP.float().unsqueeze(2)


def _gram(A, weights):
    """``Aᵀ diag(weights) A`` per batch row: A (B or 1, n, d), weights (B, n) -> (B, d, d)."""
    return (A * weights.unsqueeze(-1)).transpose(1, 2) @ A


def _row_sums(X: sp.csr_matrix, q: np.ndarray) -> np.ndarray:
    return np.asarray(X.multiply(q[None, :]).sum(1)).ravel() if X.nnz else np.zeros(X.shape[0])


def _check_positives(positives, n_items: int) -> sp.csr_matrix:
    m = getattr(positives, "matrix", positives)
    if not sp.issparse(m):
        raise ValueError(f"positives must be an Interactions or a scipy sparse (n_new, n_items) matrix, got "
                         f"{type(positives).__name__}")
    if m.ndim != 2 or m.shape[1] != n_items:
        raise ValueError(f"positives must have {n_items} columns (the model's items), got shape {m.shape}")
    m = sp.csr_matrix(m, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m
