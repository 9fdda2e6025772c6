"""MovieLens 100K quality: our MF-BPR and two-tower BPR against ``implicit``'s BPR and ALS, one split.

Issue 4, "Speed and quality": on ML-100K (rating >= 4 positive, 80/20 per-user holdout) our
MF-BPR must reach at least ``implicit``'s BPR NDCG@10 and Recall@10 at its best settings.

Protocol (the same for every method)
------------------------------------
- data: ``u.data`` through :func:`recsampling.data.read_movielens` (with the user / item side
  features of ``u.user`` / ``u.item``), ``to_implicit(4.0)``;
  :func:`recsampling.data.random_split` 80/20 per user with ``--seed``; evaluated on
  ``split.eval_test`` (users with training data).
- tuning, honestly: every method's hyperparameters (a small grid, the same grid for our MF-BPR
  and implicit BPR, incl. the number of epochs read at checkpoints) are chosen on a validation
  split carved from the training part (:func:`recsampling.data.validation_split`, 20 % per
  user); the test set is never looked at while choosing.
- final: each method's chosen setting is refit on the whole training part with ``--seeds``
  seeds; the figures are the means over those fits of NDCG@10 and Recall@10 on the test set
  (full ranking over all items the user did not train on), with the spread over seeds.
- one evaluation code for all: :func:`recsampling.evaluation.evaluate` on a pair of embedding
  tables. implicit's tables are used as they are: its BPR ``item_factors`` carry the item bias
  as the last column and its ``user_factors`` a column of ones, so their dot product is its
  score; ALS has no bias.
- threads: ``--threads`` (2) for implicit, the numba kernel and torch.

Methods
-------
- ``mf_bpr``: ``MatrixFactorization`` + the ``"bpr"`` sampler (uniform negatives, exact
  rejection), ``optimizer="sgd"``: the Trainer's fused numba path. Our ``l2`` is the coefficient
  of ``||.||^2`` in the loss, so ``l2 = reg / 2`` makes each SGD step shrink by ``lr * reg``,
  exactly implicit's ``regularization=reg``: the grids are the same grid.
- ``twotower_bpr``: ``TwoTower`` with the ML-100K user (age, gender, occupation) and item
  (genres) features plus IDs, ``"bpr"`` sampler, Adam, torch path.
- ``implicit_bpr``: ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (negatives drawn by
  popularity, collisions skipped: its ``verify_negative_samples=True`` default).
- ``implicit_als``: ``implicit.cpu.als.AlternatingLeastSquares`` on its own grid: factors
  {32, 64, 128}, regularization {0.01 ... 100}, alpha {1, 10, 40}, read at 5 ... 50 iterations
  (implicit's defaults lie inside it). ``benchmarks/tuned_quality.py`` tunes every contender,
  this one included, with the same Optuna budget instead of grids.

Usage::

    python benchmarks/ml100k_quality.py --data-dir ../shared/data           # table
    python benchmarks/ml100k_quality.py --json --data-dir ../shared/data    # last line: JSON
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

# implicit parallelizes itself (num_threads) and asks for a single-threaded BLAS. OpenBLAS reads this
# only when numpy loads it, and importing recsampling loads numpy: set it before that import
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from recsampling.bench.flags import add_flags, emit, result_path, write_results  # noqa: E402



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(ap, "data_dir", "seed", "seeds", "threads", "quick", "json", defaults={"threads": 2},
              helps={"data_dir": "folder holding ml-100k/ (default: ../shared/data)",
                     "seed": "seed of the train/test split (default 0)",
                     "seeds": "refits per method with the chosen setting (default 3)",
                     "threads": "threads for every library (default 2)",
                     "quick": "tiny grids (a smoke run, not the result)"})
    ap.add_argument("--methods", default="mf_bpr,twotower_bpr,implicit_bpr,implicit_als",
                    help="comma-separated subset of the methods")
    ap.add_argument("--out", default=None, help="where to write the results (default results/ml100k_quality.json)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from recsampling.bench.contenders import Ours, peer
    from recsampling.bench.measure import loadavg
    from recsampling.tasks import load_task

    torch.set_num_threads(args.threads)
    path = Path(args.data_dir) / "ml-100k"
    if not (path / "u.data").is_file():
        print(f"error: {path / 'u.data'} not found; pass --data-dir pointing at the folder holding ml-100k/",
              file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    known = ("mf_bpr", "twotower_bpr", "implicit_bpr", "implicit_als")
    bad = [m for m in methods if m not in known]
    if bad:
        ap.error(f"unknown method(s) {bad}; choose from {known}")

    kw = dict(data_dir=args.data_dir, seed=args.seed, metrics=("ndcg", "recall"), ks=(10,))
    final = load_task("ml-100k", **kw)  # rating >= 4, 80/20 per user, full ranking
    tuning = load_task("ml-100k", valid_fraction=0.2, valid_seed=args.seed + 1, **kw).validation_task()
    train, test = final.train, final.test

    # ------------------------------------------------------------------ one run of each method
    # run(cfg, task, seed, checkpoints) -> {epochs: metrics on the task's test set} at each checkpoint
    def fit(contender, params, task, seed, checkpoints, n_threads=args.threads):
        out = {}

        def on_checkpoint(step, model, sampler):
            if step in checkpoints:
                out[step] = task.figures(model, ["ndcg@10", "recall@10"], device="cpu")

        contender.fit(task.train, params, seed, n_threads=n_threads, on_checkpoint=on_checkpoint, checkpoint_every=1)
        return out

    def run_mf(cfg, task, seed, checkpoints):
        return fit(Ours("mf", "bpr"), dict(factors=cfg["factors"], epochs=max(checkpoints), optimizer="sgd",
                                           lr=cfg["lr"], l2=cfg["reg"] / 2, backend="fused"), task, seed, checkpoints)

    def run_tt(cfg, task, seed, checkpoints):
        return fit(Ours("twotower", "bpr"), dict(factors=cfg["factors"], model_params=dict(hidden=(128,)),
                                                 epochs=max(checkpoints), optimizer="adam", lr=cfg["lr"], l2=cfg["l2"],
                                                 batch_size=cfg["batch"]), task, seed, checkpoints, n_threads=None)

    def run_ibpr(cfg, task, seed, checkpoints):
        return fit(peer("implicit", "bpr"), dict(factors=cfg["factors"], learning_rate=cfg["lr"],
                                                 regularization=cfg["reg"], iterations=max(checkpoints)),
                   task, seed, checkpoints)

    def run_als(cfg, task, seed, checkpoints):
        return fit(peer("implicit", "als"), dict(factors=cfg["factors"], regularization=cfg["reg"], alpha=cfg["alpha"],
                                                 iterations=max(checkpoints)), task, seed, checkpoints)

    # the peers' grids (recsampling.bench.contenders.PEERS), under this script's names: "reg" is
    # implicit's per-step shrinkage, the same grid for our MF-BPR (l2 = reg / 2) and implicit BPR
    short = {"learning_rate": "lr", "regularization": "reg"}
    bpr_grid, als_grid = ({short.get(k, k): v for k, v in peer("implicit", m).grid().items()} for m in ("bpr", "als"))
    bpr_ck = (50, 100, 200, 300)
    als_ck = (5, 10, 15, 20, 30, 50)
    # the torch path is ~100x slower per sample than the fused kernel on this CPU: a small grid
    tt_grid = {"factors": [64], "lr": [0.005], "l2": [0.0, 1e-4], "batch": [1024]}
    tt_ck = (5, 10, 20)
    if args.quick:  # one point of each grid
        bpr_grid, bpr_ck = {"factors": [64], "lr": [0.05], "reg": [0.01]}, (20, 50)
        tt_grid, tt_ck = {**tt_grid, "l2": [0.0]}, (5, 10)
        als_grid, als_ck = {"factors": [64], "reg": [0.1], "alpha": [10.0]}, (15,)
    spec = {
        "mf_bpr": (run_mf, bpr_grid, bpr_ck),
        "twotower_bpr": (run_tt, tt_grid, tt_ck),
        "implicit_bpr": (run_ibpr, bpr_grid, bpr_ck),
        "implicit_als": (run_als, als_grid, als_ck),
    }

    results: dict = {}
    log = []
    for name in methods:
        run, grid, checkpoints = spec[name]
        t0 = time.perf_counter()
        sweep = []
        for values in itertools.product(*grid.values()):
            cfg = dict(zip(grid.keys(), values))
            got = run(cfg, tuning, args.seed, set(checkpoints))
            for ep, mets in sorted(got.items()):
                sweep.append({**cfg, "epochs": ep, "valid_ndcg@10": mets["ndcg@10"],
                              "valid_recall@10": mets["recall@10"]})
        best = max(sweep, key=lambda r: r["valid_ndcg@10"])
        cfg = {k: best[k] for k in grid}
        finals = [run(cfg, final, args.seed + 100 + s, {best["epochs"]})[best["epochs"]]
                  for s in range(args.seeds)]
        nd = np.array([f["ndcg@10"] for f in finals])
        rc = np.array([f["recall@10"] for f in finals])
        results[name] = {
            "ndcg@10": float(nd.mean()), "recall@10": float(rc.mean()),
            "ndcg@10_std": float(nd.std()), "recall@10_std": float(rc.std()),
            "per_seed": finals, "best": {**cfg, "epochs": best["epochs"]},
            "valid_ndcg@10": best["valid_ndcg@10"], "sweep": sweep,
            "seconds": time.perf_counter() - t0,
        }
        log.append(f"{name}: done in {time.perf_counter() - t0:.0f}s, best {cfg} epochs={best['epochs']}")
        print(log[-1], file=sys.stderr, flush=True)

    out = {
        "dataset": "ml-100k", "positive": "rating >= 4", "split": "random 80/20 per user",
        "split_seed": args.seed, "seeds": args.seeds, "threads": args.threads, "quick": args.quick,
        "n_users": int(train.n_users), "n_items": int(train.n_items), "train_interactions": int(train.nnz),
        "test_interactions": int(test.nnz), "load_avg": loadavg(),
        **{name: {k: v for k, v in r.items() if k != "sweep"} for name, r in results.items()},
    }
    if "mf_bpr" in results and "implicit_bpr" in results:
        out["mf_bpr_vs_implicit_bpr"] = {
            m: results["mf_bpr"][m] / results["implicit_bpr"][m] for m in ("ndcg@10", "recall@10")}
        out["mf_bpr_at_least_implicit_bpr"] = all(results["mf_bpr"][m] >= results["implicit_bpr"][m]
                                                   for m in ("ndcg@10", "recall@10"))
    path = write_results(result_path(__file__, "ml100k_quality", out=args.out),
                         {**out, "sweeps": {n: r["sweep"] for n, r in results.items()}})

    lines = [f"ML-100K, rating>=4, 80/20 per-user split (seed {args.seed}), test metrics: mean over "
             f"{args.seeds} refits of the setting chosen on validation", "",
             f"{'method':<14} {'NDCG@10':>16} {'Recall@10':>16}  best setting (chosen on validation)"]
    for name, r in results.items():
        lines.append(f"{name:<14} {r['ndcg@10']:>9.4f} ±{r['ndcg@10_std']:.4f} {r['recall@10']:>9.4f} "
                     f"±{r['recall@10_std']:.4f}  {r['best']}")
    if "mf_bpr_vs_implicit_bpr" in out:
        ratio = out["mf_bpr_vs_implicit_bpr"]
        lines.append(f"\nmf_bpr / implicit_bpr: NDCG@10 x{ratio['ndcg@10']:.3f}, Recall@10 x{ratio['recall@10']:.3f}")
    lines.append(f"(written to {path})")
    emit(out, "\n".join(lines), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
