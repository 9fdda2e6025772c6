"""NBPO vs BPO vs uniform BPR on the synthetic world with hidden true positives (label noise).

For each label-noise rate ρ (the expected fraction of true positives hidden from the data) and
each seed, the script draws a synthetic world (:func:`recsampling.data.synthetic.make_world`),
splits its *true* positives per user 80/20 (``random_split``), trains on the observed clicks of
the 80% part (true positives minus the hidden ones), and evaluates every method against the known
truth, with the training clicks excluded from the ranking:

- ``ndcg@10`` / ``recall@10``: against every true positive that is not a training click (the
  held-out 20% plus the hidden positives of the 80% part): what a noise-robust method should find;
- ``true_ndcg@10`` / ``true_recall@10``: graded by the true relevance probabilities
  (``recsampling.metrics`` truth metrics);
- for NBPO, the Spearman rank correlation of the learned per-item / per-user mean flip rates
  (``item_flip_rates_``, ``user_flip_rates_``) with the injected per-item / per-user noise rates
  (``SyntheticWorld.item_noise_rate`` / ``user_noise_rate``); undefined (null) at ρ = 0. As a
  diagnostic also with the *total* miss rate of relevant pairs, relevance-weighted
  ``1 − exposure·(1 − noise)``: in this world a relevant item is unvoted mostly because it was
  never exposed (MNAR), which a flip rate cannot tell apart from injected noise.

Two baselines say what the flip-rate correlations are worth: ``rarity_rank_correlation`` (``_user``)
is the Spearman correlation of minus the training count of each item (user) with its injected
noise rate — what an estimator that only knows "this item is rare" achieves — and
``flip_rank_correlation_pairs`` compares the learned flip rate of each unvoted true positive
(held-out or hidden pair) with that pair's injected rate. ``world`` per noise rate reports how
much of the unvoted pool is a true positive (``unvoted_true_positive_share``), a hidden one
(``unvoted_hidden_share``) and the relevance mass (``unvoted_relevance_share``): the label noise
NBPO models is what contaminates the uniformly drawn unvoted items.

``--exposure full`` draws a world in which every pair is exposed, so that label noise is the only
reason a relevant item is unvoted (apart from the held-out test part); in the default world most
relevant items are unvoted because they were never exposed (about two thirds of the relevance
mass at ρ = 0), which NBPO's flip rates also absorb.

Fairness: all methods share the world, split, model (MF, ``--factors``), optimizer (Adam,
``--lr``), batch size and seed of each run; each method's number of epochs (early stopping,
``--patience``) and its L2 (the ``--l2`` grid) are chosen on a validation set carved from the noisy
training clicks (10% per user), never on the truth. The default world (600 × 1,000, ~40,000 true
positives) is smaller than MovieLens 100K so that the default run takes about 4 minutes on 2 cores
with 1 torch thread.

Means and standard errors are over seeds. Results go to ``benchmarks/results/nbpo_noise.json``
(``--quick``: ``nbpo_noise_quick.json``; ``--out``: the summary, the config and every run); with ``--json`` the last stdout line is the
summary JSON ``{"noise": {"0.0": {"bpr": {"ndcg@10": ..., "ndcg@10_sem": ..., ...}, "bpo": ...,
"nbpo": ..., "flip_rank_correlation": ..., ...}, ...}, "config": ..., "wall_s": ...}``.
``--extra LABEL:key=value,...`` adds NBPO variants (e.g. ``exact:objective=exact``) and
``--methods`` restricts the run to some labels (ablations).

Run ``python benchmarks/nbpo_noise.py --help`` for the options; ``--quick`` is a tiny smoke run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from recsampling._utils import positive_int
from recsampling.data.interactions import Interactions
from recsampling.data.splits import random_split, validation_split
from recsampling.data.synthetic import make_world
from recsampling.models import make_model
from recsampling.samplers import make_sampler
from recsampling.suite import mean_se
from recsampling.tasks import Task
from recsampling.train import Trainer

METRICS = ("ndcg", "recall", "true_ndcg", "true_recall")


def _world_split(noise: float, seed: int, args) -> tuple[Task, object]:
    """The task (train: observed clicks of 80% of the true positives; test: every other true positive) and its world."""
    extra = {}
    if args.exposure == "full":
        # every pair exposed (≈0.98): the injected label noise is the only reason a relevant item is unvoted
        extra = dict(exposure_eta=0.0, user_activity_sigma=0.0,
                     relevance_rate=args.interactions / (0.98 * args.n_users * args.n_items))
    world = make_world(args.n_users, args.n_items, args.interactions, label_noise=noise, random_state=seed, **extra)
    truth = world.true_positives
    split = random_split(truth, 0.2, random_state=seed)
    train_m = split.train.matrix.multiply(world.clicks.matrix).tocsr().astype(np.float32)
    train_m.eliminate_zeros()
    test_m = (truth.matrix - train_m).tocsr().astype(np.float32)
    test_m.eliminate_zeros()
    ids = dict(user_ids=truth.user_ids, item_ids=truth.item_ids)
    task = Task("synthetic (true positives)", Interactions.from_csr(train_m, **ids), Interactions.from_csr(test_m, **ids),
                relevance=world.relevance, metrics=METRICS, ks=(10,))
    return task, world


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    r = spearmanr(a, b)[0]
    return None if not np.isfinite(r) else float(r)


def _miss_rates(world) -> tuple[np.ndarray, np.ndarray]:
    """Relevance-weighted P(a relevant pair is unvoted) per item and per user: exposure and noise."""
    rel = world.relevance.astype(np.float64)
    miss = 1.0 - world.exposure.astype(np.float64) * (1.0 - world.noise_rate().astype(np.float64))
    return (rel * miss).sum(0) / rel.sum(0), (rel * miss).sum(1) / rel.sum(1)


def _world_stats(train: Interactions, test: Interactions, world) -> dict:
    """How much of the unvoted pool the label noise contaminates (what NBPO's flips are about)."""
    unvoted = float(train.n_users * train.n_items - train.nnz)
    return {
        "train_clicks": float(train.nnz),
        "unvoted_true_positive_share": test.nnz / unvoted,  # held-out + hidden true positives
        "unvoted_hidden_share": world.hidden_positives.nnz / unvoted,
        "unvoted_relevance_share": float(world.relevance.sum(dtype=np.float64) - world.relevance[
            train.user_index(), train.item_index()].sum(dtype=np.float64)) / unvoted,
    }


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


def run_one(name: str, params: dict, task: Task, world, seed: int, args) -> dict:
    """Fit one method (its L2 chosen from ``--l2`` on validation), evaluate it against the truth."""
    train, test = task.train, task.test
    fit_on, valid = train, None
    if args.patience:
        # early stopping and the choice of L2 on a validation set carved from the (noisy) clicks
        vs = validation_split(train, 0.1, random_state=seed)
        fit_on, valid = vs.train, vs.test
    best = None
    t0 = time.perf_counter()
    for l2 in args.l2:
        model = make_model("mf", train, factors=args.factors, random_state=seed)
        sampler = make_sampler(name, **params)
        fit = Trainer(epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=args.lr, l2=l2,
                      device="cpu", random_state=seed, progress=False, patience=args.patience or None,
                      metric="ndcg@10").fit(model, sampler, fit_on, valid=valid)
        score = fit.best_metric if valid is not None else 0.0
        if best is None or score > best[0]:
            best = (score, l2, model, sampler, fit)
    fit_s = time.perf_counter() - t0
    _, l2, model, sampler, fit = best
    res = task.evaluate(model, device="cpu").to_dict()
    out = {f"{m}@10": float(res[f"{m}@10"]) for m in METRICS}
    out["fit_s"] = fit_s
    out["l2"] = l2
    out["valid_ndcg"] = float(best[0]) if valid is not None else None
    out["best_epoch"] = fit.best_epoch if valid is not None else args.epochs
    if name == "nbpo":
        item_rates, user_rates = sampler.item_flip_rates_, sampler.user_flip_rates_
        out["item_flip_spearman"] = _spearman(item_rates, world.item_noise_rate)
        out["user_flip_spearman"] = _spearman(user_rates, world.user_noise_rate)
        out["mean_flip_rate"] = float(item_rates.mean())
        out["item_flip_spearman_popularity"] = _spearman(item_rates, train.item_counts().astype(float))
        # what a flip rate means in this world: P(unvoted | relevant) = 1 - exposure (1 - noise)
        item_miss, user_miss = _miss_rates(world)
        out["item_flip_spearman_total_miss"] = _spearman(item_rates, item_miss)
        out["user_flip_spearman_total_miss"] = _spearman(user_rates, user_miss)
        # the data-only baseline a flip rate has to beat: rarity (minus the training count)
        out["item_rarity_spearman"] = _spearman(-train.item_counts().astype(float), world.item_noise_rate)
        out["user_rarity_spearman"] = _spearman(-train.user_counts().astype(float), world.user_noise_rate)
        # pair level, on the true positives the model did not train on (held-out and hidden)
        tu, ti = test.matrix.nonzero()
        out["pair_flip_spearman"] = _spearman(sampler.flip_rates(tu, ti, pairs=True), world.noise_rate()[tu, ti])
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4], help="label-noise rates ρ")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per noise rate (0..seeds-1)")
    p.add_argument("--n-users", type=int, default=600)
    p.add_argument("--n-items", type=int, default=1000)
    p.add_argument("--interactions", type=int, default=40_000, help="expected true positives of the world")
    p.add_argument("--exposure", default="mnar", choices=["mnar", "full"],
                   help="mnar: the world's popularity-driven exposure (default); full: every pair exposed, so "
                        "the injected noise is the only missingness besides the held-out test")
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30, help="maximum epochs")
    p.add_argument("--patience", type=int, default=5,
                   help="early stopping on validation ndcg@10 (10%% of the training clicks); 0: off")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (all methods)")
    p.add_argument("--l2", type=float, nargs="+", default=[1e-2, 3e-2, 1e-1],
                   help="L2 grid of the touched embeddings; each method takes the best on validation")
    p.add_argument("--n-negatives", type=int, default=4, help="unvoted draws per voted pair (BPO, NBPO)")
    p.add_argument("--flip", default="factor", choices=["factor", "item", "user", "user+item"])
    p.add_argument("--objective", default="surrogate", choices=["surrogate", "exact"])
    p.add_argument("--flip-lr", type=float, default=None, help="flip parameters' lr (default: --lr)")
    p.add_argument("--flip-l2", type=float, default=None, help="NBPO flip_l2 (default: NBPOSampler's)")
    p.add_argument("--flip-init", type=float, default=0.01)
    p.add_argument("--extra", nargs="*", default=[],
                   help="extra NBPO variants LABEL:key=value[,key=value], e.g. exact:objective=exact "
                        "item:flip=item pw1:positive_weight=1.0 (NBPOSampler parameters)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="run only these labels (default: bpr bpo nbpo and the --extra variants)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (1 is fastest for these sizes)")
    p.add_argument("--quick", action="store_true", help="tiny world, at most 2 seeds and 3 epochs (smoke test)")
    p.add_argument("--out", default=None,
                   help="results JSON (default: results/nbpo_noise.json, with --quick results/nbpo_noise_quick.json)")
    p.add_argument("--json", action="store_true", help="print the result JSON as the last stdout line")
    args = p.parse_args(argv)
    if args.out is None:  # a smoke run must not overwrite the recorded results
        stem = "nbpo_noise_quick.json" if args.quick else "nbpo_noise.json"
        args.out = str(Path(__file__).resolve().parent / "results" / stem)
    if args.quick:
        args.n_users, args.n_items, args.interactions = 150, 200, 4000
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
    for noise in args.noise:
        key = f"{noise:.1f}" if round(noise, 1) == noise else str(noise)
        raw[key] = {m: [] for m in methods}
        world_raw[key] = []
        for seed in range(args.seeds):
            task, world = _world_split(noise, seed, args)
            world_raw[key].append(_world_stats(task.train, task.test, world))
            for label, (name, params) in methods.items():
                raw[key][label].append(run_one(name, params, task, world, seed, args))
                if not args.json:
                    r = raw[key][label][-1]
                    print(f"noise {key} seed {seed} {label:14s} ndcg@10 {r['ndcg@10']:.4f} "
                          f"true_ndcg@10 {r['true_ndcg@10']:.4f} ({r['fit_s']:.1f}s)", file=sys.stderr)

    result: dict = {"noise": {}}
    for key, by_method in raw.items():
        block: dict = {label: mean_se(runs, suffix="_sem", always=True) for label, runs in by_method.items()}
        world_means = mean_se(world_raw[key])
        block["world"] = {f: world_means[f] for f in world_raw[key][0]}
        nb = block.get("nbpo")
        if nb is not None:
            block["flip_rank_correlation"] = nb["item_flip_spearman"]  # items: the headline figure
            block["flip_rank_correlation_user"] = nb["user_flip_spearman"]
            block["flip_rank_correlation_total_miss"] = nb["item_flip_spearman_total_miss"]
            block["flip_rank_correlation_total_miss_user"] = nb["user_flip_spearman_total_miss"]
            block["flip_rank_correlation_pairs"] = nb["pair_flip_spearman"]
            block["rarity_rank_correlation"] = nb["item_rarity_spearman"]  # the data-only baseline
            block["rarity_rank_correlation_user"] = nb["user_rarity_spearman"]
            for base in ("bpo", "bpr"):
                if base in block and block[base]["ndcg@10"]:
                    block[f"nbpo_vs_{base}_ndcg@10"] = nb["ndcg@10"] / block[base]["ndcg@10"]
        result["noise"][key] = block
    result["config"] = {k: v for k, v in vars(args).items() if k not in ("json", "out")}
    result["config"]["protocol"] = ("world true positives split 80/20 per user; train = observed clicks of the 80%; "
                                    "test = all true positives not in train; full ranking without train items")
    result["runs"] = raw
    result["wall_s"] = time.perf_counter() - t_start

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))

    if args.json:
        summary = {"noise": result["noise"], "config": result["config"], "wall_s": result["wall_s"]}
        print(json.dumps(summary))
    else:
        labels = list(methods)
        print(f"{'noise':>6} {'metric':>14} " + " ".join(f"{m:>18}" for m in labels))
        for key, block in result["noise"].items():
            for metric in ("ndcg@10", "recall@10", "true_ndcg@10"):
                cells = [f"{block[m][metric]:.4f}±{block[m][metric + '_sem']:.4f}" for m in labels]
                print(f"{key:>6} {metric:>14} " + " ".join(f"{c:>18}" for c in cells))
            if "nbpo" not in block:
                continue
            fr = block["flip_rank_correlation"]
            fu = block["flip_rank_correlation_user"]
            tm, tmu = block["flip_rank_correlation_total_miss"], block["flip_rank_correlation_total_miss_user"]
            r3 = lambda v: v if v is None else round(v, 3)  # noqa: E731
            ratio = block.get("nbpo_vs_bpo_ndcg@10")
            print(f"{key:>6} flip Spearman vs injected noise: items {r3(fr)} users {r3(fu)} pairs "
                  f"{r3(block['flip_rank_correlation_pairs'])} (rarity alone: items {r3(block['rarity_rank_correlation'])} "
                  f"users {r3(block['rarity_rank_correlation_user'])}); vs total miss: items {r3(tm)} users {r3(tmu)}; "
                  f"NBPO/BPO ndcg {r3(ratio)}")
        print(f"wall {result['wall_s']:.0f}s; written to {out}")
    return result


if __name__ == "__main__":
    main()
