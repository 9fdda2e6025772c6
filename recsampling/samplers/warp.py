r"""WARP: misranked negatives weighted by the estimated rank of the positive (WSABIE).

Paper
-----
J. Weston, S. Bengio, N. Usunier, "WSABIE: Scaling Up to Large Vocabulary Image Annotation",
IJCAI 2011. LensKit's FlexMF offers the same strategy (``loss="warp"``: draw until a misranked
item is found, weight by the rank estimate).

The loss
--------
WARP minimizes a rank-weighted pairwise loss (Weston et al., eq. 3)::

    (1)  err(f(x), y) = L(rank_y(f(x))),   L(k) = Σ_{j=1..k} α_j,  α_j = 1/j

For a training pair (u, i), uniform unobserved items j are drawn until one *violates* the
margin, ``x̂_uj > x̂_ui − margin``; if that took ``N`` draws the rank of i is estimated as
(Sec. 3.2)::

    (2)  rank ≈ ⌊(Y − 1) / N⌋,   Y = the number of items

and the pair (i, j) contributes ``L(⌊(Y − 1)/N⌋) · |margin − x̂_ui + x̂_uj|₊`` (eq. 4, the hinge),
or with ``pair_loss="logistic"`` the BPR term ``−ln σ(x̂_ui − x̂_uj)`` in place of the hinge. A row
whose ``n_candidates`` draws hold no violator contributes nothing (Weston et al. stop after
``Y − 1`` draws; the cap trades exactness of (2) for a bounded batch).

Vectorized, not sequential: each row draws all ``n_candidates`` candidates at once (exact
rejection of the user's positives), the current model scores the (B, 1 + N) block, and the
first violator of each row is its negative with ``N`` = its column. The weight is divided by
``L(Y − 1)`` (a constant), so weights lie in (0, 1] and ``lr`` means what it means for BPR.
The selection and the weight take no gradient.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recsampling._utils import check_int, check_number
from recsampling.samplers.base import Batch, register
from recsampling.samplers.negatives import _PairwiseSampler

__all__ = ["WARPSampler", "warp_weights"]

_LOSSES = ("hinge", "logistic")


def warp_weights(pos: Tensor, cand: Tensor, n_items: int, margin: float, valid: Tensor | None = None
                 ) -> tuple[Tensor, Tensor]:
    """The first violator of each row and its rank weight ``L(⌊(Y−1)/N⌋) / L(Y−1)`` (eqs. 1-2).

    Parameters
    ----------
    pos : Tensor (B, 1)
        Scores of the positives.
    cand : Tensor (B, N)
        Scores of the candidates, in draw order.
    n_items : int
        ``Y``.
    margin : float
    valid : bool Tensor (B, N), optional
        False: a padded candidate (never a violator).

    Returns
    -------
    first : int64 Tensor (B,)
        Column of the first violator (0 where there is none).
    weight : float Tensor (B,)
        Its normalized rank weight, 0 for a row without a violator.
    """
    viol = cand.detach() > pos.detach() - margin
    if valid is not None:
        viol &= valid
    found = viol.any(dim=1)
    first = viol.to(torch.int8).argmax(dim=1)  # the first True of each row
    n_trials = (first + 1).to(torch.float64)
    rank = torch.floor((n_items - 1) / n_trials)
    # L(k) = H_k, the k-th harmonic number: digamma(k + 1) + γ exactly
    harmonic = torch.special.digamma(rank + 1) + np.euler_gamma
    top = float(torch.special.digamma(torch.tensor(float(n_items), dtype=torch.float64)) + np.euler_gamma)
    weight = torch.where(found, harmonic / top, torch.zeros_like(harmonic)).to(cand.dtype)
    return first, weight


@register("warp")
class WARPSampler(_PairwiseSampler):
    """WARP (Weston et al., IJCAI 2011): the first of ``n_candidates`` uniform draws that violates the margin.

    Parameters
    ----------
    n_candidates : int, default 20
        The most draws per positive (LensKit draws up to 200 one at a time; here they are one
        vectorized block, so the cap bounds the batch).
    margin : float, default 1.0
        A candidate j violates when ``x̂_uj > x̂_ui − margin``.
    pair_loss : {"hinge", "logistic"}, default "hinge"
        The pair term: WSABIE's ``|margin − x̂_ui + x̂_uj|₊`` or BPR's ``−ln σ(x̂_ui − x̂_uj)``.
    collision : {"redraw", "skip"}, default "redraw"
        As for ``bpr``.

    Notes
    -----
    The batch's ``items`` is (B, 1 + n_candidates): the positive and every candidate; the
    selection of the violator happens in :meth:`loss` with the current model.
    """

    demo_params = {"n_candidates": 20}

    def __init__(self, n_candidates: int = 20, margin: float = 1.0, pair_loss: str = "hinge",
                 collision: str = "redraw"):
        super().__init__(n_negatives=1, collision=collision)
        self.n_candidates = n_candidates
        self.margin = margin
        self.pair_loss = pair_loss

    @classmethod
    def search_space(cls, trial) -> dict:
        return {"n_candidates": trial.suggest_categorical("n_candidates", (10, 20, 50)),
                "margin": trial.suggest_float("margin", 0.1, 1.0)}

    def _k(self) -> int:
        return int(self.n_candidates)

    def _validate(self) -> None:
        super()._validate()
        check_int(self.n_candidates, "n_candidates")
        check_number(self.margin, "margin", 0.0)
        if self.pair_loss not in _LOSSES:
            raise ValueError(f"pair_loss must be one of {_LOSSES}, got {self.pair_loss!r}")

    def _select(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        s = model.score(batch.users, batch.items)
        valid = None if batch.mask is None else batch.mask[:, 1:]
        first, weight = warp_weights(s[:, :1], s[:, 1:], self.train_.n_items, float(self.margin), valid)
        return s, first, weight

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        s, first, weight = self._select(model, batch)
        neg = s[:, 1:].gather(1, first[:, None]).squeeze(1)
        diff = s[:, 0] - neg
        term = F.relu(float(self.margin) - diff) if self.pair_loss == "hinge" else -F.logsigmoid(diff)
        return (weight * term).mean()

    def negative_weights(self, model: nn.Module, batch: Batch) -> Tensor:
        """(B, L) weight of each entry as a negative in the loss: the rank weight on each row's violator."""
        with torch.no_grad():
            s, first, weight = self._select(model, batch)
            out = torch.zeros_like(s)
            out[:, 1:].scatter_(1, first[:, None], weight[:, None])
        return out
