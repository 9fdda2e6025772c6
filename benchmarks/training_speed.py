"""Training throughput against ``implicit``'s CPU BPR, same run: MF-BPR, or every model + sampler.

What is timed
-------------
- ``implicit``: ``implicit.cpu.bpr.BayesianPersonalizedRanking(factors=F, iterations=E,
  num_threads=T).fit(matrix)``, wall time of the whole call (the ``peer("implicit", "bpr")``
  contender of :mod:`recsampling.bench.contenders`, BLAS held at one thread). implicit counts
  nnz samples per iteration (random nonzeros drawn with replacement; a negative the user liked
  is skipped), so ``samples = nnz * E``.
- ours: ``Trainer.fit`` with ``backend="auto"`` (the fused kernel when
  :func:`recsampling.fast.find_kernel` has one, else the torch loop); samples per second of an
  epoch is training positives processed / its wall time (``TrainResult.history``), the median
  over the epochs after the first (the first pays for numba's compile when its disk cache is
  cold, and for the kernel's binding).

Default mode (issue 4): MF + uniform BPR with exact rejection (headline), the implicit-like draw
(popularity, skip) and popularity with rejection, ``--repeats`` times interleaved with implicit;
the JSON has ``ratio``, ``ours_samples_per_s`` and ``implicit_samples_per_s``.

``--samplers all`` (or a comma list): every (model, sampler) pair of the suite's grid on a seeded
80/20 split of the data, each trained for the same ``--epochs`` with the settings of
``benchmarks/speed_settings.json``, with its samples/s, its ratio to implicit's samples/s on the
same training matrix, its backend and NDCG@10 on the test part (so that speed cannot hide a
broken loss); implicit is timed again right before each pair and
the pair's ratio uses that figure. A pair on the fused kernel is also trained on the
torch path with the same optimizer, lr and l2 (``--torch-batch`` rows per step): its NDCG@10
and standard error (``ndcg@10_torch``, ``ndcg@10_torch_sem``) and samples/s (``torch_samples_per_s``)
sit beside it. The JSON's ``samplers`` maps ``"<model>+<sampler>"`` to those figures.

On ML-1M pairs the two-tower model has no side features: it is MF-shaped (its vectors are its
ID embeddings) and takes the MF kernel; its torch-path figures are the ``torch_*`` keys.

The machine is shared: the load average before and after is recorded with the figures.

Usage::

    python benchmarks/training_speed.py                          # MF-BPR table
    python benchmarks/training_speed.py --samplers all --json    # every pair; last line JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = {"bpr": ("<!-- training_speed:begin -->", "<!-- training_speed:end -->"),
         "all": ("<!-- training_speed_all:begin -->", "<!-- training_speed_all:end -->"),
         "bpr-ml-100k": ("<!-- training_speed_ml100k:begin -->", "<!-- training_speed_ml100k:end -->"),
         "all-ml-100k": ("<!-- training_speed_all_ml100k:begin -->", "<!-- training_speed_all_ml100k:end -->")}

#: the pairs' training settings (defaults, per-sampler overrides, the torch-only setting)
SETTINGS = json.loads((ROOT / "benchmarks" / "speed_settings.json").read_text())


# ------------------------------------------------------------------------------------------- data
def load_movielens(data_dir: Path, dataset: str):
    """ML-1M's (user, item) pairs, or ML-100K with ratings >= 4 (and its user / item side features),
    as Interactions; None when the data set is absent."""
    from recsampling.data import read_movielens

    folder = data_dir / dataset
    if not (folder / ("u.data" if dataset == "ml-100k" else "pairs.csv.gz")).is_file():
        return None
    if dataset == "ml-100k":
        return read_movielens(folder).to_implicit(4.0)
    return read_movielens(folder, features=False)  # the pairs only, as the issue's figures


def synthetic_ml1m(seed: int = 0, n_users: int = 6040, n_items: int = 3706, nnz: int = 1_000_209):
    """A seeded long-tail matrix of ML-1M's shape: lognormal user activity, Zipf-like item popularity."""
    import numpy as np
    import scipy.sparse as sp

    from recsampling.data import Interactions

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    draws = int(nnz * 1.6)
    u = rng.choice(n_users, draws, p=activity / activity.sum())
    i = rng.choice(n_items, draws, p=popularity / popularity.sum())
    key = np.unique(u.astype(np.int64) * n_items + i)
    key = rng.permutation(key)[:nnz]
    m = sp.csr_matrix((np.ones(key.size, np.float32), (key // n_items, key % n_items)), shape=(n_users, n_items))
    return Interactions.from_csr(m)


# ------------------------------------------------------------------------------------------ timing
def implicit_bpr(train, factors, threads, epochs, lr, l2, seed):
    """implicit's CPU BPR for ``epochs`` iterations (:mod:`recsampling.bench.contenders`): its Fit."""
    from recsampling.bench.contenders import peer

    return peer("implicit", "bpr").fit(train, dict(factors=factors, iterations=epochs, learning_rate=lr,
                                                   regularization=l2), seed, n_threads=threads)


def fit_pair(train, model_name, sampler, params, *, seed, threads):
    """Train one pair (:class:`recsampling.bench.contenders.Ours`); returns (Fit, samples/s)."""
    from recsampling.bench.contenders import Ours
    from recsampling.bench.measure import epoch_rate

    fit = Ours(model_name, sampler).fit(train, params, seed, n_threads=threads)
    return fit, epoch_rate(fit.history)


def ndcg(model, test, train) -> tuple[float, float]:
    """NDCG@10 and its standard error over users (full ranking, training items excluded)."""
    from recsampling.evaluation import evaluate

    r = evaluate(model, test, train=train, ks=(10,), metrics=("ndcg",), device="cpu").to_dict()
    return float(r["ndcg@10"]), float(r.get("ndcg@10_sem", float("nan")))


# ------------------------------------------------------------------------------------------- modes
def run_bpr(args, data, name) -> dict:
    """The MF-BPR headline and its two popularity variants, interleaved with implicit."""
    import numpy as np

    m = data.matrix
    variants = {"uniform_redraw": ("bpr", {}), "popularity_skip": ("popularity", {"alpha": 1.0, "collision": "skip"}),
                "popularity_redraw": ("popularity", {"alpha": 1.0})}
    # implicit's reg r decays by lr*r*p; ours by lr*2*l2*p
    cfg = dict(factors=args.factors, optimizer="sgd", lr=args.lr, l2=args.l2 / 2)
    implicit_bpr(data, args.factors, args.threads, 1, args.lr, args.l2, args.seed)  # warm-up
    fit_pair(data, "mf", "bpr", {**cfg, "epochs": 2}, seed=args.seed, threads=args.threads)
    rates = {k: [] for k in variants}
    implicit_rates, results = [], {}
    for rep in range(args.repeats):
        imp = implicit_bpr(data, args.factors, args.threads, args.epochs, args.lr, args.l2, args.seed + rep)
        implicit_rates.append(imp.samples / imp.train_s)
        for key, (sampler, params) in variants.items():
            fit, rate = fit_pair(data, "mf", sampler, {**cfg, "epochs": args.epochs + 1, "sampler_params": params},
                                 seed=args.seed + rep, threads=args.threads)
            rates[key].append(rate)
            results[key] = fit.result
    from recsampling.bench.measure import machine

    res = {"benchmark": "training_speed", **machine(),
           "dataset": {"name": name, "n_users": m.shape[0], "n_items": m.shape[1], "nnz": int(m.nnz)},
           "factors": args.factors, "threads": args.threads, "epochs": args.epochs, "repeats": args.repeats,
           "lr": args.lr, "l2": args.l2, "backend": results["uniform_redraw"].backend,
           "ours_samples_per_s": float(np.median(rates["uniform_redraw"])),
           "implicit_samples_per_s": float(np.median(implicit_rates)),
           "implicit_best": float(max(implicit_rates)), "implicit_all": [round(r) for r in implicit_rates],
           "ours": {k: {"median": float(np.median(v)), "best": float(max(v)), "all": [round(r) for r in v]}
                    for k, v in rates.items()},
           "loss_first": results["uniform_redraw"].losses[0], "loss_last": results["uniform_redraw"].losses[-1]}
    res["ratio"] = res["ours_samples_per_s"] / res["implicit_samples_per_s"]
    res["ratio_per_repeat"] = [round(o / i, 3) for o, i in zip(rates["uniform_redraw"], implicit_rates)]
    res["ratio_popularity_skip"] = res["ours"]["popularity_skip"]["median"] / res["implicit_samples_per_s"]
    print(f"{name}: {m.shape[0]} x {m.shape[1]}, nnz {m.nnz:,}; factors {args.factors}, threads {args.threads}, "
          f"{args.epochs} epochs x {args.repeats} repeats")
    print(f"{'trainer':<18} {'negatives':<22} {'median/s':>12} {'best/s':>12} {'vs implicit':>12}")
    print(f"{'implicit BPR':<18} {'popularity, skip':<22} {res['implicit_samples_per_s']:>12,.0f} "
          f"{res['implicit_best']:>12,.0f} {1.0:>12.2f}")
    for k, v in res["ours"].items():
        print(f"{'ours ' + res['backend']:<18} {k.replace('_', ', '):<22} {v['median']:>12,.0f} {v['best']:>12,.0f} "
              f"{v['median'] / res['implicit_samples_per_s']:>12.2f}")
    return res


def run_all(args, data, name) -> dict:
    """Every (model, sampler) pair on a seeded 80/20 split; speed, ratio, backend, NDCG@10."""
    import numpy as np

    from recsampling.data.splits import random_split
    from recsampling.suite import grid

    split = random_split(data, test_fraction=0.2, random_state=args.seed)
    train, test = split.train, split.test
    m = train.matrix
    wanted = None if args.samplers == "all" else set(args.samplers.split(","))
    models = [x for x in args.models.split(",")]
    g = grid()
    pairs = [(mo, s) for mo in models for s in g[mo] if wanted is None or s in wanted]
    if not pairs:
        raise SystemExit(f"no pair matches --samplers {args.samplers} --models {args.models}")
    implicit_bpr(train, args.factors, args.threads, 1, 0.05, 0.001, args.seed)  # warm-up
    imp = implicit_bpr(train, args.factors, args.threads, args.epochs, 0.05, 0.001, args.seed)
    implicit_rates = [imp.samples / imp.train_s]
    imp_ndcg = ndcg(tuple(np.asarray(x) for x in imp.model), test, train)[0]
    out = {}
    print(f"{name} 80/20 split: train {m.shape[0]} x {m.shape[1]}, nnz {m.nnz:,}; factors {args.factors}, "
          f"threads {args.threads}, {args.epochs} epochs; implicit BPR {implicit_rates[0]:,.0f}/s, NDCG@10 {imp_ndcg:.4f}")
    print(f"{'pair':<22} {'backend':<7} {'samples/s':>11} {'ratio':>7} {'ndcg@10':>8} {'torch/s':>10} {'ndcg torch':>16}")
    from recsampling.bench.contenders import speed_params

    for model_name, sampler in pairs:
        cfg = speed_params(model_name, sampler, train, SETTINGS)
        t0 = time.perf_counter()
        # implicit is timed again right before each pair: on a shared machine one figure taken at
        # the start would skew the ratios of later pairs
        imp = implicit_bpr(train, args.factors, args.threads, args.epochs, 0.05, 0.001, args.seed)
        implicit_here = imp.samples / imp.train_s
        implicit_rates.append(implicit_here)
        fit, rate = fit_pair(train, model_name, sampler, {**cfg, "factors": args.factors, "epochs": args.epochs},
                             seed=args.seed, threads=args.threads)
        result = fit.result
        nd, se = ndcg(fit.model, test, train)
        row = {"samples_per_s": rate, "implicit_samples_per_s": implicit_here, "ratio": rate / implicit_here,
               "ndcg@10": nd, "ndcg@10_sem": se,
               "backend": result.backend, "optimizer": cfg["optimizer"], "lr": cfg["lr"], "l2": cfg["l2"],
               "batch_size": cfg["batch_size"], "loss_last": result.losses[-1]}
        if result.backend == "fused" and not args.no_torch:
            # the MF kernel steps per row (the torch path's batch 1; --torch-batch approximates it),
            # DLA's per batch of batch_size rows: its torch reference keeps that batch size
            tcfg = {**cfg, "batch_size": cfg["batch_size"] if sampler == "dla" else args.torch_batch}
            tfit, trate = fit_pair(train, model_name, sampler, {**tcfg, "factors": args.factors, "epochs": args.epochs,
                                                                "backend": "torch"}, seed=args.seed, threads=args.threads)
            tnd, tse = ndcg(tfit.model, test, train)
            row.update({"torch_samples_per_s": trate, "torch_ratio": trate / implicit_here, "ndcg@10_torch": tnd,
                        "ndcg@10_torch_sem": tse, "torch_batch_size": tcfg["batch_size"],
                        "ndcg_within_2se": bool(abs(nd - tnd) <= 2 * float(np.hypot(se, tse)))})
        row["seconds"] = time.perf_counter() - t0
        key = f"{model_name}+{sampler}"
        out[key] = row
        torch_part = (f"{row['torch_samples_per_s']:>10,.0f} {row['ndcg@10_torch']:>8.4f}±{row['ndcg@10_torch_sem']:.4f}"
                      if "torch_samples_per_s" in row else f"{'-':>10} {'-':>16}")
        print(f"{key:<22} {row['backend']:<7} {rate:>11,.0f} {row['ratio']:>7.3f} {nd:>8.4f} {torch_part}", flush=True)
    from recsampling.bench.measure import machine

    return {"benchmark": "training_speed", "mode": "samplers", **machine(),
            "dataset": {"name": name, "split": "random 80/20 per user", "seed": args.seed, "n_users": m.shape[0],
                        "n_items": m.shape[1], "train_nnz": int(m.nnz), "test_nnz": int(test.nnz)},
            "factors": args.factors, "threads": args.threads, "epochs": args.epochs,
            "implicit_samples_per_s": float(np.median(implicit_rates)), "implicit_all": [round(r) for r in implicit_rates],
            "implicit_ndcg@10": float(imp_ndcg),
            "defaults": SETTINGS["defaults"], "overrides": SETTINGS["overrides"], "samplers": out}


# ------------------------------------------------------------------------------------------ output
def write_markdown(res: dict, mode: str) -> None:
    begin, end = MARKS[mode]
    d = res["dataset"]
    if mode.startswith("bpr"):
        lines = [begin, "## Training speed: fused MF-BPR vs implicit",
                 "",
                 f"`python benchmarks/training_speed.py` on {d['name']} ({d['n_users']} x {d['n_items']}, "
                 f"{d['nnz']:,} interactions), {res['factors']} factors, {res['threads']} threads, {res['epochs']} timed "
                 f"epochs x {res['repeats']} interleaved repeats (medians; best in brackets), {res['cpu']} "
                 f"({res['cpu_count']} cores, shared; load {res['load_before']} -> {res['load_after']}). Measured "
                 f"{res['when']}.",
                 "",
                 "| trainer | negatives | samples/s | vs implicit |", "|---|---|---:|---:|",
                 f"| implicit BPR (CPU) | popularity (random nonzero), skip | {res['implicit_samples_per_s']/1e6:.2f}M "
                 f"[{res['implicit_best']/1e6:.2f}M] | 1.00 |"]
        for key, label in (("uniform_redraw", "uniform, exact rejection (headline)"),
                           ("popularity_skip", "popularity^1, skip (implicit's draw)"),
                           ("popularity_redraw", "popularity^1, exact rejection")):
            r = res["ours"][key]
            lines.append(f"| recsampling Trainer ({res['backend']}) | {label} | {r['median']/1e6:.2f}M "
                         f"[{r['best']/1e6:.2f}M] | {r['median']/res['implicit_samples_per_s']:.2f} |")
        lines += ["", f"Ratio (headline / implicit, same run): **{res['ratio']:.2f}** (per repeat: "
                  f"{', '.join(f'{r:.2f}' for r in res['ratio_per_repeat'])}).", end]
    else:
        lines = [begin, f"## Training speed of every model + sampler on {d['name']} (issue 14)", "",
                 f"`python benchmarks/training_speed.py --samplers all` on {d['name']} (80/20 split, seed {d['seed']}; "
                 f"train {d['train_nnz']:,} positives), {res['factors']} factors, {res['threads']} threads, "
                 f"{res['epochs']} epochs per pair, {res['cpu']} ({res['cpu_count']} cores, shared; load "
                 f"{res['load_before']} -> {res['load_after']}). Measured {res['when']}. implicit BPR, timed again "
                 f"right before each pair (each ratio uses that figure): median "
                 f"{res['implicit_samples_per_s']/1e6:.2f}M samples/s, NDCG@10 {res['implicit_ndcg@10']:.4f} "
                 f"(lr 0.05, reg 0.001, same epochs).",
                 "",
                 "| pair | backend | optimizer, lr | samples/s | vs implicit | NDCG@10 | torch path samples/s | "
                 "torch NDCG@10 |", "|---|---|---|---:|---:|---:|---:|---:|"]
        for key, r in res["samplers"].items():
            tp = (f"{r['torch_samples_per_s']/1e3:.0f}k (batch {r['torch_batch_size']}) | "
                  f"{r['ndcg@10_torch']:.4f} ± {r['ndcg@10_torch_sem']:.4f}" if "torch_samples_per_s" in r else "- | -")
            lines.append(f"| {key} | {r['backend']} | {r['optimizer']}, {r['lr']:g} | {r['samples_per_s']/1e3:,.0f}k | "
                         f"{r['ratio']:.3f} | {r['ndcg@10']:.4f} ± {r['ndcg@10_sem']:.4f} | {tp} |")
        lines += ["", "± is the standard error over test users. The fused kernels step once per training positive; "
                  "the torch path steps on batches of the size shown, with the same optimizer, lr and l2.", end]
    from recsampling.bench.report import write_section

    write_section(ROOT / "benchmarks" / "RESULTS.md", lines, begin, end)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from recsampling._utils import positive_int
    from recsampling.bench.flags import add_flags, check_threads, result_path, write_results

    add_flags(p, "data_dir", "threads", "quick", "seed", "no_write", "json", defaults={"threads": 2},
              helps={"data_dir": "folder holding ml-1m/pairs.csv.gz (a seeded synthetic matrix of ML-1M's shape "
                                 "otherwise)",
                     "threads": "threads (both libraries)",
                     "quick": "smoke run: a tenth of the users, 2 epochs, 1 repeat (figures not comparable)",
                     "seed": "seed of data, models and draws",
                     "no_write": "do not write results/ or RESULTS.md (--quick never does)"})
    p.add_argument("--dataset", choices=["ml-1m", "ml-100k"], default="ml-1m",
                   help="ML-1M pairs, or ML-100K with ratings >= 4 (its side features reach the two-tower model)")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic matrix even if the data set is present")
    p.add_argument("--samplers", default=None,
                   help="'all' or a comma list: time every (model, sampler) pair of the suite's grid instead of MF-BPR")
    p.add_argument("--models", default="mf,twotower", help="with --samplers: comma list of models")
    p.add_argument("--factors", type=positive_int, default=64, help="latent factors (both libraries)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs per fit (default 5 for MF-BPR, 3 per pair with --samplers)")
    p.add_argument("--repeats", type=positive_int, default=3, help="MF-BPR mode: interleaved repeats (medians)")
    p.add_argument("--lr", type=float, default=0.05, help="MF-BPR mode: SGD learning rate (both)")
    p.add_argument("--l2", type=float, default=0.001, help="MF-BPR mode: implicit's regularization (ours: half, same decay)")
    p.add_argument("--torch-batch", type=positive_int, default=256,
                   help="with --samplers: batch size of the torch-path reference of each fused pair")
    p.add_argument("--no-torch", action="store_true", help="with --samplers: skip the torch-path references")
    args = p.parse_args(argv)
    check_threads(p, args.threads)
    import torch

    torch.set_num_threads(args.threads)
    if args.samplers is not None:
        from recsampling.models import MODELS
        from recsampling.suite import grid

        g = grid()
        bad = [mo for mo in args.models.split(",") if mo not in MODELS]
        known = {s for mo in MODELS for s in g.get(mo, ())}
        bad += [s for s in ([] if args.samplers == "all" else args.samplers.split(",")) if s not in known]
        if bad:
            p.error(f"unknown model or sampler {bad}; models: {', '.join(MODELS)}; samplers: all or some of "
                    f"{sorted(known)}")
    label = "ML-1M pairs" if args.dataset == "ml-1m" else "ML-100K, rating >= 4"
    data = None if args.synthetic else load_movielens(Path(args.data_dir), args.dataset)
    name = label if data is not None else "synthetic ML-1M-shaped (seeded)"
    if data is None:
        data = synthetic_ml1m(args.seed)
    if args.quick:
        keep = data.matrix[: max(1, data.n_users // 10)]
        data = type(data).from_csr(keep[:, keep.getnnz(axis=0) > 0])
        name += " (--quick: a tenth of the users)"
        args.epochs, args.repeats = min(args.epochs or 2, 2), 1
    from recsampling.bench.measure import loadavg

    load_before = loadavg()
    mode = "bpr" if args.samplers is None else "all"
    args.epochs = args.epochs or (5 if mode == "bpr" else 3)
    res = run_bpr(args, data, name) if mode == "bpr" else run_all(args, data, name)
    res["load_before"], res["load_after"] = load_before, loadavg()
    if not args.no_write and not args.quick:
        write_results(result_path(__file__, "training_speed", mode == "all" and "all",
                                  args.dataset != "ml-1m" and args.dataset.replace("-", "")), res, indent=2, newline=True)
        write_markdown(res, mode if args.dataset == "ml-1m" else f"{mode}-{args.dataset}")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
