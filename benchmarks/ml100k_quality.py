"""MovieLens 100K quality: our MF-BPR and two-tower BPR against ``implicit``'s BPR and ALS, one split.

Issue 4, "Speed and quality": on ML-100K (rating >= 4 positive, 80/20 per-user holdout) our
MF-BPR must reach at least ``implicit``'s BPR NDCG@10 and Recall@10 at its best settings. Every
method's setting is chosen by a grid on a validation split (:func:`recsampling.bench.contenders.grid_search`,
where the protocol is), then refitted with ``--seeds`` seeds and tested:

- ``mf_bpr``: MF + the ``"bpr"`` sampler, SGD on the fused numba path (``l2 = reg / 2``: the grid of
  ``implicit_bpr``);
- ``twotower_bpr``: ``TwoTower`` with the ML-100K user and item features plus IDs, Adam, torch path;
- ``implicit_bpr``, ``implicit_als``: ``implicit``'s BPR (negatives drawn by popularity, collisions
  skipped) and ALS on the grids of :data:`recsampling.bench.contenders.PEERS`
  (``benchmarks/tuned_quality.py`` tunes every contender with the same Optuna budget instead).

Usage::

    python benchmarks/ml100k_quality.py --data-dir ../shared/data           # table
    python benchmarks/ml100k_quality.py --json --data-dir ../shared/data    # last line: JSON
"""

from __future__ import annotations

import argparse
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

    from recsampling.bench.contenders import Ours, checkpoint_figures, grid_search, peer, tuning_tasks
    from recsampling.bench.measure import loadavg

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

    final, tuning = tuning_tasks("ml-100k", args.seed, data_dir=args.data_dir, metrics=("ndcg", "recall"), ks=(10,))
    train, test = final.train, final.test

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
    # method -> (contender, its parameters at a grid point c fitted for n steps, threads, grid, checkpoints)
    spec = {
        "mf_bpr": (Ours("mf", "bpr"), lambda c, n: dict(factors=c["factors"], epochs=n, optimizer="sgd", lr=c["lr"],
                                                        l2=c["reg"] / 2, backend="fused"),
                   args.threads, bpr_grid, bpr_ck),
        "twotower_bpr": (Ours("twotower", "bpr"), lambda c, n: dict(
            factors=c["factors"], model_params=dict(hidden=(128,)), epochs=n, optimizer="adam", lr=c["lr"], l2=c["l2"],
            batch_size=c["batch"]), None, tt_grid, tt_ck),
        "implicit_bpr": (peer("implicit", "bpr"), lambda c, n: dict(
            factors=c["factors"], learning_rate=c["lr"], regularization=c["reg"], iterations=n),
            args.threads, bpr_grid, bpr_ck),
        "implicit_als": (peer("implicit", "als"), lambda c, n: dict(
            factors=c["factors"], regularization=c["reg"], alpha=c["alpha"], iterations=n),
            args.threads, als_grid, als_ck),
    }

    results: dict = {}
    for name in methods:
        contender, params, threads, grid, checkpoints = spec[name]
        t0 = time.perf_counter()
        best, sweep = grid_search(contender, params, grid, checkpoints, tuning, args.seed, n_threads=threads)
        cfg, ep = {k: best[k] for k in grid}, best["epochs"]
        finals = [checkpoint_figures(contender, params(cfg, ep), final, args.seed + 100 + s, {ep},
                                     n_threads=threads)[ep] for s in range(args.seeds)]
        nd = np.array([f["ndcg@10"] for f in finals])
        rc = np.array([f["recall@10"] for f in finals])
        results[name] = {
            "ndcg@10": float(nd.mean()), "recall@10": float(rc.mean()),
            "ndcg@10_std": float(nd.std()), "recall@10_std": float(rc.std()),
            "per_seed": finals, "best": {**cfg, "epochs": ep},
            "valid_ndcg@10": best["valid_ndcg@10"], "sweep": sweep,
            "seconds": time.perf_counter() - t0,
        }
        print(f"{name}: done in {time.perf_counter() - t0:.0f}s, best {cfg} epochs={ep}", file=sys.stderr, flush=True)

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
