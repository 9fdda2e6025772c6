"""The figures of the MNAR benchmark's own protocol on a randomized (missing-at-random) test set.

``benchmarks/mnar.py`` trains on biased clicks and ranks each user's randomized test items
(:class:`recsampling.tasks.Task` with ``protocol="test_items"``); beside the task's metrics it
reports, with the functions here:

- the rare items (:func:`rare_candidates`): the test candidates whose training clicks are at most a
  quantile over items, ranked among themselves, and their share in each user's top K of all
  candidates (:func:`rare_share`);
- ``dcg_norm@K``: DCG divided by the user's relevant test items (:func:`n_relevant`), the scale of
  Saito et al.'s tables;
- the ideal pointwise loss from the true relevance of a synthetic world (:func:`ideal_loss`);
- the popularity propensities of Rel-MF / UBPR under three normalisations (:func:`item_propensities`).

:func:`load_randomized_task` loads its tasks (also those of ``benchmarks/dla_positions.py``'s
setting 2), :func:`randomized_figures` gathers the figures of one fitted model,
:func:`tune_on_clicks` gives a method an Optuna budget on the biased clicks alone, and
:func:`randomized_markdown` writes the tables of a run.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Mapping

import numpy as np

from recsampling.bench.report import method_table

__all__ = ["WORLD", "QUICK_WORLD", "TRAINING", "load_randomized_task", "rare_candidates", "item_propensities",
           "rare_share", "ideal_loss", "n_relevant", "randomized_figures", "tune_on_clicks", "randomized_markdown"]

#: the synthetic world of the MNAR benchmarks (a fresh one per seed; no logged lists), and its --quick size
WORLD = dict(n_users=943, n_items=1682, target_interactions=60_000)
QUICK_WORLD = dict(n_users=200, n_items=300, target_interactions=5_000)
#: per data set: model and training defaults, the same for every method, fixed a priori
TRAINING = {
    "coat": dict(factors=32, epochs=30, batch_size=256, lr=0.005, l2=1e-4),
    "yahoo-r3": dict(factors=32, epochs=15, batch_size=1024, lr=0.005, l2=1e-4),
    "synthetic": dict(factors=32, epochs=15, batch_size=1024, lr=0.005, l2=1e-4),
}


def load_randomized_task(dataset: str, data_dir: str, seed: int, quick: bool = False, ks=(3, 5, 8)):
    """The biased clicks and the randomized test of ``dataset`` (ratings >= 4 relevant), each user's test
    items ranked: :func:`recsampling.tasks.load_task`, on ``synthetic`` a world of :data:`WORLD`
    (:data:`QUICK_WORLD` with ``quick``) without logged lists.

    Raises
    ------
    FileNotFoundError, ValueError
        When the data set cannot be loaded.
    """
    from recsampling.tasks import load_task

    world = dict(QUICK_WORLD if quick else WORLD, n_logged_lists=0) if dataset == "synthetic" else None
    return load_task(dataset, data_dir=data_dir, seed=seed, world=world, ks=ks)


def rare_candidates(train, test_items: np.ndarray, quantile: float) -> tuple[np.ndarray, float]:
    """The test candidates with the popular items replaced by -1, and the click-count threshold."""
    counts = train.item_counts()
    threshold = float(np.quantile(counts, quantile))
    rare = counts <= threshold
    cand = np.where((test_items >= 0) & rare[np.maximum(test_items, 0)], test_items, -1)
    return cand, threshold


# ------------------------------------------------------------------------------------------- runs
def item_propensities(train, eta: float, norm: str):
    """Per-item popularity propensities of Rel-MF / UBPR: ``"max"`` -> ``(n_i / max n)^eta`` (the sampler's own
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




def rare_share(model, cand: np.ndarray, rare_cand: np.ndarray, users: np.ndarray, device: str = "cpu",
               ks=(3, 5, 8)) -> dict:
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
    out = {f"all/rare_share@{k}": float(np.mean(rare[:, :k].sum(1) / np.minimum(n_ok, k))) for k in ks}
    out["all/rare_share_random"] = float(np.mean((rare_cand[users] >= 0).sum(1) / n_ok))
    return out




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


def n_relevant(cand: np.ndarray, test, per_user) -> np.ndarray:
    """Number of relevant test pairs among each evaluated user's candidates."""
    import scipy.sparse as sp

    rows, cols = np.nonzero(cand >= 0)
    cand_m = sp.csr_matrix((np.ones(rows.size), (rows, cand[rows, cols])), shape=test.shape)
    return np.asarray(test.matrix.astype(bool).multiply(cand_m).sum(1)).ravel()[per_user.index.to_numpy()]


def randomized_figures(model, task, rare_items: np.ndarray, *, ks=(3, 5, 8), metrics=("dcg", "recall", "map"),
                       delta: str = "squared", device: str = "cpu") -> dict:
    """``model``'s figures on ``task`` (``protocol="test_items"``): on all test candidates and on the rare
    ones (``rare_items``, -1 padded, from :func:`rare_candidates`).

    Keys ``<group>/<metric>@K`` and ``<group>/dcg_norm@K`` (groups ``all`` and ``rare``),
    ``<group>/n_users``, the ``all/rare_share@K`` of :func:`rare_share`; with a true relevance also
    ``true_dcg``, ``true_ndcg``, ``true_recall`` per group and the :func:`ideal_loss` (``delta``);
    on real data (no true relevance) the authors' metrics of
    :class:`recsampling.bench.saito.AuthorsEvaluation` on the task's test ratings, ``authors/...``.
    """
    from recsampling.bench.saito import AuthorsEvaluation

    metrics = tuple(metrics)
    out = {}
    truth = ("true_dcg", "true_ndcg", "true_recall") if task.relevance is not None else ()
    if truth:
        out["ideal_loss"] = ideal_loss(model, task.relevance, delta)
    groups = {"all": task, "rare": dataclasses.replace(task, test_items=rare_items)}
    for group, t in groups.items():
        res = t.evaluate(model, metrics=list(metrics + truth), device=device)
        d = res.to_dict()
        pu = res.per_user
        n_rel = n_relevant(t.test_items, task.test, pu)
        for k in ks:
            for m in metrics + truth:
                out[f"{group}/{m}@{k}"] = d[f"{m}@{k}"]
            out[f"{group}/dcg_norm@{k}"] = float(np.mean(pu[f"dcg@{k}"].to_numpy() / n_rel))
        out[f"{group}/n_users"] = d["n_users"]
        if group == "all":
            out.update(rare_share(model, task.test_items, rare_items, pu.index.to_numpy(), device, ks))
    if task.relevance is None:  # real data: the same model under the authors' metrics (issue 18)
        ev = AuthorsEvaluation(task.source.test)
        out.update({f"authors/{k}": v for k, v in ev(model, variants=False).items()})
    return out


def tune_on_clicks(train, fit: Callable, space: Callable, n_trials: int, *, metric: str = "snips_dcg@5",
                   valid_fraction: float = 0.2, seed: int = 0, device: str = "cpu", drop=()) -> dict:
    """An Optuna search (TPE, ``seed``) for one method on a validation split of the *biased* clicks.

    The split moves ``valid_fraction`` of each user's clicks in ``train`` to a validation set
    (:func:`recsampling.data.splits.validation_split`, seeded); a trial trains ``fit(fit_part, hp)``
    with ``hp = space(trial)`` (less the keys in ``drop``) and is scored by ``metric`` on the
    validation clicks, ranked against all items the user did not click in the fit part.
    ``snips_dcg@K`` (and the other ``ips_`` / ``snips_`` metrics) weight each validation click by
    ``1 / theta_i`` with ``theta_i = (n_i / max n)^0.5`` from all of ``train``, self-normalized per user
    (the "unbiased evaluator" of Saito et al.'s code; the same propensities for every method); ``ndcg@K``
    is the plain, popularity-biased metric. A randomized test set is never seen.

    Returns
    -------
    dict
        ``best_params`` (less ``drop``), ``best_value``, ``metric``, ``n_trials``, ``valid_clicks``,
        ``fit_clicks``, ``wall_s``.
    """
    import optuna

    from recsampling.data.splits import validation_split
    from recsampling.evaluation import evaluate
    from recsampling.propensity import popularity_propensity

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    split = validation_split(train, valid_fraction, random_state=seed)
    fit_train, valid = split.train, split.eval_test
    base, _, k = metric.partition("@")
    weighted = base.startswith(("ips_", "snips_"))
    prop = popularity_propensity(train, 0.5)[valid.matrix.indices] if weighted else None  # > 0: clicked items

    def objective(trial) -> float:
        hp = {key: v for key, v in space(trial).items() if key not in drop}
        res = evaluate(fit(fit_train, hp), valid, train=fit_train, ks=(int(k),), metrics=[base], propensities=prop,
                       device=device)
        value = float(res[metric])
        if not np.isfinite(value):
            raise optuna.TrialPruned(f"non-finite {metric}")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, catch=(ValueError, RuntimeError))
    return {"best_params": {key: v for key, v in study.best_params.items() if key not in drop},
            "best_value": float(study.best_value), "metric": metric, "n_trials": len(study.trials),
            "valid_clicks": int(valid.nnz), "fit_clicks": int(fit_train.nnz), "wall_s": time.perf_counter() - t0}


def randomized_markdown(summary: Mapping[str, dict], info: dict, *, dataset: str, seeds: int, ks=(3, 5, 8),
                        metrics=("dcg", "recall", "map"), delta: str = "squared", tuning: Mapping[str, dict] | None = None,
                        tune_text: str = "") -> str:
    """The Markdown tables of a run: each method's :func:`randomized_figures` (mean ± s.e. over the
    seeds) on all and on the rare test items, the rare items' share of the top K, ``dcg_norm@K``, the
    authors' metrics (real data), the true-relevance figures and the ideal loss (a world with a true
    relevance), and the tuned values (``tuning``: method -> :func:`tune_on_clicks`' result, described by
    ``tune_text``)."""
    first = next(iter(summary.values()))
    cols = [f"{m}@{k}" for m in metrics for k in ks]
    md = [f"### {dataset}: randomized test, each user's test items ranked (mean ± s.e. over {seeds} seeds)",
          "", method_table(summary, group="all", metrics=cols), "",
          f"Rare items (training clicks <= {info['rare_item_max_clicks']:g}; {info['rare_items']} of "
          f"{info['n_items']} items):", "", method_table(summary, group="rare", metrics=cols), "",
          f"Share of rare items in each user's top K of all test items (random order: "
          f"{first['all/rare_share_random']:.3f}):", "",
          method_table(summary, group="all", metrics=[f"rare_share@{k}" for k in ks]), "",
          "DCG normalized by the user's relevant test items (Saito et al.'s scale):", "",
          method_table(summary, group="all", metrics=[f"dcg_norm@{k}" for k in ks]), ""]
    if "authors/dcg@5" in first:
        md += ["The same models under the authors' metrics (ratings of 5 relevant, ranks 1 and 2 both weighted 1, "
               "normalised by the user's relevant items, every test user in the mean; `--protocol authors`):", "",
               method_table(summary, group="authors", metrics=cols), ""]
    if "ideal_loss" in first:
        tcols = [f"{m}@{k}" for m in ("true_dcg", "true_ndcg", "true_recall") for k in ks]
        md += ["True relevance (all test items):", "", method_table(summary, group="all", metrics=tcols), "",
               "True relevance (rare test items):", "", method_table(summary, group="rare", metrics=tcols), "",
               f"Ideal loss (delta={delta}) over all user-item pairs from the true relevance, the objective "
               "Rel-MF's estimator targets (lower is better; pointwise methods only are calibrated):", "",
               "| method | ideal loss |", "|---|---|"]
        md += [f"| {m} | {d['ideal_loss']:.5f}" + (f" ± {d['ideal_loss_se']:.5f}" if "ideal_loss_se" in d else "") + " |"
               for m, d in summary.items()]
        md.append("")
    if tuning:
        md += [tune_text, "", "| method | validation | best values |", "|---|---|---|"]
        for m, t in tuning.items():
            vals = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["best_params"].items())
            md.append(f"| {m} | {t['best_value']:.4f} | {vals} |")
        md.append("")
    return "\n".join(md)
