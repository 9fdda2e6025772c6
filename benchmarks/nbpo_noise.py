"""NBPO vs BPO vs uniform BPR on the synthetic world with hidden true positives (label noise).

For each label-noise rate ρ and each seed, the script draws a synthetic world
(:func:`recsampling.data.synthetic.make_world`), splits its *true* positives per user 80/20
(``random_split``), trains on the observed clicks of the 80% part, and evaluates every method
against the known truth, with the training clicks excluded from the ranking.

The noise (``--noise-model``, issue 18):

- ``liked`` (the default; ``make_world(label_noise_model="liked")``): the noise NBPO models, *items
  a user would like that appear unvoted*, on a truth that does not move with ρ. For one seed the
  truth (the clicks plus as many liked-but-unexposed pairs, ``--liked-unexposed``) and its 80/20
  split are the same at every ρ; ρ of the truth is hidden from training, drawn
  ∝ ``w_u w_i (1 − exposure)`` (rarely shown items, where a uniform sampler draws), nested across ρ.
  The test is the held-out 20% at every ρ, with the hidden pairs of the 80% excluded from the
  ranking like the training clicks, so a larger ρ means noisier training labels of the same
  preferences and the comparison across ρ is paired. Every method is fitted at every ρ.
- ``clicks``: ``make_world``'s default (the only model before issue 18): ρ of the clicks are hidden.
  They sit where the clicks are (popular items, active users) and make up under 3% of the unvoted
  pool at ρ = 0.4, too few for a uniform sampler to meet.

Metrics:

- ``ndcg@10`` / ``recall@10``: against every true positive that is not a training click (the
  held-out 20% plus the hidden positives): what a noise-robust method should find;
- ``true_ndcg@10`` / ``true_recall@10``: graded by the true relevance probabilities; ``avg_popularity@10``: mean
  training count of the recommended items
  (``recsampling.metrics`` truth metrics);
- the flip-ranking figure, over every unvoted training pair except the held-out true positives:
  ``flip_auc_mislabeled`` is the AUC of NBPO's learned per-pair flip rate at telling the truly
  mislabeled pairs (the hidden true positives) from the truly negative ones, beside
  ``rarity_auc_mislabeled`` (minus the item's training count: what "this item is rare" achieves)
  and ``score_auc_mislabeled`` (the model's own score; ``score_auc_mislabeled_<method>`` for each
  method). Undefined (null) at ρ = 0;
- for NBPO, Spearman correlations of the learned per-item / per-user mean flip rates
  (``item_flip_rates_``, ``user_flip_rates_``) with the world's per-item / per-user flip rates
  (``SyntheticWorld.item_noise_rate`` / ``user_noise_rate``: the hidden share of their true
  positives), and with rarity (``rarity_rank_correlation``); with ``--noise-model clicks`` also
  with the *total* miss rate of relevant pairs, relevance-weighted ``1 − exposure·(1 − noise)``;
- ``world`` per noise rate: the hidden share of the unvoted pool (``unvoted_hidden_share``) and of
  the uniformly drawn negatives (``drawn_hidden_share``: user u weighs by its training clicks), the
  same with the held-out positives (``*_true_positive_share``), the hidden fraction of the true
  positives (the overall flip rate), the relevance mass of the unvoted pairs.

``--exposure full`` draws a world in which every pair is exposed, so that label noise is the only
reason a relevant item is unvoted (apart from the held-out test part).

Protocols (``--protocol``):

- ``ours`` (default). All methods share the world, split, model (MF, ``--factors`` 32), optimizer
  (Adam, ``--lr``), batch size (1,024) and seed of each run; each method's number of epochs (early
  stopping, ``--patience``) and its L2 (the ``--l2`` grid) are chosen on a validation set carved
  from the noisy training clicks (10% per user), never on the truth.
- ``authors``: the training loops of the authors' ``_NBPO.py`` / ``_BPO.py`` / ``_BPR.py``
  (Wenhui-Yu/NBPO) on our Trainer (:func:`authors_sampler`): MF without biases, K0 = K1 = 50,
  ``U, V ~ U(0,1)/√K0``, their ``P, Q`` initialisation (``AUTHORS_FLIP_INIT``), 4 uniform negatives
  per voted pair, plain SGD on the sum over batches of 5,000 rows in their (user) order, the L2 on
  the whole tables once per batch, the learning rate × 0.99 per epoch, 200 epochs, no early
  stopping, their per-method ``eta``, ``lambda_r``, ``lambda_phi`` (``--authors-data movielens``
  or ``amazon``, :data:`AUTHORS_SETTINGS`). ``recsampling/samplers/nbpo.py`` has the comparison
  table, line by line.

The default world (600 × 1,000, ~40,000 clicks) is smaller than MovieLens 100K so that a run fits in
minutes on 2 cores with 1 torch thread. Means and standard errors are over seeds. Results go to
``benchmarks/results/nbpo_noise.json`` (``--quick``: ``nbpo_noise_quick.json``; ``--out``: the
summary, the config and every run); with ``--json`` the last stdout line is the summary JSON
``{"noise": {"0.2": {"bpr": {"ndcg@10": ..., "ndcg@10_sem": ..., ...}, "bpo": ..., "nbpo": ...,
"flip_auc_mislabeled": ..., "rarity_auc_mislabeled": ..., "score_auc_mislabeled": ...,
"flip_rank_correlation": ..., "world": {...}}, ...}, "config": ..., "wall_s": ...}``.
``--extra LABEL:key=value,...`` adds NBPO variants (e.g. ``exact:objective=exact``) and
``--methods`` restricts the run to some labels (ablations).

Run ``python benchmarks/nbpo_noise.py --help`` for the options; ``--quick`` is a tiny smoke run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from recsampling.data.interactions import Interactions
from recsampling.data.splits import random_split, validation_split
from recsampling.data.synthetic import make_world
from recsampling.metrics import pooled_auc as auc
from recsampling.models import make_model
from recsampling.samplers import make_sampler
from recsampling.samplers.nbpo import AUTHORS_FLIP_INIT
from recsampling.bench.contenders import Ours
from recsampling.bench.flags import add_flags, result_path, write_results
from recsampling.bench.report import mean_se
from recsampling.tasks import Task
from recsampling.train import Trainer

METRICS = ("ndcg", "recall", "true_ndcg", "true_recall", "avg_popularity")


def _world_split(noise: float, seed: int, args) -> tuple[Task, object, Interactions]:
    """The task, its world and the held-out true positives.

    The world's truth (``true_positives``, the same at every ρ for one seed) is split per user 80/20
    (``random_split``, seeded: the same split at every ρ); train = the observed clicks of the 80%.
    ``--noise-model liked``: test = the held-out 20% (the true likes, the same at every ρ), and the
    hidden pairs of the 80% are excluded from the ranking like the training clicks (``Task.valid``),
    so every ρ ranks the same candidates against the same positives and only the training labels
    change. ``clicks``: test = every true positive not in train (held-out and hidden), as before.
    """
    extra = {}
    if args.exposure == "full":
        # every pair exposed (≈0.98): the injected label noise is the only reason a relevant item is unvoted
        extra = dict(exposure_eta=0.0, user_activity_sigma=0.0,
                     relevance_rate=args.interactions / (0.98 * args.n_users * args.n_items))
    extra["label_noise_model"] = args.noise_model
    if args.noise_model == "liked":
        extra["liked_unexposed"] = args.liked_unexposed
    world = make_world(args.n_users, args.n_items, args.interactions, label_noise=noise, random_state=seed, **extra)
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
    if args.noise_model == "liked":
        test, held_out, valid = split.test, split.test, (hidden_train if hidden_train.nnz else None)
    else:
        test = inter(truth.matrix - train_m)
        held_out, valid = inter(test.matrix - test.matrix.multiply(world.hidden_positives.matrix)), None
    task = Task("synthetic (true positives)", train, test, valid=valid, relevance=world.relevance, metrics=METRICS,
                ks=(10,))
    return task, world, held_out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    r = spearmanr(a, b)[0]
    return None if not np.isfinite(r) else float(r)


#: at most this many unvoted pairs enter the mislabel AUCs (a uniform sample of users beyond it)
AUC_MAX_PAIRS = 1 << 22


def _mislabel_pairs(train: Interactions, held_out: Interactions, world, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unvoted pairs the flip-ranking AUCs are taken over: ``(users, items, mislabeled)``.

    Every pair that is not a training click, minus the held-out true positives (truly positive but
    not label noise): ``mislabeled`` marks the hidden true positives of the training part (liked
    items that appear unvoted), the rest are truly negative. A uniform sample of users when the
    world has more than :data:`AUC_MAX_PAIRS` pairs.
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


def _scores(model, users: np.ndarray, items: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """The model's score of each pair (users[t], items[t])."""
    out = np.empty(users.size, dtype=np.float32)
    with torch.no_grad():
        for s in range(0, users.size, chunk):
            u = torch.as_tensor(users[s:s + chunk], dtype=torch.int64)
            i = torch.as_tensor(items[s:s + chunk], dtype=torch.int64)
            out[s:s + chunk] = model.score(u, i[:, None])[:, 0].float().numpy()
    return out


def _miss_rates(world) -> tuple[np.ndarray, np.ndarray]:
    """Relevance-weighted P(a relevant pair is unvoted) per item and per user: exposure and noise."""
    rel = world.relevance.astype(np.float64)
    miss = 1.0 - world.exposure.astype(np.float64) * (1.0 - world.noise_rate().astype(np.float64))
    return (rel * miss).sum(0) / rel.sum(0), (rel * miss).sum(1) / rel.sum(1)


def _world_stats(train: Interactions, test: Interactions, world, pairs) -> dict:
    """How much of the unvoted pool the label noise contaminates (what NBPO's flips are about).

    ``unvoted_*_share``: of all pairs that are not training clicks; ``drawn_*_share``: of the
    negatives a uniform sampler draws (each training click draws uniformly among its user's unvoted
    items, so user u weighs by its training clicks). ``rarity_auc_mislabeled``: minus the item's
    training count as a flip-rate estimate (the data-only baseline of ``flip_auc_mislabeled``);
    ``relevance_auc_mislabeled``: the world's true relevance of the pair (what a perfect taste model reaches).
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
        # the label noise of the training part: its hidden share (≈ ρ under --noise-model liked)
        "hidden_fraction_of_true_positives": n_hidden / max(n_hidden + train.nnz, 1),
        "unvoted_true_positive_share": unvoted_tp / unvoted,  # held-out + hidden true positives
        "unvoted_hidden_share": n_hidden / unvoted,
        "drawn_true_positive_share": float((n_u * test_u / free).sum() / max(n_u.sum(), 1.0)),
        "drawn_hidden_share": float((n_u * hidden_u / free).sum() / max(n_u.sum(), 1.0)),
        "unvoted_relevance_share": float(world.relevance.sum(dtype=np.float64) - world.relevance[
            train.user_index(), train.item_index()].sum(dtype=np.float64)) / unvoted,
        "rarity_auc_mislabeled": auc(-train.item_counts().astype(np.float64)[items], mislabeled),
        # the ceiling a taste model could reach: the world's own relevance of the pair
        "relevance_auc_mislabeled": auc(world.relevance_of(users, items), mislabeled),
    }


def _method_params(args) -> dict[str, tuple[str, dict]]:
    nbpo = dict(n_negatives=args.n_negatives, flip=args.flip, objective=args.objective, flip_lr=args.flip_lr,
                flip_init=args.flip_init)
    if args.flip_l2 is not None:
        nbpo["flip_l2"] = args.flip_l2
    methods = {
        "bpr": ("bpr", {}),
        "bpo": ("bpo", dict(n_negatives=args.n_negatives)),
        "nbpo": ("nbpo", nbpo),
    }
    for extra in args.extra:  # label:key=value,key=value  (NBPO with those parameters changed)
        label, sep, spec = extra.partition(":")
        if not sep or not label or label in methods:
            raise SystemExit(f"--extra takes LABEL:key=value[,key=value], e.g. exact:objective=exact; got {extra!r}")
        p = dict(nbpo)
        for item in filter(None, spec.split(",")):
            key, eq, value = item.partition("=")
            if not eq:
                raise SystemExit(f"bad --extra item {item!r}: expected key=value")
            try:
                p[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            except ValueError:
                p[key] = None if value == "None" else value
        methods[label] = ("nbpo", p)
    return methods


#: ``_NBPO.py`` / ``_BPO.py`` / ``_BPR.py`` of Wenhui-Yu/NBPO: per data set and method the learning rate
#: ``eta`` and the L2 coefficients ``lambda_r`` (U, V) and ``lambda_phi`` (P, Q; NBPO only)
AUTHORS_SETTINGS = {
    "movielens": {"bpr": dict(eta=0.02, lambda_r=1.0), "bpo": dict(eta=0.01, lambda_r=1.0),
                  "nbpo": dict(eta=0.02, lambda_r=0.5, lambda_phi=1.0)},
    "amazon": {"bpr": dict(eta=0.05, lambda_r=1.0), "bpo": dict(eta=0.05, lambda_r=2.0),
               "nbpo": dict(eta=0.05, lambda_r=1.0, lambda_phi=5.0)},
}
#: the rest of the authors' setup, the same in all three files: K0 (= K1), negatives per voted pair,
#: rows per batch, epochs, the per-epoch learning-rate decay
AUTHORS_FIXED = dict(factors=50, n_negatives=4, batch_size=5000, epochs=200, decay=0.99)


def authors_sampler(name: str, params: dict, lambda_r: float, lambda_phi: float, decay: float):
    """A sampler of ours (``make_sampler(name, **params)``) run the way the authors' loops run it.

    On our Trainer with ``optimizer="sgd"`` (a step on the batch *sum* of the loss, at lr ``eta``)
    the returned sampler's loss makes each step the authors' ``W += eta_e (dW − lambda W)``:

    - the row losses are summed over the row's drawn negatives (BPR: our loss is the mean over
      the ``k`` triples, so it is multiplied by ``k``; BPO / NBPO already sum a row, the voted term
      weighted ``k``, i.e. once per drawn negative);
    - the L2 is over the *whole* tables once per batch: ``lambda_r/2 (‖U‖² + ‖V‖²)`` (and
      ``lambda_phi/2 (‖P‖² + ‖Q‖²)`` for NBPO), divided by the batch's rows because the Trainer
      multiplies the loss by them;
    - ``eta_e = eta · decay^(e+1)`` in epoch ``e`` (their ``eta = eta * 0.99`` before each epoch):
      the loss is multiplied by ``decay^(e+1)``, exact for plain SGD;
    - rows in the authors' order, user by user (``train_data`` is read per user and never
      shuffled), in batches of consecutive rows.
    """
    base = type(make_sampler(name, **params))
    k = int(params.get("n_negatives", 1))

    class Authors(base):
        def __init__(self):
            super().__init__(**params)
            self.epochs_started = 0

        def epoch_order(self, n, rng):  # the authors' order: their train_data, user by user
            return np.arange(n)

        def batches(self, batch_size, rng):
            self.epochs_started += 1
            yield from super().batches(batch_size, rng)

        def loss(self, model, batch):
            rows = len(batch)
            loss = super().loss(model, batch) * (k if name == "bpr" else 1)
            reg = 0.5 * lambda_r * sum(w.pow(2).sum() for w in model.parameters())
            if lambda_phi and getattr(self, "flip_", None) is not None:
                reg = reg + 0.5 * lambda_phi * sum(w.pow(2).sum() for w in self.flip_.parameters())
            return decay ** self.epochs_started * (loss + reg / rows)

    Authors.__name__ = Authors.__qualname__ = f"Authors{base.__name__}"
    return Authors()


def _fit_ours(name: str, params: dict, train: Interactions, seed: int, args):
    """Adam, early stopping and the L2 (``--l2`` grid) chosen on a validation set carved from the clicks."""
    fit_on, valid = train, None
    if args.patience:
        # early stopping and the choice of L2 on a validation set carved from the (noisy) clicks
        vs = validation_split(train, 0.1, random_state=seed)
        fit_on, valid = vs.train, vs.test
    best = None
    for l2 in args.l2:
        fit = Ours("mf", name).fit(fit_on, dict(factors=args.factors, sampler_params=params, epochs=args.epochs,
                                                batch_size=args.batch_size, optimizer="adam", lr=args.lr, l2=l2,
                                                patience=args.patience or None, metric="ndcg@10"),
                                   seed, valid=valid)
        score = fit.result.best_metric if valid is not None else 0.0
        if best is None or score > best[0]:
            best = (score, l2, fit)
    score, l2, fit = best
    model, sampler, fit = fit.model, fit.sampler, fit.result
    return model, sampler, {"l2": l2, "valid_ndcg": float(score) if valid is not None else None,
                            "best_epoch": fit.best_epoch if valid is not None else args.epochs}


def _fit_authors(name: str, params: dict, train: Interactions, seed: int, args):
    """The authors' loop (:func:`authors_sampler`): their settings, init and schedule, all clicks, no early stop.

    MF without biases, ``U, V ~ U(0, 1) / sqrt(K0)``; NBPO's ``P ~ 5 U(0, 1) / sqrt(K1)``,
    ``Q ~ −5 U(0, 1) / sqrt(K1)`` is :data:`~recsampling.samplers.nbpo.AUTHORS_FLIP_INIT`.
    """
    base = "nbpo" if name not in ("bpr", "bpo") else name
    setting = dict(AUTHORS_SETTINGS[args.authors_data][base])
    if args.lr_given:
        setting["eta"] = args.lr
    params = dict(params, n_negatives=args.n_negatives)
    if name not in ("bpr", "bpo"):  # K1 = K0; lambda_phi on the whole P, Q replaces our per-row flip_l2
        params.setdefault("flip_dim", args.factors)
        params["flip_l2"] = 0.0
    model = make_model("mf", train, factors=args.factors, user_bias=False, item_bias=False, random_state=seed)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for w in model.parameters():
            w.copy_(torch.rand(w.shape, generator=gen) / math.sqrt(args.factors))
    sampler = authors_sampler(name if name in ("bpr", "bpo") else "nbpo", params, setting["lambda_r"],
                              setting.get("lambda_phi", 0.0), args.decay)
    valid = None
    fit_on = train
    if args.patience:
        vs = validation_split(train, 0.1, random_state=seed)
        fit_on, valid = vs.train, vs.test
    fit = Trainer(epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd", lr=setting["eta"], l2=0.0,
                  device="cpu", random_state=seed, backend="torch", progress=False, patience=args.patience or None,
                  metric="ndcg@10").fit(model, sampler, fit_on, valid=valid)
    return model, sampler, {"eta": setting["eta"], "lambda_r": setting["lambda_r"],
                            "lambda_phi": setting.get("lambda_phi"), "diverged": bool(fit.diverged),
                            "valid_ndcg": fit.best_metric, "best_epoch": fit.best_epoch if valid is not None
                            else len(fit.history) - 1}


def fit_one(name: str, params: dict, train: Interactions, seed: int, args) -> tuple:
    """Fit one method (``--protocol``: ours or the authors'): ``(model, sampler, info)``."""
    t0 = time.perf_counter()
    fit = _fit_authors if args.protocol == "authors" else _fit_ours
    model, sampler, info = fit(name, params, train, seed, args)
    info["fit_s"] = time.perf_counter() - t0
    return model, sampler, info


def run_one(name: str, params: dict, task: Task, world, pairs, seed: int, args) -> dict:
    """Fit one method on the task's training clicks, evaluate it against the truth."""
    train, test = task.train, task.test
    model, sampler, info = fit_one(name, params, train, seed, args)
    res = task.evaluate(model, device="cpu").to_dict()
    out = {f"{m}@10": float(res[f"{m}@10"]) for m in METRICS}
    out.update(info)
    pu, pi, mislabeled = pairs
    # the model's own score as a detector of the liked items among the unvoted
    out["score_auc_mislabeled"] = auc(_scores(model, pu, pi), mislabeled)
    if hasattr(sampler, "flip_rates"):
        out["flip_auc_mislabeled"] = auc(sampler.flip_rates(pu, pi, pairs=True), mislabeled)
        item_rates, user_rates = sampler.item_flip_rates_, sampler.user_flip_rates_
        out["item_flip_spearman"] = _spearman(item_rates, world.item_noise_rate)
        out["user_flip_spearman"] = _spearman(user_rates, world.user_noise_rate)
        out["mean_flip_rate"] = float(item_rates.mean())
        out["item_flip_spearman_popularity"] = _spearman(item_rates, train.item_counts().astype(float))
        # what a flip rate means in this world: P(unvoted | relevant) = 1 - exposure (1 - noise)
        # (label_noise_model="clicks" only: there noise_rate() is P(a true positive is hidden))
        item_miss, user_miss = _miss_rates(world) if world.label_noise_model == "clicks" else (None, None)
        out["item_flip_spearman_total_miss"] = None if item_miss is None else _spearman(item_rates, item_miss)
        out["user_flip_spearman_total_miss"] = None if user_miss is None else _spearman(user_rates, user_miss)
        # the data-only baseline a flip rate has to beat: rarity (minus the training count)
        out["item_rarity_spearman"] = _spearman(-train.item_counts().astype(float), world.item_noise_rate)
        out["user_rarity_spearman"] = _spearman(-train.user_counts().astype(float), world.user_noise_rate)
        # pair level, on the true positives the model did not train on (held-out and hidden)
        tu, ti = test.matrix.nonzero()
        out["pair_flip_spearman"] = _spearman(sampler.flip_rates(tu, ti, pairs=True), world.noise_rate()[tu, ti])
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4], help="label-noise rates ρ")
    add_flags(p, "seeds", "threads", "quick", "json",
              helps={"seeds": "seeds per noise rate (0..seeds-1)", "threads": "torch threads (1 is fastest for these sizes)",
                     "quick": "tiny world, at most 2 seeds and 3 epochs (smoke test)",
                     "json": "print the result JSON as the last stdout line"})
    p.add_argument("--n-users", type=int, default=600)
    p.add_argument("--n-items", type=int, default=1000)
    p.add_argument("--interactions", type=int, default=40_000, help="expected true positives of the world")
    p.add_argument("--protocol", default="ours", choices=["ours", "authors"],
                   help="ours: Adam, early stopping and the L2 grid on validation; authors: the loops of _NBPO.py / "
                        "_BPO.py / _BPR.py (SGD on batch sums, whole-table L2 per batch, lr x0.99 per epoch, their "
                        "settings, init and order, 200 epochs, no early stopping)")
    p.add_argument("--authors-data", default="movielens", choices=sorted(AUTHORS_SETTINGS),
                   help="whose tuned eta / lambda_r / lambda_phi --protocol authors takes")
    p.add_argument("--decay", type=float, default=AUTHORS_FIXED["decay"],
                   help="--protocol authors: learning-rate factor per epoch")
    p.add_argument("--noise-model", default="liked", choices=["liked", "clicks"],
                   help="liked (default): a truth fixed across rho (clicks + liked-but-unexposed pairs), rho of it hidden "
                        "from training where the uniform sampler draws (NBPO's noise); clicks: rho of the clicks hidden "
                        "(make_world's default)")
    p.add_argument("--liked-unexposed", type=float, default=1.0,
                   help="--noise-model liked: liked-but-unexposed pairs in the truth, as a multiple of the clicks")
    p.add_argument("--exposure", default="mnar", choices=["mnar", "full"],
                   help="mnar: the world's popularity-driven exposure (default); full: every pair exposed, so "
                        "the injected noise is the only missingness besides the held-out test")
    p.add_argument("--factors", type=int, default=None, help="default 32; --protocol authors: 50 (K0 = K1)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 30; --protocol authors: 200)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping on validation ndcg@10 (10%% of the training clicks); 0: off "
                        "(default 5; --protocol authors: 0)")
    p.add_argument("--batch-size", type=int, default=None, help="default 1024; --protocol authors: 5000")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate of all methods (default 0.01); --protocol authors: replaces every method's "
                        "eta (default: theirs)")
    p.add_argument("--l2", type=float, nargs="+", default=[1e-2, 3e-2, 1e-1],
                   help="L2 grid of the touched embeddings; each method takes the best on validation")
    p.add_argument("--n-negatives", type=int, default=4, help="unvoted draws per voted pair (BPO, NBPO)")
    p.add_argument("--flip", default="factor", choices=["factor", "item", "user", "user+item"])
    p.add_argument("--objective", default="surrogate", choices=["surrogate", "exact"])
    p.add_argument("--flip-lr", type=float, default=None, help="flip parameters' lr (default: --lr)")
    p.add_argument("--flip-l2", type=float, default=None, help="NBPO flip_l2 (default: NBPOSampler's)")
    p.add_argument("--flip-init", type=float, default=None,
                   help="initial flip rate (default 0.01; --protocol authors: AUTHORS_FLIP_INIT = sigmoid(-6.25))")
    p.add_argument("--extra", nargs="*", default=[],
                   help="extra NBPO variants LABEL:key=value[,key=value], e.g. exact:objective=exact "
                        "item:flip=item pw1:positive_weight=1.0 (NBPOSampler parameters)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="run only these labels (default: bpr bpo nbpo and the --extra variants)")
    p.add_argument("--out", default=None,
                   help="results JSON (default: results/nbpo_noise.json, with --quick results/nbpo_noise_quick.json)")
    args = p.parse_args(argv)
    if args.out is None:  # a smoke run must not overwrite the recorded results
        args.out = str(result_path(__file__, "nbpo_noise", args.quick and "quick"))
    authors = args.protocol == "authors"
    args.lr_given = args.lr is not None
    for key, ours in (("factors", 32), ("epochs", 30), ("batch_size", 1024)):
        if getattr(args, key) is None:
            setattr(args, key, AUTHORS_FIXED[key] if authors else ours)
    if args.patience is None:
        args.patience = 0 if authors else 5
    if args.lr is None:
        args.lr = 0.01
    if args.flip_init is None:
        args.flip_init = AUTHORS_FLIP_INIT if authors else 0.01
    if args.quick:
        args.n_users, args.n_items, args.interactions = 150, 200, 2500
        args.seeds, args.epochs = min(args.seeds, 2), min(args.epochs, 3)  # smaller ones asked for still hold
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    methods = _method_params(args)
    if args.methods:
        unknown = set(args.methods) - set(methods)
        if unknown:
            p.error(f"unknown --methods {sorted(unknown)}; known: {sorted(methods)}")
        methods = {m: methods[m] for m in args.methods}
    raw: dict[str, dict[str, list[dict]]] = {}
    world_raw: dict[str, list[dict]] = {}
    t_start = time.perf_counter()
    for noise in args.noise:  # every method is fitted at every rate: the training labels change with it
        key = f"{noise:.1f}" if round(noise, 1) == noise else str(noise)
        raw[key] = {m: [] for m in methods}
        world_raw[key] = []
        for seed in range(args.seeds):
            task, world, held_out = _world_split(noise, seed, args)
            pairs = _mislabel_pairs(task.train, held_out, world, seed)
            world_raw[key].append(_world_stats(task.train, task.test, world, pairs))
            for label, (name, params) in methods.items():
                raw[key][label].append(run_one(name, params, task, world, pairs, seed, args))
                if not args.json:
                    r = raw[key][label][-1]
                    print(f"noise {key} seed {seed} {label:14s} ndcg@10 {r['ndcg@10']:.4f} "
                          f"true_ndcg@10 {r['true_ndcg@10']:.4f} ({r['fit_s']:.1f}s)", file=sys.stderr)

    result: dict = {"noise": {}}
    for key, by_method in raw.items():
        block: dict = {label: mean_se(runs, suffix="_sem", always=True) for label, runs in by_method.items()}
        world_means = mean_se(world_raw[key])
        block["world"] = {f: world_means[f] for f in world_raw[key][0]}
        # the flip-ranking figure: AUC at telling the liked items among the unvoted (hidden true
        # positives) from the truly negative unvoted pairs, for NBPO's flip rates, item rarity and scores
        block["rarity_auc_mislabeled"] = world_means["rarity_auc_mislabeled"]
        block["rarity_auc_mislabeled_sem"] = mean_se(world_raw[key], suffix="_sem", always=True)["rarity_auc_mislabeled_sem"]
        for label in by_method:
            block[f"score_auc_mislabeled_{label}"] = block[label]["score_auc_mislabeled"]
        nb = block.get("nbpo")
        if nb is not None:
            block["flip_auc_mislabeled"] = nb["flip_auc_mislabeled"]
            block["flip_auc_mislabeled_sem"] = nb["flip_auc_mislabeled_sem"]
            block["score_auc_mislabeled"] = nb["score_auc_mislabeled"]
            block["flip_rank_correlation"] = nb["item_flip_spearman"]  # items: the headline figure
            block["flip_rank_correlation_user"] = nb["user_flip_spearman"]
            block["flip_rank_correlation_total_miss"] = nb["item_flip_spearman_total_miss"]
            block["flip_rank_correlation_total_miss_user"] = nb["user_flip_spearman_total_miss"]
            block["flip_rank_correlation_pairs"] = nb["pair_flip_spearman"]
            block["rarity_rank_correlation"] = nb["item_rarity_spearman"]  # the data-only baseline
            block["rarity_rank_correlation_user"] = nb["user_rarity_spearman"]
            for base in ("bpo", "bpr"):
                if base in block and block[base]["ndcg@10"]:
                    block[f"nbpo_vs_{base}_ndcg@10"] = nb["ndcg@10"] / block[base]["ndcg@10"]
        result["noise"][key] = block
    result["config"] = {k: v for k, v in vars(args).items() if k not in ("json", "out", "lr_given")}
    result["config"]["split"] = ("world true positives split 80/20 per user; train = observed clicks of the 80%; "
                                 "test = all true positives not in train; full ranking without train items")
    if authors:
        result["config"]["authors_settings"] = AUTHORS_SETTINGS[args.authors_data]
    result["runs"] = raw
    result["wall_s"] = time.perf_counter() - t_start

    write_results(args.out, result)

    if args.json:
        summary = {"noise": result["noise"], "config": result["config"], "wall_s": result["wall_s"]}
        print(json.dumps(summary))
    else:
        labels = list(methods)
        print(f"{'noise':>6} {'metric':>14} " + " ".join(f"{m:>18}" for m in labels))
        for key, block in result["noise"].items():
            for metric in ("ndcg@10", "recall@10", "true_ndcg@10"):
                cells = [f"{block[m][metric]:.4f}±{block[m][metric + '_sem']:.4f}" for m in labels]
                print(f"{key:>6} {metric:>14} " + " ".join(f"{c:>18}" for c in cells))
            if "nbpo" not in block:
                continue
            fr = block["flip_rank_correlation"]
            fu = block["flip_rank_correlation_user"]
            tm, tmu = block["flip_rank_correlation_total_miss"], block["flip_rank_correlation_total_miss_user"]
            r3 = lambda v: v if v is None else round(v, 3)  # noqa: E731
            ratio = block.get("nbpo_vs_bpo_ndcg@10")
            print(f"{key:>6} AUC at finding the liked unvoted items: flip rates {r3(block['flip_auc_mislabeled'])} "
                  f"item rarity {r3(block['rarity_auc_mislabeled'])} NBPO scores {r3(block['score_auc_mislabeled'])}; "
                  f"drawn negatives that are liked: {r3(block['world']['drawn_hidden_share'])}")
            print(f"{key:>6} flip Spearman vs injected noise: items {r3(fr)} users {r3(fu)} pairs "
                  f"{r3(block['flip_rank_correlation_pairs'])} (rarity alone: items {r3(block['rarity_rank_correlation'])} "
                  f"users {r3(block['rarity_rank_correlation_user'])}); vs total miss: items {r3(tm)} users {r3(tmu)}; "
                  f"NBPO/BPO ndcg {r3(ratio)}")
        print(f"wall {result['wall_s']:.0f}s; written to {args.out}")
    return result


if __name__ == "__main__":
    main()
