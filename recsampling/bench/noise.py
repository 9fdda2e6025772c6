"""The label-noise benchmark's task and figures: a synthetic world with hidden true positives.

``benchmarks/nbpo_noise.py`` asks whether a sampler that models label noise (flip rates) beats
the ones that take every unvoted item as a negative. This module holds what such a comparison
needs, for any sampler and model:

- :func:`label_noise_task`: a world of :func:`recsampling.data.synthetic.make_world` at label-noise
  rate ρ, its *true* positives split per user 80/20 (``random_split``), trained on the observed
  clicks of the 80% and evaluated against the known truth, with the training clicks excluded from
  the ranking;
- :func:`mislabel_pairs`, :func:`world_stats`, :func:`flip_figures`: the flip-ranking figures over
  the unvoted training pairs, and how much of the unvoted pool the noise contaminates;
- :func:`summarize` and :func:`table_lines`: the per-rate summary over seeds and its text table.

The noise (``noise_model``, issue 18):

- ``"liked"`` (``make_world(label_noise_model="liked")``): the noise NBPO models, *items a user
  would like that appear unvoted*, on a truth that does not move with ρ. For one seed the truth
  (the clicks plus as many liked-but-unexposed pairs, ``liked_unexposed``) and its 80/20 split
  are the same at every ρ; ρ of the truth is hidden from training, drawn ∝ ``w_u w_i (1 − exposure)``
  (rarely shown items, where a uniform sampler draws), nested across ρ. The test is the held-out
  20% at every ρ, with the hidden pairs of the 80% excluded from the ranking like the training
  clicks, so a larger ρ means noisier training labels of the same preferences and the comparison
  across ρ is paired.
- ``"clicks"``: ``make_world``'s default (the only model before issue 18): ρ of the clicks are
  hidden. They sit where the clicks are (popular items, active users) and make up under 3% of
  the unvoted pool at ρ = 0.4, too few for a uniform sampler to meet.

``exposure="full"`` draws a world in which every pair is exposed, so that label noise is the only
reason a relevant item is unvoted (apart from the held-out test part).

Metrics (:data:`METRICS`):

- ``ndcg@10`` / ``recall@10``: against every true positive that is not a training click (the
  held-out 20% plus the hidden positives): what a noise-robust method should find;
- ``true_ndcg@10`` / ``true_recall@10``: graded by the true relevance probabilities;
  ``avg_popularity@10``: mean training count of the recommended items (``recsampling.metrics``
  truth metrics);
- the flip-ranking figure, over every unvoted training pair except the held-out true positives
  (:func:`mislabel_pairs`): ``flip_auc_mislabeled`` is the AUC of the learned per-pair flip rate at
  telling the truly mislabeled pairs (the hidden true positives) from the truly negative ones,
  beside ``rarity_auc_mislabeled`` (minus the item's training count: what "this item is rare"
  achieves) and ``score_auc_mislabeled`` (the model's own score). Undefined (None) at ρ = 0;
- Spearman correlations of the learned per-item / per-user mean flip rates (``item_flip_rates_``,
  ``user_flip_rates_``) with the world's per-item / per-user flip rates
  (``SyntheticWorld.item_noise_rate`` / ``user_noise_rate``: the hidden share of their true
  positives), and with rarity; with ``noise_model="clicks"`` also with the *total* miss rate of
  relevant pairs, relevance-weighted ``1 − exposure·(1 − noise)`` (:func:`miss_rates`);
- :func:`world_stats` per noise rate: the hidden share of the unvoted pool and of the uniformly
  drawn negatives, the same with the held-out positives, the hidden fraction of the true positives
  (the overall flip rate), the relevance mass of the unvoted pairs.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from recsampling.data.interactions import Interactions
from recsampling.metrics import pooled_auc as auc

__all__ = ["AUC_MAX_PAIRS", "METRICS", "SPLIT", "flip_figures", "label_noise_task", "mislabel_pairs",
           "miss_rates", "pair_scores", "spearman", "summarize", "table_lines", "world_stats"]

#: the task's metrics (at k = 10): against the held-out truth and graded by the true relevance
METRICS = ("ndcg", "recall", "true_ndcg", "true_recall", "avg_popularity")
#: at most this many unvoted pairs enter the mislabel AUCs (a uniform sample of users beyond it)
AUC_MAX_PAIRS = 1 << 22
#: :func:`label_noise_task`'s split, in words (the benchmark's config records it)
SPLIT = ("world true positives split 80/20 per user; train = observed clicks of the 80%; "
         "test = all true positives not in train; full ranking without train items")
_NOISE_MODELS = ("liked", "clicks")
_EXPOSURES = ("mnar", "full")


def label_noise_task(noise: float, seed: int, *, n_users: int = 600, n_items: int = 1000,
                     interactions: int = 40_000, noise_model: str = "liked", liked_unexposed: float = 1.0,
                     exposure: str = "mnar"):
    """The task of one label-noise rate and seed, its world and the held-out true positives.

    The world's truth (``true_positives``, the same at every ρ for one seed) is split per user
    80/20 (``random_split``, seeded: the same split at every ρ); train = the observed clicks of
    the 80%. ``noise_model="liked"``: test = the held-out 20% (the true likes, the same at every
    ρ), and the hidden pairs of the 80% are excluded from the ranking like the training clicks
    (``Task.valid``), so every ρ ranks the same candidates against the same positives and only the
    training labels change. ``"clicks"``: test = every true positive not in train (held-out and
    hidden).

    Parameters
    ----------
    noise : float
        The label-noise rate ρ (``make_world(label_noise=...)``).
    seed : int
        Seeds the world and the split.
    n_users, n_items, interactions : int
        The world's size and expected number of true positives.
    noise_model : {"liked", "clicks"}
        What the noise hides (``make_world(label_noise_model=...)``; module docstring).
    liked_unexposed : float
        ``noise_model="liked"``: liked-but-unexposed pairs in the truth, as a multiple of the clicks.
    exposure : {"mnar", "full"}
        The world's popularity-driven exposure, or every pair exposed (≈0.98), so that the injected
        label noise is the only reason a relevant item is unvoted.

    Returns
    -------
    task : recsampling.tasks.Task
        Train, test, the pairs excluded from the ranking (``valid``), the world's relevance and
        :data:`METRICS` at k = 10.
    world : recsampling.data.synthetic.SyntheticWorld
    held_out : Interactions
        The held-out true positives (not label noise: :func:`mislabel_pairs` leaves them out).
    """
    from recsampling.data.splits import random_split
    from recsampling.data.synthetic import make_world
    from recsampling.tasks import Task

    if noise_model not in _NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {_NOISE_MODELS}, got {noise_model!r}")
    if exposure not in _EXPOSURES:
        raise ValueError(f"exposure must be one of {_EXPOSURES}, got {exposure!r}")
    extra = {}
    if exposure == "full":
        extra = dict(exposure_eta=0.0, user_activity_sigma=0.0,
                     relevance_rate=interactions / (0.98 * n_users * n_items))
    extra["label_noise_model"] = noise_model
    if noise_model == "liked":
        extra["liked_unexposed"] = liked_unexposed
    world = make_world(n_users, n_items, interactions, label_noise=noise, random_state=seed, **extra)
    truth = world.true_positives
    split = random_split(truth, 0.2, random_state=seed)
    ids = dict(user_ids=truth.user_ids, item_ids=truth.item_ids)

    def inter(m):
        m = m.tocsr().astype(np.float32)
        m.eliminate_zeros()
        return Interactions.from_csr(m, **ids)

    train_m = split.train.matrix.multiply(world.clicks.matrix)
    train = inter(train_m)
    hidden_train = inter(split.train.matrix - train_m)
    if noise_model == "liked":
        test, held_out, valid = split.test, split.test, (hidden_train if hidden_train.nnz else None)
    else:
        test = inter(truth.matrix - train_m)
        held_out, valid = inter(test.matrix - test.matrix.multiply(world.hidden_positives.matrix)), None
    task = Task("synthetic (true positives)", train, test, valid=valid, relevance=world.relevance, metrics=METRICS,
                ks=(10,))
    return task, world, held_out


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of ``a`` and ``b``; None when either is constant or it is not finite."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    r = spearmanr(a, b)[0]
    return None if not np.isfinite(r) else float(r)


def mislabel_pairs(train: Interactions, held_out: Interactions, world, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unvoted pairs the flip-ranking AUCs are taken over.

    Every pair that is not a training click, minus the held-out true positives (truly positive but
    not label noise).

    Parameters
    ----------
    train, held_out : Interactions
        The training clicks and the held-out true positives of :func:`label_noise_task`.
    world : SyntheticWorld
        Its world (``true_positives``).
    seed : int
        Seeds the sample of users when the world has more than :data:`AUC_MAX_PAIRS` pairs.

    Returns
    -------
    users, items : numpy.ndarray of int
        The pairs, user by user.
    mislabeled : numpy.ndarray of bool
        True for the hidden true positives of the training part (liked items that appear unvoted);
        the rest are truly negative.
    """
    n_users, n_items = train.shape
    users = np.arange(n_users)
    if n_users * n_items > AUC_MAX_PAIRS:
        users = np.sort(np.random.default_rng(seed).choice(n_users, AUC_MAX_PAIRS // n_items, replace=False))
    train_m = train.matrix.tocsr()[users].toarray() > 0
    tp = world.true_positives.matrix.tocsr()[users].toarray() > 0
    held = held_out.matrix.tocsr()[users].toarray() > 0
    keep = ~train_m & ~held
    r, i = np.nonzero(keep)
    return users[r], i, tp[r, i]


def pair_scores(model, users: np.ndarray, items: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """The model's score of each pair ``(users[t], items[t])``.

    Parameters
    ----------
    model : EmbeddingModel
        Any model with ``score(users, items)`` (on the CPU).
    users, items : numpy.ndarray of int, shape (n,)
        The pairs.
    chunk : int
        Pairs scored at once.

    Returns
    -------
    numpy.ndarray of float32, shape (n,)
    """
    out = np.empty(users.size, dtype=np.float32)
    with torch.no_grad():
        for s in range(0, users.size, chunk):
            u = torch.as_tensor(users[s:s + chunk], dtype=torch.int64)
            i = torch.as_tensor(items[s:s + chunk], dtype=torch.int64)
            out[s:s + chunk] = model.score(u, i[:, None])[:, 0].float().numpy()
    return out


def miss_rates(world) -> tuple[np.ndarray, np.ndarray]:
    """Relevance-weighted ``P(a relevant pair is unvoted)`` per item and per user: exposure and noise.

    ``1 − exposure · (1 − noise_rate)`` of each pair, averaged with the pairs' relevance as
    weights; what a flip rate means in a ``label_noise_model="clicks"`` world, where
    ``noise_rate()`` is P(a true positive is hidden).

    Returns
    -------
    item_miss : numpy.ndarray of float64, shape (n_items,)
    user_miss : numpy.ndarray of float64, shape (n_users,)
    """
    rel = world.relevance.astype(np.float64)
    miss = 1.0 - world.exposure.astype(np.float64) * (1.0 - world.noise_rate().astype(np.float64))
    return (rel * miss).sum(0) / rel.sum(0), (rel * miss).sum(1) / rel.sum(1)


def world_stats(train: Interactions, test: Interactions, world, pairs) -> dict:
    """How much of the unvoted pool the label noise contaminates (what a flip model is about).

    Parameters
    ----------
    train, test : Interactions
        The task's training clicks and test positives.
    world : SyntheticWorld
        Its world.
    pairs : tuple
        :func:`mislabel_pairs` of the task.

    Returns
    -------
    dict
        ``unvoted_*_share``: of all pairs that are not training clicks; ``drawn_*_share``: of the
        negatives a uniform sampler draws (each training click draws uniformly among its user's
        unvoted items, so user u weighs by its training clicks); ``*_hidden_share`` counts the hidden
        true positives, ``*_true_positive_share`` the held-out ones too;
        ``hidden_fraction_of_true_positives``: the hidden share of the training part's truth (≈ ρ
        under ``noise_model="liked"``); ``unvoted_relevance_share``: the mean true relevance of an
        unvoted pair; ``rarity_auc_mislabeled``: minus the item's training count as a flip-rate
        estimate (the data-only baseline of ``flip_auc_mislabeled``); ``relevance_auc_mislabeled``:
        the world's true relevance of the pair (what a perfect taste model reaches).
    """
    n_items = train.n_items
    unvoted = float(train.n_users * n_items - train.nnz)
    n_u = train.user_counts().astype(np.float64)
    free = np.maximum(n_items - n_u, 1.0)
    users, items, mislabeled = pairs
    n_hidden = int(mislabeled.sum())  # the hidden true positives of the training part
    hidden_u = np.bincount(users[mislabeled], minlength=train.n_users).astype(np.float64)
    unvoted_tp = test.nnz + (n_hidden if world.label_noise_model == "liked" else 0)
    test_u = np.bincount(test.user_index(), minlength=train.n_users).astype(np.float64) + (
        hidden_u if world.label_noise_model == "liked" else 0.0)
    return {
        "train_clicks": float(train.nnz),
        "hidden_positives": float(n_hidden),
        "hidden_fraction_of_true_positives": n_hidden / max(n_hidden + train.nnz, 1),
        "unvoted_true_positive_share": unvoted_tp / unvoted,  # held-out + hidden true positives
        "unvoted_hidden_share": n_hidden / unvoted,
        "drawn_true_positive_share": float((n_u * test_u / free).sum() / max(n_u.sum(), 1.0)),
        "drawn_hidden_share": float((n_u * hidden_u / free).sum() / max(n_u.sum(), 1.0)),
        "unvoted_relevance_share": float(world.relevance.sum(dtype=np.float64) - world.relevance[
            train.user_index(), train.item_index()].sum(dtype=np.float64)) / unvoted,
        "rarity_auc_mislabeled": auc(-train.item_counts().astype(np.float64)[items], mislabeled),
        "relevance_auc_mislabeled": auc(world.relevance_of(users, items), mislabeled),
    }


def flip_figures(sampler, world, train: Interactions, test: Interactions, pairs) -> dict:
    """How well a fitted sampler's learned flip rates find the label noise.

    Parameters
    ----------
    sampler : Sampler
        Fitted; one with ``flip_rates(users, items, pairs=True)``, ``item_flip_rates_`` and
        ``user_flip_rates_`` (NBPO's) gets the figures, any other an empty dict.
    world : SyntheticWorld
        The task's world (its ``item_noise_rate``, ``user_noise_rate``, ``noise_rate()``).
    train, test : Interactions
        The task's training clicks and test positives.
    pairs : tuple
        :func:`mislabel_pairs` of the task.

    Returns
    -------
    dict
        ``flip_auc_mislabeled`` (the AUC of the per-pair flip rate at finding the mislabeled pairs);
        the Spearman correlations ``{item,user}_flip_spearman`` (against the world's injected
        noise), ``item_flip_spearman_popularity``, ``{item,user}_flip_spearman_total_miss``
        (against :func:`miss_rates`; ``noise_model="clicks"`` only, else None),
        ``{item,user}_rarity_spearman`` (minus the training count against the injected noise: the
        data-only baseline a flip rate has to beat) and ``pair_flip_spearman`` (pair level, on the
        test positives: held-out and hidden); ``mean_flip_rate`` over the items.
    """
    if not hasattr(sampler, "flip_rates"):
        return {}
    pu, pi, mislabeled = pairs
    out = {"flip_auc_mislabeled": auc(sampler.flip_rates(pu, pi, pairs=True), mislabeled)}
    item_rates, user_rates = sampler.item_flip_rates_, sampler.user_flip_rates_
    out["item_flip_spearman"] = spearman(item_rates, world.item_noise_rate)
    out["user_flip_spearman"] = spearman(user_rates, world.user_noise_rate)
    out["mean_flip_rate"] = float(item_rates.mean())
    out["item_flip_spearman_popularity"] = spearman(item_rates, train.item_counts().astype(float))
    item_miss, user_miss = miss_rates(world) if world.label_noise_model == "clicks" else (None, None)
    out["item_flip_spearman_total_miss"] = None if item_miss is None else spearman(item_rates, item_miss)
    out["user_flip_spearman_total_miss"] = None if user_miss is None else spearman(user_rates, user_miss)
    out["item_rarity_spearman"] = spearman(-train.item_counts().astype(float), world.item_noise_rate)
    out["user_rarity_spearman"] = spearman(-train.user_counts().astype(float), world.user_noise_rate)
    tu, ti = test.matrix.nonzero()
    out["pair_flip_spearman"] = spearman(sampler.flip_rates(tu, ti, pairs=True), world.noise_rate()[tu, ti])
    return out


#: the headline keys of a noise rate's summary: ``key -> the flip method's figure``
_HEADLINE = {"flip_auc_mislabeled": "flip_auc_mislabeled", "flip_auc_mislabeled_sem": "flip_auc_mislabeled_sem",
             "score_auc_mislabeled": "score_auc_mislabeled",
             "flip_rank_correlation": "item_flip_spearman",  # items: the headline figure
             "flip_rank_correlation_user": "user_flip_spearman",
             "flip_rank_correlation_total_miss": "item_flip_spearman_total_miss",
             "flip_rank_correlation_total_miss_user": "user_flip_spearman_total_miss",
             "flip_rank_correlation_pairs": "pair_flip_spearman",
             "rarity_rank_correlation": "item_rarity_spearman",  # the data-only baseline
             "rarity_rank_correlation_user": "user_rarity_spearman"}


def summarize(raw: Mapping[str, Mapping[str, Sequence[dict]]], world_raw: Mapping[str, Sequence[dict]], *,
              headline: str, baselines: Sequence[str] = ()) -> dict:
    """Mean and standard error over seeds of each noise rate's runs, with the headline figures.

    Parameters
    ----------
    raw : mapping
        ``{rate: {label: [one run's figures per seed]}}``.
    world_raw : mapping
        ``{rate: [world_stats per seed]}``.
    headline : str
        The label whose flip figures are the headline (``flip_auc_mislabeled``,
        ``flip_rank_correlation``, ...; left out when the rate has no such label).
    baselines : sequence of str
        Labels the headline's ``ndcg@10`` is divided by (``{headline}_vs_{base}_ndcg@10``).

    Returns
    -------
    dict
        ``{rate: block}``; a block holds each label's means (``_sem``: standard errors), ``world``
        (the means of :func:`world_stats`), ``rarity_auc_mislabeled`` (and ``_sem``),
        ``score_auc_mislabeled_<label>`` per label and the headline keys.
    """
    from recsampling.bench.report import mean_se

    out = {}
    for key, by_method in raw.items():
        block: dict = {label: mean_se(runs, suffix="_sem", always=True) for label, runs in by_method.items()}
        world = mean_se(world_raw[key], suffix="_sem", always=True)
        block["world"] = {f: world[f] for f in world_raw[key][0]}
        block["rarity_auc_mislabeled"] = world["rarity_auc_mislabeled"]
        block["rarity_auc_mislabeled_sem"] = world["rarity_auc_mislabeled_sem"]
        for label in by_method:
            block[f"score_auc_mislabeled_{label}"] = block[label]["score_auc_mislabeled"]
        nb = block.get(headline)
        if nb is not None:
            block.update({k: nb[f] for k, f in _HEADLINE.items()})
            for base in baselines:
                if base in block and block[base]["ndcg@10"]:
                    block[f"{headline}_vs_{base}_ndcg@10"] = nb["ndcg@10"] / block[base]["ndcg@10"]
        out[key] = block
    return out


def table_lines(blocks: Mapping[str, dict], labels: Sequence[str], *, headline: str, baseline: str) -> list[str]:
    """The text table of a :func:`summarize` result: ``mean±se`` per label and metric, then the
    headline's flip figures per rate (when the rate has the headline label)."""
    r3 = lambda v: v if v is None else round(v, 3)  # noqa: E731
    name = headline.upper()
    lines = [f"{'noise':>6} {'metric':>14} " + " ".join(f"{m:>18}" for m in labels)]
    for key, block in blocks.items():
        for metric in ("ndcg@10", "recall@10", "true_ndcg@10"):
            cells = [f"{block[m][metric]:.4f}±{block[m][metric + '_sem']:.4f}" for m in labels]
            lines.append(f"{key:>6} {metric:>14} " + " ".join(f"{c:>18}" for c in cells))
        if headline not in block:
            continue
        fr, fu = block["flip_rank_correlation"], block["flip_rank_correlation_user"]
        tm, tmu = block["flip_rank_correlation_total_miss"], block["flip_rank_correlation_total_miss_user"]
        ratio = block.get(f"{headline}_vs_{baseline}_ndcg@10")
        lines.append(f"{key:>6} AUC at finding the liked unvoted items: flip rates {r3(block['flip_auc_mislabeled'])} "
                     f"item rarity {r3(block['rarity_auc_mislabeled'])} {name} scores "
                     f"{r3(block['score_auc_mislabeled'])}; drawn negatives that are liked: "
                     f"{r3(block['world']['drawn_hidden_share'])}")
        lines.append(f"{key:>6} flip Spearman vs injected noise: items {r3(fr)} users {r3(fu)} pairs "
                     f"{r3(block['flip_rank_correlation_pairs'])} (rarity alone: items "
                     f"{r3(block['rarity_rank_correlation'])} users {r3(block['rarity_rank_correlation_user'])}); "
                     f"vs total miss: items {r3(tm)} users {r3(tmu)}; {name}/{baseline.upper()} ndcg {r3(ratio)}")
    return lines
