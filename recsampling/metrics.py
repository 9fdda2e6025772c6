"""Ranking metrics as pure functions of (top-k ids, test matrix[, propensities]).

Everything here is vectorized over users and computes several cut-offs ``K`` in one pass over a
``(n_users, K_max)`` matrix of ranked item ids (``-1`` pads short lists, as
:func:`recsampling.scoring.topk` returns them). The evaluation driver that scores a model and
assembles a table is :func:`recsampling.evaluation.evaluate`.

Definitions (per user ``u``; ``T_u`` the user's relevant test items, ``n_u = |T_u|``,
``h_r = 1`` when the item at rank ``r`` (1-based) is in ``T_u``, ``D(r) = 1 / log2(r + 1)``)

- ``hitrate@K  = 1{Σ_{r≤K} h_r > 0}``
- ``precision@K = Σ_{r≤K} h_r / K``
- ``recall@K   = Σ_{r≤K} h_r / n_u`` (the denominator is not capped at K)
- ``dcg@K      = Σ_{r≤K} h_r D(r)`` and ``ndcg@K = dcg@K / Σ_{r≤min(n_u, K)} D(r)``
- ``map@K      = Σ_{r≤K} h_r P@r / min(n_u, K)`` with ``P@r`` the precision at ``r``
- ``mrr@K      = 1 / (rank of the first hit)``, 0 without a hit in the top K
- ``auc``: full-ranking AUC, the probability that a relevant item outranks a candidate that is
  neither relevant nor excluded (ties count one half), computed exactly from the whole score
  row by :func:`auc_from_scores`; :func:`pooled_auc` is the AUC of one pool of scored pairs
  (e.g. a diagnostic's scores against the pairs that are truly mislabeled).
- ``coverage@K``: the fraction of the catalogue that appears in at least one top-K list (one
  number for all users); ``avg_popularity@K``: the mean popularity (training interaction count)
  of a user's recommended items.

Unbiased metrics for missing-not-at-random data (Saito, Yaginuma, Nishino, Sakata, Yamada,
"Unbiased Recommender Learning from Missing-Not-At-Random Implicit Feedback", WSDM 2020, Sec. 3;
Yang et al., "Unbiased offline recommender evaluation for missing-not-at-random implicit
feedback", RecSys 2018). A metric is an average over relevant items of a gain ``c(Ẑ_ui)``
(``c = 1{r≤K}`` for Recall, ``1{r≤K} D(r)`` for DCG, ``1{r≤K} P@r`` for MAP). An observed test
positive was observed with probability (propensity) ``θ_ui``; the inverse-propensity estimator
weights each observed relevant item by ``w_ui = 1 / θ_ui``, so that in expectation the sum runs
over all truly relevant items:

- ``ips_<m>@K``   = the formula of ``<m>`` above with each hit's contribution multiplied by
  ``w_ui`` (normalizers unchanged): ``ips_dcg@K = Σ_{i∈T_u} w_ui c(Ẑ_ui)``,
  ``ips_recall@K = Σ w c / n_u``, ``ips_map@K = Σ w c / min(n_u, K)``.
- ``snips_<m>@K`` = the self-normalized version (Swaminathan & Joachims 2015): the weights are
  rescaled to mean one over the user's test items, i.e. ``ips_<m>@K · n_u / Σ_{i∈T_u} w_ui``.
  ``snips_recall@K = Σ w c / Σ w`` is exactly the estimator of Saito et al.'s code;
  for DCG their code divides by ``Σ w`` without the factor ``n_u`` (a different scale).

With all propensities equal, every IPS and SNIPS metric equals its plain counterpart. The precision
``P@r`` inside MAP counts hits unweighted.

Truth-based metrics (synthetic data, where ``rel_ui = P(relevant)`` is known): with ``g_r`` the
true relevance probability of the item at rank ``r`` and the candidates the non-excluded items,

- ``true_dcg@K  = Σ_{r≤K} g_r D(r)``, ``true_ndcg@K = true_dcg@K / IDCG`` where IDCG is the DCG
  of the K most relevant candidates (expected gain of the list over that of the best list);
- ``true_precision@K = Σ_{r≤K} g_r / K`` (expected fraction of relevant items in the list);
- ``true_recall@K = Σ_{r≤K} g_r / Σ_{candidates} rel_ui``: expected relevant items caught over
  the expected number of relevant candidates (uncapped; the best value is below 1 when a user
  has more than K relevant candidates, like recall).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numba
import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "RANKING_METRICS",
    "WEIGHTED_METRICS",
    "TRUTH_METRICS",
    "hit_matrix",
    "ranking_metrics",
    "recall_at_k",
    "precision_at_k",
    "ndcg_at_k",
    "dcg_at_k",
    "map_at_k",
    "mrr_at_k",
    "hitrate_at_k",
    "auc_from_scores",
    "pooled_auc",
    "catalogue_coverage",
    "average_popularity",
    "truth_metrics",
    "TrueRelevance",
    "true_relevance_metrics",
]

RANKING_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hitrate", "dcg")
WEIGHTED_METRICS = ("ips_dcg", "snips_dcg", "ips_recall", "snips_recall", "ips_map", "snips_map")
TRUTH_METRICS = ("true_ndcg", "true_dcg", "true_recall", "true_precision")


# --------------------------------------------------------------------------- inputs
def _check_ids(ids) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 2:
        raise ValueError(f"ids must be a 2-D (n_users, K) array of ranked item indices, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"ids must hold integer item indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_test(test) -> sp.csr_matrix:
    m = getattr(test, "matrix", test)
    if not sp.issparse(m):
        raise ValueError(f"test must be a scipy sparse users x items matrix or Interactions, got {type(test).__name__}")
    m = m.tocsr()
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    return m


def _check_ks(ks, k_max: int | None = None) -> tuple[int, ...]:
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    out = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"every cut-off K must be a positive integer, got {k!r}")
        if k_max is not None and k > k_max:
            raise ValueError(f"cut-off K={k} exceeds the {k_max} ranked items given per user")
        out.append(int(k))
    if not out:
        raise ValueError("ks must name at least one cut-off")
    return tuple(sorted(set(out)))


def _rows_users(users, n_rows: int, n_test_rows: int) -> np.ndarray:
    if users is None:
        if n_rows != n_test_rows:
            raise ValueError(f"ids has {n_rows} rows but test has {n_test_rows}; pass users= to say which "
                             f"test row each ids row belongs to")
        return np.arange(n_rows, dtype=np.int64)
    users = np.asarray(users).astype(np.int64)
    if users.shape != (n_rows,):
        raise ValueError(f"users must have one entry per row of ids ({n_rows}), got shape {users.shape}")
    if users.size and (users.min() < 0 or users.max() >= n_test_rows):
        raise ValueError(f"users must be row indices of test in [0, {n_test_rows})")
    return users


def _ranges(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions into a CSR's data of all entries of ``rows`` (in row order) and their row number."""
    start = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - start
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) + np.repeat(start - offsets, lengths)
    row = np.repeat(np.arange(rows.size, dtype=np.int64), lengths)
    return pos, row


def _pair_weights(propensities, test: sp.csr_matrix) -> np.ndarray:
    """``1 / θ`` per stored test pair from per-pair (len nnz) or per-item (len n_items) propensities."""
    p = np.asarray(propensities, dtype=np.float64)
    if p.ndim != 1 or p.size not in (test.nnz, test.shape[1]):
        raise ValueError(f"propensities must have one value per test interaction ({test.nnz}) or per item "
                         f"({test.shape[1]}), got shape {p.shape}")
    if p.size != test.nnz:  # per item
        p = p[test.indices]
    if p.size and (not np.all(np.isfinite(p)) or p.min() <= 0 or p.max() > 1):
        raise ValueError("propensities must lie in (0, 1]; clip them (e.g. recsampling.propensity) before evaluating")
    return 1.0 / p


# --------------------------------------------------------------------------- hits
def hit_matrix(ids, test, users=None) -> tuple[np.ndarray, np.ndarray]:
    """Which ranked ids are test items, and where those pairs are stored in ``test``.

    Parameters
    ----------
    ids : array of int, shape (n, K)
        Ranked item indices per user; ``-1`` marks padding.
    test : scipy sparse matrix or Interactions, users x items
        The relevant pairs (stored entries).
    users : array of int, shape (n,), optional
        The row of ``test`` of each row of ``ids``; ``arange(n)`` when None.

    Returns
    -------
    hits : numpy.ndarray of bool, shape (n, K)
    position : numpy.ndarray of int64, shape (n, K)
        Index into ``test.data`` (canonical CSR order) of each hit, ``-1`` elsewhere.
    """
    ids = _check_ids(ids)
    test = _check_test(test)
    users = _rows_users(users, ids.shape[0], test.shape[0])
    n_items = test.shape[1]
    pos, row = _ranges(test.indptr, users)
    keys = row * n_items + test.indices[pos].astype(np.int64)  # ascending: rows, then sorted items
    query = np.arange(ids.shape[0], dtype=np.int64)[:, None] * n_items + ids
    where = np.searchsorted(keys, query)
    where_c = np.minimum(where, max(keys.size - 1, 0))
    hits = (ids >= 0) & (ids < n_items) & (where < keys.size)
    if keys.size:
        hits &= keys[where_c] == query
    position = np.where(hits, pos[where_c] if keys.size else -1, -1)
    return hits, position


def _row_counts(test: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    return (test.indptr[users + 1] - test.indptr[users]).astype(np.float64)


def ranking_metrics(
    ids,
    test,
    ks: int | Iterable[int] = (10,),
    *,
    users=None,
    propensities=None,
    metrics: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Per-user ranking metrics at several cut-offs in one pass.

    Parameters
    ----------
    ids : array of int, shape (n, K_max)
        Ranked item indices per user, best first; ``-1`` pads.
    test : scipy sparse matrix or Interactions, users x items
        Relevant test pairs.
    ks : int or iterable of int
        Cut-offs, each ``<= K_max``.
    users : array of int, shape (n,), optional
        Row of ``test`` for each row of ``ids`` (default ``arange(n)``).
    propensities : array, optional
        Observation propensity ``θ`` in (0, 1] per stored test pair (canonical CSR order, i.e.
        ``Interactions.propensities`` of ``test``) or per item; adds the IPS / SNIPS metrics.
    metrics : sequence of str, optional
        Base names to compute (``RANKING_METRICS`` and, with propensities, ``WEIGHTED_METRICS``);
        all of them when None.

    Returns
    -------
    dict
        ``"<metric>@<K>" -> float64 array (n,)``. Users without test items get NaN where the
        metric divides by their number of test items.
    """
    ids = _check_ids(ids)
    test = _check_test(test)
    ks = _check_ks(ks, ids.shape[1])
    users = _rows_users(users, ids.shape[0], test.shape[0])
    available = RANKING_METRICS + (WEIGHTED_METRICS if propensities is not None else ())
    wanted = available if metrics is None else tuple(m for m in metrics if m in available)
    unknown = [m for m in (metrics or ()) if m not in RANKING_METRICS + WEIGHTED_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {RANKING_METRICS + WEIGHTED_METRICS}")
    hits, position = hit_matrix(ids, test, users)
    k_max = max(ks)
    hits = hits[:, :k_max]
    h = hits.astype(np.float64)
    n_rel = _row_counts(test, users)
    disc = 1.0 / np.log2(np.arange(2, k_max + 2, dtype=np.float64))
    cum = np.cumsum(h, axis=1)
    prec_at_r = cum / np.arange(1, k_max + 1)
    first = np.where(hits.any(1), np.argmax(hits, axis=1) + 1.0, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_rel = np.where(n_rel > 0, 1.0 / n_rel, np.nan)
        weighted = any(m in WEIGHTED_METRICS for m in wanted)
        if weighted:
            w_pair = _pair_weights(propensities, test)
            hw = np.where(hits, w_pair[np.maximum(position[:, :k_max], 0)] if w_pair.size else 0.0, 0.0)
            pos, row = _ranges(test.indptr, users)
            w_sum = np.bincount(row, weights=w_pair[pos], minlength=users.size)
            snips_factor = np.where(w_sum > 0, n_rel / w_sum, np.nan)
        out: dict[str, np.ndarray] = {}
        for k in ks:
            hk = h[:, :k]
            n_hit = cum[:, k - 1]
            dcg = hk @ disc[:k]
            cap = np.minimum(n_rel, k)
            inv_cap = np.where(cap > 0, 1.0 / cap, np.nan)
            ap_sum = (hk * prec_at_r[:, :k]).sum(1)
            for m in wanted:
                if m == "hitrate":
                    v = (n_hit > 0).astype(np.float64)
                elif m == "precision":
                    v = n_hit / k
                elif m == "recall":
                    v = n_hit * inv_rel
                elif m == "dcg":
                    v = dcg
                elif m == "ndcg":
                    idcg = np.concatenate([[0.0], np.cumsum(disc[:k])])[cap.astype(np.int64)]
                    v = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
                elif m == "map":
                    v = ap_sum * inv_cap
                elif m == "mrr":
                    v = np.where(first <= k, 1.0 / first, 0.0)
                elif m == "ips_dcg":
                    v = hw[:, :k] @ disc[:k]
                elif m == "snips_dcg":
                    v = (hw[:, :k] @ disc[:k]) * snips_factor
                elif m == "ips_recall":
                    v = hw[:, :k].sum(1) * inv_rel
                elif m == "snips_recall":
                    v = hw[:, :k].sum(1) * inv_rel * snips_factor
                elif m == "ips_map":
                    v = (hw[:, :k] * prec_at_r[:, :k]).sum(1) * inv_cap
                elif m == "snips_map":
                    v = (hw[:, :k] * prec_at_r[:, :k]).sum(1) * inv_cap * snips_factor
                out[f"{m}@{k}"] = v
    return out


def _one(name: str, ids, test, k: int, users=None, propensities=None) -> np.ndarray:
    return ranking_metrics(ids, test, (k,), users=users, propensities=propensities, metrics=(name,))[f"{name}@{k}"]


def recall_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user Recall@K (hits in the top K over the number of test items); see the module docstring."""
    return _one("recall", ids, test, k, users)


def precision_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user Precision@K (hits in the top K over K)."""
    return _one("precision", ids, test, k, users)


def ndcg_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user NDCG@K with binary gains, normalized by the DCG of ``min(n_u, K)`` hits."""
    return _one("ndcg", ids, test, k, users)


def dcg_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user DCG@K with binary gains and discount ``1 / log2(rank + 1)``."""
    return _one("dcg", ids, test, k, users)


def map_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user average precision at K, normalized by ``min(n_u, K)``."""
    return _one("map", ids, test, k, users)


def mrr_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user reciprocal rank of the first hit within the top K (0 without one)."""
    return _one("mrr", ids, test, k, users)


def hitrate_at_k(ids, test, k: int, users=None) -> np.ndarray:
    """Per-user 1 when the top K holds a test item, else 0."""
    return _one("hitrate", ids, test, k, users)


# --------------------------------------------------------------------------- AUC
def pooled_auc(scores, labels) -> float | None:
    """Area under the ROC curve of ``scores`` at telling the ``labels`` True entries from the rest, pooled.

    The Mann-Whitney statistic with average ranks, so a tie between a positive and a negative
    counts one half: ``(Σ ranks of the positives − n₁(n₁ + 1)/2) / (n₁ n₀)``. None when either
    class is empty.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool).ravel()
    n1 = int(labels.sum())
    n0 = labels.size - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64).ravel())
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


@torch.no_grad()
def auc_from_scores(scores, positives) -> np.ndarray:
    """Exact per-row AUC of relevant items against all other candidates, from full score rows.

    Parameters
    ----------
    scores : torch.Tensor or array, shape (n, M)
        Scores of every candidate; ``-inf`` marks a non-candidate (excluded) column.
    positives : torch.Tensor or array of int, shape (n, t)
        Column indices of each row's relevant items, ``-1`` padded. Relevant columns scored
        ``-inf`` are ignored.

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        ``(1 / (P N)) Σ_{i relevant} [#{j negative: s_j < s_i} + ½ #{j negative: s_j = s_i}]``
        with ``N`` the candidates that are not relevant; NaN when ``P`` or ``N`` is 0.

    Notes
    -----
    With ``s`` the relevant scores sorted, every candidate ``j`` adds
    ``#{i: s_i > s_j} + ½ #{i: s_i = s_j}`` (two binary searches in ``s``); summed over all
    candidates this counts the relevant-vs-relevant pairs too, exactly ``P² / 2`` (each
    unordered pair adds 1, each item ½ against itself), which is subtracted. A row costs
    ``O(M log P)`` (a numba kernel on CPU; on CUDA the same counts come from a row sort and
    ``torch.searchsorted``).
    """
    S = torch.as_tensor(scores)
    if S.ndim == 2 and S.device.type == "cpu":
        return _auc_cpu(S.float().numpy(), positives)
    if S.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, M), got shape {tuple(S.shape)}")
    S = S.float()
    P = torch.as_tensor(np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives)
    P = P.to(device=S.device, dtype=torch.long)
    if P.ndim != 2 or P.shape[0] != S.shape[0]:
        raise ValueError(f"positives must be 2-D with one row per score row ({S.shape[0]}), got shape {tuple(P.shape)}")
    if P.numel() and int(P.max()) >= S.shape[1]:
        raise ValueError(f"positives must be column indices < {S.shape[1]}")
    inf = torch.tensor(float("inf"), device=S.device)
    ps = S.gather(1, P.clamp(min=0))
    valid = (P >= 0) & torch.isfinite(ps)
    n_pos = valid.sum(1)
    n_cand = torch.isfinite(S).sum(1)
    n_excl = S.shape[1] - n_cand
    n_neg = n_cand - n_pos
    query = torch.where(valid, ps, torch.zeros_like(ps)).contiguous()
    sorted_all = torch.sort(S, dim=1).values
    lo = torch.searchsorted(sorted_all, query, right=False)
    hi = torch.searchsorted(sorted_all, query, right=True)
    del sorted_all
    sorted_pos = torch.sort(torch.where(valid, ps, inf), dim=1).values.contiguous()
    lo_p = torch.searchsorted(sorted_pos, query, right=False)
    hi_p = torch.searchsorted(sorted_pos, query, right=True)
    less_neg = (lo - n_excl[:, None]) - lo_p
    eq_neg = (hi - lo) - (hi_p - lo_p)
    num = torch.where(valid, less_neg.double() + 0.5 * eq_neg.double(), torch.zeros((), dtype=torch.float64,
                                                                                   device=S.device)).sum(1)
    den = (n_pos * n_neg).double()
    auc = torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))
    return auc.cpu().numpy()


def _auc_cpu(S: np.ndarray, positives) -> np.ndarray:
    P = positives.cpu().numpy() if isinstance(positives, torch.Tensor) else np.asarray(positives)
    P = P.astype(np.int64)
    if P.ndim != 2 or P.shape[0] != S.shape[0]:
        raise ValueError(f"positives must be 2-D with one row per score row ({S.shape[0]}), got shape {P.shape}")
    if P.size and P.max() >= S.shape[1]:
        raise ValueError(f"positives must be column indices < {S.shape[1]}")
    ps = np.take_along_axis(S, np.maximum(P, 0), axis=1) if P.size else np.zeros(P.shape, np.float32)
    valid = (P >= 0) & np.isfinite(ps)
    ps = np.sort(np.where(valid, ps, np.inf), axis=1).astype(np.float32)
    return _auc_kernel(np.ascontiguousarray(S, dtype=np.float32), ps, valid.sum(1).astype(np.int64))


@numba.njit(cache=True, nogil=True)
def _auc_kernel(S, pos_sorted, n_pos):  # pragma: no cover - compiled
    n, m = S.shape
    out = np.empty(n, dtype=np.float64)
    for r in range(n):
        t = n_pos[r]
        ps = pos_sorted[r]
        num = 0.0
        n_cand = 0
        for j in range(m):
            v = S[r, j]
            if v == -np.inf:
                continue
            n_cand += 1
            if t == 0:
                continue
            if v < ps[0]:
                num += t
                continue
            if v > ps[t - 1]:
                continue
            lo, hi = 0, t  # first index with ps >= v
            while lo < hi:
                mid = (lo + hi) >> 1
                if ps[mid] < v:
                    lo = mid + 1
                else:
                    hi = mid
            eq = 0
            while lo + eq < t and ps[lo + eq] == v:
                eq += 1
            num += (t - lo - eq) + 0.5 * eq
        den = t * (n_cand - t)
        out[r] = (num - 0.5 * t * t) / den if den > 0 else np.nan
    return out


# --------------------------------------------------------------------------- beyond accuracy
def catalogue_coverage(ids, n_items: int, k: int) -> float:
    """Fraction of the ``n_items`` catalogue in at least one user's top ``k``."""
    ids = _check_ids(ids)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top = ids[:, :k]
    top = top[(top >= 0) & (top < n_items)]
    return float(np.unique(top).size / n_items)


def average_popularity(ids, popularity, k: int) -> np.ndarray:
    """Per-user mean ``popularity`` of the recommended items in the top ``k`` (padding ignored).

    Parameters
    ----------
    ids : array of int, shape (n, K)
    popularity : array, shape (n_items,)
        E.g. the number of training interactions of each item.
    k : int

    Returns
    -------
    numpy.ndarray of float64, shape (n,); NaN for an empty list.
    """
    ids = _check_ids(ids)[:, :k]
    pop = np.asarray(popularity, dtype=np.float64)
    valid = ids >= 0
    vals = np.where(valid, pop[np.maximum(ids, 0)], 0.0)
    n = valid.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, vals.sum(1) / n, np.nan)


# --------------------------------------------------------------------------- truth
def truth_metrics(ranked_relevance, ideal_relevance, total_relevance, ks) -> dict[str, np.ndarray]:
    """Expected metrics from true relevance probabilities (see the module docstring).

    Parameters
    ----------
    ranked_relevance : array, shape (n, K_max)
        True relevance probability of the item at each rank (0 for padding).
    ideal_relevance : array, shape (n, K_max)
        The ``K_max`` largest relevance probabilities among the candidates, descending (0 pads).
    total_relevance : array, shape (n,)
        Sum of the relevance probabilities of all candidates.
    ks : int or iterable of int

    Returns
    -------
    dict
        ``true_dcg@K``, ``true_ndcg@K``, ``true_recall@K``, ``true_precision@K`` -> arrays (n,).
    """
    g = np.nan_to_num(np.asarray(ranked_relevance, dtype=np.float64), neginf=0.0)
    ideal = np.nan_to_num(np.asarray(ideal_relevance, dtype=np.float64), neginf=0.0)
    total = np.asarray(total_relevance, dtype=np.float64)
    ks = _check_ks(ks, g.shape[1])
    disc = 1.0 / np.log2(np.arange(2, g.shape[1] + 2, dtype=np.float64))
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ks:
            dcg = g[:, :k] @ disc[:k]
            idcg = ideal[:, :k] @ disc[:k]
            out[f"true_ndcg@{k}"] = np.where(idcg > 0, dcg / idcg, np.nan)
            out[f"true_dcg@{k}"] = dcg
            out[f"true_recall@{k}"] = np.where(total > 0, g[:, :k].sum(1) / total, np.nan)
            out[f"true_precision@{k}"] = g[:, :k].sum(1) / k
    return out


class TrueRelevance:
    """The true relevance probabilities of a users × items space, dense or computed on demand.

    Parameters
    ----------
    relevance : array (n_users, n_items), or an object with ``shape`` and ``relevance_of``
        A dense array (e.g. ``SyntheticWorld.relevance``), or a source that computes the truth
        of pairs and blocks of rows on demand, ``relevance_of(users, items=None)`` with the
        semantics of :meth:`recsampling.data.synthetic.SyntheticWorld.relevance_of` (e.g. the
        world itself, for worlds too large for a dense array).
    """

    def __init__(self, relevance):
        self._of = getattr(relevance, "relevance_of", None)
        if self._of is not None:
            self._dense = None
            self.shape = tuple(int(x) for x in relevance.shape)
        else:
            self._dense = np.asarray(relevance)
            if self._dense.ndim != 2:
                raise ValueError("relevance must be a dense (n_users, n_items) array or have relevance_of(users, "
                                 f"items) (a SyntheticWorld), got shape {self._dense.shape}")
            self.shape = self._dense.shape

    @classmethod
    def of(cls, relevance) -> "TrueRelevance":
        """``relevance`` itself when it is a TrueRelevance, else ``TrueRelevance(relevance)``."""
        return relevance if isinstance(relevance, cls) else cls(relevance)

    def rows(self, users: np.ndarray) -> np.ndarray:
        """float32 (len(users), n_items), a fresh array."""
        if self._dense is None:
            return np.asarray(self._of(users), dtype=np.float32)
        return self._dense[users].astype(np.float32)

    def pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The relevance of ``(users, items)`` broadcast together, float64."""
        if self._dense is None:
            return np.asarray(self._of(users, items), dtype=np.float64)
        return np.asarray(self._dense[users, items], dtype=np.float64)


def true_relevance_metrics(ids, relevance, ks, *, exclude=None, users=None, rows_per_chunk: int = 2048
                           ) -> dict[str, np.ndarray]:
    """Truth-based metrics of full-catalogue rankings (candidates: all items not in ``exclude``).

    Parameters
    ----------
    ids : array of int, shape (n, K_max)
        Ranked item ids, ``-1`` pads.
    relevance : array (n_users, n_items), SyntheticWorld or TrueRelevance
        True relevance probabilities: dense (e.g. ``SyntheticWorld.relevance``) or computed per
        chunk of users from a source with ``relevance_of`` (see :class:`TrueRelevance`), so
        that no dense users × items array is built.
    ks : int or iterable of int
    exclude : scipy sparse matrix or Interactions, shape (n_users, n_items), optional
        Items that are not candidates (training items).
    users : array of int, shape (n,), optional
        Row of ``relevance`` for each row of ``ids``.
    rows_per_chunk : int
        Users processed at once (bounds the memory of the ideal-list computation).

    Returns
    -------
    dict as :func:`truth_metrics`.
    """
    ids = _check_ids(ids)
    rel = TrueRelevance.of(relevance)
    users = _rows_users(users, ids.shape[0], rel.shape[0])
    excl = None if exclude is None else _check_test(exclude)
    if excl is not None and excl.shape != rel.shape:
        raise ValueError(f"exclude must have the shape of relevance {rel.shape}, got {excl.shape}")
    n, k_max = ids.shape
    n_items = rel.shape[1]
    ranked = np.zeros((n, k_max))
    ideal = np.zeros((n, k_max))
    total = np.zeros(n)
    kk = min(k_max, n_items)
    for s in range(0, n, rows_per_chunk):
        e = min(s + rows_per_chunk, n)
        block = rel.rows(users[s:e])  # a copy
        if excl is not None:
            pos, row = _ranges(excl.indptr, users[s:e])
            block[row, excl.indices[pos]] = -np.inf
        cand = np.isfinite(block)
        total[s:e] = np.where(cand, block, 0.0).sum(1, dtype=np.float64)
        top = torch.topk(torch.from_numpy(block), kk, dim=1).values.numpy()
        ideal[s:e, :kk] = np.where(np.isfinite(top), top, 0.0)
        idb = ids[s:e]
        g = np.take_along_axis(block, np.clip(idb, 0, n_items - 1), axis=1)
        ranked[s:e] = np.where((idb >= 0) & np.isfinite(g), g, 0.0)
    return truth_metrics(ranked, ideal, total, ks)
