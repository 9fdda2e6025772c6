"""Training throughput against ``implicit``'s CPU BPR, same run: MF-BPR, or every model + sampler.

Default mode (issue 4): MF-BPR (uniform, exact rejection), the implicit-like draw (popularity,
skip) and popularity with rejection, interleaved with implicit's CPU BPR. ``--samplers all`` (or a
comma list): every (model, sampler) pair of the suite's grid on a seeded 80/20 split with
``speed_settings.json``'s settings: samples/s, ratio, backend, NDCG@10, and a fused pair's torch
path beside it. What is timed and how: :mod:`recsampling.bench.speed`.

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

import numpy as np

from recsampling._utils import positive_int
from recsampling.bench.contenders import Ours, peer, speed_params
from recsampling.bench.flags import add_flags, check_threads, result_path, write_results
from recsampling.bench.measure import epoch_rate, loadavg, machine
from recsampling.bench.report import write_table
from recsampling.bench.speed import grid_pairs, movielens_pairs, ndcg_se, synthetic_ml1m
from recsampling.data.splits import random_split

ROOT = Path(__file__).resolve().parents[1]
#: the pairs' training settings (defaults, per-sampler overrides, the torch-only setting)
SETTINGS = json.loads((ROOT / "benchmarks" / "speed_settings.json").read_text())
IMPLICIT = peer("implicit", "bpr")


# ------------------------------------------------------------------------------------------- modes
def run_bpr(args, data, name) -> dict:
    """The MF-BPR headline and its two popularity variants, interleaved with implicit."""
    m = data.matrix
    variants = {"uniform_redraw": ("bpr", {}), "popularity_skip": ("popularity", {"alpha": 1.0, "collision": "skip"}),
                "popularity_redraw": ("popularity", {"alpha": 1.0})}
    # implicit's reg r decays by lr*r*p; ours by lr*2*l2*p
    cfg = dict(factors=args.factors, optimizer="sgd", lr=args.lr, l2=args.l2 / 2)
    imp_params = dict(factors=args.factors, iterations=args.epochs, learning_rate=args.lr, regularization=args.l2)
    IMPLICIT.fit(data, {**imp_params, "iterations": 1}, args.seed, n_threads=args.threads)  # warm-up
    Ours("mf", "bpr").fit(data, {**cfg, "epochs": 2}, args.seed, n_threads=args.threads)
    rates = {k: [] for k in variants}
    implicit_rates, results = [], {}
    for rep in range(args.repeats):
        imp = IMPLICIT.fit(data, imp_params, args.seed + rep, n_threads=args.threads)
        implicit_rates.append(imp.samples / imp.train_s)
        for key, (sampler, params) in variants.items():
            fit = Ours("mf", sampler).fit(data, {**cfg, "epochs": args.epochs + 1, "sampler_params": params},
                                          args.seed + rep, n_threads=args.threads)
            rates[key].append(epoch_rate(fit.history))
            results[key] = fit.result
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


def run_all(args, data, name, pairs) -> dict:
    """Every (model, sampler) pair on a seeded 80/20 split; speed, ratio, backend, NDCG@10."""
    split = random_split(data, test_fraction=0.2, random_state=args.seed)
    train, test = split.train, split.test
    m = train.matrix
    if not pairs:
        raise SystemExit(f"no pair matches --samplers {args.samplers} --models {args.models}")

    def implicit_rate(iterations=args.epochs):
        imp = IMPLICIT.fit(train, dict(factors=args.factors, iterations=iterations, learning_rate=0.05,
                                       regularization=0.001), args.seed, n_threads=args.threads)
        return imp, imp.samples / imp.train_s

    implicit_rate(1)  # warm-up
    imp, rate = implicit_rate()
    implicit_rates = [rate]
    imp_ndcg = ndcg_se(tuple(np.asarray(x) for x in imp.model), test, train)[0]
    out = {}
    print(f"{name} 80/20 split: train {m.shape[0]} x {m.shape[1]}, nnz {m.nnz:,}; factors {args.factors}, "
          f"threads {args.threads}, {args.epochs} epochs; implicit BPR {implicit_rates[0]:,.0f}/s, NDCG@10 {imp_ndcg:.4f}")
    print(f"{'pair':<22} {'backend':<7} {'samples/s':>11} {'ratio':>7} {'ndcg@10':>8} {'torch/s':>10} {'ndcg torch':>16}")
    for model_name, sampler in pairs:
        cfg = {**speed_params(model_name, sampler, train, SETTINGS), "factors": args.factors, "epochs": args.epochs}
        t0 = time.perf_counter()
        implicit_here = implicit_rate()[1]  # timed again right before each pair (a shared machine)
        implicit_rates.append(implicit_here)
        fit = Ours(model_name, sampler).fit(train, cfg, args.seed, n_threads=args.threads)
        rate, result = epoch_rate(fit.history), fit.result
        nd, se = ndcg_se(fit.model, test, train)
        row = {"samples_per_s": rate, "implicit_samples_per_s": implicit_here, "ratio": rate / implicit_here,
               "ndcg@10": nd, "ndcg@10_sem": se,
               "backend": result.backend, "optimizer": cfg["optimizer"], "lr": cfg["lr"], "l2": cfg["l2"],
               "batch_size": cfg["batch_size"], "loss_last": result.losses[-1]}
        if result.backend == "fused" and not args.no_torch:
            # the MF kernel steps per row (the torch path's batch 1; --torch-batch approximates it),
            # DLA's per batch of batch_size rows: its torch reference keeps that batch size
            tcfg = {**cfg, "batch_size": cfg["batch_size"] if sampler == "dla" else args.torch_batch, "backend": "torch"}
            tfit = Ours(model_name, sampler).fit(train, tcfg, args.seed, n_threads=args.threads)
            trate = epoch_rate(tfit.history)
            tnd, tse = ndcg_se(tfit.model, test, train)
            row.update({"torch_samples_per_s": trate, "torch_ratio": trate / implicit_here, "ndcg@10_torch": tnd,
                        "ndcg@10_torch_sem": tse, "torch_batch_size": tcfg["batch_size"],
                        "ndcg_within_2se": bool(abs(nd - tnd) <= 2 * float(np.hypot(se, tse)))})
        row["seconds"] = time.perf_counter() - t0
        key = f"{model_name}+{sampler}"
        out[key] = row
        torch_part = (f"{row['torch_samples_per_s']:>10,.0f} {row['ndcg@10_torch']:>8.4f}±{row['ndcg@10_torch_sem']:.4f}"
                      if "torch_samples_per_s" in row else f"{'-':>10} {'-':>16}")
        print(f"{key:<22} {row['backend']:<7} {rate:>11,.0f} {row['ratio']:>7.3f} {nd:>8.4f} {torch_part}", flush=True)
    return {"benchmark": "training_speed", "mode": "samplers", **machine(),
            "dataset": {"name": name, "split": "random 80/20 per user", "seed": args.seed, "n_users": m.shape[0],
                        "n_items": m.shape[1], "train_nnz": int(m.nnz), "test_nnz": int(test.nnz)},
            "factors": args.factors, "threads": args.threads, "epochs": args.epochs,
            "implicit_samples_per_s": float(np.median(implicit_rates)), "implicit_all": [round(r) for r in implicit_rates],
            "implicit_ndcg@10": float(imp_ndcg),
            "defaults": SETTINGS["defaults"], "overrides": SETTINGS["overrides"], "samplers": out}


# ------------------------------------------------------------------------------------------ output
def write_markdown(res: dict, mode: str, name: str) -> None:
    """The section ``name`` of RESULTS.md of a mode (``bpr`` or ``all``)."""
    d, path = res["dataset"], ROOT / "benchmarks" / "RESULTS.md"
    run = f"{res['factors']} factors, {res['threads']} threads, {res['epochs']}"
    machine_load = (f"{res['cpu']} ({res['cpu_count']} cores, shared; load {res['load_before']} -> "
                    f"{res['load_after']}). Measured {res['when']}.")
    if mode == "bpr":
        rows = [["implicit BPR (CPU)", "popularity (random nonzero), skip",
                 f"{res['implicit_samples_per_s']/1e6:.2f}M [{res['implicit_best']/1e6:.2f}M]", "1.00"]]
        for key, label in (("uniform_redraw", "uniform, exact rejection (headline)"),
                           ("popularity_skip", "popularity^1, skip (implicit's draw)"),
                           ("popularity_redraw", "popularity^1, exact rejection")):
            r = res["ours"][key]
            rows.append([f"recsampling Trainer ({res['backend']})", label, f"{r['median']/1e6:.2f}M "
                         f"[{r['best']/1e6:.2f}M]", f"{r['median']/res['implicit_samples_per_s']:.2f}"])
        write_table(path, name, "Training speed: fused MF-BPR vs implicit",
                    f"`python benchmarks/training_speed.py` on {d['name']} ({d['n_users']} x {d['n_items']}, "
                    f"{d['nnz']:,} interactions), {run} timed epochs x {res['repeats']} interleaved repeats (medians; "
                    f"best in brackets), {machine_load}", ["trainer", "negatives", "samples/s", "vs implicit"], rows,
                    f"Ratio (headline / implicit, same run): **{res['ratio']:.2f}** (per repeat: "
                    f"{', '.join(f'{r:.2f}' for r in res['ratio_per_repeat'])}).", left=2)
        return
    rows = [[key, r["backend"], f"{r['optimizer']}, {r['lr']:g}", f"{r['samples_per_s']/1e3:,.0f}k", f"{r['ratio']:.3f}",
             f"{r['ndcg@10']:.4f} ± {r['ndcg@10_sem']:.4f}",
             *([f"{r['torch_samples_per_s']/1e3:.0f}k (batch {r['torch_batch_size']})",
                f"{r['ndcg@10_torch']:.4f} ± {r['ndcg@10_torch_sem']:.4f}"] if "torch_samples_per_s" in r else ["-", "-"])]
            for key, r in res["samplers"].items()]
    write_table(path, name, f"Training speed of every model + sampler on {d['name']} (issue 14)",
                f"`python benchmarks/training_speed.py --samplers all` on {d['name']} (80/20 split, seed {d['seed']}; "
                f"train {d['train_nnz']:,} positives), {run} epochs per pair, {machine_load} implicit BPR, timed again "
                f"right before each pair (each ratio uses that figure): median "
                f"{res['implicit_samples_per_s']/1e6:.2f}M samples/s, NDCG@10 {res['implicit_ndcg@10']:.4f} "
                f"(lr 0.05, reg 0.001, same epochs).",
                ["pair", "backend", "optimizer, lr", "samples/s", "vs implicit", "NDCG@10", "torch path samples/s",
                 "torch NDCG@10"], rows,
                "± is the standard error over test users. The fused kernels step once per training positive; "
                "the torch path steps on batches of the size shown, with the same optimizer, lr and l2.", left=3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    pairs = None
    if args.samplers is not None:
        try:
            pairs = grid_pairs(args.models.split(","), None if args.samplers == "all" else args.samplers.split(","))
        except ValueError as e:
            p.error(str(e))
    name = "ML-1M pairs" if args.dataset == "ml-1m" else "ML-100K, rating >= 4"
    data = None if args.synthetic else movielens_pairs(args.data_dir, args.dataset)
    if data is None:
        data, name = synthetic_ml1m(args.seed), "synthetic ML-1M-shaped (seeded)"
    if args.quick:
        keep = data.matrix[: max(1, data.n_users // 10)]
        data = type(data).from_csr(keep[:, keep.getnnz(axis=0) > 0])
        name += " (--quick: a tenth of the users)"
        args.epochs, args.repeats = min(args.epochs or 2, 2), 1
    load_before = loadavg()
    mode = "bpr" if args.samplers is None else "all"
    args.epochs = args.epochs or (5 if mode == "bpr" else 3)
    res = run_bpr(args, data, name) if mode == "bpr" else run_all(args, data, name, pairs)
    res["load_before"], res["load_after"] = load_before, loadavg()
    if not args.no_write and not args.quick:
        stem = "_".join(x for x in ("training_speed", mode == "all" and "all",
                                    args.dataset != "ml-1m" and args.dataset.replace("-", "")) if x)
        write_results(result_path(__file__, stem), res, indent=2, newline=True)
        write_markdown(res, mode, stem)
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
