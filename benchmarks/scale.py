"""Scale (issue 15): a 20M-interaction world on one machine, with each step's time and peak memory.

For each world size (``--interactions N``; by default 1M, 5M and 20M) a world of ML-20M's shape
scaled in users; each step (the build, one epoch of each pair and of implicit's BPR and ALS, top-10
of every user, ours and implicit's) in a fresh process with its own peak memory; the ratios use
implicit's figures of the same run. The steps, settings and targets: :mod:`recsampling.bench.speed`.
``--json``'s last line: the largest size's figures, every size under ``sizes``; without ``--quick`` /
``--no-write`` they are merged by size into ``results/scale.json`` and RESULTS.md's ``scale`` section.

Usage::

    python benchmarks/scale.py                                   # 1M, 5M, 20M
    python benchmarks/scale.py --json --interactions 20000000    # one size
    python benchmarks/scale.py --quick --json                    # smoke run: a tiny world, seconds per step
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the pairs' training settings, those of ``benchmarks/training_speed.py --samplers``
SETTINGS = json.loads((ROOT / "benchmarks" / "speed_settings.json").read_text())
SIZES = (1_000_000, 5_000_000, 20_000_000)
QUICK = dict(n_users=600, n_items=400, interactions=12_000)
FACTORS = 64
K = 10
#: implicit BPR's settings beside ``factors`` and ``iterations`` (its ALS keeps its defaults)
BPR = dict(learning_rate=0.05, regularization=0.001)
#: (model, sampler) of the training steps, in the order they run
OURS = (("mf", "bpr"), ("mf", "nbpo"), ("mf", "relmf"), ("mf", "ubpr"), ("twotower", "bpr"))


# ------------------------------------------------------------------------------------ the steps
def run_step(args) -> int:
    """One step in this (child) process (:mod:`recsampling.bench.speed`); its figures as a JSON line."""
    import numpy as np

    from recsampling.bench import speed
    from recsampling.bench.measure import peak_rss_gib

    name, folder = args.step, Path(args.dir)
    if name == "build":
        out = speed.build_world(args.n_users, args.n_items, args.interactions, args.seed, args.threads,
                                folder / "world.npz")
    elif name in ("implicit+bpr", "implicit+als"):
        which = name.split("+")[1]
        params = dict(factors=FACTORS, iterations=1, **(BPR if which == "bpr" else {}))
        out = speed.peer_epoch(speed.load_clicks(folder / "world.npz"), which, params, args.seed, args.threads)
    elif name in ("topk", "implicit+recommend"):
        f = np.load(folder / "factors.npz")
        out, ids = speed.topk_time(f["U"], f["V"], speed.load_clicks(folder / "world.npz").matrix, K, args.threads,
                                   implicit=name != "topk")
        np.save(folder / f"ids_{'ours' if name == 'topk' else 'implicit'}.npy", ids)
    else:
        from recsampling.bench.contenders import speed_params

        model, sampler = name.split("+")
        data = speed.load_clicks(folder / "world.npz")
        params = {**speed_params(model, sampler, speed.head(data), SETTINGS), "factors": FACTORS, "epochs": 1}
        out = speed.pair_epoch(data, model, sampler, params, args.seed, args.threads, args.torch_sample,
                               folder / "factors.npz" if (model, sampler) == ("mf", "bpr") else None)
    out["peak_gib"] = peak_rss_gib()
    print(json.dumps(out))
    return 0


# ------------------------------------------------------------------------------------ the driver
def _child(args, step: str, workdir: str, size: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step, "--dir", workdir,
           "--threads", str(args.threads), "--seed", str(args.seed), "--n-users", str(size["n_users"]),
           "--n-items", str(size["n_items"]), "--interactions", str(size["interactions"]),
           "--torch-sample", str(args.torch_sample)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t
    return out


def run_size(args, size: dict) -> dict:
    import numpy as np

    from recsampling.bench.measure import loadavg, machine
    from recsampling.bench.speed import same_lists

    res: dict = {"benchmark": "scale", **machine(), "threads": args.threads, "seed": args.seed, "factors": FACTORS,
                 "torch_sample": args.torch_sample, **size, "load_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="recsampling-scale-") as workdir:
        build = _child(args, "build", workdir, size)
        res.update(build_s=build["build_s"], build_peak_gib=build["peak_gib"], clicks=build["clicks"])
        print(f"{size['n_users']:,} users x {size['n_items']:,} items, {build['clicks']:,} clicks: built in "
              f"{build['build_s']:.1f} s, peak {build['peak_gib']:.2f} GiB", flush=True)
        steps: dict = {}
        baselines = []
        for key in [f"{m}+{s}" for m, s in OURS] + ["implicit+als"]:
            if not baselines or not args.quick:  # --quick: implicit's BPR once
                baselines.append(_child(args, "implicit+bpr", workdir, size))
            base = baselines[-1]
            row = _child(args, key, workdir, size)
            row["implicit_bpr_epoch_s"] = base["epoch_s"]
            row["ratio_vs_implicit_bpr"] = row["epoch_s"] / base["epoch_s"]
            steps[key] = row
            print(f"  {key:<16} {row['backend']:<14} epoch {row['epoch_s']:8.2f} s  implicit BPR "
                  f"{base['epoch_s']:8.2f} s  ratio {row['ratio_vs_implicit_bpr']:5.2f}  "
                  f"peak {row['peak_gib']:.2f} GiB", flush=True)
        times = [b["epoch_s"] for b in baselines]
        steps["implicit+bpr"] = {"epoch_s": float(np.median(times)), "all_s": times, "ratio_vs_implicit_bpr": 1.0,
                                 "peak_gib": max(b["peak_gib"] for b in baselines), "backend": "implicit.cpu"}
        ours = _child(args, "topk", workdir, size)
        theirs = _child(args, "implicit+recommend", workdir, size)
        same = same_lists(np.load(Path(workdir) / "ids_ours.npy"), np.load(Path(workdir) / "ids_implicit.npy"))
        steps["topk"], steps["implicit+recommend"] = ours, theirs
    res["topk_s"], res["implicit_recommend_s"] = ours["topk_s"], theirs["topk_s"]
    res["topk_speedup_vs_implicit"] = theirs["topk_s"] / ours["topk_s"]
    res["topk_same_lists_as_implicit"] = same
    res["steps"] = steps
    res["load_after"] = loadavg()
    ours_steps = [k for k in steps if not k.startswith("implicit")]
    res["max_step_peak_gib"] = max(steps[k]["peak_gib"] for k in ours_steps)
    mf = [steps[f"mf+{s}"]["ratio_vs_implicit_bpr"] for m, s in OURS if m == "mf"]
    res["targets"] = {"build_under_120s": res["build_s"] < 120, "build_under_8gib": res["build_peak_gib"] < 8,
                      "mf_epochs_at_most_1.5x_implicit_bpr": max(mf) <= 1.5,
                      "topk_at_least_2x_implicit": res["topk_speedup_vs_implicit"] >= 2,
                      "our_steps_under_3gib": res["max_step_peak_gib"] < 3}
    print(f"  top-k (k={K}, all users): ours {ours['topk_s']:.2f} s, implicit recommend {theirs['topk_s']:.2f} s: "
          f"{res['topk_speedup_vs_implicit']:.2f}x (same lists for {res['topk_same_lists_as_implicit']:.1%} of users); "
          f"peaks {ours['peak_gib']:.2f} / {theirs['peak_gib']:.2f} GiB", flush=True)
    return res


# ------------------------------------------------------------------------------------ output
def merge_results(by_size: dict) -> None:
    """Merge ``by_size`` into ``results/scale.json`` (by size) and rewrite RESULTS.md's section."""
    from recsampling.bench.flags import result_path, write_results

    path = result_path(__file__, "scale")
    old = json.loads(path.read_text()).get("sizes", {}) if path.exists() else {}
    old.update(by_size)
    sizes = dict(sorted(old.items(), key=lambda kv: int(kv[0])))
    write_results(path, {"benchmark": "scale", "sizes": sizes}, indent=2, newline=True)
    write_markdown(sizes)


def write_markdown(sizes: dict) -> None:
    """The ``scale`` section of RESULTS.md: one column per world size, one row per step."""
    from recsampling.bench.report import write_table

    def row(label, cell) -> list:
        return [label, *map(cell, sizes.values())]

    def epoch(key):
        def cell(r):
            st = r["steps"][key]
            mark = ", extrapolated" if st.get("extrapolated") else ""
            return f"{st['epoch_s']:.1f} ({st['ratio_vs_implicit_bpr']:.2f}; {st['peak_gib']:.2f}{mark})"
        return cell

    backends = {k: v["backend"] for k, v in next(reversed(sizes.values()))["steps"].items()}
    rows = [row("users x items", lambda r: f"{r['n_users']:,} x {r['n_items']:,}"),
            row("build s (peak GiB)", lambda r: f"{r['build_s']:.1f} ({r['build_peak_gib']:.2f})"),
            row("implicit BPR epoch s: median (all)", lambda r: f"{r['steps']['implicit+bpr']['epoch_s']:.1f} ("
                + ", ".join(f"{x:.1f}" for x in r["steps"]["implicit+bpr"]["all_s"]) + ")")]
    rows += [row(f"{key} ({backends[key]}) epoch s (ratio; peak GiB)", epoch(key))
             for key in [f"{m}+{s}" for m, s in OURS] + ["implicit+als"]]
    rows += [row("top-k s: ours / implicit recommend (speedup)", lambda r: f"{r['topk_s']:.2f} / "
                 f"{r['implicit_recommend_s']:.2f} ({r['topk_speedup_vs_implicit']:.2f}x)"),
             row("top-k peak GiB: ours / implicit", lambda r: f"{r['steps']['topk']['peak_gib']:.2f} / "
                 f"{r['steps']['implicit+recommend']['peak_gib']:.2f}"),
             row("largest peak of our steps GiB", lambda r: f"{r['max_step_peak_gib']:.2f}"),
             row("targets missed", lambda r: ", ".join(k for k, ok in r["targets"].items() if not ok) or "none"),
             row("threads; load before -> after", lambda r: f"{r['threads']}; {r['load_before']} -> {r['load_after']}"),
             row("measured", lambda r: r["when"])]
    write_table(ROOT / "benchmarks" / "RESULTS.md", "scale", "Scale: a 20M-interaction world on one machine (issue 15)",
                "`python benchmarks/scale.py` (one size: `--interactions N`). A world of ML-20M's shape scaled in users "
                "(26,744 items; all 138,493 users at 20M), `make_world`'s defaults otherwise; every step in a fresh "
                "process, its peak resident memory (interpreter, torch and numba included) its own. An epoch is the "
                "whole `fit` call for one epoch after a warm-up (64 factors, SGD lr 0.05, one negative per positive); "
                "implicit's BPR is timed again right before each step and the ratio (ours / implicit BPR, lower is "
                "better) uses that figure. Top-k: k = 10 for every user with the clicks excluded, `topk` vs implicit's "
                "`recommend` on MF-BPR's trained factors.", ["", *(f"{int(n):,} clicks" for n in sizes)], rows,
                "Targets at 20M: build < 2 min and < 8 GiB; each MF epoch <= 1.5x implicit BPR's; top-k >= 2x "
                "implicit's recommend; no step of ours above 3 GiB. The two-tower model uses the world's side "
                "features (torch path); where marked, its epoch was timed on a uniform sample of the clicks "
                "(`--torch-sample`: " + ", ".join(f"{r['torch_sample']:,}" for r in sizes.values()) + ") and scaled.")


def main(argv=None) -> int:
    from recsampling._utils import positive_int
    from recsampling.bench.flags import add_flags, check_threads
    from recsampling.bench.speed import ml20m_shape

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interactions", type=positive_int, default=None,
                   help="one world size (expected clicks); default: 1M, 5M and 20M")
    p.add_argument("--torch-sample", type=int, default=1_000_000,
                   help="a step on the torch path (the feature two-tower) trains one epoch on a uniform sample of "
                        "this many clicks and its time is scaled to all of them (labelled 'extrapolated'); "
                        "0: the whole epoch")
    add_flags(p, "threads", "seed", "quick", "no_write", "json", defaults={"threads": os.cpu_count() or 1},
              helps={"threads": "threads of every library (ours and implicit); default: all cores",
                     "seed": "seed of the world, the models and the draws",
                     "quick": f"smoke run: a {QUICK['n_users']} x {QUICK['n_items']} world, implicit BPR timed "
                              "once (figures not comparable; writes nothing)",
                     "no_write": "do not write results/scale.json or RESULTS.md"})
    # internal: one step in this (child) process
    p.add_argument("--step", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--n-users", type=int, help=argparse.SUPPRESS)
    p.add_argument("--n-items", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.torch_sample < 0:
        p.error(f"--torch-sample must be >= 0 (0: the whole epoch), got {args.torch_sample}")
    if args.step is not None:
        return run_step(args)
    check_threads(p, args.threads)
    sizes = [dict(QUICK)] if args.quick else [ml20m_shape(n) for n in ([args.interactions] if args.interactions else SIZES)]
    by_size = {str(size["interactions"]): run_size(args, size) for size in sizes}
    if not args.quick and not args.no_write:
        merge_results(by_size)
    last = by_size[str(sizes[-1]["interactions"])]
    if args.json:
        print(json.dumps({**last, "sizes": by_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
