"""Metrics on hand-computed cases and against brute-force references; the evaluation driver."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsampling import metrics as M
from recsampling.evaluation import EvalResult, evaluate
from recsampling.scoring import topk

LOG2 = np.log2


def csr(rows, n_items):
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for u, items in enumerate(rows):
        dense[u, list(items)] = 1
    return sp.csr_matrix(dense)


# --------------------------------------------------------------------------- hand cases
def test_hand_computed_ranking_metrics():
    ids = np.array([[3, 1, 4, 2], [0, 1, -1, -1]])
    test = csr([{1, 2}, {4}], 5)
    out = M.ranking_metrics(ids, test, ks=(1, 2, 4))
    # user 0: hits at ranks 2 and 4; user 1: no hit
    assert out["hitrate@1"].tolist() == [0, 0] and out["hitrate@2"].tolist() == [1, 0]
    np.testing.assert_allclose(out["precision@2"], [0.5, 0])
    np.testing.assert_allclose(out["precision@4"], [0.5, 0])
    np.testing.assert_allclose(out["recall@2"], [0.5, 0])
    np.testing.assert_allclose(out["recall@4"], [1.0, 0])
    np.testing.assert_allclose(out["dcg@4"], [1 / LOG2(3) + 1 / LOG2(5), 0])
    np.testing.assert_allclose(out["ndcg@4"], [(1 / LOG2(3) + 1 / LOG2(5)) / (1 + 1 / LOG2(3)), 0])
    np.testing.assert_allclose(out["ndcg@1"], [0, 0])
    np.testing.assert_allclose(out["map@4"], [(1 / 2 + 2 / 4) / 2, 0])
    np.testing.assert_allclose(out["map@2"], [(1 / 2) / 2, 0])
    np.testing.assert_allclose(out["mrr@4"], [0.5, 0])
    np.testing.assert_allclose(out["mrr@1"], [0, 0])


def test_single_metric_helpers_match_ranking_metrics(rng):
    ids = np.array([[2, 0, 1]])
    test = csr([{0}], 3)
    assert M.recall_at_k(ids, test, 2)[0] == 1.0
    assert M.precision_at_k(ids, test, 2)[0] == 0.5
    assert M.ndcg_at_k(ids, test, 2)[0] == pytest.approx(1 / LOG2(3))
    assert M.dcg_at_k(ids, test, 3)[0] == pytest.approx(1 / LOG2(3))
    assert M.map_at_k(ids, test, 3)[0] == pytest.approx(0.5)
    assert M.mrr_at_k(ids, test, 3)[0] == pytest.approx(0.5)
    assert M.hitrate_at_k(ids, test, 1)[0] == 0.0


def test_ips_and_snips_hand_case():
    ids = np.array([[0, 1, 2]])
    test = csr([{0, 2}], 3)
    theta = np.array([0.5, 0.25])  # per test pair, CSR order: item 0 then item 2
    out = M.ranking_metrics(ids, test, ks=(3,), propensities=theta, metrics=["ips_dcg", "snips_dcg", "ips_recall",
                                                                             "snips_recall", "ips_map", "snips_map"])
    w = np.array([2.0, 4.0])
    ips_dcg = w[0] * 1 + w[1] / LOG2(4)
    assert out["ips_dcg@3"][0] == pytest.approx(ips_dcg)
    assert out["snips_dcg@3"][0] == pytest.approx(ips_dcg * 2 / w.sum())
    assert out["ips_recall@3"][0] == pytest.approx(w.sum() / 2)
    assert out["snips_recall@3"][0] == pytest.approx(1.0)
    ap = (w[0] * 1 + w[1] * 2 / 3) / 2
    assert out["ips_map@3"][0] == pytest.approx(ap)
    assert out["snips_map@3"][0] == pytest.approx(ap * 2 / w.sum())


def test_equal_propensities_reduce_to_plain_metrics(rng):
    ids = rng.permuted(np.tile(np.arange(20), (15, 1)), axis=1)[:, :8]
    test = sp.random(15, 20, density=0.3, format="csr", random_state=rng)
    out = M.ranking_metrics(ids, test, ks=(3, 8), propensities=np.full(20, 0.2))
    for k in (3, 8):
        np.testing.assert_allclose(out[f"snips_recall@{k}"], out[f"recall@{k}"], equal_nan=True)
        np.testing.assert_allclose(out[f"snips_dcg@{k}"], out[f"dcg@{k}"], equal_nan=True)
        np.testing.assert_allclose(out[f"ips_recall@{k}"], 5 * out[f"recall@{k}"], equal_nan=True)
        np.testing.assert_allclose(out[f"snips_map@{k}"], out[f"map@{k}"], equal_nan=True)


def test_bad_propensities_raise():
    with pytest.raises(ValueError, match="propensities must lie"):
        M.ranking_metrics(np.array([[0]]), csr([{0}], 2), ks=1, propensities=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="one value per test interaction"):
        M.ranking_metrics(np.array([[0]]), csr([{0}], 2), ks=1, propensities=np.ones(5))


def test_k_larger_than_list_raises():
    with pytest.raises(ValueError, match="exceeds"):
        M.ranking_metrics(np.array([[0, 1]]), csr([{0}], 2), ks=(3,))


# --------------------------------------------------------------------------- brute force
def brute_force(ids, test_dense, k):
    out = {m: [] for m in ("recall", "precision", "ndcg", "map", "mrr", "hitrate", "dcg")}
    for row, rel in zip(ids, test_dense):
        relset = set(np.flatnonzero(rel))
        top = [i for i in row[:k]]
        hits = [1.0 if i in relset else 0.0 for i in top]
        n = len(relset)
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(n, k)))
        ap, seen = 0.0, 0
        for r, h in enumerate(hits):
            if h:
                seen += 1
                ap += seen / (r + 1)
        first = next((r + 1 for r, h in enumerate(hits) if h), None)
        out["recall"].append(sum(hits) / n)
        out["precision"].append(sum(hits) / k)
        out["ndcg"].append(dcg / idcg)
        out["dcg"].append(dcg)
        out["map"].append(ap / min(n, k))
        out["mrr"].append(0.0 if first is None else 1 / first)
        out["hitrate"].append(float(sum(hits) > 0))
    return {m: np.array(v) for m, v in out.items()}


def test_ranking_metrics_match_brute_force(rng):
    n_users, n_items = 40, 30
    U = rng.standard_normal((n_users, 4)).astype(np.float32)
    V = rng.standard_normal((n_items, 4)).astype(np.float32)
    train = sp.random(n_users, n_items, density=0.3, format="csr", random_state=rng)
    test = sp.random(n_users, n_items, density=0.15, format="csr", random_state=rng)
    test = test - test.multiply(train != 0)
    test.eliminate_zeros()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ids, _ = topk(U, V, 12, exclude=train, users=users, device="cpu")
    out = M.ranking_metrics(ids, test, ks=(1, 5, 12), users=users)
    for k in (1, 5, 12):
        ref = brute_force(ids, test.toarray()[users], k)
        for m, v in ref.items():
            np.testing.assert_allclose(out[f"{m}@{k}"], v, rtol=1e-12, err_msg=f"{m}@{k}")


def brute_auc(S, pos_sets):
    out = []
    for row, pos in zip(S, pos_sets):
        cand = np.flatnonzero(np.isfinite(row))
        P = [i for i in cand if i in pos]
        N = [j for j in cand if j not in pos]
        if not P or not N:
            out.append(np.nan)
            continue
        tot = sum((row[i] > row[j]) + 0.5 * (row[i] == row[j]) for i in P for j in N)
        out.append(tot / (len(P) * len(N)))
    return np.array(out)


def test_auc_matches_pairwise_brute_force_with_ties_and_exclusion(rng):
    S = rng.integers(0, 4, size=(25, 18)).astype(np.float32)  # many ties
    S[rng.random(S.shape) < 0.2] = -np.inf                     # excluded
    pos_sets = [set(rng.choice(18, size=rng.integers(0, 6), replace=False).tolist()) for _ in range(25)]
    width = max(len(p) for p in pos_sets)
    P = np.full((25, width), -1)
    for r, p in enumerate(pos_sets):
        P[r, : len(p)] = sorted(p)
    got = M.auc_from_scores(torch.from_numpy(S), P)
    ref = brute_auc(S, [{i for i in p if np.isfinite(S[r, i])} for r, p in enumerate(pos_sets)])
    np.testing.assert_allclose(got, ref, equal_nan=True)


def test_auc_hand_case():
    S = np.array([[3.0, 2.0, 1.0, 2.0]])
    # relevant item 1 (score 2): beats item 2, ties item 3, loses to item 0 -> (1 + 0.5) / 3
    assert M.auc_from_scores(S, np.array([[1]]))[0] == pytest.approx(0.5)
    assert M.auc_from_scores(S, np.array([[0]]))[0] == pytest.approx(1.0)


def test_coverage_and_popularity():
    ids = np.array([[0, 1, -1], [1, 2, 3]])
    assert M.catalogue_coverage(ids, 10, 2) == pytest.approx(0.3)
    assert M.catalogue_coverage(ids, 10, 3) == pytest.approx(0.4)
    np.testing.assert_allclose(M.average_popularity(ids, np.arange(10.0), 3), [0.5, 2.0])


def test_truth_metrics_hand_case():
    rel = np.array([[0.9, 0.1, 0.5, 0.3]])
    exclude = csr([{0}], 4)                            # item 0 is a training item
    ids = np.array([[3, 2]])
    out = M.true_relevance_metrics(ids, rel, (1, 2), exclude=exclude)
    assert out["true_dcg@2"][0] == pytest.approx(0.3 + 0.5 / LOG2(3))
    assert out["true_ndcg@2"][0] == pytest.approx((0.3 + 0.5 / LOG2(3)) / (0.5 + 0.3 / LOG2(3)))
    assert out["true_ndcg@1"][0] == pytest.approx(0.3 / 0.5)
    assert out["true_recall@2"][0] == pytest.approx(0.8 / 0.9)
    assert out["true_precision@2"][0] == pytest.approx(0.4)


# --------------------------------------------------------------------------- evaluate
class Tables:
    def __init__(self, U, V):
        self.U, self.V = U, V

    def embedding_tables(self):
        return self.U, self.V


@pytest.fixture
def case(rng):
    n_users, n_items = 30, 25
    U = rng.standard_normal((n_users, 4)).astype(np.float32)
    V = rng.standard_normal((n_items, 4)).astype(np.float32)
    train = sp.random(n_users, n_items, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    test = sp.random(n_users, n_items, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    test = (test - test.multiply(train != 0)).tocsr()
    test.eliminate_zeros()
    keep = np.ones(n_users, dtype=np.float32)
    keep[:5] = 0                                      # users 0..4 have no test item
    test = (sp.diags(keep) @ test).tocsr()
    test.eliminate_zeros()
    return U, V, train, test


def test_evaluate_skips_and_counts_users_without_test_items(case):
    U, V, train, test = case
    res = evaluate((U, V), test, train=train, ks=(5,), device="cpu")
    has = np.diff(test.indptr) > 0
    assert isinstance(res, EvalResult)
    assert res.n_users == has.sum() and res.n_users_skipped == (~has).sum() >= 5
    assert list(res.per_user.index) == list(np.flatnonzero(has))
    d = res.to_dict()
    assert d["n_users"] == res.n_users and d["n_users_skipped"] == res.n_users_skipped
    for key in ("ndcg@5", "ndcg@5_sem", "recall@5", "precision@5", "map@5", "mrr@5", "hitrate@5", "auc",
                "coverage@5", "avg_popularity@5"):
        assert key in d
    assert d["ndcg@5"] == pytest.approx(res.per_user["ndcg@5"].mean())
    assert d["ndcg@5_sem"] == pytest.approx(res.per_user["ndcg@5"].sem())
    assert set(res.summary.columns) == {"metric", "mean", "sem"}


def test_evaluate_excludes_training_items_and_matches_metrics(case):
    U, V, train, test = case
    res = evaluate(Tables(U, V), test, train=train, ks=(3, 10), device="cpu")
    users = res.per_user.index.to_numpy()
    ids, _ = topk(U, V, 10, exclude=train, users=users, device="cpu")
    ref = M.ranking_metrics(ids, test, (3, 10), users=users)
    for key, v in ref.items():
        np.testing.assert_allclose(res.per_user[key].to_numpy(), v, err_msg=key)
    # the exact AUC over non-training items, by brute force
    S = U[users] @ V.T
    S[train.toarray()[users] != 0] = -np.inf
    ref_auc = brute_auc(S, [set(np.flatnonzero(r)) for r in test.toarray()[users]])
    np.testing.assert_allclose(res.per_user["auc"].to_numpy(), ref_auc, rtol=1e-9)
    # a chunked run (tiny memory budget) gives the same numbers
    small = evaluate((U, V), test, train=train, ks=(3, 10), device="cpu", memory_budget_mb=0.001)
    pd.testing.assert_frame_equal(res.per_user, small.per_user)


def test_evaluate_drops_test_pairs_seen_in_training(case, caplog):
    U, V, train, test = case
    overlap = (test + train).tocsr()
    with caplog.at_level(logging.WARNING):
        res = evaluate((U, V), overlap, train=train, ks=(5,), metrics=["recall"], device="cpu")
    assert res.info["n_test_pairs_dropped"] == train.nnz
    ref = evaluate((U, V), test, train=train, ks=(5,), metrics=["recall"], device="cpu")
    assert res.to_dict()["recall@5"] == pytest.approx(ref.to_dict()["recall@5"])


def test_evaluate_test_items_protocol_hand_case():
    # one factor: score = item value; user 0 ranks its 4 candidates, 2 of them relevant
    U = np.array([[1.0], [1.0]], dtype=np.float32)
    V = np.array([[5.0], [4.0], [3.0], [2.0], [1.0], [0.0]], dtype=np.float32)
    cands = np.array([[4, 1, 3, 5], [0, 2, -1, -1]])
    test = csr([{3, 5, 0}, set()], 6)                 # item 0 is not a candidate of user 0
    res = evaluate((U, V), test, protocol="test_items", test_items=cands, ks=(1, 2), device="cpu")
    # user 0 ranking: 1 (4.0), 3 (2.0), 4 (1.0), 5 (0.0); relevant {3, 5}; user 1 has no relevant item
    assert res.n_users == 1 and res.n_users_skipped == 1
    d = res.to_dict()
    assert d["recall@2"] == pytest.approx(0.5) and d["precision@1"] == 0.0
    assert d["dcg@2"] == pytest.approx(1 / LOG2(3))
    assert d["auc"] == pytest.approx(0.25)            # of the 2 x 2 pairs only (3, 4) is ordered right
    assert res.info["n_test_pairs_outside_candidates"] == 1


def test_evaluate_truth_metrics_perfect_for_the_true_ranking(rng):
    n_users, n_items = 20, 15
    rel = rng.random((n_users, n_items))
    U = np.eye(n_users, dtype=np.float32)
    V = rel.T.astype(np.float32).copy()               # scores = relevance
    test = sp.random(n_users, n_items, density=0.3, format="csr", random_state=rng)
    res = evaluate((U, V), test, ks=(5,), relevance=rel, metrics=["true_ndcg", "true_recall"], device="cpu")
    np.testing.assert_allclose(res.per_user["true_ndcg@5"], 1.0)
    assert "true_recall@5" in res.to_dict()


def test_evaluate_rejects_bad_arguments(case):
    U, V, train, test = case
    with pytest.raises(ValueError, match="protocol"):
        evaluate((U, V), test, protocol="sampled")
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate((U, V), test, metrics=["ndgc"])
    with pytest.raises(ValueError, match="test_items"):
        evaluate((U, V), test, protocol="test_items")
    with pytest.raises(ValueError, match="propensities"):
        evaluate((U, V), test, metrics=["ips_dcg"])
    with pytest.raises(ValueError, match="shape"):
        evaluate((U, V[:-1]), test)


def test_evaluate_users_subset_and_sparse_test_items(case):
    U, V, train, test = case
    res = evaluate((U, V), test, train=train, ks=(5,), metrics=["recall"], users=[0, 1, 7, 8], device="cpu")
    has = np.diff(test.indptr) > 0
    assert res.n_users == has[[7, 8]].sum() and res.n_users_skipped == 4 - res.n_users
    # candidates given as a sparse matrix give the same numbers as the equivalent padded array
    cand = (train + test).tocsr()
    cand.data[:] = 1
    arr = np.full((cand.shape[0], int(np.diff(cand.indptr).max())), -1)
    for u in range(cand.shape[0]):
        items = cand.indices[cand.indptr[u]:cand.indptr[u + 1]]
        arr[u, : items.size] = items[::-1]  # order must not matter
    a = evaluate((U, V), test, protocol="test_items", test_items=cand, ks=(3,), device="cpu")
    b = evaluate((U, V), test, protocol="test_items", test_items=arr, ks=(3,), device="cpu")
    pd.testing.assert_frame_equal(a.per_user, b.per_user)


def test_evaluate_per_item_and_per_pair_propensities_agree(case):
    U, V, train, test = case
    theta_item = np.linspace(0.1, 1.0, test.shape[1])
    a = evaluate((U, V), test, train=train, ks=(5,), metrics=["ips_dcg", "snips_recall"], propensities=theta_item,
                 device="cpu")
    t = test.tocsr()
    t.sort_indices()
    b = evaluate((U, V), t, train=train, ks=(5,), metrics=["ips_dcg", "snips_recall"],
                 propensities=theta_item[t.indices], device="cpu")
    pd.testing.assert_frame_equal(a.per_user, b.per_user)
    assert a.to_dict()["ips_dcg@5"] >= 0


def test_pooled_auc_against_hand_computed_cases():
    from recsampling.metrics import pooled_auc as auc

    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of the 4 pairs ordered right
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (0.5 + 1) / 2
    assert auc([1.0, 1.0, 0.0], [1, 0, 0]) == pytest.approx(0.75)
    assert auc([3.0, 2.0, 1.0], [0, 1, 1]) == 0.0
    assert auc([1.0, 2.0], [0, 0]) is None and auc([1.0, 2.0], [1, 1]) is None
