"""Checkpoints (recsampling.checkpoint): what is saved reads back equal, weights, sampler state and id maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsampling.checkpoint import load_checkpoint, save_checkpoint
from recsampling.data.interactions import Interactions
from recsampling.models import make_model
from recsampling.samplers import make_sampler
from recsampling.train import Trainer
from tests.test_samplers import checkerboard


def test_checkpoint_round_trip(tmp_path):
    train = checkerboard()
    train = Interactions.from_arrays([f"u{u}" for u in train.user_index()], train.item_index() + 100,
                                     user_features=None)
    model = make_model("mf", train, factors=4, user_bias=True, random_state=0)
    sampler = make_sampler("popularity", alpha=0.5, n_negatives=2)
    Trainer(epochs=2, progress=False, random_state=0, device="cpu").fit(model, sampler, train)
    path = save_checkpoint(tmp_path / "ck" / "model.pt", model, sampler, train, extra={"note": "x"})
    ck = load_checkpoint(path)
    for (k, a), b in zip(model.state_dict().items(), ck.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert ck.model.get_params() == model.get_params()
    assert ck.sampler.name == "popularity" and ck.sampler.alpha == 0.5 and ck.sampler.n_negatives == 2
    np.testing.assert_array_equal(ck.user_ids, train.user_ids)
    np.testing.assert_array_equal(ck.item_ids, train.item_ids)
    assert (ck.train.matrix != train.matrix).nnz == 0
    assert ck.extra == {"note": "x"}


def test_checkpoint_round_trips_learned_sampler_state_and_two_tower_features(tmp_path):
    train = checkerboard()
    train = train.with_values(item_features=np.random.default_rng(0).random((train.n_items, 3)))
    model = make_model("twotower", train, factors=4, hidden=(6,), random_state=0)
    sampler = make_sampler("nbpo")
    Trainer(epochs=1, progress=False, random_state=0, device="cpu").fit(model, sampler, train)
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, sampler, train))
    np.testing.assert_array_equal(ck.model.embedding_tables()[1], model.embedding_tables()[1])
    for (k, a), b in zip(sampler.state_dict().items(), ck.sampler.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_file_that_is_not_a_checkpoint_or_is_missing_is_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a recsampling checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
