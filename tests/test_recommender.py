"""The estimator front: fit / recommend / new user / evaluate / save / load."""

from __future__ import annotations

import numpy as np
import pytest

from recsampling.data.interactions import Interactions
from recsampling.recommender import Recommender
from tests.test_samplers import checkerboard


def _raw_train() -> Interactions:
    base = checkerboard()
    return Interactions.from_arrays([f"u{u}" for u in base.user_index()], base.item_index() + 1000)


def _fit(**kw) -> Recommender:
    kw = {"model_params": {"factors": 8}, "epochs": 15, "lr": 0.05, "batch_size": 32, "random_state": 0,
          "device": "cpu", **kw}
    return Recommender(**kw).fit(_raw_train())


def test_constructor_stores_arguments_untouched_and_fit_returns_self():
    mp = {"factors": 8}
    rec = Recommender(model_params=mp, lr=0.05)
    assert rec.model_params is mp and rec.lr == 0.05 and not hasattr(rec, "model_")
    with pytest.raises(ValueError, match="not fitted"):
        rec.recommend([0])
    assert rec.fit(checkerboard()) is rec
    assert hasattr(rec, "model_") and hasattr(rec, "history_") and rec.train_.nnz == checkerboard().nnz


def test_recommend_excludes_seen_and_stays_in_the_users_group():
    rec = _fit()
    train = rec.train_
    ids, scores = rec.recommend(np.arange(10), k=5)
    assert ids.shape == scores.shape == (10, 5)
    seen = train.matrix.toarray() > 0
    assert not seen[np.arange(10)[:, None], ids].any()
    assert np.all(np.diff(scores, axis=1) <= 0)
    # checkerboard: user u's group is u % 2 (raw ids sort as strings, so use the index map)
    group_u = np.array([int(str(x)[1:]) % 2 for x in train.user_ids[:10]])
    group_i = (train.item_ids[ids] - 1000) % 2
    assert (group_i == group_u[:, None]).mean() >= 0.8
    with_seen, _ = rec.recommend(np.arange(10), k=5, exclude_seen=False)
    assert seen[np.arange(10)[:, None], with_seen].mean() > 0.5


def test_recommend_with_raw_ids_and_padding():
    rec = _fit(epochs=2)
    ids, _ = rec.recommend(["u3", "u0"], k=3, raw_ids=True)
    assert ids.shape == (2, 3) and all(x in set(rec.train_.item_ids) for x in ids.ravel())
    ids_all, _ = rec.recommend(["u3"], k=40, raw_ids=True)  # fewer candidates than k
    assert ids_all[0, -1] is None
    with pytest.raises(ValueError, match="unknown user id"):
        rec.recommend(["nobody"], raw_ids=True)
    with pytest.raises(ValueError, match=r"unknown user id 3 \(int\d+\); this model's user ids look like 'u\d+' \(str\)"):
        rec.recommend([3], raw_ids=True)  # raw ids match by value and type: the message shows which


def test_recommend_new_user_folds_in_without_retraining():
    rec = _fit()
    before = rec.model_.embedding_tables()[1].copy()
    liked = [1000, 1002, 1004, 1006]  # group 0 items
    ids, scores = rec.recommend_new_user(liked, k=5, raw_ids=True)
    assert ids.shape == (5,) and not set(ids) & set(liked)
    assert np.mean([(x - 1000) % 2 == 0 for x in ids]) >= 0.8
    np.testing.assert_array_equal(before, rec.model_.embedding_tables()[1])
    with pytest.raises(ValueError, match="at least one item"):
        rec.recommend_new_user([], k=3)


def test_evaluate_gives_metrics():
    train = checkerboard()
    rng = np.random.default_rng(0)
    mask = rng.random(train.nnz) < 0.8
    tr, te = train.subset(mask), train.subset(~mask)
    rec = Recommender(model_params={"factors": 8}, epochs=15, lr=0.05, batch_size=32, random_state=0,
                      device="cpu").fit(tr)
    res = rec.evaluate(te, ks=(5,)).to_dict()
    assert res["recall@5"] > 0.2 and 0 < res["ndcg@5"] <= 1


@pytest.mark.parametrize("model", ["mf", "twotower"])
def test_save_load_round_trip(tmp_path, model):
    rec = _fit(model=model, epochs=3, sampler="popularity", sampler_params={"alpha": 0.5})
    rec.save(tmp_path / "rec")
    back = Recommender.load(tmp_path / "rec")
    assert back.get_params()["sampler_params"] == {"alpha": 0.5}
    assert back.sampler_.alpha == 0.5
    a, sa = rec.recommend(["u1", "u2"], k=4, raw_ids=True)
    b, sb = back.recommend(["u1", "u2"], k=4, raw_ids=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sa, sb)
    assert back.history_.losses == rec.history_.losses
    with pytest.raises(ValueError, match="not a saved Recommender"):
        Recommender.load(tmp_path / "nothing")


def test_same_seed_same_recommendations():
    a = _fit(epochs=3).recommend(k=5)[0]
    b = _fit(epochs=3).recommend(k=5)[0]
    np.testing.assert_array_equal(a, b)


def test_bad_parameters_are_reported():
    with pytest.raises(ValueError, match="unknown model"):
        Recommender(model="svd").fit(checkerboard())
    with pytest.raises(ValueError, match="unknown sampler"):
        Recommender(sampler="nope").fit(checkerboard())
    with pytest.raises(ValueError, match="bad parameters for sampler"):
        Recommender(sampler_params={"bogus": 1}).fit(checkerboard())


# --------------------------------------------------------------------------- integrity of saved models
def _saved(tmp_path, **kw):
    rec = _fit(epochs=1, n_threads=1, **kw)
    rec.save(tmp_path / "rec")
    return rec, tmp_path / "rec"


def test_raw_ids_of_every_kind_round_trip_exactly(tmp_path):
    base = checkerboard()
    users = np.array([x if x % 2 else str(x) for x in range(base.n_users)], dtype=object)
    users[:4] = ["1", 1, 2**70, 2.5]  # 1 and '1' are two users; an int beyond int64; a float
    items = np.uint64(2**63) + np.arange(base.n_items, dtype=np.uint64)  # beyond int64
    train = Interactions(matrix=base.matrix, user_ids=users, item_ids=items)
    rec = Recommender(model_params={"factors": 4}, epochs=1, n_threads=1, device="cpu", random_state=0).fit(train)
    rec.save(tmp_path / "rec")
    back = Recommender.load(tmp_path / "rec")
    assert [(type(x), x) for x in back.train_.user_ids] == [(type(x), x) for x in users.tolist()]
    assert back.train_.item_ids.dtype == np.uint64 and back.train_.item_ids.tolist() == items.tolist()
    for who in (["1"], [1], [2**70]):
        a, _ = rec.recommend(who, k=3, raw_ids=True)
        b, _ = back.recommend(who, k=3, raw_ids=True)
        assert a.tolist() == b.tolist() and all(int(x) >= 2**63 for x in b.ravel())


@pytest.mark.parametrize("ids,message", [
    (np.arange(40).astype("datetime64[D]"), r"user_ids of dtype datetime64\[D\] cannot be saved exactly"),
    (np.array([(k, k) for k in range(40)] + [None], dtype=object)[:40], r"user_ids\[0\] = \(0, 0\) is a tuple"),
])
def test_ids_that_cannot_be_saved_exactly_are_refused(tmp_path, ids, message):
    base = checkerboard()
    train = Interactions(matrix=base.matrix, user_ids=ids, item_ids=np.arange(base.n_items))
    rec = Recommender(model_params={"factors": 4}, epochs=1, n_threads=1, device="cpu", random_state=0).fit(train)
    with pytest.raises(ValueError, match=message):
        rec.save(tmp_path / "rec")


def _flip_bytes(path, n=64, seed=0):
    raw = bytearray(path.read_bytes())
    at = np.random.default_rng(seed).choice(np.arange(len(raw) // 4, 3 * len(raw) // 4), n, replace=False)
    for k in at:
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_corrupted_file_of_a_saved_model_is_named(tmp_path):
    _, folder = _saved(tmp_path)
    assert (folder / "SHA256SUMS").is_file()
    _flip_bytes(folder / "model.pt")
    with pytest.raises(ValueError, match=r"model.pt' is corrupted or was changed after it was saved"):
        Recommender.load(folder)
    _, folder = _saved(tmp_path)
    params = folder / "recommender.json"
    params.write_text(params.read_text().replace('"lr": 0.05', '"lr": 0.5'))  # still valid JSON
    with pytest.raises(ValueError, match=r"recommender.json' is corrupted or was changed after it was saved"):
        Recommender.load(folder)


def test_a_model_saved_without_checksums_loads_with_a_warning(tmp_path, caplog):
    rec, folder = _saved(tmp_path)
    (folder / "SHA256SUMS").unlink()  # as saved before checksums were recorded
    with caplog.at_level("WARNING", logger="recsampling"):
        back = Recommender.load(folder)
    assert sum("has no checksum" in r.getMessage() for r in caplog.records) == 2
    np.testing.assert_array_equal(back.recommend(k=3)[0], rec.recommend(k=3)[0])


def _edit_indices(blob):
    blob["train"]["indices"][-1] = 10**7


def _edit_indptr(blob):
    blob["train"]["indptr"][-1] -= 1


def _edit_order(blob):
    idx = blob["train"]["indices"]
    idx[0], idx[1] = idx[1].clone(), idx[0].clone()


def _edit_user_ids(blob):
    blob["user_ids"]["values"][1] = blob["user_ids"]["values"][0]


def _edit_weights(blob):
    key = next(k for k in blob["model_state"] if "item" in k)
    blob["model_state"][key].view(-1)[3] = float("nan")


def _edit_shape(blob):
    key = next(k for k in blob["model_state"] if "item" in k)
    blob["model_state"][key] = blob["model_state"][key][:-1]


def _edit_n_users(blob):
    import json

    meta = json.loads(blob["meta"])
    meta["model"]["n_users"] += 5
    blob["meta"] = json.dumps(meta)


@pytest.mark.parametrize("edit,message", [
    (_edit_indices, r"column index 10000000 in row 39"),
    (_edit_indptr, r"indptr must start at 0 and end at the number of stored entries"),
    (_edit_order, r"row 0 has unsorted or duplicate column indices"),
    (_edit_user_ids, r"user_ids must be distinct"),
    (_edit_weights, r"model weight '.*item.*' has NaN or infinite values"),
    (_edit_shape, r"the model weights do not fit the model"),
    (_edit_n_users, r"user_ids must be a one-dimensional array of 45 ids"),
])
def test_an_edited_checkpoint_is_refused_even_with_a_matching_checksum(tmp_path, edit, message):
    import torch

    from recsampling._checksums import record_checksum

    _, folder = _saved(tmp_path)
    path = folder / "model.pt"
    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)
    record_checksum(path)  # whoever edited the file also rewrote the manifest
    with pytest.raises(ValueError, match=r"model.pt': .*" + message):
        Recommender.load(folder)


def test_evaluate_refuses_data_whose_id_maps_are_not_the_models():
    rec = _fit(epochs=1, n_threads=1)
    pairs = rec.train_.to_dataframe()
    renamed = pairs.user_id.where(pairs.user_id != rec.train_.user_ids[5], "someone else")
    test = Interactions.from_arrays(renamed, pairs.item_id)  # same shape, own index space
    assert test.shape == rec.train_.shape
    with pytest.raises(ValueError, match=r"test's user ids differ from this model's at \d+ of 40 indices"):
        rec.evaluate(test)
    aligned = Interactions.from_arrays(renamed, pairs.item_id, user_ids=rec.train_.user_ids,
                                       item_ids=rec.train_.item_ids, unknown="drop")
    assert 0 <= rec.evaluate(aligned, ks=(5,), train=None).to_dict()["ndcg@5"] <= 1


def test_an_edited_integer_sampler_state_is_refused(tmp_path):
    # DLA's popularity buckets index a table in the fused kernel: they must be the ones the data gives
    import torch

    from recsampling._checksums import record_checksum

    rec, folder = _saved(tmp_path, sampler="dla", sampler_params={"n_sampled": 4})
    back = Recommender.load(folder)
    key = next(k for k in back.sampler_.state_dict() if k.endswith("buckets"))
    np.testing.assert_array_equal(back.sampler_.state_dict()[key], rec.sampler_.state_dict()[key])
    path = folder / "model.pt"
    blob = torch.load(path, weights_only=True)
    blob["sampler_state"][key][0] = 10**6
    torch.save(blob, path)
    record_checksum(path)
    with pytest.raises(ValueError, match=rf"sampler state '{key}' differs from what the sampler derives"):
        Recommender.load(folder)
