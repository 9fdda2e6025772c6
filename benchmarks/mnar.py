"""Unbiased learning from MNAR clicks: naive pointwise vs BPR vs Rel-MF vs UBPR, same run.

Issue 6: train on the biased (missing-not-at-random) clicks, evaluate on a randomized
(missing-at-random) test set with the protocol of Saito et al. (WSDM 2020) and Saito (ICTIR
2020): rank only each user's randomized test items; a rating >= 4 is relevant; DCG@K, Recall@K,
MAP@K for K = 3, 5, 8; mean and standard error over seeds.

Methods (every one a registered sampler on the same model, Trainer and hyper-parameters; only the
loss and its sampling differ): ``naive`` (the pointwise loss, Rel-MF's code with ``theta = 1``),
``bpr`` (uniform BPR), ``relmf`` (Rel-MF, popularity propensities clipped at ``M``),
``relmf_true_propensity`` (synthetic only: the world's true exposure of each click), ``ubpr`` (UBPR,
clipped, non-negative at ``beta``); ``naive_weighted`` on request (the naive loss with a tunable
weight of the unclicked pairs, the control for Rel-MF's click weight level).

Data sets: ``coat`` (290 users x 300 items, 16 randomized test items per user), ``yahoo-r3`` (where
its Webscope files are in ``--data-dir``), ``synthetic`` (a fresh world per seed; the truth is known,
so ``true_dcg@K`` / ``true_ndcg@K`` / ``true_recall@K`` and the ideal loss are reported too). The
rare items, ``rare_share@K``, ``dcg_norm@K`` and the propensity normalisations are described in
:mod:`recsampling.bench.mnar`; ``--tune N`` (:func:`recsampling.bench.mnar.tune_on_clicks`) gives every
method the same Optuna budget on a validation split of the biased training clicks, never the test.

``--protocol authors`` (issue 18; Coat and Yahoo! R3): the preprocessing, training loops, tuned
settings and metrics of Saito's code (usaito/unbiased-pairwise-rec) as Dassen, Chintam & Feenstra's
replication ran it, whose Coat table is reported beside ours with ratios to BPR; see
:mod:`recsampling.bench.saito` for each step and :mod:`recsampling.samplers.saito` for the loops and
values. Flags for the ablations: ``--authors-positives``, ``--authors-propensity``, ``--authors-params``,
``--authors-redraw``, ``--factors``, ``--lam``, ``--max-iters``, ``--beta``, ``--clip``.

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
from recsampling.bench.mnar import (TRAINING, item_propensities, load_randomized_task, randomized_figures,
                                    randomized_markdown, rare_candidates, tune_on_clicks)
from recsampling.bench.report import mean_se_by, ratios_to
from recsampling.bench.saito import AUTHORS_DATA_SEED, BASE_METRICS, KS, AuthorsData, authors_markdown, run_authors
from recsampling.propensity import DEFAULT_CLIP
from recsampling.samplers.saito import (AUTHORS_HYPER_PARAMS, AUTHORS_METHODS, AUTHORS_TRAINING,
                                        REPLICATION_HYPER_PARAMS, authors_params)
from recsampling.tuning import search_space

METHODS = ("naive", "bpr", "relmf", "relmf_true_propensity", "ubpr")
#: on request only (``--methods``): the naive loss with a tunable weight of the unclicked pairs
EXTRA_METHODS = ("naive_weighted",)
#: a method's knobs tuned beside its sampler's search space, and the drawn ones it does not use
EXTRA_SPACE = {"ubpr": lambda t: {"beta": t.suggest_float("beta", 1e-4, 1.0, log=True)},
               "naive_weighted": lambda t: {"unobserved_weight": t.suggest_float("unobserved_weight", 1e-3, 10.0,
                                                                                  log=True)}}
UNUSED = {"relmf_true_propensity": ("eta",)}  # the true propensities need no exponent
#: the figures given as ratios to the naive method
RATIO_KEYS = ("all/dcg@5", "all/recall@5", "all/map@5", "rare/dcg@5", "rare/recall@5")


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
    pointwise = dict(n_negatives=args.n_negatives, delta=args.delta, unobserved_weight=args.unobserved_weight)
    propensities = dict(clip=args.clip, propensities=prop, eta=eta)
    table = {"naive": ("pointwise", pointwise), "naive_weighted": ("pointwise", pointwise),
             "bpr": ("bpr", dict(n_negatives=1)), "relmf": ("relmf", {**pointwise, **propensities}),
             "relmf_true_propensity": ("relmf", dict(pointwise, clip=args.clip, propensities="data")),
             "ubpr": ("ubpr", dict(n_negatives=args.ubpr_negatives, beta=args.beta, **propensities))}
    if method not in table:
        raise ValueError(f"unknown method {method!r}")
    name, params = table[method]
    params = dict(params)
    params.update({k: o[k] for k in ("n_negatives", "clip", "beta", "unobserved_weight", "eta") if k in o and k in params})
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


def tune_method(train, method: str, args, seed: int = 0) -> dict:
    """:func:`~recsampling.bench.mnar.tune_on_clicks` for ``method``: its sampler's and the model's search
    space (:func:`recsampling.tuning.search_space`: lr, l2, factors, negatives, Rel-MF / UBPR's clip and
    eta) plus :data:`EXTRA_SPACE`, ``--tune`` trials scored by ``--tune-metric``."""
    sampler = sampler_for(method, args)[0]

    def space(trial) -> dict:
        sp = search_space(trial, args.model, sampler)
        return {"lr": sp["lr"], "l2": sp["l2"], **sp["model_params"], **sp["sampler_params"],
                **EXTRA_SPACE.get(method, lambda t: {})(trial)}

    return tune_on_clicks(train, lambda tr, hp: fit_model(tr, method, seed, args, hp), space, args.tune,
                          metric=args.tune_metric, valid_fraction=args.valid_fraction, seed=seed, device=args.device,
                          drop=UNUSED.get(method, ()))


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


def _output(result: dict, text: str, stem: str, args) -> None:
    """Write ``<stem>[_quick][_<tag>].json/.md`` (unless ``--no-write``) and print the text (and the JSON)."""
    if not args.no_write:
        write_results(result_path(__file__, stem, args.quick and "quick", tag=args.tag), result, text)
    emit(result, text, args.json, footer=f"wall time {result['wall_s']:.1f}s")


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
    args.beta = {"off": None, None: "default"}.get(args.beta, args.beta)

    def prepare(seed: int) -> AuthorsData:
        try:
            return AuthorsData(args.dataset, args.data_dir, args.authors_positives, args.authors_propensity, seed=seed)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"benchmarks/mnar.py: cannot load {args.dataset!r} from {args.data_dir!r}: {e}") from None

    def params_of(method: str) -> dict:
        return authors_params(args.dataset, method, args.authors_params, factors=args.factors, lam=args.lam,
                              beta=args.beta, clip=args.clip)

    result = run_authors(prepare, methods, params_of, seeds=args.seeds, tune=args.tune, tune_seed=args.tune_seed,
                         redraw=args.authors_redraw, steps=args.max_iters, batch_size=args.batch_size, lr=args.lr,
                         device=args.device, n_threads=args.threads)
    config = {k: getattr(args, k) for k in ("dataset", "protocol", "seeds", "max_iters", "batch_size", "lr", "factors",
                                            "lam", "clip", "beta", "authors_positives", "authors_propensity",
                                            "authors_params", "authors_redraw", "tune", "tune_seed", "quick")}
    result.update({"config": config, "threads": args.threads, "python": platform.python_version(),
                   "torch": torch.__version__})
    _output(result, authors_markdown(result, args.dataset, args.seeds, args.tune), f"mnar_{args.dataset}_authors", args)
    return 0


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
    methods = args.methods.split(",") if args.methods else list(METHODS)
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
    if args.tune:  # one study per method on the --tune-seed data (synthetic: its world), its best values for all seeds
        task0 = load_mnar_task(args.dataset, args.data_dir, args.tune_seed, args.quick)
        for m in methods:
            tuning[m] = tune_method(task0.train, m, args, seed=args.tune_seed)
            print(f"# tuned {m:22s} {args.tune_metric}={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
                  f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        task = load_mnar_task(args.dataset, args.data_dir, seed, args.quick)
        rare_items, thr = rare_candidates(task.train, task.test_items, args.rare_quantile)
        info = {"n_users": task.train.n_users, "n_items": task.train.n_items, "train_clicks": task.train.nnz,
                "test_positives": task.test.nnz, "rare_item_max_clicks": thr,
                "rare_items": int((task.train.item_counts() <= thr).sum())}
        for m in methods:
            t0 = time.perf_counter()
            model = fit_model(task.train, m, seed, args, tuning.get(m, {}).get("best_params"))
            run = {"fit_s": time.perf_counter() - t0}
            run.update(randomized_figures(model, task, rare_items, ks=KS, metrics=BASE_METRICS, delta=args.delta,
                                          device=args.device))
            per_seed[m].append(run)
            print(f"# seed {seed} {m:22s} dcg@5={run['all/dcg@5']:.4f} recall@5={run['all/recall@5']:.4f} "
                  f"({run['fit_s']:.1f}s)", file=sys.stderr, flush=True)
    summary = mean_se_by(per_seed)
    config = {k: getattr(args, k) for k in ("dataset", "seeds", "model", "factors", "epochs", "batch_size", "lr", "l2",
                                            "clip", "eta", "delta", "unobserved_weight", "n_negatives",
                                            "ubpr_negatives", "beta", "rare_quantile", "quick", "propensity_norm",
                                            "tune", "tune_metric", "valid_fraction", "tune_seed")}
    result = {"benchmark": "mnar", "config": config, "data": info, "methods": summary,
              "ratios_vs_naive": ratios_to(summary, "naive", RATIO_KEYS, with_baseline=False), "tuning": tuning,
              "wall_s": time.perf_counter() - t_start, "threads": args.threads, "python": platform.python_version(),
              "torch": torch.__version__}
    tune_text = (f"Tuned ({args.tune} Optuna trials per method, {args.tune_metric} on {args.valid_fraction:g} of each "
                 "user's biased training clicks; these values then trained on all training clicks):")
    text = randomized_markdown(summary, info, dataset=args.dataset, seeds=args.seeds, ks=KS, metrics=BASE_METRICS,
                               delta=args.delta, tuning=tuning, tune_text=tune_text)
    _output(result, text, f"mnar_{args.dataset}", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
