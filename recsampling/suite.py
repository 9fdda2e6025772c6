"""The benchmark suite: models x samplers x datasets x seeds, plus ``implicit``'s BPR and ALS.

One *cell* is one fit and one evaluation: a data set, a model (a registered model such as
``"mf"`` or ``"twotower"``, or a peer library, ``"implicit"``, see :data:`CONTENDERS`), a method
(a registered sampler meant for the model, or the peer's model, e.g. ``implicit``'s ``"bpr"`` /
``"als"``) and a seed; :func:`grid` lists them. Every cell of a data set trains on the same split and is
scored by the same code (:meth:`recsampling.tasks.Task.evaluate`), so the rows compare.
This module is the grid and its orchestration; the contenders, the cell store, the tables and
the plots are the benchmark layer's (:mod:`recsampling.bench`).

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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from recsampling._files import atomic_write, check_writable
from recsampling._utils import positive_int, resolve_device, to_jsonable
from recsampling.bench import report
from recsampling.bench.contenders import PEERS, Contender, ImplicitFactors, Ours
from recsampling.bench.store import CellStore
from recsampling.tasks import Task, load_task

__all__ = ["DATASETS", "BASE", "CONTENDERS", "grid", "Cell", "suite_task", "plan", "run_cell", "run_suite",
           "SuiteResult", "aggregate", "main"]

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
#: the peers' models in the grid, each with its own defaults (their documentation)
CONTENDERS: tuple[Contender, ...] = PEERS
#: peers that join a run only when ``samplers`` names them (``--samplers itemknn,most_popular``):
#: implicit's item-kNN and the popularity order (``baseline + most_popular``), so that the default
#: grid and its results stay as they were
_OPT_IN = tuple(c for c in PEERS if not isinstance(c, ImplicitFactors))


def _contender(model: str, method: str) -> Contender:
    """The contender of a cell: a peer of :data:`CONTENDERS`, else ours (a registered model and sampler)."""
    return next((c for c in CONTENDERS if c.library == model and c.method == method), None) or Ours(model, method)


def _is_peer(model: str, method: str) -> bool:
    return any(c.library == model and c.method == method for c in CONTENDERS)


def grid(opt_in: bool = False) -> dict[str, tuple[str, ...]]:
    """The methods of each model of the grid, derived from the registries.

    Parameters
    ----------
    opt_in : bool
        Also the peers that run only when asked for by name (implicit's item-kNN, popularity).

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
        if c in _OPT_IN and not opt_in:
            continue
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
    if _is_peer(model, method):  # the peer's own defaults and BASE's factors; quick cuts its iterations by 5
        ext = dict(_contender(model, method).defaults)
        if quick and "iterations" in ext:
            ext["iterations"] = max(1, ext["iterations"] // 5)
        return {"factors": BASE["factors"], **ext, "quick": quick}
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
    methods (and adds the opt-in peers it names, e.g. ``"itemknn"``, ``"most_popular"``); ``tuned``
    maps ``(dataset or None, model, sampler)`` to a configuration of
    :func:`recsampling.tuning.load_tuned`.
    """
    g = grid(opt_in=True)
    asked = set(samplers or ())

    def methods(model: str) -> list[str]:
        return [s for s in g[model] if (samplers is None or s in asked)
                and (s in asked or not any(c.library == model and c.method == s for c in _OPT_IN))]

    models = [m for m in g if m in grid() or methods(m)] if models is None else list(models)
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
            for s in methods(m):
                cfg = _cell_config(d, m, s, quick, epochs, tuned)
                cells.extend(Cell(d, m, s, int(seed), cfg) for seed in seeds)
    return cells


def run_cell(task: Task, cell: Cell, device: str = "cpu", n_threads: int = 1) -> dict:
    """Fit and evaluate one cell; returns the record written to ``cells/<key>.json``.

    The learning curve is the headline metric after every epoch (ours) or every tenth of the
    iterations (a peer); on a world with known truth, ours also record the share of the
    sampler's negatives that are truly relevant, per epoch, drawn from a generator of its own
    (the training draws stay as they were).
    """
    contender = _contender(cell.model, cell.method)
    peer = _is_peer(cell.model, cell.method)
    head = _headline(task)
    cfg = {k: v for k, v in cell.config.items() if k not in ("quick", "tuned")}
    curve, fn_curve = [], []
    fn_rng = np.random.default_rng([cell.seed, 1]) if task.relevance is not None and not peer else None

    def on_checkpoint(step: int, model, sampler) -> None:
        curve.append([step, _figures(task, model, [head])[head]])
        if fn_rng is not None:
            from recsampling.diagnostics import false_negative_share

            share = false_negative_share(sampler, model, task.relevance, n_rows=_FN_ROWS,
                                         batch_size=cfg["batch_size"], random_state=fn_rng)
            fn_curve.append([step, share["false_negative_rate"]])

    if peer:
        fit = contender.fit(task.train, cfg, cell.seed, n_threads=n_threads, on_checkpoint=on_checkpoint)
    else:  # one generator for the model's start and the Trainer's draws
        fit = contender.fit(task.train, cfg, np.random.default_rng(cell.seed), device=device,
                            on_checkpoint=on_checkpoint)
    t = time.perf_counter()
    metrics = _figures(task, fit.model)
    eval_s = time.perf_counter() - t
    fnc = fn_curve or None
    return {
        "key": cell.key, "dataset": cell.dataset, "model": cell.model, "method": cell.method, "seed": cell.seed,
        "config": cell.config, "status": "ok", "metrics": metrics, "curve": curve,
        "train_s": fit.train_s, "samples": fit.samples,
        "samples_per_s": fit.samples / fit.train_s if fit.train_s > 0 else float("nan"),
        "eval_s": eval_s, "final_loss": fit.loss, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        # synthetic data, our samplers: per epoch and last (recsampling.diagnostics); None otherwise
        "false_negative_curve": fnc, "false_negative_rate": fnc[-1][1] if fnc else None,
    }


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
    store = CellStore(out, create=True)
    cells = plan(datasets, models, seeds, samplers, quick, epochs, tuned)
    ran, reused, failed, skipped = [], [], [], {}
    tasks: dict[str, Task] = {}
    bar = tqdm(cells, desc="suite", unit="cell", disable=not progress, file=sys.stderr)
    for cell in bar:
        if cell.dataset in skipped:
            continue
        if store.finished(cell.key, cell.config) is not None:
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
        store.put(record)
    keys = {c.key for c in cells}
    files, table = aggregate(out, plots=plots, keys=keys)
    return SuiteResult(out, ran, reused, failed, skipped, files, table, time.perf_counter() - start,
                       report.false_negative_rates(store.records(keys)))


# ------------------------------------------------------------------------------------- reports
def _order(rec: dict) -> tuple:
    """Sort key of a record: data sets, models and methods in the order of DATASETS and the grid."""
    g = grid(opt_in=True)
    ds, models = list(DATASETS), list(g)
    methods = g.get(rec["model"], ())
    return (ds.index(rec["dataset"]) if rec["dataset"] in ds else len(ds),
            models.index(rec["model"]) if rec["model"] in models else len(models),
            methods.index(rec["method"]) if rec["method"] in methods else len(methods))


def _metrics() -> dict:
    """Data set -> its figures (the headline first)."""
    return {d: spec["metrics"] for d, spec in DATASETS.items()}


def _peer_style(model: str, method: str) -> str | None:
    return _contender(model, method).linestyle if _is_peer(model, method) else None


_FOOTNOTE = ("Mean ± standard error over seeds; the best mean of each column in bold. "
             "`implicit + bpr` / `implicit + als` are the `implicit` library's models on the same split, "
             "scored by the same code; samples/s counts training pairs visited per second (ALS: pairs x "
             "iterations / time).")


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
    recs = CellStore(out).records(keys)
    if not recs:
        return {"csv": None, "markdown": None, "plots": []}, pd.DataFrame()
    df = report.tidy(recs, _metrics(), _order)
    curves: dict = {}
    for r in recs:
        curves.setdefault(r["dataset"], {}).setdefault(f"{r['model']} + {r['method']}", []).append(r["curve"])
    summary = report.summary(df)
    csv = out / "results.csv"
    atomic_write(csv, df.to_csv(index=False))
    md = out / "results.md"
    atomic_write(md, report.markdown(summary, f"# Benchmark suite: {len(df)} runs in `{out}`", _metrics(), _FOOTNOTE))
    files = {"csv": str(csv), "markdown": str(md), "plots": []}
    if plots:
        from recsampling.bench.plots import false_negative_plots, suite_plots

        files["plots"] = (suite_plots(summary, curves, out, _metrics(), grid(opt_in=True), _peer_style)
                          + false_negative_plots(recs, out, _metrics()))
    return files, summary


# ------------------------------------------------------------------------------------- command
def build_parser(prog: str = "benchmarks/run.py") -> argparse.ArgumentParser:
    from recsampling.cli import ArgumentParser  # usage errors in one line

    p = ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                       epilog="A second run with the same --out reuses every finished cell with the same configuration.")
    p.add_argument("--out", default=None,
                   help="run folder (default benchmarks/results/suite; with --quick benchmarks/results/suite_quick, "
                        "so that a smoke run leaves the recorded suite alone)")
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
                        "peers' models (default: all; implicit's itemknn and baseline's most_popular, the "
                        "popularity order, join only when named here)")
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


def _split_list(text: str | None) -> list | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/run.py") -> int:
    """Command line of the suite (``benchmarks/run.py`` and ``recsampling bench``)."""
    import torch

    a = build_parser(prog).parse_args(argv)
    if a.out is None:
        a.out = "benchmarks/results/suite_quick" if a.quick else "benchmarks/results/suite"
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
            print(json.dumps(to_jsonable({
                "out": str(a.out), **files, "results": report.results_by_dataset(table, _metrics()),
                "false_negative_rate": report.false_negative_rates(CellStore(a.out).records())})))
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
        "seconds": round(res.seconds, 1), **res.files, "results": report.results_by_dataset(res.table, _metrics()),
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
