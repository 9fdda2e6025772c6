"""NBPO vs BPO vs uniform BPR on MovieLens (100K by default), MF, full ranking.

Protocol (the same for every method, as close to Yu & Qin's as the data allow)
------------------------------------------------------------------------------
- data: the release in ``--data-dir`` as :func:`recsampling.tasks.load_task` reads it;
  ratings >= ``--threshold`` (4) are the voted items (ML-1M here has pairs only: all are voted);
- split: 80/20 per user with each seed (``load_task``'s random split); a validation
  set (10% of each user's training items, ``valid_fraction=0.1``) drives early stopping on
  NDCG@10 (``--patience``), the test set is never looked at while training;
- model: ``MatrixFactorization`` (``--factors``), Adam, one lr and batch size for all methods; the
  L2 of each method is chosen from the ``--l2`` grid on the validation set;
  BPO / NBPO draw 4 uniform unvoted items per voted pair (the paper's sampling rate); NBPO uses
  the authors' surrogate update with the ``P_u · Q_i`` flip factorization;
- metrics: NDCG@10, Recall@10, Precision@10 over all items the user did not train on
  (:func:`recsampling.evaluation.evaluate`, users with test items), mean and standard error over
  seeds.

Results go to ``benchmarks/results/nbpo_<dataset>.json``; with ``--json`` the last stdout line is
the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from recsampling.bench.contenders import Ours, fit_l2_grid
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench.report import mean_se_by
from recsampling.tasks import load_task

METRICS = ("ndcg", "recall", "precision")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "ml-1m"])
    add_flags(p, "data_dir", "seeds", "threads", "json")
    p.add_argument("--threshold", type=float, default=4.0, help="rating threshold of a voted item")
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--epochs", type=int, default=40, help="maximum epochs")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--l2", type=float, nargs="+", default=[1e-3, 1e-2, 1e-1],
                   help="L2 grid; each method takes the value with the best validation NDCG@10")
    p.add_argument("--flip-l2", type=float, default=None, help="NBPO flip_l2 (default: NBPOSampler's)")
    p.add_argument("--methods", nargs="+", default=["bpr", "bpo", "nbpo"],
                   choices=["bpr", "bpo", "nbpo", "nbpo_const"],
                   help="nbpo_const: NBPO with a fixed flip rate of 0.5 (flip='constant'), the ablation")
    p.add_argument("--out", default=None, help="default: benchmarks/results/nbpo_<dataset>.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    nbpo = {"n_negatives": 4} if args.flip_l2 is None else {"n_negatives": 4, "flip_l2": args.flip_l2}
    params = {"bpr": ("bpr", {}), "bpo": ("bpo", {"n_negatives": 4}), "nbpo": ("nbpo", nbpo),
              "nbpo_const": ("nbpo", {"n_negatives": 4, "flip": "constant", "flip_init": 0.5})}
    runs: dict[str, list[dict]] = {m: [] for m in args.methods}
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        # 80/20 per user, then 10% of each user's training part for early stopping and the choice of L2
        task = load_task(args.dataset, data_dir=args.data_dir, seed=seed, threshold=args.threshold, valid_fraction=0.1,
                         metrics=METRICS, ks=(10,))
        for name in args.methods:
            t0 = time.perf_counter()
            done, l2, valid_ndcg = fit_l2_grid(Ours("mf", params[name][0]), task.train, dict(
                factors=args.factors, sampler_params=params[name][1], epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, patience=args.patience, metric="ndcg@10"), args.l2, seed, valid=task.valid)
            model, fit = done.model, done.result
            res = task.evaluate(model, device="cpu").to_dict()
            row = {f"{m}@10": float(res[f"{m}@10"]) for m in METRICS}
            row.update(fit_s=time.perf_counter() - t0, best_epoch=fit.best_epoch, l2=l2, valid_ndcg=valid_ndcg)
            runs[name].append(row)
            if not args.json:
                print(f"seed {seed} {name:5s} ndcg@10 {row['ndcg@10']:.4f} recall@10 {row['recall@10']:.4f} "
                      f"(best epoch {fit.best_epoch}, {row['fit_s']:.0f}s)", file=sys.stderr)

    summary: dict = mean_se_by(runs, suffix="_sem", always=True)
    if "nbpo" in summary and "bpo" in summary:
        summary["nbpo_vs_bpo_ndcg@10"] = summary["nbpo"]["ndcg@10"] / summary["bpo"]["ndcg@10"]
    if "nbpo" in summary and "bpr" in summary:
        summary["nbpo_vs_bpr_ndcg@10"] = summary["nbpo"]["ndcg@10"] / summary["bpr"]["ndcg@10"]
    result = {"dataset": args.dataset, "results": summary, "runs": runs, "wall_s": time.perf_counter() - t_start,
              "config": {k: v for k, v in vars(args).items() if k not in ("json", "out")},
              "data": {"users": task.train.n_users, "items": task.train.n_items,
                       "interactions": task.known.nnz + task.test.nnz}}
    out = write_results(result_path(__file__, "nbpo", args.dataset, out=args.out), result)
    if args.json:
        print(json.dumps({k: result[k] for k in ("dataset", "results", "wall_s", "data")}))
    else:
        for name in args.methods:
            s = summary[name]
            print(f"{name:5s} " + "  ".join(f"{m}@10 {s[m + '@10']:.4f}±{s[m + '@10_sem']:.4f}" for m in METRICS))
        print(f"wall {result['wall_s']:.0f}s; written to {out}")
    return result


if __name__ == "__main__":
    main()
