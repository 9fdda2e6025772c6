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
import json
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
from recsampling._utils import (RandomState, check_memory, check_random_state, resolve_device, set_threads, torch_seed,
                               to_jsonable)
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler

__all__ = ["Trainer", "TrainResult", "StopTraining", "save_checkpoint", "load_checkpoint", "Checkpoint"]

logger = logging.getLogger("recsampling")
progress_logger = logging.getLogger("recsampling.progress")

_OPTIMIZERS = ("adam", "adagrad", "sgd")
_BACKENDS = ("auto", "torch", "fused")
_FORMAT = "recsampling-checkpoint"
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


def _check_number(value, name: str, low: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _parse_metric(metric: str) -> tuple[str, int]:
    if not isinstance(metric, str) or "@" not in metric:
        raise ValueError(f"metric must look like 'ndcg@10' or 'recall@20', got {metric!r}")
    name, _, k = metric.partition("@")
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"metric must look like 'ndcg@10' (a positive cutoff after '@'), got {metric!r}")
    return name, int(k)


def validation_metric(model: nn.Module, valid: Interactions, train: Interactions, metric: str) -> float:
    """``metric`` (e.g. ``"ndcg@10"``) of ``model`` on ``valid``, training items excluded.

    Uses :func:`recsampling.metrics.evaluate` (full ranking).
    """
    name, k = _parse_metric(metric)
    try:
        from recsampling.metrics import evaluate
    except ImportError as e:  # pragma: no cover - only while the metrics module is missing
        raise ValueError("validation needs recsampling.metrics.evaluate, which is not available "
                         f"({e}); train without valid=") from None
    res = evaluate(model, valid, train=train, ks=(k,), metrics=(name,))
    values = res.to_dict() if hasattr(res, "to_dict") else dict(res)
    if metric not in values:
        raise ValueError(f"metric {metric!r} is not computed by recsampling.metrics.evaluate; "
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
        Validation metric (higher is better), a key of ``metrics.evaluate(...).to_dict()``.
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
        _check_int(self.epochs, "epochs", 0)
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.eval_every, "eval_every", 1)
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        _check_number(self.lr, "lr", 0.0, strict=True)
        _check_number(self.l2, "l2", 0.0)
        if self.n_threads is not None:
            _check_int(self.n_threads, "n_threads", 1)
        if self.patience is not None:
            _check_int(self.patience, "patience", 1)
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


#: sampler attributes that count items per training row: more than the catalogue is meaningless
_ITEMS_PER_ROW = ("n_negatives", "n_candidates", "n_sampled")


def _check_sizes(model: nn.Module, sampler: Sampler, train: Interactions, batch_size: int) -> None:
    """Refuse, before anything is allocated, per-row item counts beyond the catalogue and a fit that
    cannot fit in memory: the optimizer's copies of the weights (gradients, two Adam moments) or one
    batch (its rows times their items times the embedding width, indices and gathered vectors)."""
    n_items = train.n_items
    counts = []
    for name in _ITEMS_PER_ROW:
        value = getattr(sampler, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if value > n_items:
                raise ValueError(f"sampler parameter {name}={value} is more than the {n_items} items of the data; "
                                 f"expected at most {n_items}")
            counts.append(int(value))
    per_row = 1 + max(counts, default=1)
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


# ----------------------------------------------------------------------------------------------
# checkpoints: torch.save of plain tensors / lists / strings + a JSON of parameters (no pickled objects)


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    model : EmbeddingModel
        Rebuilt with its parameters and weights.
    sampler : Sampler or None
        Rebuilt from its constructor parameters; prepared on ``train`` and with its state loaded
        when the training data was saved, else unprepared with ``sampler_state`` kept aside.
    train : Interactions or None
        The training interactions (matrix, ids, columns, features) when saved.
    user_ids, item_ids : numpy.ndarray
        The index -> raw id maps.
    sampler_state : dict
        The sampler's state dict as saved.
    extra : dict
        Whatever JSON-able data was given to ``save_checkpoint`` (epoch, history, ...).
    """

    model: nn.Module
    sampler: Sampler | None
    train: Interactions | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    sampler_state: dict
    extra: dict


_ID_KINDS = {"int": torch.int64, "uint": torch.int64, "float": torch.float64, "bool": torch.bool}
_ID_TYPES = {"b": bool, "i": int, "f": float, "s": str}


def _id_type(value) -> str | None:
    """The one-letter type code of a raw id in an object array; None for unsupported types."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    return "s" if isinstance(value, str) else None


def _ids_out(ids: np.ndarray, name: str):
    """An id map as tensors / lists that read back to equal ids of the same types (or a ValueError)."""
    ids = np.asarray(ids)
    kind = ids.dtype.kind
    if kind == "b":
        return {"kind": "bool", "values": torch.from_numpy(ids.copy())}
    if kind == "i":
        return {"kind": "int", "values": torch.from_numpy(ids.astype(np.int64))}
    if kind == "u":  # uint64 kept bit for bit in an int64 tensor (torch has no full uint64 support)
        return {"kind": "uint", "values": torch.from_numpy(ids.astype(np.uint64).view(np.int64))}
    if kind == "f":
        return {"kind": "float", "values": torch.from_numpy(ids.astype(np.float64))}
    if kind == "U":
        return {"kind": "str", "values": [str(x) for x in ids.tolist()]}
    if kind != "O":
        raise ValueError(f"{name} of dtype {ids.dtype} cannot be saved exactly; a checkpoint keeps int, uint, "
                         "float, bool or str ids (convert them, e.g. with .astype(str))")
    values = ids.tolist()
    types = [_id_type(v) for v in values]
    if None in types:
        k = types.index(None)
        raise ValueError(f"{name}[{k}] = {values[k]!r} is a {type(values[k]).__name__}; a checkpoint keeps ids "
                         "that are str, int, float or bool (convert the others, e.g. to str)")
    if all(t == "s" for t in types):
        return {"kind": "str", "values": [str(v) for v in values]}
    # mixed types (e.g. 1 and '1'): each id as its type code and exact text
    text = [repr(float(v)) if t == "f" else str(int(v)) if t == "i" else str(bool(v)) if t == "b" else str(v)
            for v, t in zip(values, types)]
    return {"kind": "object", "types": "".join(types), "values": text}


def _ids_in(d, n: int, name: str) -> np.ndarray:
    """Read back what :func:`_ids_out` wrote, checked: ``n`` distinct ids of the saved types."""
    from recsampling.data.interactions import _check_id_map

    if not isinstance(d, dict) or "kind" not in d or "values" not in d:
        raise ValueError(f"{name} is malformed (expected a dict with 'kind' and 'values')")
    kind, values = d["kind"], d["values"]
    if kind in _ID_KINDS:
        if not torch.is_tensor(values) or values.dtype != _ID_KINDS[kind] or values.ndim != 1:
            raise ValueError(f"{name} of kind {kind!r} must be a 1-D {_ID_KINDS[kind]} tensor")
        arr = values.numpy()
        if kind == "uint":
            arr = arr.view(np.uint64)
    elif kind in ("str", "object"):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{name} of kind {kind!r} must be a list of str")
        if kind == "str":
            arr = np.asarray(values, dtype=object)
        else:
            types = d.get("types")
            if not isinstance(types, str) or len(types) != len(values) or set(types) - set(_ID_TYPES):
                raise ValueError(f"{name} of kind 'object' needs one type code in {sorted(_ID_TYPES)} per id")
            arr = np.empty(len(values), dtype=object)
            try:
                arr[:] = [v == "True" if t == "b" else _ID_TYPES[t](v) for v, t in zip(values, types)]
            except ValueError as e:
                raise ValueError(f"{name} holds an id that does not read as its type: {e}") from None
    else:
        raise ValueError(f"{name} has unknown kind {kind!r}; expected one of {sorted([*_ID_KINDS, 'str', 'object'])}")
    return _check_id_map(arr, n, name)


def save_checkpoint(path, model: nn.Module, sampler: Sampler | None, train: Interactions, *,
                    include_train: bool = True, extra: dict | None = None) -> Path:
    """Save a model, its sampler's state and the id maps to one file (no pickled objects).

    The file's SHA-256 goes into the ``SHA256SUMS`` manifest of its folder (see
    :mod:`recsampling._checksums`), which :func:`load_checkpoint` checks.

    Parameters
    ----------
    path : str or Path
        The file to write (parents are created).
    model : EmbeddingModel
        A registered model (``"mf"``, ``"twotower"``).
    sampler : Sampler or None
        Saved as its registry name, constructor parameters (JSON) and ``state_dict()``.
    train : Interactions
        Its id maps are saved; with ``include_train`` also the matrix and columns, so that a
        loaded sampler can be prepared again and its learned state restored.
    include_train : bool, default True
        Store the training matrix and its columns (False: only the id maps; smaller files).
    extra : dict, optional
        JSON-able data stored alongside.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        when the parameters are not JSON-able or an id map cannot be saved exactly (ids must be
        int, uint, float, bool or str; object arrays may mix these types).
    """
    from recsampling._checksums import record_checksum
    from recsampling._files import atomic_write
    from recsampling.models import model_name
    from recsampling.samplers import sampler_params

    path = Path(path)
    meta = {
        "format": _FORMAT,
        "version": 1,
        "model": {"name": model_name(model), "params": to_jsonable(model.get_params()),
                  "n_users": int(model.n_users), "n_items": int(model.n_items)},
        "sampler": None if sampler is None else {"name": sampler.name, "params": to_jsonable(sampler_params(sampler))},
        "extra": to_jsonable(extra or {}),
    }
    try:
        meta_json = json.dumps(meta)
    except TypeError as e:
        raise ValueError(f"checkpoint parameters must be JSON-able: {e}") from None
    blob: dict[str, Any] = {
        "meta": meta_json,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "sampler_state": {} if sampler is None else {k: v.detach().cpu() for k, v in sampler.state_dict().items()},
        "user_ids": _ids_out(train.user_ids, "user_ids"),
        "item_ids": _ids_out(train.item_ids, "item_ids"),
    }
    if include_train:
        m = train.matrix
        t: dict[str, Any] = {"shape": list(m.shape), "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                             "indices": torch.from_numpy(m.indices.astype(np.int64)),
                             "data": torch.from_numpy(m.data.astype(np.float32))}
        for col in ("ratings", "timestamps", "propensities", "user_features", "item_features"):
            v = getattr(train, col)
            if v is not None:
                t[col] = torch.from_numpy(np.ascontiguousarray(v).astype(np.float64 if v.ndim == 1 else np.float32))
        t["user_feature_names"] = [str(x) for x in train.user_feature_names]
        t["item_feature_names"] = [str(x) for x in train.item_feature_names]
        blob["train"] = t
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(blob, tmp))  # a failed write (disk full) leaves no temporary
    record_checksum(path)
    return path


def _tensor(t: dict, key: str, dtype: torch.dtype, ndim: int) -> np.ndarray:
    v = t[key]
    if not torch.is_tensor(v) or v.dtype != dtype or v.ndim != ndim:
        raise ValueError(f"the saved training data's {key!r} must be a {ndim}-D {dtype} tensor")
    return v.numpy()


def _check_finite(state: dict, what: str) -> None:
    for k, v in state.items():
        if not torch.is_tensor(v):
            raise ValueError(f"{what} {k!r} is a {type(v).__name__}, expected a tensor")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{what} {k!r} has NaN or infinite values")


def _check_state_shapes(name: str, n_users: int, n_items: int, params: dict, state: dict) -> None:
    """The weights the saved parameters describe must be the stored ones, names and shapes.

    The model is built on torch's meta device first (shapes, no memory), so that edited
    parameters (``factors=10**12``) end in this ``ValueError`` rather than in an allocation.
    """
    from recsampling.models import model_from_params

    try:
        with torch.device("meta"):
            shell = model_from_params(name, n_users, n_items, params)
    except MemoryError:  # a placeholder array (e.g. side features) of the described size
        raise ValueError(f"the model's parameters {params} describe a model too large for memory") from None
    except (RuntimeError, NotImplementedError) as e:  # a plug-in model that cannot be built on the meta device
        logger.debug("model %r cannot be built on the meta device (%s); its shapes are checked after building", name, e)
        return
    expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise ValueError(f"the model weights do not fit the model {name!r}: missing {missing}, unexpected {unexpected}")
    for key, shape in expected.items():
        if stored[key] != shape:
            raise ValueError(f"the model weights do not fit the model: {key!r} is stored with shape {stored[key]}, "
                             f"but the model's parameters ({params}) give {shape}")


def _load_train(t, user_ids: np.ndarray, item_ids: np.ndarray) -> Interactions:
    """The saved training data, validated like any input (index bounds before scipy sees them)."""
    import scipy.sparse as sp

    from recsampling.data.interactions import _check_compressed

    if not isinstance(t, dict):
        raise ValueError("the saved training data is malformed (expected a dict)")
    shape = (len(user_ids), len(item_ids))
    if list(t["shape"]) != list(shape):
        raise ValueError(f"the saved training matrix has shape {t['shape']}, but the id maps give {list(shape)}")
    indptr, indices = _tensor(t, "indptr", torch.int64, 1), _tensor(t, "indices", torch.int64, 1)
    data = _tensor(t, "data", torch.float32, 1)
    _check_compressed(indptr, indices, data.size, shape[0], shape[1], "the saved training matrix", "row", "column")
    m = sp.csr_matrix((data, indices, indptr), shape=shape)
    cols = {c: _tensor(t, c, torch.float64, 1) for c in ("ratings", "timestamps", "propensities") if c in t}
    cols.update({c: _tensor(t, c, torch.float32, 2) for c in ("user_features", "item_features") if c in t})
    names = {}
    for key in ("user_feature_names", "item_feature_names"):
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ValueError(f"the saved training data's {key!r} must be a list of str")
        names[key] = tuple(value)
    return Interactions(matrix=m, user_ids=user_ids, item_ids=item_ids, **names, **cols)


def load_checkpoint(path, *, random_state: RandomState = 0) -> Checkpoint:
    """Load what :func:`save_checkpoint` wrote (``torch.load(weights_only=True)``), checked.

    The file is first compared with its SHA-256 in the folder's ``SHA256SUMS`` manifest; a file
    without a recorded checksum (written before checksums were, or copied without the manifest)
    loads with a logged warning. Everything read back is then validated as untrusted input, so
    that an edited file ends in a ``ValueError`` and never reaches a kernel: the id maps (exact
    types, distinct, one per row / column of the model), the training matrix (index bounds, sorted
    rows, finite values), finite weights whose shapes fit the model, and a sampler state whose
    integer tensors (e.g. DLA's popularity buckets) equal those ``prepare`` derives from the saved
    training data.

    Parameters
    ----------
    path : str or Path
    random_state : int, Generator or None
        Passed to ``sampler.prepare`` when the sampler is rebuilt on the saved training data
        (its learned state is then loaded over whatever ``prepare`` initialized).

    Returns
    -------
    Checkpoint

    Raises
    ------
    ValueError
        naming the file: missing, not a checkpoint, corrupted (checksum mismatch) or inconsistent.
    """
    from recsampling._checksums import MANIFEST, verify_checksum
    from recsampling.models import model_from_params
    from recsampling.samplers import make_sampler

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file {str(path)!r} does not exist")
    if not verify_checksum(path):
        logger.warning("%s has no checksum in %s (saved before checksums were recorded, or copied without it): "
                       "corruption cannot be detected", path, MANIFEST)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"{str(path)!r} is not a recsampling checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a recsampling checkpoint (format "
                         f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    try:
        mm = meta["model"]
        n_users, n_items = mm["n_users"], mm["n_items"]
        if not (isinstance(n_users, int) and isinstance(n_items, int) and n_users >= 1 and n_items >= 1):
            raise ValueError(f"the model's n_users and n_items must be positive integers, got {n_users!r}, {n_items!r}")
        user_ids = _ids_in(blob["user_ids"], n_users, "user_ids")
        item_ids = _ids_in(blob["item_ids"], n_items, "item_ids")
        state = blob["model_state"]
        _check_finite(state, "model weight")
        _check_state_shapes(mm["name"], n_users, n_items, mm["params"], state)  # before allocating the model
        model = model_from_params(mm["name"], n_users, n_items, mm["params"])
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"the model weights do not fit the model: {str(e).splitlines()[0]}") from None
        model.eval()
        train = _load_train(blob["train"], user_ids, item_ids) if "train" in blob else None
        sampler = None
        sstate = blob.get("sampler_state", {})
        _check_finite(sstate, "sampler state")
        if meta.get("sampler") is not None:
            try:
                sampler = make_sampler(meta["sampler"]["name"], **meta["sampler"]["params"])
            except TypeError as e:
                raise ValueError(f"bad sampler parameters: {e}") from None
            if train is not None:
                sampler.prepare(train, check_random_state(random_state))
                derived = sampler.state_dict()
                for k, v in sstate.items():
                    if k in derived and not v.is_floating_point() and not torch.equal(v, derived[k]):
                        raise ValueError(f"sampler state {k!r} differs from what the sampler derives from the saved "
                                         "training data")
                try:
                    sampler.load_state_dict(sstate)
                except RuntimeError as e:
                    raise ValueError(f"the sampler state does not fit the sampler: {str(e).splitlines()[0]}") from None
            elif sstate:
                logger.info("checkpoint without training data: sampler state kept in Checkpoint.sampler_state")
        extra = meta.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError(f"'extra' must be a dict, got {type(extra).__name__}")
    except ValueError as e:
        raise ValueError(f"{str(path)!r}: {e}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{str(path)!r} is a malformed recsampling checkpoint ({type(e).__name__}: {e})") from None
    return Checkpoint(model=model, sampler=sampler, train=train, user_ids=user_ids, item_ids=item_ids,
                      sampler_state=sstate, extra=extra)
