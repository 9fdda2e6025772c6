"""Contenders behind one fit interface: ours from the registries, and the peers.

Every contender answers ``fit(train, params, random_state, ...) -> Fit``: it trains on an
:class:`~recsampling.data.Interactions` with its own parameters and hands back something the one
scoring code ranks (:meth:`recsampling.tasks.Task.evaluate` / ``Task.figures``): an
:class:`~recsampling.models.base.EmbeddingModel`, or a pair of scoring tables ``(U, V)`` with
scores ``U @ V.T``. So a benchmark fits ``implicit``'s ALS exactly as it fits our MF + a sampler,
and scores both with the same code.

- :class:`Ours`: a registered model with a registered sampler (plug-ins included), trained by
  :class:`recsampling.train.Trainer`;
- :class:`ImplicitFactors`: a factor model of the ``implicit`` library (its BPR, its ALS), CPU;
- :class:`ImplicitItemKNN`: ``implicit``'s item-item nearest neighbours (cosine or BM25);
- :class:`Popularity`: every user gets the items by their number of training clicks.

:data:`PEERS` lists the peers with their documented defaults and their search spaces (each a tuple of
:class:`Knob`: an Optuna range and the points of a grid over it); :func:`peer` finds one.
:func:`tune_peer` runs a peer's Optuna study, :func:`tune_ours` ours' (:func:`refit_ours` trains its best
configuration again), :func:`trial_counts` counts a study's trials, :func:`fit_l2_grid` picks ours' L2 from a
grid on validation; :func:`speed_params` gives ours' training settings in the speed benchmarks.

Selection without looking at the test set (the tuned benchmarks, ``benchmarks/tuned_quality.py``
and ``benchmarks/ml100k_quality.py``): :func:`tuning_tasks` loads a data set's test task (a seeded
80/20 split per user, e.g. ML-100K with rating >= 4 positive) and the validation task carved out of
its training part (20 % of each user's training positives); a contender's setting is chosen on the
validation task, by an Optuna study (:func:`tune_peer`, :func:`tune_ours`) or by
:func:`grid_search` (every point of a grid, each read at checkpoints of its epochs / iterations,
:func:`checkpoint_figures`), then refitted on the whole training part with several seeds and
scored on the test set (full ranking over the items the user did not train on) by the same code
for all. With the same grid for our MF-BPR and ``implicit``'s BPR, our ``l2`` is half of its
``regularization``: our ``l2`` is the coefficient of ``||.||^2`` in the loss, so ``l2 = reg / 2``
makes each SGD step shrink by ``lr * reg``, as ``implicit`` does.
"""

from __future__ import annotations

import importlib
import inspect
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np

from recsampling.models.base import FACTORS

__all__ = ["Fit", "Knob", "Contender", "Ours", "ImplicitFactors", "ImplicitItemKNN", "Popularity", "PEERS", "peer",
           "CHECKPOINTS", "speed_params", "tune_peer", "tune_ours", "refit_ours", "trial_counts",
           "fit_l2_grid", "tuning_tasks", "checkpoint_figures", "grid_search"]

#: checkpoints (``on_checkpoint`` calls) per fit of a peer's factor model: every tenth of its iterations
CHECKPOINTS = 10

#: ``on_checkpoint(step, model, sampler)``: ``step`` counts epochs (ours) or iterations (a peer),
#: ``model`` is what :attr:`Fit.model` would be at that point, ``sampler`` ours' sampler (None for a peer)
Checkpoint = Callable[[int, object, object], None]


@dataclass
class Fit:
    """A fitted contender.

    Attributes
    ----------
    model : EmbeddingModel or (numpy.ndarray, numpy.ndarray)
        What the scoring code ranks.
    train_s : float
        Training seconds, the time spent in ``on_checkpoint`` left out.
    samples : int
        Training pairs visited (ours: the Trainer's count; a factor peer: clicks x iterations;
        item-kNN and popularity: the clicks, read once).
    loss : float
        Last training loss (NaN for a peer, which reports none).
    sampler : Sampler, optional
        Ours' fitted sampler (its learned parameters, its diagnostics); None for a peer.
    result : TrainResult, optional
        Ours' :class:`recsampling.train.TrainResult` (history, best epoch and metric); None for a peer.
    """

    model: object
    train_s: float
    samples: int
    loss: float = float("nan")
    sampler: object = None
    result: object = None

    @property
    def history(self) -> list:
        """Ours' per-epoch history; empty for a peer."""
        return [] if self.result is None else self.result.history


@dataclass(frozen=True)
class Knob:
    """One hyper-parameter of a peer: its Optuna range and the points of a grid search over it.

    Attributes
    ----------
    name : str
        The estimator's keyword argument.
    low, high : float, optional
        The range of a float (an int with ``integer``); None for a categorical knob.
    log : bool
        Draw on a log scale.
    integer : bool
        An int range.
    choices : tuple
        A categorical knob's values.
    grid : tuple
        The points of a grid search (:meth:`Contender.grid`), inside the range.
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple = ()
    grid: tuple = ()

    def suggest(self, trial):
        """Draw the knob from an Optuna trial."""
        if self.choices:
            return trial.suggest_categorical(self.name, self.choices)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Contender:
    """A model a benchmark fits; :attr:`library` and :attr:`method` name it in tables.

    Attributes
    ----------
    library : str
        Ours: the registered model (e.g. ``"mf"``); a peer: its library (e.g. ``"implicit"``).
    method : str
        Ours: the registered sampler; a peer: its model.
    defaults : dict
        A peer's own hyper-parameters (its documentation); empty for ours.
    linestyle : str
        Of its learning curve in plots (peers are drawn in black).
    space : tuple of Knob
        A peer's search space (:meth:`search_space`, :meth:`grid`); empty for ours, whose space is
        :func:`recsampling.tuning.search_space`'s, and for a peer without parameters.
    max_iterations : int, optional
        A peer's most iterations in a search (a trial reads its best at the checkpoints).
    """

    library: str
    method: str
    defaults: dict = field(default_factory=dict)
    linestyle: str = "-"
    space: tuple = ()
    max_iterations: int | None = None

    @property
    def label(self) -> str:
        """``"<library> + <method>"``, the row label of the tables."""
        return f"{self.library} + {self.method}"

    def search_space(self, trial) -> dict:
        """Draw the parameters of :attr:`space` from an Optuna trial (``iterations`` not among them)."""
        return {k.name: k.suggest(trial) for k in self.space}

    def grid(self) -> dict:
        """The grid over :attr:`space`: each knob's name and its points (a knob without points left
        out: the estimator's default)."""
        return {k.name: list(k.grid) for k in self.space if k.grid}

    def fit(self, train, params: dict, random_state=None, *, n_threads: int | None = None, device: str = "cpu",
            on_checkpoint: Checkpoint | None = None, checkpoint_every: int | None = None) -> Fit:
        """Fit on ``train`` (an Interactions) with ``params``; see the subclasses for their keys.

        Parameters
        ----------
        train : Interactions
        params : dict
            The contender's parameters (a peer: its estimator's keyword arguments).
        random_state : int or numpy.random.Generator, optional
            Ours: given to the model and the Trainer (one Generator is shared by both, an int seeds
            each); a peer: its ``random_state`` (an int).
        n_threads : int, optional
            Threads (ours: the Trainer's ``n_threads``, None its default; a peer: 1 by default).
        device : str
            Ours' training device (peers run on the CPU).
        on_checkpoint : callable, optional
            ``on_checkpoint(step, model, sampler)`` after every epoch (ours) or every tenth of the
            iterations and the last (a factor peer); may raise to stop the fit (e.g.
            ``optuna.TrialPruned``). A peer without iterations never calls it.
        checkpoint_every : int, optional
            Call ``on_checkpoint`` every that many epochs / iterations instead (a peer: and after
            the last).

        Returns
        -------
        Fit
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Ours(Contender):
    """A registered model (:attr:`library`) trained with a registered sampler (:attr:`method`).

    ``params`` keys: ``factors`` (default 32), ``model_params`` and ``sampler_params`` (dicts), and
    every other key goes to :class:`recsampling.train.Trainer` (``epochs``, ``batch_size``,
    ``optimizer``, ``lr``, ``l2``, ``backend``, ``patience``, ``metric``, ...). ``valid`` (ours
    only): the Interactions the Trainer scores after each epoch for early stopping.
    """

    def fit(self, train, params: dict, random_state=None, *, n_threads: int | None = None, device: str = "cpu",
            on_checkpoint: Checkpoint | None = None, checkpoint_every: int | None = None, valid=None) -> Fit:
        from recsampling.models import make_model
        from recsampling.samplers import make_sampler
        from recsampling.train import Trainer

        p = dict(params)
        factors = int(p.pop("factors", 32))
        model = make_model(self.library, train, factors=factors, random_state=random_state,
                           **p.pop("model_params", None) or {})
        sampler = make_sampler(self.method, **p.pop("sampler_params", None) or {})
        every = _every(checkpoint_every, 1)

        def callback(epoch, logs):
            if (epoch + 1) % every == 0:
                on_checkpoint(epoch + 1, model, sampler)

        callbacks = [] if on_checkpoint is None else [callback]
        try:
            trainer = Trainer(**p, device=device, random_state=random_state, n_threads=n_threads, progress=False,
                              callbacks=callbacks)
        except TypeError as e:
            raise ValueError(f"bad training parameters for {self.label}: {e}") from None
        result = trainer.fit(model, sampler, train, valid=valid)
        history = result.history
        return Fit(model, float(sum(h["time"] for h in history)), int(sum(h["samples"] for h in history)),
                   float(history[-1]["loss"]) if history else float("nan"), sampler, result)


def _every(given: int | None, default: int) -> int:
    if given is None:
        return default
    if isinstance(given, bool) or not isinstance(given, (int, np.integer)) or given < 1:
        raise ValueError(f"checkpoint_every must be an integer >= 1, got {given!r}")
    return int(given)


class _Clock:
    """Wall time of a fit with the time spent in its checkpoints left out."""

    def __init__(self):
        self.start, self.spent = time.perf_counter(), 0.0

    def checkpoint(self, fn, *args) -> None:
        t = time.perf_counter()
        try:
            fn(*args)
        finally:
            self.spent += time.perf_counter() - t

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.spent


@dataclass(frozen=True)
class ImplicitFactors(Contender):
    """A factor model of ``implicit`` (CPU), :attr:`estimator` being its ``"module:Class"``.

    ``params``: the estimator's keyword arguments, ``iterations`` among them; its scoring tables
    are used as they are (BPR's carry the item bias as a column of ``item_factors`` against a
    column of ones in ``user_factors``).
    """

    estimator: str = ""
    linestyle: str = "--"

    def fit(self, train, params: dict, random_state=None, *, n_threads: int | None = None, device: str = "cpu",
            on_checkpoint: Checkpoint | None = None, checkpoint_every: int | None = None) -> Fit:
        from threadpoolctl import threadpool_limits

        module, _, cls = self.estimator.partition(":")
        Est = getattr(importlib.import_module(module), cls)
        kw = dict(params)
        iterations = int(kw.pop("iterations"))
        every = _every(checkpoint_every, max(1, iterations // CHECKPOINTS))
        with threadpool_limits(1, "blas"):  # implicit parallelizes itself; a BLAS thread pool under it slows it down
            est = Est(**kw, iterations=iterations, num_threads=n_threads or 1, random_state=random_state)
            clock = _Clock()

            def callback(iteration, *rest):
                if on_checkpoint is not None and ((iteration + 1) % every == 0 or iteration + 1 == iterations):
                    clock.checkpoint(on_checkpoint, iteration + 1, (est.user_factors, est.item_factors), None)

            est.fit(train.matrix.copy(), show_progress=False, callback=callback)  # it wants writable arrays
            seconds = clock.seconds
        # BPR visits one (u, i, j) triple per training pair and iteration; ALS solves every row
        return Fit((est.user_factors, est.item_factors), float(seconds), int(train.nnz) * iterations)


@dataclass(frozen=True)
class ImplicitItemKNN(Contender):
    """``implicit``'s item-item nearest neighbours; ``params``: ``K`` and ``similarity`` (cosine or bm25).

    Its scores ``sum_j X[u, j] S[j, i]`` are the tables ``U = X`` (the clicks) and ``V = S^T``.
    """

    def fit(self, train, params: dict, random_state=None, *, n_threads: int | None = None, device: str = "cpu",
            on_checkpoint: Checkpoint | None = None, checkpoint_every: int | None = None) -> Fit:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        similarity = params.get("similarity", "cosine")
        if similarity not in ("cosine", "bm25"):
            raise ValueError(f"similarity must be 'cosine' or 'bm25', got {similarity!r}")
        X = train.matrix.copy()
        Est = CosineRecommender if similarity == "cosine" else BM25Recommender
        start = time.perf_counter()
        est = Est(K=int(params.get("K", 100)), num_threads=n_threads or 1)
        with warnings.catch_warnings():  # its own BM25 weighting hands its fit a COO matrix, and warns
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            est.fit(X, show_progress=False)
        seconds = time.perf_counter() - start
        return Fit((X.toarray().astype(np.float32), est.similarity.T.toarray().astype(np.float32)), float(seconds),
                   int(train.nnz))


@dataclass(frozen=True)
class Popularity(Contender):
    """Every user ranks the items by their training clicks (no parameter): tables ``(1, counts)``."""

    def fit(self, train, params: dict, random_state=None, *, n_threads: int | None = None, device: str = "cpu",
            on_checkpoint: Checkpoint | None = None, checkpoint_every: int | None = None) -> Fit:
        start = time.perf_counter()
        counts = np.asarray(train.matrix.sum(axis=0)).ravel().astype(np.float32)
        tables = (np.ones((train.n_users, 1), np.float32), counts[:, None])
        return Fit(tables, float(time.perf_counter() - start), int(train.nnz))


_FACTORS = Knob("factors", choices=FACTORS, grid=(64, 128))

#: the peers, each with its documented defaults and its search space. The grids: BPR's the same as
#: ours' MF-BPR (its ``regularization`` our ``2 * l2``); ALS's holds its defaults, the larger
#: regularization that a high ``alpha`` needs, and up to 50 iterations (issue 19)
PEERS: tuple[Contender, ...] = (
    ImplicitFactors("implicit", "bpr", dict(learning_rate=0.01, regularization=0.01, iterations=100), "--",
                    (_FACTORS, Knob("learning_rate", 1e-3, 0.3, log=True, grid=(0.01, 0.05, 0.1)),
                     Knob("regularization", 1e-5, 0.1, log=True, grid=(0.001, 0.01))), 200,
                    estimator="implicit.cpu.bpr:BayesianPersonalizedRanking"),
    ImplicitFactors("implicit", "als", dict(regularization=0.01, alpha=1.0, iterations=15), ":",
                    (replace(_FACTORS, grid=(32, 64, 128)),
                     Knob("regularization", 1e-3, 100.0, log=True, grid=(0.01, 0.1, 1.0, 10.0, 100.0)),
                     Knob("alpha", 0.1, 100.0, log=True, grid=(1.0, 10.0, 40.0))), 50,
                    estimator="implicit.cpu.als:AlternatingLeastSquares"),
    ImplicitItemKNN("implicit", "itemknn", dict(K=100, similarity="cosine"), "-.",
                    (Knob("K", 10, 1000, log=True, integer=True), Knob("similarity", choices=("cosine", "bm25")))),
    Popularity("baseline", "most_popular", {}, "-."),
)


def peer(library: str, method: str) -> Contender | None:
    """The peer of :data:`PEERS` called ``library + method``, None when there is none."""
    return next((c for c in PEERS if c.library == library and c.method == method), None)


def tune_peer(contender: Contender, valid_task, n_trials: int, seed: int = 0, *, n_threads: int = 1,
              max_iterations: int | None = None, metric: str = "ndcg@10", n_startup_trials: int = 5):
    """An Optuna study of a peer on a validation task: the peers' counterpart of
    :func:`recsampling.tuning.run_study`.

    Each trial draws :meth:`Contender.search_space`, fits on ``valid_task.train`` and is scored
    on the task (:meth:`recsampling.tasks.Task.figures`, ``metric``). A factor peer is scored at
    each of its checkpoints (every tenth of its iterations): the trial's value is its best
    checkpoint, recorded as ``user_attrs["iterations"]``, and the median pruner may stop it there.
    TPE is seeded by ``seed`` and starts with ``n_startup_trials`` random trials; every fit is
    seeded by ``seed`` too, so trials differ by their parameters only.

    Parameters
    ----------
    contender : Contender
        A peer (e.g. ``peer("implicit", "als")``).
    valid_task : recsampling.tasks.Task
        Train on its training part, score on its test part (a validation split).
    n_trials : int
        Trials; a peer without parameters (:attr:`Contender.space` empty) is fitted once instead.
    seed : int
    n_threads : int
        The peer's threads.
    max_iterations : int, optional
        The most iterations of a trial of a factor peer (default its :attr:`Contender.max_iterations`).
    metric : str
        Maximized, e.g. ``"ndcg@10"``.
    n_startup_trials : int
        Of TPE and of the median pruner.

    Returns
    -------
    (dict, float, optuna.Study or None)
        The best parameters (``iterations`` included: the best checkpoint's), their value, the
        study (None for a peer without parameters).
    """
    import optuna

    from recsampling._utils import check_int

    check_int(n_trials, "n_trials", 1)
    cap = contender.max_iterations if max_iterations is None else check_int(max_iterations, "max_iterations")

    def score(model) -> float:
        return float(valid_task.figures(model, [metric], device="cpu")[metric])

    def space(trial) -> dict:
        params = contender.search_space(trial)
        return params if cap is None else {**params, "iterations": cap}

    if not contender.space:
        return {}, score(contender.fit(valid_task.train, {}, seed, n_threads=n_threads).model), None

    def objective(trial) -> float:
        best = [-1.0, None]

        def on_checkpoint(step, model, _):
            value = score(model)
            if value > best[0]:
                best[:] = [value, step]
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at iteration {step}")

        fit = contender.fit(valid_task.train, space(trial), seed, n_threads=n_threads, on_checkpoint=on_checkpoint)
        if best[1] is None:  # no checkpoints (item-kNN): the fitted model
            return score(fit.model)
        trial.set_user_attr("iterations", best[1])
        return best[0]

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials,
                                                                   n_warmup_steps=1))
    study.optimize(objective, n_trials=n_trials, show_progress_bar=False)
    best = study.best_trial
    return {**space(optuna.trial.FixedTrial(best.params)), **best.user_attrs}, float(best.value), study


def tune_ours(model: str, sampler: str, valid_task, n_trials: int, seed: int = 0, *, epochs: int,
              metric: str = "ndcg@10", n_startup_trials: int = 5, **fit):
    """:func:`recsampling.tuning.run_study` of ``model`` + ``sampler`` in memory on a validation task,
    the counterpart of :func:`tune_peer` for ours.

    Each trial draws :func:`recsampling.tuning.search_space`, trains on ``valid_task.train`` for at
    most ``epochs`` epochs and is scored on ``valid_task.test`` after each (``metric``; median
    pruning); ``fit`` goes to :class:`recsampling.Recommender` (``optimizer``, ``batch_size``,
    ``device``, ``n_threads``, ...).

    Returns
    -------
    (dict, float, optuna.Study)
        The best configuration (:func:`recsampling.tuning.best_config`, its ``epochs`` the best
        trial's best epoch), its value and the study.
    """
    import optuna

    from recsampling.tuning import best_config, run_study

    study = run_study(model, sampler, valid_task.train, valid_task.test, n_trials=n_trials,
                      storage=optuna.storages.InMemoryStorage(), study_name=f"{model}+{sampler}", seed=seed,
                      epochs=epochs, metric=metric, n_startup_trials=n_startup_trials, heartbeat_interval=None, **fit)
    config = best_config(study)
    steps = study.best_trial.intermediate_values  # epoch (from 0) -> the validation metric
    config["epochs"] = max(steps, key=steps.get) + 1 if steps else epochs
    return config, config.pop("value"), study


def refit_ours(model: str, sampler: str, config: dict, train, seed: int, *, metric: str = "ndcg@10", **fit):
    """A :class:`recsampling.Recommender` of ``model`` + ``sampler`` with a :func:`tune_ours` configuration
    (its ``epochs`` included), fitted on ``train`` with ``seed``; ``fit`` as in :func:`tune_ours`."""
    from recsampling.recommender import Recommender

    rec = Recommender(model=model, sampler=sampler, model_params=config["model_params"],
                      sampler_params=config["sampler_params"], lr=config["lr"], l2=config["l2"], random_state=seed,
                      metric=metric, **{**fit, "epochs": config["epochs"]})
    return rec.fit(train)


def trial_counts(study) -> dict:
    """``{"run", "complete", "pruned"}``: the trials of an Optuna study (all 0 for None: no study)."""
    if study is None:
        return {"run": 0, "complete": 0, "pruned": 0}
    states = [t.state.name for t in study.trials]
    return {"run": len(states), "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED")}


def fit_l2_grid(contender: Contender, train, params: dict, l2s, random_state=None, *, valid=None, **fit):
    """Fit ``contender`` once per L2 in ``l2s`` (``{**params, "l2": l2}``) and keep the best on validation.

    The score of a fit is its Trainer's best validation metric (``params``' ``metric``, on ``valid``);
    without ``valid`` every fit scores 0 and the first L2 is kept (ties keep the earlier one).
    ``fit`` goes to :meth:`Contender.fit` (``n_threads``, ``device``, ...).

    Returns
    -------
    (Fit, float, float or None)
        The kept fit, its L2 and its validation score (None without ``valid``).
    """
    best = None
    for l2 in l2s:
        done = contender.fit(train, {**params, "l2": l2}, random_state, valid=valid, **fit)
        score = done.result.best_metric if valid is not None else 0.0
        if best is None or score > best[2]:
            best = (done, l2, score)
    done, l2, score = best
    return done, l2, (float(score) if valid is not None else None)


def tuning_tasks(dataset: str, seed: int = 0, *, valid_fraction: float = 0.2, **kw):
    """The test task of ``dataset`` and the validation task carved out of its training part.

    Parameters
    ----------
    dataset : str
    seed : int
        Of the split (:func:`recsampling.tasks.load_task`); ``seed + 1`` draws the validation part.
    valid_fraction : float
        Of each user's training positives held out for validation.
    **kw
        More :func:`~recsampling.tasks.load_task` arguments (``data_dir``, ``metrics``, ``ks``, ``world``).

    Returns
    -------
    (Task, Task)
        ``(test task, validation task)``: fit on the first's ``train`` and score on its test set;
        select on the second (:meth:`~recsampling.tasks.Task.validation_task`).
    """
    from recsampling.tasks import load_task

    final = load_task(dataset, seed=seed, **kw)
    valid = load_task(dataset, seed=seed, valid_fraction=valid_fraction, valid_seed=seed + 1, **kw)
    return final, valid.validation_task()


def checkpoint_figures(contender: Contender, params: dict, task, seed, checkpoints, figures=("ndcg@10", "recall@10"),
                       *, n_threads: int | None = None) -> dict:
    """Fit ``contender`` on ``task.train`` and score it on ``task`` at some of its epochs / iterations.

    ``params`` are its parameters (their epochs / iterations at least ``max(checkpoints)``);
    ``checkpoints``: the steps at which ``figures`` are read (:meth:`~recsampling.tasks.Task.figures`).
    Returns ``{step: {figure: value}}``.
    """
    out = {}

    def on_checkpoint(step, model, _):
        if step in checkpoints:
            out[step] = task.figures(model, list(figures), device="cpu")

    contender.fit(task.train, params, seed, n_threads=n_threads, on_checkpoint=on_checkpoint, checkpoint_every=1)
    return out


def grid_search(contender: Contender, params: Callable[[dict, int], dict], grid: Mapping, checkpoints, valid_task,
                seed, *, metric: str = "ndcg@10", figures=("ndcg@10", "recall@10"),
                n_threads: int | None = None) -> tuple[dict, list]:
    """Every point of a grid, each fitted once and read at its ``checkpoints`` on ``valid_task``.

    Parameters
    ----------
    contender : Contender
    params : callable
        ``params(point, steps)``: the contender's parameters of a grid point fitted for ``steps``
        epochs / iterations.
    grid : mapping
        Name -> its values; the points are their product (in this order).
    checkpoints : iterable of int
        The steps read (one fit of ``max(checkpoints)`` steps per point, :func:`checkpoint_figures`).
    valid_task : recsampling.tasks.Task
    seed : int
        Of every fit.
    metric : str
        Maximized, one of ``figures``.
    figures, n_threads
        As in :func:`checkpoint_figures`.

    Returns
    -------
    (dict, list of dict)
        The best row and all rows (point by point, step by step), each ``{**point, "epochs": step,
        "valid_<figure>": value, ...}``; the first of equal best rows.
    """
    import itertools

    sweep = []
    steps = set(checkpoints)
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid.keys(), values))
        got = checkpoint_figures(contender, params(point, max(steps)), valid_task, seed, steps, figures,
                                 n_threads=n_threads)
        sweep += [{**point, "epochs": step, **{f"valid_{k}": v for k, v in figs.items()}}
                  for step, figs in sorted(got.items())]
    return max(sweep, key=lambda r: r[f"valid_{metric}"]), sweep


def speed_params(model: str, sampler: str, train, settings: Mapping) -> dict:
    """:class:`Ours` ``params`` of the pair ``model + sampler`` in the speed benchmarks.

    ``settings`` (``benchmarks/speed_settings.json``): its ``"defaults"``, with the sampler's entry
    of ``"overrides"`` on top, and ``"torch_only"`` on top of those where no fused kernel takes the
    model built on ``train`` (:func:`recsampling.fast.model_kind`: feature towers); the sampler gets
    ``n_negatives=1`` (one negative per positive) where its constructor takes it.
    """
    from recsampling.fast import model_kind
    from recsampling.models import make_model
    from recsampling.samplers import SAMPLERS

    params = {**settings["defaults"], **settings["overrides"].get(sampler, {})}
    if model_kind(make_model(model, train, factors=2)) is None:
        params.update(settings["torch_only"])
    takes = "n_negatives" in inspect.signature(SAMPLERS[sampler].__init__).parameters
    params["sampler_params"] = {"n_negatives": 1} if takes else {}
    return params
