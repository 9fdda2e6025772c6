"""The Trainer: learning, determinism, early stopping, callbacks, backends, its checkpoint_dir."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import recsampling.train as train_mod
from recsampling.models import make_model
from recsampling.samplers import make_sampler
from recsampling.checkpoint import load_checkpoint
from recsampling.train import StopTraining, Trainer
from tests.test_samplers import checkerboard


def _fit(model_name="mf", sampler="bpr", epochs=5, **kw):
    train = checkerboard()
    model = make_model(model_name, train, factors=8, random_state=0)
    kw = {"lr": 0.05, "progress": False, "random_state": 0, "device": "cpu", "batch_size": 64, **kw}
    result = Trainer(epochs=epochs, **kw).fit(model, make_sampler(sampler), train)
    return model, result


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_loss_decreases(optimizer):
    lr = {"adam": 0.05, "adagrad": 0.1, "sgd": 0.05}[optimizer]
    _, r = _fit(epochs=8, optimizer=optimizer, lr=lr, backend="torch")
    assert r.backend == "torch"
    assert r.losses[-1] < 0.8 * r.losses[0]
    assert all(h["samples"] == checkerboard().nnz and h["samples_per_s"] > 0 for h in r.history)


@pytest.mark.parametrize("model_name,sampler", [("mf", "bpr"), ("twotower", "inbatch"), ("mf", "dns")])
def test_same_seed_same_result(model_name, sampler):
    kw = {"l2": 1e-3}
    if model_name == "twotower":
        kw = {}
    m1, r1 = _fit(model_name, sampler, epochs=3, **kw)
    m2, r2 = _fit(model_name, sampler, epochs=3, **kw)
    m3, _ = _fit(model_name, sampler, epochs=3, random_state=1, **kw)
    assert r1.losses == r2.losses
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(m1.state_dict()[next(iter(m1.state_dict()))], m3.state_dict()[next(iter(m3.state_dict()))])


def test_dropout_is_reproducible_and_leaves_global_rng_alone():
    train = checkerboard()
    feats = np.random.default_rng(0).random((train.n_users, 4))
    train = train.with_values(user_features=feats)
    state = torch.random.get_rng_state()
    out = []
    for _ in range(2):
        m = make_model("twotower", train, factors=4, dropout=0.5, random_state=0)
        Trainer(epochs=2, lr=0.05, progress=False, random_state=3, device="cpu").fit(m, make_sampler("bpr"), train)
        out.append(m.embedding_tables()[0])
    np.testing.assert_array_equal(out[0], out[1])
    assert torch.equal(torch.random.get_rng_state(), state)


def test_fused_backend_is_chosen_for_mf_sgd_cpu_and_is_reproducible_with_one_thread():
    m1, r1 = _fit(optimizer="sgd", n_threads=1)
    m2, r2 = _fit(optimizer="sgd", n_threads=1)
    assert r1.backend == "fused"
    assert r1.losses == r2.losses and r1.losses[-1] < r1.losses[0]
    assert torch.equal(m1.user_factors.weight, m2.user_factors.weight)
    _, r3 = _fit(optimizer="adam")
    assert r3.backend == "torch"
    _, r4 = _fit(sampler="dns", optimizer="adagrad", n_threads=1)
    assert r4.backend == "fused"
    with pytest.raises(ValueError, match="backend='fused' has no kernel"):
        _fit(sampler="bpr", optimizer="adam", backend="fused")


def test_fused_and_torch_sgd_optimize_the_same_objective():
    # same lr / l2 meaning on both paths: both reach a similar loss and ranking quality
    _, rf = _fit(optimizer="sgd", epochs=15, l2=1e-3, n_threads=1)
    _, rt = _fit(optimizer="sgd", epochs=15, l2=1e-3, backend="torch", batch_size=8)
    assert rf.backend == "fused" and rt.backend == "torch"
    assert abs(rf.losses[-1] - rt.losses[-1]) < 0.1


def test_early_stopping_restores_the_best_weights(monkeypatch):
    values = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.9, 0.9])
    snapshots = []

    def fake_metric(model, valid, train, metric):
        snapshots.append(model.user_factors.weight.detach().clone())
        return next(values)

    monkeypatch.setattr(train_mod, "validation_metric", fake_metric)
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    r = Trainer(epochs=7, lr=0.05, patience=2, progress=False, random_state=0, device="cpu").fit(
        model, make_sampler("bpr"), train, valid=train)
    assert [h["epoch"] for h in r.history] == [0, 1, 2, 3]  # two rounds without improvement after epoch 1
    assert r.stopped_early and r.best_epoch == 1 and r.best_metric == 0.3
    assert torch.equal(model.user_factors.weight, snapshots[1])
    assert [h.get("ndcg@10") for h in r.history] == [0.1, 0.3, 0.2, 0.25]


def test_callbacks_see_each_epoch_and_can_stop_or_raise():
    seen = []

    def cb(epoch, logs):
        seen.append((epoch, logs["loss"]))
        if epoch == 2:
            raise StopTraining

    _, r = _fit(epochs=10, callbacks=[cb])
    assert [e for e, _ in seen] == [0, 1, 2] and len(r.history) == 3 and r.stopped_early

    class Pruned(Exception):
        pass

    def prune(epoch, logs):
        raise Pruned

    with pytest.raises(Pruned):
        _fit(epochs=3, callbacks=[prune])


def test_validation_with_real_metrics():
    train = checkerboard()
    rng = np.random.default_rng(0)
    mask = rng.random(train.nnz) < 0.8
    tr, va = train.subset(mask), train.subset(~mask)
    model = make_model("mf", tr, factors=8, random_state=0)
    r = Trainer(epochs=6, lr=0.05, progress=False, random_state=0, device="cpu", metric="recall@5").fit(
        model, make_sampler("bpr"), tr, valid=va)
    assert len(r.metrics) == 6 and all(0 <= v <= 1 for v in r.metrics)
    assert r.best_metric == max(r.metrics) > 0.2


@pytest.mark.parametrize("bad", [{"optimizer": "rmsprop"}, {"lr": 0}, {"epochs": -1}, {"backend": "gpu"},
                                 {"metric": "ndcg"}, {"patience": 0}, {"batch_size": 0}])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        _fit(**bad)


def test_trainer_checkpoint_dir(tmp_path):
    _fit(epochs=2, checkpoint_dir=tmp_path)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck.extra["epoch"] == 1


def test_fit_sets_the_threads_once_and_restores_them():
    import numba

    before = (torch.get_num_threads(), numba.get_num_threads())
    seen = []
    _fit(epochs=1, backend="torch", n_threads=1,
         callbacks=[lambda e, logs: seen.append((torch.get_num_threads(), numba.get_num_threads()))])
    assert seen == [(1, 1)]
    assert (torch.get_num_threads(), numba.get_num_threads()) == before
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        _fit(epochs=1, n_threads=0)


# ---- divergence: a non-finite epoch stops training and keeps the best (else last finite) weights
def _poison_after(epoch_to_poison):
    """A callback that turns the model's weights into NaN after the given epoch."""

    def cb(epoch, logs):
        if epoch == epoch_to_poison:
            with torch.no_grad():
                cb.model.item_factors.weight.fill_(float("nan"))

    return cb


@pytest.mark.parametrize("with_valid", [True, False])
def test_a_diverged_epoch_stops_training_and_keeps_finite_weights(with_valid, caplog):
    train = checkerboard()
    model = make_model("mf", train, factors=4, random_state=0)
    cb = _poison_after(1)
    cb.model = model
    snapshots = []
    trainer = Trainer(epochs=6, batch_size=16, random_state=0, progress=False, n_threads=1, backend="torch",
                      callbacks=[lambda e, logs: snapshots.append(model.item_factors.weight.detach().clone()), cb])
    with caplog.at_level("WARNING", logger="recsampling"):
        result = trainer.fit(model, make_sampler("bpr"), train, train if with_valid else None)
    assert result.diverged and result.stopped_early
    assert len(result.history) == 3 and result.history[-1]["diverged"]  # epochs 0, 1 and the diverged 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the best validated epoch's weights, else the last finite epoch's (1: poisoned after it was recorded)
    assert torch.equal(model.item_factors.weight, snapshots[result.best_epoch if with_valid else 1])
    lines = [r.getMessage() for r in caplog.records if "diverged" in r.getMessage()]
    assert len(lines) == 1 and "lower lr" in lines[0]


def test_an_exploding_loss_is_warned_about_once(caplog):
    with caplog.at_level("WARNING", logger="recsampling"):
        _fit(epochs=3, lr=100.0, optimizer="adam", backend="torch")
    assert sum("likely too high" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("batch", [(np.zeros(2, np.int64), np.zeros((2, 2), np.int64)),
                                   {"users": np.zeros(2, np.int64), "items": np.zeros((2, 2), np.int64)}],
                         ids=["tuple", "dict"])
def test_a_batch_that_is_not_a_batch_is_a_clear_error(batch):
    from recsampling.samplers import Sampler

    class Rows(Sampler):
        def batches(self, batch_size, rng):
            yield batch

    model = make_model("mf", checkerboard(), factors=4, random_state=0)
    with pytest.raises(ValueError, match="Rows.batches.. must yield recsampling.samplers.Batch objects .users, items, "
                                         "mask, labels, weights., got " + type(batch).__name__):
        Trainer(epochs=1, progress=False, backend="torch").fit(model, Rows(), checkerboard())


def test_importing_recsampling_lets_idle_openmp_threads_sleep_unless_the_user_chose():
    import os
    import subprocess
    import sys

    code = "import os, recsampling, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for given, want in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        run_env = env if given is None else {**env, "OMP_WAIT_POLICY": given}
        out = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == want
