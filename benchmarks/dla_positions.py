"""DLA (Ai et al., SIGIR 2018): learned vs true propensities, and ranking quality, same run.

Issue 7. **Setting 1**: per ``eta`` in ``--etas`` and seed, a synthetic world's logged ranked lists
clicked with examination ``(1/k)^eta``; three relevance models, identical but for the click weights:

- ``clicks_naive``: unweighted softmax cross-entropy on the raw clicks (``fixed_propensity=1``);
- ``ips_true_propensity``: clicks weighted by the true ``1/theta_k`` relative to position 1;
- ``dla``: the propensities are learned jointly (one logit per position).

**Setting 2** (``--setting2``): no positions, on the MNAR benchmark's synthetic world and Coat:
``naive``, ``relmf``, ``softmax_naive``, ``dla``, ``dla_sigmoid``. Protocol, figures, ablations:
:mod:`recsampling.bench.dla`.

Usage::

    python benchmarks/dla_positions.py              # setting 1, readable tables, writes benchmarks/results/
    python benchmarks/dla_positions.py --json       # last stdout line: one JSON object (8-16 min, 1 thread)
    python benchmarks/dla_positions.py --setting2 --etas ""   # setting 2 only (about 10 minutes)
    python benchmarks/dla_positions.py --lists 100000 --pos-methods dla --tag lists100k   # an ablation
    python benchmarks/dla_positions.py --quick      # a tiny run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from recsampling._utils import positive_int
from recsampling.bench.contenders import Ours
from recsampling.bench.dla import examination, headline, log_array, position_figures, position_world, positions_text
from recsampling.bench.dla import rec_figures, rec_text, summarize_positions
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench import mnar
from recsampling.bench.report import mean_se_by

POS_METHODS = ("clicks_naive", "ips_true_propensity", "dla")
REC_METHODS = ("naive", "relmf", "softmax_naive", "dla", "dla_sigmoid")
KS = (3, 5, 8)

#: setting 1 world (per seed) and training; fixed a priori, the same for every method
POS_WORLD = dict(n_users=943, n_items=1682, target_interactions=60_000, feature_noise=0.0)
POS_QUICK_WORLD = dict(n_users=200, n_items=300, target_interactions=3_000, feature_noise=0.0)
#: setting 2: the MNAR benchmark's training defaults (its world: recsampling.bench.mnar's)
REC_TRAIN = {d: mnar.TRAINING[d] for d in ("synthetic", "coat")}


def _fit(kind: str, sampler: str, train, seed: int, train_params: dict, sampler_params: dict, hidden: tuple = (),
         item_bias: bool = False):
    """Fit ``kind`` (``mf`` or the feature-only ``twotower``) with ``sampler``, torch path; ``(model, sampler, s)``."""
    model_params = dict(hidden=hidden, use_ids=False, item_bias=item_bias) if kind == "twotower" else {}
    t0 = time.perf_counter()
    fit = Ours(kind, sampler).fit(train, dict(train_params, model_params=model_params, sampler_params=sampler_params,
                                              backend="torch"), seed, device="cpu")
    return fit.model, fit.sampler, time.perf_counter() - t0


def _world(args) -> dict:
    return dict(POS_QUICK_WORLD if args.quick else POS_WORLD,
                **({} if args.feature_noise is None else {"feature_noise": args.feature_noise}))


def run_positions(eta: float, seed: int, args) -> dict:
    """Setting 1, one seed: each of ``--pos-methods`` fitted on one world's logs."""
    world, logs = position_world(_world(args), eta, seed, args.lists, logging_ranker=args.logging_ranker,
                                 logging_labels=args.logging_labels, logging_bias=args.logging_bias)
    theta = examination(eta)
    out = {"true": (theta / theta[0]).tolist(), "n_clicks": int(log_array(logs, "clicks").sum())}
    for method in args.pos_methods:
        fixed = {"clicks_naive": np.ones_like(theta), "ips_true_propensity": theta, "dla": None}[method]
        model, sampler, fit_s = _fit(args.ranker, "dla", world.clicks, seed,
                                     dict(factors=args.factors, epochs=args.epochs, batch_size=args.batch_size,
                                          optimizer=args.optimizer, lr=args.lr, l2=args.l2),
                                     dict(logs=logs, fixed_propensity=fixed, propensity_lr=args.propensity_lr,
                                          max_weight=args.max_weight, relevance_link=args.relevance_link),
                                     args.hidden, args.item_bias)
        out[method] = {**position_figures(model, sampler, world, logs, eta, learned=fixed is None,
                                          relevance_link=args.relevance_link), "fit_s": fit_s}
    return out


def _rec_task(dataset: str, seed: int, args):
    """The MNAR benchmark's task of ``dataset`` (its randomized test items ranked), None when absent."""
    try:
        return mnar.load_randomized_task(dataset, args.data_dir, seed, args.quick, ks=KS)
    except (FileNotFoundError, ValueError) as e:
        print(f"[dla_positions] {dataset} not available ({e}); skipped", file=sys.stderr)
        return None


def _rec_sampler(method: str, args, n_items: int) -> tuple[str, dict]:
    """The sampler of a setting-2 method and its parameters."""
    if method == "naive":
        return "pointwise", dict(n_negatives=4)
    if method == "relmf":
        return "relmf", dict(n_negatives=4, propensities="popularity", eta=0.5, clip=0.1)
    if method == "softmax_naive":
        return "dla", dict(n_sampled=args.n_sampled, fixed_propensity=np.ones(n_items))
    return "dla", dict(n_sampled=args.n_sampled, propensity_lr=args.rec_propensity_lr,
                       relevance_link="sigmoid" if method == "dla_sigmoid" else "exp")


def run_rec(task, dataset: str, method: str, seed: int, args) -> dict:
    """Setting 2, one seed: ``method`` fitted on ``task``'s clicks, ranking its randomized test items."""
    cfg = dict(REC_TRAIN[dataset], optimizer="adam")
    if args.quick:
        cfg["epochs"] = 3
    name, params = _rec_sampler(method, args, task.train.n_items)
    model, sampler, fit_s = _fit(args.rec_ranker, name, task.train, seed, cfg, params)
    return {"fit_s": fit_s, **rec_figures(model, sampler, task, KS, spearman=method.startswith("dla"))}


def run_setting2(args, t_start: float) -> tuple[dict, list]:
    """Setting 2 on each of ``--datasets``: ``({dataset: mean_se_by of the methods' runs}, [data sets not found])``."""
    summary, not_done = {}, []
    for ds in [x for x in args.datasets.split(",") if x]:
        per = {m: [] for m in args.rec_methods}
        for seed in range(args.seeds):
            task = _rec_task(ds, seed, args)
            if task is None:
                break
            for m in args.rec_methods:
                per[m].append(run_rec(task, ds, m, seed, args))
        if not per[args.rec_methods[0]]:
            not_done.append(ds)
            continue
        summary[ds] = mean_se_by(per)
        print(f"[dla_positions] setting 2 {ds} done ({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)
    return summary, not_done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--etas", default="0.5,1,2", help="comma-separated position-bias exponents")
    add_flags(p, "seeds", "data_dir", "threads", "quick", "json", "no_write", "tag",
              helps={"seeds": "seeds (a new world per seed)", "threads": "torch CPU threads",
                     "quick": "a tiny run: small worlds, 2 seeds, few epochs"})
    p.add_argument("--lists", type=positive_int, default=None,
                   help="logged lists per world (default 300000; quick 8000)")
    p.add_argument("--ranker", default="twotower", choices=("twotower", "mf"), help="relevance model of setting 1")
    p.add_argument("--factors", type=int, default=16)
    p.add_argument("--item-bias", action="store_true",
                   help="give the two-tower ranker a per-item bias (an ID parameter: it can memorize weighted clicks)")
    p.add_argument("--hidden", default="", help="hidden widths of the two-tower feature MLPs (default: linear)")
    p.add_argument("--epochs", type=int, default=None, help="setting 1 epochs (default 16; quick 3)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--optimizer", default="adagrad", choices=("adam", "adagrad"),
                   help="setting 1 optimizer (ULTRA's DLA uses Adagrad)")
    p.add_argument("--lr", type=float, default=0.05, help="setting 1 learning rate of the relevance model")
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--propensity-lr", type=float, default=0.5,
                   help="setting 1 learning rate of DLA's propensity model (Adagrad)")
    p.add_argument("--rec-propensity-lr", type=float, default=0.05,
                   help="setting 2 learning rate of DLA's propensity model (Adam)")
    p.add_argument("--max-weight", type=float, default=None,
                   help="setting 1: clip of the ratio weights (None: the paper's, no clipping)")
    p.add_argument("--relevance-link", default="sigmoid", choices=("exp", "sigmoid"),
                   help="setting 1: how the ranker's score becomes a relevance probability (DLASampler.relevance_link)")
    p.add_argument("--logging-ranker", default="linear", choices=("linear", "relevance"),
                   help="setting 1: make_world's logging ranker (linear: a weak feature ranker fitted to "
                        "--logging-labels labels; relevance: the true logit(relevance))")
    p.add_argument("--logging-labels", type=int, default=2000,
                   help="setting 1: labelled pairs the linear logging ranker is fitted on")
    p.add_argument("--logging-bias", type=float, default=0.0,
                   help="setting 1 ablation: replace the logs by ones ranked by logit(relevance) plus this "
                        "strength times a per-item promotion (0: make_world's logs)")
    p.add_argument("--feature-noise", type=float, default=None,
                   help="setting 1: make_world's feature_noise (default 0: the features determine relevance "
                        "exactly; > 0: the feature-only ranker cannot fit relevance exactly)")
    p.add_argument("--pos-methods", default=",".join(POS_METHODS))
    p.add_argument("--setting2", action="store_true",
                   help="also run setting 2 (candidate sets: synthetic MNAR world and Coat; several more minutes)")
    p.add_argument("--datasets", default="synthetic,coat", help="setting 2 data sets")
    p.add_argument("--rec-methods", default=",".join(REC_METHODS))
    p.add_argument("--rec-ranker", default="mf", choices=("mf", "twotower"),
                   help="setting 2 relevance model: MF (ID embeddings) or the feature-only two-tower of setting 1")
    p.add_argument("--n-sampled", type=int, default=20, help="setting 2: unclicked items per candidate set")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    etas = [float(x) for x in args.etas.split(",") if x.strip()]  # "" skips setting 1
    args.hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    args.pos_methods = [m for m in args.pos_methods.split(",") if m]
    args.rec_methods = [m for m in args.rec_methods.split(",") if m]
    for which, given, known in (("1", args.pos_methods, POS_METHODS), ("2", args.rec_methods, REC_METHODS)):
        for m in given:
            if m not in known:
                p.error(f"unknown setting-{which} method {m!r}; choose from {known}")
    if args.quick:
        args.seeds = min(args.seeds, 2)
    if args.lists is None:
        args.lists = 8000 if args.quick else 300_000
    if args.epochs is None:
        args.epochs = 3 if args.quick else 16
    t_start = time.perf_counter()

    runs: dict[float, list[dict]] = {}
    for eta in etas:
        runs[eta] = [run_positions(eta, seed, args) for seed in range(args.seeds)]
        print(f"[dla_positions] setting 1 eta={eta} done ({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)
    config = dict(etas=etas, seeds=args.seeds, lists=args.lists, ranker=args.ranker, factors=args.factors,
                  hidden=list(args.hidden), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, l2=args.l2,
                  relevance_link=args.relevance_link, item_bias=args.item_bias, propensity_lr=args.propensity_lr,
                  max_weight=args.max_weight, optimizer=args.optimizer, methods=args.pos_methods, world=_world(args),
                  list_length=10, log_candidates=50, logging_noise=1.0,
                  logging_ranker="relevance+promotion" if args.logging_bias else args.logging_ranker,
                  logging_labels=args.logging_labels, logging_bias=args.logging_bias)
    result = {"benchmark": "dla_positions",
              "setting1": {"config": config, "summary": summarize_positions(runs, args.pos_methods)}}
    result.update(headline(result["setting1"]["summary"], args.pos_methods))  # the figures issue 7's check names
    if args.setting2:
        summary2, not_done = run_setting2(args, t_start)
        config2 = dict(datasets=args.datasets, seeds=args.seeds, n_sampled=args.n_sampled,
                       propensity_lr=args.rec_propensity_lr, optimizer="adam", train=REC_TRAIN, ranker=args.rec_ranker,
                       world=mnar.QUICK_WORLD if args.quick else mnar.WORLD, ks=list(KS), protocol="test_items")
        result["setting2"] = {"config": config2, "summary": summary2, "not_done": not_done}
    result["wall_s"] = time.perf_counter() - t_start
    result["machine"] = dict(python=platform.python_version(), cpu_count=os.cpu_count(), threads=args.threads)

    if not args.json:
        print("\n".join(positions_text(result["setting1"]["summary"], args.ranker, args.pos_methods)
                        + rec_text(result.get("setting2", {}).get("summary", {}), ("dla", "dla_sigmoid"))))
    if not args.no_write:
        write_results(result_path(
            __file__, "dla_positions", args.quick and "quick", args.ranker != "twotower" and args.ranker,
            args.logging_ranker == "relevance" and not args.logging_bias and "logrel",
            args.logging_labels != 2000 and f"labels{args.logging_labels}",
            args.logging_bias and f"bias{args.logging_bias:g}",
            args.feature_noise is not None and f"fnoise{args.feature_noise:g}", args.setting2 and "setting2",
            args.setting2 and args.rec_ranker == "twotower" and "twotower", tag=args.tag), result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
