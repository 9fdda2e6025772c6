"""Exposure propensities for unbiased learning from missing-not-at-random implicit feedback.

A click needs an exposure: ``Y_ui = O_ui * R_ui`` with ``O_ui ~ Bernoulli(theta_ui)`` (the
exposure *propensity*) independent of ``R_ui ~ Bernoulli(gamma_ui)`` (relevance), so
``P(Y_ui = 1) = theta_ui * gamma_ui`` (Saito et al., "Unbiased Recommender Learning from
Missing-Not-At-Random Implicit Feedback", WSDM 2020, Sec. 3). The unbiased losses of
:mod:`recsampling.samplers.mnar` divide clicks by ``theta``; this module says where ``theta``
comes from and how it is kept away from zero.

Sources
-------
- **Relative item popularity** (:func:`popularity_propensity`), the estimate of the paper's
  real-data experiments: ``theta_i = (n_i / max_j n_j) ** eta`` with ``n_i`` the number of
  training positives of item ``i`` and ``eta = 0.5``.
- **Given with the data**: the ``propensities`` column of an
  :class:`~recsampling.data.Interactions` (one value per stored click, e.g. the synthetic
  world's true exposure of each click), a per-item array of shape ``(n_items,)``, or a
  per-pair (user x item) array of shape ``(n_users, n_items)`` such as the synthetic world's
  ``exposure`` matrix.

Only the propensities *of the observed clicks* are ever needed: in both estimators an
unobserved pair (``Y = 0``) carries no ``1/theta`` factor. :func:`click_propensities` therefore
resolves any source into one value per stored interaction, aligned with ``train.matrix.data``.

Clipping
--------
:func:`clip_propensities` returns ``max(theta, M)`` (the paper's clipped estimator, Sec. 4.3).
``M = 0.1`` is the default everywhere in the package (``clip=0.1``), which bounds the inverse
weight at ``1/M = 10`` and the (negative) weight ``1 - Y/theta`` of a click's ``delta0`` term at
``1 - 1/M = -9``. ``clip=None`` turns clipping off (the exactly unbiased, high-variance
estimator); a zero propensity is then an error.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsampling._utils import check_number
from recsampling.data.interactions import Interactions

__all__ = [
    "popularity_propensity",
    "clip_propensities",
    "click_propensities",
    "DEFAULT_CLIP",
]

DEFAULT_CLIP = 0.1


def popularity_propensity(train: Interactions, eta: float = 0.5) -> np.ndarray:
    """Relative item popularity ``theta_i = (n_i / max_j n_j) ** eta`` from training positives.

    Parameters
    ----------
    train : Interactions
        The training clicks; every stored interaction counts as one positive (apply
        ``Interactions.to_implicit(4)`` first to count only ratings >= 4).
    eta : float, default 0.5
        The exponent (0.5 in Saito et al., WSDM 2020). ``eta = 0`` gives 1 for every item
        that has a click (no correction); larger ``eta`` corrects more strongly.

    Returns
    -------
    numpy.ndarray of float64, shape (n_items,)
        Values in [0, 1]; 0 for items without a training positive (clip before dividing).

    Raises
    ------
    ValueError
        If ``eta`` is negative or not finite, or ``train`` has no interactions.
    """
    if not isinstance(train, Interactions):
        raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
    eta = check_number(eta, "eta", 0.0)
    counts = train.item_counts().astype(np.float64)
    top = counts.max() if counts.size else 0.0
    if top <= 0:
        raise ValueError("popularity propensities need at least one training interaction")
    rel = counts / top
    out = np.where(rel > 0, rel ** eta, 0.0)
    return out


def clip_propensities(theta, clip: float | None = DEFAULT_CLIP) -> np.ndarray:
    """Clip propensities from below: ``max(theta, clip)`` (Saito et al., WSDM 2020, Sec. 4.3).

    Parameters
    ----------
    theta : array-like of float
        Propensities in [0, 1].
    clip : float in (0, 1] or None, default 0.1
        The lower bound ``M``. None keeps ``theta`` as is, which then must be > 0.

    Returns
    -------
    numpy.ndarray of float64
        Same shape as ``theta``, every value in ``[clip, 1]`` (or ``(0, 1]`` without clipping).

    Raises
    ------
    ValueError
        If ``clip`` is outside (0, 1], ``theta`` has values outside [0, 1] or non-finite ones,
        or (without clipping) a zero propensity.
    """
    arr = np.asarray(theta, dtype=np.float64)
    _check_range(arr, "propensities")
    if clip is None:
        if arr.size and arr.min() <= 0:
            raise ValueError(
                "a propensity is 0 and clipping is off (clip=None): 1/theta is infinite; "
                "pass clip=M with 0 < M <= 1 (default 0.1)"
            )
        return arr.copy()
    clip = float(clip)
    if not (0 < clip <= 1):
        raise ValueError(f"clip must be in (0, 1] (or None to turn clipping off), got {clip}")
    return np.maximum(arr, clip)


def click_propensities(
    train: Interactions,
    propensities=None,
    eta: float = 0.5,
) -> np.ndarray:
    """The propensity of every stored click of ``train``, aligned with ``train.matrix.data``.

    Parameters
    ----------
    train : Interactions
        The training clicks.
    propensities : None, "popularity", "data", array-like or scipy sparse matrix
        Where ``theta`` comes from:

        - ``None`` (auto): the ``propensities`` column of ``train`` when it has one, else
          ``"popularity"``;
        - ``"popularity"``: :func:`popularity_propensity` with exponent ``eta``;
        - ``"data"``: the ``propensities`` column of ``train`` (an error when absent);
        - an array of shape ``(n_items,)``: one propensity per item;
        - an array or sparse matrix of shape ``(n_users, n_items)``: per pair (user x item),
          e.g. the synthetic world's true ``exposure``; only the entries at clicks are read.
        - the literal ``1`` / ``1.0``: every propensity is 1 (the naive loss).
    eta : float, default 0.5
        Exponent of the popularity estimate.

    Returns
    -------
    numpy.ndarray of float64, shape (train.nnz,)
        Unclipped values in [0, 1]; pass them through :func:`clip_propensities`.

    Raises
    ------
    ValueError
        For an unknown source name, a missing column, an array of another shape, or values
        outside [0, 1].
    """
    if not isinstance(train, Interactions):
        raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
    items = train.item_index()
    if propensities is None:
        propensities = (_Data if train.propensities is not None else _Popularity).name
    if isinstance(propensities, str):
        source = _SOURCES.get(propensities)
        if source is None:
            raise ValueError(
                f"unknown propensity source {propensities!r}; expected None, "
                f"{', '.join(repr(name) for name in _SOURCES)}, an (n_items,) or (n_users, n_items) array"
            )
        out = source.clicks(train, eta)
    elif isinstance(propensities, (int, float, np.integer, np.floating)) and not isinstance(propensities, bool):
        value = float(propensities)
        out = np.full(train.nnz, value)
    elif sp.issparse(propensities):
        if propensities.shape != train.shape:
            raise ValueError(
                f"a sparse per-pair propensity matrix must have shape {train.shape} (users x items), "
                f"got {propensities.shape}"
            )
        m = sp.csr_matrix(propensities)
        out = np.asarray(m[train.user_index(), items], dtype=np.float64).ravel()
    else:
        arr = np.asarray(propensities, dtype=np.float64)
        if arr.ndim == 1 and arr.shape[0] == train.n_items:
            out = arr[items]
        elif arr.ndim == 2 and arr.shape == train.shape:
            out = arr[train.user_index(), items]
        else:
            raise ValueError(
                f"propensities must have shape ({train.n_items},) (per item) or {train.shape} "
                f"(per user x item pair), got {arr.shape}"
            )
    _check_range(out, "propensities")
    return out


class _Popularity:
    """The relative item popularity estimate (:func:`popularity_propensity`)."""

    name = "popularity"

    def clicks(self, train: Interactions, eta: float) -> np.ndarray:
        """The estimate at every stored click of ``train``."""
        return popularity_propensity(train, eta)[train.item_index()]


class _Data:
    """The ``propensities`` column of the training data."""

    name = "data"

    def clicks(self, train: Interactions, eta: float) -> np.ndarray:
        """A copy of ``train.propensities`` (a ``ValueError`` when the column is absent)."""
        if train.propensities is None:
            raise ValueError(
                f"propensities={self.name!r} needs an Interactions with a 'propensities' column, and "
                f"this one has none; use {_Popularity.name!r} or pass an array"
            )
        return np.asarray(train.propensities, dtype=np.float64).copy()


#: the named propensity sources of :func:`click_propensities`, each under its own name
_SOURCES = {source.name: source for source in (_Popularity(), _Data())}


def _check_range(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} must be finite, found {arr.ravel()[np.flatnonzero(bad.ravel())[0]]}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must lie in [0, 1] (probabilities of exposure), found values in [{lo}, {hi}]")
