"""Tests of the batched top-k against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsampling.data.interactions import Interactions
from recsampling.scoring import chunk_rows, iter_score_chunks, rank_candidates, topk, topk_of_scores

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference_topk(U, V, k, exclude=None, users=None):
    """Full stable argsort: score descending, ties by lower item index; pad -1 / -inf."""
    U = np.asarray(U, dtype=np.float32)
    V = np.asarray(V, dtype=np.float32)
    users = np.arange(U.shape[0]) if users is None else np.asarray(users)
    S = (U[users] @ V.T).astype(np.float32)
    if exclude is not None:
        S[exclude.toarray()[users] != 0] = -np.inf
    ids = np.full((len(users), k), -1, dtype=np.int64)
    sc = np.full((len(users), k), -np.inf, dtype=np.float32)
    for r in range(len(users)):
        order = np.argsort(-S[r], kind="stable")
        order = order[np.isfinite(S[r, order])][:k]
        ids[r, : order.size] = order
        sc[r, : order.size] = S[r, order]
    return ids, sc


def random_case(rng, n_users=37, n_items=23, d=5, density=0.3, integer=True):
    if integer:  # small integers make exact ties frequent and the product exact
        U = rng.integers(-2, 3, size=(n_users, d)).astype(np.float32)
        V = rng.integers(-2, 3, size=(n_items, d)).astype(np.float32)
    else:
        U = rng.standard_normal((n_users, d)).astype(np.float32)
        V = rng.standard_normal((n_items, d)).astype(np.float32)
    X = sp.random(n_users, n_items, density=density, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1
    return U, V, X


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("k", [1, 5, 23, 30])
def test_matches_bruteforce_reference(rng, integer, k):
    U, V, X = random_case(rng, integer=integer)
    ids, sc = topk(U, V, k, exclude=X, device="cpu")
    rid, rsc = reference_topk(U, V, k, exclude=X)
    np.testing.assert_array_equal(ids, rid)
    np.testing.assert_allclose(sc, rsc, rtol=1e-5, atol=1e-5)
    assert ids.dtype == np.int64 and sc.dtype == np.float32 and ids.shape == (37, k)


def test_hand_case_ties_exclusion_and_padding():
    U = np.array([[1.0], [1.0]], dtype=np.float32)
    V = np.array([[2.0], [3.0], [2.0], [3.0], [1.0]], dtype=np.float32)
    X = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=np.float32))
    ids, sc = topk(U, V, 3, exclude=X, device="cpu")
    # user 0: item 3 (3), then the tie 0 / 2 at 2 in index order; user 1: only item 4 is left
    np.testing.assert_array_equal(ids, [[3, 0, 2], [4, -1, -1]])
    np.testing.assert_array_equal(sc, np.array([[3, 2, 2], [1, -np.inf, -np.inf]], dtype=np.float32))


def test_boundary_tie_picks_lower_index():
    # 9 items all tied: the top-3 must be items 0, 1, 2 whatever torch.topk picks internally
    U = np.ones((4, 2), dtype=np.float32)
    V = np.ones((9, 2), dtype=np.float32)
    ids, _ = topk(U, V, 3, device="cpu")
    np.testing.assert_array_equal(ids, np.tile([0, 1, 2], (4, 1)))


def test_users_subset_uses_matching_exclude_rows(rng):
    U, V, X = random_case(rng)
    users = np.array([5, 0, 36, 5])
    ids, sc = topk(U, V, 4, exclude=X, users=users, device="cpu")
    rid, _ = reference_topk(U, V, 4, exclude=X, users=users)
    np.testing.assert_array_equal(ids, rid)
    assert not np.any(X.toarray()[users[:, None], np.maximum(ids, 0)][ids >= 0])


def test_numpy_and_torch_inputs_agree(rng):
    U, V, X = random_case(rng, integer=False)
    a = topk(U, V, 6, exclude=X, device="cpu")
    b = topk(torch.from_numpy(U).double(), torch.from_numpy(V), 6, exclude=Interactions.from_csr(X), device="cpu")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


@pytest.mark.parametrize("budget", [1e-6, 0.001, 0.01])
def test_tiny_memory_budget_gives_identical_results(rng, budget):
    U, V, X = random_case(rng, n_users=101)
    full = topk(U, V, 7, exclude=X, device="cpu")
    small = topk(U, V, 7, exclude=X, device="cpu", memory_budget_mb=budget)
    np.testing.assert_array_equal(full[0], small[0])
    np.testing.assert_array_equal(full[1], small[1])


def test_chunk_rows_respects_budget():
    assert chunk_rows(200_000, 256) * 200_000 * 8 <= 256 * 2**20
    assert chunk_rows(10**9, 1) == 1
    assert chunk_rows(10, 256, n_rows=7) == 7


def test_iter_score_chunks_masks_excluded(rng):
    U, V, X = random_case(rng)
    parts = [c.clone() for _, _, c in iter_score_chunks(U, V, exclude=X, device="cpu", memory_budget_mb=0.001)]
    S = torch.cat(parts).numpy()
    assert np.all(np.isneginf(S[X.toarray() != 0]))
    np.testing.assert_allclose(S[X.toarray() == 0], (U @ V.T)[X.toarray() == 0], rtol=1e-5, atol=1e-5)


def test_empty_users_and_all_excluded():
    U = np.ones((2, 3), np.float32)
    V = np.ones((4, 3), np.float32)
    ids, sc = topk(U, V, 2, users=np.array([], dtype=np.int64), device="cpu")
    assert ids.shape == (0, 2) and sc.shape == (0, 2)
    ids, sc = topk(U, V, 2, exclude=sp.csr_matrix(np.ones((2, 4), np.float32)), device="cpu")
    assert np.all(ids == -1) and np.all(np.isneginf(sc))


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k must be"),
    (dict(users=np.array([0, 9])), "users must be indices"),
    (dict(exclude=sp.csr_matrix((3, 3))), "exclude must have shape"),
    (dict(item_vectors=np.ones((4, 2), np.float32)), "same number of factors"),
    (dict(user_vectors=np.full((2, 3), np.nan, np.float32)), "NaN"),
    (dict(memory_budget_mb=0), "memory_budget_mb"),
])
def test_bad_input_raises_value_error(bad, match):
    args = dict(user_vectors=np.ones((2, 3), np.float32), item_vectors=np.ones((4, 3), np.float32), k=2,
                device="cpu")
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        topk(**args)


@cuda
def test_cuda_matches_cpu(rng):
    U, V, X = random_case(rng, n_users=300, n_items=200, integer=True)
    cpu = topk(U, V, 10, exclude=X, device="cpu")
    gpu = topk(U, V, 10, exclude=X, device="cuda", memory_budget_mb=0.05)
    np.testing.assert_array_equal(cpu[0], gpu[0])
    np.testing.assert_array_equal(cpu[1], gpu[1])


def test_same_result_for_any_thread_count(rng):
    U, V, X = random_case(rng, n_users=600, n_items=50, integer=True)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = topk(U, V, 8, exclude=X, device="cpu", memory_budget_mb=0.01)
        torch.set_num_threads(2)
        two = topk(U, V, 8, exclude=X, device="cpu", memory_budget_mb=0.01)
    finally:
        torch.set_num_threads(old)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[0], reference_topk(U, V, 8, exclude=X)[0])


# ----------------------------------------------------------------------------- candidate lists
def _rank_reference(U, V, cand):
    """Per row: the candidates sorted by score descending, then item index ascending; -1 last."""
    out = np.full(cand.shape, -1, dtype=np.int64)
    for r, row in enumerate(cand):
        items = sorted(row[row >= 0], key=lambda i: (-float(np.float32(U[r] @ V[i])), i))
        out[r, : len(items)] = items
    return out


def test_rank_candidates_matches_a_reference_with_ties_and_padding(rng):
    U = rng.integers(-2, 3, size=(40, 3)).astype(np.float32)  # integer tables: many exact ties
    V = rng.integers(-2, 3, size=(25, 3)).astype(np.float32)
    cand = np.stack([rng.permutation(25)[:7] for _ in range(40)])
    cand[rng.random(cand.shape) < 0.3] = -1  # padding anywhere in a row
    ids, scores = rank_candidates(U, V, cand, device="cpu")
    np.testing.assert_array_equal(ids, _rank_reference(U, V, cand))
    ok = ids >= 0
    np.testing.assert_allclose(scores[ok], np.einsum("ud,ud->u", np.repeat(U, 7, 0).reshape(40, 7, 3)[ok],
                                                     V[ids[ok]]))
    assert np.isneginf(scores[~ok]).all()
    # the order of the candidates in a row does not matter; a subset of users and a tiny budget neither
    shuffled = np.stack([row[rng.permutation(7)] for row in cand])
    np.testing.assert_array_equal(rank_candidates(U, V, shuffled, device="cpu")[0], ids)
    sub = np.array([5, 1, 30])
    np.testing.assert_array_equal(rank_candidates(U, V, cand, users=sub, memory_budget_mb=1e-6)[0], ids[sub])


@pytest.mark.parametrize("cand, match", [
    (np.zeros((3, 2), dtype=np.int64), "shape"),
    (np.full((4, 2), 9, dtype=np.int64), "item indices"),
    (np.full((4, 2), -2, dtype=np.int64), "item indices"),
    (np.zeros((4, 2)), "integer"),
])
def test_rank_candidates_bad_input_raises_value_error(cand, match):
    with pytest.raises(ValueError, match=match):
        rank_candidates(np.ones((4, 2)), np.ones((5, 2)), cand)


def test_topk_of_score_chunks_is_topk(rng):
    U = rng.integers(-2, 3, size=(30, 3)).astype(np.float32)  # ties
    V = rng.integers(-2, 3, size=(12, 3)).astype(np.float32)
    X = sp.random(30, 12, density=0.5, format="csr", random_state=1, dtype=np.float32)
    ref_ids, ref_scores = topk(U, V, 15, exclude=X, device="cpu")  # k above the catalogue: -1 padding
    parts = [topk_of_scores(c, 15) for _, _, c in iter_score_chunks(U, V, exclude=X, device="cpu",
                                                                     memory_budget_mb=0.0005)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), ref_ids)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ref_scores)
    with pytest.raises(ValueError, match="k must be"):
        topk_of_scores(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="two-dimensional"):
        topk_of_scores(np.zeros(3), 1)
