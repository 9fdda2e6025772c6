"""Tune one model x sampler with Optuna on a synthetic world (per-epoch pruning, resumable storage).

    python benchmarks/tune.py --quick --storage sqlite:///DIR/s.db [--json]
    python benchmarks/tune.py --model mf --sampler nbpo --trials 50 --epochs 20 --plots benchmarks/results/tuning

A second run with the same ``--storage`` and ``--study`` resumes: its trials add to the stored ones.
With ``--json`` the last stdout line is one JSON object: study, n_trials, n_complete, n_pruned,
best_value, best_params, seconds (also written to benchmarks/results/tuning/STUDY.json).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna
import torch

from recsampling._utils import positive_int
from recsampling.bench.flags import add_flags, emit, result_path, write_results
from recsampling.tasks import load_task
from recsampling.tuning import run_study, save_plots


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, "quick", "seed", "threads", "json",
              helps={"quick": "tiny world (200 users x 300 items), 3 epochs, 8 trials",
                     "seed": "seed of the world, the split and the TPE sampler (default 0)"})
    p.add_argument("--model", default="mf")
    p.add_argument("--sampler", default="bpr")
    p.add_argument("--trials", type=positive_int, default=None, help="trials run by this call (default 8 quick, 30)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 3 quick, 15)")
    p.add_argument("--storage", default=None,
                   help="Optuna RDB URL (default sqlite file under benchmarks/results/tuning/)")
    p.add_argument("--study", default=None, help="study name (default MODEL-SAMPLER[-quick])")
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--metric", default="ndcg@10")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="save Optuna's history and parameter-importance plots as PNGs in DIR")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = a.trials if a.trials is not None else (8 if a.quick else 30)
    epochs = a.epochs if a.epochs is not None else (3 if a.quick else 15)
    size = (200, 300, 4000) if a.quick else (943, 1682, 100_000)
    study_name = a.study or f"{a.model}-{a.sampler}" + ("-quick" if a.quick else "")
    # tuned on 20% of each user's clicks held out (the world's randomized test set is never seen)
    task = load_task("synthetic", seed=a.seed, world=dict(zip(("n_users", "n_items", "target_interactions"), size)),
                     valid_fraction=0.2)
    path = result_path(__file__, study_name, folder="tuning")
    t0 = time.perf_counter()
    study = run_study(a.model, a.sampler, task.train, task.valid, n_trials=n_trials, storage=a.storage,
                      study_name=study_name, pruner=a.pruner, seed=a.seed, epochs=epochs, metric=a.metric,
                      run_dir=path.parent, n_startup_trials=2,
                      n_warmup_steps=1, device="cpu")
    secs = time.perf_counter() - t0
    trials = study.trials
    lines = [f"{'#':>3}  {'state':<8}  {a.metric:>8}  params"]
    for t in trials:
        v = "" if t.value is None else f"{t.value:.4f}"
        if t.value is None and t.intermediate_values:
            v = f"({t.intermediate_values[max(t.intermediate_values)]:.4f})"
        params = ", ".join(f"{k}={v_:.3g}" if isinstance(v_, float) else f"{k}={v_}" for k, v_ in t.params.items())
        lines.append(f"{t.number:>3}  {t.state.name:<8}  {v:>8}  {params}")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    summary = {"study": study_name, "model": a.model, "sampler": a.sampler, "metric": a.metric,
               "n_trials": len(trials), "n_complete": len(complete), "n_pruned": len(pruned),
               "best_value": study.best_value if complete else None,
               "best_params": study.best_params if complete else None, "seconds": round(secs, 2)}
    lines.append(f"\n{len(trials)} trials ({len(complete)} complete, {len(pruned)} pruned) in {secs:.1f}s; "
                 f"best {a.metric} = {summary['best_value']}")
    write_results(path, summary, indent=2)
    if a.plots and complete:
        summary["plots"] = save_plots(study, Path(a.plots), study_name)
    emit(summary, "\n".join(lines), a.json)
    return summary


if __name__ == "__main__":
    main()
