"""Unbiased learning from MNAR clicks: naive pointwise vs BPR vs Rel-MF vs UBPR, same run.

Issue 6: train on the biased (missing-not-at-random) clicks, evaluate on a randomized
(missing-at-random) test set with the protocol of Saito et al. (WSDM 2020) and Saito (ICTIR
2020): rank only each user's randomized test items; a rating >= 4 is relevant; DCG@K, Recall@K,
MAP@K for K = 3, 5, 8; mean and standard error over seeds.

Methods (every one is a registered sampler on the same model, the same Trainer and the same
hyper-parameters; only the loss and its sampling differ)

- ``naive``: the pointwise loss ``Y delta1 + (1 - Y) delta0`` (Rel-MF's code with ``theta = 1``);
- ``bpr``: uniform BPR (one unobserved item per click, exact rejection);
- ``relmf``: Rel-MF with popularity propensities ``(n_i / max n)^0.5`` clipped at ``M``;
- ``relmf_true_propensity`` (synthetic only): Rel-MF with the world's true exposure of each click;
- ``ubpr``: UBPR with popularity propensities, clipped at ``M``, non-negative (``beta``).

Data sets

- ``coat``: Coat (Schnabel et al. 2016), ``--data-dir`` holds ``coat/``; 290 users x 300 items,
  16 randomized test items per user.
- ``yahoo-r3``: Yahoo! R3, where its files are in ``--data-dir`` (``yahoo-r3/``).
- ``synthetic``: :func:`recsampling.data.synthetic.make_world` (a fresh world per seed), whose
  randomized test set has 16 uniform items per user labelled by a Bernoulli(relevance) draw. Here
  the truth is known, so the script also reports ``true_dcg@K`` / ``true_ndcg@K`` /
  ``true_recall@K`` (the gains are the true relevance probabilities of the ranked test items).

"Rare items" (all data sets): the test candidates restricted to items whose number of training
clicks is at most the ``--rare-quantile`` (default 0.5) quantile over items, i.e. the less
popular half of the catalogue; each user's rare test items are ranked among themselves.

``all/rare_share@K``: the share of rare items in each user's top K of *all* test candidates (does a
method move rare items up against popular ones?); ``all/rare_share_random`` is its value for a
random order.

``dcg@K`` is :mod:`recsampling.metrics`' ``sum_{r<=K} h_r / log2(r+1)``; ``dcg_norm@K`` divides it by
the user's number of relevant test items, which is the scale of Saito et al.'s code and tables.

Hyper-parameters: by default one fixed setting for every method (``DEFAULTS`` and the flags).
``--tune N`` instead gives every method the same Optuna budget (N TPE trials, the same seed and the
same validation split: ``--valid-fraction`` of each user's *biased training* clicks, scored by
``--tune-metric``, default ``snips_dcg@5``), then trains each method with its best values on all
training clicks over the seeds; the randomized test set is never used for tuning.
``--propensity-norm`` picks the popularity propensities of Rel-MF / UBPR: ``max`` (``(n_i / max
n)^eta``, the WSDM paper), ``users`` (``(n_i / n_users)^eta``, the authors' Coat preprocessing) or
``flat`` (one value for all items at the ``users`` level: a control).

Usage::

    python benchmarks/mnar.py --dataset coat --data-dir ../shared/data
    python benchmarks/mnar.py --dataset synthetic --json     # last stdout line: one JSON object
    python benchmarks/mnar.py --dataset coat --quick         # a tiny run (seconds)
    python benchmarks/mnar.py --dataset coat --tune 100      # same tuning budget per method
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from recsampling._utils import positive_int

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KS = (3, 5, 8)
BASE_METRICS = ("dcg", "recall", "map")

#: method -> (sampler name, sampler parameters); filled with the command-line options in main
METHODS = ("naive", "bpr", "relmf", "relmf_true_propensity", "ubpr")
#: on request only (``--methods``): the naive loss with a tunable weight of the unclicked pairs
#: (``unobserved_weight``, WMF's confidence idea), the control for Rel-MF's click weight level
EXTRA_METHODS = ("naive_weighted",)

#: per data set: model and training defaults (the same for every method), fixed a priori
DEFAULTS = {
    "coat": dict(factors=32, epochs=30, batch_size=256, lr=0.005, l2=1e-4),
    "yahoo-r3": dict(factors=32, epochs=15, batch_size=1024, lr=0.005, l2=1e-4),
    "synthetic": dict(factors=32, epochs=15, batch_size=1024, lr=0.005, l2=1e-4),
}
SYNTHETIC_WORLD = dict(n_users=943, n_items=1682, target_interactions=60_000)
QUICK_WORLD = dict(n_users=200, n_items=300, target_interactions=5_000)


# ------------------------------------------------------------------------------------------- data
class Task:
    """One (train, randomized test) pair and what the evaluation needs."""

    def __init__(self, train, test, test_items, relevance=None, true_propensity=None):
        self.train = train  # Interactions of the biased clicks (positives only)
        self.test = test  # Interactions of the relevant randomized test pairs
        self.test_items = test_items  # (n_users, n) candidates, -1 padded
        self.relevance = relevance  # (n_users, n_items) true P(relevant), synthetic only
        self.true_propensity = true_propensity  # "data" when train carries the true exposure


def load_task(dataset: str, data_dir: str, seed: int, quick: bool) -> Task:
    if dataset == "synthetic":
        from recsampling.data.synthetic import make_world

        params = QUICK_WORLD if quick else SYNTHETIC_WORLD
        world = make_world(**params, n_logged_lists=0, random_state=seed)
        return Task(world.clicks, world.unbiased_test, world.unbiased_test_items,
                    relevance=np.asarray(world.relevance), true_propensity="data")
    from recsampling.data.datasets import load_dataset

    try:
        ds = load_dataset(dataset, data_dir=data_dir)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"benchmarks/mnar.py: cannot load {dataset!r} from {data_dir!r}: {e}") from None
    # the paper's protocol: ratings >= 4 are the positives, in train and in the randomized test
    train = ds.interactions.to_implicit(4.0)
    test = ds.test.to_implicit(4.0)
    return Task(train, test, ds.info["test_items"])


def rare_candidates(train, test_items: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
    """The test candidates with the popular items replaced by -1, and the click-count threshold."""
    counts = train.item_counts()
    threshold = float(np.quantile(counts, quantile))
    rare = counts <= threshold
    cand = np.where((test_items >= 0) & rare[np.maximum(test_items, 0)], test_items, -1)
    return cand, threshold


# ------------------------------------------------------------------------------------------- runs
def item_propensities(train, eta: float, norm: str):
    """Per-item popularity propensities: ``"max"`` -> ``(n_i / max n)^eta`` (the sampler's own
    ``"popularity"``), ``"users"`` -> ``(n_i / n_users)^eta`` clipped to [1e-6, 1] (the authors'
    Coat preprocessing in usaito/unbiased-pairwise-rec), ``"flat"`` -> the same value
    ``(mean_{n_i > 0} n_i / n_users)^eta`` for every item (a control: the clicks' weight level of
    ``"users"`` without any difference between popular and rare items)."""
    if norm == "max":
        return "popularity"
    counts = train.item_counts().astype(np.float64)
    if norm == "flat":
        level = counts[counts > 0].mean() / train.n_users if (counts > 0).any() else 1.0
        return np.full(train.n_items, float(np.clip(level ** eta, 1e-6, 1.0)))
    if norm != "users":
        raise ValueError(f"propensity norm must be 'max', 'users' or 'flat', got {norm!r}")
    return np.clip((counts / train.n_users) ** eta, 1e-6, 1.0)


def sampler_for(method: str, args, train=None, overrides: dict | None = None) -> tuple[str, dict]:
    """Sampler name and parameters of ``method``; ``overrides`` (tuned values) win over the flags."""
    o = dict(overrides or {})
    eta = o.get("eta", args.eta)
    prop = "popularity" if train is None else item_propensities(train, eta, args.propensity_norm)
    common = dict(clip=args.clip, propensities=prop, eta=eta)
    if method in ("naive", "naive_weighted"):
        name, params = "pointwise", dict(n_negatives=args.n_negatives, delta=args.delta,
                                         unobserved_weight=args.unobserved_weight)
    elif method == "bpr":
        name, params = "bpr", dict(n_negatives=1)
    elif method == "relmf":
        name, params = "relmf", dict(n_negatives=args.n_negatives, delta=args.delta,
                                     unobserved_weight=args.unobserved_weight, **common)
    elif method == "relmf_true_propensity":
        name, params = "relmf", dict(n_negatives=args.n_negatives, delta=args.delta,
                                     unobserved_weight=args.unobserved_weight, clip=args.clip, propensities="data")
    elif method == "ubpr":
        name, params = "ubpr", dict(n_negatives=args.ubpr_negatives, beta=args.beta, **common)
    else:
        raise ValueError(f"unknown method {method!r}")
    for k in ("n_negatives", "clip", "beta", "unobserved_weight"):
        if k in o and k in params:
            params[k] = o[k]
    if "eta" in o and "eta" in params:
        params["eta"] = o["eta"]
    return name, params


def fit_model(train, method: str, seed: int, args, hp: dict | None = None):
    """Train ``method`` on ``train``; ``hp`` (tuned ``lr``, ``l2``, ``factors`` and sampler knobs)
    overrides the command-line values."""
    from recsampling.models import make_model
    from recsampling.samplers import make_sampler
    from recsampling.train import Trainer

    hp = dict(hp or {})
    name, params = sampler_for(method, args, train, hp)
    sampler = make_sampler(name, **params)
    model = make_model(args.model, train, factors=int(hp.get("factors", args.factors)), random_state=seed)
    trainer = Trainer(epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=hp.get("lr", args.lr),
                      l2=hp.get("l2", args.l2), device=args.device, random_state=seed, backend="torch",
                      progress=False)
    trainer.fit(model, sampler, train)
    return model


def run_one(task: Task, method: str, seed: int, args, hp: dict | None = None) -> dict:
    from recsampling.evaluation import evaluate

    t0 = time.perf_counter()
    model = fit_model(task.train, method, seed, args, hp)
    fit_s = time.perf_counter() - t0

    out = {"fit_s": fit_s}
    if task.relevance is not None:
        out["ideal_loss"] = ideal_loss(model, task.relevance, args.delta)
    groups = {"all": task.test_items, "rare": task.rare_items}
    for group, cand in groups.items():
        res = evaluate(model, task.test, ks=KS, metrics=list(BASE_METRICS) + (["true_dcg", "true_ndcg", "true_recall"]
                                                                               if task.relevance is not None else []),
                       protocol="test_items", test_items=cand, relevance=task.relevance, device=args.device)
        d = res.to_dict()
        pu = res.per_user
        n_rel = n_rel_in(cand, task.test, pu)
        for k in KS:
            for m in BASE_METRICS:
                out[f"{group}/{m}@{k}"] = d[f"{m}@{k}"]
            out[f"{group}/dcg_norm@{k}"] = float(np.mean(pu[f"dcg@{k}"].to_numpy() / n_rel))
            if task.relevance is not None:
                for m in ("true_dcg", "true_ndcg", "true_recall"):
                    out[f"{group}/{m}@{k}"] = d[f"{m}@{k}"]
        out[f"{group}/n_users"] = d["n_users"]
        if group == "all":
            out.update(rare_share(model, task.test_items, task.rare_items, pu.index.to_numpy()))
    return out


def rare_share(model, cand: np.ndarray, rare_cand: np.ndarray, users: np.ndarray) -> dict:
    """Share of rare items among each user's top-K of all test candidates (mean over ``users``).

    ``all/rare_share@K`` shows whether a method moves rare items up *against popular ones*,
    which the rare-item metrics (rare items ranked among themselves) do not see;
    ``all/rare_share_random`` is its value under a random order (the rare share of the candidates).
    """
    U, V = model.embedding_tables()
    c = cand[users]
    ok = c >= 0
    scores = np.einsum("uf,ujf->uj", U[users], V[np.maximum(c, 0)])
    order = np.argsort(-np.where(ok, scores, -np.inf), axis=1, kind="stable")
    rare = np.take_along_axis(rare_cand[users] >= 0, order, axis=1)
    n_ok = ok.sum(1)
    out = {f"all/rare_share@{k}": float(np.mean(rare[:, :k].sum(1) / np.minimum(n_ok, k))) for k in KS}
    out["all/rare_share_random"] = float(np.mean((rare_cand[users] >= 0).sum(1) / n_ok))
    return out


def tune_method(train, method: str, args, seed: int = 0) -> dict:
    """Optuna search for ``method`` on a validation split of the *biased* training clicks.

    The split moves ``--valid-fraction`` of each user's training clicks to a validation set
    (:func:`recsampling.data.splits.validation_split`, seeded); a trial trains on the rest with a
    configuration drawn by :func:`recsampling.tuning.search_space` (lr, l2, factors, negatives,
    and Rel-MF / UBPR's clip ``M`` and ``eta``; plus UBPR's ``beta`` here) and is scored by
    ``--tune-metric`` on the validation clicks, ranked against all items the user did not click
    in the fit part. ``snips_dcg@K`` weights each validation click by ``1 / theta_i`` with
    ``theta_i = (n_i / max n)^0.5`` from all training clicks, self-normalized per user (the
    authors' "unbiased evaluator" idea, Saito et al.'s code; the same propensities for every
    method, whatever ``eta`` a trial uses); ``ndcg@K`` is the plain, popularity-biased metric.
    Every method gets the same number of trials, the same TPE seed and the same split; the
    randomized test set is never seen.
    """
    import optuna

    from recsampling.data.splits import validation_split
    from recsampling.evaluation import evaluate
    from recsampling.propensity import popularity_propensity
    from recsampling.tuning import search_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    split = validation_split(train, args.valid_fraction, random_state=seed)
    fit_train, valid = split.train, split.eval_test
    metric = args.tune_metric
    base, _, k = metric.partition("@")
    eval_prop = popularity_propensity(train, 0.5)  # > 0 for every clicked item
    sampler_name = sampler_for(method, args)[0]

    def objective(trial) -> float:
        space = search_space(trial, args.model, sampler_name)
        hp = {"lr": space["lr"], "l2": space["l2"], **space["model_params"], **space["sampler_params"]}
        if method == "relmf_true_propensity":
            hp.pop("eta", None)  # drawn by the shared space, unused with the true propensities
        if method == "ubpr":
            hp["beta"] = trial.suggest_float("beta", 1e-4, 1.0, log=True)
        if method == "naive_weighted":
            hp["unobserved_weight"] = trial.suggest_float("unobserved_weight", 1e-3, 10.0, log=True)
        model = fit_model(fit_train, method, seed, args, hp)
        res = evaluate(model, valid, train=fit_train, ks=(int(k),), metrics=[base],
                       propensities=eval_prop[valid.matrix.indices] if base.startswith(("ips_", "snips_")) else None,
                       device=args.device)
        value = float(res[metric])
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"non-finite {metric}")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=args.tune, catch=(ValueError, RuntimeError))
    best = dict(study.best_params)
    if method == "relmf_true_propensity":
        best.pop("eta", None)
    return {"best_params": best, "best_value": float(study.best_value), "metric": metric,
            "n_trials": len(study.trials), "valid_clicks": int(valid.nnz), "fit_clicks": int(fit_train.nnz),
            "wall_s": time.perf_counter() - t0}


def ideal_loss(model, relevance: np.ndarray, delta: str) -> float:
    """The ideal pointwise loss ``mean gamma delta1(s) + (1 - gamma) delta0(s)`` over all pairs.

    What Rel-MF's estimator targets (meaningful for the pointwise methods, whose scores are
    calibrated logits; BPR and UBPR scores are only defined up to a per-user shift).
    """
    import torch

    from recsampling.samplers.mnar import ideal_pointwise_loss

    U, V = model.embedding_tables()
    total = 0.0
    for s in range(0, U.shape[0], 256):  # chunks of users bound the memory
        scores = torch.from_numpy(U[s:s + 256] @ V.T).double()
        total += float(ideal_pointwise_loss(scores, relevance[s:s + 256], delta, reduction="sum"))
    return total / relevance.size


def n_rel_in(cand: np.ndarray, test, per_user) -> np.ndarray:
    """Number of relevant test pairs among each evaluated user's candidates."""
    users = per_user.index.to_numpy()
    m = test.matrix
    c = cand[users]
    rel = np.zeros(c.shape, dtype=bool)
    for col in range(c.shape[1]):  # loop over the few candidate columns, vectorized over users
        items = c[:, col]
        ok = items >= 0
        rel[ok, col] = np.asarray(m[users[ok], items[ok]]).ravel() > 0
    return rel.sum(1)


def summarize(per_seed: dict[str, list[dict]]) -> dict:
    out = {}
    for method, runs in per_seed.items():
        keys = runs[0].keys()
        d = {}
        for k in keys:
            vals = np.array([r[k] for r in runs], dtype=np.float64)
            d[k] = float(vals.mean())
            if len(vals) > 1:
                d[k + "_se"] = float(vals.std(ddof=1) / np.sqrt(len(vals)))
        out[method] = d
    return out


def table(summary: dict, group: str, metrics: list[str]) -> str:
    head = "| method | " + " | ".join(metrics) + " |"
    sep = "|---|" + "---|" * len(metrics)
    rows = [head, sep]
    for method, d in summary.items():
        cells = []
        for m in metrics:
            key = f"{group}/{m}"
            if key not in d:
                cells.append("")
                continue
            se = d.get(key + "_se")
            cells.append(f"{d[key]:.4f}" + (f" ± {se:.4f}" if se is not None else ""))
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("coat", "synthetic", "yahoo-r3"), default="coat")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"),
                   help="folder holding coat/ (and yahoo-r3/); default ../shared/data")
    p.add_argument("--seeds", type=positive_int, default=5,
                   help="seeds (model init, sampling; a new world on synthetic)")
    p.add_argument("--methods", default=None, help="comma-separated subset of " + ",".join(METHODS + EXTRA_METHODS)
                   + " (default: " + ",".join(METHODS) + ")")
    p.add_argument("--model", default="mf", choices=("mf", "twotower"))
    p.add_argument("--factors", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--clip", type=float, default=0.1, help="propensity clipping M (Rel-MF, UBPR)")
    p.add_argument("--eta", type=float, default=0.5, help="popularity propensity exponent")
    p.add_argument("--delta", default="squared", choices=("squared", "log"), help="Rel-MF local loss family")
    p.add_argument("--unobserved-weight", default="unbiased",
                   help="Rel-MF / naive weight of a sampled unclicked pair: unbiased, balanced or a number")
    p.add_argument("--n-negatives", type=int, default=4, help="unclicked draws per click (naive, Rel-MF)")
    p.add_argument("--ubpr-negatives", type=int, default=4, help="items j per click (UBPR)")
    p.add_argument("--beta", type=float, default=0.0, help="UBPR non-negative clamp -beta")
    p.add_argument("--rare-quantile", type=float, default=0.5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (1 is fastest for these small models on a shared machine)")
    p.add_argument("--propensity-norm", default="max", choices=("max", "users", "flat"),
                   help="popularity propensities (Rel-MF, UBPR): (n_i / max n)^eta (the WSDM paper), "
                        "(n_i / n_users)^eta (the authors' Coat preprocessing), or 'flat': one value "
                        "(mean n_i / n_users)^eta for all items (a control without popularity differences)")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="tune every method with N Optuna trials on a validation split of the biased training "
                        "clicks (same budget, seed and split for all), then train each with its best values on "
                        "all training clicks over the seeds; 0 (default): the fixed values of the flags")
    p.add_argument("--tune-metric", default="snips_dcg@5",
                   help="validation metric of --tune: snips_dcg@K (clicks weighted 1/theta, self-normalized), "
                        "ndcg@K, dcg@K, recall@K, ... (full ranking of the held-out clicks)")
    p.add_argument("--valid-fraction", type=float, default=0.2, help="share of each user's clicks held out by --tune")
    p.add_argument("--tune-seed", type=int, default=0,
                   help="seed of --tune's validation split, TPE sampler and trial fits (and of the synthetic world tuned on)")
    p.add_argument("--quick", action="store_true", help="a tiny run: 2 seeds, few epochs, a small world")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/")
    p.add_argument("--tag", default="", help="suffix of the result files (mnar_<dataset>[_<tag>].json/.md)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    for k, v in DEFAULTS[args.dataset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.unobserved_weight not in ("unbiased", "balanced"):
        args.unobserved_weight = float(args.unobserved_weight)
    if args.quick:
        args.seeds = min(args.seeds, 2)
        args.epochs = min(args.epochs, 5)
    methods = [m for m in (args.methods.split(",") if args.methods else METHODS)]
    for m in methods:
        if m not in METHODS + EXTRA_METHODS:
            raise SystemExit(f"unknown method {m!r}; choose among {', '.join(METHODS + EXTRA_METHODS)}")
    if args.dataset != "synthetic":
        methods = [m for m in methods if m != "relmf_true_propensity"]

    if args.tune < 0:
        raise SystemExit("--tune must be >= 0")
    if not 0 < args.valid_fraction < 1:
        raise SystemExit("--valid-fraction must be in (0, 1)")
    if args.tune and not args.tag:
        args.tag = "tuned"

    t_start = time.perf_counter()
    tuning: dict[str, dict] = {}
    if args.tune:
        # one study per method on the --tune-seed data (on synthetic: that seed's world), then the
        # best values are used for every seed
        task0 = load_task(args.dataset, args.data_dir, args.tune_seed, args.quick)
        for m in methods:
            tuning[m] = tune_method(task0.train, m, args, seed=args.tune_seed)
            print(f"# tuned {m:22s} {args.tune_metric}={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
                  f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    info = {}
    for seed in range(args.seeds):
        task = load_task(args.dataset, args.data_dir, seed, args.quick)
        task.rare_items, thr = rare_candidates(task.train, task.test_items, args.rare_quantile)
        info = {"n_users": task.train.n_users, "n_items": task.train.n_items, "train_clicks": task.train.nnz,
                "test_positives": task.test.nnz, "rare_item_max_clicks": thr,
                "rare_items": int((task.train.item_counts() <= thr).sum())}
        for m in methods:
            per_seed[m].append(run_one(task, m, seed, args, tuning.get(m, {}).get("best_params")))
            print(f"# seed {seed} {m:22s} dcg@5={per_seed[m][-1]['all/dcg@5']:.4f} "
                  f"recall@5={per_seed[m][-1]['all/recall@5']:.4f} ({per_seed[m][-1]['fit_s']:.1f}s)",
                  file=sys.stderr, flush=True)
    summary = summarize(per_seed)

    ratios = {}
    for m in methods:
        if m != "naive" and "naive" in summary:
            for key in ("all/dcg@5", "all/recall@5", "all/map@5", "rare/dcg@5", "rare/recall@5"):
                base = summary["naive"].get(key)
                if base:
                    ratios[f"{m}/{key}"] = summary[m][key] / base

    config = {k: getattr(args, k) for k in ("dataset", "seeds", "model", "factors", "epochs", "batch_size", "lr", "l2",
                                            "clip", "eta", "delta", "unobserved_weight", "n_negatives",
                                            "ubpr_negatives", "beta", "rare_quantile", "quick", "propensity_norm",
                                            "tune", "tune_metric", "valid_fraction", "tune_seed")}
    result = {"benchmark": "mnar", "config": config, "data": info, "methods": summary, "ratios_vs_naive": ratios,
              "tuning": tuning,
              "wall_s": time.perf_counter() - t_start, "threads": args.threads, "python": platform.python_version(),
              "torch": torch.__version__}

    cols = [f"{m}@{k}" for m in BASE_METRICS for k in KS]
    md = [f"### {args.dataset}: randomized test, each user's test items ranked (mean ± s.e. over {args.seeds} seeds)",
          "", table(summary, "all", cols), "",
          f"Rare items (training clicks <= {info['rare_item_max_clicks']:g}; {info['rare_items']} of "
          f"{info['n_items']} items):", "", table(summary, "rare", cols), ""]
    md += ["Share of rare items in each user's top K of all test items (random order: "
           f"{next(iter(summary.values()))['all/rare_share_random']:.3f}):", "",
           table(summary, "all", [f"rare_share@{k}" for k in KS]), ""]
    md += ["DCG normalized by the user's relevant test items (Saito et al.'s scale):", "",
           table(summary, "all", [f"dcg_norm@{k}" for k in KS]), ""]
    if args.dataset == "synthetic":
        tcols = [f"{m}@{k}" for m in ("true_dcg", "true_ndcg", "true_recall") for k in KS]
        md += ["True relevance (all test items):", "", table(summary, "all", tcols), "",
               "True relevance (rare test items):", "", table(summary, "rare", tcols), "",
               f"Ideal loss (delta={args.delta}) over all user-item pairs from the true relevance, the objective "
               "Rel-MF's estimator targets (lower is better; pointwise methods only are calibrated):", "",
               "| method | ideal loss |", "|---|---|"]
        for m, d in summary.items():
            md.append(f"| {m} | {d['ideal_loss']:.5f}" + (f" ± {d['ideal_loss_se']:.5f}" if "ideal_loss_se" in d else "")
                      + " |")
        md.append("")
    if tuning:
        md += [f"Tuned ({args.tune} Optuna trials per method, {args.tune_metric} on {args.valid_fraction:g} of each "
               "user's biased training clicks; these values then trained on all training clicks):", "",
               "| method | validation | best values |", "|---|---|---|"]
        for m, t in tuning.items():
            vals = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["best_params"].items())
            md.append(f"| {m} | {t['best_value']:.4f} | {vals} |")
        md.append("")
    text = "\n".join(md)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stem = f"mnar_{args.dataset}" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
        (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1))
        (RESULTS / f"{stem}.md").write_text(text + "\n")
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(result))
    else:
        print(text)
        print(f"wall time {result['wall_s']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
