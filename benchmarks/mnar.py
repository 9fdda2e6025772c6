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

The authors' protocol (``--protocol authors``, issue 18; Coat and Yahoo! R3)
---------------------------------------------------------------------------
Saito's code for the ICTIR'20 paper (usaito/unbiased-pairwise-rec: ``src/preprocess/preprocessor.py``,
``src/models/recommenders.py``, ``src/trainer.py``, ``src/evaluate/{evaluator,metrics}.py``,
``conf/{config,hyper_params}.yaml``) as Dassen, Chintam & Feenstra's replication ran it (Maximeswd/RecSys,
whose ``paper_results/coat/original/ranking_all.csv`` is the table compared against), rebuilt on our torch
Trainer (Adam) and MF (no biases, Xavier-uniform start):

- data (:class:`AuthorsData`): ratings >= 4 are the training positives, every other pair is unlabeled;
  item propensities ``(n_i / n_users)^0.5`` on Coat, ``(n_i / max n)^0.5`` on Yahoo! R3; 10% of all
  pairs held out; 10 pre-sampled items ``j`` per click (BPR: unlabeled ones; UBPR: any, clicked or not);
- training: 1000 steps of 256 rows drawn with replacement, Adam lr 0.001, L2 on the whole tables;
  BPR and UBPR on the fixed pairs, WMF, naive and Rel-MF on batches of half clicks, half unlabeled
  pairs with the squared loss; their tuned ``dim``, ``lam``, ``clip``, ``beta``, ``weight``
  (:data:`AUTHORS_HYPER_PARAMS`); ``--tune N`` gives every method N trials instead;
- test (:func:`authors_metrics`): every rated randomized pair is a candidate, only ratings of 5 are
  relevant (their array is integer: the graded relevance is truncated), DCG with ranks 1 and 2 both
  weighted 1, divided by the user's relevant items, averaged over *all* test users (a user without a
  relevant item counts 0). Beside it, the same models under :data:`METRIC_VARIANTS` (one change at a
  time, then ours), a random order's expectation and the popularity order (the replication's ``ip``).

Flags for the ablations: ``--authors-positives``, ``--authors-propensity``, ``--authors-params`` (the
replication's own tuned values), ``--authors-redraw`` (a new split and new pairs for each run: their runs
share one draw), ``--factors``, ``--lam``, ``--max-iters``, ``--beta``, ``--clip``. The JSON's ``runs`` and
``paired_vs_bpr`` compare each method with BPR run by run. The ``ours`` protocol also reports every model
under the authors' metrics (``authors/...``).

Usage::

    python benchmarks/mnar.py --dataset coat --data-dir ../shared/data
    python benchmarks/mnar.py --protocol authors --dataset coat --data-dir ../shared/data --json
    python benchmarks/mnar.py --dataset synthetic --json     # last stdout line: one JSON object
    python benchmarks/mnar.py --dataset coat --quick         # a tiny run (seconds)
    python benchmarks/mnar.py --dataset coat --tune 100      # same tuning budget per method
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from recsampling._utils import positive_int
from recsampling.bench.contenders import Ours
from recsampling.bench.flags import add_flags, emit, write_results
from recsampling.bench.report import mean_se_by, method_table
from recsampling.propensity import DEFAULT_CLIP

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
def load_mnar_task(dataset: str, data_dir: str, seed: int, quick: bool):
    """The biased clicks and the randomized test of ``dataset`` (ratings >= 4 positive), ranked per user."""
    from recsampling.tasks import load_task

    world = dict(QUICK_WORLD if quick else SYNTHETIC_WORLD, n_logged_lists=0) if dataset == "synthetic" else None
    try:
        return load_task(dataset, data_dir=data_dir, seed=seed, world=world, ks=KS)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"benchmarks/mnar.py: cannot load {dataset!r} from {data_dir!r}: {e}") from None


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
    hp = dict(hp or {})
    name, params = sampler_for(method, args, train, hp)
    fit = Ours(args.model, name).fit(train, dict(factors=int(hp.get("factors", args.factors)), sampler_params=params,
                                                 epochs=args.epochs, batch_size=args.batch_size, optimizer="adam",
                                                 lr=hp.get("lr", args.lr), l2=hp.get("l2", args.l2), backend="torch"),
                                     seed, n_threads=args.threads, device=args.device)
    return fit.model


def run_one(task, rare_items: np.ndarray, method: str, seed: int, args, hp: dict | None = None) -> dict:
    """Fit ``method`` and score it on all test candidates and on the rare ones (``rare_items``, -1 padded)."""
    import dataclasses

    t0 = time.perf_counter()
    model = fit_model(task.train, method, seed, args, hp)
    fit_s = time.perf_counter() - t0

    out = {"fit_s": fit_s}
    truth = ["true_dcg", "true_ndcg", "true_recall"] if task.relevance is not None else []
    if truth:
        out["ideal_loss"] = ideal_loss(model, task.relevance, args.delta)
    groups = {"all": task, "rare": dataclasses.replace(task, test_items=rare_items)}
    for group, t in groups.items():
        res = t.evaluate(model, metrics=list(BASE_METRICS) + truth, device=args.device)
        d = res.to_dict()
        pu = res.per_user
        n_rel = n_rel_in(t.test_items, task.test, pu)
        for k in KS:
            for m in BASE_METRICS + tuple(truth):
                out[f"{group}/{m}@{k}"] = d[f"{m}@{k}"]
            out[f"{group}/dcg_norm@{k}"] = float(np.mean(pu[f"dcg@{k}"].to_numpy() / n_rel))
        out[f"{group}/n_users"] = d["n_users"]
        if group == "all":
            out.update(rare_share(model, task.test_items, rare_items, pu.index.to_numpy(), args.device))
    if task.relevance is None:  # real data: the same model under the authors' metrics (issue 18)
        ev = AuthorsEvaluation(task.source.test)
        out.update({f"authors/{k}": v for k, v in ev(model, variants=False).items()})
    return out


def rare_share(model, cand: np.ndarray, rare_cand: np.ndarray, users: np.ndarray, device: str = "cpu") -> dict:
    """Share of rare items among each user's top-K of all test candidates (mean over ``users``).

    ``all/rare_share@K`` shows whether a method moves rare items up *against popular ones*,
    which the rare-item metrics (rare items ranked among themselves) do not see;
    ``all/rare_share_random`` is its value under a random order (the rare share of the candidates).
    """
    from recsampling.scoring import rank_candidates

    U, V = model.embedding_tables()
    ids, _ = rank_candidates(U, V, cand, users=users, device=device)
    is_rare = np.zeros(V.shape[0] + 1, dtype=bool)  # the last slot stands for the -1 padding
    is_rare[rare_cand[rare_cand >= 0]] = True
    rare = is_rare[ids]
    n_ok = (ids >= 0).sum(1)
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
    import scipy.sparse as sp

    rows, cols = np.nonzero(cand >= 0)
    cand_m = sp.csr_matrix((np.ones(rows.size), (rows, cand[rows, cols])), shape=test.shape)
    return np.asarray(test.matrix.astype(bool).multiply(cand_m).sum(1)).ravel()[per_user.index.to_numpy()]


# ================================================================================================
# The authors' protocol (issue 18): usaito/unbiased-pairwise-rec as its code runs, on our torch path
# ================================================================================================
#: ``conf/hyper_params.yaml`` of usaito/unbiased-pairwise-rec (commit 42d3957): the authors' Optuna-tuned
#: values (``dim`` embedding size, ``lam`` L2, Rel-MF's ``clip``, UBPR's ``beta``, WMF's ``weight``).
#: ``naive`` is not theirs: Rel-MF's values with every propensity 1 (the control for the propensities).
AUTHORS_HYPER_PARAMS = {
    "coat": {
        "bpr": {"dim": 260, "lam": 3.910002376153659e-06},
        "relmf": {"dim": 300, "lam": 1.3828770780317699e-06, "clip": 0.002808891158289788},
        "ubpr": {"dim": 300, "lam": 3.455516424748458e-05, "beta": 0.007984890088077323},
        "wmf": {"dim": 140, "lam": 5.177711406094569e-07, "weight": 0.886018545949848},
    },
    "yahoo-r3": {
        "bpr": {"dim": 140, "lam": 7.011439614047492e-06},
        "relmf": {"dim": 160, "lam": 1.0586149071898904e-07, "clip": 0.01639041939021016},
        "ubpr": {"dim": 100, "lam": 3.841660685128071e-05, "beta": 0.0023407751833139324},
        "wmf": {"dim": 120, "lam": 1.0116917938768408e-07, "weight": 0.9682271409862864},
    },
}
#: the replication's own Optuna values (objective: each method's validation *loss*), for ``--authors-params``:
#: ``conf/original_hyper_params.yaml`` of Maximeswd/RecSys (commit a0ed62f, = ``all_results/conf/``) and its
#: later ``all_results/conf/latest/original_hyper_params.yaml`` (commit a9d1da2)
REPLICATION_HYPER_PARAMS = {
    "replication": {
        "coat": {
            "bpr": {"dim": 280, "lam": 3.690284488456918e-07},
            "relmf": {"dim": 300, "lam": 1.0057125721944043e-07, "clip": 0.07583220539849722},
            "ubpr": {"dim": 220, "lam": 8.240266689655904e-05, "beta": 3.1637299964684225},
            "wmf": {"dim": 300, "lam": 2.09971735574658e-07, "weight": 0.9732943620778397},
        },
        "yahoo-r3": {
            "bpr": {"dim": 300, "lam": 2.7528800434631712e-06},
            "relmf": {"dim": 280, "lam": 0.0004835676624950049, "clip": 0.4484084639148981},
            "ubpr": {"dim": 300, "lam": 1.0488896849983888e-05, "beta": 9.802585735290954},
            "wmf": {"dim": 120, "lam": 0.0007648175362667938, "weight": 0.999930113983722},
        },
    },
    "replication-latest": {
        "coat": {
            "bpr": {"dim": 280, "lam": 1.0022970059130204e-07},
            "relmf": {"dim": 300, "lam": 6.903148593768557e-07, "clip": 0.49937618260074035},
            "ubpr": {"dim": 220, "lam": 9.578218902944775e-05, "beta": 9.506229235786334},
            "wmf": {"dim": 200, "lam": 1.2739740137905204e-05, "weight": 0.43525959130057196},
        },
    },
}
REPLICATION_HYPER_PARAMS["replication-latest"]["yahoo-r3"] = REPLICATION_HYPER_PARAMS["replication"]["yahoo-r3"]
AUTHORS_METHODS = ("wmf", "naive", "relmf", "bpr", "ubpr")
#: ``conf/config.yaml``: Adam's learning rate and the batch size. Its ``max_iters: 10`` cannot be what the
#: papers ran (the models stay at random level, usaito/unbiased-pairwise-rec#3); 1000 is the default of
#: ``max_iters`` in their ``trainer.py`` (``Trainer``, ``train_pointwise``, ``train_pairwise``).
AUTHORS_TRAINING = {"eta": 0.001, "batch_size": 256, "max_iters": 1000}
AUTHORS_PAIRS_PER_CLICK = 10  # ``samples = 10`` in preprocessor.py: the pre-sampled items j of each click
AUTHORS_VALID_FRACTION = 0.1  # ``train_test_split(train, test_size=0.1)`` over *all* user-item pairs
AUTHORS_DATA_SEED = 12345  # their preprocessing seeds (split, Bernoulli labels, pair samples)
#: Dassen, Chintam & Feenstra's replication with the authors' code (Maximeswd/RecSys,
#: ``paper_results/coat/original/ranking_all.csv``, mean of 10 runs), and the s.e. of DCG@5 over those runs
#: computed from their per-run ``logs/coat/original/<method>/results/aoa_all.csv``.
REPLICATION_COAT = {
    "wmf": {"dcg@3": 0.1068805, "dcg@5": 0.1319969, "dcg@8": 0.1540414, "recall@3": 0.115882, "recall@5": 0.1695573,
            "recall@8": 0.230657, "map@3": 0.0924302, "map@5": 0.1092844, "map@8": 0.1233268, "dcg@5_se": 0.0029},
    "expomf": {"dcg@3": 0.0865942, "dcg@5": 0.106924, "dcg@8": 0.1269105, "recall@3": 0.0939856, "recall@5": 0.1377351,
               "recall@8": 0.1932206, "map@3": 0.074343, "map@5": 0.0876369, "map@8": 0.1005059},
    "relmf": {"dcg@3": 0.11021, "dcg@5": 0.134262, "dcg@8": 0.154623, "recall@3": 0.1207213, "recall@5": 0.1723246,
              "recall@8": 0.2285654, "map@3": 0.0934413, "map@5": 0.1101561, "map@8": 0.123643, "dcg@5_se": 0.0022},
    "bpr": {"dcg@3": 0.1067488, "dcg@5": 0.128614, "dcg@8": 0.1498999, "recall@3": 0.1185171, "recall@5": 0.1653725,
            "recall@8": 0.2244584, "map@3": 0.0897395, "map@5": 0.1041108, "map@8": 0.117158, "dcg@5_se": 0.0024},
    "ubpr": {"dcg@3": 0.11121, "dcg@5": 0.132963, "dcg@8": 0.1527447, "recall@3": 0.1209261, "recall@5": 0.167691,
             "recall@8": 0.2229563, "map@3": 0.0959539, "map@5": 0.1108479, "map@8": 0.1237603, "dcg@5_se": 0.0015},
    "popularity": {"dcg@3": 0.0854458, "dcg@5": 0.1109223, "dcg@8": 0.1343302, "recall@3": 0.0969048,
                   "recall@5": 0.152645, "recall@8": 0.2177915, "map@3": 0.0694349, "map@5": 0.0853155,
                   "map@8": 0.1028948},
}
#: the metric definitions reported beside the authors' (each a change of one thing, then ours)
METRIC_VARIANTS = {
    "relevant_users": "mean over the users with a relevant test item only (not over all users)",
    "standard_discount": "DCG discount 1/log2(r+1) (the authors weight ranks 1 and 2 both by 1)",
    "ratings_ge4": "ratings >= 4 relevant in the test set (the authors' code keeps only ratings of 5)",
    "ours": "this package's protocol: ratings >= 4 relevant, DCG unnormalised with 1/log2(r+1), "
            "Recall and MAP of recsampling.metrics, users with a relevant test item",
}


class AuthorsData:
    """Coat or Yahoo! R3 preprocessed as ``src/preprocess/preprocessor.py`` of the authors' code does.

    Steps (each one named by what their code does):

    1. **Training positives.** ``positives="threshold"``: ratings >= 4 (the replication's
       ``transform_rating`` rounds ``0.1 + 0.9 (2^(r-1) - 1) / 15`` to 0 or 1, which is exactly
       ``r >= 4``); ``"bernoulli"``: each rated pair is a positive with probability
       ``0.1 + 0.9 (2^(r-1) - 1) / 15`` (usaito's original, seeded). Every other user-item pair is
       unlabeled (0).
    2. **Propensities**, per item, from all positives: ``"users"``: ``clip((n_i / n_users)^0.5, 1e-6, 1)``
       (their Coat formula as the replication fixed it: usaito's committed code fills its count matrix
       from every pair, labeled or not, so it gives 1 for every item: ``"ones"``); ``"max"``:
       ``(n_i / max n)^0.5`` (their Yahoo! R3 formula, floored at 1e-6 here for items without a
       positive); ``"auto"``: ``users`` on Coat, ``max`` on Yahoo! R3.
    3. **Split.** 10% of *all* user-item pairs (positive or not) are held out as validation; training
       uses the other 90%.
    4. **Pairs.** BPR: for each training positive ``(u, i)``, 10 distinct items ``j`` drawn from
       ``u``'s unlabeled training pairs (all of them when fewer). UBPR: 10 distinct items drawn from
       *all* of ``u``'s training pairs, clicked or not, the draw ``j = i`` dropped; each pair keeps
       ``Y_uj``, ``theta_i`` and ``theta_j``. Drawn once, then fixed for every run (their ``.npy`` files).
    5. **Test** (:class:`AuthorsEvaluation`). Every rated test pair is a candidate; its relevance is
       ``int((2^(r-1) - 1) / (2^(r_max-1) - 1))``: their array is integer, so the graded relevance is
       truncated and only the top rating (5) is relevant.

    Parameters
    ----------
    dataset : {"coat", "yahoo-r3"}
    data_dir : str
        The folder holding the data set's folder.
    positives : {"threshold", "bernoulli"}
    propensity : {"auto", "users", "max", "ones"}
    seed : int
        Seed of the Bernoulli labels, the split and the pair draws.
    """

    def __init__(self, dataset: str, data_dir: str, positives: str = "threshold", propensity: str = "auto",
                 seed: int = AUTHORS_DATA_SEED):
        from recsampling.data.datasets import load_dataset

        if positives not in ("threshold", "bernoulli"):
            raise ValueError(f"positives must be 'threshold' or 'bernoulli', got {positives!r}")
        if propensity not in ("auto", "users", "max", "ones"):
            raise ValueError(f"propensity must be 'auto', 'users', 'max' or 'ones', got {propensity!r}")
        try:
            ds = load_dataset(dataset, data_dir=data_dir)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"benchmarks/mnar.py: cannot load {dataset!r} from {data_dir!r}: {e}") from None
        if ds.test is None or ds.interactions.ratings is None:
            raise SystemExit(f"benchmarks/mnar.py: {dataset!r} needs ratings and a randomized test set")
        rng = np.random.default_rng(seed)
        tr = ds.interactions
        n_users, n_items = tr.shape
        self.dataset, self.n_users, self.n_items, self.ds = dataset, n_users, n_items, ds
        r = tr.ratings.astype(np.float64)
        if positives == "threshold":
            keep = r >= 4
        else:
            top = 2.0 ** (r.max() - 1) - 1
            keep = rng.random(r.size) < 0.1 + 0.9 * (2.0 ** (r - 1) - 1) / top
        flat = tr.user_index()[keep] * n_items + tr.item_index()[keep]
        self.is_pos = np.zeros(n_users * n_items, dtype=bool)
        self.is_pos[flat] = True
        counts = np.bincount(tr.item_index()[keep], minlength=n_items).astype(np.float64)
        self.item_counts = counts
        self.propensity = {"auto": "users" if dataset == "coat" else "max"}.get(propensity, propensity)
        if self.propensity == "users":
            self.theta = np.clip(np.sqrt(counts / n_users), 1e-6, 1.0)
        elif self.propensity == "max":
            self.theta = np.clip(np.sqrt(counts / max(counts.max(), 1.0)), 1e-6, 1.0)
        else:
            self.theta = np.ones(n_items)
        n_pairs = n_users * n_items
        self.in_val = np.zeros(n_pairs, dtype=bool)
        self.in_val[rng.choice(n_pairs, size=int(np.ceil(AUTHORS_VALID_FRACTION * n_pairs)), replace=False)] = True
        train_pos = np.flatnonzero(self.is_pos & ~self.in_val)
        self.pos_users, self.pos_items = train_pos // n_items, train_pos % n_items
        val_pos = np.flatnonzero(self.is_pos & self.in_val)
        self.val_users, self.val_items = val_pos // n_items, val_pos % n_items
        self.unlabeled = ~self.is_pos & ~self.in_val  # the pointwise methods' unlabeled training pairs
        # the pre-sampled pairs: j among the user's unlabeled training pairs (BPR) or all of them (UBPR)
        u, i, j = _draw_pairs(self.unlabeled, self.pos_users, self.pos_items, n_items, AUTHORS_PAIRS_PER_CLICK, rng)
        self.bpr = {"users": u, "pos": i, "neg": j}
        u, i, j = _draw_pairs(~self.in_val, self.pos_users, self.pos_items, n_items, AUTHORS_PAIRS_PER_CLICK, rng)
        keep_j = j != i
        u, i, j = u[keep_j], i[keep_j], j[keep_j]
        self.ubpr = {"users": u, "pos": i, "neg": j, "click_j": self.is_pos[u * n_items + j]}
        # the training positives as an Interactions (sizes the model; the Trainer's sampler contract)
        from recsampling.data.interactions import Interactions

        self.train = Interactions.from_indices(self.pos_users, self.pos_items, (n_users, n_items))

    def info(self) -> dict:
        """Sizes, and the spread of the weights of Rel-MF's clicks and UBPR's pairs (the variance the
        clip and the clamp act on)."""
        inv = 1.0 / self.theta[self.pos_items]
        c = self.ubpr["click_j"]
        w = (1.0 / self.theta[self.ubpr["pos"]]) * (1.0 - c / self.theta[self.ubpr["neg"]])
        ev = AuthorsEvaluation(self.ds.test)
        return {
            "n_users": self.n_users, "n_items": self.n_items, "positives": int(self.is_pos.sum()),
            "train_positives": int(self.pos_users.size), "valid_positives": int(self.val_users.size),
            "bpr_pairs": int(self.bpr["users"].size), "ubpr_pairs": int(self.ubpr["users"].size),
            "ubpr_pairs_clicked_j": int(c.sum()), "test_pairs": int(ev.mask.sum()),
            "test_relevant": int(ev.rel.sum()), "test_users": int(ev.users.size),
            "test_users_with_relevant": int((ev.rel.sum(1) > 0).sum()), "propensity": self.propensity,
            "theta_min": float(self.theta.min()), "theta_max": float(self.theta.max()),
            "click_weight_mean": float(inv.mean()), "click_weight_sd": float(inv.std()),
            "click_weight_max": float(inv.max()),
            "ubpr_weight_mean": float(w.mean()), "ubpr_weight_sd": float(w.std()), "ubpr_weight_min": float(w.min()),
            "ubpr_weight_max": float(w.max()),
        }


def distinct_draws(sizes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """For each row ``r``, ``min(k, sizes[r])`` distinct indices drawn uniformly from ``[0, sizes[r])``.

    Floyd's algorithm, one vectorized step per draw (``k`` steps, whatever the number of rows): step
    ``s`` draws ``t`` uniformly from ``[0, sizes - k + s]`` and takes ``sizes - k + s`` instead when
    ``t`` was taken already, which makes every subset of the row's size equally likely.

    Parameters
    ----------
    sizes : numpy.ndarray of int, shape (R,)
    k : int
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int64, shape (R, k)
        The indices, ``-1`` where a row has fewer than ``k``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    out = np.full((sizes.size, k), -1, dtype=np.int64)
    for s in range(k):
        top = sizes - k + s
        t = np.floor(rng.random(sizes.size) * (top + 1)).astype(np.int64)
        taken = (out[:, :s] == t[:, None]).any(axis=1)
        out[:, s] = np.where(top >= 0, np.where(taken, top, t), -1)
    return out


def _draw_pairs(pool: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int, k: int, rng) -> tuple:
    """For each row ``(users[r], items[r])``, up to ``k`` distinct items ``j`` from the row user's ``pool``
    (a flat users x items mask); returns the flat ``(user, item, j)`` triples."""
    pool_users, pool_items = np.divmod(np.flatnonzero(pool), n_items)
    indptr = np.zeros(pool.size // n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(pool_users, minlength=indptr.size - 1), out=indptr[1:])
    pos = distinct_draws(indptr[users + 1] - indptr[users], k, rng)
    row, col = np.nonzero(pos >= 0)
    return users[row], items[row], pool_items[indptr[users[row]] + pos[row, col]]


def _authors_l2(model, lam: float):
    """``lam * (tf.nn.l2_loss(U) + tf.nn.l2_loss(V))``: half the squared norm of the whole tables (the
    model's parameters: the two factor tables of an MF without biases), not only of the batch's rows."""
    return lam * 0.5 * sum(p.pow(2).sum() for p in model.parameters())


def _authors_samplers():
    """The authors' two training loops as :class:`~recsampling.samplers.base.Sampler` s (built lazily:
    importing this script must not import torch)."""
    import torch

    from recsampling.samplers.base import Batch, Sampler
    from recsampling.samplers.mnar import delta_losses, ubpr_terms

    class AuthorsPairwise(Sampler):
        """``train_pairwise``: ``max_iters`` batches drawn *with replacement* from the fixed pairs; the
        loss is ``mean(clamp(-(1/theta_i)(1 - Y_j/theta_j) log sigma(s_ui - s_uj), -beta)) + L2``
        (``PairwiseRecommender.create_losses``), i.e. :func:`recsampling.samplers.mnar.ubpr_terms` with
        the propensities unclipped (``clip=None``; ``clip`` is our ablation). BPR: ``theta = 1``,
        ``Y_j = 0``, no clamp. A batch's ``labels`` are ``(1, Y_j)``; the per-item ``theta`` is a buffer
        the loss gathers by item."""

        name = "authors_pairwise"

        def __init__(self, users, pos, neg, theta, click_j, beta, lam, steps, clip=None):
            super().__init__()
            self.users, self.pos, self.neg, self.click_j = users, pos, neg, click_j
            self.register_buffer("theta", torch.as_tensor(theta, dtype=torch.float32), persistent=False)
            self.beta, self.lam, self.steps, self.clip = beta, lam, int(steps), clip

        def n_samples(self) -> int:
            return self.steps

        def batches(self, batch_size, rng):
            for _ in range(self.steps):
                idx = rng.integers(0, self.users.size, size=batch_size)
                yield Batch(users=self.users[idx], items=np.stack([self.pos[idx], self.neg[idx]], axis=1),
                            labels=np.stack([np.ones(idx.size, np.float32), self.click_j[idx]], axis=1))

        def loss(self, model, batch):
            s = model.score(batch.users, batch.items)
            theta = self.theta[batch.items]
            terms = ubpr_terms(s[:, 0], s[:, 1], 1.0, theta[:, 0], batch.labels[:, 1], theta[:, 1],
                               clip=self.clip, beta=self.beta)
            return terms.mean() + _authors_l2(model, self.lam)

    class AuthorsPointwise(Sampler):
        """``train_pointwise``: each batch holds ``batch_size / 2`` training positives and as many
        unlabeled training pairs, both drawn with replacement; the loss is
        ``sum(clamp((Y/theta~) (1 - sigma)^2 + w (1 - Y/theta~) sigma^2, -1000, 1000)) / sum(Y + w (1 - Y)) + L2``
        with ``theta~ = clip(theta, M, 1)`` (``PointwiseRecommender.create_losses``); WMF and naive:
        ``theta = 1``; Rel-MF and naive: ``w = 1``. A batch row is one pair (``items`` (B, 1), ``labels``
        (B, 1)); the per-item ``theta`` is a buffer the loss gathers for the labelled pairs."""

        name = "authors_pointwise"

        def __init__(self, pos_users, pos_items, theta, unlabeled, n_items, weight, clip, lam, steps):
            super().__init__()
            self.pos_users, self.pos_items = pos_users, pos_items
            self.register_buffer("theta", torch.as_tensor(theta, dtype=torch.float32), persistent=False)
            self.unlabeled, self.n_items = unlabeled, n_items
            self.weight, self.clip, self.lam, self.steps = float(weight), float(clip), lam, int(steps)
            self._share = max(float(unlabeled.mean()), 1e-3)

        def n_samples(self) -> int:
            return self.steps

        def _unlabeled(self, n: int, rng) -> np.ndarray:
            """``n`` pairs drawn uniformly (with replacement) from the unlabeled training pairs (rejection)."""
            out = np.empty(0, dtype=np.int64)
            while out.size < n:
                cand = rng.integers(0, self.unlabeled.size, size=int(1.2 * (n - out.size) / self._share) + 8)
                out = np.concatenate([out, cand[self.unlabeled[cand]]])
            return out[:n]

        def batches(self, batch_size, rng):
            half = batch_size // 2
            for _ in range(self.steps):
                p = rng.integers(0, self.pos_users.size, size=half)
                q = self._unlabeled(half, rng)
                yield Batch(users=np.concatenate([self.pos_users[p], q // self.n_items]),
                            items=np.concatenate([self.pos_items[p], q % self.n_items])[:, None],
                            labels=np.concatenate([np.ones(half), np.zeros(half)]).astype(np.float32)[:, None])

        def loss(self, model, batch):
            items = batch.items[:, 0]
            s = model.score(batch.users, items)
            y = batch.labels[:, 0].to(s.dtype)
            d1, d0 = delta_losses(s, "squared")
            theta = torch.where(y > 0.5, self.theta[items].to(s.dtype), torch.ones_like(s))  # unlabeled: 1
            w = y / theta.clamp(min=self.clip, max=1.0)
            local = (w * d1 + self.weight * (1.0 - w) * d0).clamp(-1000.0, 1000.0)
            return local.sum() / (y + self.weight * (1.0 - y)).sum() + _authors_l2(model, self.lam)

    return AuthorsPairwise, AuthorsPointwise


def authors_params(method: str, args) -> dict:
    """The tuned values of ``method`` on ``args.dataset`` (``args.authors_params``: the authors' or the
    replication's), with the flags' overrides."""
    source = getattr(args, "authors_params", "saito")
    base = AUTHORS_HYPER_PARAMS[args.dataset] if source == "saito" else REPLICATION_HYPER_PARAMS[source][args.dataset]
    p = dict(base["relmf"] if method == "naive" else base[method])
    p.setdefault("weight", 1.0)
    p.setdefault("clip", 0.0)
    p.setdefault("beta", None)
    if args.factors is not None:
        p["dim"] = args.factors
    if args.lam is not None:
        p["lam"] = args.lam
    if args.beta != "default" and method == "ubpr":
        p["beta"] = args.beta
    p["ubpr_clip"] = args.clip if method == "ubpr" else None  # ours clips UBPR's propensities, theirs not
    if args.clip is not None and method == "relmf":
        p["clip"] = args.clip
    return p


def fit_authors(data: AuthorsData, method: str, seed: int, args, params: dict | None = None):
    """Train ``method`` the authors' way: their loss, batches and L2, their MF (no bias, Xavier uniform
    initialisation), Adam with their learning rate, on our torch Trainer."""
    import torch

    from recsampling.models import make_model
    from recsampling.train import Trainer

    p = dict(authors_params(method, args), **(params or {}))
    pairwise, pointwise = _authors_samplers()
    if method in ("bpr", "ubpr"):
        pairs = data.bpr if method == "bpr" else data.ubpr
        n = pairs["users"].size
        if method == "bpr":
            theta = np.ones(data.n_items)
            click_j = np.zeros(n, np.float32)
            beta, clip = None, None
        else:
            theta = data.theta
            click_j = pairs["click_j"].astype(np.float32)
            beta, clip = p["beta"], p["ubpr_clip"]
        sampler = pairwise(pairs["users"], pairs["pos"], pairs["neg"], theta, click_j,
                           beta=beta, lam=p["lam"], steps=args.max_iters, clip=clip)
    else:
        theta = data.theta if method == "relmf" else np.ones(data.n_items)
        sampler = pointwise(data.pos_users, data.pos_items, theta, data.unlabeled, data.n_items,
                            weight=p["weight"] if method == "wmf" else 1.0,
                            clip=p["clip"] if method == "relmf" else 0.0, lam=p["lam"], steps=args.max_iters)
    model = make_model("mf", data.train, factors=int(p["dim"]), item_bias=False, user_bias=False, random_state=seed)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():  # tf.contrib.layers.xavier_initializer: U(-a, a), a = sqrt(6 / (rows + dim))
        for w in (model.user_factors.weight, model.item_factors.weight):
            a = float(np.sqrt(6.0 / (w.shape[0] + w.shape[1])))
            w.uniform_(-a, a, generator=gen)
    Trainer(epochs=1, batch_size=args.batch_size, optimizer="adam", lr=args.lr, l2=0.0, device=args.device,
            random_state=seed, backend="torch", n_threads=args.threads, progress=False).fit(model, sampler, data.train)
    return model


def _by_user(users: np.ndarray, *columns: np.ndarray):
    """Group rows by user into padded (n_groups, width) matrices; returns (group users, mask, columns...)."""
    order = np.argsort(users, kind="stable")
    users = users[order]
    uniq, start, counts = np.unique(users, return_index=True, return_counts=True)
    pos = np.arange(users.size) - np.repeat(start, counts)
    mask = np.zeros((uniq.size, int(counts.max()) if counts.size else 0), dtype=bool)
    g = np.repeat(np.arange(uniq.size), counts)
    mask[g, pos] = True
    out = []
    for c in columns:
        m = np.zeros(mask.shape, dtype=np.asarray(c).dtype)
        m[g, pos] = np.asarray(c)[order]
        out.append(m)
    return uniq, mask, out


def authors_metrics(scores: np.ndarray, mask: np.ndarray, relevance: np.ndarray, ks=KS, discount: str = "authors",
                    users: str = "all", inv_propensity: np.ndarray | None = None) -> dict:
    """DCG@K, Recall@K and MAP@K of ``src/evaluate/metrics.py`` in the authors' code, for every user at once.

    Per user, the candidates are sorted by score; with ``y`` the relevance in that order, ``v = 1/theta``
    (1 without propensities) and ``K' = min(K, n candidates)``:

    - ``DCG@K = sum_{r <= K'} y_r v_r d_r / Z`` with ``d_1 = 1, d_r = 1 / log2(r)`` (``discount="authors"``:
      ranks 1 and 2 both weigh 1) or ``d_r = 1 / log2(r + 1)`` (``"standard"``);
    - ``Recall@K = sum_{r <= K'} y_r v_r / Z``;
    - ``MAP@K = sum_{r <= K', y_r > 0} (sum_{q <= r} y_q v_q) / r / Z``;

    with ``Z = sum y`` (without propensities) or ``Z = sum_{y > 0} v``; a user without a relevant
    candidate scores 0 and, with ``users="all"`` (their ``aoa_evaluator``), still counts in the mean;
    ``users="relevant"`` averages over the others only.

    Parameters
    ----------
    scores, mask, relevance : numpy.ndarray, shape (n_users, width)
        Candidate scores, which entries are candidates, and their relevance.
    ks : iterable of int
    discount : {"authors", "standard"}
    users : {"all", "relevant"}
    inv_propensity : numpy.ndarray, optional
        ``1 / theta`` of each candidate (the authors' unbiased evaluator).

    Returns
    -------
    dict
        ``dcg@K``, ``recall@K``, ``map@K`` (means) and ``n_users`` (users averaged over).
    """
    if discount not in ("authors", "standard"):
        raise ValueError(f"discount must be 'authors' or 'standard', got {discount!r}")
    if users not in ("all", "relevant"):
        raise ValueError(f"users must be 'all' or 'relevant', got {users!r}")
    v = np.ones(scores.shape) if inv_propensity is None else inv_propensity
    order = np.argsort(np.where(mask, -scores, np.inf), axis=1, kind="stable")
    y = np.take_along_axis(np.where(mask, relevance, 0.0), order, axis=1)
    yv = y * np.take_along_axis(v, order, axis=1)
    z = y.sum(1) if inv_propensity is None else np.where(y > 0, np.take_along_axis(v, order, axis=1), 0.0).sum(1)
    has = z > 0
    zz = np.where(has, z, 1.0)
    width = scores.shape[1]
    r = np.arange(1, width + 1, dtype=np.float64)
    d = 1.0 / np.log2(r + 1) if discount == "standard" else np.r_[1.0, 1.0 / np.log2(r[1:])]
    n_cand = mask.sum(1)
    prec = np.cumsum(yv, axis=1) / r
    keep = has if users == "relevant" else np.ones_like(has)
    out = {"n_users": int(keep.sum())}
    for k in ks:
        top = r[None, :] <= np.minimum(k, n_cand)[:, None]
        vals = {"dcg": (yv * d * top).sum(1), "recall": (yv * top).sum(1),
                "map": np.where((y > 0) & top, prec, 0.0).sum(1)}
        for name, x in vals.items():
            out[f"{name}@{k}"] = float(np.mean(np.where(has, x / zz, 0.0)[keep])) if keep.any() else float("nan")
    return out


class AuthorsEvaluation:
    """The authors' test evaluation (their ``aoa_evaluator``) and its variants (:data:`METRIC_VARIANTS`).

    Parameters
    ----------
    test : Interactions
        The randomized test ratings (with ``ratings``); every rated pair is a candidate, relevant as
        :class:`AuthorsData` says (step 5).
    """

    def __init__(self, test):
        ratings = test.ratings.astype(np.float64)
        relevance = np.floor((2.0 ** (ratings - 1) - 1) / (2.0 ** (ratings.max() - 1) - 1))
        self.users, self.mask, (self.items, self.rel, self.ratings) = _by_user(
            test.user_index(), test.item_index(), relevance, ratings)
        self.rel_ge4 = (self.ratings >= 4).astype(np.float64)
        self.test_ge4 = test.to_implicit(4.0)
        self.test_items = np.full((test.n_users, self.mask.shape[1]), -1, dtype=np.int64)
        self.test_items[self.users] = np.where(self.mask, self.items, -1)

    def __call__(self, model, variants: bool = True) -> dict:
        """The authors' ``dcg@K``, ``recall@K``, ``map@K`` of ``model``; with ``variants`` also
        ``<variant>/<metric>@K`` for each of :data:`METRIC_VARIANTS`."""
        from recsampling.evaluation import evaluate

        U, V = model.embedding_tables()
        s = np.einsum("uf,ujf->uj", U[self.users], V[self.items])
        out = {k: v for k, v in authors_metrics(s, self.mask, self.rel).items() if k != "n_users"}
        if not variants:
            return out
        kinds = {"relevant_users": dict(relevance=self.rel, users="relevant"),
                 "standard_discount": dict(relevance=self.rel, discount="standard"),
                 "ratings_ge4": dict(relevance=self.rel_ge4)}
        for name, kw in kinds.items():
            res = authors_metrics(s, self.mask, **kw)
            out.update({f"{name}/{k}": v for k, v in res.items() if k != "n_users"})
        res = evaluate(model, self.test_ge4, ks=KS, metrics=list(BASE_METRICS), protocol="test_items",
                       test_items=self.test_items, device="cpu").to_dict()
        out.update({f"ours/{m}@{k}": res[f"{m}@{k}"] for m in BASE_METRICS for k in KS})
        return out

    def baselines(self, item_counts: np.ndarray, n_ties: int = 10) -> dict:
        """Expected figures of a random order (exact) and of the popularity order (the replication's
        ``ip``: items ranked by ``item_counts``, the training positives), averaged over ``n_ties``
        random tie-breaks."""
        n = self.mask.sum(1).astype(np.float64)
        n_rel = self.rel.sum(1)
        has = n_rel > 0
        r = np.arange(1, self.mask.shape[1] + 1, dtype=np.float64)
        d = np.r_[1.0, 1.0 / np.log2(r[1:])]
        rand = {}
        for k in KS:
            top = r[None, :] <= np.minimum(k, n)[:, None]
            # P(relevant at rank r) = n_rel/n; E[precision@r | relevant at r] = (1 + (r-1)(n_rel-1)/(n-1)) / r
            p_hit = (1 + (r[None, :] - 1) * (n_rel[:, None] - 1) / np.maximum(n - 1, 1)[:, None]) / r[None, :]
            rand[f"dcg@{k}"] = float(np.mean(np.where(has, (d * top).sum(1) / n, 0.0)))
            rand[f"recall@{k}"] = float(np.mean(np.where(has, top.sum(1) / n, 0.0)))
            rand[f"map@{k}"] = float(np.mean(np.where(has, (p_hit * top).sum(1) / n, 0.0)))
        rng = np.random.default_rng(0)
        runs = [authors_metrics(item_counts[self.items] + rng.random(self.items.shape), self.mask, self.rel)
                for _ in range(n_ties)]
        pop = mean_se_by({"popularity": [{k: v for k, v in x.items() if k != "n_users"} for x in runs]})["popularity"]
        return {"random": rand, "popularity": pop}


def unbiased_validation_dcg(model, data: AuthorsData, k: int = 5, n_negatives: int = 100, seed: int = 0) -> float:
    """The authors' ``unbiased_evaluator``: per validation user, the held-out positives and 100 items the
    user has no positive for, DCG@K (their discount) with each positive weighted by ``1 / max(theta, 1e-3)``
    and self-normalised; the mean over the validation users. The tuning objective of ``--tune``."""
    rng = np.random.default_rng(seed)
    users = np.unique(data.val_users)
    cand = distinct_draws(np.full(users.size, data.n_items), min(n_negatives + 20, data.n_items), rng)
    neg_ok = ~data.is_pos[users[:, None] * data.n_items + np.maximum(cand, 0)] & (cand >= 0)
    neg_ok &= np.cumsum(neg_ok, axis=1) <= n_negatives
    nu, nc = np.nonzero(neg_ok)
    u_all = np.concatenate([data.val_users, users[nu]])
    i_all = np.concatenate([data.val_items, cand[nu, nc]])
    y_all = np.concatenate([np.ones(data.val_users.size), np.zeros(nu.size)])
    uu, mask, (items, y) = _by_user(u_all, i_all, y_all)
    U, V = model.embedding_tables()
    s = np.einsum("uf,ujf->uj", U[uu], V[items])
    inv = 1.0 / np.maximum(data.theta[items], 1e-3)
    return authors_metrics(s, mask, y, ks=(k,), inv_propensity=inv)[f"dcg@{k}"]


def tune_authors(data: AuthorsData, method: str, args) -> dict:
    """Optuna search (TPE, ``args.tune`` trials, seed ``args.tune_seed``) of ``method``'s values under the
    authors' protocol, scored by :func:`unbiased_validation_dcg` on the held-out 10% of the pairs. The
    space is the replication's (``src/tune.py`` of Maximeswd/RecSys: dim 100-300 by 20, lam 1e-7-1e-3
    log, WMF weight 1e-3-1) with UBPR's beta log-uniform in [1e-3, 10] and Rel-MF's clip log-uniform in
    [1e-3, 0.5] (wide enough to hold both the authors' and the replication's values). The same budget
    for every method; the test set is never seen."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        p = {"dim": trial.suggest_int("dim", 100, 300, step=20),
             "lam": trial.suggest_float("lam", 1e-7, 1e-3, log=True)}
        if method == "wmf":
            p["weight"] = trial.suggest_float("weight", 1e-3, 1.0)
        elif method == "ubpr":
            p["beta"] = trial.suggest_float("beta", 1e-3, 10.0, log=True)
        elif method == "relmf":
            p["clip"] = trial.suggest_float("clip", 1e-3, 0.5, log=True)
        model = fit_authors(data, method, args.tune_seed, args, p)
        value = unbiased_validation_dcg(model, data, seed=args.tune_seed)
        if not np.isfinite(value):
            raise optuna.TrialPruned("non-finite validation DCG")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.tune_seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=args.tune, catch=(ValueError, RuntimeError))
    return {"best_params": dict(study.best_params), "best_value": float(study.best_value),
            "metric": "unbiased_dcg@5 (validation)", "n_trials": len(study.trials), "wall_s": time.perf_counter() - t0}


def run_authors(args, methods: list[str]) -> dict:
    """The authors' protocol end to end: preprocess once (``--authors-redraw``: once per run), optionally
    tune, train each method over the seeds, evaluate with their metrics and the variants; returns the
    result dict."""
    t_start = time.perf_counter()

    def prepare(seed: int) -> AuthorsData:
        return AuthorsData(args.dataset, args.data_dir, args.authors_positives, args.authors_propensity, seed=seed)

    data = prepare(AUTHORS_DATA_SEED)
    ev = AuthorsEvaluation(data.ds.test)
    tuning = {}
    for m in methods if args.tune else ():
        tuning[m] = tune_authors(data, m, args)
        print(f"# tuned {m:6s} unbiased validation dcg@5={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
              f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        # their runs share one split and one draw of the pairs (fixed .npy files); redrawn, the runs'
        # spread also holds that draw's share of the variance
        run_data = prepare(AUTHORS_DATA_SEED + seed) if args.authors_redraw and seed else data
        for m in methods:
            t0 = time.perf_counter()
            model = fit_authors(run_data, m, seed, args, tuning.get(m, {}).get("best_params"))
            fit_s = time.perf_counter() - t0
            per_seed[m].append({**ev(model), "fit_s": fit_s})
            print(f"# seed {seed} {m:6s} dcg@5={per_seed[m][-1]['dcg@5']:.4f} ({fit_s:.1f}s)", file=sys.stderr,
                  flush=True)
    summary = mean_se_by(per_seed)
    ratios = {}
    if "bpr" in summary:
        for m in methods:
            for key in ["dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5"] + [f"{v}/dcg@5" for v in METRIC_VARIANTS]:
                ratios[f"{m}/{key}"] = summary[m][key] / summary["bpr"][key]
    shown = {"wmf": ("weight",), "relmf": ("clip",), "ubpr": ("beta", "ubpr_clip")}
    params = {m: {k: v for k, v in {**authors_params(m, args), **tuning.get(m, {}).get("best_params", {})}.items()
                  if k in ("dim", "lam") + shown.get(m, ())} for m in methods}
    replication = REPLICATION_COAT if args.dataset == "coat" else {}
    return {"benchmark": "mnar", "protocol": "authors", "data": data.info(), "methods": summary,
            "ratios_vs_bpr": ratios, "baselines": ev.baselines(data.item_counts), "replication": replication,
            "replication_ratios_vs_bpr": {f"{m}/{k}": d[k] / replication["bpr"][k] for m, d in replication.items()
                                          for k in ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5")},
            "params": params, "tuning": tuning, "metric_variants": METRIC_VARIANTS,
            "runs": {m: {k: [r[k] for r in per_seed[m]] for k in PAIRED_KEYS} for m in methods},
            "paired_vs_bpr": _paired_vs_bpr(per_seed), "wall_s": time.perf_counter() - t_start}


#: the figures kept per run (``runs``) and compared run by run with BPR (``paired_vs_bpr``)
PAIRED_KEYS = ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5", "ours/dcg@5")


def _paired_vs_bpr(per_seed: dict[str, list[dict]]) -> dict:
    """Mean and s.e. of ``method - bpr`` over the runs, run by run (run k of both shares its seed and,
    with ``--authors-redraw``, its data draw): ``<method>/<key>`` -> ``{"diff", "se"}``."""
    if "bpr" not in per_seed or len(per_seed["bpr"]) < 2:
        return {}
    out = {}
    for m, runs in per_seed.items():
        for k in PAIRED_KEYS:
            d = np.array([r[k] for r in runs]) - np.array([r[k] for r in per_seed["bpr"]])
            out[f"{m}/{k}"] = {"diff": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size))}
    return out


def _pairs(d: dict, spec: str) -> str:
    """``k=v, ...`` with the floats formatted by ``spec``."""
    return ", ".join(f"{k}={v:{spec}}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def authors_markdown(result: dict, args) -> str:
    """Tables of a :func:`run_authors` result: ours under their protocol, the replication, the variants."""
    summary, base = result["methods"], result["baselines"]
    cols = [f"{m}@{k}" for m in BASE_METRICS for k in KS]
    info = result["data"]
    md = [f"### {args.dataset}, the authors' protocol (mean ± s.e. over {args.seeds} runs; "
          f"{info['test_users_with_relevant']} of {info['test_users']} test users have a relevant test item)", "",
          method_table(summary, group="", metrics=cols), "",
          "| baseline | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    md.append("| random order (expected) | " + " | ".join(f"{base['random'][c]:.4f}" for c in cols) + " |")
    pop = base["popularity"]
    md.append("| popularity (10 tie-breaks) | " + " | ".join(f"{pop[c]:.4f} ± {pop[c + '_se']:.4f}" for c in cols)
              + " |")
    md.append("")
    rows = ["dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5"]
    md += ["Ratios to BPR of the same run, and the difference to BPR run by run (mean ± s.e.):", "",
           "| method | " + " | ".join(rows) + " | dcg@5 − BPR | ours dcg@5 − BPR |",
           "|---|" + "---|" * (len(rows) + 2)]
    for m in summary:
        paired = [result["paired_vs_bpr"].get(f"{m}/{k}") for k in ("dcg@5", "ours/dcg@5")]
        md.append(f"| {m} | " + " | ".join(f"{result['ratios_vs_bpr'].get(f'{m}/{r}', float('nan')):.3f}" for r in rows)
                  + "".join(f" | {d['diff']:+.4f} ± {d['se']:.4f}" if d else " | " for d in paired) + " |")
    md.append("")
    if result["replication"]:
        rep = result["replication"]
        md += ["The replication (Maximeswd/RecSys, `paper_results/coat/original/ranking_all.csv`, 10 runs):", "",
               "| method | " + " | ".join(cols) + " | dcg@5 / BPR |", "|---|" + "---|" * (len(cols) + 1)]
        for m, d in rep.items():
            md.append(f"| {m} | " + " | ".join(f"{d[c]:.4f}" for c in cols)
                      + f" | {d['dcg@5'] / rep['bpr']['dcg@5']:.3f} |")
        md.append("")
    md += ["DCG@5 under the other metric definitions, same models (ratio to BPR in brackets):", "",
           "| method | authors | " + " | ".join(METRIC_VARIANTS) + " |", "|---|---|" + "---|" * len(METRIC_VARIANTS)]
    for m, d in summary.items():
        cells = []
        for key in ["dcg@5"] + [f"{v}/dcg@5" for v in METRIC_VARIANTS]:
            ratio = result["ratios_vs_bpr"].get(f"{m}/{key}")
            cells.append(f"{d[key]:.4f} ± {d.get(key + '_se', float('nan')):.4f}"
                         + (f" ({ratio:.3f})" if ratio else ""))
        md.append(f"| {m} | " + " | ".join(cells) + " |")
    md += [""] + [f"- `{k}`: {v}" for k, v in METRIC_VARIANTS.items()] + [""]
    md += ["Settings: " + "; ".join(f"{m}: {_pairs(p, '.3g')}" for m, p in result["params"].items()), "",
           f"Data: {_pairs(info, '.4g')}", ""]
    if result["tuning"]:
        md += [f"Tuned ({args.tune} Optuna trials per method, the authors' unbiased DCG@5 on the held-out 10% "
               "of the pairs):", "", "| method | validation | best values |", "|---|---|---|"]
        for m, t in result["tuning"].items():
            md.append(f"| {m} | {t['best_value']:.4f} | {_pairs(t['best_params'], '.3g')} |")
        md.append("")
    return "\n".join(md)


def _beta_flag(text: str):
    """``--beta``: a number >= 0, or ``off`` for the unclamped estimator."""
    if text.strip().lower() == "off":
        return "off"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'off', got {text!r}")
    return value


def main_authors(args) -> int:
    """``--protocol authors``: resolve its defaults, run, print and write the tables."""
    import torch

    if args.dataset not in AUTHORS_HYPER_PARAMS:
        raise SystemExit(f"--protocol authors runs on {' and '.join(AUTHORS_HYPER_PARAMS)} (the authors' data sets), "
                         f"not {args.dataset!r}")
    methods = args.methods.split(",") if args.methods else list(AUTHORS_METHODS)
    for m in methods:
        if m not in AUTHORS_METHODS:
            raise SystemExit(f"unknown method {m!r} for --protocol authors; choose among {', '.join(AUTHORS_METHODS)}")
    if args.tune < 0:
        raise SystemExit("--tune must be >= 0")
    args.seeds = args.seeds or 10
    args.lr = AUTHORS_TRAINING["eta"] if args.lr is None else args.lr
    args.batch_size = AUTHORS_TRAINING["batch_size"] if args.batch_size is None else args.batch_size
    args.max_iters = args.max_iters or AUTHORS_TRAINING["max_iters"]
    if args.batch_size < 2:
        raise SystemExit("--batch-size must be >= 2 (the pointwise batches are half positives, half unlabeled)")
    if args.quick:
        args.seeds = min(args.seeds, 2)
        args.max_iters = min(args.max_iters, 100)
    if args.beta == "off":
        args.beta = None
    elif args.beta is None:
        args.beta = "default"
    result = run_authors(args, methods)
    config = {k: getattr(args, k) for k in ("dataset", "protocol", "seeds", "max_iters", "batch_size", "lr", "factors",
                                            "lam", "clip", "beta", "authors_positives", "authors_propensity",
                                            "authors_params", "authors_redraw", "tune", "tune_seed", "quick")}
    result.update({"config": config, "threads": args.threads, "python": platform.python_version(),
                   "torch": torch.__version__})
    _output(result, authors_markdown(result, args), f"mnar_{args.dataset}_authors", args)
    return 0


def _output(result: dict, text: str, stem: str, args) -> None:
    """Write ``<stem>[_quick][_<tag>].json/.md`` (unless ``--no-write``) and print the text (and the JSON)."""
    if not args.no_write:
        write_results(RESULTS, stem + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else ""),
                      result, text)
    emit(result, text, args.json, footer=f"wall time {result['wall_s']:.1f}s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("coat", "synthetic", "yahoo-r3"), default="coat")
    p.add_argument("--protocol", choices=("ours", "authors"), default="ours",
                   help="ours (default): this package's samplers, metrics and tuning; authors: the preprocessing, "
                        "training loops, tuned settings and metrics of usaito/unbiased-pairwise-rec (Coat, Yahoo! R3)")
    add_flags(p, "data_dir", "seeds", "threads", "quick", "json", "no_write", "tag", defaults={"seeds": None},
              helps={"data_dir": "folder holding coat/ (and yahoo-r3/); default ../shared/data",
                     "seeds": "seeds (model init, sampling; a new world on synthetic); default 5, 10 with --protocol "
                              "authors",
                     "threads": "torch CPU threads (1 is fastest for these small models on a shared machine)",
                     "quick": "a tiny run: 2 seeds, few epochs, a small world",
                     "tag": "suffix of the result files (mnar_<dataset>[_<tag>].json/.md)"})
    p.add_argument("--methods", default=None, help="comma-separated subset of " + ",".join(METHODS + EXTRA_METHODS)
                   + " (default: " + ",".join(METHODS) + "); with --protocol authors of " + ",".join(AUTHORS_METHODS))
    p.add_argument("--model", default="mf", choices=("mf", "twotower"))
    p.add_argument("--factors", type=int, default=None,
                   help="embedding size (authors: overrides every method's tuned dim)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="default per data set; 256 with --protocol authors")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate; 0.001 with --protocol authors")
    p.add_argument("--l2", type=float, default=None)
    p.add_argument("--clip", type=float, default=None,
                   help="propensity clipping M (Rel-MF, UBPR); default 0.1; with --protocol authors Rel-MF's tuned "
                        "value and no clipping of UBPR's propensities (given: both use it)")
    p.add_argument("--eta", type=float, default=0.5, help="popularity propensity exponent")
    p.add_argument("--delta", default="squared", choices=("squared", "log"), help="Rel-MF local loss family")
    p.add_argument("--unobserved-weight", default="unbiased",
                   help="Rel-MF / naive weight of a sampled unclicked pair: unbiased, balanced or a number")
    p.add_argument("--n-negatives", type=int, default=4, help="unclicked draws per click (naive, Rel-MF)")
    p.add_argument("--ubpr-negatives", type=int, default=4, help="items j per click (UBPR)")
    p.add_argument("--beta", type=_beta_flag, default=None,
                   help="UBPR's non-negative clamp at -beta, or 'off' (the unclamped estimator); default 0, "
                        "with --protocol authors their tuned value")
    p.add_argument("--rare-quantile", type=float, default=0.5)
    p.add_argument("--device", default="cpu")
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
    g = p.add_argument_group("--protocol authors")
    g.add_argument("--max-iters", type=positive_int, default=None,
                   help=f"training steps (batches) per fit; default {AUTHORS_TRAINING['max_iters']}")
    g.add_argument("--lam", type=float, default=None, help="L2 coefficient of every method (default: their tuned lam)")
    g.add_argument("--authors-positives", default="threshold", choices=("threshold", "bernoulli"),
                   help="training positives: ratings >= 4 (the replication's preprocessing, default) or Bernoulli "
                        "draws with P = 0.1 + 0.9 (2^(r-1) - 1) / 15 (usaito's original)")
    g.add_argument("--authors-propensity", default="auto", choices=("auto", "users", "max", "ones"),
                   help="item propensities: (n_i / n_users)^0.5 (users), (n_i / max n)^0.5 (max), 1 for every item "
                        "(ones: what usaito's committed Coat code computes); auto: users on Coat, max on Yahoo! R3")
    g.add_argument("--authors-redraw", action="store_true",
                   help="draw the validation split, the Bernoulli labels and the pairs anew for each run (seed "
                        f"{AUTHORS_DATA_SEED} + run); default: one draw for all runs, as their saved files")
    g.add_argument("--authors-params", default="saito", choices=("saito",) + tuple(REPLICATION_HYPER_PARAMS),
                   help="the tuned values trained: the authors' conf/hyper_params.yaml (saito, default) or the "
                        "replication's own (conf/original_hyper_params.yaml; -latest: all_results/conf/latest/)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, args.threads))
    if args.protocol == "authors":
        return main_authors(args)
    args.seeds = args.seeds or 5
    args.clip = DEFAULT_CLIP if args.clip is None else args.clip
    args.beta = {None: 0.0, "off": None}.get(args.beta, args.beta)
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
        task0 = load_mnar_task(args.dataset, args.data_dir, args.tune_seed, args.quick)
        for m in methods:
            tuning[m] = tune_method(task0.train, m, args, seed=args.tune_seed)
            print(f"# tuned {m:22s} {args.tune_metric}={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
                  f"({tuning[m]['wall_s']:.0f}s)", file=sys.stderr, flush=True)
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    info = {}
    for seed in range(args.seeds):
        task = load_mnar_task(args.dataset, args.data_dir, seed, args.quick)
        rare_items, thr = rare_candidates(task.train, task.test_items, args.rare_quantile)
        info = {"n_users": task.train.n_users, "n_items": task.train.n_items, "train_clicks": task.train.nnz,
                "test_positives": task.test.nnz, "rare_item_max_clicks": thr,
                "rare_items": int((task.train.item_counts() <= thr).sum())}
        for m in methods:
            per_seed[m].append(run_one(task, rare_items, m, seed, args, tuning.get(m, {}).get("best_params")))
            print(f"# seed {seed} {m:22s} dcg@5={per_seed[m][-1]['all/dcg@5']:.4f} "
                  f"recall@5={per_seed[m][-1]['all/recall@5']:.4f} ({per_seed[m][-1]['fit_s']:.1f}s)",
                  file=sys.stderr, flush=True)
    summary = mean_se_by(per_seed)

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
          "", method_table(summary, group="all", metrics=cols), "",
          f"Rare items (training clicks <= {info['rare_item_max_clicks']:g}; {info['rare_items']} of "
          f"{info['n_items']} items):", "", method_table(summary, group="rare", metrics=cols), ""]
    md += ["Share of rare items in each user's top K of all test items (random order: "
           f"{next(iter(summary.values()))['all/rare_share_random']:.3f}):", "",
           method_table(summary, group="all", metrics=[f"rare_share@{k}" for k in KS]), ""]
    md += ["DCG normalized by the user's relevant test items (Saito et al.'s scale):", "",
           method_table(summary, group="all", metrics=[f"dcg_norm@{k}" for k in KS]), ""]
    if "authors/dcg@5" in next(iter(summary.values())):
        md += ["The same models under the authors' metrics (ratings of 5 relevant, ranks 1 and 2 both weighted 1, "
               "normalised by the user's relevant items, every test user in the mean; `--protocol authors`):", "",
               method_table(summary, group="authors", metrics=cols), ""]
    if args.dataset == "synthetic":
        tcols = [f"{m}@{k}" for m in ("true_dcg", "true_ndcg", "true_recall") for k in KS]
        md += ["True relevance (all test items):", "", method_table(summary, group="all", metrics=tcols), "",
               "True relevance (rare test items):", "", method_table(summary, group="rare", metrics=tcols), "",
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
    _output(result, "\n".join(md), f"mnar_{args.dataset}", args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
