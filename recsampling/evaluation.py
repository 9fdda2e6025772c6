"""Evaluate a model (or any pair of embedding tables) on a test set: one driver, two protocols.

- ``protocol="full"`` (full ranking): every item the user has not interacted with in ``train``
  is a candidate; the top ``max(ks)`` come from :func:`recsampling.scoring.topk` (the same code
  as ``recommend``), and the metrics of :mod:`recsampling.metrics` are computed from them. Test
  pairs that are also training pairs cannot be ranked and are dropped (with a logged warning).
- ``protocol="test_items"`` (the randomized-test protocol of Saito et al., WSDM 2020, for Coat,
  Yahoo! R3 and the synthetic world's unbiased test set): each user ranks only their own given
  test items (``test_items``), and the relevant ones are the pairs of ``test``. Training items
  are not excluded (the randomized items were drawn independently of training).

Users without a relevant test item are skipped and counted (``n_users_skipped``). Ties are
broken towards the lower item index in both protocols. Sampled-negative evaluation (ranking the
test items against a few sampled items) is deliberately not offered: it is biased and its numbers
are not comparable across samplers (Krichene & Rendle, KDD 2020).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsampling import metrics as M
from recsampling.scoring import iter_score_chunks, rank_candidates, topk, topk_of_scores

__all__ = ["evaluate", "check_cutoffs", "EvalResult", "ALL_METRICS"]

logger = logging.getLogger(__name__)

ALL_METRICS = M.RANKING_METRICS + ("auc", "coverage", "avg_popularity") + M.WEIGHTED_METRICS + M.TRUTH_METRICS
_DEFAULT = ("ndcg", "dcg", "recall", "precision", "map", "mrr", "hitrate", "auc", "coverage", "avg_popularity")


@dataclass
class EvalResult:
    """Metrics of one evaluation.

    Attributes
    ----------
    per_user : pandas.DataFrame
        One row per evaluated user (index ``user``: the user index), one column per per-user
        metric (``"ndcg@10"``, ``"auc"``, ...).
    summary : pandas.DataFrame
        Columns ``metric``, ``mean``, ``sem`` (standard error of the mean over users; NaN for the
        catalogue-level ``coverage@K``).
    n_users : int
        Users evaluated.
    n_users_skipped : int
        Requested users skipped for lack of a relevant test item.
    info : dict
        ``protocol``, ``ks``, ``n_test_pairs_dropped`` (test pairs also in train), ...
    """

    per_user: pd.DataFrame
    summary: pd.DataFrame
    n_users: int
    n_users_skipped: int
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Flat ``{"ndcg@10": mean, "ndcg@10_sem": sem, ..., "n_users": .., "n_users_skipped": ..}``."""
        out: dict = {}
        for row in self.summary.itertuples(index=False):
            out[row.metric] = float(row.mean)
            if not np.isnan(row.sem):
                out[f"{row.metric}_sem"] = float(row.sem)
        out["n_users"] = int(self.n_users)
        out["n_users_skipped"] = int(self.n_users_skipped)
        return out

    def __getitem__(self, metric: str) -> float:
        return self.to_dict()[metric]

    def __repr__(self) -> str:
        body = ", ".join(f"{r.metric}={r.mean:.4f}" for r in self.summary.itertuples(index=False))
        return f"<EvalResult {self.info.get('protocol', '')}: {self.n_users} users ({self.n_users_skipped} skipped); {body}>"


# --------------------------------------------------------------------------- inputs
def _tables(model_or_tables):
    if hasattr(model_or_tables, "embedding_tables"):
        U, V = model_or_tables.embedding_tables()
    elif isinstance(model_or_tables, (tuple, list)) and len(model_or_tables) == 2:
        U, V = model_or_tables
    else:
        raise ValueError("model_or_tables must have embedding_tables() -> (U, V) or be a (user_vectors, "
                         f"item_vectors) pair, got {type(model_or_tables).__name__}")
    return U, V


def _csr(x, name: str) -> sp.csr_matrix:
    m = getattr(x, "matrix", x)
    if not sp.issparse(m):
        raise ValueError(f"{name} must be an Interactions or a scipy sparse users x items matrix, got {type(x).__name__}")
    m = sp.csr_matrix(m, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    return m


def _metric_names(metrics, propensities, relevance) -> tuple[str, ...]:
    if metrics is None:
        names = list(_DEFAULT)
        if propensities is not None:
            names += list(M.WEIGHTED_METRICS)
        if relevance is not None:
            names += list(M.TRUTH_METRICS)
        return tuple(names)
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = tuple(str(m).lower() for m in metrics)
    bad = [m for m in names if m not in ALL_METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; expected some of {ALL_METRICS}")
    if propensities is None and any(m in M.WEIGHTED_METRICS for m in names):
        raise ValueError("IPS/SNIPS metrics need propensities=")
    if relevance is None and any(m in M.TRUTH_METRICS for m in names):
        raise ValueError("true_* metrics need relevance= (the true relevance probabilities)")
    return names


def _drop_pairs(test: sp.csr_matrix, drop: sp.csr_matrix, prop_pairs):
    """``test`` without the pairs stored in ``drop``; per-pair propensities filtered alike."""
    n_items = test.shape[1]
    rows = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr))
    keys = rows * n_items + test.indices
    drows = np.repeat(np.arange(drop.shape[0], dtype=np.int64), np.diff(drop.indptr))
    dkeys = drows * n_items + drop.indices  # ascending: canonical CSR
    if not drop.has_sorted_indices:
        dkeys = np.sort(dkeys)
    if dkeys.size:
        where = np.minimum(np.searchsorted(dkeys, keys), dkeys.size - 1)
        keep = dkeys[where] != keys
    else:
        keep = np.ones(keys.size, dtype=bool)
    n_drop = int((~keep).sum())
    if n_drop == 0:
        return test, prop_pairs, 0
    out = sp.csr_matrix((test.data[keep], test.indices[keep], np.concatenate([[0], np.cumsum(
        np.bincount(rows[keep], minlength=test.shape[0]))])), shape=test.shape)
    if prop_pairs is not None:
        prop_pairs = prop_pairs[keep]
    return out, prop_pairs, n_drop


def _pair_propensities(propensities, test: sp.csr_matrix):
    """Per-pair array (aligned with canonical ``test``) from a per-pair or per-item array."""
    if propensities is None:
        return None
    p = np.asarray(propensities, dtype=np.float64)
    if p.ndim != 1 or p.size not in (test.nnz, test.shape[1]):
        raise ValueError(f"propensities must have one value per test interaction ({test.nnz}) or per item "
                         f"({test.shape[1]}), got shape {p.shape}")
    return p if p.size == test.nnz else p[test.indices]


def _select_users(users, n_users: int, has_test: np.ndarray) -> tuple[np.ndarray, int]:
    if users is None:
        req = np.arange(n_users, dtype=np.int64)
    else:
        req = np.unique(np.asarray(users).astype(np.int64))
        if req.size and (req.min() < 0 or req.max() >= n_users):
            raise ValueError(f"users must be indices in [0, {n_users})")
    keep = req[has_test[req]]
    return keep, int(req.size - keep.size)


def _candidates(test_items, n_users: int, n_items: int) -> np.ndarray:
    """(n_users, L) int64 candidate items per user, sorted ascending, ``-1`` padded at the end."""
    if test_items is None:
        raise ValueError("protocol='test_items' needs test_items=: a (n_users, n) array of each user's randomized "
                         "test items (e.g. SyntheticWorld.unbiased_test_items) or the Interactions / sparse matrix "
                         "of all rated test pairs (e.g. MNARData.test before to_implicit)")
    if sp.issparse(test_items) or hasattr(test_items, "matrix"):
        m = _csr(test_items, "test_items")
        if m.shape != (n_users, n_items):
            raise ValueError(f"test_items must have shape {(n_users, n_items)}, got {m.shape}")
        counts = np.diff(m.indptr)
        L = int(counts.max()) if counts.size else 0
        out = np.full((n_users, max(L, 1)), -1, dtype=np.int64)
        rows = np.repeat(np.arange(n_users), counts)
        cols = np.arange(m.nnz) - np.repeat(m.indptr[:-1], counts)
        out[rows, cols] = m.indices
        return out
    arr = np.asarray(test_items)
    if arr.ndim != 2 or arr.shape[0] != n_users or arr.dtype.kind not in "iu":
        raise ValueError(f"test_items must be an integer array of shape (n_users={n_users}, n), got "
                         f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and arr.max() >= n_items:
        raise ValueError(f"test_items must be item indices < {n_items} (or -1 for padding)")
    key = np.where(arr >= 0, arr, np.iinfo(np.int64).max)
    key = np.sort(key, axis=1)
    return np.where(key == np.iinfo(np.int64).max, -1, key)


# --------------------------------------------------------------------------- driver
def check_cutoffs(ks, n_items: int) -> tuple[int, ...]:
    """The cut-offs ``ks`` (an int or several), sorted and distinct, each from 1 to ``n_items``.

    Raises
    ------
    ValueError
        for a cut-off that is not a positive integer or exceeds the catalogue (more than every
        item ranks nothing more, and a huge one would exhaust memory in the top-k).
    """
    ks = M._check_ks(ks)
    if max(ks) > n_items:
        raise ValueError(f"cut-off k={max(ks)} is more than the {n_items} items; expected cut-offs up to {n_items}")
    return ks


def evaluate(
    model_or_tables,
    test,
    *,
    train=None,
    ks: int | Iterable[int] = (10,),
    metrics: Sequence[str] | None = None,
    protocol: str = "full",
    test_items=None,
    propensities=None,
    relevance=None,
    users=None,
    device: str = "auto",
    memory_budget_mb: float = 256,
    progress: bool = False,
) -> EvalResult:
    """Score a model and compute ranking metrics per user, with means and standard errors.

    Parameters
    ----------
    model_or_tables : model or (U, V)
        Anything with ``embedding_tables() -> (U, V)`` (every recsampling model), or a pair of
        user / item tables (numpy or torch), e.g. ``(als.user_factors, als.item_factors)``.
    test : Interactions or scipy sparse users x items
        Relevant test pairs.
    train : Interactions or scipy sparse, optional
        Training pairs: excluded from the ranking in the full protocol; item popularity for
        ``avg_popularity``.
    ks : int or iterable of int
        Cut-offs, all computed in one pass.
    metrics : sequence of str, optional
        Base names among ``ALL_METRICS``. Default: ndcg, recall, precision, map, mrr, hitrate,
        auc, coverage, avg_popularity, plus the IPS/SNIPS metrics with ``propensities`` and the
        ``true_*`` metrics with ``relevance``.
    protocol : {"full", "test_items"}
        Full ranking over all non-training items, or ranking of each user's ``test_items`` only.
    test_items : array (n_users, n) or Interactions / sparse, optional
        The candidates of ``protocol="test_items"`` (``-1`` pads an array).
    propensities : array, optional
        Observation propensity in (0, 1] of each stored test pair (canonical CSR order, e.g.
        ``test.propensities``) or of each item: adds ``ips_*`` / ``snips_*`` DCG, Recall, MAP.
    relevance : array (n_users, n_items), SyntheticWorld or metrics.TrueRelevance, optional
        True relevance probabilities (synthetic world): adds ``true_*`` metrics. A world (or
        anything with ``shape`` and ``relevance_of``) gives the truth per chunk of users from
        its factors, without a dense users × items array.
    users : array of int, optional
        Users to evaluate (default all); those without a relevant test item are skipped.
    device : str
        Scoring device (``"auto"``: CUDA when present).
    memory_budget_mb : float
        Memory for one chunk of scores (see :func:`recsampling.scoring.topk`).
    progress : bool
        Show progress bars.

    Returns
    -------
    EvalResult
    """
    if protocol not in ("full", "test_items"):
        raise ValueError(f"protocol must be 'full' or 'test_items', got {protocol!r}")
    U, V = _tables(model_or_tables)
    n_users, n_items = int(U.shape[0]), int(V.shape[0])
    ks = check_cutoffs(ks, n_items)
    k_max = max(ks)
    test_m = _csr(test, "test")
    if test_m.shape != (n_users, n_items):
        raise ValueError(f"test must have shape (n_users, n_items) = {(n_users, n_items)} of the tables, "
                         f"got {test_m.shape}")
    train_m = None if train is None else _csr(train, "train")
    if train_m is not None and train_m.shape != test_m.shape:
        raise ValueError(f"train must have the shape of test {test_m.shape}, got {train_m.shape}")
    names = _metric_names(metrics, propensities, relevance)
    if relevance is not None:
        relevance = M.TrueRelevance.of(relevance)
        if relevance.shape != (n_users, n_items):
            raise ValueError(f"relevance must have shape {(n_users, n_items)}, got {relevance.shape}")
    prop = _pair_propensities(propensities, test_m)
    info: dict = {"protocol": protocol, "ks": list(ks), "n_test_pairs_dropped": 0}

    if protocol == "full":
        if train_m is not None:
            test_m, prop, n_drop = _drop_pairs(test_m, train_m, prop)
            info["n_test_pairs_dropped"] = n_drop
            if n_drop:
                logger.warning("%d test pairs are also training pairs; they cannot be ranked and were dropped", n_drop)
        eval_users, skipped = _select_users(users, n_users, np.diff(test_m.indptr) > 0)
        cols, extra = _full_protocol(U, V, test_m, train_m, eval_users, k_max, names, device, memory_budget_mb,
                                     progress)
        ids, rel_test, rows = cols, test_m, eval_users
    else:
        cand = _candidates(test_items, n_users, n_items)
        # relevant = test pairs among the candidates
        cand_m = sp.csr_matrix((np.ones(int((cand >= 0).sum()), np.float32), cand[cand >= 0],
                                np.concatenate([[0], np.cumsum((cand >= 0).sum(1))])), shape=(n_users, n_items))
        not_cand = test_m - test_m.multiply(cand_m)
        not_cand.eliminate_zeros()
        test_m, prop, n_drop = _drop_pairs(test_m, not_cand.tocsr(), prop)
        info["n_test_pairs_outside_candidates"] = n_drop
        eval_users, skipped = _select_users(users, n_users, np.diff(test_m.indptr) > 0)
        ids, extra = _test_items_protocol(U, V, test_m, cand, eval_users, ks, names, relevance, device,
                                          memory_budget_mb)
        rel_test, rows = test_m, eval_users

    per_user: dict[str, np.ndarray] = {}
    rank_names = [m for m in names if m in M.RANKING_METRICS + M.WEIGHTED_METRICS]
    if rank_names:
        per_user.update(M.ranking_metrics(ids, rel_test, ks, users=rows, propensities=prop, metrics=rank_names))
    if "auc" in names:
        per_user["auc"] = extra["auc"]
    globals_: dict[str, float] = {}
    if protocol == "full":
        if "avg_popularity" in names:
            pop_src = train_m if train_m is not None else test_m
            pop = np.bincount(pop_src.indices, minlength=n_items).astype(np.float64)
            for k in ks:
                per_user[f"avg_popularity@{k}"] = M.average_popularity(ids, pop, k)
        if "coverage" in names:
            for k in ks:
                globals_[f"coverage@{k}"] = M.catalogue_coverage(ids, n_items, k)
        if any(m in M.TRUTH_METRICS for m in names):
            truth = M.true_relevance_metrics(ids, relevance, ks, exclude=train_m, users=rows)
            per_user.update({k: v for k, v in truth.items() if k.split("@")[0] in names})
    else:
        if "truth" in extra:
            per_user.update({k: v for k, v in extra["truth"].items() if k.split("@")[0] in names})

    order = [c for m in names for c in per_user if c == m or c.startswith(m + "@")]
    per_user_df = pd.DataFrame({c: per_user[c] for c in order}, index=pd.Index(rows, name="user"))
    summary = pd.DataFrame({
        "metric": list(per_user_df.columns) + list(globals_),
        "mean": [float(per_user_df[c].mean()) for c in per_user_df.columns] + list(globals_.values()),
        "sem": [float(per_user_df[c].sem()) if per_user_df[c].count() > 1 else float("nan")
                for c in per_user_df.columns] + [float("nan")] * len(globals_),
    })
    return EvalResult(per_user=per_user_df, summary=summary, n_users=int(rows.size), n_users_skipped=skipped,
                      info=info)


def _full_protocol(U, V, test_m, train_m, eval_users, k_max, names, device, budget, progress):
    extra: dict = {}
    if "auc" not in names:
        ids, _ = topk(U, V, k_max, exclude=train_m, users=eval_users, device=device, memory_budget_mb=budget,
                      progress=progress)
        return ids, extra
    # one pass: the same masked score chunks give the top-k and the exact AUC; the AUC's row sort
    # needs about 12 more bytes per cell, hence a third of the budget for the chunk
    users = eval_users
    n = users.size
    ids = np.full((n, k_max), -1, dtype=np.int64)
    auc = np.full(n, np.nan)
    for start, stop, chunk in iter_score_chunks(U, V, train_m, users, device, budget / 3, progress):
        ids[start:stop] = topk_of_scores(chunk, k_max)[0]
        pos, row = M._ranges(test_m.indptr, users[start:stop])
        counts = np.bincount(row, minlength=stop - start)
        width = max(int(counts.max()) if counts.size else 0, 1)
        P = np.full((stop - start, width), -1, dtype=np.int64)
        P[row, np.arange(pos.size) - np.repeat(np.cumsum(counts) - counts, counts)] = test_m.indices[pos]
        auc[start:stop] = M.auc_from_scores(chunk, torch.from_numpy(P).to(chunk.device))
    extra["auc"] = auc
    return ids, extra


def _test_items_protocol(U, V, test_m, cand, eval_users, ks, names, relevance, device, budget):
    k_max = max(ks)
    n, L = eval_users.size, cand.shape[1]
    ranked, scores = rank_candidates(U, V, cand, users=eval_users, device=device, memory_budget_mb=budget)
    width = max(k_max, L)
    ids = np.full((n, width), -1, dtype=np.int64)
    ids[:, :L] = ranked
    extra: dict = {"auc": np.full(n, np.nan)}
    if "auc" in names and n:
        P = np.where(_is_pair(test_m, eval_users, ranked), np.arange(L)[None, :], -1)
        extra["auc"] = M.auc_from_scores(torch.from_numpy(scores), torch.from_numpy(P))
    if any(m in M.TRUTH_METRICS for m in names):
        u = eval_users[:, None]

        def rel_of(items):
            return np.where(items >= 0, relevance.pairs(u, np.maximum(items, 0)), 0.0)

        rel = rel_of(cand[eval_users])  # in candidate order, as the ideal ranking and the total need it
        ranked_rel, ideal_rel = np.zeros((n, width)), np.zeros((n, width))
        ranked_rel[:, :L] = rel_of(ranked)
        ideal_rel[:, :L] = -np.sort(-rel, axis=1)
        extra["truth"] = M.truth_metrics(ranked_rel, ideal_rel, rel.sum(1), ks)
    return ids[:, : max(k_max, 1)], extra


def _is_pair(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Boolean (len(rows), L): whether (rows[r], cols[r, j]) is stored in ``m`` (cols may be -1)."""
    n_items = m.shape[1]
    pos, row = M._ranges(m.indptr, rows)
    keys = row * n_items + m.indices[pos].astype(np.int64)
    q = np.arange(rows.size, dtype=np.int64)[:, None] * n_items + cols
    w = np.searchsorted(keys, q)
    ok = (cols >= 0) & (w < keys.size)
    if keys.size:
        ok &= keys[np.minimum(w, keys.size - 1)] == q
    return ok
