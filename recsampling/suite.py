"""The benchmark suite: models x samplers x datasets x seeds, plus ``implicit``'s BPR and ALS.

One *cell* is one fit and one evaluation: a data set, a model (a registered model such as
``"mf"`` or ``"twotower"``, or a peer library, ``"implicit"``, see :data:`CONTENDERS`), a method
(a registered sampler meant for the model, or the peer's model, e.g. ``implicit``'s ``"bpr"`` /
``"als"``) and a seed; :func:`grid` lists them. Every cell of a data set trains on the same split and is
scored by the same code (:meth:`recsampling.tasks.Task.evaluate`), so the rows compare.

Each finished cell is written atomically to ``OUT/cells/<key>.json`` (its configuration, its
metrics, its learning curve, its speed); a re-run skips every cell whose file holds the same
configuration, so a killed run loses at most the cell in progress. After the cells the suite
writes, from every finished cell in ``OUT``:

- ``results.csv`` — tidy, one row per cell (configuration, seed, every metric, train time,
  samples/s);
- ``results.md`` — per data set, mean ± standard error over seeds per method, best in bold;
- PNGs — per data set the headline metric by method with error bars and the headline metric
  against the epoch, and training speed by method.

Protocols (fixed per data set, see :data:`DATASETS`)
----------------------------------------------------
- ``synthetic``: the embedded world's clicks for training; ``true_ndcg@10`` ranks every
  non-training item against the true relevance; ``dcg@5`` / ``recall@5`` / ``map@5`` rank each
  user's 16 uniformly drawn (missing-at-random) test items.
- ``ml-100k`` / ``ml-1m``: ratings >= 4 (every pair for ML-1M's pairs file), random 80/20 split
  per user (seeded by ``split_seed``), full ranking over the non-training items.
- ``coat`` / ``yahoo-r3``: ratings >= 4, train on the biased set, rank each user's randomized
  test items (Saito et al.'s protocol).

Hyper-parameters are the same for every method of a data set (:data:`DATASETS`) unless tuned
ones are given (:func:`recsampling.tuning.load_tuned`): that is the fair comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from recsampling._files import atomic_write, check_writable
from recsampling._utils import positive_int, resolve_device, to_jsonable
from recsampling.tasks import Task, load_task

__all__ = ["DATASETS", "CONTENDERS", "Contender", "ImplicitContender", "grid", "Cell", "suite_task", "plan", "mean_se",
           "run_suite", "aggregate", "false_negative_rates", "main"]

logger = logging.getLogger(__name__)

#: per data set: metrics (the first is the headline), and the training defaults shared by every
#: method; ``quick`` overrides them for ``--quick``
DATASETS = {
    "synthetic": {"metrics": ("true_ndcg@10", "dcg@5", "recall@5", "map@5"),
                  "train": dict(epochs=10, batch_size=1024),
                  "quick": dict(epochs=3, world=dict(n_users=300, n_items=500, target_interactions=15_000)),
                  "world": dict(n_users=943, n_items=1682, target_interactions=100_000)},
    "ml-100k": {"metrics": ("ndcg@10", "recall@10", "map@10"), "train": dict(epochs=20, batch_size=1024),
                "quick": dict(epochs=3)},
    "ml-1m": {"metrics": ("ndcg@10", "recall@10", "map@10"), "train": dict(epochs=10, batch_size=4096),
              "quick": dict(epochs=1)},
    "coat": {"metrics": ("dcg@5", "recall@5", "map@5"), "train": dict(epochs=30, batch_size=256),
             "quick": dict(epochs=5)},
    "yahoo-r3": {"metrics": ("dcg@5", "recall@5", "map@5"), "train": dict(epochs=15, batch_size=1024),
                 "quick": dict(epochs=3)},
}

#: model and optimizer defaults of every cell of our models (a peer's model takes ``factors`` only
#: and keeps its own learning rate, regularization and iteration count, see :data:`CONTENDERS`)
BASE = dict(factors=32, optimizer="adam", lr=0.01, l2=1e-4)

_CURVE_POINTS = 10  # learning-curve evaluations per peer fit
_FN_ROWS = 5_000  # rows of negatives drawn per epoch for the false-negative share (synthetic data)


# ------------------------------------------------------------------------------------- data
def suite_task(name: str, data_dir=None, quick: bool = False, split_seed: int = 0) -> Task:
    """One of :data:`DATASETS` as the suite splits it (``FileNotFoundError`` when its files are absent).

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    data_dir : path, optional
        The folder holding ``ml-100k/``, ``ml-1m/``, ``coat/``, ``yahoo-r3/`` (e.g.
        ``../shared/data``).
    quick : bool
        The small synthetic world (the real sets are used whole).
    split_seed : int
        Seeds the synthetic world and the MovieLens train/test split (fixed across the cells).

    Returns
    -------
    Task
        :func:`recsampling.tasks.load_task`'s, with the data set's figures as its metrics.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown suite dataset {name!r}; expected one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    figures = spec["metrics"]
    world = None
    if "world" in spec:
        world = {**(spec["quick"]["world"] if quick else spec["world"]), "n_logged_lists": 0}
    return load_task(name, data_dir=data_dir, seed=split_seed, world=world, metrics=tuple(dict.fromkeys(
        m.split("@")[0] for m in figures)), ks=tuple(sorted({int(m.split("@")[1]) for m in figures})))


def _figures(task: Task, model, names: Sequence[str] | None = None) -> dict:
    """The suite's figures of a model (default all of the data set's), scored on the CPU."""
    return task.figures(model, names or DATASETS[task.name]["metrics"], device="cpu")


def _headline(task: Task) -> str:
    """The data set's main metric (the first of its figures), e.g. ``"ndcg@10"``."""
    return DATASETS[task.name]["metrics"][0]


# ------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One run of the grid; ``config`` holds every setting that changes its result."""

    dataset: str
    model: str
    method: str
    seed: int
    config: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """File stem of the cell's result, ``<dataset>__<model>__<method>__seed<k>``."""
        return f"{self.dataset}__{self.model}__{self.method}__seed{self.seed}"

    @property
    def label(self) -> str:
        """Row label of the tables, ``"<model> + <method>"``."""
        return f"{self.model} + {self.method}"


# ------------------------------------------------------------------------------------- contenders
@dataclass(frozen=True)
class Contender:
    """A peer library's model in the grid: fitted on the task's split, scored by the same code as ours.

    Attributes
    ----------
    library : str
        The cells' ``model`` column (e.g. ``"implicit"``).
    method : str
        The cells' ``method`` column.
    defaults : dict
        The peer's own hyper-parameters (its documentation); ``iterations`` is cut by 5 in quick mode.
    linestyle : str
        Of its learning curve (peers are drawn in black).
    """

    library: str
    method: str
    defaults: dict
    linestyle: str = "--"

    @property
    def label(self) -> str:
        return f"{self.library} + {self.method}"

    def config(self, quick: bool) -> dict:
        """The cell configuration: ``factors`` of :data:`BASE` and the peer's defaults."""
        ext = dict(self.defaults)
        if quick and "iterations" in ext:
            ext["iterations"] = max(1, ext["iterations"] // 5)
        return {"factors": BASE["factors"], **ext, "quick": quick}

    def fit(self, task: "Task", cell: "Cell", n_threads: int) -> tuple[dict, list]:
        """Fit on ``task.train``; ``({"model": (U, V), "train_s", "samples", "loss"}, curve)``."""
        raise NotImplementedError


@dataclass(frozen=True)
class ImplicitContender(Contender):
    """A model of the ``implicit`` library (CPU), ``estimator`` being its ``"module:Class"``."""

    estimator: str = ""

    def fit(self, task: "Task", cell: "Cell", n_threads: int) -> tuple[dict, list]:
        import importlib

        from threadpoolctl import threadpool_limits

        module, _, cls = self.estimator.partition(":")
        Est = getattr(importlib.import_module(module), cls)
        cfg = dict(cell.config)
        cfg.pop("quick", None)
        iterations = cfg["iterations"]
        every = max(1, iterations // _CURVE_POINTS)
        curve = []
        spent = [0.0]

        def on_iteration(iteration, *rest):
            if (iteration + 1) % every == 0 or iteration + 1 == iterations:
                t = time.perf_counter()
                head = _headline(task)
                curve.append([iteration + 1, _figures(task, (est.user_factors, est.item_factors), [head])[head]])
                spent[0] += time.perf_counter() - t

        with threadpool_limits(1, "blas"):  # implicit parallelizes itself; a BLAS thread pool under it slows it down
            est = Est(**cfg, num_threads=n_threads, random_state=cell.seed)
            start = time.perf_counter()
            est.fit(task.train.matrix.copy(), show_progress=False, callback=on_iteration)  # it wants writable arrays
        train_s = time.perf_counter() - start - spent[0]
        # BPR visits one (u, i, j) triple per training pair and iteration; ALS solves every row
        return {"model": (est.user_factors, est.item_factors), "train_s": float(train_s),
                "samples": int(task.train.nnz) * iterations, "loss": float("nan")}, curve


#: the peers' models in the grid, each with its own defaults (their documentation)
CONTENDERS: tuple[Contender, ...] = (
    ImplicitContender("implicit", "bpr", dict(learning_rate=0.01, regularization=0.01, iterations=100), "--",
                      estimator="implicit.cpu.bpr:BayesianPersonalizedRanking"),
    ImplicitContender("implicit", "als", dict(regularization=0.01, alpha=1.0, iterations=15), ":",
                      estimator="implicit.cpu.als:AlternatingLeastSquares"),
)


def _contender(model: str, method: str) -> Contender | None:
    """The peer model of a cell, None for a cell of our models."""
    return next((c for c in CONTENDERS if c.library == model and c.method == method), None)


def grid() -> dict[str, tuple[str, ...]]:
    """The methods of each model of the grid, derived from the registries.

    Returns
    -------
    dict
        Every registered model (:data:`recsampling.models.MODELS`, plug-ins included) -> the
        registered samplers meant for it (``Sampler.models``), in registry order; then each peer
        library of :data:`CONTENDERS` -> its methods.
    """
    from recsampling.models import MODELS
    from recsampling.samplers import samplers_for

    out = {model: tuple(samplers_for(model)) for model in MODELS.classes()}
    for c in CONTENDERS:
        if c.library in MODELS:
            logger.warning("the registered model %r hides the peer contender %s", c.library, c.label)
            continue
        out[c.library] = out.get(c.library, ()) + (c.method,)
    return out


def _cell_config(dataset: str, model: str, method: str, quick: bool, epochs: int | None,
                 tuned: dict | None) -> dict:
    spec = DATASETS[dataset]
    train = {**spec["train"], **{k: v for k, v in spec["quick"].items() if k != "world"}} if quick \
        else dict(spec["train"])
    if epochs is not None:
        train["epochs"] = epochs
    peer = _contender(model, method)
    if peer is not None:
        return peer.config(quick)
    cfg = {**BASE, **train, "model_params": {}, "sampler_params": {}, "tuned": None, "quick": quick}
    best = (tuned or {}).get((dataset, model, method)) or (tuned or {}).get((None, model, method))
    if best:
        cfg["lr"], cfg["l2"] = best["lr"], best["l2"]
        cfg["model_params"] = dict(best.get("model_params", {}))
        cfg["factors"] = cfg["model_params"].pop("factors", cfg["factors"])
        cfg["sampler_params"] = dict(best.get("sampler_params", {}))
        cfg["tuned"] = best.get("study")
    return cfg


def plan(datasets: Sequence[str], models: Sequence[str] | None, seeds: Sequence[int],
         samplers: Sequence[str] | None = None, quick: bool = False, epochs: int | None = None,
         tuned: dict | None = None) -> list[Cell]:
    """The cells of the grid, in run order (data set, model, method, seed).

    ``models`` None takes every model of :func:`grid`; ``samplers`` (optional) keeps only those
    methods; ``tuned`` maps ``(dataset or None, model, sampler)`` to a configuration of
    :func:`recsampling.tuning.load_tuned`.
    """
    g = grid()
    models = list(g) if models is None else list(models)
    unknown = [m for m in models if m not in g]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {sorted(g)}")
    if samplers is not None:
        known = {s for ss in g.values() for s in ss}
        bad = [s for s in samplers if s not in known]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; expected some of {sorted(known)}")
    cells = []
    for d in datasets:
        if d not in DATASETS:
            raise ValueError(f"unknown suite dataset {d!r}; expected some of {sorted(DATASETS)}")
        for m in models:
            for s in g[m]:
                if samplers is not None and s not in samplers:
                    continue
                cfg = _cell_config(d, m, s, quick, epochs, tuned)
                cells.extend(Cell(d, m, s, int(seed), cfg) for seed in seeds)
    return cells


def _fit_ours(task: Task, cell: Cell, device: str) -> tuple[dict, list]:
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    cfg = cell.config
    rng = np.random.default_rng(cell.seed)
    model = make_model(cell.model, task.train, factors=cfg["factors"], random_state=rng, **cfg["model_params"])
    sampler = make_sampler(cell.method, **cfg["sampler_params"])
    curve, fn_curve = [], []
    # on a world with known truth: the share of the sampler's negatives that are truly relevant, per
    # epoch, drawn from a generator of its own (the training draws stay as they were)
    fn_rng = np.random.default_rng([cell.seed, 1]) if task.relevance is not None else None

    def on_epoch(epoch: int, logs: dict) -> None:
        curve.append([epoch + 1, _figures(task, model, [_headline(task)])[_headline(task)]])
        if fn_rng is not None:
            from recsampling.diagnostics import false_negative_share

            share = false_negative_share(sampler, model, task.relevance, n_rows=_FN_ROWS,
                                         batch_size=cfg["batch_size"], random_state=fn_rng)
            fn_curve.append([epoch + 1, share["false_negative_rate"]])

    trainer = Trainer(epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=cfg["optimizer"], lr=cfg["lr"],
                      l2=cfg["l2"], device=device, random_state=rng, progress=False, callbacks=[on_epoch])
    history = trainer.fit(model, sampler, task.train).history
    train_s = float(sum(h["time"] for h in history))
    samples = int(sum(h["samples"] for h in history))
    return {"model": model, "train_s": train_s, "samples": samples, "loss": float(history[-1]["loss"]),
            "false_negative_curve": fn_curve or None}, curve


def run_cell(task: Task, cell: Cell, device: str = "cpu", n_threads: int = 1) -> dict:
    """Fit and evaluate one cell; returns the record written to ``cells/<key>.json``."""
    peer = _contender(cell.model, cell.method)
    fit, curve = peer.fit(task, cell, n_threads) if peer is not None else _fit_ours(task, cell, device)
    t = time.perf_counter()
    metrics = _figures(task, fit["model"])
    eval_s = time.perf_counter() - t
    fnc = fit.get("false_negative_curve")
    return {
        "key": cell.key, "dataset": cell.dataset, "model": cell.model, "method": cell.method, "seed": cell.seed,
        "config": cell.config, "status": "ok", "metrics": metrics, "curve": curve,
        "train_s": fit["train_s"], "samples": fit["samples"],
        "samples_per_s": fit["samples"] / fit["train_s"] if fit["train_s"] > 0 else float("nan"),
        "eval_s": eval_s, "final_loss": fit["loss"], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        # synthetic data, our samplers: per epoch and last (recsampling.diagnostics); None otherwise
        "false_negative_curve": fnc, "false_negative_rate": fnc[-1][1] if fnc else None,
    }


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, text)  # a failed write (disk full) removes its temporary


def _read_cell(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _same_config(a: dict, b: dict) -> bool:
    # through JSON, so tuples and lists compare equal
    return json.loads(json.dumps(a, sort_keys=True)) == json.loads(json.dumps(b, sort_keys=True))


@dataclass
class SuiteResult:
    """What :func:`run_suite` returns.

    Attributes
    ----------
    out : Path
    ran, reused, failed : list of str
        Cell keys fitted by this call, found finished in ``out``, and those that raised.
    skipped_datasets : dict
        Data set -> why it was left out (files absent).
    files : dict
        ``csv``, ``markdown`` and ``plots`` written.
    table : pandas.DataFrame
        Mean and standard error per data set x method x metric.
    seconds : float
    false_negative_rate : dict
        ``"<model>+<sampler>"`` -> the share of the sampler's drawn negatives that are truly
        relevant after the last epoch, mean over seeds, on the synthetic data set
        (:mod:`recsampling.diagnostics`; our samplers only).
    """

    out: Path
    ran: list
    reused: list
    failed: list
    skipped_datasets: dict
    files: dict
    table: object
    seconds: float
    false_negative_rate: dict = field(default_factory=dict)


def run_suite(out, datasets: Sequence[str] = ("synthetic",), models: Sequence[str] | None = None,
              seeds: Sequence[int] = (0, 1, 2), samplers: Sequence[str] | None = None, quick: bool = False,
              epochs: int | None = None, tuned: dict | None = None, data_dir=None, split_seed: int = 0,
              device: str = "cpu", n_threads: int = 1, progress: bool = True, plots: bool = True) -> SuiteResult:
    """Run (or resume) the grid into ``out`` and write the CSV, the Markdown table and the plots.

    Parameters
    ----------
    out : path
        The run folder; created. Finished cells found there with the same configuration are reused.
    datasets, models, seeds, samplers, quick, epochs, tuned
        See :func:`plan` (``models`` None: every model of :func:`grid`). A data set whose files are absent is skipped (reported, not an error).
    data_dir : path, optional
        Where the real data sets are.
    split_seed : int
        Seeds the synthetic world and the MovieLens split (the same for every cell).
    device : str
        Training device of our models (scoring runs on the CPU so timings compare).
    n_threads : int
        The peer libraries' threads.
    progress : bool
        A tqdm bar over the cells.
    plots : bool
        Write the PNGs.

    Returns
    -------
    SuiteResult
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    out = Path(out)
    cell_dir = out / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    cells = plan(datasets, models, seeds, samplers, quick, epochs, tuned)
    ran, reused, failed, skipped = [], [], [], {}
    tasks: dict[str, Task] = {}
    bar = tqdm(cells, desc="suite", unit="cell", disable=not progress, file=sys.stderr)
    for cell in bar:
        if cell.dataset in skipped:
            continue
        path = cell_dir / f"{cell.key}.json"
        old = _read_cell(path) if path.exists() else None
        if old is not None and old.get("status") == "ok" and _same_config(old.get("config", {}), cell.config):
            reused.append(cell.key)
            continue
        if cell.dataset not in tasks:
            try:
                tasks[cell.dataset] = suite_task(cell.dataset, data_dir, quick, split_seed)
            except FileNotFoundError as e:
                skipped[cell.dataset] = str(e).splitlines()[0]
                logger.warning("skipping %s: %s", cell.dataset, skipped[cell.dataset])
                continue
        bar.set_postfix_str(cell.key)
        try:
            record = run_cell(tasks[cell.dataset], cell, device=device, n_threads=n_threads)
        except (ValueError, RuntimeError) as e:
            logger.warning("cell %s failed: %s", cell.key, e)
            record = {"key": cell.key, "dataset": cell.dataset, "model": cell.model, "method": cell.method,
                      "seed": cell.seed, "config": cell.config, "status": "failed", "error": str(e)}
            failed.append(cell.key)
        else:
            ran.append(cell.key)
        _write_atomic(path, json.dumps(to_jsonable(record), indent=1))
    keys = {c.key for c in cells}
    files, table = aggregate(out, plots=plots, keys=keys)
    return SuiteResult(out, ran, reused, failed, skipped, files, table, time.perf_counter() - start,
                       false_negative_rates(_records(out, keys)))


def false_negative_rates(recs: Sequence[dict], dataset: str = "synthetic") -> dict:
    """``"<model>+<method>"`` -> mean over seeds of the cells' last-epoch false-negative share on ``dataset``."""
    by: dict = {}
    for r in recs:
        if r.get("dataset") == dataset and r.get("false_negative_rate") is not None:
            by.setdefault(f"{r['model']}+{r['method']}", []).append(float(r["false_negative_rate"]))
    return {k: float(np.mean(v)) for k, v in by.items()}


# ------------------------------------------------------------------------------------- reports
def _records(out: Path, keys: set | None) -> list[dict]:
    recs = []
    for path in sorted((out / "cells").glob("*.json")):
        rec = _read_cell(path)
        if rec is None or rec.get("status") != "ok" or (keys is not None and rec.get("key") not in keys):
            continue
        recs.append(rec)
    return recs


def _order(dataset: str, model: str, method: str, g: dict) -> tuple:
    """Sort key: data sets, models and methods in the order of DATASETS and the grid ``g``."""
    ds, models = list(DATASETS), list(g)
    methods = g.get(model, ())
    return (ds.index(dataset) if dataset in ds else len(ds), models.index(model) if model in models else len(models),
            methods.index(method) if method in methods else len(methods))


#: configuration columns of results.csv (implicit's iterations / learning_rate / regularization
#: go to epochs / lr / l2)
_CONFIG_COLUMNS = ("epochs", "factors", "lr", "l2", "alpha", "batch_size", "optimizer", "model_params",
                   "sampler_params", "tuned", "quick")
_RENAME = {"iterations": "epochs", "learning_rate": "lr", "regularization": "l2"}


def _tidy(recs: list[dict]):
    import pandas as pd

    g = grid()
    recs = sorted(recs, key=lambda r: (*_order(r["dataset"], r["model"], r["method"], g), r["seed"]))
    metric_cols = list(dict.fromkeys(m for d in DATASETS for m in DATASETS[d]["metrics"]))
    metric_cols += sorted({m for r in recs for m in r["metrics"]} - set(metric_cols))
    rows = []
    for r in recs:
        cfg = {_RENAME.get(k, k): v for k, v in r["config"].items()}
        row = {"dataset": r["dataset"], "model": r["model"], "method": r["method"], "seed": r["seed"]}
        for k in _CONFIG_COLUMNS:
            v = cfg.get(k)
            row[k] = json.dumps(v, sort_keys=True) if isinstance(v, dict) and v else (None if isinstance(v, dict) else v)
        row.update({m: r["metrics"].get(m) for m in metric_cols})
        row.update({"train_s": r["train_s"], "samples_per_s": r["samples_per_s"], "eval_s": r["eval_s"],
                    "final_loss": r["final_loss"], "finished_at": r["finished_at"]})
        rows.append(row)
    df = pd.DataFrame(rows).dropna(axis=1, how="all")
    for c in ("epochs", "factors", "batch_size"):
        if c in df:
            df[c] = df[c].astype("Int64")  # integers with gaps (implicit has no batch size)
    return df


def mean_se(runs: Sequence[dict], *, suffix: str = "_se", always: bool = False) -> dict:
    """Mean and standard error over runs (e.g. seeds) of each figure of the first run.

    Parameters
    ----------
    runs : sequence of dict
        One ``{figure: number}`` per run; a None value is left out of its figure's mean.
    suffix : str
        Key suffix of the standard errors (``"ndcg@10" -> "ndcg@10_se"``).
    always : bool
        Give every figure a standard error: 0.0 for a single value, None for none. By default a
        figure with a single value has none.

    Returns
    -------
    dict
        ``{figure: mean, figure + suffix: std(ddof=1) / sqrt(n), ...}``; the mean is None when no
        run has a value.
    """
    out: dict = {}
    for key in runs[0]:
        v = np.array([r[key] for r in runs if r[key] is not None], dtype=np.float64)
        out[key] = float(v.mean()) if v.size else None
        if v.size > 1:
            out[key + suffix] = float(v.std(ddof=1) / math.sqrt(v.size))
        elif always:
            out[key + suffix] = 0.0 if v.size else None
    return out


def _summary(df):
    import pandas as pd

    metric_cols = [c for c in df.columns if "@" in c]
    rows = []
    for (d, m, s), g in df.groupby(["dataset", "model", "method"], sort=False):
        row = {"dataset": d, "model": m, "method": s, "n_seeds": len(g)}
        for c in metric_cols + ["train_s", "samples_per_s"]:
            v = g[c].dropna()
            if v.empty:
                continue
            row[c] = float(v.mean())
            row[c + "_se"] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(summary, header: str) -> str:
    lines = [header, ""]
    for d, g in summary.groupby("dataset", sort=False):
        metrics = [m for m in DATASETS[d]["metrics"] if m in g.columns]
        lines += [f"## {d}", "",
                  "| method | " + " | ".join(metrics) + " | seeds | train s | samples/s |",
                  "|---|" + "---|" * (len(metrics) + 3)]
        best = {m: g[m].max() for m in metrics}
        for _, r in g.iterrows():
            cells = []
            for m in metrics:
                se = r.get(m + "_se")
                txt = f"{r[m]:.4f}" + (f" ± {se:.4f}" if se == se else "")
                cells.append(f"**{txt}**" if r[m] == best[m] else txt)
            lines.append(f"| {r['model']} + {r['method']} | " + " | ".join(cells)
                         + f" | {int(r['n_seeds'])} | {r['train_s']:.2f} | {r['samples_per_s']:,.0f} |")
        lines.append("")
    lines.append("Mean ± standard error over seeds; the best mean of each column in bold. "
                 "`implicit + bpr` / `implicit + als` are the `implicit` library's models on the same split, "
                 "scored by the same code; samples/s counts training pairs visited per second (ALS: pairs x "
                 "iterations / time).")
    return "\n".join(lines) + "\n"


def _plots(summary, curves: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for d, g in summary.groupby("dataset", sort=False):
        head = DATASETS[d]["metrics"][0]
        g = g.sort_values(head)
        labels = (g["model"] + " + " + g["method"]).tolist()
        fig, ax = plt.subplots(figsize=(7, 0.32 * len(g) + 1.2))
        ax.barh(labels, g[head], xerr=g[head + "_se"].fillna(0), color="tab:blue", alpha=0.8, capsize=2)
        ax.set_xlabel(f"{head} (mean ± s.e. over seeds)")
        ax.set_title(f"{d}: {head} by method")
        lo = float((g[head] - g[head + "_se"].fillna(0)).min())
        ax.set_xlim(left=max(0.0, lo - 0.1 * (float(g[head].max()) - lo + 1e-9)))
        fig.tight_layout()
        p = out / f"{d}_{head.replace('@', '_at_')}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))

    colors = plt.get_cmap("tab10")
    g = grid()
    peers = {c.library for c in CONTENDERS}
    for d in summary["dataset"].unique():
        head = DATASETS[d]["metrics"][0]
        present = list(dict.fromkeys(summary.loc[summary["dataset"] == d, "model"]))
        # one panel per model of ours (the peers' curves drawn in each), or one of the peers alone
        families = [m for m in present if m not in peers] or [m for m in present if m in peers][:1]
        fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 4.5), sharey=True, squeeze=False)
        for ax, family in zip(axes[0], families):
            for label, per_seed in curves.get(d, {}).items():
                model = label.split(" + ")[0]
                if model != family and model not in peers:
                    continue
                # x: the fraction of the fit done, so 10 epochs and 100 implicit iterations share an axis
                points = [{x / max(p[0] for p in c): y for x, y in c} for c in per_seed if c]
                xs = sorted({x for c in points for x in c})
                ys = [float(np.mean([c[x] for c in points if x in c])) for x in xs]
                method = label.split(" + ")[1]
                peer = _contender(model, method)
                i = g[model].index(method) if method in g.get(model, ()) else 0
                ax.plot(xs, ys, marker=".", label=label, linestyle="-" if peer is None else peer.linestyle,
                        color=colors(i % 10) if peer is None else "black", alpha=0.9 if peer is None else 0.6)
            ax.set_xlabel("fraction of training done (epochs; implicit: iterations)")
            ax.set_title(f"{d}: {family}")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel(f"{head} on the test set (mean over seeds)")
        fig.tight_layout()
        p = out / f"{d}_curve.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))

    fig, ax = plt.subplots(figsize=(8, 0.25 * len(summary) + 1.5))
    s = summary.sort_values(["dataset", "samples_per_s"])
    labels = (s["dataset"] + ": " + s["model"] + " + " + s["method"]).tolist()
    ax.barh(labels, s["samples_per_s"], xerr=s["samples_per_s_se"].fillna(0), color="tab:green", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training samples per second (log scale)")
    ax.set_title("training speed")
    fig.tight_layout()
    p = out / "speed.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(str(p))
    return paths


def _false_negative_plots(recs: list[dict], out: Path) -> list[str]:
    """Per data set with false-negative curves: the share per epoch and the headline per epoch, by method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for d in dict.fromkeys(r["dataset"] for r in recs if r.get("false_negative_curve")):
        runs: dict = {}
        for r in recs:
            if r["dataset"] == d and r.get("false_negative_curve"):
                runs.setdefault(f"{r['model']} + {r['method']}", []).append((r["false_negative_curve"], r["curve"]))
        head = DATASETS[d]["metrics"][0]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5))
        colors = plt.get_cmap("tab20")
        for n, (label, per_seed) in enumerate(runs.items()):
            for ax, which in ((a1, 0), (a2, 1)):
                pts = [dict((int(e), float(v)) for e, v in run[which]) for run in per_seed]
                xs = sorted({x for p in pts for x in p})
                ys = [float(np.mean([p[x] for p in pts if x in p])) for x in xs]
                ax.plot(xs, ys, marker=".", label=label, color=colors(n % 20))
        a1.set_xlabel("epoch")
        a1.set_ylabel("share of drawn negatives truly relevant (mean over seeds)")
        a1.set_title(f"{d}: false negatives drawn")
        a2.set_xlabel("epoch")
        a2.set_ylabel(f"{head} (mean over seeds)")
        a2.set_title(f"{d}: {head}")
        a2.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        p = out / f"{d}_false_negatives.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(str(p))
    return paths


def aggregate(out, plots: bool = True, keys: set | None = None) -> tuple[dict, object]:
    """Write ``results.csv``, ``results.md`` and the PNGs from the finished cells in ``out``.

    Parameters
    ----------
    out : path
        A run folder of :func:`run_suite`.
    plots : bool
    keys : set of str, optional
        Only these cells (default every finished cell in the folder).

    Returns
    -------
    (dict, pandas.DataFrame)
        The files written (``csv``, ``markdown``, ``plots``) and the summary table.
    """
    import pandas as pd

    out = Path(out)
    recs = _records(out, keys)
    if not recs:
        return {"csv": None, "markdown": None, "plots": []}, pd.DataFrame()
    df = _tidy(recs)
    curves: dict = {}
    for r in recs:
        curves.setdefault(r["dataset"], {}).setdefault(f"{r['model']} + {r['method']}", []).append(r["curve"])
    summary = _summary(df)
    csv = out / "results.csv"
    _write_atomic(csv, df.to_csv(index=False))
    md = out / "results.md"
    _write_atomic(md, _markdown(summary, f"# Benchmark suite: {len(df)} runs in `{out}`"))
    files = {"csv": str(csv), "markdown": str(md),
             "plots": _plots(summary, curves, out) + _false_negative_plots(recs, out) if plots else []}
    return files, summary


# ------------------------------------------------------------------------------------- command
def build_parser(prog: str = "benchmarks/run.py") -> argparse.ArgumentParser:
    from recsampling.cli import ArgumentParser  # usage errors in one line

    p = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                       epilog="A second run with the same --out reuses every finished cell with the same configuration.")
    p.add_argument("--out", default="benchmarks/results/suite", help="run folder (default benchmarks/results/suite)")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: small synthetic world + Coat (when present), few epochs, 2 seeds (< 3 min)")
    p.add_argument("--datasets", default=None,
                   help=f"comma-separated subset of {','.join(DATASETS)} (default: all; --quick: synthetic,coat); "
                        "absent data sets are skipped")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of the registered models (mf, twotower, plug-ins) and the peer "
                        "libraries (implicit); default: all")
    p.add_argument("--samplers", default=None,
                   help="comma-separated subset of the methods: registered samplers (plug-ins included) and the "
                        "peers' models (default: all)")
    p.add_argument("--seeds", type=positive_int, default=None, help="seeds per cell (default 3; --quick 2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override every data set's epochs (our models; implicit keeps its iterations)")
    p.add_argument("--data-dir", default="../shared/data", help="folder holding the real data sets")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the world and of the train/test split")
    p.add_argument("--tuned", action="append", default=None, metavar="STORAGE",
                   help="an Optuna storage URL (sqlite:///file.db): the best parameters of its studies replace "
                        "the defaults of their model x sampler (repeatable)")
    p.add_argument("--device", default="cpu", help="training device of our models (cpu, cuda, auto)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch and implicit threads (default 1)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="train nothing: write the tables and plots from every finished cell in --out (after runs "
                        "of different subsets into one folder; a run reports only its own cells)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    return p


def _results_by_dataset(table) -> dict:
    """{dataset: {"model + method": {headline metric: mean}}} of a summary table."""
    if not len(table):
        return {}
    return {d: {f"{r['model']} + {r['method']}": {m: r.get(m) for m in DATASETS[d]["metrics"]}
                for _, r in g.iterrows()} for d, g in table.groupby("dataset", sort=False)}


def _split_list(text: str | None) -> list | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/run.py") -> int:
    """Command line of the suite (``benchmarks/run.py`` and ``recsampling bench``)."""
    import torch

    a = build_parser(prog).parse_args(argv)
    # before any cell: a device torch cannot use or a folder that cannot take the results fails now
    resolve_device(a.device)
    check_writable(a.out, what="--out")
    torch.set_num_threads(a.threads)
    if a.report:
        files, table = aggregate(a.out, plots=not a.no_plots)
        if not files["markdown"]:
            raise ValueError(f"no finished cells in {a.out}")
        print(Path(files["markdown"]).read_text())
        print(f"report of {int(table['n_seeds'].sum())} finished cells written to {a.out}")
        if a.json:
            print(json.dumps(to_jsonable({"out": str(a.out), **files, "results": _results_by_dataset(table),
                                          "false_negative_rate": false_negative_rates(_records(Path(a.out), None))})))
        return 0
    datasets = _split_list(a.datasets) or (["synthetic", "coat"] if a.quick else list(DATASETS))
    n_seeds = a.seeds if a.seeds is not None else (2 if a.quick else 3)
    tuned = None
    if a.tuned:
        from recsampling.tuning import load_tuned

        tuned = {}
        for url in a.tuned:
            tuned.update(load_tuned(url))
    res = run_suite(a.out, datasets, _split_list(a.models), list(range(n_seeds)), _split_list(a.samplers), a.quick,
                    a.epochs, tuned, a.data_dir, a.split_seed, a.device, a.threads,
                    progress=not a.quiet and sys.stderr.isatty(),  # no carriage-return bars in a piped log
                    plots=not a.no_plots)
    text = Path(res.files["markdown"]).read_text() if res.files["markdown"] else "no finished cells"
    summary = {
        "out": str(res.out), "cells": len(res.ran) + len(res.reused) + len(res.failed), "ran": len(res.ran),
        "reused": len(res.reused), "failed": res.failed, "skipped_datasets": res.skipped_datasets,
        "seconds": round(res.seconds, 1), **res.files, "results": _results_by_dataset(res.table),
        "false_negative_rate": res.false_negative_rate,
    }
    print(text)
    print(f"{summary['cells']} cells: {summary['ran']} run, {summary['reused']} reused, {len(res.failed)} failed; "
          f"skipped data sets: {res.skipped_datasets or 'none'}; {res.seconds:.0f} s; written to {res.out}")
    if a.json:
        print(json.dumps(to_jsonable(summary)))
    return 1 if res.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
