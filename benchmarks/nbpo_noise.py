"""NBPO vs BPO vs uniform BPR on the synthetic world with hidden true positives (label noise).

For each label-noise rate ρ and each seed, the script draws a synthetic world, splits its *true*
positives per user 80/20, trains on the observed clicks of the 80% part, and evaluates every method
against the known truth, with the training clicks excluded from the ranking. Every method is fitted
at every ρ. The task, the noise models (``--noise-model liked``: liked items that appear unvoted, a
truth fixed across ρ; ``clicks``: ρ of the clicks hidden), ``--exposure full`` and every figure
(``ndcg@10`` against the hidden truth, the truth metrics, the flip-ranking AUCs
``flip_auc_mislabeled`` / ``rarity_auc_mislabeled`` / ``score_auc_mislabeled``, the flip rates'
Spearman correlations, the ``world`` block) are :mod:`recsampling.bench.noise`'s.

Protocols (``--protocol``):

- ``ours`` (default). All methods share the world, split, model (MF, ``--factors`` 32), optimizer
  (Adam, ``--lr``), batch size (1,024) and seed of each run; each method's number of epochs (early
  stopping, ``--patience``) and its L2 (the ``--l2`` grid) are chosen on a validation set carved
  from the noisy training clicks (10% per user), never on the truth.
- ``authors``: the training loops of the authors' ``_NBPO.py`` / ``_BPO.py`` / ``_BPR.py``
  (Wenhui-Yu/NBPO) on our Trainer, with their settings, init and schedule
  (:mod:`recsampling.samplers.nbpo_authors`; ``--authors-data movielens`` or ``amazon``).
  ``recsampling/samplers/nbpo.py`` has the comparison table, line by line.

The default world (600 × 1,000, ~40,000 clicks) is smaller than MovieLens 100K so that a run fits in
minutes on 2 cores with 1 torch thread. Means and standard errors are over seeds. Results go to
``benchmarks/results/nbpo_noise.json`` (``--quick``: ``nbpo_noise_quick.json``; ``--out``: the
summary, the config and every run); with ``--json`` the last stdout line is the summary JSON
``{"noise": {"0.2": {"bpr": {"ndcg@10": ..., "ndcg@10_sem": ..., ...}, "bpo": ..., "nbpo": ...,
"flip_auc_mislabeled": ..., "rarity_auc_mislabeled": ..., "score_auc_mislabeled": ...,
"flip_rank_correlation": ..., "world": {...}}, ...}, "config": ..., "wall_s": ...}``.

Usage::

    python benchmarks/nbpo_noise.py                          # ours, rho 0 / 0.2 / 0.4, the default world
    python benchmarks/nbpo_noise.py --protocol authors       # the authors' loops (200 epochs)
    python benchmarks/nbpo_noise.py --extra exact:objective=exact --methods nbpo exact   # an ablation
    python benchmarks/nbpo_noise.py --quick --json           # a tiny smoke run

``--extra LABEL:key=value,...`` adds NBPO variants (NBPOSampler parameters) and ``--methods``
restricts the run to some labels; ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import torch

from recsampling.bench.contenders import Ours, fit_l2_grid
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench.noise import (METRICS, SPLIT, flip_figures, label_noise_task, mislabel_pairs, pair_scores,
                                     summarize, table_lines, world_stats)
from recsampling.data.interactions import Interactions
from recsampling.data.splits import validation_split
from recsampling.metrics import pooled_auc as auc
from recsampling.samplers.nbpo import AUTHORS_FLIP_INIT
from recsampling.samplers.nbpo_authors import AUTHORS_FIXED, AUTHORS_SETTINGS, authors_loop
from recsampling.tasks import Task
from recsampling.train import Trainer


def _method_params(args) -> dict[str, tuple[str, dict]]:
    nbpo = dict(n_negatives=args.n_negatives, flip=args.flip, objective=args.objective, flip_lr=args.flip_lr,
                flip_init=args.flip_init)
    if args.flip_l2 is not None:
        nbpo["flip_l2"] = args.flip_l2
    methods = {
        "bpr": ("bpr", {}),
        "bpo": ("bpo", dict(n_negatives=args.n_negatives)),
        "nbpo": ("nbpo", nbpo),
    }
    for extra in args.extra:  # label:key=value,key=value  (NBPO with those parameters changed)
        label, sep, spec = extra.partition(":")
        if not sep or not label or label in methods:
            raise SystemExit(f"--extra takes LABEL:key=value[,key=value], e.g. exact:objective=exact; got {extra!r}")
        p = dict(nbpo)
        for item in filter(None, spec.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise SystemExit(f"bad --extra item {item!r}: expected key=value")
            try:
                p[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            except ValueError:
                p[key] = None if value == "None" else value
        methods[label] = ("nbpo", p)
    return methods


def _carve(train: Interactions, seed: int, args) -> tuple[Interactions, Interactions | None]:
    """``(fit_on, valid)``: with ``--patience``, early stopping (and the L2) on 10% of the (noisy) clicks."""
    if not args.patience:
        return train, None
    vs = validation_split(train, 0.1, random_state=seed)
    return vs.train, vs.test


def _fit_ours(name: str, params: dict, train: Interactions, seed: int, args):
    """Adam, early stopping and the L2 (``--l2`` grid) chosen on a validation set carved from the clicks."""
    fit_on, valid = _carve(train, seed, args)
    fit, l2, score = fit_l2_grid(Ours("mf", name), fit_on, dict(
        factors=args.factors, sampler_params=params, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
        lr=args.lr, patience=args.patience or None, metric="ndcg@10"), args.l2, seed, valid=valid)
    return fit.model, fit.sampler, {"l2": l2, "valid_ndcg": score,
                                    "best_epoch": fit.result.best_epoch if valid is not None else args.epochs}


def _fit_authors(name: str, params: dict, train: Interactions, seed: int, args):
    """The authors' loop (:func:`~recsampling.samplers.nbpo_authors.authors_loop`): all clicks, no early stop."""
    model, sampler, setting = authors_loop(name, params, train, seed, data=args.authors_data, factors=args.factors,
                                           n_negatives=args.n_negatives, decay=args.decay,
                                           lr=args.lr if args.lr_given else None)
    fit_on, valid = _carve(train, seed, args)
    fit = Trainer(epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd", lr=setting["eta"], l2=0.0,
                  device="cpu", random_state=seed, backend="torch", progress=False, patience=args.patience or None,
                  metric="ndcg@10").fit(model, sampler, fit_on, valid=valid)
    return model, sampler, {"eta": setting["eta"], "lambda_r": setting["lambda_r"],
                            "lambda_phi": setting.get("lambda_phi"), "diverged": bool(fit.diverged),
                            "valid_ndcg": fit.best_metric, "best_epoch": fit.best_epoch if valid is not None
                            else len(fit.history) - 1}


def fit_one(name: str, params: dict, train: Interactions, seed: int, args) -> tuple:
    """Fit one method (``--protocol``: ours or the authors'): ``(model, sampler, info)``."""
    t0 = time.perf_counter()
    fit = _fit_authors if args.protocol == "authors" else _fit_ours
    model, sampler, info = fit(name, params, train, seed, args)
    info["fit_s"] = time.perf_counter() - t0
    return model, sampler, info


def run_one(name: str, params: dict, task: Task, world, pairs, seed: int, args) -> dict:
    """Fit one method on the task's training clicks, evaluate it against the truth."""
    model, sampler, info = fit_one(name, params, task.train, seed, args)
    res = task.evaluate(model, device="cpu").to_dict()
    out = {f"{m}@10": float(res[f"{m}@10"]) for m in METRICS}
    out.update(info)
    pu, pi, mislabeled = pairs
    out["score_auc_mislabeled"] = auc(pair_scores(model, pu, pi), mislabeled)  # the model's own score as a detector
    out.update(flip_figures(sampler, world, task.train, task.test, pairs))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4], help="label-noise rates ρ")
    add_flags(p, "seeds", "threads", "quick", "json",
              helps={"seeds": "seeds per noise rate (0..seeds-1)", "threads": "torch threads (1 is fastest for these sizes)",
                     "quick": "tiny world, at most 2 seeds and 3 epochs (smoke test)",
                     "json": "print the result JSON as the last stdout line"})
    p.add_argument("--n-users", type=int, default=600)
    p.add_argument("--n-items", type=int, default=1000)
    p.add_argument("--interactions", type=int, default=40_000, help="expected true positives of the world")
    p.add_argument("--protocol", default="ours", choices=["ours", "authors"],
                   help="ours: Adam, early stopping and the L2 grid on validation; authors: the loops of _NBPO.py / "
                        "_BPO.py / _BPR.py (SGD on batch sums, whole-table L2 per batch, lr x0.99 per epoch, their "
                        "settings, init and order, 200 epochs, no early stopping)")
    p.add_argument("--authors-data", default="movielens", choices=sorted(AUTHORS_SETTINGS),
                   help="whose tuned eta / lambda_r / lambda_phi --protocol authors takes")
    p.add_argument("--decay", type=float, default=AUTHORS_FIXED["decay"],
                   help="--protocol authors: learning-rate factor per epoch")
    p.add_argument("--noise-model", default="liked", choices=["liked", "clicks"],
                   help="liked (default): a truth fixed across rho (clicks + liked-but-unexposed pairs), rho of it hidden "
                        "from training where the uniform sampler draws (NBPO's noise); clicks: rho of the clicks hidden "
                        "(make_world's default)")
    p.add_argument("--liked-unexposed", type=float, default=1.0,
                   help="--noise-model liked: liked-but-unexposed pairs in the truth, as a multiple of the clicks")
    p.add_argument("--exposure", default="mnar", choices=["mnar", "full"],
                   help="mnar: the world's popularity-driven exposure (default); full: every pair exposed, so "
                        "the injected noise is the only missingness besides the held-out test")
    p.add_argument("--factors", type=int, default=None, help="default 32; --protocol authors: 50 (K0 = K1)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 30; --protocol authors: 200)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping on validation ndcg@10 (10%% of the training clicks); 0: off "
                        "(default 5; --protocol authors: 0)")
    p.add_argument("--batch-size", type=int, default=None, help="default 1024; --protocol authors: 5000")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of all methods (default 0.01); --protocol authors: replaces every method's "
                        "eta (default: theirs)")
    p.add_argument("--l2", type=float, nargs="+", default=[1e-2, 3e-2, 1e-1],
                   help="L2 grid of the touched embeddings; each method takes the best on validation")
    p.add_argument("--n-negatives", type=int, default=4, help="unvoted draws per voted pair (BPO, NBPO)")
    p.add_argument("--flip", default="factor", choices=["factor", "item", "user", "user+item"])
    p.add_argument("--objective", default="surrogate", choices=["surrogate", "exact"])
    p.add_argument("--flip-lr", type=float, default=None, help="flip parameters' lr (default: --lr)")
    p.add_argument("--flip-l2", type=float, default=None, help="NBPO flip_l2 (default: NBPOSampler's)")
    p.add_argument("--flip-init", type=float, default=None,
                   help="initial flip rate (default 0.01; --protocol authors: AUTHORS_FLIP_INIT = sigmoid(-6.25))")
    p.add_argument("--extra", nargs="*", default=[],
                   help="extra NBPO variants LABEL:key=value[,key=value], e.g. exact:objective=exact "
                        "item:flip=item pw1:positive_weight=1.0 (NBPOSampler parameters)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="run only these labels (default: bpr bpo nbpo and the --extra variants)")
    p.add_argument("--out", default=None,
                   help="results JSON (default: results/nbpo_noise.json, with --quick results/nbpo_noise_quick.json)")
    args = p.parse_args(argv)
    if args.out is None:  # a smoke run must not overwrite the recorded results
        args.out = str(result_path(__file__, "nbpo_noise", args.quick and "quick"))
    authors = args.protocol == "authors"
    args.lr_given = args.lr is not None
    for key, ours in (("factors", 32), ("epochs", 30), ("batch_size", 1024)):
        if getattr(args, key) is None:
            setattr(args, key, AUTHORS_FIXED[key] if authors else ours)
    if args.patience is None:
        args.patience = 0 if authors else 5
    if args.lr is None:
        args.lr = 0.01
    if args.flip_init is None:
        args.flip_init = AUTHORS_FLIP_INIT if authors else 0.01
    if args.quick:
        args.n_users, args.n_items, args.interactions = 150, 200, 2500
        args.seeds, args.epochs = min(args.seeds, 2), min(args.epochs, 3)  # smaller ones asked for still hold
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    methods = _method_params(args)
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            p.error(f"unknown --methods {sorted(unknown)}; known: {sorted(methods)}")
        methods = {m: methods[m] for m in args.methods}
    raw: dict[str, dict[str, list[dict]]] = {}
    world_raw: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    for noise in args.noise:  # every method is fitted at every rate: the training labels change with it
        key = f"{noise:.1f}" if round(noise, 1) == noise else str(noise)
        raw[key] = {m: [] for m in methods}
        world_raw[key] = []
        for seed in range(args.seeds):
            task, world, held_out = label_noise_task(
                noise, seed, n_users=args.n_users, n_items=args.n_items, interactions=args.interactions,
                noise_model=args.noise_model, liked_unexposed=args.liked_unexposed, exposure=args.exposure)
            pairs = mislabel_pairs(task.train, held_out, world, seed)
            world_raw[key].append(world_stats(task.train, task.test, world, pairs))
            for label, (name, params) in methods.items():
                raw[key][label].append(run_one(name, params, task, world, pairs, seed, args))
                if not args.json:
                    r = raw[key][label][-1]
                    print(f"noise {key} seed {seed} {label:14s} ndcg@10 {r['ndcg@10']:.4f} "
                          f"true_ndcg@10 {r['true_ndcg@10']:.4f} ({r['fit_s']:.1f}s)", file=sys.stderr)

    result: dict = {"noise": summarize(raw, world_raw, headline="nbpo", baselines=("bpo", "bpr"))}
    result["config"] = {k: v for k, v in vars(args).items() if k not in ("json", "out", "lr_given")}
    result["config"]["split"] = SPLIT
    if authors:
        result["config"]["authors_settings"] = AUTHORS_SETTINGS[args.authors_data]
    result["runs"] = raw
    result["wall_s"] = time.perf_counter() - t_start

    write_results(args.out, result)

    if args.json:
        summary = {"noise": result["noise"], "config": result["config"], "wall_s": result["wall_s"]}
        print(json.dumps(summary))
    else:
        print("\n".join(table_lines(result["noise"], list(methods), headline="nbpo", baseline="bpo")))
        print(f"wall {result['wall_s']:.0f}s; written to {args.out}")
    return result


if __name__ == "__main__":
    main()
