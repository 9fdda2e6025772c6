"""recsampling.samplers.nbpo_authors: the authors' settings and model per method (their step: test_nbpo_benchmark)."""

from __future__ import annotations

import math

import pytest

from recsampling.data.synthetic import make_world
from recsampling.samplers.nbpo_authors import AUTHORS_FIXED, AUTHORS_SETTINGS, authors_loop


@pytest.fixture(scope="module")
def train():
    return make_world(30, 40, 150, n_logged_lists=0, n_test_items=0, random_state=0).clicks


@pytest.mark.parametrize("data", sorted(AUTHORS_SETTINGS))
@pytest.mark.parametrize("name", ["bpr", "bpo", "nbpo", "variant"])
def test_authors_loop_takes_the_methods_settings(train, name, data):
    params = {"objective": "exact"} if name in ("nbpo", "variant") else {}
    model, sampler, setting = authors_loop(name, params, train, 0, data=data, factors=6)
    own = "nbpo" if name == "variant" else name
    assert setting == AUTHORS_SETTINGS[data][own]
    assert sampler.n_negatives == AUTHORS_FIXED["n_negatives"]
    assert type(sampler).__name__.startswith("Authors")
    if own == "nbpo":  # K1 = K0; lambda_phi on the whole P, Q instead of our per-row L2
        assert (sampler.flip_dim, sampler.flip_l2, sampler.objective) == (6, 0.0, "exact")
    assert params == ({"objective": "exact"} if own == "nbpo" else {})  # the caller's dict is untouched


def test_authors_loop_initialises_mf_without_biases_uniformly(train):
    model, _, _ = authors_loop("bpr", {}, train, 3, factors=8)
    again, _, _ = authors_loop("bpr", {}, train, 3, factors=8)
    for w, v in zip(model.parameters(), again.parameters()):
        assert w.min() >= 0 and w.max() <= 1 / math.sqrt(8)
        assert (w == v).all()  # seeded
    assert {w.shape[1] for w in model.parameters()} == {8}  # factor tables only: no biases


def test_authors_loop_lr_replaces_their_eta(train):
    _, _, setting = authors_loop("bpo", {}, train, 0, lr=0.3)
    assert setting == dict(AUTHORS_SETTINGS["movielens"]["bpo"], eta=0.3)
