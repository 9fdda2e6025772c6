"""The Trainer: epochs of a sampler's batches through a model, with early stopping and checkpoints.

One loop serves every sampler and every model::

    sampler.prepare(train, rng)
    for epoch in range(epochs):
        for batch in sampler.batches(batch_size, rng):         # a Batch of numpy arrays, vectorized
            b = batch.to(device)
            loss = sampler.loss(model, b) + l2 * model.regularization(b.users, b.items).mean()
            loss.backward(); optimizer.step()
        validate, early-stop, call the callbacks, checkpoint

Backends
--------
``backend="torch"`` is the loop above (autograd; any model, any sampler, CPU or CUDA).
``backend="fused"`` runs each epoch in the fused CPU kernel that
:func:`recsampling.fast.find_kernel` returns for (model, sampler, optimizer, device): matrix
factorization (and the ID-only two-tower model, the same model) with bpr, popularity, dns, bpo,
nbpo, pointwise, relmf and ubpr, trained with ``"sgd"`` or ``"adagrad"`` on CPU. ``"auto"``
takes the kernel when there is one, else torch. The MF kernel steps once per training positive
(one row), i.e. it is the torch path with ``batch_size=1``; DLA on candidate sets
(:mod:`recsampling.fast.dla`) steps once per batch of ``batch_size`` rows, as the torch path.

The meaning of ``lr`` and ``l2`` is the same on both paths: the objective is
``mean(loss) + l2 * mean(||touched vectors||²)``; with ``optimizer="sgd"`` the torch path steps on
the batch *sum* (the mean times the batch size) so that ``lr`` is a per-example step, as in the
fused kernel and in ``implicit``. Adam and Adagrad step on the batch mean.

Sampler parameters
------------------
Samplers with learnable parameters (NBPO's flip rates, DLA's propensity model) are optimized with
the model, in the groups of ``sampler.param_groups(lr)`` (torch optimizer parameter groups, e.g.
``[{"params": [...], "lr": 0.05, "weight_decay": 0.0}]``). The base class's default puts all of
``sampler.parameters()`` in one group at the Trainer's lr; NBPO and DLA override it. Any L2 of sampler parameters belongs in the sampler's
loss; the Trainer's ``l2`` acts on the model only.

Reproducibility
---------------
Everything random comes from one ``numpy.random.Generator`` resolved from ``random_state``
(batches, negatives, model-independent draws), and torch's own randomness (dropout) runs inside
``torch.random.fork_rng`` seeded from it, so the global torch state is left as it was. Same seed,
same result on CPU with the torch backend; the fused backend is reproducible with
``n_threads=1`` (hogwild updates with more threads are not).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from recsampling import distributed
from recsampling._utils import (RandomState, check_int, check_memory, check_number, check_random_state, resolve_device,
                               set_threads, torch_seed)
from recsampling.checkpoint import save_checkpoint
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler

__all__ = ["Trainer", "TrainResult", "StopTraining"]

logger = logging.getLogger("recsampling")
progress_logger = logging.getLogger("recsampling.progress")

_OPTIMIZERS = ("adam", "adagrad", "sgd")
_BACKENDS = ("auto", "torch", "fused")
_LOSS_ALARM = 1e3  # an epoch's mean loss above this gets one warning (see _fit)


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch (the result is kept).

    Any other exception raised by a callback (e.g. ``optuna.TrialPruned``) propagates.
    """


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history : list of dict
        One dict per epoch: ``epoch``, ``loss``, ``time`` (s), ``samples``, ``samples_per_s``
        and, on validation epochs, the metric (e.g. ``"ndcg@10"``).
    best_epoch : int or None
        Epoch whose weights the model holds after fit when validation ran (else None).
    best_metric : float or None
    stopped_early : bool
        Stopped by patience, by a callback or by divergence.
    diverged : bool
        An epoch's loss or weights were not finite: training stopped there, and the model holds
        the best validated weights, else those of the last finite epoch (the initial ones when
        the first epoch diverged).
    backend : str
        ``"torch"`` or ``"fused"``.
    metric : str
    world_size : int
        Processes that trained together (1 outside torchrun; see :mod:`recsampling.distributed`).
    """

    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    diverged: bool = False
    backend: str = "torch"
    metric: str = "ndcg@10"
    world_size: int = 1

    @property
    def losses(self) -> list[float]:
        """Mean training loss of each epoch."""
        return [h["loss"] for h in self.history]

    @property
    def metrics(self) -> list[float]:
        """Validation ``metric`` of each validated epoch (empty without validation data)."""
        return [h[self.metric] for h in self.history if self.metric in h]

    def to_dict(self) -> dict:
        """JSON-able summary: history, best epoch and metric, early stop, backend, metric name."""
        return {"history": self.history, "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "stopped_early": self.stopped_early, "diverged": self.diverged, "backend": self.backend, "metric": self.metric,
                "world_size": self.world_size}


def _parse_metric(metric: str) -> tuple[str, int]:
    if not isinstance(metric, str) or "@" not in metric:
        raise ValueError(f"metric must look like 'ndcg@10' or 'recall@20', got {metric!r}")
    name, _, k = metric.partition("@")
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric must look like 'ndcg@10' (a positive cutoff after '@'), got {metric!r}")
    return name, int(k)


def validation_metric(model: nn.Module, valid: Interactions, train: Interactions, metric: str) -> float:
    """``metric`` (e.g. ``"ndcg@10"``) of ``model`` on ``valid``, training items excluded.

    Uses :func:`recsampling.evaluation.evaluate` (full ranking).
    """
    from recsampling.evaluation import evaluate

    name, k = _parse_metric(metric)
    values = evaluate(model, valid, train=train, ks=(k,), metrics=(name,)).to_dict()
    if metric not in values:
        raise ValueError(f"metric {metric!r} is not computed by recsampling.evaluation.evaluate; "
                         f"available: {sorted(values)}")
    return float(values[metric])


class Trainer:
    """Fit a model with a sampler: epochs, optimizer, device, seed, early stopping, checkpoints.

    Parameters
    ----------
    epochs : int, default 20
    batch_size : int, default 1024
        Rows per batch on the torch path (the fused path visits single triples).
    optimizer : {"adam", "adagrad", "sgd"}, default "adam"
    lr : float, default 0.01
        Learning rate (per example for ``"sgd"``, see the module docstring).
    l2 : float, default 0.0
        Coefficient of ``model.regularization`` (squared L2 of the touched embeddings).
    device : str, default "auto"
        ``"auto"``: CUDA when torch sees one, else CPU.
    random_state : int, numpy.random.Generator or None
    backend : {"auto", "torch", "fused"}, default "auto"
    n_threads : int or None
        Threads of torch, numba and BLAS during ``fit`` (set once, restored afterwards) and of
        the fused kernel; None: the machine's cores (``os.cpu_count()``, capped by numba's
        pool). 1 makes the fused kernel bit-reproducible.
    patience : int or None
        Stop after this many validation rounds without improvement (needs ``valid``); the best
        weights are restored at the end whenever validation ran.
    metric : str, default "ndcg@10"
        Validation metric (higher is better), a key of ``evaluation.evaluate(...).to_dict()``.
    eval_every : int, default 1
        Validate every this many epochs (and after the last).
    progress : bool, default True
        Show the progress: a tqdm bar with the loss and the metric where one renders (stderr is a
        terminal, or a notebook); elsewhere (a pipe, a log file) one INFO record per epoch on the
        ``recsampling.progress`` logger, ``"bpr: epoch 3/20, loss 0.4123, ndcg@10 0.2011 (1.2 s)"``
        (shown where logging shows INFO records, as the CLI's does).
    callbacks : sequence of callables ``callback(epoch, logs) -> None``
        Called after each epoch with that epoch's history entry. Raise :class:`StopTraining` to
        stop; any other exception (``optuna.TrialPruned``) propagates out of ``fit``.
    checkpoint_dir : str or Path, optional
        Save ``last.pt`` after each epoch (and ``best.pt`` on each improvement) there.
    """

    def __init__(
        self,
        epochs: int = 20,
        batch_size: int = 1024,
        optimizer: str = "adam",
        lr: float = 0.01,
        l2: float = 0.0,
        device: str = "auto",
        random_state: RandomState = None,
        backend: str = "auto",
        n_threads: int | None = None,
        patience: int | None = None,
        metric: str = "ndcg@10",
        eval_every: int = 1,
        progress: bool = True,
        callbacks: Sequence[Callable[[int, dict], Any]] = (),
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.device = device
        self.random_state = random_state
        self.backend = backend
        self.n_threads = n_threads
        self.patience = patience
        self.metric = metric
        self.eval_every = eval_every
        self.progress = progress
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir

    # ------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        check_int(self.epochs, "epochs", 0)
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.eval_every, "eval_every", 1)
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        check_number(self.lr, "lr", 0.0, strict=True)
        check_number(self.l2, "l2", 0.0)
        check_int(self.n_threads, "n_threads", 1, none_ok=True)
        check_int(self.patience, "patience", 1, none_ok=True)
        _parse_metric(self.metric)
        if any(not callable(c) for c in self.callbacks):
            raise ValueError("callbacks must be callables callback(epoch, logs)")

    def _optimizer(self, model: nn.Module, sampler: Sampler) -> torch.optim.Optimizer | None:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
        own = [p for p in sampler.parameters() if p.requires_grad]
        sg = list(sampler.param_groups(float(self.lr)))
        covered = {id(p) for g in sg for p in g["params"]}
        missing = [p for p in own if id(p) not in covered]
        groups += sg + ([{"params": missing}] if missing else [])
        groups = [g for g in groups if len(list(g["params"]))]
        if not groups:
            return None
        cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}[self.optimizer]
        return cls(groups, lr=float(self.lr))

    def _kernel(self, model, sampler, device, ctx):
        """The fused kernel factory for this fit, None for the torch loop (see ``backend``)."""
        from recsampling.fast import find_kernel, kernel_keys

        if self.backend == "torch":
            return None
        if ctx.distributed:  # the kernels are single-process (see recsampling.distributed)
            if self.backend == "fused":
                raise ValueError(f"backend='fused' runs in one process, but torchrun started {ctx.world_size}; "
                                 "use backend='auto' or 'torch' under torchrun (gradients are all-reduced there)")
            if ctx.is_main and find_kernel(model, sampler, self.optimizer, device) is not None:
                logger.info("torchrun with %d processes: the torch path, not the fused kernel", ctx.world_size)
            return None
        factory = find_kernel(model, sampler, self.optimizer, device)
        if self.backend == "fused" and factory is None:
            keys = sorted({(m, o, d) for m, _, o, d in kernel_keys()})
            samplers = sorted({s for _, s, _, _ in kernel_keys()})
            raise ValueError(
                f"backend='fused' has no kernel for model {type(model).__name__}, sampler "
                f"{getattr(sampler, 'name', type(sampler).__name__)!r}, optimizer {self.optimizer!r}, device {device}; "
                f"kernels exist for samplers {samplers} with (model, optimizer, device) in {keys}")
        return factory

    # ------------------------------------------------------------------------------------------
    def fit(self, model: nn.Module, sampler: Sampler, train: Interactions,
            valid: Interactions | None = None) -> TrainResult:
        """Train ``model`` in place with ``sampler`` on ``train``.

        The thread counts of torch, numba and BLAS are set once from ``n_threads`` for the fit
        (:func:`recsampling._utils.set_threads`) and put back afterwards.

        Parameters
        ----------
        model : EmbeddingModel
            Sized to ``train`` (``n_users``, ``n_items``).
        sampler : Sampler
            Prepared here (``sampler.prepare(train, rng)``).
        train : Interactions
        valid : Interactions, optional
            Same index space as ``train``; enables the validation metric, early stopping
            (``patience``) and restoring the best weights.

        Returns
        -------
        TrainResult

        Raises
        ------
        ValueError
            for a bad setting or input, before any work: among them a sampler's per-row item count
            (``n_negatives``, ``n_candidates``, ``n_sampled``) beyond the catalogue, and optimizer
            state or a batch beyond the machine's memory.
        """
        self._validate()
        threads = set_threads(self.n_threads)
        try:
            return self._fit(model, sampler, train, valid)
        finally:
            threads.restore()

    def _fit(self, model, sampler, train, valid) -> TrainResult:
        if not isinstance(train, Interactions):
            raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
        if (getattr(model, "n_users", train.n_users), getattr(model, "n_items", train.n_items)) != train.shape:
            raise ValueError(f"the model is sized {model.n_users} users x {model.n_items} items but train is "
                             f"{train.n_users} x {train.n_items}")
        if valid is not None:
            if not isinstance(valid, Interactions):
                raise ValueError(f"valid must be an Interactions or None, got {type(valid).__name__}")
            if valid.shape != train.shape:
                raise ValueError(f"valid must share train's index space {train.shape}, got {valid.shape}")
        _check_sizes(model, sampler, train, int(self.batch_size))
        rng = check_random_state(self.random_state)
        ctx = distributed.init(resolve_device(self.device))
        device = distributed.rank_device(resolve_device(self.device), ctx)
        model.to(device)
        sampler.prepare(train, rng)  # the same draws on every rank: the same sampler parameters
        sampler.to(device)
        sampler.shard_ = (ctx.rank, ctx.world_size)
        if ctx.distributed:
            # this rank's shard of the rows (sampler.shard_) and its own stream of draws from here on
            rng = np.random.default_rng(np.random.SeedSequence(int(rng.integers(2**63))).spawn(ctx.world_size)[ctx.rank])
        factory = self._kernel(model, sampler, device, ctx)
        kernel = None if factory is None else factory(model, sampler, optimizer=self.optimizer, lr=float(self.lr),
                                                      l2=float(self.l2), n_threads=self.n_threads,
                                                      batch_size=int(self.batch_size))
        result = TrainResult(backend="torch" if kernel is None else "fused", metric=self.metric,
                             world_size=ctx.world_size)
        objective = None
        opt = None
        if kernel is None:
            objective = _Objective(model, sampler, float(self.l2))
            if ctx.distributed:
                from torch.nn.parallel import DistributedDataParallel

                # rank 0's weights on every rank, then gradients averaged before each step
                objective = DistributedDataParallel(
                    objective, device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=_has_unused_parameters(objective, sampler, self.batch_size, device))
            opt = self._optimizer(model, sampler)
        best_state = None
        # what divergence falls back to without a validated best: the last finite epoch's weights
        good_state, good_epoch = _snapshot(model, sampler), None
        warned_growth = False
        wait = 0
        ckpt_dir = Path(self.checkpoint_dir) if self.checkpoint_dir is not None and ctx.is_main else None
        if ckpt_dir is not None:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        bar, lines = None, False
        label = sampler.name or type(sampler).__name__
        if self.progress and ctx.is_main:
            if _bars_render():
                from tqdm.auto import tqdm

                bar = tqdm(total=self.epochs, desc=label, unit="epoch")
            else:  # a pipe or a log file: no carriage returns
                lines = True
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=fork_devices):
                torch.manual_seed(torch_seed(rng))
                for epoch in range(self.epochs):
                    t0 = time.perf_counter()
                    if kernel is not None:
                        loss, n = kernel.epoch(rng)
                    else:
                        loss, n = self._torch_epoch(objective, model, sampler, opt, device, rng, ctx)
                    dt = time.perf_counter() - t0
                    logs = {"epoch": epoch, "loss": float(loss), "time": dt, "samples": int(n),
                            "samples_per_s": n / dt if dt > 0 else float("inf")}
                    if not (math.isfinite(logs["loss"]) and _finite(model, sampler)):
                        logs["diverged"] = True
                        result.history.append(logs)
                        result.diverged = result.stopped_early = True
                        kept = (f"the best validated epoch's ({result.best_epoch})" if best_state is not None else
                                f"epoch {good_epoch}'s" if good_epoch is not None else "the initial")
                        if ctx.is_main:
                            logger.warning("epoch %d diverged (loss %s): training stopped, the model keeps %s weights; "
                                           "lower lr (%g)%s", epoch, logs["loss"], kept, self.lr,
                                           " or clip the propensities" if hasattr(sampler, "clip") else "")
                        if best_state is None:
                            best_state = good_state
                        break
                    # every sampler's loss starts near 1 (log 2 for BPR): far above it, the steps or
                    # the weights are out of hand
                    if not warned_growth and abs(logs["loss"]) > _LOSS_ALARM:
                        warned_growth = True
                        if ctx.is_main:
                            logger.warning("epoch %d: the loss is %.3g (it starts near 1): lr=%g is likely too high%s",
                                           epoch, logs["loss"], self.lr,
                                           ", or the propensities too small (clip them)" if hasattr(sampler, "clip")
                                           else "")
                    if valid is None:
                        good_state, good_epoch = _snapshot(model, sampler), epoch
                    improved = False
                    if valid is not None and ((epoch + 1) % self.eval_every == 0 or epoch + 1 == self.epochs):
                        # rank 0 evaluates; every rank keeps the same books (and the same best weights)
                        value = validation_metric(model, valid, train, self.metric) if ctx.is_main else None
                        value = distributed.broadcast_object(value, ctx)
                        logs[self.metric] = value
                        if result.best_metric is None or value > result.best_metric:
                            result.best_metric, result.best_epoch = value, epoch
                            best_state = _snapshot(model, sampler)
                            improved = True
                            wait = 0
                        else:
                            wait += 1
                    result.history.append(logs)
                    if ctx.is_main:
                        logger.info("epoch %d: %s", epoch, {k: v for k, v in logs.items() if k != "epoch"})
                    if lines:
                        metric = f", {self.metric} {logs[self.metric]:.4f}" if self.metric in logs else ""
                        progress_logger.info("%s: epoch %d/%d, loss %.4f%s (%.1f s)", label, epoch + 1, self.epochs,
                                             logs["loss"], metric, dt)
                    if bar is not None:
                        bar.update(1)
                        post = {"loss": f"{logs['loss']:.4f}"}
                        if self.metric in logs:
                            post[self.metric] = f"{logs[self.metric]:.4f}"
                        bar.set_postfix(post)
                    if ckpt_dir is not None:
                        save_checkpoint(ckpt_dir / "last.pt", model, sampler, train, extra={"epoch": epoch})
                        if improved:
                            save_checkpoint(ckpt_dir / "best.pt", model, sampler, train, extra={"epoch": epoch})
                    stop, error = False, None
                    if ctx.is_main:
                        try:
                            for cb in self.callbacks:
                                cb(epoch, dict(logs))
                        except StopTraining:
                            stop = True
                        except BaseException as e:  # e.g. optuna.TrialPruned: the other ranks stop too
                            error = e
                    if ctx.distributed:
                        stop = distributed.broadcast_object(stop or error is not None, ctx)
                    if error is not None:
                        raise error
                    if self.patience is not None and valid is not None and wait >= self.patience:
                        stop = True
                    if stop:
                        result.stopped_early = epoch + 1 < self.epochs
                        break
        finally:
            if bar is not None:
                bar.close()
        if best_state is not None:
            model.load_state_dict(best_state[0])
            sampler.load_state_dict(best_state[1])
        return result

    def _torch_epoch(self, objective, model, sampler, opt, device, rng, ctx) -> tuple[float, int]:
        model.train()
        sampler.train()
        # the epoch's loss is summed on the device and read once at the end: a float() per batch
        # would wait for the device at every step
        total = torch.zeros((), dtype=torch.float64, device=device)
        rows = 0
        # sgd steps on the (global) batch sum; under torchrun the gradients are averaged over the
        # ranks, each holding 1/W of the global batch
        scale_sum = self.optimizer == "sgd"
        batch_size = -(-int(self.batch_size) // ctx.world_size)
        for batch in sampler.batches(batch_size, rng):
            b = _to_device(batch, device, sampler)
            loss = objective(b)
            bsz = len(b)
            if opt is not None:
                opt.zero_grad(set_to_none=True)
                (loss * (bsz * ctx.world_size) if scale_sum else loss).backward()
                opt.step()
            total += loss.detach().to(torch.float64) * bsz
            rows += bsz
        model.eval()
        sampler.eval()
        if ctx.distributed:
            total, rows = distributed.all_reduce_sum([float(total), rows], ctx, device)
            rows = int(rows)
        return (float(total) / rows if rows else float("nan")), rows


def _bars_render() -> bool:
    """Whether a tqdm bar renders: stderr is a terminal, or this runs in a notebook."""
    import sys

    if "ipykernel" in sys.modules:
        return True
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def _check_sizes(model: nn.Module, sampler: Sampler, train: Interactions, batch_size: int) -> None:
    """Refuse, before anything is allocated, per-row item counts beyond the catalogue and a fit that
    cannot fit in memory: the optimizer's copies of the weights (gradients, two Adam moments) or one
    batch (its rows times their items times the embedding width, indices and gathered vectors)."""
    n_items = train.n_items
    counts = sampler.row_item_counts()
    for name, value in counts.items():
        if value > n_items:
            raise ValueError(f"sampler parameter {name}={value} is more than the {n_items} items of the data; "
                             f"expected at most {n_items}")
    per_row = 1 + max(counts.values(), default=1)
    dim = getattr(model, "dim", 64)
    dim = dim if isinstance(dim, int) else 64
    rows = min(batch_size, train.nnz)
    weights = sum(p.numel() for p in model.parameters()) * 4 * 3
    check_memory(max(weights, rows * per_row * (8 + 4 * dim) * 2),
                 f"training (batch_size={batch_size}, {per_row} items per row, embedding width {dim})",
                 "batch_size, the sampler's item counts or the model's size")


def _snapshot(model: nn.Module, sampler: Sampler) -> tuple[dict, dict]:
    """Copies of the model's and the sampler's state dicts."""
    return copy.deepcopy(model.state_dict()), copy.deepcopy(sampler.state_dict())


def _finite(model: nn.Module, sampler: Sampler) -> bool:
    """Every floating-point parameter of the model and the sampler is finite."""
    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for m in (model, sampler) for p in m.parameters()
                   if p.is_floating_point())


def _has_unused_parameters(objective: nn.Module, sampler: Sampler, batch_size: int, device) -> bool:
    """Whether some trainable parameter gets no gradient from a batch's loss (DDP must then look for them).

    Probed once, on one batch drawn from a throw-away stream (the fit's own draws are untouched).
    """
    params = [p for p in objective.parameters() if p.requires_grad]
    batch = next(iter(sampler.batches(int(batch_size), np.random.default_rng(0))), None)
    if batch is None or not params:
        return False
    grads = torch.autograd.grad(objective(_to_device(batch, device, sampler)), params, allow_unused=True)
    return any(g is None for g in grads)


def _to_device(batch, device, sampler: Sampler) -> Batch:
    """A drawn batch on ``device`` (:meth:`Batch.to`); anything but a :class:`Batch` is a clear error."""
    if not isinstance(batch, Batch):
        raise ValueError(f"{type(sampler).__name__}.batches() must yield recsampling.samplers.Batch objects "
                         f"(users, items, mask, labels, weights), got {type(batch).__name__}")
    return batch.to(device)


class _Objective(nn.Module):
    """The training loss of a batch as a module's forward (what DistributedDataParallel wraps).

    ``sampler.loss(model, batch) + l2 * mean(model.regularization(users, items))``; its parameters
    are the model's and the sampler's own (NBPO's flip factors, DLA's propensities).
    """

    def __init__(self, model: nn.Module, sampler: Sampler, l2: float):
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.l2 = l2

    def forward(self, b: Batch) -> torch.Tensor:
        loss = self.sampler.loss(self.model, b)
        if self.l2 > 0:
            loss = loss + self.l2 * self.model.regularization(b.users, b.items).mean()
        return loss
