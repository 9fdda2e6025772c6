"""The training loops of Saito's code (usaito/unbiased-pairwise-rec), as samplers, with its tuned values.

Used by the authors' protocol of ``benchmarks/mnar.py`` (:mod:`recsampling.bench.saito` prepares
the data, scores the models and tunes them); not registered: each needs the pre-sampled pairs of
:class:`recsampling.bench.saito.AuthorsData`, so none is built by name from the registry.

- :class:`AuthorsPairwise`: ``train_pairwise`` (BPR, UBPR) on fixed pairs;
- :class:`AuthorsPointwise`: ``train_pointwise`` (WMF, naive, Rel-MF) on half clicks, half
  unlabeled pairs;
- :data:`AUTHORS_HYPER_PARAMS` / :data:`REPLICATION_HYPER_PARAMS`: the tuned values per data set
  and method; :func:`authors_params` reads them, :func:`authors_sampler` builds a method's loop,
  :func:`authors_space` is the tuning space of a method.
"""

from __future__ import annotations

import numpy as np
import torch

from recsampling.samplers.base import Batch, Sampler
from recsampling.samplers.mnar import delta_losses, ubpr_terms

__all__ = ["AuthorsPairwise", "AuthorsPointwise", "AUTHORS_HYPER_PARAMS", "REPLICATION_HYPER_PARAMS",
           "AUTHORS_METHODS", "AUTHORS_BASELINE", "AUTHORS_TRAINING", "REPORTED_PARAMS", "REPLICATION_RESULTS",
           "authors_params", "authors_sampler", "authors_space"]

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
#: the method every other one is compared with, run by run
AUTHORS_BASELINE = "bpr"
#: beside ``dim`` and ``lam``, the values of :func:`authors_params` a result reports per method
REPORTED_PARAMS = {"wmf": ("weight",), "relmf": ("clip",), "ubpr": ("beta", "ubpr_clip")}
#: Dassen, Chintam & Feenstra's replication with the authors' code (Maximeswd/RecSys,
#: ``paper_results/coat/original/ranking_all.csv``, mean of 10 runs), and the s.e. of DCG@5 over those runs
#: computed from their per-run ``logs/coat/original/<method>/results/aoa_all.csv``; ``popularity`` is their ``ip``.
REPLICATION_RESULTS = {"coat": {
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
}}
#: ``conf/config.yaml``: Adam's learning rate and the batch size. Its ``max_iters: 10`` cannot be what the
#: papers ran (the models stay at random level, usaito/unbiased-pairwise-rec#3); 1000 is the default of
#: ``max_iters`` in their ``trainer.py`` (``Trainer``, ``train_pointwise``, ``train_pairwise``).
AUTHORS_TRAINING = {"eta": 0.001, "batch_size": 256, "max_iters": 1000}


def _l2(model, lam: float):
    """``lam * (tf.nn.l2_loss(U) + tf.nn.l2_loss(V))``: half the squared norm of the whole tables (the
    model's parameters: the two factor tables of an MF without biases), not only of the batch's rows."""
    return lam * 0.5 * sum(p.pow(2).sum() for p in model.parameters())


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
        return terms.mean() + _l2(model, self.lam)


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
        return local.sum() / (y + self.weight * (1.0 - y)).sum() + _l2(model, self.lam)


def authors_params(dataset: str, method: str, source: str = "saito", *, factors: int | None = None,
                   lam: float | None = None, beta="default", clip: float | None = None) -> dict:
    """The tuned values of ``method`` on ``dataset``, with the given overrides.

    Parameters
    ----------
    dataset : {"coat", "yahoo-r3"}
    method : one of :data:`AUTHORS_METHODS`
    source : {"saito", "replication", "replication-latest"}
        The authors' values (:data:`AUTHORS_HYPER_PARAMS`) or the replication's.
    factors, lam : optional
        Override every method's ``dim`` / ``lam``.
    beta : float, None or "default"
        UBPR's clamp (None: unclamped); ``"default"`` keeps the tuned value.
    clip : float, optional
        Rel-MF's propensity clip, and a clip of UBPR's propensities (theirs: none).

    Returns
    -------
    dict
        ``dim``, ``lam``, ``weight``, ``clip``, ``beta`` and ``ubpr_clip``.
    """
    base = AUTHORS_HYPER_PARAMS[dataset] if source == "saito" else REPLICATION_HYPER_PARAMS[source][dataset]
    p = dict(base["relmf"] if method == "naive" else base[method])
    p.setdefault("weight", 1.0)
    p.setdefault("clip", 0.0)
    p.setdefault("beta", None)
    if factors is not None:
        p["dim"] = factors
    if lam is not None:
        p["lam"] = lam
    if beta != "default" and method == "ubpr":
        p["beta"] = beta
    p["ubpr_clip"] = clip if method == "ubpr" else None  # ours clips UBPR's propensities, theirs not
    if clip is not None and method == "relmf":
        p["clip"] = clip
    return p


def authors_sampler(method: str, data, params: dict, steps: int) -> Sampler:
    """``method``'s training loop on ``data`` (an :class:`~recsampling.bench.saito.AuthorsData`) with
    ``params`` (those of :func:`authors_params`) for ``steps`` batches."""
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
            beta, clip = params["beta"], params["ubpr_clip"]
        return AuthorsPairwise(pairs["users"], pairs["pos"], pairs["neg"], theta, click_j,
                               beta=beta, lam=params["lam"], steps=steps, clip=clip)
    if method not in AUTHORS_METHODS:
        raise ValueError(f"unknown method {method!r}; choose among {', '.join(AUTHORS_METHODS)}")
    theta = data.theta if method == "relmf" else np.ones(data.n_items)
    return AuthorsPointwise(data.pos_users, data.pos_items, theta, data.unlabeled, data.n_items,
                            weight=params["weight"] if method == "wmf" else 1.0,
                            clip=params["clip"] if method == "relmf" else 0.0, lam=params["lam"], steps=steps)


def authors_space(trial, method: str) -> dict:
    """The replication's search space (``src/tune.py`` of Maximeswd/RecSys: dim 100-300 by 20, lam
    1e-7-1e-3 log, WMF weight 1e-3-1) with UBPR's beta log-uniform in [1e-3, 10] and Rel-MF's clip
    log-uniform in [1e-3, 0.5] (wide enough to hold both the authors' and the replication's values)."""
    p = {"dim": trial.suggest_int("dim", 100, 300, step=20), "lam": trial.suggest_float("lam", 1e-7, 1e-3, log=True)}
    if method == "wmf":
        p["weight"] = trial.suggest_float("weight", 1e-3, 1.0)
    elif method == "ubpr":
        p["beta"] = trial.suggest_float("beta", 1e-3, 10.0, log=True)
    elif method == "relmf":
        p["clip"] = trial.suggest_float("clip", 1e-3, 0.5, log=True)
    return p
