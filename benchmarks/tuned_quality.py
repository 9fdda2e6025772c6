"""Every contender tuned with the same Optuna budget, then refitted and tested (issue 19).

    python benchmarks/tuned_quality.py --json --dataset ml-100k --data-dir ../shared/data --trials 20
    python benchmarks/tuned_quality.py --json --dataset ml-1m --data-dir ../shared/data --trials 6 \
        --contenders mf+bpr,mf+dns,mf+nbpo,implicit+als,implicit+bpr,implicit+itemknn,popularity

The question: tuned with the same budget, does the best of our MF samplers reach ``implicit``'s
ALS? For a data set the script takes a seeded 80/20 split per user (:func:`recsampling.tasks.load_task`)
and carves a validation split out of the training part (20% of each user's training positives,
:meth:`~recsampling.tasks.Task.validation_task`). Every contender then gets one Optuna study of
``--trials`` trials (TPE seeded by ``--seed``, median pruning on the validation NDCG@10 at each
checkpoint), fitted on the reduced training part and scored on the validation part:

- ours, each ``MODEL+SAMPLER`` of ``samplers_for(MODEL)`` (``--model``, default ``mf``; samplers
  added to the registry join on their own): :func:`recsampling.tuning.run_study` with
  :func:`recsampling.tuning.search_space` (``lr``, ``l2``, ``factors`` and the sampler's knobs),
  ``--epochs`` epochs with ``--optimizer`` (the fused CPU kernels run ``sgd`` and ``adagrad``);
- the peers, each with its space of :data:`recsampling.bench.contenders.PEERS`: ``implicit+als``
  (``factors``, ``regularization``, ``alpha``, up to 50 iterations), ``implicit+bpr``
  (``factors``, ``learning_rate``, ``regularization``, up to 200 iterations, 100 on ML-1M),
  ``implicit+itemknn`` (``K`` and the similarity, cosine or BM25);
- ``popularity``: no parameter, no trial.

The number of epochs / iterations is each trial's best checkpoint on validation (its ``epochs`` or
``iterations`` in ``best_params``). Each contender's best parameters are then refitted on the whole
training part for ``--seeds`` seeds and scored on the test split: mean and standard error over the
seeds. With ``--json`` the last stdout line is one JSON object: per contender (``contenders``)
``ndcg@10`` and ``recall@10`` (``{"mean", "se"}``), ``best_params``, ``valid_ndcg@10`` and
``trials`` (run, complete, pruned); at the top level ``best_ours_mf`` and ``implicit_als``
(``{"name", "ndcg@10": {"mean", "se"}}``) and ``target_met``. Also written to ``--out``.
"""

from __future__ import annotations

import os

# implicit wants a one-thread BLAS; OpenBLAS reads this only when numpy loads it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

FIGURES = ("ndcg@10", "recall@10")
#: the peers by their names here -> their (library, method) in :data:`recsampling.bench.contenders.PEERS`
PEERS = {"implicit+als": ("implicit", "als"), "implicit+bpr": ("implicit", "bpr"),
         "implicit+itemknn": ("implicit", "itemknn"), "popularity": ("baseline", "most_popular")}
#: the tiny synthetic world of --quick
QUICK_WORLD = dict(n_users=120, n_items=150, target_interactions=3000, n_logged_lists=0)


def _peer(name: str):
    from recsampling.bench.contenders import peer

    return peer(*PEERS[name])


def _tune_peer(name: str, valid_task, n_trials: int, seed: int, threads: int, quick: bool, big: bool):
    """:func:`recsampling.bench.contenders.tune_peer` of a peer, at most 4 iterations a trial with
    ``--quick`` and 100 on ML-1M; ``(best_params, best_value, study)``."""
    from recsampling.bench.contenders import tune_peer

    contender = _peer(name)
    cap = contender.max_iterations
    if cap is not None:
        cap = 4 if quick else min(cap, 100) if big else cap
    return tune_peer(contender, valid_task, n_trials, seed, n_threads=threads, max_iterations=cap)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from recsampling._utils import positive_int
    from recsampling.bench.flags import add_flags, emit, result_path, write_results

    ap.add_argument("--dataset", default="ml-100k", choices=("ml-100k", "ml-1m", "synthetic"))
    ap.add_argument("--trials", type=positive_int, default=20, help="Optuna trials per contender (default 20)")
    add_flags(ap, "data_dir", "seeds", "seed", "threads", "quick", "json",
              defaults={"threads": 2},
              helps={"data_dir": "folder holding ml-100k/ and ml-1m/ (default ../shared/data)",
                     "seeds": "refits of the best parameters (default 3)",
                     "seed": "seeds the split and the TPE samplers (default 0)",
                     "threads": "threads of every library (default 2)",
                     "quick": "a tiny synthetic world, few epochs (a smoke run)"})
    ap.add_argument("--epochs", type=positive_int, default=None,
                    help="most epochs of a trial of ours (default 50 on ML-100K, 20 on ML-1M, 2 with --quick)")
    ap.add_argument("--optimizer", default="adagrad", help="of our models (default adagrad: a fused CPU kernel)")
    ap.add_argument("--model", default="mf", help="comma-separated models of ours (default mf; e.g. mf,twotower)")
    ap.add_argument("--contenders", default=None,
                    help="comma-separated subset, e.g. mf+bpr,mf+dns,implicit+als,popularity (default all)")
    ap.add_argument("--out", default=None, help="where to write the JSON (default results/tuned_quality_DATASET.json)")
    args = ap.parse_args(argv)

    import optuna
    import torch

    from recsampling.bench.contenders import refit_ours, trial_counts, tune_ours, tuning_tasks
    from recsampling.bench.measure import loadavg, machine
    from recsampling.samplers import samplers_for
    from recsampling.bench.report import mean_and_se

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = "synthetic" if args.quick else args.dataset
    ours = [f"{m}+{s}" for m in args.model.split(",") if m.strip() for s in samplers_for(m.strip())]
    known = ours + list(PEERS)
    names = known if args.contenders is None else [c.strip() for c in args.contenders.split(",") if c.strip()]
    bad = [c for c in names if c not in known]
    if bad or not names:
        ap.error(f"unknown contender(s) {bad}; choose some of {known}")
    big = dataset == "ml-1m"
    epochs = args.epochs or (2 if args.quick else 20 if big else 50)
    fit = dict(epochs=epochs, optimizer=args.optimizer, batch_size=4096 if big else 1024, device="cpu",
               n_threads=args.threads)

    where = dict(world=QUICK_WORLD) if dataset == "synthetic" else dict(data_dir=args.data_dir)
    try:  # 80/20 per user (ML-100K: rating >= 4), full ranking; 20% of the training part for validation
        final, valid_task = tuning_tasks(dataset, args.seed, metrics=("ndcg", "recall"), ks=(10,), **where)
    except FileNotFoundError as e:
        print(f"error: {e}; pass --data-dir pointing at the folder holding {dataset}/", file=sys.stderr)
        return 2
    load_start = loadavg()
    seeds = [args.seed + 100 + s for s in range(args.seeds)]

    path = result_path(__file__, "tuned_quality", dataset, out=args.out)
    results = {}

    def headline(name):
        return {"name": name, "ndcg@10": results[name]["ndcg@10"]} if name in results else None

    def summary() -> dict:
        mf = [n for n in results if n.startswith("mf+")]
        best_mf = max(mf, key=lambda n: results[n]["ndcg@10"]["mean"]) if mf else None
        out = {"dataset": dataset,
               "split": "random 80/20 per user" + (", rating >= 4" if dataset == "ml-100k" else ""),
               "validation": "20% of each user's training positives", "split_seed": args.seed,
               "trials": args.trials, "seeds": seeds, "epochs": epochs, "optimizer": args.optimizer,
               "threads": args.threads, "quick": args.quick, **final.describe(), "load_avg_start": load_start,
               "load_avg_end": loadavg(), "date": machine()["when"],
               "finished": len(results) == len(names), "contenders": results,
               "best_ours_mf": headline(best_mf) if best_mf else None, "implicit_als": headline("implicit+als")}
        if best_mf and "implicit+als" in results:
            out["target_met"] = bool(results[best_mf]["ndcg@10"]["mean"] >= results["implicit+als"]["ndcg@10"]["mean"])
        return out

    for name in names:
        t0 = time.perf_counter()
        if name in PEERS:
            params, value, study = _tune_peer(name, valid_task, args.trials, args.seed, args.threads, args.quick, big)
            runs = [final.figures(_peer(name).fit(final.train, params, s, n_threads=args.threads).model, FIGURES,
                                  device="cpu") for s in seeds]
        else:
            params, value, study = tune_ours(*name.split("+"), valid_task, args.trials, args.seed, **fit)
            runs = [final.figures(refit_ours(*name.split("+"), params, final.train, s, **fit), FIGURES, device="cpu")
                    for s in seeds]
        ms = mean_and_se(runs, single=0.0)
        results[name] = {**{f: ms[f] for f in FIGURES}, "best_params": params,
                         "valid_ndcg@10": value, "trials": trial_counts(study), "per_seed": runs,
                         "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{name}: test NDCG@10 {ms['ndcg@10']['mean']:.4f} ± {ms['ndcg@10']['se']:.4f} (valid {value:.4f}, "
              f"{results[name]['trials']}, {results[name]['seconds']:.0f}s) {params}", file=sys.stderr, flush=True)
        out = summary()
        write_results(path, out, default=float)  # after each contender: a killed run keeps them

    lines = [f"{dataset}: test NDCG@10 / Recall@10, mean ± s.e. over {len(seeds)} refits of the parameters "
             f"tuned with {args.trials} trials each", "",
             f"{'contender':<18} {'NDCG@10':>17} {'Recall@10':>17}  {'valid':>6}  trials  best parameters"]
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["ndcg@10"]["mean"]):
        t = r["trials"]
        lines.append(f"{name:<18} {r['ndcg@10']['mean']:>8.4f} ± {r['ndcg@10']['se']:.4f} "
                     f"{r['recall@10']['mean']:>8.4f} ± {r['recall@10']['se']:.4f}  {r['valid_ndcg@10']:.4f}  "
                     f"{t['complete']}/{t['run']}  {r['best_params']}")
    lines.append(f"(written to {path})")
    emit(out, "\n".join(lines), args.json, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
