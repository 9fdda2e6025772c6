"""The authors' protocol of Saito's ICTIR'20 code (usaito/unbiased-pairwise-rec), on this package's path.

Saito's code (``src/preprocess/preprocessor.py``, ``src/models/recommenders.py``, ``src/trainer.py``,
``src/evaluate/{evaluator,metrics}.py``, ``conf/{config,hyper_params}.yaml``) as Dassen, Chintam &
Feenstra's replication ran it (Maximeswd/RecSys), rebuilt on our torch Trainer (Adam) and MF (no
biases, Xavier-uniform start); ``benchmarks/mnar.py --protocol authors`` runs it:

- data (:class:`AuthorsData`): ratings >= 4 are the training positives, every other pair is
  unlabeled; item propensities ``(n_i / n_users)^0.5`` on Coat, ``(n_i / max n)^0.5`` on Yahoo! R3;
  10% of all pairs held out; 10 pre-sampled items ``j`` per click (BPR: unlabeled ones; UBPR: any,
  clicked or not);
- training (:func:`fit_authors`): 1000 steps of 256 rows drawn with replacement, Adam lr 0.001, L2 on
  the whole tables; BPR and UBPR on the fixed pairs, WMF, naive and Rel-MF on batches of half clicks,
  half unlabeled pairs with the squared loss; their tuned ``dim``, ``lam``, ``clip``, ``beta``,
  ``weight`` (:data:`recsampling.samplers.saito.AUTHORS_HYPER_PARAMS`), or :func:`tune_authors`' values;
- test (:func:`authors_metrics`): every rated randomized pair is a candidate, only ratings of 5 are
  relevant (their array is integer: the graded relevance is truncated), DCG with ranks 1 and 2 both
  weighted 1, divided by the user's relevant items, averaged over *all* test users (a user without a
  relevant item counts 0). Beside it, the same models under :data:`METRIC_VARIANTS` (one change at a
  time, then ours), a random order's expectation and the popularity order (the replication's ``ip``).

The pieces:

- :class:`AuthorsData`: the preprocessing (positives, propensities, split, pre-sampled pairs);
- :func:`fit_authors`: a method's training (its loop from :mod:`recsampling.samplers.saito`);
- :func:`authors_metrics` / :class:`AuthorsEvaluation`: their test metrics and the variants of
  :data:`METRIC_VARIANTS`, the random and the popularity orders;
- :func:`unbiased_validation_dcg` / :func:`tune_authors`: their validation metric and a tuning
  study on it;
- :func:`paired_diffs`: method minus baseline, run by run;
- :func:`run_authors` / :func:`authors_markdown`: the protocol end to end (tuning, the runs, the
  baselines, the replication's figures beside ours) and its tables.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

import numpy as np

from recsampling.bench.report import mean_se, mean_se_by, method_table, ratios_to

__all__ = ["AuthorsData", "AuthorsEvaluation", "authors_metrics", "distinct_draws", "fit_authors",
           "unbiased_validation_dcg", "tune_authors", "paired_diffs", "run_authors", "authors_markdown", "METRIC_VARIANTS", "AUTHORS_DATA_SEED",
           "KS", "BASE_METRICS", "PAIRED_KEYS", "RATIO_KEYS"]

KS = (3, 5, 8)
BASE_METRICS = ("dcg", "recall", "map")
AUTHORS_PAIRS_PER_CLICK = 10  # ``samples = 10`` in preprocessor.py: the pre-sampled items j of each click
AUTHORS_VALID_FRACTION = 0.1  # ``train_test_split(train, test_size=0.1)`` over *all* user-item pairs
AUTHORS_DATA_SEED = 12345  # their preprocessing seeds (split, Bernoulli labels, pair samples)
#: the figures kept per run (``runs``) and compared run by run with the baseline (``paired_vs_bpr``)
PAIRED_KEYS = ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5", "ours/dcg@5")
#: the figures given as ratios to the baseline
RATIO_KEYS = ("dcg@3", "dcg@5", "dcg@8", "recall@5", "map@5")

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

    Raises
    ------
    FileNotFoundError, ValueError
        When the data set cannot be loaded, or has no ratings or no randomized test set.
    """

    def __init__(self, dataset: str, data_dir: str, positives: str = "threshold", propensity: str = "auto",
                 seed: int = AUTHORS_DATA_SEED):
        from recsampling.data.datasets import load_dataset

        if positives not in ("threshold", "bernoulli"):
            raise ValueError(f"positives must be 'threshold' or 'bernoulli', got {positives!r}")
        if propensity not in ("auto", "users", "max", "ones"):
            raise ValueError(f"propensity must be 'auto', 'users', 'max' or 'ones', got {propensity!r}")
        ds = load_dataset(dataset, data_dir=data_dir)  # FileNotFoundError / ValueError when it cannot
        if ds.test is None or ds.interactions.ratings is None:
            raise ValueError(f"{dataset!r} needs ratings and a randomized test set")
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


def fit_authors(data: AuthorsData, method: str, seed: int, params: dict, *, steps: int, batch_size: int,
                lr: float, device: str = "cpu", n_threads: int | None = None):
    """Train ``method`` the authors' way: their loss, batches and L2 (the loop of
    :func:`recsampling.samplers.saito.authors_sampler` with ``params``, those of
    :func:`~recsampling.samplers.saito.authors_params`), their MF (no bias, Xavier uniform
    initialisation), Adam with learning rate ``lr``, ``steps`` batches of ``batch_size`` on our torch
    Trainer."""
    import torch

    from recsampling.models import make_model
    from recsampling.samplers.saito import authors_sampler
    from recsampling.train import Trainer

    sampler = authors_sampler(method, data, params, steps)
    model = make_model("mf", data.train, factors=int(params["dim"]), item_bias=False, user_bias=False,
                       random_state=seed)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():  # tf.contrib.layers.xavier_initializer: U(-a, a), a = sqrt(6 / (rows + dim))
        for w in (model.user_factors.weight, model.item_factors.weight):
            a = float(np.sqrt(6.0 / (w.shape[0] + w.shape[1])))
            w.uniform_(-a, a, generator=gen)
    Trainer(epochs=1, batch_size=batch_size, optimizer="adam", lr=lr, l2=0.0, device=device,
            random_state=seed, backend="torch", n_threads=n_threads, progress=False).fit(model, sampler, data.train)
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

    def random_order(self) -> dict:
        """Expected figures of a random order of each user's candidates (exact)."""
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
        return rand

    def item_count_order(self, item_counts: np.ndarray, n_ties: int = 10) -> dict:
        """Mean and s.e. of the figures of the items ranked by ``item_counts`` (the replication's ``ip``
        with the training positives' counts), over ``n_ties`` random tie-breaks (seed 0)."""
        rng = np.random.default_rng(0)
        runs = [authors_metrics(item_counts[self.items] + rng.random(self.items.shape), self.mask, self.rel)
                for _ in range(n_ties)]
        return mean_se([{k: v for k, v in x.items() if k != "n_users"} for x in runs])


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


def tune_authors(data: AuthorsData, method: str, params: dict, n_trials: int, seed: int = 0, **fit) -> dict:
    """Optuna search (TPE, ``n_trials`` trials, ``seed``) of ``method``'s values under the authors'
    protocol, scored by :func:`unbiased_validation_dcg` on the held-out 10% of the pairs; a trial
    trains with ``params`` updated by :func:`recsampling.samplers.saito.authors_space`'s draw, and
    ``fit`` (:func:`fit_authors`' keywords). The same budget for every method; the test set is never
    seen."""
    import optuna

    from recsampling.samplers.saito import authors_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        model = fit_authors(data, method, seed, {**params, **authors_space(trial, method)}, **fit)
        value = unbiased_validation_dcg(model, data, seed=seed)
        if not np.isfinite(value):
            raise optuna.TrialPruned("non-finite validation DCG")
        return value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials, catch=(ValueError, RuntimeError))
    return {"best_params": dict(study.best_params), "best_value": float(study.best_value),
            "metric": "unbiased_dcg@5 (validation)", "n_trials": len(study.trials), "wall_s": time.perf_counter() - t0}


def paired_diffs(runs: dict[str, list[dict]], baseline: str, keys) -> dict:
    """Mean and s.e. of ``method - baseline`` over the runs, run by run (run k of both shares its seed
    and data draw): ``<method>/<key>`` -> ``{"diff", "se"}``; empty without the baseline or with fewer
    than two runs of it."""
    if baseline not in runs or len(runs[baseline]) < 2:
        return {}
    out = {}
    for m, rs in runs.items():
        for k in keys:
            d = np.array([r[k] for r in rs]) - np.array([r[k] for r in runs[baseline]])
            out[f"{m}/{k}"] = {"diff": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(d.size))}
    return out


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_authors(prepare: Callable[[int], AuthorsData], methods: Sequence[str], params_of: Callable[[str], dict], *,
                seeds: int, tune: int = 0, tune_seed: int = 0, redraw: bool = False, **fit) -> dict:
    """The authors' protocol end to end, with progress on stderr; returns the result dict.

    Parameters
    ----------
    prepare : callable
        ``prepare(seed) -> AuthorsData``, the preprocessing with that seed; called once with
        :data:`AUTHORS_DATA_SEED` (their runs share one split and one draw of the pairs, their fixed
        ``.npy`` files), and with ``redraw`` once more per further run (``AUTHORS_DATA_SEED + run``:
        the runs' spread then also holds that draw's share of the variance).
    methods : sequence of str
        Of :data:`recsampling.samplers.saito.AUTHORS_METHODS`.
    params_of : callable
        ``params_of(method)``: its values (:func:`recsampling.samplers.saito.authors_params`).
    seeds : int
        Runs (run ``k`` seeds the model's start and the batches with ``k``).
    tune, tune_seed : int
        With ``tune`` > 0, :func:`tune_authors` gives every method that many trials first (seed
        ``tune_seed``); the runs then train its best values.
    **fit
        :func:`fit_authors`' keywords (``steps``, ``batch_size``, ``lr``, ``device``, ``n_threads``).

    Returns
    -------
    dict
        ``methods`` (mean, s.e. of every figure of :class:`AuthorsEvaluation`), ``ratios_vs_bpr``,
        ``baselines`` (random and popularity orders), ``replication`` and its ratios (Coat), the
        ``params`` trained, ``tuning``, ``runs`` and ``paired_vs_bpr`` (:data:`PAIRED_KEYS`, run by run).
    """
    from recsampling.samplers.saito import AUTHORS_BASELINE as baseline
    from recsampling.samplers.saito import REPLICATION_RESULTS, REPORTED_PARAMS

    t_start = time.perf_counter()
    data = prepare(AUTHORS_DATA_SEED)
    ev = AuthorsEvaluation(data.ds.test)
    tuning = {}
    for m in methods if tune else ():
        tuning[m] = tune_authors(data, m, params_of(m), tune, tune_seed, **fit)
        _say(f"# tuned {m:6s} unbiased validation dcg@5={tuning[m]['best_value']:.4f} {tuning[m]['best_params']} "
             f"({tuning[m]['wall_s']:.0f}s)")
    params = {m: {**params_of(m), **tuning.get(m, {}).get("best_params", {})} for m in methods}
    per_seed: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(seeds):
        run_data = prepare(AUTHORS_DATA_SEED + seed) if redraw and seed else data
        for m in methods:
            t0 = time.perf_counter()
            model = fit_authors(run_data, m, seed, params[m], **fit)
            fit_s = time.perf_counter() - t0
            per_seed[m].append({**ev(model), "fit_s": fit_s})
            _say(f"# seed {seed} {m:6s} dcg@5={per_seed[m][-1]['dcg@5']:.4f} ({fit_s:.1f}s)")
    summary = mean_se_by(per_seed)
    replication = REPLICATION_RESULTS.get(data.dataset, {})
    return {"benchmark": "mnar", "protocol": "authors", "data": data.info(), "methods": summary,
            "ratios_vs_bpr": ratios_to(summary, baseline, RATIO_KEYS + tuple(f"{v}/dcg@5" for v in METRIC_VARIANTS)),
            "baselines": {"random": ev.random_order(), "popularity": ev.item_count_order(data.item_counts)},
            "replication": replication, "replication_ratios_vs_bpr": ratios_to(replication, baseline, RATIO_KEYS),
            "params": {m: {k: v for k, v in p.items() if k in ("dim", "lam") + REPORTED_PARAMS.get(m, ())}
                       for m, p in params.items()},
            "tuning": tuning, "metric_variants": METRIC_VARIANTS,
            "runs": {m: {k: [r[k] for r in per_seed[m]] for k in PAIRED_KEYS} for m in methods},
            "paired_vs_bpr": paired_diffs(per_seed, baseline, PAIRED_KEYS), "wall_s": time.perf_counter() - t_start}


def _pairs(d: dict, spec: str) -> str:
    """``k=v, ...`` with the floats formatted by ``spec``."""
    return ", ".join(f"{k}={v:{spec}}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def authors_markdown(result: dict, dataset: str, runs: int, tune: int = 0) -> str:
    """The Markdown tables of a :func:`run_authors` result: ours under their protocol with the
    baselines, ratios and paired differences to BPR, the replication's table, the metric variants."""
    from recsampling.samplers.saito import AUTHORS_BASELINE as baseline

    summary, base, info = result["methods"], result["baselines"], result["data"]
    cols = [f"{m}@{k}" for m in BASE_METRICS for k in KS]
    pop = base["popularity"]
    md = [f"### {dataset}, the authors' protocol (mean ± s.e. over {runs} runs; "
          f"{info['test_users_with_relevant']} of {info['test_users']} test users have a relevant test item)", "",
          method_table(summary, group="", metrics=cols), "",
          "| baseline | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols),
          "| random order (expected) | " + " | ".join(f"{base['random'][c]:.4f}" for c in cols) + " |",
          "| popularity (10 tie-breaks) | " + " | ".join(f"{pop[c]:.4f} ± {pop[c + '_se']:.4f}" for c in cols) + " |",
          "", "Ratios to BPR of the same run, and the difference to BPR run by run (mean ± s.e.):", "",
          "| method | " + " | ".join(RATIO_KEYS) + " | dcg@5 − BPR | ours dcg@5 − BPR |",
          "|---|" + "---|" * (len(RATIO_KEYS) + 2)]
    for m in summary:
        paired = [result["paired_vs_bpr"].get(f"{m}/{k}") for k in ("dcg@5", "ours/dcg@5")]
        md.append(f"| {m} | " + " | ".join(f"{result['ratios_vs_bpr'].get(f'{m}/{r}', float('nan')):.3f}"
                                           for r in RATIO_KEYS)
                  + "".join(f" | {d['diff']:+.4f} ± {d['se']:.4f}" if d else " | " for d in paired) + " |")
    md.append("")
    if result["replication"]:
        rep = result["replication"]
        md += ["The replication (Maximeswd/RecSys, `paper_results/coat/original/ranking_all.csv`, 10 runs):", "",
               "| method | " + " | ".join(cols) + " | dcg@5 / BPR |", "|---|" + "---|" * (len(cols) + 1)]
        md += [f"| {m} | " + " | ".join(f"{d[c]:.4f}" for c in cols) + f" | {d['dcg@5'] / rep[baseline]['dcg@5']:.3f} |"
               for m, d in rep.items()]
        md.append("")
    md += ["DCG@5 under the other metric definitions, same models (ratio to BPR in brackets):", "",
           "| method | authors | " + " | ".join(METRIC_VARIANTS) + " |", "|---|---|" + "---|" * len(METRIC_VARIANTS)]
    for m, d in summary.items():
        cells = []
        for key in ["dcg@5"] + [f"{v}/dcg@5" for v in METRIC_VARIANTS]:
            ratio = result["ratios_vs_bpr"].get(f"{m}/{key}")
            cells.append(f"{d[key]:.4f} ± {d.get(key + '_se', float('nan')):.4f}" + (f" ({ratio:.3f})" if ratio else ""))
        md.append(f"| {m} | " + " | ".join(cells) + " |")
    md += [""] + [f"- `{k}`: {v}" for k, v in METRIC_VARIANTS.items()] + [""]
    md += ["Settings: " + "; ".join(f"{m}: {_pairs(p, '.3g')}" for m, p in result["params"].items()), "",
           f"Data: {_pairs(info, '.4g')}", ""]
    if result["tuning"]:
        md += [f"Tuned ({tune} Optuna trials per method, the authors' unbiased DCG@5 on the held-out 10% "
               "of the pairs):", "", "| method | validation | best values |", "|---|---|---|"]
        md += [f"| {m} | {t['best_value']:.4f} | {_pairs(t['best_params'], '.3g')} |" for m, t in result["tuning"].items()]
        md.append("")
    return "\n".join(md)
