"""Evaluation tasks: both protocols, the true-relevance path, validation parts, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsampling.data.interactions import Interactions
from recsampling.evaluation import evaluate
from recsampling.tasks import Task, load_task

TINY_WORLD = dict(n_users=60, n_items=80, target_interactions=500)


def _tiny():
    """3 users x 4 items; item 0 scores highest for everyone, then 1, 2, 3."""
    train = Interactions.from_indices(np.array([0, 1, 2]), np.array([3, 3, 3]), (3, 4))
    test = Interactions.from_indices(np.array([0, 1, 2]), np.array([2, 1, 0]), (3, 4))
    U = np.ones((3, 1), dtype=np.float32)
    V = np.array([[4.0], [3.0], [2.0], [1.0]], dtype=np.float32)
    return train, test, (U, V)


def test_full_protocol_ranks_every_unseen_item_and_is_evaluate():
    train, test, tables = _tiny()
    task = Task("tiny", train, test, metrics=("hitrate", "ndcg"), ks=(1, 3))
    res = task.evaluate(tables)
    assert res.info["protocol"] == "full"
    # item 0 is everyone's first: only user 2 (whose test item is 0) hits at 1; all hit at 3
    assert res.per_user["hitrate@1"].tolist() == [0.0, 0.0, 1.0]
    assert res["hitrate@3"] == 1.0
    ref = evaluate(tables, test, train=train, ks=(1, 3), metrics=("hitrate", "ndcg"))
    assert res.to_dict() == ref.to_dict()


def test_test_items_protocol_ranks_only_the_given_items():
    train, test, tables = _tiny()
    # user 0's candidates leave out item 0, the best-scored item: its test item 2 comes first
    cand = np.array([[2, 3, -1], [3, 1, -1], [0, 1, 2]])
    task = Task("tiny", train, test, protocol="test_items", test_items=cand, metrics=("hitrate",), ks=(1,))
    res = task.evaluate(tables)
    assert res.info["protocol"] == "test_items"
    assert res.per_user["hitrate@1"].tolist() == [1.0, 1.0, 1.0]
    # the same model under full ranking misses users 0 and 1 at 1
    assert task.evaluate(tables, protocol="full").per_user["hitrate@1"].tolist() == [0.0, 0.0, 1.0]


def test_true_relevance_path_on_the_synthetic_world():
    task = load_task("synthetic", seed=3, world=TINY_WORLD, ks=(5,))
    assert task.protocol == "test_items" and task.relevance is not None
    assert task.relevance.shape == task.train.shape
    rng = np.random.default_rng(0)
    tables = (rng.standard_normal((task.train.n_users, 4)), rng.standard_normal((task.train.n_items, 4)))
    got = task.figures(tables, ["true_ndcg@10", "dcg@5"], device="cpu")
    # truth: every unclicked item ranked against the true relevance; dcg@5: each user's test items only
    truth = evaluate(tables, task.test, train=task.train, ks=(10,), metrics=["true_ndcg"], relevance=task.relevance,
                     device="cpu")
    mar = evaluate(tables, task.test, protocol="test_items", test_items=task.test_items, ks=(5,), metrics=["dcg"],
                   device="cpu")
    assert got == {"true_ndcg@10": truth["true_ndcg@10"], "dcg@5": mar["dcg@5"]}
    # the default metrics carry the truth metrics, under the task's own protocol
    assert "true_ndcg@5" in task.evaluate(tables, device="cpu").to_dict()
    # a world seeds its task: the same seed, the same clicks; another seed, others
    again = load_task("synthetic", seed=3, world=TINY_WORLD)
    assert (again.train.matrix != task.train.matrix).nnz == 0
    assert (load_task("synthetic", seed=4, world=TINY_WORLD).train.matrix != task.train.matrix).nnz > 0


def _csv(tmp_path, n_users=30, n_items=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = {(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 600), rng.integers(0, n_items, 600))}
    path = tmp_path / "ratings.csv"
    lines = ["user,item,rating"] + [f"{u},{i},{1 + (u + i) % 5}" for u, i in sorted(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_is_split_per_user_with_its_threshold_and_a_validation_part(tmp_path):
    path = _csv(tmp_path)
    task = load_task(path, seed=1, valid_fraction=0.25)
    assert task.protocol == "full" and task.test_items is None
    assert task.source.interactions.ratings is not None
    n_pos = int((task.source.interactions.ratings >= 4).sum())
    assert task.known.nnz + task.test.nnz == n_pos
    assert task.known.nnz == task.train.nnz + task.valid.nnz
    overlap = task.train.matrix.multiply(task.valid.matrix).nnz + task.known.matrix.multiply(task.test.matrix).nnz
    assert overlap == 0
    every = load_task(path, seed=1, threshold=None)
    assert every.train.nnz + every.test.nnz == task.source.interactions.nnz
    v = task.validation_task()
    assert v.train is task.train and v.test is task.valid and v.valid is None
    with pytest.raises(ValueError, match="no validation part"):
        every.validation_task()
    # the full ranking excludes the validation pairs as well as the training ones
    rng = np.random.default_rng(0)
    tables = (rng.standard_normal((task.train.n_users, 3)), rng.standard_normal((task.train.n_items, 3)))
    ref = evaluate(tables, task.test, train=task.known, ks=(10,))
    assert task.evaluate(tables, device="cpu").to_dict() == ref.to_dict()


def test_a_recommender_is_evaluated_through_its_own_checks():
    from recsampling.recommender import Recommender

    task = load_task("synthetic", seed=0, world=TINY_WORLD)
    rec = Recommender(epochs=1, random_state=0, progress=False, model_params={"factors": 4}).fit(task.train)
    assert task.evaluate(rec).to_dict() == task.evaluate(rec.model_).to_dict()
    other = load_task("synthetic", seed=0, world=dict(TINY_WORLD, n_items=81))
    with pytest.raises(ValueError, match="items"):
        other.evaluate(rec)


@pytest.mark.parametrize("kw, match", [
    (dict(name="no-such-set"), "no-such-set"),
    (dict(name="synthetic", test_fraction=1.5), "test_fraction"),
    (dict(name="synthetic", valid_fraction=0.0), "valid_fraction"),
    (dict(name="synthetic", threshold=float("nan")), "threshold"),
    (dict(name="synthetic", seed=1.5), "seed"),
    (dict(name="synthetic", world=dict(n_userz=5)), "make_world"),
    (dict(name="synthetic", ks=(0,)), "cut-off"),
])
def test_bad_names_and_arguments_are_one_clear_value_error(kw, match):
    name = kw.pop("name")
    kw.setdefault("world", TINY_WORLD)
    with pytest.raises(ValueError, match=match):
        load_task(name, **kw)


def test_world_is_only_for_synthetic(tmp_path):
    with pytest.raises(ValueError, match="world="):
        load_task(_csv(tmp_path), world=TINY_WORLD)


def test_bad_tasks_and_calls_are_clear_value_errors():
    train, test, tables = _tiny()
    with pytest.raises(ValueError, match="protocol"):
        Task("tiny", train, test, protocol="sampled")
    with pytest.raises(ValueError, match="needs test_items"):
        Task("tiny", train, test, protocol="test_items")
    with pytest.raises(ValueError, match="test_items must be an integer array"):
        Task("tiny", train, test, protocol="test_items", test_items=np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="index space"):
        Task("tiny", train, Interactions.from_indices(np.array([0]), np.array([0]), (3, 5)))
    with pytest.raises(ValueError, match="must be an Interactions"):
        Task("tiny", train.matrix, test)
    task = Task("tiny", train, test)
    with pytest.raises(ValueError, match="no test items"):
        task.evaluate(tables, protocol="test_items")
    with pytest.raises(ValueError, match="metric@k"):
        task.figures(tables, ["ndcg"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.protocol = "test_items"


def test_the_readme_example_runs(monkeypatch):
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    section = text[text.index("### Evaluation tasks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    if not (root.parent / "shared" / "data" / "ml-100k").is_dir():
        pytest.skip("../shared/data/ml-100k is absent (the example's second part reads it)")
    monkeypatch.chdir(root)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["task"].protocol == "test_items" and scope["task"].test_items.shape[1] == 16
    assert {"ndcg@5", "ndcg@10"} <= set(scope["res"].to_dict())
    assert scope["ml"].protocol == "full" and scope["ml"].valid.nnz > 0
