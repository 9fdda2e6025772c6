r"""CET: hard negatives weighted by the estimated probability that they are truly negative.

Paper
-----
Y. Cai, J. Guo, Y. Fan, Q. Ai, R. Zhang, X. Cheng, "Hard Negatives or False Negatives:
Correcting Pooling Bias in Training Neural Ranking Models", CIKM 2022 (arXiv 2209.05072).
Their finding: the top-ranked unlabeled passages of a strong retriever, used as hard negatives,
are often relevant passages the annotators never judged (false negatives), because only the
pool a few basic retrievers selected was labelled (*pooling bias*). Their Coupled Estimation
Technique (CET) learns a *relevance model* and a *selection model* together, each one's
estimate correcting the other's training data.

The model, written for recommendation
-------------------------------------
An observed interaction needs the item to be *selected* for the user (met, exposed: the
recommendation counterpart of "in the judged pool") and to be *relevant*::

    (1)  P(y_uj = 1) = θ_uj · γ_uj,   θ_uj = σ(a_u + b_j)  (selection),  γ_uj = σ(x̂_uj)  (relevance)

so by Bayes an unobserved item is truly negative with probability::

    (2)  P(r_uj = 0 | y_uj = 0) = (1 − γ_uj) / (1 − θ_uj γ_uj)

small for an item the model finds relevant (γ large) that the user was unlikely to meet
(θ small): a likely false negative. The two models are estimated in turn from each other's
estimate, held fixed (sg = no gradient), as CET couples them. The selection model maximizes the
likelihood of the observed labels under (1) with the relevance fixed, over the batch's
positives (y = 1) and drawn negatives (y = 0)::

    (3)  ℓ_sel = −[Σ_{y=1} ln θ_ui sg(γ_ui) + Σ_{y=0} ln(1 − θ_uj sg(γ_uj))] / |entries|

and the ranker's hard-negative loss weights each pair by (2) with both estimates fixed,
normalized by the batch's total weight (the weights move the step between negatives; they do
not shrink it)::

    (4)  ℓ_rank = Σ_{(i, j)} w_uj · (−ln σ(x̂_ui − x̂_uj)) / Σ w_uj,   w_uj = sg[(2)]

The sampler minimizes ``ℓ_rank + ℓ_sel + sel_l2 · mean(a_u² + b_j²)`` over the model and the
selection logits ``a`` (per user) and ``b`` (per item), an ``nn.Module`` the Trainer optimizes
with the model (:meth:`param_groups`). The negatives are drawn as by ``tophard``
(:mod:`recsampling.samplers.hard`): the current model's top-``K`` unseen items, refreshed once per
epoch (or every ``refresh_every`` steps), mixed with uniform ones at ``hard_ratio``.

Where this adapts the IR setting
--------------------------------
- query / passage → user / item; the retriever's pool of hard negatives → the model's own
  top-``K`` unseen items (ADORE-style dynamic negatives instead of a fixed retriever run).
- Pooling selection (which passages annotators judged, decided by the basic retrievers' ranks)
  → exposure (which items the user met): a logistic model of a user term and an item term,
  the shape of popularity-driven exposure (the synthetic world's MNAR exposure is of that
  form).
- The paper's coupled updates train each model on data weighted by the other's estimate; here
  the selection model is fitted by (3) given the relevance, and the correction enters the
  ranker through the posterior weight (2): "a hard negative weighted by the estimated
  probability that it is truly negative". The ranker keeps BPR's pairwise loss, so
  ``γ = σ(x̂)`` is a monotone reading of its score, not a calibrated probability. (Letting (3)
  train the ranker too stopped the two-tower model from learning in our tests.)
- The paper's own equations could not be checked here (only its abstract and introduction
  were readable with the tools at hand, on two attempts): (1)-(4) are this module's numbering,
  derived from the abstract's model (labelled = selected and relevant; relevance and selection
  estimated together, each correcting the other's training data).

What it does on the synthetic world (``benchmarks/RESULTS.md``, issue 19)
------------------------------------------------------------------------
The selection model learns exposure (its θ of the drawn negatives has a Spearman correlation
of 0.66 with the world's true exposure on the 943 x 1682 world), and with it (2) ranks the
drawn negatives by "truly negative" better than the score alone does (AUC 0.634 against 0.610;
(2) with the world's own θ and relevance reaches 0.91, with the learned θ and the true relevance
0.83: the ranker's ``σ(x̂)`` holds back most).
Yet the ranker's gain over ``tophard`` comes from the score in (2): with θ held at 1/2
(``sel_lr=1e-9``) the true NDCG@10 is higher than with it learned, and so is the NDCG@10 on a
validation split of the clicks. The defaults are kept (the coupled estimation the paper
proposes); ``sel_lr`` is the knob, to be set on validation data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_number
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Batch, register
from recsampling.samplers.hard import TopHardSampler
from recsampling.samplers.negatives import bpr_loss

__all__ = ["CETSampler", "SelectionModel", "true_negative_probability"]


class SelectionModel(nn.Module):
    """``θ_uj = σ(a_u + b_j)``: the probability that user u met item j (eq. 1)."""

    def __init__(self, n_users: int, n_items: int, init: float = 0.0):
        super().__init__()
        self.user_logit = nn.Parameter(torch.zeros(n_users))
        self.item_logit = nn.Parameter(torch.full((n_items,), float(init)))

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        """Selection logits of (B,) users and (B, L) items, shape (B, L)."""
        return self.user_logit[users][:, None] + self.item_logit[items]


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, stable on both sides of ``−ln 2``."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def true_negative_probability(scores: Tensor, selection_logits: Tensor) -> Tensor:
    """Eq. (2): ``(1 − γ) / (1 − θγ)`` with ``γ = σ(scores)``, ``θ = σ(selection_logits)``, in [0, 1]."""
    log_g = F.logsigmoid(scores)
    log_t = F.logsigmoid(selection_logits)
    return torch.exp(F.logsigmoid(-scores) - _log1mexp(log_g + log_t))


@register("cet")
class CETSampler(TopHardSampler):
    """Top-k hard negatives weighted by a jointly learned P(truly negative) (CET, Cai et al., CIKM 2022).

    Parameters
    ----------
    n_negatives, top_k, refresh_every, hard_ratio, skip_top
        As for ``tophard``.
    sel_lr : float or None, default None
        Learning rate of the selection logits (None: the Trainer's).
    sel_l2 : float, default 1e-4
        L2 on the selection logits of the batch.

    Attributes
    ----------
    selection_ : SelectionModel
        Created in :meth:`prepare`; :meth:`selection_probability` reads it.
    """

    demo_params = {"top_k": 50, "hard_ratio": 0.5}

    def __init__(self, n_negatives: int = 1, top_k: int = 50, refresh_every: int | None = None, hard_ratio: float = 0.5,
                 skip_top: int = 0, sel_lr: float | None = None, sel_l2: float = 1e-4):
        super().__init__(n_negatives=n_negatives, top_k=top_k, refresh_every=refresh_every, hard_ratio=hard_ratio,
                         skip_top=skip_top)
        self.sel_lr = sel_lr
        self.sel_l2 = sel_l2

    @classmethod
    def search_space(cls, trial) -> dict:
        return {**super().search_space(trial), "sel_l2": trial.suggest_float("sel_l2", 1e-6, 1e-2, log=True)}

    def _validate(self) -> None:
        super()._validate()
        check_number(self.sel_lr, "sel_lr", 0.0, strict=True, none_ok=True)
        check_number(self.sel_l2, "sel_l2", 0.0)

    def prepare(self, train: Interactions, rng: np.random.Generator) -> None:
        """As ``tophard``, and create the selection model sized to the data (θ starts at 1/2)."""
        super().prepare(train, rng)
        self.selection_ = SelectionModel(train.n_users, train.n_items)

    def param_groups(self, lr: float) -> list[dict]:
        if getattr(self, "selection_", None) is None:
            return []
        return [{"params": list(self.selection_.parameters()),
                 "lr": float(lr if self.sel_lr is None else self.sel_lr), "weight_decay": 0.0}]

    def _weights(self, s: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Selection logits (B, L) and the eq. (2) weight of every entry (detached)."""
        t = self.selection_(batch.users, batch.items)
        w = true_negative_probability(s.detach(), t.detach())
        return t, w

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        self._step(model)
        s = model.score(batch.users, batch.items)
        t, w = self._weights(s, batch)
        real = torch.ones_like(s, dtype=torch.bool) if batch.mask is None else batch.mask
        neg_w = w[:, 1:] * real[:, 1:]
        # eq. (4), normalized by the batch's total weight: the weights redistribute the step among negatives
        rank = bpr_loss(s[:, :1], s[:, 1:], neg_w) * (neg_w.numel() / neg_w.sum().clamp(min=1e-6))
        log_tg = F.logsigmoid(t) + F.logsigmoid(s.detach())
        nll = torch.cat([-log_tg[:, :1], -_log1mexp(log_tg[:, 1:])], dim=1)      # eq. (3)
        sel = (nll * real).sum() / real.sum().clamp(min=1)
        reg = float(self.sel_l2) * (self.selection_.user_logit[batch.users].pow(2).mean()
                                    + self.selection_.item_logit[batch.items].pow(2).mean())
        return rank + sel + reg

    def negative_weights(self, model: nn.Module, batch: Batch) -> Tensor:
        """(B, L) weight of each entry as a negative in the loss: eq. (2) on the real negative columns."""
        with torch.no_grad():
            s = model.score(batch.users, batch.items)
            _, w = self._weights(s, batch)
            out = torch.zeros_like(w)
            out[:, 1:] = w[:, 1:] if batch.mask is None else w[:, 1:] * batch.mask[:, 1:]
        return out

    def selection_probability(self, users, items) -> np.ndarray:
        """Learned ``θ_uj`` (eq. 1) of (B,) ``users`` and (B, L) ``items``, float32 numpy."""
        self._check_prepared()
        with torch.no_grad():
            dev = self.selection_.item_logit.device
            u = torch.as_tensor(np.asarray(users), dtype=torch.int64, device=dev)
            i = torch.as_tensor(np.asarray(items), dtype=torch.int64, device=dev)
            return torch.sigmoid(self.selection_(u, i)).cpu().numpy()
