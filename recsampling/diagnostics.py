r"""How many of a sampler's negatives are in truth relevant items (synthetic data, where the truth is known).

A negative sampler treats unobserved items as irrelevant; some of them are relevant items the
user never met (*false negatives*). On the synthetic world (:func:`recsampling.data.make_world`)
every pair's true relevance probability ``rel_uj`` is known, so the share can be measured:

    false_negative_rate = Σ_{(u, j) drawn} w_uj · rel_uj / Σ w_uj

the expected share of the drawn negatives that are truly relevant (a pair with relevance
probability ``rel`` is relevant with that probability, so the mean probability is the
expected share; ``above_threshold`` is the weighted share with ``rel_uj > threshold``, the
deterministic variant).

What counts as a drawn negative, and its weight ``w_uj``
--------------------------------------------------------
The weight is the one the sampler's loss gives the entry as a negative: a sampler that selects
or reweighs its negatives with the model says so with a method
``negative_weights(model, batch) -> Tensor (B, L)`` (DNS: 1 on the selected candidates and 0
on the others; WARP: the rank weight on each row's first violator; CET: its estimated
probability of being truly negative). Without one, every real negative entry weighs 1:

- a batch with ``labels`` (BPO, NBPO, UBPR, DLA): the entries labelled 0 (``mask`` True);
- a batch of rows holding only their positive (in-batch softmax, ``items`` (B, 1)): row ``r``'s
  negatives are the other rows' positives that are not accidental hits
  (:meth:`~recsampling.samplers.inbatch.InBatchSampler.accidental_hits`, with ``mask_hits``),
  each row's column weighing 1 (the logQ correction is not a weight of the draw);
- otherwise (the BPR family, Rel-MF, ``tophard``): columns ``1..L-1`` where ``mask`` is True.

Loss weights that are not about the negative's choice (Rel-MF's and UBPR's inverse
propensities) are not counted.

The sampler's draws come from a generator of their own (``random_state``), so measuring during
training leaves the training draws as they were.
"""

from __future__ import annotations

import numpy as np
import torch

from recsampling._utils import RandomState, check_int, check_random_state
from recsampling.data.interactions import Interactions
from recsampling.metrics import TrueRelevance
from recsampling.samplers.base import Batch, Sampler

__all__ = ["drawn_negatives", "false_negative_share", "FalseNegativeMonitor"]


def _device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return torch.device("cpu") if p is None else p.device


def drawn_negatives(sampler: Sampler, model, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The negatives of one drawn batch and their weights (see the module docstring).

    Parameters
    ----------
    sampler : Sampler
        Prepared.
    model : EmbeddingModel
    batch : Batch
        As drawn (numpy) by ``sampler.batches``.

    Returns
    -------
    users, items : int64 arrays (n,)
    weights : float64 array (n,)
        ``> 0`` only (entries of weight 0 are left out).
    """
    if not isinstance(batch, Batch):
        raise ValueError(f"batch must be a recsampling.samplers.Batch, got {type(batch).__name__}")
    users = np.asarray(batch.users, dtype=np.int64)
    items = np.asarray(batch.items, dtype=np.int64)
    own = getattr(sampler, "negative_weights", None)
    if own is not None:
        w = own(model, batch.to(_device(model))).detach().cpu().numpy().astype(np.float64)
        uu = np.broadcast_to(users[:, None], items.shape)
    elif items.shape[1] == 1:  # in-batch: the other rows' positives
        B = users.size
        w = ~np.eye(B, dtype=bool)
        if getattr(sampler, "mask_hits", False):
            uniq, inverse = np.unique(items[:, 0], return_inverse=True)
            rows, cols = sampler.accidental_hits(users, uniq)  # every positive among the columns' items
            hit = np.zeros((B, uniq.size), bool)
            hit[rows.cpu().numpy(), cols.cpu().numpy()] = True
            w &= ~hit[:, inverse]
        w = w.astype(np.float64)
        uu = np.broadcast_to(users[:, None], (B, B))
        items = np.broadcast_to(items[:, 0][None, :], (B, B))
    else:
        real = np.ones(items.shape, bool) if batch.mask is None else np.asarray(batch.mask, dtype=bool)
        if batch.labels is not None:
            w = real & (np.asarray(batch.labels) == 0)
        else:
            w = real.copy()
            w[:, 0] = False
        w = w.astype(np.float64)
        uu = np.broadcast_to(users[:, None], items.shape)
    keep = w > 0
    return uu[keep], items[keep], w[keep]


def false_negative_share(sampler: Sampler, model, relevance, *, n_rows: int | None = None, batch_size: int = 1024,
                         threshold: float = 0.5, random_state: RandomState = 0) -> dict:
    """The share of a sampler's drawn negatives that are truly relevant (see the module docstring).

    Parameters
    ----------
    sampler : Sampler
        Prepared on the training data (``sampler.prepare(train, rng)``, or by a fit); its
        current state is what is measured (e.g. ``tophard``'s latest top-K table).
    model : EmbeddingModel
        The current model (for samplers that choose or weigh their negatives with it).
    relevance : SyntheticWorld, dense array (n_users, n_items) or metrics.TrueRelevance
        True relevance probabilities.
    n_rows : int, optional
        Rows to draw (at least one batch); default one epoch (``sampler.n_samples()``).
    batch_size : int
    threshold : float
        ``above_threshold`` counts negatives with ``rel > threshold``.
    random_state : int, Generator or None
        The draws' own generator.

    Returns
    -------
    dict
        ``false_negative_rate`` (weighted mean true relevance of the negatives),
        ``above_threshold`` (weighted share above ``threshold``), ``negatives`` (entries
        counted), ``weight`` (their total weight), ``rows``. NaN rates when nothing was drawn.
    """
    if getattr(sampler, "train_", None) is None:
        raise ValueError("the sampler must be prepared (sampler.prepare(train, rng), or fitted) before measuring")
    rel = TrueRelevance.of(relevance)
    if tuple(rel.shape) != tuple(sampler.train_.shape):
        raise ValueError(f"relevance must have the training data's shape {sampler.train_.shape}, got {rel.shape}")
    check_int(n_rows, "n_rows", 1, none_ok=True)
    rng = check_random_state(random_state)
    was_model, was_sampler = model.training, sampler.training
    model.eval()
    sampler.eval()
    num = above = total = 0.0
    count = rows = 0
    try:
        for batch in sampler.batches(int(batch_size), rng):
            u, i, w = drawn_negatives(sampler, model, batch)
            if w.size:
                r = rel.pairs(u, i)
                num += float((w * r).sum())
                above += float(w[r > threshold].sum())
                total += float(w.sum())
                count += int(w.size)
            rows += len(batch)
            if n_rows is not None and rows >= n_rows:
                break
    finally:
        model.train(was_model)
        sampler.train(was_sampler)
    nan = float("nan")
    return {"false_negative_rate": num / total if total > 0 else nan,
            "above_threshold": above / total if total > 0 else nan,
            "negatives": count, "weight": total, "rows": rows}


class FalseNegativeMonitor:
    """A Trainer callback: per epoch, the sampler's false-negative share and the true NDCG@k.

    Parameters
    ----------
    sampler, model
        The ones being fitted (the same objects passed to :meth:`Trainer.fit`).
    relevance : SyntheticWorld, dense array or metrics.TrueRelevance
    train, test : Interactions
        Training pairs (excluded from the ranking) and the test pairs of the evaluation
        (:func:`recsampling.evaluation.evaluate` with ``relevance``: users without a test
        pair are skipped).
    k : int, default 10
    n_rows : int, default 20000
        Rows drawn per measurement (see :func:`false_negative_share`).
    batch_size, threshold, random_state
        As in :func:`false_negative_share`; one generator serves every epoch.

    Attributes
    ----------
    history : list of dict
        Per epoch: ``epoch``, ``false_negative_rate``, ``above_threshold``, ``true_ndcg@k``.
        (The Trainer hands callbacks a copy of its history entry, so the records live here.)

    Examples
    --------
    >>> monitor = FalseNegativeMonitor(sampler, model, world, world.clicks, world.unbiased_test)
    >>> Trainer(epochs=10, callbacks=[monitor]).fit(model, sampler, world.clicks)   # doctest: +SKIP
    >>> monitor.history[-1]["false_negative_rate"]                                  # doctest: +SKIP
    """

    def __init__(self, sampler: Sampler, model, relevance, train: Interactions, test: Interactions, *, k: int = 10,
                 n_rows: int = 20_000, batch_size: int = 1024, threshold: float = 0.5,
                 random_state: RandomState = 0):
        self.sampler = sampler
        self.model = model
        self.relevance = TrueRelevance.of(relevance)
        self.train = train
        self.test = test
        self.k = k
        self.n_rows = n_rows
        self.batch_size = batch_size
        self.threshold = threshold
        self._rng = check_random_state(random_state)
        self.history: list[dict] = []

    def measure(self) -> dict:
        """One record now (what :meth:`__call__` appends, without the epoch)."""
        from recsampling.evaluation import evaluate

        share = false_negative_share(self.sampler, self.model, self.relevance, n_rows=self.n_rows,
                                     batch_size=self.batch_size, threshold=self.threshold, random_state=self._rng)
        name = f"true_ndcg@{int(self.k)}"
        ndcg = evaluate(self.model, self.test, train=self.train, ks=(int(self.k),), metrics=("true_ndcg",),
                        relevance=self.relevance, device="cpu").to_dict()[name]
        return {"false_negative_rate": share["false_negative_rate"], "above_threshold": share["above_threshold"],
                name: float(ndcg)}

    def __call__(self, epoch: int, logs: dict) -> None:
        self.history.append({"epoch": int(epoch), **self.measure()})
