"""DLA (Ai et al., SIGIR 2018): learned vs true propensities, and ranking quality, same run.

Issue 7. Two parts.

**Setting 1 -- logged ranked lists with positions** (the paper's setting). For each
``eta`` in ``--etas`` and each seed, a synthetic world (:func:`recsampling.data.synthetic.make_world`)
logs ``--lists`` ranked lists of 10 items per seed, clicked with examination
``theta_k = (1/k)^eta``. The logging ranker (``--logging-ranker``) sorts 50 uniform candidates
by its score plus ``N(0, 1)`` noise; by default (``linear``) the score is a weak ranker over the
side features, a logistic regression fitted to ``--logging-labels`` (2,000) labelled pairs, like
the paper's production ranker (a Ranking SVM trained on 1% of the labelled data): its mistakes
are a function of the features, so the position bias puts a feature-shaped bias into the raw
clicks. ``relevance`` ranks by the true ``logit(relevance)`` instead, so position is a noisy
monotone function of relevance and only sharpens it (there the raw-click model ranks as well as
the corrected ones; RESULTS.md). Three
relevance models, identical except for the click weights of the listwise softmax loss (the same
:class:`~recsampling.samplers.dla.DLASampler` code, the same model, optimizer and epochs):

- ``clicks_naive``: unweighted softmax cross-entropy on the raw clicks (``fixed_propensity=1``);
- ``ips_true_propensity``: clicks weighted by the true ``1/theta_k`` relative to position 1;
- ``dla``: the propensities are learned jointly (one logit per position).

Reported per eta: the learned and true relative propensities ``theta_k / theta_1`` for
positions 1-10 (mean and per seed), ``max_rel_error_top10`` = the worst
``|learned_k / true_k - 1|`` over positions 2-10 of the seed-averaged curve (and per seed), and
the true-relevance ``ndcg@10`` of each method: the full-catalogue ranking of every user scored
against the world's true relevance probabilities (``true_ndcg@10`` of :mod:`recsampling.metrics`).
Two diagnostics solve eq. (7) exactly (``P_k ∝ Σ_n v_nk c_nk``, :func:`irw_closed_form`) on the
same logs: with the true relevance in ``v`` (``irw_closed_form_true_relevance_*``: the noise floor
of the log, what no estimate can beat) and with DLA's trained ranker
(``irw_closed_form_ranker_*``: the ranker's share of the error, free of optimization noise).

``--logging-bias S`` (an ablation) replaces the world's logs by lists whose logging ranker scores
``logit(relevance) + S * b_i`` (a fixed ``b_i ~ N(0, 1)`` per item, "promoted items", independent
of the features; :func:`biased_logs`).

``--feature-noise X`` generates the world with ``feature_noise=X`` (default 0): neither the
feature-only ranker nor the linear logging ranker can then fit relevance; on the default logs DLA
still beats raw clicks and its propensities stay close, on relevance-ranked logs it does not (see
RESULTS.md); an ablation only.

The relevance model (``--ranker``): ``twotower`` (default) is a feature-only two-tower model (no
ID embeddings, affine towers over the world's user / item features, generated without feature
noise, no per-item bias unless ``--item-bias``), i.e. a ranker over features like the paper's,
that cannot memorize single clicks. Its score is read as a relevance logit
(``--relevance-link sigmoid``, the default: ``P(r = 1) = σ(s)``, the synthetic world's own link,
which the affine two-tower can represent exactly); ``--relevance-link exp`` is the paper's
softmax reading (``exp(s) ∝ P(r = 1)``), which this model cannot represent. With
``--ranker mf`` (ID embeddings) the relevance model can memorize each logged (user, item)
click, and DLA's weights then drift (see RESULTS.md).

**Setting 2 -- recommendation without positions** (``--setting2``; off by default to keep the
default run shorter). On the
synthetic MNAR world of the MNAR benchmark (943 x 1682, 60,000 clicks, popularity-driven
exposure) and on Coat (when ``--data-dir`` holds it), with the MNAR issue's unbiased
protocol (rank each user's randomized test items; rating >= 4 relevant on Coat; DCG, Recall,
MAP at 3, 5, 8; ``true_ndcg`` on synthetic): ``naive`` (pointwise, theta = 1), ``relmf``
(popularity propensities (n_i / max n)^0.5 clipped at 0.1), ``softmax_naive`` (DLA's candidate
sets and listwise loss with all propensities 1), ``dla`` and ``dla_sigmoid`` (the same with
``relevance_link="sigmoid"``) (item propensities learned from
popularity-bucket and item-id features). On the synthetic world it also reports the Spearman
correlation of DLA's learned item propensities with the world's true ones (mean exposure of
each item), and that of the popularity estimate for reference. The relevance model is MF with ID
embeddings (``--rec-ranker mf``, the default) or the feature-only two-tower model of setting 1
(``--rec-ranker twotower``).

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
from recsampling.bench.dla import biased_logs, irw_closed_form, log_relevance_scores, true_ndcg
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench.mnar import QUICK_WORLD as MNAR_QUICK_WORLD
from recsampling.bench.mnar import TRAINING as MNAR_TRAINING
from recsampling.bench.mnar import WORLD as MNAR_WORLD
from recsampling.bench.mnar import load_randomized_task
from recsampling.bench.report import mean_se_by, method_table

POS_METHODS = ("clicks_naive", "ips_true_propensity", "dla")
REC_METHODS = ("naive", "relmf", "softmax_naive", "dla", "dla_sigmoid")
KS = (3, 5, 8)

#: setting 1 world (per seed) and training; fixed a priori, the same for every method
POS_WORLD = dict(n_users=943, n_items=1682, target_interactions=60_000, feature_noise=0.0)
POS_QUICK_WORLD = dict(n_users=200, n_items=300, target_interactions=3_000, feature_noise=0.0)
#: setting 2: the MNAR benchmark's training defaults (its world: recsampling.bench.mnar's)
REC_TRAIN = {d: MNAR_TRAINING[d] for d in ("synthetic", "coat")}


# ----------------------------------------------------------------------------------- setting 1
def _fit(kind: str, sampler: str, train, seed: int, train_params: dict, sampler_params: dict, hidden: tuple = (),
         item_bias: bool = False):
    """Fit ``kind`` (``mf`` or the feature-only ``twotower``) with ``sampler``, torch path; ``(model, sampler)``."""
    model_params = dict(hidden=hidden, use_ids=False, item_bias=item_bias) if kind == "twotower" else {}
    fit = Ours(kind, sampler).fit(train, dict(train_params, model_params=model_params, sampler_params=sampler_params,
                                              backend="torch"), seed, device="cpu")
    return fit.model, fit.sampler


def run_positions(eta: float, seed: int, args) -> dict:
    from recsampling.data.synthetic import make_world

    world_cfg = dict(POS_QUICK_WORLD if args.quick else POS_WORLD)
    if args.feature_noise is not None:
        world_cfg["feature_noise"] = args.feature_noise
    world = make_world(**world_cfg,
                       n_logged_lists=0 if args.logging_bias else args.lists,
                       logging_ranker=args.logging_ranker, logging_labels=args.logging_labels,
                       position_eta=eta, n_test_items=0, random_state=seed)
    theta = (1.0 / np.arange(1, 11)) ** eta
    logs = biased_logs(world, args.lists, eta, args.logging_bias, seed) if args.logging_bias else world.logs
    true_rel = theta / theta[0]
    out = {"true": true_rel.tolist(), "n_clicks": int(np.asarray(logs["clicks"] if isinstance(logs, dict)
                                                               else logs.clicks).sum())}
    for method in args.pos_methods:
        fixed = {"clicks_naive": np.ones_like(theta), "ips_true_propensity": theta, "dla": None}[method]
        t0 = time.perf_counter()
        model, sampler = _fit(args.ranker, "dla", world.clicks, seed,
                              dict(factors=args.factors, epochs=args.epochs, batch_size=args.batch_size,
                                   optimizer=args.optimizer, lr=args.lr, l2=args.l2),
                              dict(logs=logs, fixed_propensity=fixed, propensity_lr=args.propensity_lr,
                                   max_weight=args.max_weight, relevance_link=args.relevance_link),
                              args.hidden, args.item_bias)
        fit_s = time.perf_counter() - t0
        r = {"ndcg@10": true_ndcg(model, np.asarray(world.relevance)), "fit_s": fit_s}
        if method == "dla":
            learned = sampler.position_propensities_
            r["learned"] = learned.tolist()
            r["max_rel_error_top10"] = float(np.max(np.abs(learned[1:10] / true_rel[1:10] - 1.0)))
            # diagnostics: where eq. (7) goes with this ranker, and with the true relevance
            users, items, clicks = (np.asarray(logs[k] if isinstance(logs, dict) else getattr(logs, k))
                                    for k in ("users", "items", "clicks"))
            r["irw_closed_form_ranker"] = irw_closed_form(
                log_relevance_scores(model, users, items, args.relevance_link), clicks).tolist()
            r["irw_closed_form_true_relevance"] = irw_closed_form(
                np.log(np.asarray(world.relevance, dtype=np.float64)[users[:, None], items]), clicks).tolist()
        out[method] = r
    return out


def summarize_positions(runs: dict[float, list[dict]], methods) -> dict:
    out = {}
    for eta, seeds in runs.items():
        true = np.mean([s["true"] for s in seeds], axis=0)
        d = {"true_relative_propensity": true[:10].round(5).tolist(), "n_seeds": len(seeds)}
        for m in methods:
            nd = np.array([s[m]["ndcg@10"] for s in seeds])
            d[f"ndcg@10/{m}"] = float(nd.mean())
            d[f"ndcg@10/{m}_se"] = float(nd.std(ddof=1) / np.sqrt(nd.size)) if nd.size > 1 else None
            d[f"ndcg@10/{m}_per_seed"] = nd.round(5).tolist()
            d[f"fit_s/{m}"] = float(np.mean([s[m]["fit_s"] for s in seeds]))
        if "dla" in methods:
            learned = np.array([s["dla"]["learned"] for s in seeds])
            mean = learned.mean(0)
            d["learned_relative_propensity"] = mean[:10].round(5).tolist()
            d["learned_relative_propensity_per_seed"] = learned[:, :10].round(5).tolist()
            d["max_rel_error_top10"] = float(np.max(np.abs(mean[1:10] / true[1:10] - 1.0)))
            d["worst_position"] = int(np.argmax(np.abs(mean[1:10] / true[1:10] - 1.0)) + 2)
            d["max_rel_error_top10_per_seed"] = [round(s["dla"]["max_rel_error_top10"], 5) for s in seeds]
            for key in ("irw_closed_form_ranker", "irw_closed_form_true_relevance"):
                cf = np.array([s["dla"][key] for s in seeds])
                d[f"{key}_max_rel_error_top10"] = float(np.max(np.abs(cf.mean(0)[1:10] / true[1:10] - 1.0)))
                d[f"{key}_max_rel_error_top10_per_seed"] = np.max(
                    np.abs(cf[:, 1:10] / true[1:10] - 1.0), axis=1).round(5).tolist()
        out[str(eta)] = d
    return out


# ----------------------------------------------------------------------------------- setting 2
def _rec_task(dataset: str, seed: int, args):
    """The MNAR benchmark's task of ``dataset`` (its randomized test items ranked), None when absent."""
    try:
        return load_randomized_task(dataset, args.data_dir, seed, args.quick, ks=KS)
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
    cfg = dict(REC_TRAIN[dataset], optimizer="adam")
    if args.quick:
        cfg["epochs"] = 3
    name, params = _rec_sampler(method, args, task.train.n_items)
    t0 = time.perf_counter()
    model, sampler = _fit(args.rec_ranker, name, task.train, seed, cfg, params)
    out = {"fit_s": time.perf_counter() - t0}
    metrics = ["dcg", "recall", "map"] + (["true_ndcg"] if task.relevance is not None else [])
    d = task.evaluate(model, metrics=metrics, device="cpu").to_dict()
    for k in KS:
        for m in metrics:
            out[f"{m}@{k}"] = d[f"{m}@{k}"]
    world = task.source.info.get("world")
    if method.startswith("dla") and world is not None:
        from scipy.stats import spearmanr

        truth = np.asarray(world.item_propensity)
        out["spearman_learned_vs_true"] = float(spearmanr(sampler.item_propensities_, truth).statistic)
        out["spearman_popularity_vs_true"] = float(spearmanr(task.train.item_counts(), truth).statistic)
    return out


# ----------------------------------------------------------------------------------- output
def _fmt(d, key):
    if key not in d or d[key] is None:
        return ""
    se = d.get(key + "_se")
    return f"{d[key]:.4f}" + (f" ± {se:.4f}" if se is not None else "")


def print_tables(result: dict) -> None:
    pos = result["setting1"]["summary"]
    print(f"\n## Setting 1: logged lists ({result['setting1']['config']['ranker']} ranker)\n")
    for eta, d in pos.items():
        print(f"eta = {eta}: max_rel_error_top10 = {d.get('max_rel_error_top10', float('nan')):.3f} "
              f"(worst position {d.get('worst_position')}; per seed {d.get('max_rel_error_top10_per_seed')})")
        print("  position   " + " ".join(f"{k:>6d}" for k in range(1, 11)))
        print("  true       " + " ".join(f"{x:6.3f}" for x in d["true_relative_propensity"]))
        if "learned_relative_propensity" in d:
            print("  learned    " + " ".join(f"{x:6.3f}" for x in d["learned_relative_propensity"]))
        if "irw_closed_form_true_relevance_max_rel_error_top10" in d:
            print(f"  eq. (7) solved exactly: with the true relevance (the log's noise floor) "
                  f"{d['irw_closed_form_true_relevance_max_rel_error_top10']:.3f}, with DLA's trained ranker "
                  f"{d['irw_closed_form_ranker_max_rel_error_top10']:.3f}")
    methods = result["setting1"]["config"]["methods"]
    print("\n| eta | " + " | ".join(f"true ndcg@10 {m}" for m in methods) + " |")
    print("|---|" + "---|" * len(methods))
    for eta, d in pos.items():
        print(f"| {eta} | " + " | ".join(_fmt(d, f"ndcg@10/{m}") for m in methods) + " |")
    for ds, summ in result.get("setting2", {}).get("summary", {}).items():
        keys = [f"{m}@{k}" for m in ("dcg", "recall", "map") for k in (5,)]
        if "true_ndcg@5" in next(iter(summ.values())):
            keys.append("true_ndcg@5")
        print(f"\n## Setting 2: {ds} (rank the randomized test items)\n")
        print(method_table(summ, keys))
        for m in ("dla", "dla_sigmoid"):
            dla = summ.get(m, {})
            if "spearman_learned_vs_true" in dla:
                print(f"\n{m}: Spearman(learned item propensity, true) = {_fmt(dla, 'spearman_learned_vs_true')}; "
                      f"Spearman(popularity, true) = {_fmt(dla, 'spearman_popularity_vs_true')}")


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
    for m in args.pos_methods:
        if m not in POS_METHODS:
            p.error(f"unknown setting-1 method {m!r}; choose from {POS_METHODS}")
    for m in args.rec_methods:
        if m not in REC_METHODS:
            p.error(f"unknown setting-2 method {m!r}; choose from {REC_METHODS}")
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
    result = {
        "benchmark": "dla_positions",
        "setting1": {
            "config": dict(etas=etas, seeds=args.seeds, lists=args.lists, ranker=args.ranker, factors=args.factors, hidden=list(args.hidden),
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, l2=args.l2,
                           relevance_link=args.relevance_link, item_bias=args.item_bias,
                           propensity_lr=args.propensity_lr, max_weight=args.max_weight, optimizer=args.optimizer,
                           methods=args.pos_methods,
                           world=dict(POS_QUICK_WORLD if args.quick else POS_WORLD,
                                      **({} if args.feature_noise is None else {"feature_noise": args.feature_noise})),
                           list_length=10, log_candidates=50, logging_noise=1.0,
                           logging_ranker="relevance+promotion" if args.logging_bias else args.logging_ranker,
                           logging_labels=args.logging_labels, logging_bias=args.logging_bias),
            "summary": summarize_positions(runs, args.pos_methods),
        },
    }
    # the figures issue 7's check names, at the top level
    for eta, d in result["setting1"]["summary"].items():
        result[f"eta={eta}"] = {k: d[k] for k in ("true_relative_propensity", "learned_relative_propensity",
                                                  "max_rel_error_top10") if k in d}
        result[f"eta={eta}"]["ndcg@10"] = {m: d[f"ndcg@10/{m}"] for m in args.pos_methods}

    if args.setting2:
        summary2, not_done = {}, []
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
            summary2[ds] = mean_se_by(per)
            print(f"[dla_positions] setting 2 {ds} done ({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)
        result["setting2"] = {"config": dict(datasets=args.datasets, seeds=args.seeds, n_sampled=args.n_sampled,
                                             propensity_lr=args.rec_propensity_lr, optimizer="adam", train=REC_TRAIN,
                                             ranker=args.rec_ranker,
                                             world=MNAR_QUICK_WORLD if args.quick else MNAR_WORLD, ks=list(KS),
                                             protocol="test_items"),
                              "summary": summary2, "not_done": not_done}
    result["wall_s"] = time.perf_counter() - t_start
    result["machine"] = dict(python=platform.python_version(), cpu_count=os.cpu_count(), threads=args.threads)

    if not args.json:
        print_tables(result)
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
