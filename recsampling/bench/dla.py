"""The DLA benchmark's worlds, fits, figures and tables (``benchmarks/dla_positions.py``, Ai et al., SIGIR 2018).

**Setting 1 -- logged ranked lists with positions** (the paper's setting). For each position-bias
exponent ``eta`` and each seed, a synthetic world (:func:`recsampling.data.synthetic.make_world`)
logs ranked lists of 10 items, clicked with examination ``theta_k = (1/k)^eta``
(:func:`position_world`). The logging ranker sorts 50 uniform candidates by its score plus
``N(0, 1)`` noise; by default (``linear``) the score is a weak ranker over the side features, a
logistic regression fitted to 2,000 labelled pairs, like the paper's production ranker (a Ranking
SVM trained on 1% of the labelled data): its mistakes are a function of the features, so the
position bias puts a feature-shaped bias into the raw clicks. ``relevance`` ranks by the true
``logit(relevance)`` instead, so position is a noisy monotone function of relevance and only
sharpens it (there the raw-click model ranks as well as the corrected ones; RESULTS.md). The
script's three relevance models are identical except for the click weights of the listwise softmax
loss (the same :class:`~recsampling.samplers.dla.DLASampler` code, the same model, optimizer and
epochs): unweighted on the raw clicks (``fixed_propensity=1``), clicks weighted by the true
``1/theta_k`` relative to position 1, and DLA's propensities learned jointly (one logit per position).

:func:`position_figures` gives a fitted model's true-relevance ``ndcg@10`` (the full-catalogue
ranking of every user scored against the world's true relevance probabilities, :func:`true_ndcg`)
and, where the propensities were learned, the learned relative propensities ``theta_k / theta_1``
for positions 1-10 and ``max_rel_error_top10``, the worst ``|learned_k / true_k - 1|`` over
positions 2-10 (:func:`max_rel_error`). Two diagnostics solve eq. (7) exactly
(``P_k ∝ Σ_n v_nk c_nk``, :func:`irw_closed_form`) on the same logs: with the true relevance in
``v`` (``irw_closed_form_true_relevance``: the noise floor of the log, what no estimate can beat)
and with DLA's trained ranker (``irw_closed_form_ranker``: the ranker's share of the error, free
of optimization noise). :func:`summarize_positions` averages them over the seeds (the error of the
seed-averaged curve, and per seed); :func:`positions_text` prints them.

A logging bias ``S`` (an ablation) replaces the world's logs by lists whose logging ranker scores
``logit(relevance) + S * b_i`` (a fixed ``b_i ~ N(0, 1)`` per item, "promoted items", independent
of the features; :func:`biased_logs`). A world with ``feature_noise > 0`` (an ablation) has
features that neither the feature-only ranker nor the linear logging ranker can fit relevance
with; on the default logs DLA still beats raw clicks and its propensities stay close, on
relevance-ranked logs it does not (see RESULTS.md).

The relevance model is by default a feature-only two-tower model (no ID embeddings, affine towers
over the world's user / item features, generated without feature noise, no per-item bias), i.e. a
ranker over features like the paper's, that cannot memorize single clicks. Its score is read as a
relevance logit (``relevance_link="sigmoid"``: ``P(r = 1) = σ(s)``, the synthetic world's own link,
which the affine two-tower can represent exactly); ``"exp"`` is the paper's softmax reading
(``exp(s) ∝ P(r = 1)``), which this model cannot represent. With MF (ID embeddings) the relevance
model can memorize each logged (user, item) click, and DLA's weights then drift (see RESULTS.md).

**Setting 2 -- recommendation without positions.** On the synthetic MNAR world of the MNAR
benchmark (943 x 1682, 60,000 clicks, popularity-driven exposure) and on Coat, with the MNAR
issue's unbiased protocol (:func:`recsampling.bench.mnar.load_randomized_task`: rank each user's
randomized test items; rating >= 4 relevant on Coat; DCG, Recall, MAP at 3, 5, 8; ``true_ndcg`` on
synthetic; :func:`rec_figures`), the script compares pointwise clicks (theta = 1), Rel-MF
(popularity propensities (n_i / max n)^0.5 clipped at 0.1), DLA's candidate sets and listwise
loss with all propensities 1, and DLA with the ``exp`` and the ``sigmoid`` link (item propensities
learned from popularity-bucket and item-id features). On the synthetic world it also reports the
Spearman correlation of DLA's learned item propensities with the world's true ones (mean exposure
of each item), and that of the popularity estimate for reference. The relevance model is MF with
ID embeddings or the feature-only two-tower model of setting 1. :func:`rec_text` prints the tables.

- :func:`biased_logs`: logged lists whose logging ranker also promotes some items;
- :func:`irw_closed_form`: the exact minimizer of DLA's eq. (7) over one propensity per position;
- :func:`log_relevance_scores`: a ranker's log-relevance of logged (user, item) pairs;
- :func:`true_ndcg`: true-relevance NDCG@K of a model's full top-K.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from recsampling.bench.report import mean_se_text, method_table

__all__ = ["examination", "position_world", "log_array", "max_rel_error", "position_figures", "summarize_positions",
           "headline", "positions_text", "rec_figures", "rec_text", "biased_logs", "irw_closed_form",
           "log_relevance_scores", "true_ndcg"]

#: the figures of a setting-1 run with learned propensities whose closed form (eq. (7)) is also solved
_CLOSED_FORMS = ("irw_closed_form_ranker", "irw_closed_form_true_relevance")


def examination(eta: float, length: int = 10) -> np.ndarray:
    """``theta_k = (1/k)^eta`` for the positions ``k = 1..length``."""
    return (1.0 / np.arange(1, length + 1)) ** eta


def position_world(world: Mapping, eta: float, seed: int, n_lists: int, *, logging_ranker: str = "linear",
                   logging_labels: int = 2000, logging_bias: float = 0.0):
    """A synthetic world (:func:`~recsampling.data.synthetic.make_world` of ``world``, no test items)
    and its ``n_lists`` logged lists with examination ``(1/k)^eta``: ``(world, logs)``.

    With ``logging_bias`` the logs are :func:`biased_logs`'s (a dict of arrays) instead of the world's.
    """
    from recsampling.data.synthetic import make_world

    w = make_world(**world, n_logged_lists=0 if logging_bias else n_lists, logging_ranker=logging_ranker,
                   logging_labels=logging_labels, position_eta=eta, n_test_items=0, random_state=seed)
    return w, (biased_logs(w, n_lists, eta, logging_bias, seed) if logging_bias else w.logs)


def log_array(logs, key: str) -> np.ndarray:
    """``users``, ``items`` or ``clicks`` of logged lists (a dict of arrays or a ``LoggedLists``)."""
    return np.asarray(logs[key] if isinstance(logs, dict) else getattr(logs, key))


def max_rel_error(curve: np.ndarray, true: np.ndarray, axis=None):
    """The worst ``|curve_k / true_k - 1|`` over positions 2-10 (along the last axis; ``axis`` as numpy's)."""
    return np.max(np.abs(np.asarray(curve)[..., 1:10] / true[1:10] - 1.0), axis=axis)


def position_figures(model, sampler, world, logs, eta: float, *, learned: bool, relevance_link: str) -> dict:
    """A setting-1 fit's figures: true-relevance ``ndcg@10``; with ``learned`` propensities (the
    sampler's ``position_propensities_``) also ``learned``, ``max_rel_error_top10`` and the closed
    forms of eq. (7) with the trained ranker and with the true relevance (lists, relative to position 1)."""
    rel = np.asarray(world.relevance)
    r = {"ndcg@10": true_ndcg(model, rel)}
    if learned:
        theta = examination(eta)
        curve = sampler.position_propensities_
        r["learned"] = curve.tolist()
        r["max_rel_error_top10"] = float(max_rel_error(curve, theta / theta[0]))
        users, items, clicks = (log_array(logs, k) for k in ("users", "items", "clicks"))
        ranker = log_relevance_scores(model, users, items, relevance_link)
        r[_CLOSED_FORMS[0]] = irw_closed_form(ranker, clicks).tolist()
        r[_CLOSED_FORMS[1]] = irw_closed_form(np.log(rel.astype(np.float64)[users[:, None], items]), clicks).tolist()
    return r


def summarize_positions(runs: Mapping[float, Sequence[dict]], methods: Sequence[str]) -> dict:
    """Per eta (as a string): the seeds' mean, standard error and values of each method's ``ndcg@10``
    and mean ``fit_s``; of the method whose runs hold ``learned`` propensities, the seed-averaged
    curve, its :func:`max_rel_error` and worst position, and the per-seed errors of the closed forms.

    ``runs``: eta -> per seed ``{"true": theta_k / theta_1, method: its figures (+ "fit_s")}``.
    """
    out = {}
    for eta, seeds in runs.items():
        true = np.mean([s["true"] for s in seeds], axis=0)
        d = {"true_relative_propensity": true[:10].round(5).tolist(), "n_seeds": len(seeds)}
        for m in methods:
            nd = np.array([s[m]["ndcg@10"] for s in seeds])
            d[f"ndcg@10/{m}"] = float(nd.mean())
            d[f"ndcg@10/{m}_se"] = float(nd.std(ddof=1) / np.sqrt(nd.size)) if nd.size > 1 else None
            d[f"ndcg@10/{m}_per_seed"] = nd.round(5).tolist()
            d[f"fit_s/{m}"] = float(np.mean([s[m]["fit_s"] for s in seeds]))
        m = next((m for m in methods if "learned" in seeds[0][m]), None)
        if m is not None:
            learned = np.array([s[m]["learned"] for s in seeds])
            mean = learned.mean(0)
            d["learned_relative_propensity"] = mean[:10].round(5).tolist()
            d["learned_relative_propensity_per_seed"] = learned[:, :10].round(5).tolist()
            d["max_rel_error_top10"] = float(max_rel_error(mean, true))
            d["worst_position"] = int(np.argmax(np.abs(mean[1:10] / true[1:10] - 1.0)) + 2)
            d["max_rel_error_top10_per_seed"] = [round(s[m]["max_rel_error_top10"], 5) for s in seeds]
            for key in _CLOSED_FORMS:
                cf = np.array([s[m][key] for s in seeds])
                d[f"{key}_max_rel_error_top10"] = float(max_rel_error(cf.mean(0), true))
                d[f"{key}_max_rel_error_top10_per_seed"] = max_rel_error(cf, true, axis=1).round(5).tolist()
        out[str(eta)] = d
    return out


def headline(summary: Mapping[str, dict], methods: Sequence[str]) -> dict:
    """Per eta of a :func:`summarize_positions` summary, ``"eta=<eta>"``: the true and learned curves,
    ``max_rel_error_top10`` and ``"ndcg@10"`` (method -> mean), the figures issue 7's check reads."""
    return {f"eta={eta}": {**{k: d[k] for k in ("true_relative_propensity", "learned_relative_propensity",
                                                "max_rel_error_top10") if k in d},
                           "ndcg@10": {m: d[f"ndcg@10/{m}"] for m in methods}} for eta, d in summary.items()}


def positions_text(summary: Mapping[str, dict], ranker: str, methods: Sequence[str]) -> list[str]:
    """The lines of setting 1's report: per eta the true and learned curves, then the ndcg@10 table."""
    lines = [f"\n## Setting 1: logged lists ({ranker} ranker)\n"]
    for eta, d in summary.items():
        lines += [f"eta = {eta}: max_rel_error_top10 = {d.get('max_rel_error_top10', float('nan')):.3f} "
                  f"(worst position {d.get('worst_position')}; per seed {d.get('max_rel_error_top10_per_seed')})",
                  "  position   " + " ".join(f"{k:>6d}" for k in range(1, 11)),
                  "  true       " + " ".join(f"{x:6.3f}" for x in d["true_relative_propensity"])]
        if "learned_relative_propensity" in d:
            lines.append("  learned    " + " ".join(f"{x:6.3f}" for x in d["learned_relative_propensity"]))
        if "irw_closed_form_true_relevance_max_rel_error_top10" in d:
            lines.append(f"  eq. (7) solved exactly: with the true relevance (the log's noise floor) "
                         f"{d['irw_closed_form_true_relevance_max_rel_error_top10']:.3f}, with DLA's trained ranker "
                         f"{d['irw_closed_form_ranker_max_rel_error_top10']:.3f}")
    return lines + ["\n" + method_table(summary, [f"ndcg@10/{m}" for m in methods], label="eta",
                                         headers=[f"true ndcg@10 {m}" for m in methods])]


def rec_figures(model, sampler, task, ks: Sequence[int], *, spearman: bool, device: str = "cpu") -> dict:
    """A setting-2 fit's DCG, Recall, MAP (and ``true_ndcg`` with a true relevance) at ``ks`` on
    ``task`` (its randomized test items); with ``spearman`` on a synthetic world also the Spearman
    correlations with the world's true item propensities of the sampler's learned ones
    (``spearman_learned_vs_true``) and of the item popularity (``spearman_popularity_vs_true``)."""
    metrics = ["dcg", "recall", "map"] + (["true_ndcg"] if task.relevance is not None else [])
    d = task.evaluate(model, metrics=metrics, device=device).to_dict()
    out = {f"{m}@{k}": d[f"{m}@{k}"] for k in ks for m in metrics}
    world = task.source.info.get("world")
    if spearman and world is not None:
        from scipy.stats import spearmanr

        truth = np.asarray(world.item_propensity)
        out["spearman_learned_vs_true"] = float(spearmanr(sampler.item_propensities_, truth).statistic)
        out["spearman_popularity_vs_true"] = float(spearmanr(task.train.item_counts(), truth).statistic)
    return out


def rec_text(summary: Mapping[str, Mapping[str, dict]], learned: Sequence[str]) -> list[str]:
    """The lines of setting 2's report: per data set a table at 5 (``true_ndcg@5`` where there is one),
    then the Spearman correlations of the methods ``learned`` (in this order) that have them."""
    lines = []
    for ds, summ in summary.items():
        keys = [f"{m}@5" for m in ("dcg", "recall", "map")]
        if "true_ndcg@5" in next(iter(summ.values())):
            keys.append("true_ndcg@5")
        lines += [f"\n## Setting 2: {ds} (rank the randomized test items)\n", method_table(summ, keys)]
        for m in learned:
            d = summ.get(m, {})
            if "spearman_learned_vs_true" in d:
                lines.append(f"\n{m}: Spearman(learned item propensity, true) = "
                             f"{mean_se_text(d, 'spearman_learned_vs_true')}; "
                             f"Spearman(popularity, true) = {mean_se_text(d, 'spearman_popularity_vs_true')}")
    return lines


def biased_logs(world, n_lists: int, eta: float, bias: float, seed: int, L: int = 10, n_cand: int = 50) -> dict:
    """Logged lists whose logging ranker favours some items regardless of relevance.

    Like ``make_world``'s logs (uniform user, ``n_cand`` distinct uniform candidates, top ``L`` of
    ``logit(relevance) + N(0, 1)``, clicks ``Bernoulli((1/k)^eta) * Bernoulli(relevance)``) but
    the logging score also adds ``bias * b_i`` with a fixed ``b_i ~ N(0, 1)`` per item (a
    promoted-items effect): the raw clicks then over-credit the promoted items.
    """
    rng = np.random.default_rng([seed, 7])
    n_users, n_items = world.relevance.shape
    boost = rng.standard_normal(n_items)
    users = rng.integers(0, n_users, size=n_lists)
    chunk = max(1, 2**22 // n_items)  # distinct uniform candidates: smallest keys of a random row
    cand = np.concatenate([np.argpartition(rng.random((min(chunk, n_lists - s), n_items)), n_cand - 1, axis=1)
                           [:, :n_cand] for s in range(0, n_lists, chunk)])
    rel = np.asarray(world.relevance)[users[:, None], cand].astype(np.float64)
    score = np.log(rel) - np.log1p(-rel) + bias * boost[cand] + rng.standard_normal(cand.shape)
    top = np.argsort(-score, axis=1, kind="stable")[:, :L]
    items = np.take_along_axis(cand, top, axis=1)
    shown = np.take_along_axis(rel, top, axis=1)
    theta = (1.0 / np.arange(1, L + 1)) ** eta
    clicks = (rng.random((n_lists, L)) < theta) & (rng.random((n_lists, L)) < shown)
    return {"users": users.astype(np.int64), "items": items.astype(np.int64), "clicks": clicks.astype(np.int8)}


def irw_closed_form(log_relevance: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """The minimizer of eq. (7) over one free logit per position, for given log-relevances.

    ``P_k ∝ Σ_n v_nk c_nk`` with ``v_nk = exp(log r_n1 − log r_nk)``, returned relative to
    position 1. With the true relevance it is the best any propensity estimate can do from these
    clicks (its error is the sampling noise of the log); with a trained ranker's scores it is
    where the propensity logits go for that ranker (no optimization noise).
    """
    lr = np.asarray(log_relevance, dtype=np.float64)
    p = (np.exp(lr[:, :1] - lr) * np.asarray(clicks, dtype=np.float64)).sum(0)
    return p / p[0]


def log_relevance_scores(model, users: np.ndarray, items: np.ndarray, link: str) -> np.ndarray:
    """``model.score`` of the pairs ``(users, items)`` (any matching shapes) as log-relevances: as they
    are (``link="exp"``) or through ``log sigmoid`` (``"sigmoid"``), float64 (DLASampler.relevance_link)."""
    import torch

    with torch.no_grad():
        s = model.score(torch.as_tensor(np.array(users)), torch.as_tensor(np.array(items)))
        if link == "sigmoid":
            s = torch.nn.functional.logsigmoid(s)
    return s.double().cpu().numpy()


def true_ndcg(model, relevance: np.ndarray, k: int = 10) -> float:
    """Mean over users of ``true_ndcg@k`` of ``model``'s top ``k`` of all items against ``relevance``
    (:func:`recsampling.metrics.true_relevance_metrics`; no item excluded)."""
    from recsampling.metrics import true_relevance_metrics
    from recsampling.scoring import topk

    U, V = model.embedding_tables()
    ids, _ = topk(U, V, k, device="cpu")
    return float(np.mean(true_relevance_metrics(ids, relevance, (k,))[f"true_ndcg@{k}"]))
