"""MF-BPR training throughput on CPU: our fused numba kernel against ``implicit``'s BPR, same run.

Issue 4, "Speed and quality": MF training with the per-example samplers must reach at least the
``implicit`` library's CPU BPR throughput (samples per second, same factors, same threads).

What is timed
-------------
- ``implicit``: ``implicit.cpu.bpr.BayesianPersonalizedRanking(factors=F, iterations=E,
  num_threads=T).fit(matrix)``, wall time of the whole call (it includes implicit's own small
  per-fit setup). implicit counts nnz samples per iteration (random nonzeros drawn with
  replacement; a negative the user liked is skipped, not redrawn) and stores F + 1 columns
  (the last one is the item bias), so ``samples = nnz * E``.
- ours: ``E`` calls of :func:`recsampling.fast.bpr.mf_bpr_epoch` on a
  ``MatrixFactorization(F, item_bias=True)`` with ``n_threads=T``: each epoch is a shuffled pass
  over the nnz interactions, ``samples = nnz * E``. The headline is uniform negatives with exact
  rejection (``collision="redraw"``, more work per sample than implicit's skip); the implicit-like
  draw (``alpha=1, collision="skip"``) and popularity with rejection are reported beside it.
- both after a warm-up call (numba's first-call compile and implicit's first fit are not timed),
  interleaved ``--repeats`` times; the figures are medians over the repeats (best also given).
- for reference, the plain torch autograd path (the Trainer with ``backend="torch"``, SGD,
  batch 1024) for one epoch on a random ``--torch-fraction`` of the interactions (it is slow),
  and the Trainer's own fused path (``backend="auto"``, one epoch including its prepare).

The machine is shared: the load average before and after is recorded with the figures.

Usage::

    python benchmarks/training_speed.py                # table
    python benchmarks/training_speed.py --json         # last stdout line: one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recsampling._utils import positive_int

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK_BEGIN = "<!-- training_speed:begin -->"
MARK_END = "<!-- training_speed:end -->"


# ------------------------------------------------------------------------------------------- data
def load_ml1m(data_dir: Path) -> sp.csr_matrix | None:
    """ML-1M's (user, item) pairs as a users x items CSR matrix, or None when absent."""
    path = data_dir / "ml-1m" / "pairs.csv.gz"
    if not path.is_file():
        return None
    import pandas as pd

    df = pd.read_csv(path)
    users, _ = pd.factorize(df["user_id"], sort=True)
    items, _ = pd.factorize(df["item_id"], sort=True)
    m = sp.csr_matrix((np.ones(len(df), np.float32), (users, items)))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def synthetic_ml1m(seed: int = 0, n_users: int = 6040, n_items: int = 3706, nnz: int = 1_000_209) -> sp.csr_matrix:
    """A seeded long-tail matrix of ML-1M's shape: lognormal user activity, Zipf-like item popularity."""
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
    m.sort_indices()
    return m


# ------------------------------------------------------------------------------------------ models
def make_model(n_users: int, n_items: int, factors: int, seed: int):
    """H4's MatrixFactorization when present, else a stand-in with the same attributes."""
    try:
        from recsampling.models.mf import MatrixFactorization

        return MatrixFactorization(n_users, n_items, factors=factors, item_bias=True, random_state=seed), \
            "MatrixFactorization"
    except ImportError:
        import torch
        from torch import nn

        class _MF(nn.Module):
            def __init__(self):
                super().__init__()
                g = torch.Generator().manual_seed(seed)
                self.user_factors = nn.Embedding(n_users, factors)
                self.item_factors = nn.Embedding(n_items, factors)
                with torch.no_grad():
                    self.user_factors.weight.normal_(0, 0.1, generator=g)
                    self.item_factors.weight.normal_(0, 0.1, generator=g)
                self.user_biases = None
                self.item_biases = nn.Embedding(n_items, 1)
                nn.init.zeros_(self.item_biases.weight)

        return _MF(), "stand-in (recsampling.models.mf absent)"


def sampled_auc(user_vecs, item_vecs, m: sp.csr_matrix, seed: int = 0, n: int = 20000) -> float:
    """P(score of a random held-in positive > score of a random unobserved item of that user)."""
    rng = np.random.default_rng(seed)
    coo = m.tocoo()
    k = rng.integers(0, m.nnz, n)
    u, i = coo.row[k], coo.col[k]
    j = rng.integers(0, m.shape[1], n)
    keep = np.asarray(m[u, j]).ravel() == 0
    u, i, j = u[keep], i[keep], j[keep]
    si = np.einsum("nd,nd->n", user_vecs[u], item_vecs[i])
    sj = np.einsum("nd,nd->n", user_vecs[u], item_vecs[j])
    return float((si > sj).mean())


def our_tables(model):
    uf = model.user_factors.weight.detach().numpy()
    itf = model.item_factors.weight.detach().numpy()
    ib = model.item_biases.weight.detach().numpy()
    return np.hstack([uf, np.ones((uf.shape[0], 1), uf.dtype)]), np.hstack([itf, ib])


# ------------------------------------------------------------------------------------------ timing
def time_implicit(m, factors, threads, epochs, lr, l2, seed):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(factors=factors, iterations=epochs, num_threads=threads,
                                        learning_rate=lr, regularization=l2, random_state=seed)
    t = time.perf_counter()
    model.fit(m, show_progress=False)
    return time.perf_counter() - t, model


def time_ours(model, m, threads, epochs, lr, l2, rng, **kw):
    from recsampling.fast.bpr import mf_bpr_epoch

    losses = []
    t = time.perf_counter()
    for _ in range(epochs):
        losses.append(mf_bpr_epoch(model, m, lr=lr, l2=l2, rng=rng, n_threads=threads, **kw))
    return time.perf_counter() - t, losses


def time_trainer(m, factors, threads, backend, lr, seed, epochs=1):
    """One ``Trainer.fit`` (MF + uniform BPR + SGD) on the given backend; (seconds, samples) or an error."""
    try:
        from recsampling.data import Interactions
        from recsampling.models.mf import MatrixFactorization
        from recsampling.samplers.negatives import BPRSampler
        from recsampling.train import Trainer
    except ImportError as exc:
        return {"error": f"not available: {exc}"}
    data = Interactions.from_csr(m)
    model = MatrixFactorization(*m.shape, factors=factors, random_state=seed)
    trainer = Trainer(epochs=epochs, batch_size=1024, optimizer="sgd", lr=lr, device="cpu", random_state=seed,
                      backend=backend, n_threads=threads, progress=False)
    try:
        t = time.perf_counter()
        trainer.fit(model, BPRSampler(), data)
        dt = time.perf_counter() - t
    except Exception as exc:  # a reference figure only: report, do not fail the benchmark
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"seconds": dt, "samples_per_s": m.nnz * epochs / dt}


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def write_markdown(res: dict) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    o = res["ours"]
    lines = [
        MARK_BEGIN,
        "## Training speed: fused MF-BPR vs implicit (issue 4)",
        "",
        f"`python benchmarks/training_speed.py --json` on {res['dataset']['name']} "
        f"({res['dataset']['n_users']} x {res['dataset']['n_items']}, {res['dataset']['nnz']:,} interactions), "
        f"{res['factors']} factors, {res['threads']} threads, {res['epochs']} timed epochs x "
        f"{res['repeats']} interleaved repeats (medians; best in brackets), {res['cpu']} "
        f"({res['cpu_count']} cores, shared; load average before/after {res['load_before']} / {res['load_after']}). "
        f"Measured {res['when']}.",
        "",
        "| trainer | negatives | samples/s | vs implicit |",
        "|---|---|---:|---:|",
        f"| implicit BPR (CPU) | popularity (random nonzero), skip | {res['implicit_samples_per_s']/1e6:.2f}M "
        f"[{res['implicit_best']/1e6:.2f}M] | 1.00 |",
    ]
    for key, label in (("uniform_redraw", "uniform, exact rejection (headline)"),
                       ("popularity_skip", "popularity^1, skip (implicit's draw)"),
                       ("popularity_redraw", "popularity^1, exact rejection")):
        r = o[key]
        lines.append(f"| recsampling fused numba | {label} | {r['median']/1e6:.2f}M [{r['best']/1e6:.2f}M] | "
                     f"{r['median']/res['implicit_samples_per_s']:.2f} |")
    for key, label in (("trainer_fused", "Trainer backend=auto (fused), 1 epoch incl. prepare"),
                       ("trainer_torch", f"Trainer backend=torch (autograd, batch 1024), 1 epoch on "
                                         f"{res.get('trainer_torch', {}).get('nnz', 0):,} of the interactions")):
        r = res.get(key, {})
        if "samples_per_s" in r:
            lines.append(f"| {label} | uniform, exact rejection | {r['samples_per_s']/1e6:.2f}M | "
                         f"{r['samples_per_s']/res['implicit_samples_per_s']:.2f} |")
        else:
            lines.append(f"| {label} | - | {r.get('error', 'not run')} | - |")
    lines += [
        "",
        f"Ratio (ours uniform+redraw / implicit, same run): **{res['ratio']:.2f}** (per repeat: "
        f"{', '.join(f'{r:.2f}' for r in res['ratio_per_repeat'])}). Sanity after training "
        f"(sampled AUC of held-in positives vs unobserved items): ours {res['auc_ours']:.3f}, implicit "
        f"{res['auc_implicit']:.3f}; our mean BPR loss per timed epoch {res['loss_first']:.3f} -> {res['loss_last']:.3f}.",
        "Threads >1: hogwild, not bit-reproducible (1 thread is). implicit stores factors+1 columns "
        "(item bias), ours factors + a separate item bias: the same work per sample.",
        MARK_END,
    ]
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "\n".join(lines) + "\n"
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder holding ml-1m/pairs.csv.gz (a seeded synthetic matrix of ML-1M's shape otherwise)")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic matrix even if ML-1M is present")
    p.add_argument("--factors", type=positive_int, default=64, help="latent factors (both libraries)")
    p.add_argument("--threads", type=positive_int, default=2, help="threads (both libraries)")
    p.add_argument("--epochs", type=positive_int, default=5, help="timed epochs per repeat")
    p.add_argument("--repeats", type=positive_int, default=3, help="interleaved repeats (medians reported)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (both)")
    p.add_argument("--l2", type=float, default=0.001, help="L2 coefficient (both)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, models and draws")
    p.add_argument("--no-torch", action="store_true", help="skip the Trainer reference timings")
    p.add_argument("--torch-fraction", type=float, default=0.2,
                   help="share of the interactions (random, seeded) the slow torch-path reference epoch runs on")
    p.add_argument("--no-write", action="store_true", help="do not write results/ or RESULTS.md")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = p.parse_args(argv)

    import numba
    import torch

    if args.threads > numba.config.NUMBA_NUM_THREADS:
        p.error(f"--threads {args.threads} exceeds numba's pool ({numba.config.NUMBA_NUM_THREADS}); "
                "set NUMBA_NUM_THREADS")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns otherwise

    m = None if args.synthetic else load_ml1m(args.data_dir)
    name = "ML-1M pairs" if m is not None else "synthetic ML-1M-shaped (seeded)"
    if m is None:
        m = synthetic_ml1m(args.seed)
    nnz = m.nnz
    load_before = loadavg()

    # warm-up: numba compile (cached on disk after the first run) and implicit's first fit
    from recsampling.fast.bpr import mf_bpr_epoch

    warm, model_kind = make_model(*m.shape, args.factors, args.seed)
    for kw in ({}, {"alpha": 1.0, "collision": "skip"}, {"alpha": 1.0}):
        mf_bpr_epoch(warm, m, lr=args.lr, l2=args.l2, rng=0, n_threads=args.threads, **kw)
    time_implicit(m, args.factors, args.threads, 1, args.lr, args.l2, args.seed)

    variants = {"uniform_redraw": {}, "popularity_skip": {"alpha": 1.0, "collision": "skip"},
                "popularity_redraw": {"alpha": 1.0}}
    rates = {k: [] for k in variants}
    implicit_rates = []
    rng = np.random.default_rng(args.seed)
    losses = None
    main_model = imp_model = None
    for rep in range(args.repeats):
        dt, imp_model = time_implicit(m, args.factors, args.threads, args.epochs, args.lr, args.l2, args.seed + rep)
        implicit_rates.append(nnz * args.epochs / dt)
        for key, kw in variants.items():
            model, _ = make_model(*m.shape, args.factors, args.seed + rep)
            dt, ls = time_ours(model, m, args.threads, args.epochs, args.lr, args.l2, rng, **kw)
            rates[key].append(nnz * args.epochs / dt)
            if key == "uniform_redraw":
                losses, main_model = ls, model

    res = {
        "benchmark": "training_speed",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "dataset": {"name": name, "n_users": m.shape[0], "n_items": m.shape[1], "nnz": nnz},
        "factors": args.factors,
        "threads": args.threads,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "lr": args.lr,
        "l2": args.l2,
        "model": model_kind,
        "ours_samples_per_s": float(np.median(rates["uniform_redraw"])),
        "implicit_samples_per_s": float(np.median(implicit_rates)),
        "implicit_best": float(max(implicit_rates)),
        "implicit_all": [round(r) for r in implicit_rates],
        "ours": {k: {"median": float(np.median(v)), "best": float(max(v)), "all": [round(r) for r in v]}
                 for k, v in rates.items()},
        "loss_first": float(losses[0]),
        "loss_last": float(losses[-1]),
        "auc_ours": sampled_auc(*our_tables(main_model), m),
        "auc_implicit": sampled_auc(np.asarray(imp_model.user_factors), np.asarray(imp_model.item_factors), m),
    }
    res["ratio"] = res["ours_samples_per_s"] / res["implicit_samples_per_s"]
    # each repeat times both back to back: the ratio within a repeat is the least load-sensitive
    res["ratio_per_repeat"] = [round(o / i, 3) for o, i in zip(rates["uniform_redraw"], implicit_rates)]
    res["ratio_popularity_skip"] = res["ours"]["popularity_skip"]["median"] / res["implicit_samples_per_s"]
    if not args.no_torch:
        res["trainer_fused"] = time_trainer(m, args.factors, args.threads, "auto", args.lr, args.seed)
        coo = m.tocoo()
        keep = np.random.default_rng(args.seed).random(nnz) < args.torch_fraction
        sub = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
        sub.sort_indices()
        res["trainer_torch"] = time_trainer(sub, args.factors, args.threads, "torch", args.lr, args.seed)
        res["trainer_torch"]["nnz"] = int(sub.nnz)
    res["load_before"] = load_before
    res["load_after"] = loadavg()

    rows = [("implicit BPR", "popularity, skip", res["implicit_samples_per_s"], max(implicit_rates))]
    rows += [(f"ours fused", k.replace("_", ", "), v["median"], v["best"]) for k, v in res["ours"].items()]
    for key in ("trainer_fused", "trainer_torch"):
        if "samples_per_s" in res.get(key, {}):
            rows.append((key.replace("_", " "), "uniform, redraw", res[key]["samples_per_s"], res[key]["samples_per_s"]))
    print(f"{name}: {m.shape[0]} x {m.shape[1]}, nnz {nnz:,}; factors {args.factors}, threads {args.threads}, "
          f"{args.epochs} epochs x {args.repeats} repeats; load {load_before} -> {res['load_after']}")
    print(f"{'trainer':<16} {'negatives':<20} {'median/s':>12} {'best/s':>12} {'vs implicit':>12}")
    for a, b, med, best in rows:
        print(f"{a:<16} {b:<20} {med:>12,.0f} {best:>12,.0f} {med / res['implicit_samples_per_s']:>12.2f}")
    for key in ("trainer_fused", "trainer_torch"):
        if "error" in res.get(key, {}):
            print(f"{key}: {res[key]['error']}")
    print(f"ratio (ours uniform+redraw / implicit): {res['ratio']:.2f}; AUC ours {res['auc_ours']:.3f}, "
          f"implicit {res['auc_implicit']:.3f}; our loss {res['loss_first']:.3f} -> {res['loss_last']:.3f}")

    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "training_speed.json").write_text(json.dumps(res, indent=2) + "\n")
        write_markdown(res)
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
