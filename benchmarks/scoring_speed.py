"""Top-k scoring speed: recsampling.scoring.topk vs implicit's recommend vs the bare matrix product.

On seeded random factors of ML-1M's shape and a realistic exclusion matrix, one run times ours
(``topk``), implicit's ``recommend`` and the bare ``U @ V.T`` on the same factors and threads
(best and median of repeats; ratios of the medians); ``--large`` adds 100k users x 200k items with
the peak memory. The data and the contenders: :mod:`recsampling.bench.speed`.

Examples
--------
    python benchmarks/scoring_speed.py
    python benchmarks/scoring_speed.py --json
    python benchmarks/scoring_speed.py --large --large-users 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from recsampling._utils import positive_int
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench.measure import best_and_median, cpu_model, peak_rss_mb, reset_peak_rss, rss_mb
from recsampling.bench.speed import (by_blas_threads, excluded_returned, implicit_recommender, same_lists,
                                     scoring_problem)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=6040, help="users (default: ML-1M's 6040)")
    p.add_argument("--items", type=int, default=3706, help="items (default: ML-1M's 3706)")
    p.add_argument("--factors", type=int, default=64, help="factors (default 64)")
    p.add_argument("--seen", type=int, default=1_000_000, help="seen (excluded) pairs, about (default 1e6)")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--repeats", type=positive_int, default=7, help="timed repeats of each contender (default 7)")
    add_flags(p, "threads", "seed", "json", defaults={"threads": 2},
              helps={"threads": "threads for torch and implicit (default 2)", "seed": "seed of the tables (default 0)"})
    p.add_argument("--device", default="cpu", help="device of our topk and the matmul (default cpu; 'auto', 'cuda')")
    p.add_argument("--memory-budget-mb", type=float, default=256, help="topk memory budget (default 256)")
    p.add_argument("--no-implicit", action="store_true", help="skip the implicit baseline")
    p.add_argument("--large", action="store_true", help="also run the 100k x 200k case")
    p.add_argument("--large-users", type=int, default=10_000,
                   help="users scored in the large case (default 10000 of 100000; time for all extrapolated)")
    p.add_argument("--large-seen", type=int, default=10_000_000, help="seen pairs in the large case (default 1e7)")
    p.add_argument("--out", default=None, help="where to write the JSON results (default results/scoring_speed.json)")
    return p.parse_args()


def main() -> int:
    args = _parse()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=args.threads, user_api="blas")  # numpy's BLAS: same thread count
    from recsampling._utils import resolve_device
    from recsampling.scoring import topk

    dev = resolve_device(args.device)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    cpu = cpu_model(device_name)
    device_name = cpu if dev.type == "cpu" else device_name
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    U, V, seen = scoring_problem(args.users, args.items, args.factors, args.seen, args.seed)
    res: dict = {
        "shape": [args.users, args.items, args.factors], "seen_pairs": int(seen.nnz), "k": args.k,
        "threads": args.threads, "device": str(dev), "device_name": device_name, "cpu": cpu,
        "repeats": args.repeats, "memory_budget_mb": args.memory_budget_mb, "torch": torch.__version__,
        "load_avg_before": os.getloadavg()[0],
    }
    ours_out = {}

    def ours():
        ours_out["r"] = topk(U, V, args.k, exclude=seen, device=dev, memory_budget_mb=args.memory_budget_mb)
        sync()

    Ut, Vt = torch.from_numpy(U).to(dev), torch.from_numpy(V).to(dev)

    def matmul():
        torch.mm(Ut, Vt.T)
        sync()

    res["ours_best_s"], res["ours_s"] = best_and_median(ours, args.repeats)
    res["matmul_torch_best_s"], res["matmul_torch_s"] = best_and_median(matmul, args.repeats)
    if dev.type == "cpu":
        prod = np.empty((args.users, args.items), dtype=np.float32)
        res["matmul_numpy_best_s"], res["matmul_numpy_s"] = best_and_median(lambda: np.dot(U, V.T, out=prod),
                                                                             args.repeats)
        del prod
    # the floor: the faster of the two bare products (torch's BLAS, numpy's BLAS)
    floor = min(("torch", "numpy"), key=lambda b: res.get(f"matmul_{b}_s", float("inf")))
    res["matmul_backend"] = floor
    res["matmul_best_s"], res["matmul_s"] = res[f"matmul_{floor}_best_s"], res[f"matmul_{floor}_s"]
    if not args.no_implicit:
        import implicit

        model, userids, imp_out = implicit_recommender(U, V, args.threads), np.arange(args.users), {}

        def imp():
            imp_out["r"] = model.recommend(userids, seen, N=args.k, filter_already_liked_items=True)

        by_blas = by_blas_threads(lambda: best_and_median(imp, args.repeats), args.threads)
        res["implicit_by_blas_threads"] = {str(b): {"best_s": v[0], "median_s": v[1]} for b, v in by_blas.items()}
        best_blas = min(by_blas, key=lambda b: by_blas[b][1])
        res["implicit_blas_threads"] = best_blas
        res["implicit_best_s"], res["implicit_s"] = by_blas[best_blas]
        res["implicit_version"] = implicit.__version__
        res["same_lists_as_implicit"] = same_lists(ours_out["r"][0], imp_out["r"][0])
        res["speedup_vs_implicit"] = res["implicit_s"] / res["ours_s"]
        res["speedup_vs_implicit_best"] = res["implicit_best_s"] / res["ours_best_s"]
    res["excluded_items_returned"] = excluded_returned(ours_out["r"][0], seen)
    res["matmul_share"] = res["matmul_s"] / res["ours_s"]
    res["matmul_share_best"] = res["matmul_best_s"] / res["ours_best_s"]

    if args.large:
        n_users, n_items = 100_000, 200_000
        del U, V, Ut, Vt, seen, ours_out
        LU, LV, lseen = scoring_problem(n_users, n_items, args.factors, args.large_seen, args.seed + 1)
        sub = np.arange(min(args.large_users, n_users))
        rss_before = rss_mb()
        reset = reset_peak_rss()
        t = time.perf_counter()
        topk(LU, LV, args.k, exclude=lseen, users=sub, device=dev, memory_budget_mb=args.memory_budget_mb)
        sync()
        dt = time.perf_counter() - t
        res["large"] = {
            "shape": [n_users, n_items, args.factors], "seen_pairs": int(lseen.nnz), "users_scored": int(sub.size),
            "seconds": dt, "seconds_all_users_extrapolated": dt * n_users / sub.size,
            "users_per_s": sub.size / dt, "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(),
            "peak_reset_before_call": reset, "memory_budget_mb": args.memory_budget_mb,
            "dense_scores_would_need_mb": n_users * n_items * 4 / 2**20,
        }
        if dev.type == "cuda":
            res["large"]["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    res["load_avg_after"] = os.getloadavg()[0]

    out = write_results(result_path(__file__, "scoring_speed", out=args.out), res, indent=2, newline=True)

    print(f"top-{args.k} for {args.users} users x {args.items} items x {args.factors} factors, "
          f"{res['seen_pairs']} seen pairs excluded, {args.threads} threads, {device_name} ({dev})")
    print(f"{'contender':<28}{'median s':>10}{'best s':>10}")
    for label, key in (("recsampling topk", "ours"), ("implicit recommend", "implicit"),
                       ("matmul alone, torch", "matmul_torch"), ("matmul alone, numpy", "matmul_numpy")):
        if f"{key}_s" in res:
            print(f"{label:<28}{res[f'{key}_s']:>10.4f}{res[f'{key}_best_s']:>10.4f}"
                  + (f"  (BLAS threads {res['implicit_blas_threads']})" if key == "implicit" else ""))
    if "implicit_s" in res:
        print(f"speed-up vs implicit: {res['speedup_vs_implicit']:.2f}x (best-of: {res['speedup_vs_implicit_best']:.2f}x);"
              f" identical lists: {100 * res['same_lists_as_implicit']:.1f}% of users")
    print(f"matmul share of our time: {res['matmul_share']:.2f} (best-of: {res['matmul_share_best']:.2f}; "
          f"floor = the faster product, {res['matmul_backend']})")
    print(f"load average before / after: {res['load_avg_before']:.2f} / {res['load_avg_after']:.2f}")
    if "large" in res:
        L = res["large"]
        print(f"large {L['shape']}: {L['users_scored']} users in {L['seconds']:.2f} s "
              f"({L['users_per_s']:.0f} users/s; all users ~{L['seconds_all_users_extrapolated']:.0f} s"
              f"{' extrapolated' if L['users_scored'] < n_users else ''}), peak RSS {L['peak_rss_mb']:.0f} MiB "
              f"(dense scores would need {L['dense_scores_would_need_mb']:.0f} MiB)")
    print(f"wrote {out}")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
