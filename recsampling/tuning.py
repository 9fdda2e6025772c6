"""Optuna hyperparameter search for a model x sampler pair, with per-epoch pruning.

``search_space(trial, model, sampler)`` draws one configuration, ``make_objective`` trains a
:class:`recsampling.Recommender` with it and reports the validation metric after every epoch
(``trial.report``), raising ``optuna.TrialPruned`` when the pruner says so, and ``run_study``
creates or resumes (``load_if_exists``) a study in any RDB storage (SQLite by default, a file
under the run folder; PostgreSQL with the ``recsampling[postgres]`` extra), so several processes or
machines can work on one study. Give every method the same ``n_trials`` to compare them fairly.

Workers on one study:

- The TPE sampler draws trial ``n`` from a random state seeded by ``(seed, n)``. The storage
  hands every trial number out once, so workers started with the same ``seed`` never draw alike,
  a resumed study goes on with new numbers, and one process on a fresh study replays the same
  draws. TPE runs with ``constant_liar`` so that trials running in other workers count as bad
  results rather than being proposed again.
- Every running trial writes a heartbeat to the storage. A trial whose heartbeat is older than
  the grace period (its worker was killed or lost) is marked FAIL by the next worker that starts
  a trial or finishes a ``run_study`` call, and optionally queued to run again (``retries``).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import optuna

from recsampling._utils import check_int
from recsampling.data.interactions import Interactions

__all__ = ["search_space", "make_objective", "run_study", "default_storage", "best_config", "load_tuned", "save_plots"]

logger = logging.getLogger(__name__)

def _classes_of(model: str, sampler: str) -> tuple[type, type]:
    """The registered model and sampler classes of these names (ValueError naming the registered ones)."""
    from recsampling.models import MODELS
    from recsampling.samplers import SAMPLERS

    return MODELS.lookup(model), SAMPLERS.lookup(sampler)


def search_space(trial, model: str, sampler: str) -> dict:
    """Draw one configuration for ``model`` x ``sampler`` from ``trial``.

    Parameters
    ----------
    trial : optuna.trial.Trial
    model : str
        A registered model (``recsampling.models.MODELS``).
    sampler : str
        A registered sampler (``recsampling.samplers.SAMPLERS``).

    Returns
    -------
    dict
        ``{"lr", "l2", "model_params", "sampler_params"}``: ``lr`` in [1e-3, 1e-1] and ``l2`` in
        [1e-6, 1e-2] (log-uniform), the model's knobs (``EmbeddingModel.search_space``: by default
        ``factors`` in {16, 32, 64, 128}) and the sampler's (``Sampler.search_space``: by default
        ``n_negatives`` in {1, 2, 4, 8} where the sampler has it, plus the method's own, e.g.
        NBPO's ``flip_l2``, Rel-MF's and UBPR's clip ``M`` and ``eta``, DLA's ``propensity_lr``).
    """
    model_cls, sampler_cls = _classes_of(model, sampler)
    sp = sampler_cls.search_space(trial)
    return {
        "lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True),
        "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
        "model_params": model_cls.search_space(trial),
        "sampler_params": sp,
    }


def make_objective(train: Interactions, valid: Interactions, model: str = "mf", sampler: str = "bpr",
                   epochs: int = 10, metric: str = "ndcg@10", random_state: int | None = 0,
                   **fit_params) -> Callable:
    """An Optuna objective: fit with a sampled configuration, report ``metric`` every epoch.

    Parameters
    ----------
    train, valid : Interactions
        Training data and the validation set (same index space).
    model, sampler : str
    epochs : int
    metric : str
        Validation metric maximized (e.g. ``"ndcg@10"``).
    random_state : int or None
        Seed of each fit (the same for every trial, so trials differ only by their parameters).
    **fit_params
        Further :class:`recsampling.Recommender` arguments (``batch_size``, ``device``, ...).

    Returns
    -------
    callable
        ``objective(trial) -> float``, the best validation ``metric`` over the epochs. Raises
        ``optuna.TrialPruned`` when ``trial.should_prune()`` after a report. Each trial records
        ``user_attrs["worker"] = "host:pid"`` of the process that runs it.
    """
    from recsampling.recommender import Recommender

    if not isinstance(train, Interactions) or not isinstance(valid, Interactions):
        raise ValueError("train and valid must be Interactions")
    check_int(epochs, "epochs")
    # check names here: run_study's optimize(catch=ValueError) would turn a typo into failed trials
    _classes_of(model, sampler)
    from recsampling.metrics import RANKING_METRICS
    from recsampling.train import _parse_metric

    if _parse_metric(metric)[0] not in RANKING_METRICS:
        raise ValueError(f"metric must be one of {list(RANKING_METRICS)} with '@K', e.g. 'ndcg@10'; got {metric!r}")

    def objective(trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran (or lost) it
        params = search_space(trial, model, sampler)

        def report(epoch: int, logs: dict) -> None:
            if metric not in logs:
                return
            trial.report(float(logs[metric]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        rec = Recommender(model=model, sampler=sampler, model_params=params["model_params"],
                          sampler_params=params["sampler_params"], epochs=epochs, lr=params["lr"],
                          l2=params["l2"], metric=metric, random_state=random_state, callbacks=[report],
                          **fit_params)
        rec.fit(train, valid)
        best = rec.history_.best_metric
        if best is None:
            raise ValueError(f"no validation {metric!r} was computed")
        return float(best)

    return objective


def default_storage(run_dir: str | Path = "runs/tuning", study_name: str = "study") -> str:
    """A SQLite URL for a file ``<run_dir>/<study_name>.db`` (the folder is created)."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(d / f'{study_name}.db').resolve()}"


def _pruner(pruner, n_startup_trials: int, n_warmup_steps: int, max_resource: int):
    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise ValueError(f"pruner must be 'median', 'hyperband', 'none' or an optuna pruner, got {pruner!r}")


_POSTGRES_DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))


def _redacted(url: str) -> str:
    """``url`` with its password shown as ``***``, for messages and summaries."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # not a URL: no password to hide
        return url


def _no_postgres_driver(url: str) -> ValueError:
    return ValueError(f"storage {_redacted(url)} needs a PostgreSQL driver that is not installed: pip install "
                      "'recsampling[postgres]' (psycopg 3, for postgresql:// or postgresql+psycopg:// URLs)")


def _driver_url(url: str) -> str:
    """A plain ``postgresql://`` URL with the dialect of the installed driver (psycopg 3 first)."""
    if not url.startswith("postgresql://"):
        return url
    for module, dialect in _POSTGRES_DRIVERS:
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql"):]
    raise _no_postgres_driver(url)


def _quiet_experimental(make: Callable):
    """``make()`` without Optuna's ExperimentalWarning (heartbeat and its callbacks are marked so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make()


class _StaleTrial:
    """Heartbeat callback: log a trial whose worker stopped, and queue it again up to ``retries`` times."""

    def __init__(self, retries: int):
        self.retries = retries
        # the class was renamed in Optuna 4.9
        self._retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                                  getattr(optuna.storages, "RetryFailedTrialCallback", None))
        self._retry = _quiet_experimental(lambda: self._retry_cls(max_retry=retries)) if retries else None

    def __call__(self, study, trial) -> None:
        again = self._retry is not None and len(
            _quiet_experimental(lambda: self._retry_cls.retry_history(trial))) < self.retries
        logger.warning("trial %d of study %s sent no heartbeat for the grace period (its worker stopped): "
                       "marked FAIL%s", trial.number, study.study_name, ", queued to run again" if again else "")
        if self._retry is not None:
            self._retry(study, trial)


def _open_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                  retries: int = 0):
    """An Optuna RDBStorage for ``url``; one ValueError for a bad URL, a server not answering or no driver."""
    import sqlalchemy.exc

    memory = url == "sqlite:///:memory:"
    if url.startswith("sqlite:///") and not memory:  # SQLite makes the file, not its folder
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    heartbeat = {}
    # an in-memory SQLite database belongs to one connection, which the heartbeat thread does not
    # have (and no other worker can share it): no heartbeat there
    if heartbeat_interval is not None and not memory:
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
                    else "failed_trial_callback")  # renamed in Optuna 4.9
        heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
                     callback: _StaleTrial(retries)}
    try:
        driver_url = _driver_url(url)
        return _quiet_experimental(lambda: optuna.storages.RDBStorage(driver_url, **heartbeat))
    except ImportError as e:
        if url.startswith("postgresql"):  # e.g. postgresql+psycopg2:// without psycopg2
            raise _no_postgres_driver(url) from None
        raise ValueError(f"storage {_redacted(url)} needs a database driver that is not installed: {e}") from None
    except sqlalchemy.exc.SQLAlchemyError as e:  # a bad URL, a server not answering: not a sqlalchemy traceback
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"storage {_redacted(url)} cannot be opened (an Optuna RDB URL such as "
                         f"sqlite:///runs/s.db or postgresql://user@host/db): {reason}") from None


class _TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE that draws trial ``n`` from a random state seeded by ``(seed, n)``.

    The storage numbers the trials of a study, each number once, so workers sharing a study with
    the same ``seed`` draw differently, a resumed study goes on with new numbers and one process on
    a fresh study replays its draws. A TPESampler keeps no state between trials but its random
    state, so each trial gets a new one. One trial at a time per process (``n_jobs=1``).
    """

    def __init__(self, seed: int | None, **tpe_params):
        self.seed = np.random.SeedSequence(seed).entropy  # None: fresh entropy, then as an int seed
        self.tpe_params = tpe_params
        self._tpe = self._for_trial(0)

    def _for_trial(self, number: int):
        state = int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])
        return _quiet_experimental(lambda: optuna.samplers.TPESampler(seed=state, **self.tpe_params))

    def before_trial(self, study, trial) -> None:
        self._tpe = self._for_trial(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


def run_study(model: str, sampler: str, train: Interactions, valid: Interactions, n_trials: int = 20,
              storage: str | None = None, study_name: str | None = None, pruner="median",
              load_if_exists: bool = True, seed: int | None = 0, epochs: int = 10,
              metric: str = "ndcg@10", run_dir: str | Path = "runs/tuning", n_startup_trials: int = 5,
              n_warmup_steps: int = 1, dataset: str | None = None, heartbeat_interval: int | None = 60,
              grace_period: int | None = None, retries: int = 0, settings: dict | None = None, **fit_params):
    """Create (or resume) a study and run ``n_trials`` more trials of ``model`` x ``sampler``.

    Several processes or machines may call this at once on one storage and study name: each
    adds its ``n_trials`` (see the module docstring for how their draws differ and what
    happens to the trial of a worker that dies).

    Parameters
    ----------
    model, sampler : str
    train, valid : Interactions
    n_trials : int
        Trials run by this call (they add to those already stored).
    storage : str or optuna storage, optional
        Any Optuna RDB URL (``sqlite:///path.db``, ``postgresql://user:password@host:5432/db``,
        which needs ``pip install 'recsampling[postgres]'``); by default a SQLite file under
        ``run_dir``. A storage object is used as it is (with its own heartbeat settings).
    study_name : str, optional
        Defaults to ``f"{model}-{sampler}"``.
    pruner : {"median", "hyperband", "none"} or optuna pruner
    load_if_exists : bool
        Resume a stored study of the same name.
    seed : int >= 0 or None
        Seeds each fit and the TPE sampler: trial ``n`` of the study draws from ``(seed, n)``.
        None draws a fresh seed.
    epochs, metric, fit_params
        See :func:`make_objective`.
    run_dir : path
        Folder of the default SQLite file.
    n_startup_trials, n_warmup_steps : int
        Of the median pruner (and TPE's random start-up, at most 10).
    dataset : str, optional
        Recorded on the study (``user_attrs["dataset"]``) so :func:`load_tuned` applies its best
        parameters to that data set only.
    heartbeat_interval : int or None
        Seconds between the heartbeats a running trial writes to the storage (default 60);
        None turns the heartbeat off (a killed worker's trial then stays RUNNING).
    grace_period : int, optional
        Seconds without a heartbeat after which a running trial counts as lost and is marked
        FAIL (default twice ``heartbeat_interval``); longer than ``heartbeat_interval``.
    retries : int
        Times a lost trial is queued to run again with its parameters (by whichever worker asks
        for a trial next); 0 (default) leaves it failed.
    settings : dict, optional
        More of what a trial's value depends on (JSON-able), recorded and checked with the
        study like ``model``, ``sampler``, ``epochs``, ``metric`` and ``dataset`` (the CLI adds
        ``quick`` and ``split_seed``).

    Returns
    -------
    optuna.Study

    Raises
    ------
    ValueError
        for a bad argument, or when a stored study of this name was run with other settings
        (model, sampler, epochs, metric, dataset or ``settings``): its trials' values would not
        compare with this run's. Nothing is run or recorded then.
    """
    check_int(n_trials, "n_trials", 0)
    check_int(seed, "seed", 0, none_ok=True)
    check_int(heartbeat_interval, "heartbeat_interval", 1, none_ok=True)
    check_int(grace_period, "grace_period", 1, none_ok=True)
    check_int(retries, "retries", 0)
    if heartbeat_interval is None and (grace_period is not None or retries):
        raise ValueError("grace_period and retries need the heartbeat: give heartbeat_interval too")
    if grace_period is not None and grace_period <= heartbeat_interval:
        raise ValueError(f"grace_period ({grace_period} s) must be longer than heartbeat_interval "
                         f"({heartbeat_interval} s): a live trial writes a heartbeat only that often")
    objective = make_objective(train, valid, model, sampler, epochs=epochs, metric=metric,
                               random_state=seed, **fit_params)  # checks the arguments before any study exists
    study_name = study_name or f"{model}-{sampler}"
    if storage is None:
        storage = default_storage(run_dir, study_name)
    if isinstance(storage, str):
        storage = _open_storage(storage, heartbeat_interval, grace_period, retries)
    study = optuna.create_study(
        study_name=study_name, storage=storage, direction="maximize", load_if_exists=load_if_exists,
        sampler=_TrialSeededTPE(seed, n_startup_trials=min(n_startup_trials, 10), constant_liar=True),
        pruner=_pruner(pruner, n_startup_trials, n_warmup_steps, epochs),
    )
    recorded = {"model": model, "sampler": sampler, "epochs": epochs, "metric": metric,
                **({} if dataset is None else {"dataset": str(dataset)}), **(settings or {})}
    conflict = settings_conflict(study, recorded)
    if conflict is not None:
        key, stored, asked = conflict
        raise ValueError(f"study {study.study_name!r} was run with {key}={stored!r}, this run asks for {key}={asked!r}: "
                         "their trials would not compare; run with the study's settings or another study_name")
    _record_settings(study, recorded)
    study.optimize(objective, n_trials=n_trials, catch=(ValueError,), show_progress_bar=False)
    # optimize fails lost trials before each trial it starts; once more for those lost since
    _quiet_experimental(lambda: optuna.storages.fail_stale_trials(study))
    return study


def settings_conflict(study, settings: dict) -> tuple[str, object, object] | None:
    """The first of ``settings`` that ``study`` recorded with another value: ``(key, stored, asked)``.

    None when every recorded one agrees (settings the study has not recorded do not conflict).
    """
    for key, value in settings.items():
        if key in study.user_attrs and study.user_attrs[key] != value:
            return key, study.user_attrs[key], value
    return None


def _record_settings(study, settings: dict) -> None:
    """Record on ``study`` the settings it has not recorded yet (no conflict: see settings_conflict)."""
    new = {k: v for k, v in settings.items() if k not in study.user_attrs}
    if not new:
        return
    if any(t.state.is_finished() for t in study.trials):
        logger.warning("study %s has trials from before their settings were recorded; they are taken to be %s",
                       study.study_name, ", ".join(f"{k}={v!r}" for k, v in new.items()))
    for key, value in new.items():
        study.set_user_attr(key, value)


def best_config(study) -> dict:
    """The best trial of ``study`` as a fit configuration.

    Returns
    -------
    dict
        ``{"lr", "l2", "model_params", "sampler_params"}`` of :func:`search_space`, rebuilt from
        the best trial's parameters, plus ``"value"`` (its validation metric) and ``"study"``.

    Raises
    ------
    ValueError
        When the study has no completed trial or lacks the ``model`` / ``sampler`` attributes
        that :func:`run_study` records.
    """
    attrs = study.user_attrs
    if "model" not in attrs or "sampler" not in attrs:
        raise ValueError(f"study {study.study_name!r} was not made by run_study (no model/sampler attributes)")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"study {study.study_name!r} has no completed trial yet")
    best = study.best_trial
    config = search_space(optuna.trial.FixedTrial(best.params), attrs["model"], attrs["sampler"])
    return {**config, "value": float(best.value), "study": study.study_name}


def load_tuned(storage: str) -> dict:
    """The best configuration of every usable study in an Optuna storage.

    Parameters
    ----------
    storage : str
        An RDB URL (``sqlite:///path.db``, ``postgresql://user@host/db``).

    Returns
    -------
    dict
        ``(dataset or None, model, sampler) -> best_config(study)``; a study without a
        ``dataset`` attribute applies to every data set. Studies without a completed trial are
        skipped (logged).
    """
    if not isinstance(storage, str) or "://" not in storage:
        raise ValueError(f"storage must be an Optuna RDB URL such as sqlite:///runs/s.db, got {storage!r}")
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise FileNotFoundError(f"no Optuna storage at {storage[len('sqlite:///'):]}")
    url, storage = storage, _open_storage(storage)
    out = {}
    for name in optuna.study.get_all_study_names(storage=storage):
        study = optuna.load_study(study_name=name, storage=storage)
        try:
            config = best_config(study)
        except ValueError as e:
            logger.warning("skipping study %s: %s", name, e)
            continue
        attrs = study.user_attrs
        out[(attrs.get("dataset"), attrs["model"], attrs["sampler"])] = config
    if not out:
        raise ValueError(f"{_redacted(url)} holds no study with a completed trial")
    return out


def save_plots(study, out: str | Path, name: str | None = None) -> list[str]:
    """Optuna's optimization history and parameter importances as PNGs in ``out``.

    Parameters
    ----------
    study : optuna.Study
    out : path
        Folder (created).
    name : str, optional
        File stem (default the study's name): ``<name>-history.png``, ``<name>-importance.png``.

    Returns
    -------
    list of str
        The files written; the importance plot needs two completed trials with varying
        parameters and is left out (logged) otherwise.
    """
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or study.study_name
    paths = []
    for kind, plot in (("history", vm.plot_optimization_history), ("importance", vm.plot_param_importances)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as e:
                logger.warning("no %s plot for %s: %s", kind, name, e)
                continue
        path = out / f"{name}-{kind}.png"
        ax.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(ax.figure)
        paths.append(str(path))
    return paths
