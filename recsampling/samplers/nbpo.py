r"""BPO and NBPO: pointwise likelihood on implicit feedback, and its noisy-label robust version.

Wenhui Yu and Zheng Qin, "Sampler Design for Implicit Feedback Data by Noisy-label Robust
Learning", SIGIR 2020 (arXiv 2007.07204); the authors' reference code is Wenhui-Yu/NBPO
(``_BPO.py``, ``_NBPO.py``). The numbered equations below are ours: the stored copy of the
paper reachable while this was written was its abstract only, so the derivation follows the
paper's model as DESIGN.md summarises it and every gradient was checked against the update rule
of the authors' code (``tests/test_nbpo.py`` asserts the match).

Notation
--------
``x_ui = s(u, i)`` is the model's preference score (any :class:`EmbeddingModel`),
``σ`` the logistic function, ``y_ui`` the *true* label (does u like i), ``ỹ_ui`` the *observed*
label (1: voted / clicked, 0: unvoted). Each training row is one observed pair ``(u, i)`` plus
``k = n_negatives`` items ``j`` drawn uniformly from u's unvoted items (the paper's setup uses
``k = 4``; :func:`recsampling.samplers.negatives.draw_negatives` does the drawing, exact
rejection of u's positives).

BPO (Bayesian Point-wise Optimization)
--------------------------------------
The observed labels are taken as the true ones, ``P(ỹ_ui = 1) = σ(x_ui)``, and the model
maximizes their likelihood::

    (1)  L_BPO = Σ_(u,i) ln σ(x_ui) + Σ_(u,j) ln(1 − σ(x_uj)) − λ‖Θ‖²

i.e. the per-pair negative log-likelihood ``ℓ(x, ỹ) = −[ỹ ln σ(x) + (1 − ỹ) ln σ(−x)]``
(:func:`bpo_nll`), computed with ``logsigmoid`` so it is finite for any score.

NBPO (Noisy-label Robust BPO)
-----------------------------
An unvoted item may be a liked item the user never met: the true label ``y`` is flipped to an
observed 0 with a flip rate ``ρ_ui`` (only 1 → 0 flips: a vote is never noise)::

    (2)  P(ỹ = 0 | y = 1) = ρ_ui,   P(ỹ = 1 | y = 1) = 1 − ρ_ui,   P(ỹ = 0 | y = 0) = 1

The flip rate is a second factorization squashed into (0, 1)::

    (3)  ρ_ui = σ(γ_ui),   γ_ui = P_u · Q_i

(``flip="factor"``; the sampler owns ``P`` and ``Q``). Summing over the unknown true label
(Bayes' theorem, ``P(y = 1) = σ(x)``)::

    (4)  P(ỹ_ui = 1) = σ(x_ui) (1 − σ(γ_ui))
    (5)  P(ỹ_uj = 0) = 1 − σ(x_uj) + σ(x_uj) σ(γ_uj)

and the exact log-likelihood (``objective="exact"``, :func:`nbpo_nll`) is::

    (6)  L_NBPO = Σ_(u,i) [ln σ(x_ui) + ln σ(−γ_ui)]
                + Σ_(u,j) ln(σ(−x_uj) + σ(x_uj) σ(γ_uj))  − λ‖Θ‖² − λ_φ(‖P‖² + ‖Q‖²)

where the last logarithm is computed as ``logaddexp(logσ(−x), logσ(x) + logσ(γ))`` so that it is
finite for scores and flip logits of any size.

The authors' reported variant (``objective="surrogate"``, the default, :func:`nbpo_surrogate`)
does not follow the gradient of (6); its update for a voted pair ``(u, i)`` and an unvoted pair
``(u, j)`` is (gradient *ascent*, from ``_NBPO.py``)::

    (7)  ∂/∂x_ui = (1 − σ(γ_ui)) (1 − σ(x_ui)),    ∂/∂γ_ui = −σ(x_ui) σ(γ_ui)
    (8)  ∂/∂x_uj = σ(γ_uj) (1 − σ(x_uj)) − σ(x_uj), ∂/∂γ_uj = σ(x_uj) (1 − σ(γ_uj))

which autograd reproduces with stop-gradients ``sg`` (``detach``) on the loss::

    (9)  ℓ⁺ = −[sg(1 − σ(γ)) ln σ(x) + sg(σ(x)) ln(1 − σ(γ))]
    (10) ℓ⁻ = −[sg(σ(γ)) ln σ(x) + ln(1 − σ(x)) + sg(σ(x)) ln σ(γ)]

Read (8): an unvoted item the model already scores high is pulled down *less* the more likely
it is a flipped positive, and its flip rate grows with the model's belief ``σ(x_uj)``.

Weighting. In the authors' code the voted term of a row is applied once per drawn negative, so
voted and unvoted pairs weigh the same; ``positive_weight=None`` (the default) reproduces that
(weight ``k`` on the voted term), ``positive_weight=1.0`` gives the plain sum of (1) / (6).
Each row's loss is ``w ℓ(x_ui) + Σ_j ℓ(x_uj)`` and the batch loss is its mean over rows.

Flip parameterizations (``flip=``)
----------------------------------
- ``"factor"`` (the paper): ``γ_ui = P_u · Q_i`` with ``flip_dim`` factors. As in the authors'
  code ``P`` starts non-negative and ``Q`` non-positive (uniform), scaled so that the mean
  initial flip rate is ``flip_init``; their L2 ``λ_φ`` (``flip_l2``) shrinks ``P, Q``.
- ``"item"``: ``γ_ui = logit(flip_init) + b_i`` — one flip rate per item (how often a liked
  item goes unseen: the popularity / exposure story).
- ``"user"``: ``γ_ui = logit(flip_init) + c_u`` — one per user (how much of her taste a user
  has not voted yet).
- ``"user+item"``: ``γ_ui = logit(flip_init) + c_u + b_i``.
- ``"constant"``: ``γ_ui = logit(flip_init)`` for every pair, nothing learned — the ablation
  that tells how much of NBPO's effect is a fixed soft label on the unvoted items (with the
  surrogate, an unvoted item's score is pulled towards ``σ(x) = ρ / (1 + ρ)`` instead of 0)
  rather than flip rates that differ between pairs.

For the three simpler forms the learned offsets start at 0 and ``flip_l2`` pulls them back to
0, i.e. the prior is centred on ``flip_init`` rather than on a flip rate of ½ (an L2 on a raw
logit would pull every flip rate towards ½).

Optimization. The flip parameters' L2 (``flip_l2``) is added by the loss on the rows of the
batch (like the Trainer's ``l2`` on the embeddings); their learning rate is ``flip_lr``
(default: the Trainer's), handed to the optimizer by :meth:`NBPOSampler.param_groups`.

The scale of ``flip_l2`` against the authors' ``λ_φ``. ``_NBPO.py`` decays the *whole* ``P`` and
``Q`` once per batch of 5,000 rows, ``P ← P + η(ΣdP − λ_φ P)``, with ``ΣdP`` summed over the
batch; here the L2 is charged once per *touch* of a row (``∂/∂Q_i ∝ Σ_touches(g P_u) +
2 flip_l2 n_touches Q_i``). The two have the same stationary points when ``2 flip_l2 ≈ λ_φ /
(touches of a row per batch)``: on MovieLens 1M (λ_φ = 1, an item touched ~10 times, a user ~7
times per batch) that is ``flip_l2 ≈ 0.05-0.08``; on their Amazon set (λ_φ = 5) larger still. At
that strength the surrogate's flip factors shrink to ~0 and every flip rate sits near ½ (a
stationary point reached within ~10 epochs), i.e. NBPO behaves like ``flip="constant"`` at ½;
at the much weaker default (1e-4) the flip rates never become stationary (the mean keeps
rising, 0.3 → 0.85 over 40 epochs on the synthetic benchmark), so their level depends on
where early stopping ends training. ``benchmarks/RESULTS.md`` (NBPO section) has the measured
effect of both settings.

Line by line against the authors' code (issue 18)
-------------------------------------------------
``_NBPO.py`` (with ``_BPO.py`` and ``_BPR.py``, the same loop) of Wenhui-Yu/NBPO against this
module with the :class:`~recsampling.train.Trainer`, and what ``benchmarks/nbpo_noise.py
--protocol authors`` does about each difference (it runs these samplers on our Trainer, through
:mod:`recsampling.samplers.nbpo_authors`):

===================  ===============================  ===============================  ==========================
part                 ``_NBPO.py``                     here (defaults)                  ``--protocol authors``
===================  ===============================  ===============================  ==========================
preference score     ``x = U_u · V_i``, K0 = 50, no   any model's ``score``; MF has an  MF without biases,
                     biases                           item bias and ``factors``        50 factors
flip model           ``ρ = σ(P_u · Q_i)``, K1 = 50    the same (``flip="factor"``),    ``flip_dim = 50``
                                                      ``flip_dim = 32``; also item /
                                                      user / constant forms
which labels flip    only liked → unvoted (a vote is  the same, eq. (2)                the same
                     never noise)
update rule          gradient ascent on eqs. (7)-(8)  autograd of (9)-(10) gives       the same
                     with ``σ`` set to exactly 0 / 1  (7)-(8) exactly, no clamp
                     beyond ``|z| > 10``              (logsigmoid); ``objective=
                                                      "exact"`` is the likelihood (6)
voted term           applied once per drawn negative  ``positive_weight=None``: weight  the same
                     (weight 4)                       ``k``, the same
regularisers         ``W += η(dW − λW)`` on the       Trainer ``l2``: the touched      the whole tables, once per
                     *whole* ``U, V`` (λ_r) and       rows, mean over the batch;       batch, in the loss (divided
                     ``P, Q`` (λ_φ) once per batch    ``flip_l2`` per row on the       by the rows the Trainer
                     (movielens 0.5 / 1, amazon       touched ``P, Q`` (scale: above)  multiplies by): the same
                     1 / 5)
initialisation       ``U, V ~ U(0,1)/√K0``;           MF: ``N(0, 0.1²)``; ``P ≥ 0``,   ``U(0,1)/√50``;
                     ``P ~ 5U(0,1)/√K1``,             ``Q ≤ 0`` uniform as theirs,     :data:`AUTHORS_FLIP_INIT`
                     ``Q ~ −5U(0,1)/√K1`` (mean flip  scaled to ``flip_init = 0.01``   gives their ``P, Q``
                     rate about σ(−6.25))                                              exactly
optimizer            plain SGD on the batch sum, η    any (benchmark: Adam on the      ``optimizer="sgd"`` (a step
                     (movielens 0.02, amazon 0.05)    batch mean)                      on the batch sum): the same
schedule             ``η ← 0.99 η`` before every      constant lr, early stopping on   the loss times
                     epoch, 200 epochs, no early      validation                       ``0.99^(e+1)`` (exact for
                     stopping (validation printed)                                     SGD), 200 epochs, none
batches              5,000 consecutive rows of the    shuffled every epoch, 1,024      their order, 5,000 rows
                     user-ordered pairs, never        rows (benchmark)
                     shuffled
sampling             4 uniform items per voted pair,  ``draw_negatives``: the same     the same
                     independent, the user's          (exact rejection, independent
                     positives rejected               draws)
evaluation           F1@K, NDCG@K (K = 2 … 100),      ``recsampling.metrics``          NDCG@10 / Recall@10 and the
                     full ranking, training items     (NDCG the same definition)       truth metrics; no F1
                     removed, users with a test item
===================  ===============================  ===============================  ==========================

What remains different under ``--protocol authors``: the sigmoid clamp at ``|z| > 10`` (their
gradient is exactly 0 there, ours tiny), float32 instead of float64, and F1@K (not reported).
The test ``tests/test_nbpo_benchmark.py::test_authors_sampler_step_is_the_authors_update`` checks
one batch's step against their update written out in numpy, for NBPO, BPO and BPR.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number, torch_seed
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, Sampler, register

__all__ = ["AUTHORS_FLIP_INIT", "BPOSampler", "NBPOSampler", "bpo_nll", "nbpo_nll", "nbpo_surrogate"]

#: ``flip_init`` that reproduces the authors' initialisation of the flip factors (``_NBPO.py``:
#: ``P ~ 5 U(0, 1) / sqrt(K1)``, ``Q ~ −5 U(0, 1) / sqrt(K1)``): ``flip="factor"`` draws
#: ``P ~ U(0, a) / sqrt(dim)``, ``Q ~ −U(0, a) / sqrt(dim)`` with ``a = sqrt(−4 logit(flip_init))``,
#: so ``a = 5`` is ``logit(flip_init) = −25/4``, i.e. ``flip_init = σ(−6.25) ≈ 0.00193``.
AUTHORS_FLIP_INIT = 1.0 / (1.0 + math.exp(6.25))

_FLIPS = ("factor", "item", "user", "user+item", "constant")
_OBJECTIVES = ("surrogate", "exact")


# --------------------------------------------------------------------------------------------
# the losses, as plain functions of scores x, flip logits γ and observed labels ỹ (elementwise)
# --------------------------------------------------------------------------------------------
def bpo_nll(x: Tensor, labels: Tensor) -> Tensor:
    """Pointwise negative log-likelihood of BPO, eq. (1): ``−[ỹ ln σ(x) + (1 − ỹ) ln σ(−x)]``.

    Parameters
    ----------
    x : Tensor
        Scores, any shape.
    labels : Tensor
        Observed labels ỹ ∈ {0, 1}, same shape as ``x``.

    Returns
    -------
    Tensor of the shape of ``x``; finite for any finite score.
    """
    return -torch.where(labels > 0.5, F.logsigmoid(x), F.logsigmoid(-x))


def nbpo_nll(x: Tensor, gamma: Tensor, labels: Tensor) -> Tensor:
    """Exact negative log-likelihood of NBPO, eqs. (4)-(6), elementwise.

    ``ỹ = 1``: ``−[ln σ(x) + ln σ(−γ)]``;  ``ỹ = 0``: ``−ln(σ(−x) + σ(x) σ(γ))``, the latter as
    ``−logaddexp(logσ(−x), logσ(x) + logσ(γ))``.

    Parameters
    ----------
    x : Tensor
        Preference scores.
    gamma : Tensor
        Flip logits γ (flip rate ρ = σ(γ)), same shape.
    labels : Tensor
        Observed labels ỹ ∈ {0, 1}, same shape.

    Returns
    -------
    Tensor of the shape of ``x``; finite, with finite gradients, for any finite x and γ.
    """
    voted = F.logsigmoid(x) + F.logsigmoid(-gamma)  # ln P(ỹ=1), eq. (4)
    unvoted = torch.logaddexp(F.logsigmoid(-x), F.logsigmoid(x) + F.logsigmoid(gamma))  # eq. (5)
    return -torch.where(labels > 0.5, voted, unvoted)


def nbpo_surrogate(x: Tensor, gamma: Tensor, labels: Tensor) -> Tensor:
    """The authors' surrogate objective, eqs. (9)-(10): its autograd gradient is eqs. (7)-(8).

    Its value is not a likelihood (use :func:`nbpo_nll` to monitor one); only its gradient
    matters.

    Parameters
    ----------
    x, gamma, labels : Tensor
        Scores, flip logits and observed labels, all the same shape.

    Returns
    -------
    Tensor of the shape of ``x``.
    """
    sx, sg = torch.sigmoid(x).detach(), torch.sigmoid(gamma).detach()
    log_sx, log_1msx = F.logsigmoid(x), F.logsigmoid(-x)
    log_sg, log_1msg = F.logsigmoid(gamma), F.logsigmoid(-gamma)
    voted = (1.0 - sg) * log_sx + sx * log_1msg  # eq. (9)
    unvoted = sg * log_sx + log_1msx + sx * log_sg  # eq. (10)
    return -torch.where(labels > 0.5, voted, unvoted)


# --------------------------------------------------------------------------------------------
# the samplers
# --------------------------------------------------------------------------------------------
class _PointwiseSampler(Sampler):
    """Rows of one voted pair (column 0, label 1) plus ``n_negatives`` uniform unvoted items."""

    fold_in_objective = "logistic"

    def __init__(self, n_negatives: int = 4, positive_weight: float | None = None, collision: str = "redraw"):
        super().__init__()
        self.n_negatives = n_negatives
        self.positive_weight = positive_weight
        self.collision = collision

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        check_int(self.n_negatives, "n_negatives")
        check_number(self.positive_weight, "positive_weight", 0.0, strict=True, none_ok=True)
        super().prepare(train, rng)
        from recsampling.samplers.negatives import _check_collision, users_with_negatives

        _check_collision(self.collision)

        self._users = train.user_index()
        self._items = train.item_index()
        self._has_negative = users_with_negatives(train)

    def _positive_weight(self) -> float:
        return float(self.n_negatives if self.positive_weight is None else self.positive_weight)

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """One epoch: every voted pair once, in random order, each with its unvoted draws.

        A :class:`Batch` of ``users`` (B,), ``items`` (B, 1 + k) (column 0 the voted item),
        ``labels`` (B, 1 + k) (1 then k zeros) and ``mask`` (B, 1 + k): False marks a draw that
        is not used (a collision with ``collision="skip"``, or a user who has no unvoted item at
        all, whose columns hold the voted item itself).
        """
        from recsampling.samplers.negatives import positive_rows

        self._check_prepared()
        k = int(self.n_negatives)
        labels_row = np.zeros(1 + k, dtype=np.float32)
        labels_row[0] = 1.0
        for _, users, items, mask in positive_rows(self.train_, self._users, self._items, k, batch_size, rng,
                                                   order=self.epoch_order(self._users.size, rng),
                                                   has_negative=self._has_negative, collision=self.collision):
            labels = np.broadcast_to(labels_row, items.shape).copy()
            yield Batch(users, items, mask=mask, labels=labels)

    def _row_weights(self, batch: Batch) -> Tensor:
        labels = batch.labels
        w = torch.where(labels > 0.5, labels.new_tensor(self._positive_weight()), labels.new_tensor(1.0))
        return w if batch.mask is None else w * batch.mask.to(w.dtype)


@register("bpo")
class BPOSampler(_PointwiseSampler):
    """Bayesian Point-wise Optimization (Yu & Qin, SIGIR 2020), eq. (1) of the module docstring.

    Voted pairs are labelled 1, ``n_negatives`` uniformly drawn unvoted items per voted pair
    are labelled 0, and the loss is the Bernoulli negative log-likelihood with
    ``P(ỹ = 1) = σ(score)``.

    Parameters
    ----------
    n_negatives : int, default 4
        Unvoted items drawn per voted pair (4 in the paper's setup).
    positive_weight : float or None, default None
        Weight of the voted term of a row; None uses ``n_negatives``, as the authors' code does
        (voted and unvoted pairs weigh the same); 1.0 is the plain likelihood sum.
    collision : {"redraw", "skip"}, default "redraw"
        Passed to :func:`~recsampling.samplers.negatives.draw_negatives`.
    """

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x = model.score(batch.users, batch.items)
        return (self._row_weights(batch) * bpo_nll(x, batch.labels)).sum(-1).mean()


class _FlipLogits(nn.Module):
    """The flip logits γ_ui of eq. (3) and its simpler per-user / per-item forms."""

    def __init__(self, kind: str, n_users: int, n_items: int, dim: int, init: float, generator: torch.Generator):
        super().__init__()
        self.kind = kind
        self.offset = math.log(init) - math.log1p(-init)  # logit(flip_init)
        if kind == "factor":
            # P ≥ 0, Q ≤ 0, uniform: E[P_u·Q_i] = −scale²/4 = logit(flip_init) (needs flip_init < ½)
            scale = math.sqrt(-4.0 * self.offset)
            self.P = nn.Embedding(n_users, dim)
            self.Q = nn.Embedding(n_items, dim)
            with torch.no_grad():
                self.P.weight.copy_(torch.rand(n_users, dim, generator=generator) * scale / math.sqrt(dim))
                self.Q.weight.copy_(-torch.rand(n_items, dim, generator=generator) * scale / math.sqrt(dim))
        if kind in ("user", "user+item"):
            self.user_logit = nn.Embedding(n_users, 1)
            nn.init.zeros_(self.user_logit.weight)
        if kind in ("item", "user+item"):
            self.item_logit = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.item_logit.weight)
        # a parameterless buffer gives every form a device to follow (``flip="constant"``)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """γ for users (B,) and items (B,) or (B, L); also users (U, 1) × items (1, I) grids."""
        if items.dim() == users.dim() + 1:
            users = users.unsqueeze(-1)
        if self.kind == "factor":
            return (self.P(users) * self.Q(items)).sum(-1)
        gamma = torch.full(torch.broadcast_shapes(users.shape, items.shape), self.offset, device=items.device)
        if self.kind in ("user", "user+item"):
            gamma = gamma + self.user_logit(users).squeeze(-1)
        if self.kind in ("item", "user+item"):
            gamma = gamma + self.item_logit(items).squeeze(-1)
        return gamma

    def grid(self, users: Tensor, items: Tensor) -> Tensor:
        """γ for every pair of ``users`` (U,) × ``items`` (I,), shape (U, I), by one matmul."""
        if self.kind == "factor":
            return self.P(users) @ self.Q(items).T
        return self.forward(users[:, None], items[None, :])

    def regularization(self, users: Tensor, items: Tensor) -> Tensor:
        """Squared L2 norm of the flip parameters a batch row touches, shape (B,)."""
        reg = torch.zeros(users.shape[0], device=users.device)
        if self.kind == "factor":
            reg = reg + self.P(users).pow(2).sum(-1) + self.Q(items).pow(2).sum(-1).sum(-1)
        if self.kind in ("user", "user+item"):
            reg = reg + self.user_logit(users).pow(2).sum(-1)
        if self.kind in ("item", "user+item"):
            reg = reg + self.item_logit(items).pow(2).sum(-1).sum(-1)
        return reg


@register("nbpo")
class NBPOSampler(_PointwiseSampler):
    """Noisy-label Robust BPO (Yu & Qin, SIGIR 2020): unvoted items may be flipped positives.

    The likelihood of the observed labels sums over the true label through a learned flip rate
    ``ρ_ui = σ(γ_ui)`` (eqs. (2)-(6) of the module docstring); the flip parameters belong to the
    sampler, are created in :meth:`prepare` and are trained with the model.

    Parameters
    ----------
    n_negatives : int, default 4
        Uniform unvoted items per voted pair (4 in the paper's setup).
    objective : {"surrogate", "exact"}, default "surrogate"
        ``"surrogate"``: the authors' update rule, eqs. (7)-(10); ``"exact"``: gradient of the
        log-likelihood (6).
    flip : {"factor", "item", "user", "user+item", "constant"}, default "factor"
        Parameterization of the flip logit γ_ui (``"factor"`` is the paper's ``P_u · Q_i``;
        ``"constant"``: the fixed rate ``flip_init``, nothing learned — an ablation).
    flip_dim : int, default 32
        Factors of ``P`` and ``Q`` (``flip="factor"`` only).
    flip_init : float, default 0.01
        Initial (mean) flip rate, in (0, ½) for ``"factor"``, in (0, 1) for the other forms.
    flip_l2 : float, default 1e-4
        L2 coefficient of the flip parameters (the paper's λ_φ), added per batch row.
    flip_lr : float or None, default None
        Learning rate of the flip parameters; None uses the Trainer's.
    positive_weight : float or None, default None
        Weight of the voted term of a row; None uses ``n_negatives`` (the authors' code).
    collision : {"redraw", "skip"}, default "redraw"
        Passed to :func:`~recsampling.samplers.negatives.draw_negatives`.

    Attributes
    ----------
    flip_ : nn.Module
        The flip-logit module (after :meth:`prepare`).
    item_flip_rates_, user_flip_rates_ : numpy.ndarray
        Mean learned flip rate of each item over all users / of each user over all items.
    """

    @classmethod
    def search_space(cls, trial) -> dict:
        """``n_negatives`` and ``flip_l2``, log-uniform in [1e-6, 1] (the paper's scale is ~0.05-0.1)."""
        return {**super().search_space(trial), "flip_l2": trial.suggest_float("flip_l2", 1e-6, 1.0, log=True)}

    def __init__(
        self,
        n_negatives: int = 4,
        objective: str = "surrogate",
        flip: str = "factor",
        flip_dim: int = 32,
        flip_init: float = 0.01,
        flip_l2: float = 1e-4,
        flip_lr: float | None = None,
        positive_weight: float | None = None,
        collision: str = "redraw",
    ):
        super().__init__(n_negatives=n_negatives, positive_weight=positive_weight, collision=collision)
        self.objective = objective
        self.flip = flip
        self.flip_dim = flip_dim
        self.flip_init = flip_init
        self.flip_l2 = flip_l2
        self.flip_lr = flip_lr
        self.flip_: _FlipLogits | None = None

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        if self.objective not in _OBJECTIVES:
            raise ValueError(f"objective must be one of {_OBJECTIVES}, got {self.objective!r}")
        if self.flip not in _FLIPS:
            raise ValueError(f"flip must be one of {_FLIPS}, got {self.flip!r}")
        check_int(self.flip_dim, "flip_dim")
        top = 0.5 if self.flip == "factor" else 1.0  # P ≥ 0, Q ≤ 0 start below a flip rate of ½
        if not 0.0 < float(self.flip_init) < top:
            raise ValueError(f"flip_init must be a flip rate in (0, {top:g}) for flip={self.flip!r}, got {self.flip_init!r}")
        if self.flip_l2 < 0:
            raise ValueError(f"flip_l2 must be >= 0, got {self.flip_l2!r}")
        if self.flip_lr is not None and not self.flip_lr > 0:
            raise ValueError(f"flip_lr must be None or > 0, got {self.flip_lr!r}")
        super().prepare(train, rng)
        gen = torch.Generator().manual_seed(torch_seed(rng))
        self.flip_ = _FlipLogits(
            self.flip, train.n_users, train.n_items, int(self.flip_dim), float(self.flip_init), gen
        )

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups of the flip parameters (their own lr, no weight decay).

        Parameters
        ----------
        lr : float
            The Trainer's learning rate, used when ``flip_lr`` is None.

        Returns
        -------
        list of dict
            ``[{"params": [...], "lr": ..., "weight_decay": 0.0}]``; the L2 of the flip
            parameters (``flip_l2``) is in the loss.
        """
        self._check_flip()
        return [{"params": list(self.flip_.parameters()), "lr": float(self.flip_lr or lr), "weight_decay": 0.0}]

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        self._check_flip()
        users, items, labels = batch.users, batch.items, batch.labels
        x = model.score(users, items)
        gamma = self.flip_(users, items)
        per_pair = nbpo_surrogate(x, gamma, labels) if self.objective == "surrogate" else nbpo_nll(x, gamma, labels)
        row = (self._row_weights(batch) * per_pair).sum(-1)
        if self.flip_l2:
            row = row + self.flip_l2 * self.flip_.regularization(users, items)
        return row.mean()

    # -- reading the learned flip rates ------------------------------------------------------
    @torch.no_grad()
    def flip_rates(self, users=None, items=None, pairs: bool = False) -> np.ndarray:
        """Learned flip rates ρ_ui = P(a liked item is unvoted), eq. (3).

        Parameters
        ----------
        users, items : array-like of int or None
            Indices; None means all.
        pairs : bool, default False
            False: the grid ``len(users) × len(items)``; True: elementwise for equal-length
            ``users`` and ``items``.

        Returns
        -------
        numpy.ndarray of float32, shape (len(users), len(items)) or (len(users),)
        """
        self._check_flip()
        dev = self.flip_._anchor.device
        n_users, n_items = self.train_.shape
        u = torch.arange(n_users) if users is None else torch.as_tensor(np.asarray(users, dtype=np.int64))
        i = torch.arange(n_items) if items is None else torch.as_tensor(np.asarray(items, dtype=np.int64))
        u, i = u.to(dev), i.to(dev)
        if pairs:
            if u.shape != i.shape:
                raise ValueError(f"pairs=True needs users and items of equal shape, got {tuple(u.shape)} and {tuple(i.shape)}")
            return torch.sigmoid(self.flip_(u, i)).float().cpu().numpy()
        return torch.sigmoid(self.flip_.grid(u, i)).float().cpu().numpy()

    @torch.no_grad()
    def _mean_rates(self, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        self._check_flip()
        n_users, n_items = self.train_.shape
        item_sum = np.zeros(n_items, dtype=np.float64)
        user_mean = np.empty(n_users, dtype=np.float64)
        for start in range(0, n_users, chunk):
            block = self.flip_rates(users=np.arange(start, min(start + chunk, n_users))).astype(np.float64)
            item_sum += block.sum(0)
            user_mean[start : start + block.shape[0]] = block.mean(1)
        return item_sum / n_users, user_mean

    @property
    def item_flip_rates_(self) -> np.ndarray:
        """Mean learned flip rate of each item over all users, shape (n_items,)."""
        return self._mean_rates()[0]

    @property
    def user_flip_rates_(self) -> np.ndarray:
        """Mean learned flip rate of each user over all items, shape (n_users,)."""
        return self._mean_rates()[1]

    def _check_flip(self) -> None:
        self._check_prepared()
        if self.flip_ is None:
            raise RuntimeError("NBPOSampler.prepare(train, rng) must be called first")
