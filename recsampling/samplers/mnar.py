r"""Unbiased learning from missing-not-at-random clicks: Rel-MF (clipped IPS), naive pointwise, UBPR.

Papers
------
- Saito, Yaginuma, Nishino, Sakata, Nakata. "Unbiased Recommender Learning from
  Missing-Not-At-Random Implicit Feedback." WSDM 2020 (arXiv 1909.03601). Rel-MF.
- Saito. "Unbiased Pairwise Learning from Biased Implicit Feedback." ICTIR 2020. UBPR.

Only the abstracts and the authors' public code (usaito/unbiased-implicit-rec-real,
usaito/unbiased-pairwise-rec) could be read while this was written. The one display number
quoted is the one the authors' code names (the Rel-MF loss is "Eq. (9)" there); other displays
are named by their role, and the section numbers (WSDM'20: Sec. 3 setting, Sec. 4 estimators,
Sec. 4.3 clipping) are from the paper's layout as recalled, not re-checked against its text.

Setting (WSDM'20, Sec. 3)
-------------------------
A click needs an exposure: ``Y_ui = O_ui R_ui`` with ``O_ui ~ Bern(theta_ui)`` (exposure
propensity) independent of ``R_ui ~ Bern(gamma_ui)`` (relevance), hence
``E[Y_ui] = theta_ui * gamma_ui``. An unclicked pair is a missing label, not a negative.

Rel-MF: the pointwise estimator (WSDM'20, Sec. 4)
-------------------------------------------------
With ``s = s_ui`` the model's score and a pair of local losses ``delta1(s)`` (for a relevant
pair) and ``delta0(s)`` (for an irrelevant one), the *ideal* loss over all pairs ``D`` is::

    L_ideal = 1/|D| sum_{(u,i) in D} [ gamma_ui delta1(s_ui) + (1 - gamma_ui) delta0(s_ui) ]

The naive loss replaces ``gamma`` by the click ``Y`` and is biased (its expectation has
``theta*gamma`` where ``gamma`` should be: popular, often-exposed items are over-rewarded). The
unbiased estimator (Definition "unbiased estimator"; the Rel-MF objective, Eq. (9) in the
authors' code)::

    L_IPS = 1/|D| sum_{(u,i) in D} [ (Y_ui/theta_ui) delta1(s_ui) + (1 - Y_ui/theta_ui) delta0(s_ui) ]

is unbiased because it is linear in ``Y`` and ``E[Y_ui/theta_ui] = gamma_ui``. Its variance
grows like ``1/theta``; the *clipped* estimator (Sec. 4.3) uses ``max(theta, M)`` instead of
``theta``: biased for pairs with ``theta < M``, bounded variance. ``M = clip`` (default 0.1).

Two families of local losses exist in the wild (``delta=``):

- ``"squared"`` (the authors' code): ``delta1 = (1 - sigma(s))^2``, ``delta0 = sigma(s)^2``;
- ``"log"`` (binary cross-entropy): ``delta1 = -log sigma(s)``, ``delta0 = -log(1 - sigma(s))``.

**The click's negative weight.** For a click, ``1 - 1/theta`` is negative. Clipping bounds it:
``1 - 1/max(theta, M) >= 1 - 1/M`` (= -9 at ``M = 0.1``) and ``1/max(theta, M) <= 1/M``. With
``"squared"`` the click's term ``(1 - 2 sigma)/theta~ + sigma^2`` is then bounded below by
``1 - 1/M``. With ``"log"`` it equals ``softplus(s) - s/theta~``, which is *unbounded below*
(decreasing without limit in ``s`` for every ``theta~ < 1``): one click alone would push its
score to infinity. The ``floor`` option clamps the click's term from below (the non-negative
correction of nnPU / UBPR); ``floor="auto"`` is ``None`` for ``"squared"`` (already bounded)
and ``0.0`` for ``"log"``. The authors' code clamps every local loss to [-1000, 1000].

**Sampling the unobserved pairs, unbiasedly.** The sum over all pairs splits into::

    sum_{(u,i) in D} [...] = sum_{Y_ui=1} [ (1/theta_ui) delta1 + (1 - 1/theta_ui) delta0 ]   (clicks)
                           + sum_{Y_ui=0} delta0(s_ui)                                        (unclicked)

An epoch visits every click once (rows in random order). Each row of user ``u`` also draws
``k = n_negatives`` items uniformly from ``u``'s ``N0_u = n_items - n_u`` unclicked items (exact
rejection of clicked ones, via the shared ``draw_negatives``). Over an epoch user ``u`` gets
``n_u k`` such draws, each with expectation ``mean_{Y_ui=0} delta0``; weighting each by
``w_u = N0_u / (n_u k)`` makes the epoch sum an unbiased estimate of the unclicked sum
(``n_u k * w_u * mean = N0_u * mean = sum``), and a mini-batch of ``B`` rows drawn without
replacement, times ``nnz / B``, is unbiased for the whole. The loss of a batch is::

    loss = c * 1/B sum_rows [ click term + w_u sum_{k draws} delta0(s_uj) ],   c = nnz / |D|

with ``|D| = n_items * (#users with a click)``, so ``E[loss | Y] = L_IPS`` exactly (its
paper's normalization). Users without any click have no row to anchor a draw; their pairs
are left out of ``D`` (they carry only ``delta0`` terms of a user vector no ranking depends
on). ``unobserved_weight="balanced"`` (``w = 1/k``, ``c = 1/2``: clicks and unclicked pairs
get equal mass per batch, as in the authors' training loop) and a float ``w`` (``c = 1/(1+k w)``)
are offered as biased, lower-variance alternatives.

The naive pointwise loss (``"pointwise"``) is this same code with ``theta = 1``.

UBPR: the pairwise estimator (ICTIR'20)
---------------------------------------
The ideal pairwise loss weights the BPR loss ``l(x) = -log sigma(x)`` of the pair ``(i, j)`` by
the probability that ``i`` is relevant and ``j`` is not::

    L_ideal_pair = sum_u sum_{i != j} gamma_ui (1 - gamma_uj) l(s_ui - s_uj)

and its unbiased estimator (independent exposures of ``i != j``) is::

    L_UBPR = sum_u sum_{i != j} (Y_ui/theta_ui) (1 - Y_uj/theta_uj) l(s_ui - s_uj)

Only clicked ``i`` contribute, and ``j`` must range over **all** items (clicked or not), since the
estimator needs ``j``'s label: a clicked ``j`` enters with the negative weight
``1 - 1/theta_uj``. Rows: every click ``(u, i)`` once per epoch; ``k`` items ``j`` drawn uniformly
from the other ``n_items - 1`` items. The batch loss is the mean of the weighted terms, i.e.
``L_UBPR / (nnz (n_items - 1))`` in expectation (a constant factor of the data).

Variance handling: propensities clipped from below at ``M`` (``clip``, default 0.1; the authors'
UBPR code does not clip them, beyond the 1e-6 floor of its Coat preprocessing: ``clip=None`` is
theirs) and, as in their code (``PairwiseRecommender.create_losses``: ``clip_by_value(local_losses,
-beta, 1e6)``), the *non-negative* estimator: each weighted term, not the sum, clamped from below at
``-beta`` (``beta=0.0`` by default: a clicked ``j`` never pushes ``i`` *below* ``j``; ``beta=None``
keeps the exactly unbiased estimator). Checked against their code term by term:
``tests/test_mnar_benchmark.py::test_authors_losses_are_their_formulas``.

Both samplers read the propensity of each click from :func:`recsampling.propensity.click_propensities`:
the ``propensities`` column of the training data when it has one, else relative popularity
``(n_i / max n)^eta``; or a source given explicitly (``"popularity"``, ``"data"``, a per-item or a
per-pair array).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number
from recsampling.data.interactions import Interactions
from recsampling.propensity import DEFAULT_CLIP, click_propensities, clip_propensities
from recsampling.samplers.base import Batch, Sampler, register

__all__ = [
    "RelMF",
    "NaivePointwise",
    "UBPR",
    "delta_losses",
    "relmf_loss",
    "ideal_pointwise_loss",
    "ubpr_terms",
    "ideal_pairwise_terms",
]

_DELTAS = ("squared", "log")


# --------------------------------------------------------------------------- plain loss functions
def delta_losses(scores: Tensor, delta: str = "squared") -> tuple[Tensor, Tensor]:
    """The local losses ``(delta1(s), delta0(s))`` of a relevant and an irrelevant pair.

    Parameters
    ----------
    scores : Tensor
        Model scores (logits) of any shape.
    delta : {"squared", "log"}
        ``"squared"``: ``(1 - sigma(s))^2`` and ``sigma(s)^2`` (Saito et al.'s code);
        ``"log"``: ``-log sigma(s)`` and ``-log(1 - sigma(s))``, computed as softplus (stable).

    Returns
    -------
    (Tensor, Tensor)
        ``delta1`` and ``delta0``, each the shape of ``scores``.
    """
    if delta == "squared":
        p = torch.sigmoid(scores)
        return (1.0 - p).square(), p.square()
    if delta == "log":
        return F.softplus(-scores), F.softplus(scores)
    raise ValueError(f"delta must be one of {_DELTAS}, got {delta!r}")


def _as_tensor(x, like: Tensor | None = None) -> Tensor:
    if isinstance(x, Tensor):
        return x
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    return t


def _check_clip(clip) -> float | None:
    if clip is None:
        return None
    clip = float(clip)
    if not (0 < clip <= 1):
        raise ValueError(f"clip must be in (0, 1] (or None to turn clipping off), got {clip}")
    return clip


def relmf_loss(
    scores,
    clicks,
    propensities,
    delta: str = "squared",
    clip: float | None = DEFAULT_CLIP,
    floor: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The Rel-MF estimator on given pairs: ``(Y/theta~) delta1 + (1 - Y/theta~) delta0``.

    ``theta~ = max(theta, clip)``. With ``propensities = 1`` this is the naive pointwise loss.
    A pair's term is clamped from below at ``floor`` when given (only clicks can go negative).

    Parameters
    ----------
    scores, clicks, propensities : Tensor or array-like, broadcastable
        Logits, 0/1 clicks and exposure propensities in (0, 1].
    delta : {"squared", "log"}
    clip : float in (0, 1] or None, default 0.1
    floor : float <= 0 or None
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        The mean (the paper's ``1/|D|`` normalization over the given pairs), sum, or the
        elementwise terms.
    """
    s = _as_tensor(scores)
    y = _as_tensor(clicks, s)
    theta = _as_tensor(propensities, s)
    clip = _check_clip(clip)
    if clip is not None:
        theta = theta.clamp(min=clip)
    d1, d0 = delta_losses(s, delta)
    w = y / theta
    terms = w * d1 + (1.0 - w) * d0
    if floor is not None:
        terms = terms.clamp(min=float(floor))
    return _reduce(terms, reduction)


def ideal_pointwise_loss(scores, relevance, delta: str = "squared", reduction: str = "mean") -> Tensor:
    """The ideal loss ``gamma delta1(s) + (1 - gamma) delta0(s)`` from the true relevance ``gamma``."""
    s = _as_tensor(scores)
    g = _as_tensor(relevance, s)
    d1, d0 = delta_losses(s, delta)
    return _reduce(g * d1 + (1.0 - g) * d0, reduction)


def ubpr_terms(
    s_ui,
    s_uj,
    clicks_ui,
    propensities_ui,
    clicks_uj,
    propensities_uj,
    clip: float | None = DEFAULT_CLIP,
    beta: float | None = None,
) -> Tensor:
    """UBPR local terms ``(Y_ui/theta~_ui)(1 - Y_uj/theta~_uj) * -log sigma(s_ui - s_uj)``.

    Parameters
    ----------
    s_ui, s_uj : Tensor or array-like
        Scores of ``i`` and ``j`` (broadcastable).
    clicks_ui, propensities_ui, clicks_uj, propensities_uj : Tensor or array-like
        Clicks and propensities of both items.
    clip : float in (0, 1] or None, default 0.1
        Lower bound ``M`` of both propensities.
    beta : float >= 0 or None
        Non-negative correction: each term is clamped from below at ``-beta``.

    Returns
    -------
    Tensor
        Elementwise terms.
    """
    si = _as_tensor(s_ui)
    sj = _as_tensor(s_uj, si)
    yi, ti = _as_tensor(clicks_ui, si), _as_tensor(propensities_ui, si)
    yj, tj = _as_tensor(clicks_uj, si), _as_tensor(propensities_uj, si)
    clip = _check_clip(clip)
    if clip is not None:
        ti, tj = ti.clamp(min=clip), tj.clamp(min=clip)
    terms = (yi / ti) * (1.0 - yj / tj) * F.softplus(-(si - sj))
    if beta is not None:
        terms = terms.clamp(min=-float(beta))
    return terms


def ideal_pairwise_terms(s_ui, s_uj, relevance_ui, relevance_uj) -> Tensor:
    """Ideal pairwise terms ``gamma_ui (1 - gamma_uj) * -log sigma(s_ui - s_uj)``."""
    si = _as_tensor(s_ui)
    sj = _as_tensor(s_uj, si)
    gi, gj = _as_tensor(relevance_ui, si), _as_tensor(relevance_uj, si)
    return gi * (1.0 - gj) * F.softplus(-(si - sj))


def _reduce(terms: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    if reduction == "none":
        return terms
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# --------------------------------------------------------------------------- shared helpers
def _resolve_floor(floor, delta: str) -> float | None:
    if isinstance(floor, str):
        if floor != "auto":
            raise ValueError(f"floor must be 'auto', None or a number <= 0, got {floor!r}")
        return 0.0 if delta == "log" else None
    if floor is None:
        return None
    floor = float(floor)
    if not np.isfinite(floor) or floor > 0:
        raise ValueError(f"floor must be a finite number <= 0 (or None, or 'auto'), got {floor}")
    return floor


def _epoch_rows(order: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    batch_size = check_int(batch_size, "batch_size", 1)
    for start in range(0, order.size, batch_size):
        yield order[start:start + batch_size]


# --------------------------------------------------------------------------- Rel-MF
def _propensity_space(cls, trial) -> dict:
    """The clip ``M`` (log-uniform in [1e-3, 0.3]) and ``eta`` ([0.1, 1]), where ``cls`` takes them."""
    space = {}
    if cls._takes("clip"):
        space["clip"] = trial.suggest_float("clip", 1e-3, 0.3, log=True)
    if cls._takes("eta"):
        space["eta"] = trial.suggest_float("eta", 0.1, 1.0)
    return space


@register("relmf")
class RelMF(Sampler):
    """Rel-MF: the clipped inverse-propensity pointwise loss of Saito et al. (WSDM 2020).

    Every click is a row; each row also carries ``n_negatives`` unclicked items of the same user,
    drawn uniformly and reweighted so the batch loss is unbiased for the paper's estimator (see
    the module docstring for the derivation).

    Parameters
    ----------
    n_negatives : int, default 4
        Unclicked items drawn per click (``k``).
    delta : {"squared", "log"}, default "squared"
        Local loss family: Saito et al.'s squared loss or the log (cross-entropy) loss.
    clip : float in (0, 1] or None, default 0.1
        Propensity clipping ``M``: ``theta~ = max(theta, M)``. None: the unclipped estimator.
    propensities : None, "popularity", "data", array or 1.0
        Source of the clicks' propensities (:func:`recsampling.propensity.click_propensities`);
        None uses the data's ``propensities`` column when present, else popularity.
    eta : float, default 0.5
        Exponent of the popularity estimate ``(n_i / max n)^eta``.
    unobserved_weight : "unbiased", "balanced" or float, default "unbiased"
        Weight of a drawn unclicked pair: ``N0_u / (n_u k)`` (unbiased), ``1/k`` (clicks and
        unclicked pairs get equal mass per row, as in the authors' training loop), or a constant.
    floor : "auto", float <= 0 or None, default "auto"
        Lower clamp of a click's term (its ``delta0`` weight ``1 - 1/theta~`` is negative). "auto":
        None for "squared" (already bounded below by ``1 - 1/M``), 0.0 for "log" (unbounded).

    Attributes
    ----------
    theta_ : numpy.ndarray
        Clipped propensity of each training click (aligned with ``train.matrix.data``).
    unobserved_weight_ : numpy.ndarray
        Per-user weight of a drawn unclicked pair.
    scale_ : float
        The constant ``c`` of the batch loss.
    """

    demo_params = {"propensities": "popularity"}
    fold_in_objective = "logistic"

    @classmethod
    def search_space(cls, trial) -> dict:
        """``n_negatives``, the clip ``M`` and ``eta`` (the latter two where the constructor takes them)."""
        return {**super().search_space(trial), **_propensity_space(cls, trial)}

    def __init__(
        self,
        n_negatives: int = 4,
        delta: str = "squared",
        clip: float | None = DEFAULT_CLIP,
        propensities=None,
        eta: float = 0.5,
        unobserved_weight="unbiased",
        floor="auto",
    ):
        super().__init__()
        self.n_negatives = n_negatives
        self.delta = delta
        self.clip = clip
        self.propensities = propensities
        self.eta = eta
        self.unobserved_weight = unobserved_weight
        self.floor = floor

    # the naive subclass overrides these two
    def _propensity_source(self):
        return self.propensities

    def _clip(self):
        return self.clip

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        super().prepare(train, rng)
        k = check_int(self.n_negatives, "n_negatives", 1)
        if self.delta not in _DELTAS:
            raise ValueError(f"delta must be one of {_DELTAS}, got {self.delta!r}")
        self.floor_ = _resolve_floor(self.floor, self.delta)
        theta = click_propensities(train, self._propensity_source(), self.eta)
        self.theta_ = clip_propensities(theta, self._clip())
        n_items = train.n_items
        n_u = train.user_counts().astype(np.float64)
        active = n_u > 0
        n0 = n_items - n_u
        uw = self.unobserved_weight
        if isinstance(uw, str):
            if uw == "unbiased":
                w = np.where(active, n0 / np.maximum(n_u, 1.0) / k, 0.0)
                scale = train.nnz / (n_items * float(active.sum()))
            elif uw == "balanced":
                w = np.full(train.n_users, 1.0 / k)
                scale = 0.5
            else:
                raise ValueError(f"unobserved_weight must be 'unbiased', 'balanced' or a number >= 0, got {uw!r}")
        else:
            c = float(uw)
            if not np.isfinite(c) or c < 0:
                raise ValueError(f"unobserved_weight must be 'unbiased', 'balanced' or a number >= 0, got {uw!r}")
            w = np.full(train.n_users, c)
            scale = 1.0 / (1.0 + k * c)
        # a user who clicked every item has nothing unclicked to draw: weight 0
        w = np.where(n0 > 0, w, 0.0)
        self.unobserved_weight_ = w
        self.scale_ = float(scale)
        self.users_ = train.user_index()
        self.items_ = train.item_index()
        self._full_users = n0 <= 0

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every click once, in random order, with ``n_negatives`` unclicked draws.

        A :class:`Batch` of ``users`` (B,), ``items`` (B, 1 + k) (column 0 the click), ``mask``
        (B, 1 + k) and ``weights`` (B, 1 + k): column 0 the click's ``1/θ~``, the other columns
        the user's unclicked weight ``w_u`` (the same in every drawn column). A user who clicked
        every item draws nothing: the click stands in the masked columns, whose weight is 0.
        """
        self._check_prepared()
        from recsampling.samplers.negatives import positive_rows

        for idx, users, items, mask in positive_rows(self.train_, self.users_, self.items_, int(self.n_negatives),
                                                     batch_size, rng, order=self.epoch_order(self.users_.size, rng),
                                                     has_negative=~self._full_users):
            weights = np.empty(items.shape, dtype=np.float32)
            weights[:, 0] = 1.0 / self.theta_[idx]
            weights[:, 1:] = self.unobserved_weight_[users].astype(np.float32)[:, None]
            yield Batch(users, items, mask=mask, weights=weights)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        s = model.score(batch.users, batch.items)
        d1, d0 = delta_losses(s, self.delta)
        w = batch.weights.to(s.dtype)
        click = w[:, 0] * d1[:, 0] + (1.0 - w[:, 0]) * d0[:, 0]
        if self.floor_ is not None:
            click = click.clamp(min=self.floor_)
        # the drawn columns share the user's weight w_u (0 on masked columns): w_u * sum_j delta0(s_uj)
        unclicked = w[:, 1] * d0[:, 1:].sum(dim=1)
        return self.scale_ * (click + unclicked).mean()


@register("pointwise")
class NaivePointwise(RelMF):
    """The naive pointwise loss ``Y delta1 + (1 - Y) delta0``: :class:`RelMF` with ``theta = 1``.

    Parameters
    ----------
    n_negatives : int, default 4
    delta : {"squared", "log"}, default "squared"
    unobserved_weight : "unbiased", "balanced" or float, default "unbiased"
        As in :class:`RelMF` (the sampling correction is the same; only ``theta`` differs).
    """

    demo_params = {}

    def __init__(self, n_negatives: int = 4, delta: str = "squared", unobserved_weight="unbiased"):
        super().__init__(n_negatives=n_negatives, delta=delta, clip=None, propensities=1.0,
                         unobserved_weight=unobserved_weight, floor=None)

    def _propensity_source(self):
        return 1.0

    def _clip(self):
        return None


# --------------------------------------------------------------------------- UBPR
@register("ubpr")
class UBPR(Sampler):
    """UBPR: the unbiased pairwise (BPR) loss of Saito (ICTIR 2020), with clipping.

    Every click ``(u, i)`` is a row; ``n_negatives`` items ``j`` are drawn uniformly from **all**
    other items (clicked or not), each pair weighted by ``(1/theta~_ui)(1 - Y_uj/theta~_uj)``.

    Parameters
    ----------
    n_negatives : int, default 1
        Items ``j`` drawn per click.
    clip : float in (0, 1] or None, default 0.1
        Propensity clipping ``M`` (both ``theta_ui`` and ``theta_uj``).
    beta : float >= 0 or None, default 0.0
        Non-negative estimator: each term is clamped from below at ``-beta``. None: unclamped.
    propensities : None, "popularity", "data" or array
        Source of the clicks' propensities (see :class:`RelMF`).
    eta : float, default 0.5
        Exponent of the popularity estimate.

    Attributes
    ----------
    theta_ : numpy.ndarray
        Clipped propensity of each training click.
    """

    demo_params = {"propensities": "popularity"}
    fold_in_objective = "bpr"

    @classmethod
    def search_space(cls, trial) -> dict:
        """``n_negatives``, the clip ``M`` and ``eta``."""
        return {**super().search_space(trial), **_propensity_space(cls, trial)}

    def __init__(
        self,
        n_negatives: int = 1,
        clip: float | None = DEFAULT_CLIP,
        beta: float | None = 0.0,
        propensities=None,
        eta: float = 0.5,
    ):
        super().__init__()
        self.n_negatives = n_negatives
        self.clip = clip
        self.beta = beta
        self.propensities = propensities
        self.eta = eta

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        super().prepare(train, rng)
        check_int(self.n_negatives, "n_negatives", 1)
        if train.n_items < 2:
            raise ValueError(f"UBPR needs at least 2 items to form pairs, got {train.n_items}")
        check_number(self.beta, "beta", 0.0, none_ok=True)
        theta = click_propensities(train, self.propensities, self.eta)
        self.theta_ = clip_propensities(theta, self.clip)
        self.users_ = train.user_index()
        self.items_ = train.item_index()
        # canonical CSR order = sorted (user, item) keys: a click lookup is one searchsorted
        self._keys = self.users_ * np.int64(train.n_items) + self.items_

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every click once, in random order, with ``n_negatives`` items ``j != i``.

        A :class:`Batch` of ``users`` (B,), ``items`` (B, 1 + k) (column 0 the click ``i``),
        ``labels`` (B, 1 + k) (1, then whether u clicked ``j``) and ``weights`` (B, 1 + k):
        column 0 the click's ``1/θ~_ui``, column ``j`` the pair weight
        ``(1/θ~_ui)(1 - Y_uj/θ~_uj)``. Nothing is padded (``mask`` None).
        """
        self._check_prepared()
        k = int(self.n_negatives)
        n_items = self.train_.n_items
        keys = self._keys
        for idx in _epoch_rows(self.epoch_order(self.train_.nnz, rng), batch_size):
            users, pos = self.users_[idx], self.items_[idx]
            j = rng.integers(0, n_items - 1, size=(idx.size, k))
            j = j + (j >= pos[:, None])  # uniform over the items != i
            q = users[:, None] * np.int64(n_items) + j
            at = np.minimum(np.searchsorted(keys, q), keys.size - 1)
            clicked = keys[at] == q
            theta_j = np.where(clicked, self.theta_[at], 1.0)
            inv_i = 1.0 / self.theta_[idx]
            labels = np.concatenate([np.ones((idx.size, 1)), clicked], axis=1)
            weights = np.concatenate([inv_i[:, None], inv_i[:, None] * (1.0 - clicked / theta_j)], axis=1)
            yield Batch(users, np.concatenate([pos[:, None], j], axis=1), labels=labels.astype(np.float32),
                        weights=weights.astype(np.float32))

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        s = model.score(batch.users, batch.items)
        terms = batch.weights[:, 1:].to(s.dtype) * F.softplus(-(s[:, :1] - s[:, 1:]))
        if self.beta is not None:
            terms = terms.clamp(min=-float(self.beta))
        return terms.mean()
