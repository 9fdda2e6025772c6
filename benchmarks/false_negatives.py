"""How many of each sampler's negatives are truly relevant, and the true NDCG@10 it reaches (synthetic world).

Question: does the false-negative aware hard sampler (``cet``, and the simple ``skiphard``)
draw fewer truly relevant negatives than the plain top-k hard sampler (``tophard``), and reach a
higher true NDCG@10? ``bpr`` (uniform) and ``dns`` are the baselines.

Every fit trains the same model with the same settings (the suite's synthetic defaults: MF, 32
factors, Adam lr 0.01, l2 1e-4, batch 1024) on the embedded world's clicks; after each epoch
:class:`recsampling.diagnostics.FalseNegativeMonitor` draws ``--rows`` rows of the sampler's
negatives (its own generator) and records their mean true relevance and the true NDCG@10.
Reported: the last epoch's figures, mean ± standard error over seeds (the world is the same for
every seed; the seed changes the model's initialization and the draws).

    python benchmarks/false_negatives.py --json              # about 10 minutes on 2 cores
    python benchmarks/false_negatives.py --models mf,twotower --samplers tophard,cet --params '{"refresh_every": 5}'
    python benchmarks/false_negatives.py --quick --json      # a smoke run

With several ``--models`` the JSON holds one run per model under ``"models"``.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from recsampling._utils import to_jsonable
from recsampling.bench.flags import add_flags, command_line, result_path, write_results
from recsampling.bench.negatives import WORLDS, monitored_fit
from recsampling.bench.report import mean_and_se

SAMPLERS = ("bpr", "dns", "tophard", "skiphard", "cet")
WORLD = WORLDS["quick"]


def run(samplers=SAMPLERS, seeds=(0, 1, 2), epochs: int = 10, rows: int = 20_000, model: str = "mf",
        world_kw: dict | None = None, threads: int = 2, params: dict | None = None) -> dict:
    """One model: every sampler's last-epoch figures over ``seeds``; ``params`` go to each sampler that takes them."""
    from recsampling.data import make_world
    from recsampling.samplers import make_sampler
    from recsampling.samplers.base import SAMPLERS as SAMPLERS_REGISTRY

    logging.getLogger("recsampling.evaluation").setLevel(logging.ERROR)  # MAR test pairs that are clicks: dropped
    world = make_world(**(world_kw or WORLD), n_logged_lists=0, random_state=0)
    params = dict(params or {})
    out: dict = {"world": world_kw or WORLD, "epochs": epochs, "rows": rows, "model": model, "seeds": list(seeds),
                 "params": params, "samplers": {}}
    for name in samplers:
        runs = []
        for seed in seeds:
            s = make_sampler(name, **{k: v for k, v in params.items() if SAMPLERS_REGISTRY.lookup(name)._takes(k)})
            fit = monitored_fit(s, world, model=model, seed=seed, epochs=epochs, rows=rows, threads=threads)
            runs.append({"history": fit.history, "time_s": fit.seconds})
        last = [{k: r["history"][-1][k] for k in ("false_negative_rate", "true_ndcg@10")} for r in runs]
        out["samplers"][name] = {
            **mean_and_se(last, single=float("nan")),
            "per_epoch": [{k: float(np.mean([r["history"][e][k] for r in runs]))
                           for k in ("false_negative_rate", "above_threshold", "true_ndcg@10")}
                          for e in range(epochs)],
            "time_s": float(np.mean([r["time_s"] for r in runs]))}
    res = out["samplers"]
    if {"tophard", "cet"} <= set(res):
        out["target_met"] = {
            v: bool(res[v]["false_negative_rate"]["mean"] < res["tophard"]["false_negative_rate"]["mean"]
                    and res[v]["true_ndcg@10"]["mean"] > res["tophard"]["true_ndcg@10"]["mean"])
            for v in ("cet", "skiphard") if v in res}
    return out


def table(out: dict) -> str:
    lines = ["| sampler | false-negative share | true NDCG@10 | s / fit |", "|---|---|---|---|"]
    for name, r in out["samplers"].items():
        f, n = r["false_negative_rate"], r["true_ndcg@10"]
        lines.append(f"| {name} | {f['mean']:.4f} ± {f['se']:.4f} | {n['mean']:.4f} ± {n['se']:.4f} | "
                     f"{r['time_s']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated sampler names")
    add_flags(p, "seeds", "threads", "quick", "json", defaults={"threads": 2},
              helps={"quick": "1 seed, 2 epochs, a 100 x 150 world"})
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rows", type=int, default=20_000, help="rows of negatives drawn per measurement")
    p.add_argument("--models", default="mf", help="comma-separated model names (mf, twotower)")
    p.add_argument("--params", default="{}",
                   help='JSON sampler parameters, given to each sampler that takes them, e.g. \'{"refresh_every": 5}\'')
    p.add_argument("--world", choices=sorted(WORLDS), default="quick",
                   help="the synthetic world: the suite's quick one (300 x 500, 15k clicks) or make_world's default")
    p.add_argument("--out", default=None, help="where to write the JSON (default results/false_negatives.json)")
    a = p.parse_args(argv)
    try:
        params = json.loads(a.params)
    except json.JSONDecodeError as e:
        p.error(f"--params is not JSON ({e}): {a.params!r}")
    if not isinstance(params, dict):
        p.error(f"--params must be a JSON object, got {a.params!r}")
    kw = dict(samplers=tuple(a.samplers.split(",")), seeds=tuple(range(a.seeds)), epochs=a.epochs, rows=a.rows,
              threads=a.threads, params=params, world_kw=WORLDS[a.world])
    if a.quick:
        kw.update(seeds=(0,), epochs=2, rows=2000, world_kw=dict(n_users=100, n_items=150, target_interactions=2000))
    out = {"models": {}}
    for model in a.models.split(","):
        out["models"][model] = run(model=model, **kw)
        print(f"{model}:\n{table(out['models'][model])}")
    out["command"] = command_line(__file__, argv)
    if not a.quick:
        write_results(result_path(__file__, "false_negatives", out=a.out), to_jsonable(out))
    if a.json:
        print(json.dumps(to_jsonable(out)))
    return out


if __name__ == "__main__":
    main()
