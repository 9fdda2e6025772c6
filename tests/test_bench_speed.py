"""recsampling.bench.speed: the speed benchmarks' data, checks and timed steps."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from recsampling.bench import speed
from recsampling.data import Interactions


def test_movielens_pairs_reads_what_is_there_and_none_otherwise(tmp_path):
    assert speed.movielens_pairs(tmp_path, "ml-1m") is None and speed.movielens_pairs(tmp_path, "ml-100k") is None
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("1\t1\t5\t1\n1\t2\t3\t2\n2\t2\t4\t3\n")
    data = speed.movielens_pairs(tmp_path, "ml-100k")
    assert data.nnz == 2 and set(data.ratings) == {4.0, 5.0}  # ratings >= 4 only
    (tmp_path / "ml-1m").mkdir()
    with gzip.open(tmp_path / "ml-1m" / "pairs.csv.gz", "wt") as fh:
        fh.write("user_id,item_id\n1,1\n1,2\n2,2\n")
    data = speed.movielens_pairs(str(tmp_path), "ml-1m")
    assert data.shape == (2, 2) and data.nnz == 3 and data.user_features is None


def test_synthetic_ml1m_has_its_shape_and_is_seeded():
    a = speed.synthetic_ml1m(0, n_users=50, n_items=40, nnz=300)
    assert a.shape == (50, 40) and a.nnz == 300
    assert (a.matrix != speed.synthetic_ml1m(0, n_users=50, n_items=40, nnz=300).matrix).nnz == 0
    assert (a.matrix != speed.synthetic_ml1m(1, n_users=50, n_items=40, nnz=300).matrix).nnz > 0
    counts = np.sort(np.asarray(a.matrix.sum(axis=0)).ravel())
    assert counts[-4:].sum() > counts[:4].sum() * 2  # a long tail


def test_scoring_problem_gives_factors_and_about_n_seen_distinct_pairs():
    U, V, seen = speed.scoring_problem(60, 80, 5, 900, seed=3)
    assert U.shape == (60, 5) and V.shape == (80, 5) and U.dtype == V.dtype == np.float32
    assert sp.isspmatrix_csr(seen) and seen.has_sorted_indices and set(np.unique(seen.data)) == {1.0}
    assert 0.9 * 900 <= seen.nnz <= 1.3 * 900  # about n_seen: drawn, deduplicated, topped up
    U2, _, seen2 = speed.scoring_problem(60, 80, 5, 900, seed=3)
    np.testing.assert_array_equal(U, U2)
    assert (seen != seen2).nnz == 0


def test_ml20m_shape_scales_the_users_only():
    assert speed.ml20m_shape(20_000_000) == {"n_users": 138_493, "n_items": 26_744, "interactions": 20_000_000}
    assert speed.ml20m_shape(1_000_000)["n_users"] == 6925 and speed.ml20m_shape(1)["n_users"] == 1


def _clicks(rng) -> Interactions:
    m = sp.random(30, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    m.data[:] = 1.0
    return Interactions.from_csr(m, propensities=rng.uniform(0.1, 1, m.nnz).astype(np.float32),
                                 user_features=rng.normal(size=(30, 3)).astype(np.float32),
                                 item_features=rng.normal(size=(20, 2)).astype(np.float32))


def test_saved_clicks_come_back_with_propensities_and_features(tmp_path, rng):
    data = _clicks(rng)
    speed.save_clicks(tmp_path / "w.npz", data)
    back = speed.load_clicks(tmp_path / "w.npz")
    assert (back.matrix != data.matrix).nnz == 0
    for name in ("propensities", "user_features", "item_features"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))


def test_head_takes_the_first_users_and_every_item(rng):
    data = _clicks(rng)
    assert speed.head(data).n_users == 30  # at least 50 users: all 30
    first = speed.head(data, share=0.5, at_least=5)
    assert first.shape == (15, 20) and (first.matrix != data.matrix[:15]).nnz == 0


def test_ndcg_se_is_one_for_a_model_that_ranks_the_test_items_first():
    test = Interactions.from_indices(np.array([0, 1, 2]), np.array([1, 2, 0]), (3, 3))
    train = Interactions.from_indices(np.array([0, 1, 2]), np.array([0, 1, 2]), (3, 3))
    nd, se = speed.ndcg_se((np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32)[[2, 0, 1]]), test, train,
                            k=2)
    assert nd == pytest.approx(1.0) and se == pytest.approx(0.0)


def test_same_lists_and_excluded_returned():
    a = np.array([[1, 2], [3, 4]])
    assert speed.same_lists(a, [[2, 1], [3, 5]]) == 0.5
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32))
    assert speed.excluded_returned(np.array([[1, -1], [3, 4]]), seen) == 2
    assert speed.excluded_returned(np.array([[0, -1], [4, 2]]), seen) == 0


def test_by_blas_threads_runs_at_one_thread_then_the_given_threads():
    from threadpoolctl import threadpool_info

    def blas():
        return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=None)

    got = speed.by_blas_threads(blas, 2)
    assert list(got) == [1, 2] and got[1] in (1, None)
    assert list(speed.by_blas_threads(lambda: 0, 1)) == [1]


def test_implicit_recommender_and_ours_give_the_same_lists(rng):
    pytest.importorskip("implicit")
    U, V, seen = speed.scoring_problem(40, 50, 4, 300, seed=0)
    ours, ids = speed.topk_time(U, V, seen, 5, 1)
    theirs, their_ids = speed.topk_time(U, V, seen, 5, 1, implicit=True)
    assert ours["topk_s"] > 0 and theirs["topk_s"] > 0 and list(theirs["by_blas_threads_s"]) == ["1"]
    assert speed.same_lists(ids, their_ids) == 1.0 and speed.excluded_returned(ids, seen) == 0
    rec = speed.implicit_recommender(U, V, 1).recommend(np.arange(40), seen, N=5, filter_already_liked_items=True)[0]
    assert speed.same_lists(ids, rec) == 1.0


def test_the_scale_steps_build_train_and_save_factors(tmp_path):
    pytest.importorskip("implicit")
    built = speed.build_world(80, 40, 400, seed=0, threads=1, path=tmp_path / "world.npz")
    data = speed.load_clicks(tmp_path / "world.npz")
    assert built["build_s"] > 0 and built["clicks"] == data.nnz > 0 and data.user_features is not None
    peer = speed.peer_epoch(data, "als", dict(factors=4, iterations=1), 0, 1)
    assert peer["epoch_s"] > 0 and peer["backend"] == "implicit.cpu"
    params = dict(factors=4, epochs=1, backend="torch", optimizer="sgd", lr=0.05, batch_size=64)
    row = speed.pair_epoch(data, "mf", "bpr", params, 0, 1, torch_sample=data.nnz // 2,
                           factors_path=tmp_path / "f.npz")
    assert row["backend"] == "torch" and row["extrapolated"] and row["timed_clicks"] == data.nnz // 2
    assert row["epoch_s"] > 0 and np.isfinite(row["loss"]) and (row["optimizer"], row["lr"]) == ("sgd", 0.05)
    f = np.load(tmp_path / "f.npz")
    assert f["U"].shape[0] == 80 and f["V"].shape[0] == 40 and f["U"].shape[1] == f["V"].shape[1] >= 4
    assert f["U"].dtype == f["V"].dtype == np.float32
    whole = speed.pair_epoch(data, "mf", "bpr", params, 0, 1)
    assert not whole["extrapolated"] and whole["timed_clicks"] == data.nnz


def test_grid_pairs_follow_the_suite_grid_and_name_what_is_unknown():
    from recsampling.suite import grid

    g = grid()
    assert speed.grid_pairs(["mf"]) == [("mf", s) for s in g["mf"]]
    assert speed.grid_pairs(["mf", "twotower"], ["bpr"]) == [("mf", "bpr"), ("twotower", "bpr")]
    assert speed.grid_pairs(["twotower"], ["inbatch"]) == [("twotower", "inbatch")]
    assert speed.grid_pairs(["mf"], ["inbatch"]) == []  # known, of another model's grid only
    with pytest.raises(ValueError, match=r"unknown model or sampler \['nope', 'none'\]; models: .*samplers: all or"):
        speed.grid_pairs(["mf", "nope"], ["bpr", "none"])
