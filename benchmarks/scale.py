"""Scale (issue 15): a 20M-interaction world on one machine, with each step's time and peak memory.

For each world size ``N`` (``--interactions N``; by default 1M, 5M and 20M) the script builds a
world of the MovieLens-20M shape scaled in users: ``round(138,493 · N / 20M)`` users (all of
ML-20M's 138,493 at 20M), 26,744 items, ``N`` expected clicks, and :func:`make_world`'s defaults
otherwise (20 logged lists per user, 16 randomized test items per user, 16 + 16 side features).
Each step then runs in a fresh subprocess of this script (``--step``), so that its peak resident
memory (``ru_maxrss`` of that process: interpreter, torch and numba included) is its own; the
world is saved once to a temporary ``.npz`` (the clicks' CSR, their propensities, the features).

Steps
-----
- ``build``: ``make_world(...)`` (wall time of the call; peak memory of the process).
- ``mf+bpr``, ``mf+nbpo``, ``mf+relmf``, ``mf+ubpr``, ``twotower+bpr``: one epoch, i.e.
  ``Trainer(epochs=1, backend="auto", n_threads=T).fit`` on all the clicks, timed as the whole
  call (sampler preparation included; ``kernel_epoch_s`` is the epoch loop alone) after a warm-up
  fit on 2% of the users in the same process (numba's cached kernels load, thread pools start).
  Settings are ``benchmarks/speed_settings.json``'s, those of ``training_speed.py --samplers``
  (SGD lr 0.05, one negative per positive, the per-sampler overrides; 64 factors). The two-tower model uses the world's side features, so it
  takes the torch path (Adam, batches of 4096; ``backend`` says what ran); that path trains on a
  uniform sample of ``--torch-sample`` clicks (the same batches, fewer of them) and its time is
  scaled to all clicks, labelled ``"extrapolated": true``.
- ``implicit+bpr`` (the baseline) and ``implicit+als``: ``implicit.cpu.bpr.BayesianPersonalized
  Ranking`` / ``implicit.cpu.als.AlternatingLeastSquares`` with ``factors=64, iterations=1,
  num_threads=T``, the whole ``fit`` call after the same warm-up. On a shared machine one figure
  would skew later ratios, so implicit's BPR is timed again right before each of the steps above
  and ``ratio_vs_implicit_bpr`` (our epoch / implicit's, lower is better) uses that adjacent figure.
- ``topk``: :func:`recsampling.scoring.topk` (k = 10, every user, the clicks excluded) on MF-BPR's
  trained factors, on T threads; ``implicit+recommend``: implicit's ``recommend(all users, clicks,
  N=10, filter_already_liked_items=True)`` on the same factors and ``num_threads=T`` (its faster
  of numpy's BLAS at 1 and at T threads). ``topk_speedup_vs_implicit`` is implicit's time / ours.

Targets (issue 15, at 20M): the build under 2 minutes and 8 GiB; every MF sampler's epoch at most
1.5x implicit BPR's; top-k at least 2x faster than implicit's ``recommend``; no step of ours above
3 GiB.

Output: a table per size; ``--json`` prints one JSON object as the last line, with the largest
size's ``build_s``, ``build_peak_gib``, ``topk_speedup_vs_implicit`` and ``steps`` at the top
level and every size under ``sizes``. Without ``--quick`` / ``--no-write`` the figures are merged
by size into ``benchmarks/results/scale.json`` and the ``scale`` section of ``benchmarks/RESULTS.md``.

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
MARKS = ("<!-- scale:begin -->", "<!-- scale:end -->")
ML20M_USERS, ML20M_ITEMS, ML20M_NNZ = 138_493, 26_744, 20_000_000
SIZES = (1_000_000, 5_000_000, 20_000_000)
QUICK = dict(n_users=600, n_items=400, interactions=12_000)
FACTORS = 64
K = 10
#: (model, sampler) of the training steps, in the order they run
OURS = (("mf", "bpr"), ("mf", "nbpo"), ("mf", "relmf"), ("mf", "ubpr"), ("twotower", "bpr"))


# ------------------------------------------------------------------------------------ the steps
def _load(path: Path):
    """The clicks saved by the build step, as Interactions (CSR, propensities, side features)."""
    import numpy as np
    import scipy.sparse as sp

    from recsampling.data import Interactions

    z = np.load(path)
    m = sp.csr_matrix((np.ones(z["indices"].size, np.float32), z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return Interactions.from_csr(m, propensities=z["propensities"], user_features=z["user_features"],
                                 item_features=z["item_features"])


def _head(data, share: float = 0.02):
    """The first ``share`` of the users (at least 50), every item: the warm-up data."""
    import numpy as np

    return data.take(np.arange(min(data.n_users, max(50, int(data.n_users * share)))))


def step_build(args) -> dict:
    import numba
    import numpy as np

    from recsampling.data.synthetic import make_world

    numba.set_num_threads(args.threads)
    t = time.perf_counter()
    world = make_world(args.n_users, args.n_items, args.interactions, random_state=args.seed)
    build_s = time.perf_counter() - t
    c = world.clicks
    np.savez(Path(args.dir) / "world.npz", indptr=c.matrix.indptr, indices=c.matrix.indices, shape=np.array(c.shape),
             propensities=c.propensities, user_features=c.user_features, item_features=c.item_features)
    return {"build_s": build_s, "clicks": int(c.nnz), "logged_lists": world.logs.n_lists,
            "test_items_per_user": int(world.unbiased_test_items.shape[1])}


def step_implicit(args, which: str) -> dict:
    """One epoch (``iterations=1``) of implicit's BPR or ALS, after a warm-up on the head."""
    import warnings

    from recsampling.bench.contenders import peer

    warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
    data = _load(Path(args.dir) / "world.npz")
    contender = peer("implicit", which)
    params = dict(factors=FACTORS, iterations=1)
    if which == "bpr":
        params.update(learning_rate=0.05, regularization=0.001)
    contender.fit(_head(data), params, args.seed, n_threads=args.threads)
    return {"epoch_s": contender.fit(data, params, args.seed, n_threads=args.threads).train_s,
            "backend": "implicit.cpu"}


def step_ours(args, model_name: str, sampler: str) -> dict:
    """One epoch of a (model, sampler) pair through the Trainer, after a warm-up fit on the head."""
    import numpy as np

    from recsampling.bench.contenders import Ours, speed_params
    from recsampling.bench.measure import epoch_rate

    data = _load(Path(args.dir) / "world.npz")
    pair = Ours(model_name, sampler)
    params = {**speed_params(model_name, sampler, _head(data), SETTINGS), "factors": FACTORS, "epochs": 1}
    warm = pair.fit(_head(data), params, args.seed, n_threads=args.threads)
    timed = data
    if warm.result.backend == "torch" and 0 < args.torch_sample < data.nnz:  # the same batches, fewer of them
        keep = np.zeros(data.nnz, dtype=bool)  # a uniform sample of the clicks (same users, items, features)
        keep[np.random.default_rng(args.seed).choice(data.nnz, size=args.torch_sample, replace=False)] = True
        timed = data.subset(keep)
    t = time.perf_counter()
    fit = pair.fit(timed, params, args.seed, n_threads=args.threads)
    seconds = time.perf_counter() - t
    result = fit.result
    if model_name == "mf" and sampler == "bpr":  # the factors the top-k steps rank with
        U, V = (np.ascontiguousarray(x, dtype=np.float32) for x in fit.model.embedding_tables())
        np.savez(Path(args.dir) / "factors.npz", U=U, V=V)
    scale = data.nnz / timed.nnz
    return {"epoch_s": seconds * scale, "kernel_epoch_s": float(result.history[0]["time"]) * scale,
            "samples_per_s": epoch_rate(result.history), "timed_clicks": int(timed.nnz),
            "extrapolated": timed is not data, "backend": result.backend, "optimizer": params["optimizer"],
            "lr": params["lr"], "loss": float(result.losses[-1])}


def step_topk(args, who: str) -> dict:
    """Top-10 of every user, the clicks excluded: ours (``topk``) or implicit's ``recommend``."""
    import numpy as np

    data = _load(Path(args.dir) / "world.npz")
    f = np.load(Path(args.dir) / "factors.npz")
    U, V = f["U"], f["V"]
    seen = data.matrix
    head = np.arange(min(1000, U.shape[0]))
    if who == "ours":
        import torch

        from recsampling.scoring import topk

        torch.set_num_threads(args.threads)
        topk(U, V, K, exclude=seen, users=head)  # warm-up
        t = time.perf_counter()
        ids, _ = topk(U, V, K, exclude=seen)
        seconds = time.perf_counter() - t
        out = {"topk_s": seconds, "backend": "recsampling.scoring.topk (cpu)"}
    else:
        import warnings

        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
        model = AlternatingLeastSquares(factors=U.shape[1], num_threads=args.threads, random_state=0)
        model.user_factors, model.item_factors = U, V
        users = np.arange(U.shape[0])
        matrix = seen.copy()
        model.recommend(head, matrix[head], N=K, filter_already_liked_items=True)  # warm-up
        by_blas = {}
        for blas in sorted({1, args.threads}):  # implicit's advice is 1; keep its faster setting
            with threadpool_limits(limits=blas, user_api="blas"):
                t = time.perf_counter()
                ids, _ = model.recommend(users, matrix, N=K, filter_already_liked_items=True)
                by_blas[str(blas)] = time.perf_counter() - t
        best = min(by_blas, key=by_blas.get)
        out = {"topk_s": by_blas[best], "blas_threads": int(best), "by_blas_threads_s": by_blas,
               "backend": "implicit.cpu recommend"}
    np.save(Path(args.dir) / f"ids_{who}.npy", np.asarray(ids))
    return out


def run_step(args) -> int:
    from recsampling.bench.measure import peak_rss_gib

    name = args.step
    if name == "build":
        out = step_build(args)
    elif name in ("implicit+bpr", "implicit+als"):
        out = step_implicit(args, name.split("+")[1])
    elif name in ("topk", "implicit+recommend"):
        out = step_topk(args, "ours" if name == "topk" else "implicit")
    else:
        out = step_ours(args, *name.split("+"))
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


def shape_for(interactions: int) -> dict:
    """ML-20M's shape scaled in users: the catalogue stays, the users shrink with the clicks."""
    return {"n_users": max(1, round(ML20M_USERS * interactions / ML20M_NNZ)), "n_items": ML20M_ITEMS,
            "interactions": interactions}


def run_size(args, size: dict) -> dict:
    import numpy as np

    from recsampling.bench.measure import loadavg, machine

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
        a = np.sort(np.load(Path(workdir) / "ids_ours.npy"), axis=1)
        b = np.sort(np.load(Path(workdir) / "ids_implicit.npy"), axis=1)
        steps["topk"], steps["implicit+recommend"] = ours, theirs
    res["topk_s"], res["implicit_recommend_s"] = ours["topk_s"], theirs["topk_s"]
    res["topk_speedup_vs_implicit"] = theirs["topk_s"] / ours["topk_s"]
    res["topk_same_lists_as_implicit"] = float(np.mean(np.all(a == b, axis=1)))
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
    from recsampling.bench.report import write_section

    begin, end = MARKS

    def row(label, cell) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in sizes.values()) + " |"

    def epoch(key):
        def cell(r):
            st = r["steps"][key]
            mark = ", extrapolated" if st.get("extrapolated") else ""
            return f"{st['epoch_s']:.1f} ({st['ratio_vs_implicit_bpr']:.2f}; {st['peak_gib']:.2f}{mark})"
        return cell

    backends = {k: v["backend"] for k, v in next(reversed(sizes.values()))["steps"].items()}
    lines = [begin, "## Scale: a 20M-interaction world on one machine (issue 15)", "",
             "`python benchmarks/scale.py` (one size: `--interactions N`). A world of ML-20M's shape scaled in users "
             "(26,744 items; all 138,493 users at 20M), `make_world`'s defaults otherwise; every step in a fresh "
             "process, its peak resident memory (interpreter, torch and numba included) its own. An epoch is the "
             "whole `fit` call for one epoch after a warm-up (64 factors, SGD lr 0.05, one negative per positive); "
             "implicit's BPR is timed again right before each step and the ratio (ours / implicit BPR, lower is "
             "better) uses that figure. Top-k: k = 10 for every user with the clicks excluded, `topk` vs implicit's "
             "`recommend` on MF-BPR's trained factors.", "",
             "| | " + " | ".join(f"{int(n):,} clicks" for n in sizes) + " |",
             "|---|" + "---:|" * len(sizes),
             row("users x items", lambda r: f"{r['n_users']:,} x {r['n_items']:,}"),
             row("build s (peak GiB)", lambda r: f"{r['build_s']:.1f} ({r['build_peak_gib']:.2f})"),
             row("implicit BPR epoch s: median (all)", lambda r: f"{r['steps']['implicit+bpr']['epoch_s']:.1f} ("
                 + ", ".join(f"{x:.1f}" for x in r["steps"]["implicit+bpr"]["all_s"]) + ")")]
    for key in [f"{m}+{s}" for m, s in OURS] + ["implicit+als"]:
        lines.append(row(f"{key} ({backends[key]}) epoch s (ratio; peak GiB)", epoch(key)))
    lines += [row("top-k s: ours / implicit recommend (speedup)", lambda r: f"{r['topk_s']:.2f} / "
                  f"{r['implicit_recommend_s']:.2f} ({r['topk_speedup_vs_implicit']:.2f}x)"),
              row("top-k peak GiB: ours / implicit", lambda r: f"{r['steps']['topk']['peak_gib']:.2f} / "
                  f"{r['steps']['implicit+recommend']['peak_gib']:.2f}"),
              row("largest peak of our steps GiB", lambda r: f"{r['max_step_peak_gib']:.2f}"),
              row("targets missed", lambda r: ", ".join(k for k, ok in r["targets"].items() if not ok) or "none"),
              row("threads; load before -> after",
                  lambda r: f"{r['threads']}; {r['load_before']} -> {r['load_after']}"),
              row("measured", lambda r: r["when"]),
              "", "Targets at 20M: build < 2 min and < 8 GiB; each MF epoch <= 1.5x implicit BPR's; top-k >= 2x "
              "implicit's recommend; no step of ours above 3 GiB. The two-tower model uses the world's side "
              "features (torch path); where marked, its epoch was timed on a uniform sample of the clicks "
              "(`--torch-sample`: " + ", ".join(f"{r['torch_sample']:,}" for r in sizes.values()) + ") and scaled.",
              end]
    write_section(ROOT / "benchmarks" / "RESULTS.md", lines, begin, end)


def main(argv=None) -> int:
    from recsampling._utils import positive_int
    from recsampling.bench.flags import add_flags, check_threads

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
    if args.quick:
        sizes = [{"n_users": QUICK["n_users"], "n_items": QUICK["n_items"], "interactions": QUICK["interactions"]}]
    else:
        sizes = [shape_for(n) for n in ([args.interactions] if args.interactions else SIZES)]
    by_size = {}
    for size in sizes:
        by_size[str(size["interactions"])] = run_size(args, size)
    if not args.quick and not args.no_write:
        merge_results(by_size)
    last = by_size[str(sizes[-1]["interactions"])]
    if args.json:
        print(json.dumps({**last, "sizes": by_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
