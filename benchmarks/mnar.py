"""Unbiased learning from MNAR clicks: naive pointwise vs BPR vs Rel-MF vs UBPR, same run.

Issue 6: train on the biased (missing-not-at-random) clicks, evaluate on a randomized
(missing-at-random) test set with the protocol of Saito et al. (WSDM 2020) and Saito (ICTIR
2020): rank only each user's randomized test items; a rating >= 4 is relevant; DCG@K, Recall@K,
MAP@K for K = 3, 5, 8; mean and standard error over seeds.

Methods (every one is a registered sampler on the same model, the same Trainer and the same
hyper-parameters; only the loss and its sampling differ)

- ``naive``: the pointwise loss ``Y delta1 + (1 - Y) delta0`` (Rel-MF's code with ``theta = 1``);
- ``bpr``: uniform BPR (one unobserved item per click, exact rejection);
- ``relmf``: Rel-MF with popularity propensities ``(n_i / max n)^0.5`` clipped at ``M``;
- ``relmf_true_propensity`` (synthetic only): Rel-MF with the world's true exposure of each click;
- ``ubpr``: UBPR with popularity propensities, clipped at ``M``, non-negative (``beta``).

Data sets

- ``coat``: Coat (Schnabel et al. 2016), ``--data-dir`` holds ``coat/``; 290 users x 300 items,
  16 randomized test items per user.
- ``yahoo-r3``: Yahoo! R3, where its files are in ``--data-dir`` (``yahoo-r3/``).
- ``synthetic``: :func:`recsampling.data.synthetic.make_world` (a fresh world per seed), whose
  randomized test set has 16 uniform items per user labelled by a Bernoulli(relevance) draw. Here
  the truth is known, so the script also reports ``true_dcg@K`` / ``true_ndcg@K`` /
  ``true_recall@K`` (the gains are the true relevance probabilities of the ranked test items).

"Rare items" (all data sets): the test candidates restricted to items whose number of training
clicks is at most the ``--rare-quantile`` (default 0.5) quantile over items, i.e. the less
popular half of the catalogue; each user's rare test items are ranked among themselves.

``all/rare_share@K``: the share of rare items in each user's top K of *all* test candidates (does a
method move rare items up against popular ones?); ``all/rare_share_random`` is its value for a
random order.

``dcg@K`` is :mod:`recsampling.metrics`' ``sum_{r<=K} h_r / log2(r+1)``; ``dcg_norm@K`` divides it by
the user's number of relevant test items, which is the scale of Saito et al.'s code and tables.

Hyper-parameters: by default one fixed setting for every method (:data:`recsampling.bench.mnar.TRAINING` and the flags).
``--tune N`` instead gives every method the same Optuna budget (N TPE trials, the same seed and the
same validation split: ``--valid-fraction`` of each user's *biased training* clicks, scored by
``--tune-metric``, default ``snips_dcg@5``), then trains each method with its best values on all
training clicks over the seeds; the randomized test set is never used for tuning.
``--propensity-norm`` picks the popularity propensities of Rel-MF / UBPR: ``max`` (``(n_i / max
n)^eta``, the WSDM paper), ``users`` (``(n_i / n_users)^eta``, the authors' Coat preprocessing) or
``flat`` (one value for all items at the ``users`` level: a control).

The authors' protocol (``--protocol authors``, issue 18; Coat and Yahoo! R3)
---------------------------------------------------------------------------
Saito's code for the ICTIR'20 paper (usaito/unbiased-pairwise-rec: ``src/preprocess/preprocessor.py``,
``src/models/recommenders.py``, ``src/trainer.py``, ``src/evaluate/{evaluator,metrics}.py``,
``conf/{config,hyper_params}.yaml``) as Dassen, Chintam & Feenstra's replication ran it (Maximeswd/RecSys,
whose ``paper_results/coat/original/ranking_all.csv`` is the table compared against), rebuilt on our torch
Trainer (Adam) and MF (no biases, Xavier-uniform start):

- data (:class:`recsampling.bench.saito.AuthorsData`): ratings >= 4 are the training positives, every other pair is unlabeled;
  item propensities ``(n_i / n_users)^0.5`` on Coat, ``(n_i / max n)^0.5`` on Yahoo! R3; 10% of all
  pairs held out; 10 pre-sampled items ``j`` per click (BPR: unlabeled ones; UBPR: any, clicked or not);
- training: 1000 steps of 256 rows drawn with replacement, Adam lr 0.001, L2 on the whole tables;
  BPR and UBPR on the fixed pairs, WMF, naive and Rel-MF on batches of half clicks, half unlabeled
  pairs with the squared loss; their tuned ``dim``, ``lam``, ``clip``, ``beta``, ``weight``
  (:data:`recsampling.samplers.saito.AUTHORS_HYPER_PARAMS`); ``--tune N`` gives every method N trials instead;
- test (:func:`recsampling.bench.saito.authors_metrics`): every rated randomized pair is a candidate, only ratings of 5 are
  relevant (their array is integer: the graded relevance is truncated), DCG with ranks 1 and 2 both
  weighted 1, divided by the user's relevant items, averaged over *all* test users (a user without a
  relevant item counts 0). Beside it, the same models under :data:`~recsampling.bench.saito.METRIC_VARIANTS` (one change at a
  time, then ours), a random order's expectation and the popularity order (the replication's ``ip``).

Flags for the ablations: ``--authors-positives``, ``--authors-propensity``, ``--authors-params`` (the
replication's own tuned values), ``--authors-redraw`` (a new split and new pairs for each run: their runs
share one draw), ``--factors``, ``--lam``, ``--max-iters``, ``--beta``, ``--clip``. The JSON's ``runs`` and
``paired_vs_bpr`` compare each method with BPR run by run. The ``ours`` protocol also reports every model
under the authors' metrics (``authors/...``).

Usage::

    python benchmarks/mnar.py --dataset coat --data-dir ../shared/data
    python benchmarks/mnar.py --protocol authors --dataset coat --data-dir ../shared/data --json
    python benchmarks/mnar.py --dataset synthetic --json     # last stdout line: one JSON object
    python benchmarks/mnar.py --dataset coat --quick         # a tiny run (seconds)
    python benchmarks/mnar.py --dataset coat --tune 100      # same tuning budget per method
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from recsampling._utils import positive_int
from recsampling.bench.contenders import Ours
from recsampling.bench.flags import add_flags, emit, result_path, write_results
from recsampling.bench.mnar import TRAINING, item_propensities, load_randomized_task, randomized_figures, rare_candidates
from recsampling.bench.report import mean_se_by, method_table
from recsampling.bench.saito import (AUTHORS_DATA_SEED, METRIC_VARIANTS, AuthorsData, AuthorsEvaluation, fit_authors,
                                     paired_diffs, tune_authors)
from recsampling.propensity import DEFAULT_CLIP
from recsampling.samplers.saito import (AUTHORS_HYPER_PARAMS, AUTHORS_METHODS, AUTHORS_TRAINING,
                                        REPLICATION_HYPER_PARAMS, authors_params)

KS = (3, 5, 8)
BASE_METRICS = ("dcg", "recall", "map")

#: method -> (sampler name, sampler parameters); filled with the command-line options in main
METHODS = ("naive", "bpr", "relmf", "relmf_true_propensity", "ubpr")
#: on request only (``--methods``): the naive loss with a tunable weight of the unclicked pairs
#: (``unobserved_weight``, WMF's confidence idea), the control for Rel-MF's click weight level
EXTRA_METHODS = ("naive_weighted",)


def load_mnar_task(dataset: str, data_dir: str, seed: int, quick: bool):
    """:func:`~recsampling.bench.mnar.load_randomized_task`, a one-line error when ``dataset`` cannot be loaded."""
    try:
        return load_randomized_task(dataset, data_dir, seed, quick, ks=KS)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"benchmarks/mnar.py: cannot load {dataset!r} from {data_dir!r}: {e}") from None


def sampler_for(method: str, args, train=None, overrides: dict | None = None) -> tuple[str, dict]:
    """Sampler name and parameters of ``method``; ``overrides`` (tuned values) win over the flags."""
    o = dict(overrides or {})
    eta = o.get("eta", args.eta)
    prop = "popularity" if train is None else item_propensities(train, eta, args.propensity_norm)
    common = dict(clip=args.clip, propensities=prop, eta=eta)
    if method in ("naive", "naive_weighted"):
        name, params = "pointwise", dict(n_negatives=args.n_negatives, delta=args.delta,
                                         unobserved_weight=args.unobserved_weight)
    elif method == "bpr":
        name, params = "bpr", dict(n_negatives=1)
    elif method == "relmf":
        name, params = "relmf", dict(n_negatives=args.n_negatives, delta=args.delta,
                                     unobserved_weight=args.unobserved_weight, **common)
    elif method == "relmf_true_propensity":
        name, params = "relmf", dict(n_negatives=args.n_negatives, delta=args.delta,
                                     unobserved_weight=args.unobserved_weight, clip=args.clip, propensities="data")
    elif method == "ubpr":
        name, params = "ubpr", dict(n_negatives=args.ubpr_negatives, beta=args.beta, **common)
    else:
        raise ValueError(f"unknown method {method!r}")
    for k in ("n_negatives", "clip", "beta", "unobserved_weight"):
        if k in o and k in params:
            params[k] = o[k]
    if "eta" in o and "eta" in params:
        params["eta"] = o["eta"]
    return name, params


def fit_model(train, method: str, seed: int, args, hp: dict | None = None):
    """Train ``method`` on ``train``; ``hp`` (tuned ``lr``, ``l2``, ``factors`` and sampler knobs)
    overrides the command-line values."""
    hp = dict(hp or {})
    name, params = sampler_for(method, args, train, hp)
    fit = Ours(args.model, name).fit(train, dict(factors=int(hp.get("factors", args.factors)), sampler_params=params,
                                                 epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                                                 lr=hp.get("lr", args.lr), l2=hp.get("l2", args.l2), backend="torch"),
                                     seed, n_threads=args.threads, device=args.device)
    return fit.model


def run_one(task, rare_items: np.ndarray, method: str, seed: int, args, hp: dict | None = None) -> dict:
    """Fit ``method`` and score it on all test candidates and on the rare ones (``rare_items``, -1 padded)."""
    t0 = time.perf_counter()
    model = fit_model(task.train, method, seed, args, hp)
    out = {"fit_s": time.perf_counter() - t0}
    out.update(randomized_figures(model, task, rare_items, ks=KS, metrics=BASE_METRICS, delta=args.delta,
                                  device=args.device))
    return out


def tune_method(train, method: str, args, seed: int = 0) -> dict:
    """Optuna search for ``method`` on a validation split of the *biased* training clicks.

    The split moves ``--valid-fraction`` of each user's training clicks to a validation set
    (:func:`recsampling.data.splits.validation_split`, seeded); a trial trains on the rest with a
    configuration drawn by :func:`recsampling.tuning.search_space` (lr, l2, factors, negatives,
    and Rel-MF / UBPR's clip ``M`` and ``eta``; plus UBPR's ``beta`` here) and is scored by
    ``--tune-metric`` on the validation clicks, ranked against all items the user did not click
    in the fit part. ``snips_dcg@K`` weights each validation click by ``1 / theta_i`` with
    ``theta_i = (n_i / max n)^0.5`` from all training clicks, self-normalized per user (the
    authors' "unbiased evaluator" idea, Saito et al.'s code; the same propensities for every
    method, whatever ``eta`` a trial uses); ``ndcg@K`` is the plain, popularity-biased metric.
    Every method gets the same number of trials, the same TPE seed and the same split; the
    randomized test set is never seen.
    """
    import optuna

    from recsampling.data.splits import validation_split
    from recsampling.evaluation import evaluate
    from recsampling.propensity import popularity_propensity
    from recsampling.tuning import search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    split = validation_split(train, args.valid_fraction, random_state=seed)
    fit_train, valid = split.train, split.eval_test
    metric = args.tune_metric
    base, _, k = metric.partition("@")
    eval_prop = popularity_propensity(train, 0.5)  # > 0 for every clicked item
    sampler_name = sampler_for(method, args)[0]

    def objective(trial) -> float:
        space = search_space(trial, args.model, sampler_name)
        hp = {"lr": space["lr"], "l2": space["l2"], **space["model_params"], **space["sampler_params"]}
        if method == "relmf_true_propensity":
            hp.pop("eta", None)  # drawn by the shared space, unused with the true propensities
        if method == "ubpr":
            hp["beta"] = trial.suggest_float("beta", 1e-4, 1.0, log=True)
        if method == "naive_weighted":
            hp["unobserved_weight"] = trial.suggest_float("unobserved_weight", 1e-3, 10.0, log=True)
        model = fit_model(fit_train, method, seed, args, hp)
        res = evaluate(model, valid, train=fit_train, ks=(int(k),), metrics=[base],
                       propensities=eval_prop[valid.matrix.indices] if base.startswith(("ips_", "snips_")) else None,
                       device=args.device)
        value = float(res[metric])
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"non-finite {metric}")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=args.tune, catch=(ValueError, RuntimeError))
    best = dict(study.best_params)
    if method == "relmf_true_propensity":
        best.pop("eta", None)
    return {"best_params": best, "best_value": float(study.best_value), "metric": metric,
            "n_trials": len(study.trials), "valid_clicks": int(valid.nnz), "fit_clicks": int(fit_train.nnz),
            "wall_s": time.perf_counter() - t0}


#: Dassen, Chintam & Feenstra's replication with the authors' code (Maximeswd/RecSys,
#: ``paper_results/coat/original/ranking_all.csv``, mean of 10 runs), and the s.e. of DCG@5 over those runs
#: computed from their per-run ``logs/coat/original/<method>/results/aoa_all.csv``.
REPLICATION_COAT = {
    "wmf": {"dcg@3": 0.1068805, "dcg@5": 0.1319969, "dcg@8": 0.1540414, "recall@3": 0.115882, "recall@5": 0.1695573,
            "recall@8": 0.230657, "map@3": 0.0924302, "map@5": 0.1092844, "map@8": 0.1233268, "dcg@5_se": 0.0029},
    "expomf": {"dcg@3": 0.0865942, "dcg@5": 0.106924, "dcg@8": 0.1269105, "recall@3": 0.0939856, "recall@5": 0.1377351,
               "recall@8": 0.1932206, "map@3": 0.074343, "map@5": 0.0876369, "map@8": 0.1005059},
    "relmf": {"dcg@3": 0.11021, "dcg@5": 0.134262, "dcg@8": 0.154623, "recall@3": 0.1207213, "recall@5": 0.1723246,
              "recall@8": 0.2285654, "map@3": 0.0934413, "map@5": 0.1101561, "map@8": 0.123643, "dcg@5_se": 0.0022},
    "bpr": {"dcg@3": 0.1067488, "dcg@5": 0.128614, "dcg@8": 0.1498999, "recall@3": 0.1185171, "recall@5": 0.1653725,
            "recall@8": 0.2244584, "map@3": 0.0897395, "map@5": 0.1041108, "map@8": 0.117158, "dcg@5_se": 0.0024},
    "ubpr": {"dcg@3": 0.11121, "dcg@5": 0.132963, "dcg@8": 0.1527447, "recall@3": 0.1209261, "recall@5": 0.167691,
             "recall@8": 0.2229563, "map@3": 0.0959539, "map@5": 0.1108479, "map@8": 0.1237603, "dcg@5_se": 0.0015},
    "popularity": {"dcg@3": 0.0854458, "dcg@5": 0.1109223, "dcg@8": 0.1343302, "recall@3": 0.0969048,
                   "recall@5": 0.152645, "recall@8": 0.2177915, "map@3": 0.0694349, "map@5": 0.0853155,
                   "map@8": 0.1028948},
}
#: the figures kept per run (``runs``) and compared run by run with BPR (``paired_vs_bpr``)
PAIRED_KEYS = ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5", "ours/dcg@5")


def _params(method: str, args) -> dict:
    """:func:`~recsampling.samplers.saito.authors_params` of ``method`` with the flags' overrides."""
    return authors_params(args.dataset, method, args.authors_params, factors=args.factors, lam=args.lam,
                          beta=args.beta, clip=args.clip)


def run_authors(args, methods: list[str]) -> dict:
    """The authors' protocol end to end: preprocess once (``--authors-redraw``: once per run), optionally
    tune, train each method over the seeds, evaluate with their metrics and the variants; returns the
    result dict."""
    t_start = time.perf_counter()

    def prepare(seed: int) -> AuthorsData:
        try:
            return AuthorsData(args.dataset, args.data_dir, args.authors_positives, args.authors_propensity, seed=seed)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"benchmarks/mnar.py: cannot load {args.dataset!r} from {args.data_dir!r}: {e}") from None

    fit = dict(steps=args.max_iters, batch_size=args.batch_size, lr=args.lr, device=args.device, n_threads=args.threads)

    data = prepare(AUTHORS_DATA_SEED)
    ev = AuthorsEvaluation(data.ds.test)
    tuning = {}
    for m in methods if args.tune else ():
        tuning[m] = tune_authors(data, m, _params(m, args), args.tune, args.tune_seed, **fit)
        print(f"# tuned {m:6s} unbiased validation dcg@5={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
              f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        # their runs share one split and one draw of the pairs (fixed .npy files); redrawn, the runs'
        # spread also holds that draw's share of the variance
        run_data = prepare(AUTHORS_DATA_SEED + seed) if args.authors_redraw and seed else data
        for m in methods:
            t0 = time.perf_counter()
            model = fit_authors(run_data, m, seed, {**_params(m, args), **tuning.get(m, {}).get("best_params", {})}, **fit)
            fit_s = time.perf_counter() - t0
            per_seed[m].append({**ev(model), "fit_s": fit_s})
            print(f"# seed {seed} {m:6s} dcg@5={per_seed[m][-1]['dcg@5']:.4f} ({fit_s:.1f}s)", file=sys.stderr,
                  flush=True)
    summary = mean_se_by(per_seed)
    ratios = {}
    if "bpr" in summary:
        for m in methods:
            for key in ["dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5"] + [f"{v}/dcg@5" for v in METRIC_VARIANTS]:
                ratios[f"{m}/{key}"] = summary[m][key] / summary["bpr"][key]
    shown = {"wmf": ("weight",), "relmf": ("clip",), "ubpr": ("beta", "ubpr_clip")}
    params = {m: {k: v for k, v in {**_params(m, args), **tuning.get(m, {}).get("best_params", {})}.items()
                  if k in ("dim", "lam") + shown.get(m, ())} for m in methods}
    replication = REPLICATION_COAT if args.dataset == "coat" else {}
    return {"benchmark": "mnar", "protocol": "authors", "data": data.info(), "methods": summary,
            "ratios_vs_bpr": ratios,
            "baselines": {"random": ev.random_order(), "popularity": ev.item_count_order(data.item_counts)},
            "replication": replication,
            "replication_ratios_vs_bpr": {f"{m}/{k}": d[k] / replication["bpr"][k] for m, d in replication.items()
                                          for k in ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5")},
            "params": params, "tuning": tuning, "metric_variants": METRIC_VARIANTS,
            "runs": {m: {k: [r[k] for r in per_seed[m]] for k in PAIRED_KEYS} for m in methods},
            "paired_vs_bpr": paired_diffs(per_seed, "bpr", PAIRED_KEYS), "wall_s": time.perf_counter() - t_start}


def _pairs(d: dict, spec: str) -> str:
    """``k=v, ...`` with the floats formatted by ``spec``."""
    return ", ".join(f"{k}={v:{spec}}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def authors_markdown(result: dict, args) -> str:
    """Tables of a :func:`run_authors` result: ours under their protocol, the replication, the variants."""
    summary, base = result["methods"], result["baselines"]
    cols = [f"{m}@{k}" for m in BASE_METRICS for k in KS]
    info = result["data"]
    md = [f"### {args.dataset}, the authors' protocol (mean ± s.e. over {args.seeds} runs; "
          f"{info['test_users_with_relevant']} of {info['test_users']} test users have a relevant test item)", "",
          method_table(summary, group="", metrics=cols), "",
          "| baseline | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    md.append("| random order (expected) | " + " | ".join(f"{base['random'][c]:.4f}" for c in cols) + " |")
    pop = base["popularity"]
    md.append("| popularity (10 tie-breaks) | " + " | ".join(f"{pop[c]:.4f} ± {pop[c + '_se']:.4f}" for c in cols)
              + " |")
    md.append("")
    rows = ["dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5"]
    md += ["Ratios to BPR of the same run, and the difference to BPR run by run (mean ± s.e.):", "",
           "| method | " + " | ".join(rows) + " | dcg@5 − BPR | ours dcg@5 − BPR |",
           "|---|" + "---|" * (len(rows) + 2)]
    for m in summary:
        paired = [result["paired_vs_bpr"].get(f"{m}/{k}") for k in ("dcg@5", "ours/dcg@5")]
        md.append(f"| {m} | " + " | ".join(f"{result['ratios_vs_bpr'].get(f'{m}/{r}', float('nan')):.3f}" for r in rows)
                  + "".join(f" | {d['diff']:+.4f} ± {d['se']:.4f}" if d else " | " for d in paired) + " |")
    md.append("")
    if result["replication"]:
        rep = result["replication"]
        md += ["The replication (Maximeswd/RecSys, `paper_results/coat/original/ranking_all.csv`, 10 runs):", "",
               "| method | " + " | ".join(cols) + " | dcg@5 / BPR |", "|---|" + "---|" * (len(cols) + 1)]
        for m, d in rep.items():
            md.append(f"| {m} | " + " | ".join(f"{d[c]:.4f}" for c in cols)
                      + f" | {d['dcg@5'] / rep['bpr']['dcg@5']:.3f} |")
        md.append("")
    md += ["DCG@5 under the other metric definitions, same models (ratio to BPR in brackets):", "",
           "| method | authors | " + " | ".join(METRIC_VARIANTS) + " |", "|---|---|" + "---|" * len(METRIC_VARIANTS)]
    for m, d in summary.items():
        cells = []
        for key in ["dcg@5"] + [f"{v}/dcg@5" for v in METRIC_VARIANTS]:
            ratio = result["ratios_vs_bpr"].get(f"{m}/{key}")
            cells.append(f"{d[key]:.4f} ± {d.get(key + '_se', float('nan')):.4f}"
                         + (f" ({ratio:.3f})" if ratio else ""))
        md.append(f"| {m} | " + " | ".join(cells) + " |")
    md += [""] + [f"- `{k}`: {v}" for k, v in METRIC_VARIANTS.items()] + [""]
    md += ["Settings: " + "; ".join(f"{m}: {_pairs(p, '.3g')}" for m, p in result["params"].items()), "",
           f"Data: {_pairs(info, '.4g')}", ""]
    if result["tuning"]:
        md += [f"Tuned ({args.tune} Optuna trials per method, the authors' unbiased DCG@5 on the held-out 10% "
               "of the pairs):", "", "| method | validation | best values |", "|---|---|---|"]
        for m, t in result["tuning"].items():
            md.append(f"| {m} | {t['best_value']:.4f} | {_pairs(t['best_params'], '.3g')} |")
        md.append("")
    return "\n".join(md)


def _beta_flag(text: str):
    """``--beta``: a number >= 0, or ``off`` for the unclamped estimator."""
    if text.strip().lower() == "off":
        return "off"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'off', got {text!r}")
    return value


def main_authors(args) -> int:
    """``--protocol authors``: resolve its defaults, run, print and write the tables."""
    import torch

    if args.dataset not in AUTHORS_HYPER_PARAMS:
        raise SystemExit(f"--protocol authors runs on {' and '.join(AUTHORS_HYPER_PARAMS)} (the authors' data sets), "
                         f"not {args.dataset!r}")
    methods = args.methods.split(",") if args.methods else list(AUTHORS_METHODS)
    for m in methods:
        if m not in AUTHORS_METHODS:
            raise SystemExit(f"unknown method {m!r} for --protocol authors; choose among {', '.join(AUTHORS_METHODS)}")
    if args.tune < 0:
        raise SystemExit("--tune must be >= 0")
    args.seeds = args.seeds or 10
    args.lr = AUTHORS_TRAINING["eta"] if args.lr is None else args.lr
    args.batch_size = AUTHORS_TRAINING["batch_size"] if args.batch_size is None else args.batch_size
    args.max_iters = args.max_iters or AUTHORS_TRAINING["max_iters"]
    if args.batch_size < 2:
        raise SystemExit("--batch-size must be >= 2 (the pointwise batches are half positives, half unlabeled)")
    if args.quick:
        args.seeds = min(args.seeds, 2)
        args.max_iters = min(args.max_iters, 100)
    if args.beta == "off":
        args.beta = None
    elif args.beta is None:
        args.beta = "default"
    result = run_authors(args, methods)
    config = {k: getattr(args, k) for k in ("dataset", "protocol", "seeds", "max_iters", "batch_size", "lr", "factors",
                                            "lam", "clip", "beta", "authors_positives", "authors_propensity",
                                            "authors_params", "authors_redraw", "tune", "tune_seed", "quick")}
    result.update({"config": config, "threads": args.threads, "python": platform.python_version(),
                   "torch": torch.__version__})
    _output(result, authors_markdown(result, args), f"mnar_{args.dataset}_authors", args)
    return 0


def _output(result: dict, text: str, stem: str, args) -> None:
    """Write ``<stem>[_quick][_<tag>].json/.md`` (unless ``--no-write``) and print the text (and the JSON)."""
    if not args.no_write:
        write_results(result_path(__file__, stem, args.quick and "quick", tag=args.tag), result, text)
    emit(result, text, args.json, footer=f"wall time {result['wall_s']:.1f}s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("coat", "synthetic", "yahoo-r3"), default="coat")
    p.add_argument("--protocol", choices=("ours", "authors"), default="ours",
                   help="ours (default): this package's samplers, metrics and tuning; authors: the preprocessing, "
                        "training loops, tuned settings and metrics of usaito/unbiased-pairwise-rec (Coat, Yahoo! R3)")
    add_flags(p, "data_dir", "seeds", "threads", "quick", "json", "no_write", "tag", defaults={"seeds": None},
              helps={"data_dir": "folder holding coat/ (and yahoo-r3/); default ../shared/data",
                     "seeds": "seeds (model init, sampling; a new world on synthetic); default 5, 10 with --protocol "
                              "authors",
                     "threads": "torch CPU threads (1 is fastest for these small models on a shared machine)",
                     "quick": "a tiny run: 2 seeds, few epochs, a small world",
                     "tag": "suffix of the result files (mnar_<dataset>[_<tag>].json/.md)"})
    p.add_argument("--methods", default=None, help="comma-separated subset of " + ",".join(METHODS + EXTRA_METHODS)
                   + " (default: " + ",".join(METHODS) + "); with --protocol authors of " + ",".join(AUTHORS_METHODS))
    p.add_argument("--model", default="mf", choices=("mf", "twotower"))
    p.add_argument("--factors", type=int, default=None,
                   help="embedding size (authors: overrides every method's tuned dim)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default per data set; 256 with --protocol authors")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate; 0.001 with --protocol authors")
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--clip", type=float, default=None,
                   help="propensity clipping M (Rel-MF, UBPR); default 0.1; with --protocol authors Rel-MF's tuned "
                        "value and no clipping of UBPR's propensities (given: both use it)")
    p.add_argument("--eta", type=float, default=0.5, help="popularity propensity exponent")
    p.add_argument("--delta", default="squared", choices=("squared", "log"), help="Rel-MF local loss family")
    p.add_argument("--unobserved-weight", default="unbiased",
                   help="Rel-MF / naive weight of a sampled unclicked pair: unbiased, balanced or a number")
    p.add_argument("--n-negatives", type=int, default=4, help="unclicked draws per click (naive, Rel-MF)")
    p.add_argument("--ubpr-negatives", type=int, default=4, help="items j per click (UBPR)")
    p.add_argument("--beta", type=_beta_flag, default=None,
                   help="UBPR's non-negative clamp at -beta, or 'off' (the unclamped estimator); default 0, "
                        "with --protocol authors their tuned value")
    p.add_argument("--rare-quantile", type=float, default=0.5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--propensity-norm", default="max", choices=("max", "users", "flat"),
                   help="popularity propensities (Rel-MF, UBPR): (n_i / max n)^eta (the WSDM paper), "
                        "(n_i / n_users)^eta (the authors' Coat preprocessing), or 'flat': one value "
                        "(mean n_i / n_users)^eta for all items (a control without popularity differences)")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="tune every method with N Optuna trials on a validation split of the biased training "
                        "clicks (same budget, seed and split for all), then train each with its best values on "
                        "all training clicks over the seeds; 0 (default): the fixed values of the flags")
    p.add_argument("--tune-metric", default="snips_dcg@5",
                   help="validation metric of --tune: snips_dcg@K (clicks weighted 1/theta, self-normalized), "
                        "ndcg@K, dcg@K, recall@K, ... (full ranking of the held-out clicks)")
    p.add_argument("--valid-fraction", type=float, default=0.2, help="share of each user's clicks held out by --tune")
    p.add_argument("--tune-seed", type=int, default=0,
                   help="seed of --tune's validation split, TPE sampler and trial fits (and of the synthetic world tuned on)")
    g = p.add_argument_group("--protocol authors")
    g.add_argument("--max-iters", type=positive_int, default=None,
                   help=f"training steps (batches) per fit; default {AUTHORS_TRAINING['max_iters']}")
    g.add_argument("--lam", type=float, default=None, help="L2 coefficient of every method (default: their tuned lam)")
    g.add_argument("--authors-positives", default="threshold", choices=("threshold", "bernoulli"),
                   help="training positives: ratings >= 4 (the replication's preprocessing, default) or Bernoulli "
                        "draws with P = 0.1 + 0.9 (2^(r-1) - 1) / 15 (usaito's original)")
    g.add_argument("--authors-propensity", default="auto", choices=("auto", "users", "max", "ones"),
                   help="item propensities: (n_i / n_users)^0.5 (users), (n_i / max n)^0.5 (max), 1 for every item "
                        "(ones: what usaito's committed Coat code computes); auto: users on Coat, max on Yahoo! R3")
    g.add_argument("--authors-redraw", action="store_true",
                   help="draw the validation split, the Bernoulli labels and the pairs anew for each run (seed "
                        f"{AUTHORS_DATA_SEED} + run); default: one draw for all runs, as their saved files")
    g.add_argument("--authors-params", default="saito", choices=("saito",) + tuple(REPLICATION_HYPER_PARAMS),
                   help="the tuned values trained: the authors' conf/hyper_params.yaml (saito, default) or the "
                        "replication's own (conf/original_hyper_params.yaml; -latest: all_results/conf/latest/)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.protocol == "authors":
        return main_authors(args)
    args.seeds = args.seeds or 5
    args.clip = DEFAULT_CLIP if args.clip is None else args.clip
    args.beta = {None: 0.0, "off": None}.get(args.beta, args.beta)
    for k, v in TRAINING[args.dataset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.unobserved_weight not in ("unbiased", "balanced"):
        args.unobserved_weight = float(args.unobserved_weight)
    if args.quick:
        args.seeds = min(args.seeds, 2)
        args.epochs = min(args.epochs, 5)
    methods = [m for m in (args.methods.split(",") if args.methods else METHODS)]
    for m in methods:
        if m not in METHODS + EXTRA_METHODS:
            raise SystemExit(f"unknown method {m!r}; choose among {', '.join(METHODS + EXTRA_METHODS)}")
    if args.dataset != "synthetic":
        methods = [m for m in methods if m != "relmf_true_propensity"]

    if args.tune < 0:
        raise SystemExit("--tune must be >= 0")
    if not 0 < args.valid_fraction < 1:
        raise SystemExit("--valid-fraction must be in (0, 1)")
    if args.tune and not args.tag:
        args.tag = "tuned"

    t_start = time.perf_counter()
    tuning: dict[str, dict] = {}
    if args.tune:
        # one study per method on the --tune-seed data (on synthetic: that seed's world), then the
        # best values are used for every seed
        task0 = load_mnar_task(args.dataset, args.data_dir, args.tune_seed, args.quick)
        for m in methods:
            tuning[m] = tune_method(task0.train, m, args, seed=args.tune_seed)
            print(f"# tuned {m:22s} {args.tune_metric}={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
                  f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    info = {}
    for seed in range(args.seeds):
        task = load_mnar_task(args.dataset, args.data_dir, seed, args.quick)
        rare_items, thr = rare_candidates(task.train, task.test_items, args.rare_quantile)
        info = {"n_users": task.train.n_users, "n_items": task.train.n_items, "train_clicks": task.train.nnz,
                "test_positives": task.test.nnz, "rare_item_max_clicks": thr,
                "rare_items": int((task.train.item_counts() <= thr).sum())}
        for m in methods:
            per_seed[m].append(run_one(task, rare_items, m, seed, args, tuning.get(m, {}).get("best_params")))
            print(f"# seed {seed} {m:22s} dcg@5={per_seed[m][-1]['all/dcg@5']:.4f} "
                  f"recall@5={per_seed[m][-1]['all/recall@5']:.4f} ({per_seed[m][-1]['fit_s']:.1f}s)",
                  file=sys.stderr, flush=True)
    summary = mean_se_by(per_seed)

    ratios = {}
    for m in methods:
        if m != "naive" and "naive" in summary:
            for key in ("all/dcg@5", "all/recall@5", "all/map@5", "rare/dcg@5", "rare/recall@5"):
                base = summary["naive"].get(key)
                if base:
                    ratios[f"{m}/{key}"] = summary[m][key] / base

    config = {k: getattr(args, k) for k in ("dataset", "seeds", "model", "factors", "epochs", "batch_size", "lr", "l2",
                                            "clip", "eta", "delta", "unobserved_weight", "n_negatives",
                                            "ubpr_negatives", "beta", "rare_quantile", "quick", "propensity_norm",
                                            "tune", "tune_metric", "valid_fraction", "tune_seed")}
    result = {"benchmark": "mnar", "config": config, "data": info, "methods": summary, "ratios_vs_naive": ratios,
              "tuning": tuning,
              "wall_s": time.perf_counter() - t_start, "threads": args.threads, "python": platform.python_version(),
              "torch": torch.__version__}

    cols = [f"{m}@{k}" for m in BASE_METRICS for k in KS]
    md = [f"### {args.dataset}: randomized test, each user's test items ranked (mean ± s.e. over {args.seeds} seeds)",
          "", method_table(summary, group="all", metrics=cols), "",
          f"Rare items (training clicks <= {info['rare_item_max_clicks']:g}; {info['rare_items']} of "
          f"{info['n_items']} items):", "", method_table(summary, group="rare", metrics=cols), ""]
    md += ["Share of rare items in each user's top K of all test items (random order: "
           f"{next(iter(summary.values()))['all/rare_share_random']:.3f}):", "",
           method_table(summary, group="all", metrics=[f"rare_share@{k}" for k in KS]), ""]
    md += ["DCG normalized by the user's relevant test items (Saito et al.'s scale):", "",
           method_table(summary, group="all", metrics=[f"dcg_norm@{k}" for k in KS]), ""]
    if "authors/dcg@5" in next(iter(summary.values())):
        md += ["The same models under the authors' metrics (ratings of 5 relevant, ranks 1 and 2 both weighted 1, "
               "normalised by the user's relevant items, every test user in the mean; `--protocol authors`):", "",
               method_table(summary, group="authors", metrics=cols), ""]
    if args.dataset == "synthetic":
        tcols = [f"{m}@{k}" for m in ("true_dcg", "true_ndcg", "true_recall") for k in KS]
        md += ["True relevance (all test items):", "", method_table(summary, group="all", metrics=tcols), "",
               "True relevance (rare test items):", "", method_table(summary, group="rare", metrics=tcols), "",
               f"Ideal loss (delta={args.delta}) over all user-item pairs from the true relevance, the objective "
               "Rel-MF's estimator targets (lower is better; pointwise methods only are calibrated):", "",
               "| method | ideal loss |", "|---|---|"]
        for m, d in summary.items():
            md.append(f"| {m} | {d['ideal_loss']:.5f}" + (f" ± {d['ideal_loss_se']:.5f}" if "ideal_loss_se" in d else "")
                      + " |")
        md.append("")
    if tuning:
        md += [f"Tuned ({args.tune} Optuna trials per method, {args.tune_metric} on {args.valid_fraction:g} of each "
               "user's biased training clicks; these values then trained on all training clicks):", "",
               "| method | validation | best values |", "|---|---|---|"]
        for m, t in tuning.items():
            vals = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["best_params"].items())
            md.append(f"| {m} | {t['best_value']:.4f} | {vals} |")
        md.append("")
    _output(result, "\n".join(md), f"mnar_{args.dataset}", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
