r"""DLA: learn exposure propensities jointly with relevance (the Dual Learning Algorithm).

Qingyao Ai, Keping Bi, Cheng Luo, Jiafeng Guo, W. Bruce Croft. "Unbiased Learning to Rank with
Unbiased Propensity Estimation." SIGIR 2018 (arXiv 1804.05938). The implementation details
follow the authors' later toolkit ULTRA (its ``DLA`` learner): one propensity logit per position,
a softmax over the list for both models, weights that are ratios to the first position and are
treated as constants, and a click-weighted softmax cross-entropy normalized by the total weight.

Equation numbers: the stored copies of the paper that could be read while this was written gave
its introduction only, so the displays below carry *our* numbers, each tied to the section of
the paper it comes from (Sec. 3: inverse propensity weighting; Sec. 4.1-4.2: inverse relevance
weighting, the dual problem; Sec. 4.3 and Algorithm 1: DLA with softmax losses).

The model of clicks (Sec. 3, the examination hypothesis)
--------------------------------------------------------
A shown element ``x`` of a list is clicked only if it is examined (``o``) and relevant (``r``),
independently::

    (1)  P(c_x = 1) = P(o_x = 1) · P(r_x = 1),     c = o · r

In the paper's setting ``P(o_x = 1) = θ_k`` depends on the position ``k`` of ``x`` only; in the
recommendation setting it is the exposure propensity of the item (Saito et al. 2020).

The two dual losses (Sec. 3 and Sec. 4.1)
-----------------------------------------
A ranker ``f`` should minimize a loss over *relevant* elements, ``l(f) = Σ_{x: r_x=1} Δ(x)``;
clicks only reveal relevant elements that were examined, so the inverse-propensity-weighted loss
(IPW) divides by the examination probability::

    (2)  l_IPW(f) = Σ_{x: c_x = 1} Δ_f(x) / P(o_x = 1),      E_o[l_IPW(f)] = l(f)

The paper's observation is that estimating the propensity model ``g`` is the *dual* problem: ``g``
should minimize a loss over *examined* elements, ``l(g) = Σ_{x: o_x=1} Δ_g(x)``, and clicks only
reveal examined elements that were relevant, so the inverse-relevance-weighted loss (IRW)::

    (3)  l_IRW(g) = Σ_{x: c_x = 1} Δ_g(x) / P(r_x = 1),      E_r[l_IRW(g)] = l(g)

is unbiased for it. Each needs the other's probability; DLA learns both at once.

DLA with softmax losses (Sec. 4.3, Algorithm 1)
-----------------------------------------------
For a list ``n`` of ``L`` elements, ``f`` gives scores ``s_nk`` and ``g`` gives logits ``g_nk``.
Both are turned into distributions over the list by a softmax::

    (4)  R_nk = exp(s_nk) / Σ_j exp(s_nj),     P_nk = exp(g_nk) / Σ_j exp(g_nj)

A softmax only fixes probabilities up to a factor, so the paper normalizes both to the first
position: the propensity and relevance *ratios*::

    (5)  w_nk = P_n1 / P_nk = exp(g_n1 − g_nk),      v_nk = R_n1 / R_nk = exp(s_n1 − s_nk)

(``w_nk`` estimates ``θ_1/θ_k`` and is the IPW weight of a click at ``k``; ``v_nk`` is the IRW
weight.) The two losses are the click-weighted softmax cross-entropies of (2) and (3) with
``Δ(x) = −log softmax``::

    (6)  L_f = − Σ_n Σ_k sg(w_nk) c_nk log R_nk  /  Σ_n Σ_k sg(w_nk) c_nk
    (7)  L_g = − Σ_n Σ_k sg(v_nk) c_nk log P_nk  /  Σ_n Σ_k sg(v_nk) c_nk

where ``sg`` is the stop-gradient (``detach``): ``f``'s weights come from ``g``'s current
outputs and vice versa, and no gradient crosses between the two (Algorithm 1 updates ``f`` with
``g`` fixed and ``g`` with ``f`` fixed; one step on ``L_f + L_g`` does both at once). The
normalization by the total weight is ULTRA's (the per-list weighted label distribution times the
list's weight, summed and divided by the batch's total weight). It is computed in log space as a
softmax of ``log c + log w`` over the batch's clicks, so that no weight ever overflows.

The link of ``f`` (``relevance_link``). (4) reads ``exp(s)`` as the relevance probability up to
a factor of the list, which is the paper's choice for a ranker over query-document features. The
relevance models of this package are usually read the other way, ``P(r = 1) = σ(s)`` (the
pointwise and Rel-MF losses, and the synthetic world's ``relevance = σ(logit)``), and such a
model cannot make ``exp(s)`` proportional to ``σ(s)``: the ratios ``v`` of (5) are then wrong
wherever relevance is not small (at the top of a list). ``relevance_link="sigmoid"`` uses::

    (4')  R_nk = σ(s_nk) / Σ_j σ(s_nj),     v_nk = σ(s_n1) / σ(s_nk)

i.e. (4)-(7) applied to ``log σ(s)`` instead of ``s`` (ULTRA has the same option, its
``logits_to_prob``). The ranking by ``s`` is unchanged (``σ`` is increasing); only which scores
count as right changes: ``σ(s) ∝ r`` instead of ``exp(s) ∝ r``.

Why it recovers the propensities. Take one free logit per position, ``g_nk = g_k``. For fixed
``v``, (7) is minimized by ``P_k ∝ Σ_n v_nk c_nk``. When ``f`` is right (``R_nk ∝ r_nk``, the
relevance probability), ``E[v_nk c_nk] = r_n1 θ_k``, so ``P_k / P_1 → θ_k / θ_1``; symmetrically
(6) with the right ``w`` is minimized by ``R_nk ∝ θ_1 r_nk``: the fixed point of the pair is the
truth. ``position_propensities_`` is ``exp(g_k − g_1)``, the learned ``θ_k / θ_1``.

Setting 1: logged ranked lists (the paper)
------------------------------------------
``DLASampler(logs=world.logs)``: the rows of the logs are the lists (``users`` (B,), ``items``
(B, L) in shown order, ``clicks`` (B, L)), ``g`` is one learnable logit per position (``L``
parameters, starting at 0, i.e. no position bias) and (4)-(7) are applied as written. Lists
without a click carry no weight in either loss and are left out when the logs are read.

Setting 2: recommendation without positions
-------------------------------------------
``DLASampler()`` on plain :class:`~recsampling.data.Interactions`. A row is one click ``(u, i)``
(every click once per epoch) followed by ``n_sampled`` items drawn uniformly from ``u``'s
unclicked items (exact rejection, the shared ``draw_negatives``): a candidate set with its click
in column 0 and no order (column 0 carries no position meaning). The propensity model takes
exposure features of the *item*::

    (8)  g(i) = b_{bucket(i)} + e_i

with ``bucket(i)`` the item's popularity bucket (``n_popularity_buckets`` quantile buckets of the
log training count; ``"popularity"`` in ``exposure_features``) and ``e_i`` a per-item logit
(``"item"``), both starting at 0 and ``e`` shrunk by ``propensity_l2``. No popularity formula is
assumed: how exposure grows with popularity is learned.

Two things change from setting 1, both forced by the absence of positions:

- **References.** Column 0 is the click of every row, so a ratio to it would make every IRW weight
  1. Instead the weights are ratios to references that are constants of the list: for ``w`` the
  catalogue's most exposed item, ``w_i = exp(max_j g(j) − g(i))`` (``item_propensities_`` is
  ``exp(g(i) − max_j g(j))``, the learned ``θ_i / θ_max`` like the relative popularity
  ``(n_i / max n)^η`` of Rel-MF); for ``v`` the mean relevance of the row's sampled items,
  ``v_ui = mean_j exp(s_uj) / exp(s_ui)`` (which estimates ``r̄_u / r_ui``). In (6)-(7) a common
  factor of all weights cancels with the normalization, so the choice of a global reference does
  not change the loss, only what ``max_weight`` clips.
- **The list of g.** An item's exposure does not depend on the user's list, so (7) uses the
  softmax of ``g`` over the whole catalogue (cheap: ``g`` is a table): its minimizer is
  ``exp(g(i)) ∝ Σ_u v_ui c_ui``, whose expectation is ``Σ_u θ_ui r̄_u``, i.e. ``θ_i`` up to a
  factor when exposure factorizes as ``θ_ui = a_u θ_i``. (6) stays the softmax over the row's
  candidate set (a sampled softmax with uniform candidates).

Clipping and the other knobs
----------------------------
``max_weight`` clips ``w`` and ``v`` from above (ULTRA's ``max_propensity_weight``); ``"auto"``
means no clipping for logged lists (the paper) and 10 for candidate sets (``1/M`` with the house
propensity clip ``M = 0.1``: a long-tail item can be 10^4 times less exposed than the head).
``propensity_lr`` is the learning rate of ``g`` (via :meth:`DLASampler.param_groups`); ULTRA
trains both models with Adagrad at 0.05 and gradient-norm clipping. ``fixed_propensity`` turns
learning off and weights the clicks by given propensities (per position or per item): with the
true ``θ`` that is IPW with known propensities, with all ones the naive click model; both use
exactly the loss (6).

What the learned propensities depend on
---------------------------------------
``g`` is only as right as ``f``'s within-list relevance *ratios* ``v`` (and vice versa). The
benchmark (``benchmarks/dla_positions.py``, RESULTS.md) also solves (7) exactly for a given ``f``
(``P_k ∝ Σ_n v_nk c_nk``), which separates the causes of an error:

- with the **true** relevance in ``v`` the error left is the sampling noise of the log (a few
  hundred clicks at the last positions when ``θ_L`` is small); it sets how many logged lists a
  target accuracy needs (at ``θ_k = 1/k²`` and 100,000 lists of 10, 6-7.5% per seed at the worst
  position; 300,000 lists bring it to 3-9% per seed, 3.4% averaged over 3);
- a relevance model whose link does not match how its scores relate to relevance (``exp`` link,
  model of logits: see (4')) biases ``v`` systematically: 13-16% at the worst position in the
  benchmark (positions 2-4 over-estimated), against 2-5% with ``relevance_link="sigmoid"`` (and
  300,000 lists). Use the sigmoid link for a ranker whose score is a relevance logit;
- the **last batch** of an epoch: (6) and (7) are normalized by the batch's total weight, so a
  step's size does not shrink with the batch, and a small remainder batch (read last, right before
  the propensities are) gave the noisiest step of the epoch; :meth:`DLASampler.batches` splits an
  epoch into near-equal batches instead;
- a relevance model that can **memorize single clicks** (MF with ID embeddings on logs where a
  (user, item) pair is shown about once; less so a per-item bias) scores every clicked item up,
  which shrinks ``v`` of clicks at low positions, which lowers ``θ̂_k`` there, which raises their
  IPW weight: the learned propensities drift towards 0 with the epochs. The paper's ranker is a
  model over features; use one (e.g. a feature-only two-tower model) or regularize ``f`` strongly;
- a relevance model that **underfits** (or whose ``exp(score)`` cannot be proportional to the
  relevance probability) compresses ``v`` and pulls ``θ̂`` towards the raw click-through rate.

When the correction pays off: the raw-click model learns ``θ_position · relevance``, so it is hurt
only when the logging ranker puts items at positions for reasons other than their relevance that
the relevance model can learn (a weak production ranker over the same features, as in the paper).
In the benchmark (``benchmarks/dla_positions.py``, logs of
``make_world(logging_ranker="linear")``) DLA beats raw clicks on every seed and equals IPS with
the true propensities; with logs ranked by the true relevance plus noise the position only
sharpens relevance and raw clicks rank as well (the IPW weights then only add variance).

With the unclipped weights of the paper (up to ``1/θ_L``), Adam on ``f`` can be thrown off by a
few heavily weighted clicks; Adagrad (ULTRA's choice) was stable in the benchmark. ULTRA also
clips gradient norms (at 5); with the normalized losses (6)-(7) that never acts here: the
gradient of (7) with respect to the position logits has norm at most ``√2``, and the benchmark's
ranker gradients stayed below 2.2 (median 0.43), so clipping at 5 gave bit-identical results.

Checkpoints: the Trainer saves a sampler's constructor arguments as JSON, so pass ``logs`` as a
dict of arrays (``{"users": ..., "items": ..., "clicks": ...}``) when training with
``checkpoint_dir``; a :class:`~recsampling.data.synthetic.LoggedLists` object is not JSON-able.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler, register

__all__ = ["DLASampler", "ipw_softmax_loss", "log_ratio_weights"]

_FEATURES = ("popularity", "item")
_LINKS = ("exp", "sigmoid")


# --------------------------------------------------------------------------------------------
# the loss, as plain functions
# --------------------------------------------------------------------------------------------
def log_ratio_weights(logits: Tensor, reference: Tensor | None = None, max_weight: float | None = None) -> Tensor:
    """Log of the detached ratio weights of eq. (5): ``log(P_ref / P_k) = logit_ref − logit_k``.

    The softmax normalizer of (4) cancels in the ratio, so only logits are needed.

    Parameters
    ----------
    logits : Tensor, shape (B, L)
        Scores of one model over each list.
    reference : Tensor of shape (B,) or (B, 1), optional
        The reference logit of each list; default: column 0 (the first position, as in the paper).
    max_weight : float or None
        Clip the weights from above at this value (None: no clipping).

    Returns
    -------
    Tensor of shape (B, L), detached (no gradient flows back to ``logits``).
    """
    logits = logits.detach()
    ref = logits[:, :1] if reference is None else reference.detach().reshape(-1, 1)
    lw = ref - logits
    if max_weight is not None:
        lw = lw.clamp(max=math.log(max_weight))
    return lw


def ipw_softmax_loss(logits: Tensor, clicks: Tensor, log_weights: Tensor | None = None,
                     log_probs: Tensor | None = None) -> Tensor:
    """Click-weighted softmax cross-entropy, normalized by the total weight: eqs. (6)-(7).

    ``−Σ_nk w_nk c_nk log softmax(logits_n)_k / Σ_nk w_nk c_nk``, with the normalized weights
    computed as a softmax of ``log c + log w`` over all clicks of the batch (no overflow for any
    weight). A batch without clicks gives a zero loss (with a graph, so ``backward`` works).

    Parameters
    ----------
    logits : Tensor, shape (B, L)
        The model's scores over each list (the softmax is taken over the last axis).
    clicks : Tensor, shape (B, L)
        Non-negative click counts (0/1 in the usual case).
    log_weights : Tensor, shape (B, L), optional
        Log of the weights (e.g. from :func:`log_ratio_weights`); default: all weights 1.
        They are used as constants.
    log_probs : Tensor, shape (B, L), optional
        Log-probabilities to use instead of ``log_softmax(logits)`` (e.g. a softmax over a
        larger set than the list); ``logits`` then only provides the graph for an empty batch.

    Returns
    -------
    Tensor, scalar.
    """
    if clicks.shape != logits.shape:
        raise ValueError(f"clicks must have the shape of logits {tuple(logits.shape)}, got {tuple(clicks.shape)}")
    clicked = clicks > 0
    if not bool(clicked.any()):
        return logits.sum() * 0.0
    lp = F.log_softmax(logits, dim=-1) if log_probs is None else log_probs
    lw = torch.zeros_like(lp) if log_weights is None else log_weights.detach().to(lp.dtype)
    lw = torch.where(clicked, lw + torch.log(clicks.clamp(min=1e-30).to(lp.dtype)), torch.full_like(lw, -math.inf))
    norm = torch.softmax(lw.reshape(-1), dim=0).reshape(lw.shape)
    return -(norm * torch.where(clicked, lp, torch.zeros_like(lp))).sum()


# --------------------------------------------------------------------------------------------
# the propensity models g
# --------------------------------------------------------------------------------------------
class _PositionPropensity(nn.Module):
    """One logit per position (setting 1)."""

    def __init__(self, n_positions: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_positions))

    def forward(self, n_rows: int) -> Tensor:
        return self.logits.unsqueeze(0).expand(n_rows, -1)


class _ItemPropensity(nn.Module):
    """``g(i) = b_bucket(i) + e_i`` (setting 2), eq. (8)."""

    def __init__(self, buckets: np.ndarray | None, n_buckets: int, n_items: int, use_item: bool):
        super().__init__()
        self.n_items = n_items
        if buckets is not None:
            self.register_buffer("buckets", torch.as_tensor(buckets, dtype=torch.long))
            self.bucket_logits = nn.Parameter(torch.zeros(n_buckets))
        else:
            self.buckets = None
            self.bucket_logits = None
        self.item_logits = nn.Parameter(torch.zeros(n_items)) if use_item else None

    def forward(self, items: Tensor | None = None) -> Tensor:
        """Logits of ``items`` (any shape); all items when None."""
        if items is None:
            items = torch.arange(self.n_items, device=self._device())
        out = torch.zeros(items.shape, device=items.device)
        if self.bucket_logits is not None:
            out = out + self.bucket_logits[self.buckets[items]]
        if self.item_logits is not None:
            out = out + self.item_logits[items]
        return out

    def _device(self) -> torch.device:
        return next(self.parameters()).device


def _popularity_buckets(counts: np.ndarray, n_buckets: int) -> np.ndarray:
    """Quantile buckets of ``log(1 + count)``; items with equal counts share a bucket."""
    x = np.log1p(counts.astype(np.float64))
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_buckets + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right").astype(np.int64)


# --------------------------------------------------------------------------------------------
# the sampler
# --------------------------------------------------------------------------------------------
def _logs_arrays(logs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """users (n,), items (n, L), clicks (n, L) from a LoggedLists-like object or a mapping."""
    get = (lambda k: logs[k]) if isinstance(logs, dict) else (lambda k: getattr(logs, k))
    try:
        users, items, clicks = get("users"), get("items"), get("clicks")
    except (KeyError, AttributeError):
        raise ValueError("logs must have 'users' (n,), 'items' (n, L) and 'clicks' (n, L), e.g. "
                         "SyntheticWorld.logs or a dict of those arrays") from None
    users = np.asarray(users)
    items = np.asarray(items)
    clicks = np.asarray(clicks)
    if items.ndim != 2 or users.shape != (items.shape[0],) or clicks.shape != items.shape:
        raise ValueError(f"logs must have users (n,), items (n, L) and clicks (n, L); got shapes {users.shape}, "
                         f"{items.shape} and {clicks.shape}")
    if items.shape[1] < 2:
        raise ValueError(f"logged lists need at least 2 positions, got {items.shape[1]}")
    if not (np.issubdtype(users.dtype, np.integer) and np.issubdtype(items.dtype, np.integer)):
        raise ValueError(f"logs users and items must be integer indices, got {users.dtype} and {items.dtype}")
    clicks = clicks.astype(np.float32)
    if not np.isfinite(clicks).all() or (clicks < 0).any():
        raise ValueError("logs clicks must be finite and >= 0")
    return users.astype(np.int64), items.astype(np.int64), clicks


@register("dla")
class DLASampler(Sampler):
    """Dual Learning Algorithm (Ai et al., SIGIR 2018): relevance and exposure learned together.

    See the module docstring for the derivation, eqs. (1)-(8). ``loss`` returns ``L_f + L_g``;
    the weights of each are detached, so ``f`` (the model) only gets the gradient of ``L_f`` and
    ``g`` (this sampler's parameters) only that of ``L_g``.

    Parameters
    ----------
    logs : LoggedLists, dict or None, default None
        Logged ranked lists with ``users`` (n,), ``items`` (n, L) in shown order and ``clicks``
        (n, L) (e.g. ``SyntheticWorld.logs``): setting 1, ``g`` is one logit per position.
        None: setting 2, lists are candidate sets built from the training Interactions and ``g``
        takes item exposure features.
    n_sampled : int, default 20
        Setting 2: unclicked items drawn per click (the candidate set has ``1 + n_sampled`` items).
    exposure_features : tuple of {"popularity", "item"}, default ("popularity", "item")
        Setting 2: the features of ``g`` (popularity bucket logit, per-item logit), eq. (8).
    n_popularity_buckets : int, default 10
        Setting 2: quantile buckets of the training popularity.
    propensity_l2 : float, default 1e-4
        L2 coefficient of the per-item logits ``e_i`` (added per click in the batch).
    propensity_lr : float or None, default None
        Learning rate of ``g``; None uses the Trainer's.
    max_weight : float, None or "auto", default "auto"
        Clip of the weights ``w`` and ``v`` of eq. (5); "auto": None with logs, 10 without.
    fixed_propensity : array or None, default None
        Do not learn ``g``: weight the clicks by these propensities (shape (L,) per position with
        logs, (n_items,) per item without; positive). Use the true ``θ`` for IPW with known
        propensities, ``numpy.ones`` for the naive click model. Only ``L_f`` is returned then.
    relevance_link : {"exp", "sigmoid"}, default "exp"
        How ``f``'s score ``s`` gives the relevance probability: ``exp(s)`` up to a factor of the
        list (the paper's softmax, eq. (4)), or ``σ(s)`` (eq. (4'); for models whose score is a
        logit of relevance). The losses and the weights ``v`` use ``s`` or ``log σ(s)``.

    Attributes
    ----------
    position_propensities_ : numpy.ndarray or None
        Learned ``θ_k / θ_1`` for positions 1..L (setting 1).
    item_propensities_ : numpy.ndarray or None
        Learned ``θ_i / max_j θ_j`` for every item (setting 2).
    propensity_ : nn.Module or None
        The propensity model ``g`` (after :meth:`prepare`).
    """

    fold_in_objective = "softmax"

    @classmethod
    def search_space(cls, trial) -> dict:
        """``propensity_lr``, log-uniform in [1e-3, 1e-1]."""
        return {**super().search_space(trial),
                "propensity_lr": trial.suggest_float("propensity_lr", 1e-3, 1e-1, log=True)}

    def __init__(
        self,
        logs=None,
        n_sampled: int = 20,
        exposure_features: tuple = ("popularity", "item"),
        n_popularity_buckets: int = 10,
        propensity_l2: float = 1e-4,
        propensity_lr: float | None = None,
        max_weight="auto",
        fixed_propensity=None,
        relevance_link: str = "exp",
    ):
        super().__init__()
        self.logs = logs
        self.n_sampled = n_sampled
        self.exposure_features = exposure_features
        self.n_popularity_buckets = n_popularity_buckets
        self.propensity_l2 = propensity_l2
        self.propensity_lr = propensity_lr
        self.max_weight = max_weight
        self.fixed_propensity = fixed_propensity
        self.relevance_link = relevance_link
        self.propensity_: nn.Module | None = None

    def row_item_counts(self) -> dict[str, int]:
        """``n_sampled`` in setting 2 only: logged lists bring their own items."""
        return {} if self.logs is not None else super().row_item_counts()

    # ------------------------------------------------------------------ preparation
    @property
    def mode(self) -> str:
        """``"positions"`` (logged lists, setting 1) or ``"candidates"`` (setting 2)."""
        return "candidates" if self.logs is None else "positions"

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        self._check_params()
        if self.mode == "positions":
            users, items, clicks = _logs_arrays(self.logs)
            if users.size and (users.min() < 0 or users.max() >= train.n_users):
                raise ValueError(f"logs users must be indices in [0, {train.n_users}) of the training data")
            if items.size and (items.min() < 0 or items.max() >= train.n_items):
                raise ValueError(f"logs items must be indices in [0, {train.n_items}) of the training data")
            keep = clicks.sum(axis=1) > 0  # a list without a click weighs nothing in (6) and (7)
            if not keep.any():
                raise ValueError("the logs have no click")
            self.train_ = train
            self._users, self._items, self._clicks = users[keep], items[keep], clicks[keep]
            L = items.shape[1]
            self._n_rows = int(keep.sum())
            self.propensity_ = _PositionPropensity(L)
            self._fixed_log = self._fixed_log_propensity(L, "positions (L,)")
        else:
            super().prepare(train, rng)
            self._users = train.user_index()
            self._items = train.item_index()
            self._n_rows = int(train.nnz)
            from recsampling.samplers.negatives import users_with_negatives

            self._has_negative = users_with_negatives(train)  # False: clicked every item, nothing to draw
            feats = tuple(self.exposure_features)
            buckets = None
            nb = int(self.n_popularity_buckets)
            if "popularity" in feats:
                buckets = _popularity_buckets(train.item_counts(), nb)
            self.propensity_ = _ItemPropensity(buckets, nb, train.n_items, "item" in feats)
            self._fixed_log = self._fixed_log_propensity(train.n_items, "items (n_items,)")
        self.propensity_.requires_grad_(self.fixed_propensity is None)

    def _check_params(self) -> None:
        if self.mode == "candidates":
            self._n_sampled()
            feats = self.exposure_features
            if isinstance(feats, str):
                feats = (feats,)
                self.exposure_features = feats
            if not feats or any(f not in _FEATURES for f in feats):
                raise ValueError(f"exposure_features must be a non-empty subset of {_FEATURES}, got {feats!r}")
            check_int(self.n_popularity_buckets, "n_popularity_buckets")
        check_number(self.propensity_l2, "propensity_l2", 0.0)
        check_number(self.propensity_lr, "propensity_lr", 0.0, strict=True, none_ok=True)
        if self.relevance_link not in _LINKS:
            raise ValueError(f"relevance_link must be one of {_LINKS}, got {self.relevance_link!r}")
        mw = self.max_weight
        if not (mw is None or mw == "auto" or (isinstance(mw, (int, float)) and not isinstance(mw, bool) and mw >= 1)):
            raise ValueError(f"max_weight must be None, 'auto' or a number >= 1, got {mw!r}")

    def _n_sampled(self) -> int:
        return check_int(self.n_sampled, "n_sampled")

    def _fixed_log_propensity(self, n: int, what: str) -> Tensor | None:
        if self.fixed_propensity is None:
            return None
        p = np.asarray(self.fixed_propensity, dtype=np.float64)
        if p.shape != (n,):
            raise ValueError(f"fixed_propensity must have one value per {what} = {n}, got shape {p.shape}")
        if not np.isfinite(p).all() or (p <= 0).any():
            raise ValueError("fixed_propensity must be finite and > 0")
        return torch.as_tensor(np.log(p), dtype=torch.float32)

    def _max_weight(self) -> float | None:
        if self.max_weight == "auto":
            return None if self.mode == "positions" else 10.0
        return None if self.max_weight is None else float(self.max_weight)

    def n_samples(self) -> int:
        self._check_prepared()
        return self._n_rows

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter group of ``g`` (its own lr, no weight decay; L2 is in the loss).

        Parameters
        ----------
        lr : float
            The Trainer's learning rate, used when ``propensity_lr`` is None.

        Returns
        -------
        list of dict
            ``[{"params": [...], "lr": ..., "weight_decay": 0.0}]``; empty when the
            propensities are fixed.
        """
        self._check_prepared()
        params = [p for p in self.propensity_.parameters() if p.requires_grad]
        if not params:
            return []
        return [{"params": params, "lr": float(self.propensity_lr or lr), "weight_decay": 0.0}]

    # ------------------------------------------------------------------ batches
    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every logged list (setting 1) or every click (setting 2) once, shuffled.

        Setting 1: a :class:`Batch` of ``users`` (B,), ``items`` (B, L) in shown order and
        ``labels`` (B, L), the clicks. Setting 2: the click in column 0 and ``n_sampled``
        unclicked items, ``labels`` with a 1 in column 0, and ``mask`` (B, 1 + n_sampled) (False
        in the drawn columns of a user who clicked every item: nothing unclicked to draw, the row
        is left out of the losses). Draws are independent (an item can repeat within a row).
        """
        self._check_prepared()
        check_int(batch_size, "batch_size")
        # near-equal batches (sizes differ by at most 1), not full ones and a small remainder: the
        # losses (6)-(7) are normalized by the batch's total weight, so a step's size does not
        # shrink with the batch and a small last batch would give the epoch's noisiest step
        if self.mode == "positions":
            order = self.epoch_order(self._n_rows, rng)
            for idx in np.array_split(order, max(1, -(-order.size // batch_size))):
                yield Batch(self._users[idx], self._items[idx], labels=self._clicks[idx])
            return
        from recsampling.samplers.negatives import positive_rows

        k = self._n_sampled()
        for _, users, items, mask in positive_rows(self.train_, self._users, self._items, k, batch_size, rng,
                                                   order=self.epoch_order(self._users.size, rng),
                                                   has_negative=self._has_negative, equal_batches=True):
            clicks = np.zeros(items.shape, dtype=np.float32)
            clicks[:, 0] = 1.0
            yield Batch(users, items, mask=mask, labels=clicks)

    # ------------------------------------------------------------------ losses
    def losses(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
        """The two losses ``(L_f, L_g)`` of eqs. (6) and (7) for one batch.

        Parameters
        ----------
        model : EmbeddingModel
            The relevance model ``f``.
        batch : Batch
            A batch from :meth:`batches` moved to tensors (:meth:`Batch.to`); its ``labels`` are
            the clicks.

        Returns
        -------
        (Tensor, Tensor)
            ``L_f`` (gradient for ``f`` only) and ``L_g`` (gradient for ``g`` only; a zero
            tensor when the propensities are fixed).
        """
        self._check_prepared()
        users, items = batch.users, batch.items
        if batch.labels is None:
            raise ValueError("DLA needs the clicks of each list in the batch's labels")
        clicks = batch.labels.to(torch.float32)
        s = model.score(users, items)
        if self.relevance_link == "sigmoid":  # eq. (4'): P(r = 1) = σ(s), the softmax is over log σ(s)
            s = F.logsigmoid(s)
        mw = self._max_weight()
        if self.mode == "positions":
            return self._losses_positions(s, clicks, mw)
        # a row whose user had nothing to draw (its drawn columns are padding) weighs nothing
        valid = None if batch.mask is None else batch.mask[:, 1]
        return self._losses_candidates(s, items, clicks, valid, mw)

    def _losses_positions(self, s: Tensor, clicks: Tensor, mw: float | None) -> tuple[Tensor, Tensor]:
        B = s.shape[0]
        if self._fixed_log is not None:
            g = self._fixed_log.to(s.device).unsqueeze(0).expand(B, -1)
            return ipw_softmax_loss(s, clicks, log_ratio_weights(g, max_weight=mw)), s.new_zeros(())
        g = self.propensity_(B)
        loss_f = ipw_softmax_loss(s, clicks, log_ratio_weights(g, max_weight=mw))   # eq. (6)
        loss_g = ipw_softmax_loss(g, clicks, log_ratio_weights(s, max_weight=mw))   # eq. (7)
        return loss_f, loss_g

    def _losses_candidates(self, s: Tensor, items: Tensor, clicks: Tensor, valid: Tensor | None,
                           mw: float | None) -> tuple[Tensor, Tensor]:
        if valid is not None:
            clicks = clicks * valid.to(clicks.dtype).unsqueeze(-1)
        if self._fixed_log is not None:
            g_all = self._fixed_log.to(s.device)
        else:
            g_all = self.propensity_()  # (n_items,)
        g_list = g_all[items]
        # w = exp(max g − g(i)): ratio to the most exposed item (a constant; it cancels in (6))
        ref_g = g_all.detach().max().expand(s.shape[0])
        loss_f = ipw_softmax_loss(s, clicks, log_ratio_weights(g_list, ref_g, mw))  # eq. (6)
        if self._fixed_log is not None:
            return loss_f, s.new_zeros(())
        # v = mean_j exp(s_uj) / exp(s_ui) over the row's sampled (unclicked) items
        sd = s.detach()
        ref_s = torch.logsumexp(sd[:, 1:], dim=-1) - math.log(sd.shape[1] - 1)
        log_v = log_ratio_weights(sd, ref_s, mw)
        # eq. (7) with the softmax of g over the catalogue
        log_p = g_list - torch.logsumexp(g_all, dim=0)
        loss_g = ipw_softmax_loss(g_list, clicks, log_v, log_probs=log_p)
        if self.propensity_l2 and self.propensity_.item_logits is not None:
            clicked_items = items[:, 0]
            loss_g = loss_g + self.propensity_l2 * self.propensity_.item_logits[clicked_items].pow(2).mean()
        return loss_f, loss_g

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``L_f + L_g`` (eqs. (6) + (7)); the detached weights keep their gradients apart."""
        loss_f, loss_g = self.losses(model, batch)
        return loss_f + loss_g

    # ------------------------------------------------------------------ learned propensities
    @property
    def position_propensities_(self) -> np.ndarray | None:
        """Learned relative examination propensities ``θ_k / θ_1`` (setting 1), else None."""
        if self.propensity_ is None or self.mode != "positions":
            return None
        g = self._fixed_log if self._fixed_log is not None else self.propensity_.logits.detach().cpu()
        return torch.exp(g - g[0]).numpy().astype(np.float64)

    @property
    def item_propensities_(self) -> np.ndarray | None:
        """Learned relative item exposure ``θ_i / max_j θ_j`` (setting 2), else None."""
        if self.propensity_ is None or self.mode != "candidates":
            return None
        with torch.no_grad():
            g = self._fixed_log if self._fixed_log is not None else self.propensity_().detach().cpu()
        return torch.exp(g - g.max()).numpy().astype(np.float64)
