"""The embedded synthetic world: MovieLens-shaped implicit feedback whose truth is known.

:func:`make_world` draws a seeded, semi-synthetic world (by default 943 users × 1,682 items and
about 100,000 observed clicks, the shape of MovieLens 100K) in which every quantity that real
data hide is known, so that the toolkit can check that an "unbiased" estimator is unbiased, that a
learned propensity is right and that a noise-robust loss finds the hidden positives.

The generative model
--------------------
Notation: users ``u``, items ``i``, ``k`` latent factors, ``σ`` the logistic function.

1. **Relevance** (the probability that ``u`` likes ``i``, "γ" in Saito et al. 2020, "r" in Ai
   et al. 2018)::

       U_u, V_i ~ N(0, I_k / sqrt(k))            (so that U_u·V_i has variance ≈ 1)
       q_i      ~ N(0, quality_std²)               (item quality)
       relevance[u, i] = σ(relevance_scale · U_u·V_i + q_i + b)

   with the offset ``b`` solved so that the mean relevance over all pairs is ``relevance_rate``
   (over every pair of a small world; over a uniform sample of pairs, :data:`_CALIBRATION_PAIRS`
   of them, in a larger one).

2. **Popularity** is a long tail: item ``i`` at popularity rank ``ρ_i`` (1 = most popular) has
   ``item_popularity[i] = ρ_i^(-popularity_exponent)`` (so the most popular item has 1). The
   ranks are drawn so that popularity correlates with quality (Spearman ≈
   ``popularity_quality_corr``), as in real catalogues.

3. **Exposure** (missing-not-at-random, popularity-driven; the propensity θ_ui of Saito et al.
   2020)::

       a_u ~ LogNormal(0, user_activity_sigma²), normalized to mean 1   (user activity)
       exposure[u, i] = clip(s · a_u · item_popularity[i]^exposure_eta, min_exposure, 1)

   ``exposure_eta`` is the MNAR strength: 0 gives exposure that does not depend on the item
   (missing at random up to the user's activity); larger values concentrate exposure on popular
   items. The scale ``s`` is solved so that the expected number of clicks
   ``Σ_ui exposure·relevance`` equals ``target_interactions`` (on the same sample of pairs as the
   relevance offset).

4. **Clicks** ``Y_ui = O_ui · R_ui`` with ``O ~ Bernoulli(exposure)`` and
   ``R ~ Bernoulli(relevance)`` independent, i.e. ``Y_ui ~ Bernoulli(exposure · relevance)``;
   these are :attr:`SyntheticWorld.true_positives`. Each click carries its true exposure
   propensity (the ``propensities`` column) and a random timestamp (uniform over the time span of
   MovieLens 100K), so temporal splits work.

5. **Label noise** (the setting of Yu & Qin 2020, NBPO): with ``label_noise = ρ > 0`` a true
   positive is hidden (becomes unobserved) with probability::

       w_u, w_i ~ LogNormal(0, noise_heterogeneity²), normalized to mean 1
       noise_rate[u, i] = clip(c · w_u · w_i, 0, 1)

   with ``c`` solved so that the noise rates of the drawn true positives sum to ``ρ`` times their
   number: the expected hidden fraction is exactly ``ρ``. :attr:`SyntheticWorld.clicks` are the
   true positives that were not hidden, :attr:`SyntheticWorld.hidden_positives` the others.
   :attr:`SyntheticWorld.user_noise_rate` and :attr:`SyntheticWorld.item_noise_rate` are the
   expected hidden fraction of a user's / an item's true positives (the truth a learned flip rate
   is compared with); :meth:`SyntheticWorld.noise_rate` gives the per-pair matrix. The hiding
   draws are coupled across ``ρ`` (one uniform per pair), so for one seed the hidden sets are
   nested as ``ρ`` grows and everything else stays the same. This is ``label_noise_model="clicks"``
   (the default): the hidden positives are a thinning of the clicks, so they sit where the clicks
   are (popular, well-exposed items, active users) and make up only ``ρ · clicks / unvoted`` of the
   unvoted pool (a few percent in a MovieLens-shaped world).

   ``label_noise_model="liked"`` is the noise NBPO's flip model describes (Yu & Qin 2020: a user
   may like some of her unvoted items, positives mislabeled as negatives, Eq. (2) of
   ``recsampling/samplers/nbpo.py``), applied to a truth that does not move with ``ρ``, so that a
   larger ``ρ`` means noisier training labels of the *same* preferences. The truth
   (:attr:`SyntheticWorld.true_positives`) is the clicks plus a fixed set ``E`` of liked but
   unexposed pairs: a pair that is not a click joins ``E`` with probability::

       β · relevance[u, i] (1 − exposure[u, i]) / (1 − relevance[u, i] · exposure[u, i])

   (the world's own ``P(liked | not clicked)``, uniformly thinned by ``β`` so that
   ``E[|E|] = liked_unexposed · clicks``). Then a share ``ρ`` of the truth is hidden::

       P(hidden_ui) = min(c · w_u · w_i · (1 − exposure[u, i]), 1)

   with the heterogeneity factors above and ``c`` solved so that the expected hidden share of the
   truth is exactly ``ρ``. The factor ``1 − exposure`` puts the hidden likes on rarely shown items:
   on the long tail, where a uniform negative sampler draws, not on the popular items the clicks
   sit on. :attr:`SyntheticWorld.clicks` are the truth minus the hidden pairs; at ``ρ = 0`` they
   are the whole truth. ``E`` and the hiding uniforms (one per truth pair) do not depend on ``ρ``,
   so for one seed the truth is the same at every ``ρ`` and the hidden sets are nested.
   :attr:`SyntheticWorld.user_noise_rate` / ``item_noise_rate`` are the expected hidden fraction
   of a user's / an item's truth (the flip rate ``P(ỹ = 0 | y = 1)``), :meth:`SyntheticWorld.noise_rate`
   the per-pair ``P(hidden)``. Drawing ``E`` visits every pair (time ``O(n_users · n_items)``), so
   this model is offered for worlds of at most :data:`DENSE_MAX_PAIRS` pairs.

6. **Logged ranked lists** (the setting of Ai et al. 2018, DLA): for each list a user (uniform),
   ``log_candidates`` distinct items drawn uniformly, ranked by a noisy logging ranker
   ``score + logging_noise · N(0, 1)``, where ``score`` is ``logit(relevance)``
   (``logging_ranker="relevance"``) or a weak logistic-regression ranker over the side features
   fitted to ``logging_labels`` labelled pairs (``logging_ranker="linear"``, like the production
   ranker of Ai et al.); the top ``list_length`` are shown at positions
   ``k = 1..L``. The position-based examination propensity is ``θ_k = (1/k)^position_eta``
   (:attr:`LoggedLists.position_propensity`) and a click is ``examined · relevant`` with
   ``examined ~ Bernoulli(θ_k)`` and ``relevant ~ Bernoulli(relevance)``. The examination draws
   are coupled across ``position_eta``.

7. **Unbiased test set** (like Coat and Yahoo! R3): every user gets ``n_test_items`` distinct
   items drawn uniformly at random (exposed with probability 1), labelled by a fresh
   ``Bernoulli(relevance)`` draw, without label noise.

8. **Side features** for a two-tower model: ``user_features = standardize(U W_u + ε)``,
   ``item_features = standardize([V, q] W_i + ε)`` with random projections ``W`` and Gaussian
   noise of standard deviation ``feature_noise``.

Every part draws from its own child of the one random generator, so changing one part's
parameters (the noise rate, the number of logged lists, ``position_eta``) leaves the other parts
of the world unchanged for the same ``random_state``.

Memory and time: the truth on demand
------------------------------------
The world keeps only the factors (``U``, ``V``, ``q``, ``b``, ``a_u``, the per-item exposure
factor), never a dense users × items array, so an ML-20M-shaped world (138,493 × 26,744 =
3.7 billion pairs, 20 million clicks) builds in a few GiB. :meth:`SyntheticWorld.relevance_of`
and :meth:`SyntheticWorld.exposure_of` compute the truth of given pairs (or of a block of users'
rows) from the factors, with one float32 expression shared by every path, so the ``propensities``
of the clicks, the relevance of the logged lists and the dense arrays agree bit for bit. The
dense :attr:`SyntheticWorld.relevance` / :attr:`SyntheticWorld.exposure` (and
:meth:`~SyntheticWorld.click_probability`, :meth:`~SyntheticWorld.noise_rate`) are built on first
use for worlds of at most :data:`DENSE_MAX_PAIRS` pairs and refuse larger ones.

The clicks are drawn per block of users in a numba kernel without visiting every pair: in
popularity order a user's exposure never increases, so the exposure draws ``O ~ Bernoulli(θ)``
are a thinned Bernoulli process. From position ``j`` the next candidate lies a
``Geometric(θ_j)`` number of items further; a candidate ``i`` is a click with probability
``(θ_i / θ_j) · relevance[u, i]``. Each item is then a candidate with probability ``θ_j`` and a
click with probability ``θ_i · relevance[u, i]``, exactly the model, at a cost proportional to
the exposed pairs (about ``Σ exposure``), not to ``n_users × n_items``. The random numbers are
splitmix64 streams, one per user, seeded from the clicks' generator: the clicks do not depend on
the block size or the number of threads. Label noise's per-user and per-item rates (and
:meth:`~SyntheticWorld.expected_clicks`) are sums over all pairs: one parallel pass of time
``O(n_users · n_items)`` and memory ``O(n_users + n_items)``.

References
----------
Saito, Yaginuma, Nishino, Sakata, Nakata. "Unbiased Recommender Learning from Missing-Not-At-Random
Implicit Feedback". WSDM 2020 (clicks = exposure × relevance, Eq. 1-2).
Yu, Qin. "Sampler Design for Implicit Feedback Data by Noisy-label Robust Learning". SIGIR 2020.
Ai, Bi, Luo, Guo, Croft. "Unbiased Learning to Rank with Unbiased Propensity Estimation".
SIGIR 2018 (position-based examination, c = o · r).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.optimize import brentq
from scipy.special import expit

from recsampling._utils import RandomState, check_int, check_number, check_random_state
from recsampling.data.interactions import Interactions
from recsampling.fast.draws import _GOLDEN, _mix

__all__ = ["DENSE_MAX_PAIRS", "SyntheticWorld", "LoggedLists", "make_world"]

logger = logging.getLogger(__name__)

# the time span of MovieLens 100K (unix seconds), used for the random timestamps
_T0, _T1 = 874_724_710, 893_286_638
#: Most pairs (``n_users * n_items``) for which the dense truth arrays are built (512 MiB of float32).
DENSE_MAX_PAIRS = 1 << 27
# calibration uses every pair of a world with at most this many pairs, else this many sampled pairs
_CALIBRATION_PAIRS = 2_000_000
# the relevance offset is solved on at most this many of them (a rate: a subsample is plenty)
_OFFSET_PAIRS = 300_000
# the click draw: users per block, and slots per user in its workspace (a user with more clicks is
# drawn again into a buffer of its size): 8192 x 1024 int32 = 32 MiB
_BLOCK_USERS = 8192
_CLICK_CAP = 1024
# logged lists per block (bounds the candidate arrays)
_LOG_BLOCK = 1 << 16
# chunks of users in the pass over all pairs (fixed, so that its sums do not depend on the threads)
_SUM_CHUNKS = 32
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


def _readonly(*arrays) -> None:
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False


# ---------------------------------------------------------------------------- the truth, on demand
@numba.njit(nogil=True, cache=True, inline="always")
def _logit_at(U, V, quality, scale, u, i):
    """``scale · U_u·V_i + q_i`` in float32, the one expression every path evaluates."""
    s = np.float32(0.0)
    for f in range(U.shape[1]):
        s += U[u, f] * V[i, f]
    return scale * s + quality[i]


@numba.njit(nogil=True, cache=True, inline="always")
def _relevance_at(U, V, quality, scale, offset, u, i):
    x = _logit_at(U, V, quality, scale, u, i) + offset
    return np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-x)))


@numba.njit(nogil=True, cache=True, inline="always")
def _exposure_at(activity, item_exposure, min_exposure, u, i):
    return min(max(activity[u] * item_exposure[i], min_exposure), np.float32(1.0))


@numba.njit(nogil=True, parallel=True, cache=True)
def _logit_pairs(U, V, quality, scale, users, items):  # pragma: no cover - compiled
    out = np.empty(users.shape[0], dtype=np.float32)
    for t in numba.prange(users.shape[0]):
        out[t] = _logit_at(U, V, quality, scale, users[t], items[t])
    return out


@numba.njit(nogil=True, parallel=True, cache=True)
def _relevance_pairs(U, V, quality, scale, offset, users, items):  # pragma: no cover - compiled
    out = np.empty(users.shape[0], dtype=np.float32)
    for t in numba.prange(users.shape[0]):
        out[t] = _relevance_at(U, V, quality, scale, offset, users[t], items[t])
    return out


@numba.njit(nogil=True, parallel=True, cache=True)
def _relevance_rows(U, V, quality, scale, offset, users):  # pragma: no cover - compiled
    out = np.empty((users.shape[0], V.shape[0]), dtype=np.float32)
    for r in numba.prange(users.shape[0]):
        for i in range(V.shape[0]):
            out[r, i] = _relevance_at(U, V, quality, scale, offset, users[r], i)
    return out


@numba.njit(nogil=True, cache=True)
def _user_clicks(U, V, quality, scale, offset, activity, item_exposure, min_exposure, by_exposure, key, u, out
                 ):  # pragma: no cover - compiled
    """Draw user ``u``'s true positives into ``out`` (as many as fit); returns how many there are.

    Thinning (module docstring): ``by_exposure`` lists the items by non-increasing exposure
    factor, so the exposure at the current position bounds every later one. The user's random
    stream depends on ``key`` and ``u`` only, so a second call draws the same items.
    """
    n_items = by_exposure.shape[0]
    state = _mix(key + np.uint64(u) * _GOLDEN)
    c = 0
    pos = 0
    while pos < n_items:
        bound = _exposure_at(activity, item_exposure, min_exposure, u, by_exposure[pos])
        if bound < 1.0:  # skip a Geometric(bound) number of items
            state += _GOLDEN
            v = np.float64((_mix(state) >> _S11) + np.uint64(1)) * _INV53  # in (0, 1]
            skip = math.floor(math.log(v) / math.log1p(-np.float64(bound)))
            if skip >= n_items - pos:
                break
            pos += np.int64(skip)
        i = by_exposure[pos]
        p = np.float64(_exposure_at(activity, item_exposure, min_exposure, u, i)) * _relevance_at(
            U, V, quality, scale, offset, u, i)
        state += _GOLDEN
        if np.float64(_mix(state) >> _S11) * _INV53 * bound < p:  # candidate kept w.p. θ_i / bound, then relevant
            if c < out.shape[0]:
                out[c] = i
            c += 1
        pos += 1
    return c


@numba.njit(nogil=True, parallel=True, cache=True)
def _draw_clicks(U, V, quality, scale, offset, activity, item_exposure, min_exposure, by_exposure, key, u0, u1,
                 cap):  # pragma: no cover - compiled
    """True positives of users ``u0 .. u1-1``: (users, items), int64, by user (items in exposure order).

    Each user writes into a row of ``cap`` slots; the few users with more clicks are drawn again
    (the same stream) into a buffer of their size.
    """
    n = u1 - u0
    buf = np.empty((n, cap), dtype=np.int32)
    count = np.empty(n, dtype=np.int64)
    for r in numba.prange(n):
        count[r] = _user_clicks(U, V, quality, scale, offset, activity, item_exposure, min_exposure, by_exposure,
                                key, u0 + r, buf[r])
    total = 0
    for r in range(n):
        total += count[r]
    users = np.empty(total, dtype=np.int64)
    items = np.empty(total, dtype=np.int64)
    k = 0
    for r in range(n):
        c = count[r]
        row = buf[r]
        if c > cap:
            row = np.empty(c, dtype=np.int32)
            _user_clicks(U, V, quality, scale, offset, activity, item_exposure, min_exposure, by_exposure, key,
                         u0 + r, row)
        for t in range(c):
            users[k] = u0 + r
            items[k] = row[t]
            k += 1
    return users, items


@numba.njit(nogil=True, parallel=True, cache=True)
def _pair_sums(U, V, quality, scale, offset, activity, item_exposure, min_exposure, w_user, w_item, noise_scale,
               n_chunks):  # pragma: no cover - compiled
    """Sums over all pairs, with ``p = exposure·relevance`` and ``h = min(c w_u w_i, 1)·p``.

    Returns per user (n_users, 3): ``Σ_i p``, ``Σ_i relevance``, ``Σ_i h``; per chunk of users
    and item (n_chunks, 2, n_items): ``Σ_u p``, ``Σ_u h`` (the caller sums over the chunks).
    """
    n_users = U.shape[0]
    n_items = V.shape[0]
    user = np.zeros((n_users, 3))
    item = np.zeros((n_chunks, 2, n_items))
    for ch in numba.prange(n_chunks):
        for u in range(ch * n_users // n_chunks, (ch + 1) * n_users // n_chunks):
            sp = 0.0
            sr = 0.0
            sh = 0.0
            for i in range(n_items):
                r = np.float64(_relevance_at(U, V, quality, scale, offset, u, i))
                p = np.float64(_exposure_at(activity, item_exposure, min_exposure, u, i)) * r
                h = min(noise_scale * w_user[u] * w_item[i], 1.0) * p
                sp += p
                sr += r
                sh += h
                item[ch, 0, i] += p
                item[ch, 1, i] += h
            user[u, 0] = sp
            user[u, 1] = sr
            user[u, 2] = sh
    return user, item


@dataclass(frozen=True, eq=False)
class _Truth:
    """The latent truth of a world and the one implementation of relevance and exposure from it.

    Indices are trusted (int64, in range): :class:`SyntheticWorld` validates at its edge.
    """

    user_factors: np.ndarray    # U, float32 (n_users, k)
    item_factors: np.ndarray    # V, float32 (n_items, k)
    item_quality: np.ndarray    # q, float32 (n_items,)
    scale: np.float32           # relevance_scale
    offset: np.float32          # b
    user_activity: np.ndarray   # a_u, float32 (n_users,)
    item_exposure: np.ndarray   # s · popularity^eta, float32 (n_items,)
    min_exposure: np.float32

    def relevance(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """float32 relevance of pairs (``items`` broadcast with ``users``), or rows when ``items`` is None."""
        U, V, q = self.user_factors, self.item_factors, self.item_quality
        if items is None:
            return _relevance_rows(U, V, q, self.scale, self.offset, np.ascontiguousarray(users, dtype=np.int64))
        u, i = np.broadcast_arrays(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))
        out = _relevance_pairs(U, V, q, self.scale, self.offset, np.ascontiguousarray(u).ravel(),
                               np.ascontiguousarray(i).ravel())
        return out.reshape(u.shape)

    def exposure(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """float32 exposure ``clip(a_u · item_exposure_i, min_exposure, 1)``, like :meth:`relevance`."""
        a = self.user_activity[np.asarray(users, dtype=np.int64)]
        f = self.item_exposure[None, :] if items is None else self.item_exposure[np.asarray(items, dtype=np.int64)]
        e = (a[:, None] if items is None else a) * f
        return np.clip(e, self.min_exposure, np.float32(1.0), out=e)

    def draw_clicks(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """All true positives ``Y ~ Bernoulli(exposure · relevance)``: (users, items) int64, grouped by user."""
        n_users, n_items = self.user_factors.shape[0], self.item_factors.shape[0]
        key = np.uint64(rng.integers(0, 2**63, dtype=np.int64))
        by_exposure = np.argsort(-self.item_exposure, kind="stable").astype(np.int64)
        parts = [_draw_clicks(self.user_factors, self.item_factors, self.item_quality, self.scale, self.offset,
                              self.user_activity, self.item_exposure, self.min_exposure, by_exposure, key, s,
                              min(s + _BLOCK_USERS, n_users), min(_CLICK_CAP, n_items))
                 for s in range(0, n_users, _BLOCK_USERS)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def pair_sums(self, w_user: np.ndarray, w_item: np.ndarray, noise_scale: float
                  ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_pair_sums` over all pairs: per user (n_users, 3), per item (n_items, 2), float64."""
        user, item = _pair_sums(self.user_factors, self.item_factors, self.item_quality, self.scale, self.offset,
                                self.user_activity, self.item_exposure, self.min_exposure,
                                w_user.astype(np.float64), w_item.astype(np.float64), float(noise_scale),
                                min(_SUM_CHUNKS, max(1, self.user_factors.shape[0])))
        return user, item.sum(axis=0).T


def _mean_clipped(activity: np.ndarray, factor: np.ndarray, low: float) -> np.ndarray:
    """``mean_u clip(a_u · f_i, low, 1)`` for every item, exactly, from the sorted ``a`` (float32)."""
    a = np.sort(activity.astype(np.float64))
    cum = np.concatenate([[0.0], np.cumsum(a)])
    f = factor.astype(np.float64)
    with np.errstate(divide="ignore"):
        n_low = np.searchsorted(a, np.where(f > 0, low / f, np.inf), side="left")   # a_u f_i < low
        n_mid_end = np.searchsorted(a, np.where(f > 0, 1.0 / f, np.inf), side="right")  # a_u f_i <= 1
    n = a.size
    total = low * n_low + f * (cum[n_mid_end] - cum[n_low]) + (n - n_mid_end)
    return (total / n).astype(np.float32)


@dataclass(frozen=True, eq=False)
class LoggedLists:
    """Logged ranked impression lists with position-based clicks (for learning to rank / DLA).

    Row ``n`` is one list shown to user ``users[n]``: ``items[n, k]`` was shown at position
    ``k + 1`` and ``clicks[n, k]`` says whether it was clicked.

    Attributes
    ----------
    users : numpy.ndarray
        int64, shape (n_lists,).
    items : numpy.ndarray
        int64, shape (n_lists, L): item indices in shown order (position 1 first).
    clicks : numpy.ndarray
        int8 0/1, shape (n_lists, L).
    relevance : numpy.ndarray
        float32, shape (n_lists, L): the true relevance probability of each shown item.
    examined : numpy.ndarray
        bool, shape (n_lists, L): the examination draw (truth; a click needs it).
    relevant : numpy.ndarray
        bool, shape (n_lists, L): the relevance draw (truth; ``clicks == examined & relevant``).
    position_propensity : numpy.ndarray
        float32, shape (L,): ``θ_k = (1/k)^position_eta`` for k = 1..L.
    """

    users: np.ndarray
    items: np.ndarray
    clicks: np.ndarray
    relevance: np.ndarray
    examined: np.ndarray
    relevant: np.ndarray
    position_propensity: np.ndarray

    def __post_init__(self):
        _readonly(self.users, self.items, self.clicks, self.relevance, self.examined, self.relevant,
                  self.position_propensity)

    @property
    def n_lists(self) -> int:
        return int(self.items.shape[0])

    @property
    def list_length(self) -> int:
        return int(self.items.shape[1])

    @property
    def positions(self) -> np.ndarray:
        """1-based positions of the columns, shape (L,)."""
        return np.arange(1, self.list_length + 1)

    def to_dataframe(self) -> pd.DataFrame:
        """Long format: one row per shown item with ``list, user, item, position, click``."""
        n, L = self.items.shape
        return pd.DataFrame({
            "list": np.repeat(np.arange(n), L),
            "user": np.repeat(self.users, L),
            "item": self.items.ravel(),
            "position": np.tile(self.positions, n),
            "click": self.clicks.ravel(),
        })

    def __repr__(self) -> str:
        return (f"<LoggedLists {self.n_lists} lists x {self.list_length} positions, "
                f"{int(self.clicks.sum())} clicks>")


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """A synthetic world with known truth; build it with :func:`make_world`.

    All user / item indices live in one index space: ``0..n_users-1`` and ``0..n_items-1``
    (the raw ids of every Interactions here equal the indices). The truth of any pair comes from
    the factors on demand (:meth:`relevance_of`, :meth:`exposure_of`); the dense arrays
    :attr:`relevance` and :attr:`exposure` exist only for small worlds (module docstring).

    Attributes
    ----------
    clicks : Interactions
        The observed training data: true positives minus the hidden ones. Columns:
        ``propensities`` (the true exposure of each pair), ``timestamps`` (int64 unix seconds);
        no ratings. Carries ``user_features`` / ``item_features``. Without label noise it is the
        same object as ``true_positives``.
    true_positives : Interactions
        All clicks before label noise (``clicks`` ∪ ``hidden_positives``), same columns.
    hidden_positives : Interactions
        The true positives hidden by label noise (empty when ``label_noise == 0``).
    unbiased_test : Interactions
        The positive pairs of the randomized test set (propensity 1).
    unbiased_test_items : numpy.ndarray
        int64, (n_users, n_test_items): each user's uniformly drawn test items (sorted).
    unbiased_test_labels : numpy.ndarray
        int8 0/1, (n_users, n_test_items): their labels (a fresh Bernoulli(relevance) draw).
    logs : LoggedLists
        Logged ranked lists with position-based clicks.
    item_popularity : numpy.ndarray
        float32, (n_items,): the long-tail popularity ``rank^-popularity_exponent`` (max 1).
    item_propensity : numpy.ndarray
        float32, (n_items,): the mean exposure of each item over users.
    user_activity : numpy.ndarray
        float32, (n_users,): the activity factor ``a_u`` (mean 1).
    user_noise_rate, item_noise_rate : numpy.ndarray
        float32, (n_users,) / (n_items,): the expected fraction of a user's / an item's true
        positives that label noise hides (all 0 without label noise).
    user_noise_weight, item_noise_weight : numpy.ndarray
        float32: the factors ``w_u``, ``w_i`` of the per-pair noise rate (see :meth:`noise_rate`).
    noise_scale : float
        The ``c`` of ``noise_rate = clip(c w_u w_i, 0, 1)`` (``label_noise_model="liked"``: of
        ``clip(c w_u w_i (1 − exposure), 0, 1)``, module docstring).
    user_factors, item_factors, item_quality : numpy.ndarray
        The latent truth: ``U`` (n_users, k), ``V`` (n_items, k), ``q`` (n_items,).
    user_features, item_features : numpy.ndarray or None
        float32 (n_users, n_user_features) / (n_items, n_item_features).
    params : dict
        The arguments of :func:`make_world` plus the calibrated ``relevance_offset``,
        ``exposure_scale`` and ``noise_scale``.
    """

    clicks: Interactions
    true_positives: Interactions
    hidden_positives: Interactions
    unbiased_test: Interactions
    unbiased_test_items: np.ndarray
    unbiased_test_labels: np.ndarray
    logs: LoggedLists
    item_popularity: np.ndarray
    item_propensity: np.ndarray
    user_activity: np.ndarray
    user_noise_rate: np.ndarray
    item_noise_rate: np.ndarray
    user_noise_weight: np.ndarray
    item_noise_weight: np.ndarray
    noise_scale: float
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_quality: np.ndarray
    user_features: np.ndarray | None
    item_features: np.ndarray | None
    params: dict = field(default_factory=dict)
    _truth: _Truth | None = field(default=None, repr=False)

    def __post_init__(self):
        if self._truth is None:
            raise ValueError("build a SyntheticWorld with make_world")
        _readonly(self.unbiased_test_items, self.unbiased_test_labels, self.item_popularity, self.item_propensity,
                  self.user_activity, self.user_noise_rate, self.item_noise_rate, self.user_noise_weight,
                  self.item_noise_weight, self.user_factors, self.item_factors, self.item_quality, self.user_features,
                  self.item_features, self._truth.item_exposure)

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def position_propensity(self) -> np.ndarray:
        """``θ_k = (1/k)^position_eta`` for positions 1..L (same as ``logs.position_propensity``)."""
        return self.logs.position_propensity

    @property
    def label_noise(self) -> float:
        return float(self.params.get("label_noise", 0.0))

    @property
    def label_noise_model(self) -> str:
        """``"clicks"`` or ``"liked"``: which label-noise model drew the hidden positives (module docstring)."""
        return str(self.params.get("label_noise_model", "clicks"))

    # ------------------------------------------------------------------ the truth, on demand
    def _indices(self, users, items) -> tuple[np.ndarray, np.ndarray | None]:
        u = _check_index_array(users, self.n_users, "users")
        if items is None:
            if u.ndim != 1:
                raise ValueError(f"users must be one-dimensional when items is None, got shape {u.shape}")
            return u, None
        i = _check_index_array(items, self.n_items, "items")
        try:
            np.broadcast_shapes(u.shape, i.shape)
        except ValueError:
            raise ValueError(f"users and items must broadcast together, got shapes {u.shape} and {i.shape}") from None
        return u, i

    def relevance_of(self, users, items=None) -> np.ndarray:
        """True P(relevant) of (user, item) pairs, computed from the factors.

        Parameters
        ----------
        users : array-like of int
            User indices.
        items : array-like of int, optional
            Item indices, broadcast with ``users`` (e.g. ``users[:, None]`` with an (n, L) array).
            None: every item, i.e. the rows of ``users`` (then ``users`` is one-dimensional; ask
            for a block of users at a time in a large world).

        Returns
        -------
        numpy.ndarray
            float32, the broadcast shape of ``users`` and ``items``, or (len(users), n_items).
        """
        u, i = self._indices(users, items)
        return self._truth.relevance(u, i)

    def exposure_of(self, users, items=None) -> np.ndarray:
        """True P(exposed) of (user, item) pairs, in ``[min_exposure, 1]``; arguments as :meth:`relevance_of`."""
        u, i = self._indices(users, items)
        return self._truth.exposure(u, i)

    def _check_dense(self, what: str) -> None:
        if self.n_users * self.n_items > DENSE_MAX_PAIRS:
            raise ValueError(
                f"{what} is a dense {self.n_users} x {self.n_items} array, more than DENSE_MAX_PAIRS = "
                f"{DENSE_MAX_PAIRS} pairs; use relevance_of / exposure_of (pairs or blocks of users), or pass the "
                "world itself as relevance= to recsampling.evaluation.evaluate")

    @cached_property
    def relevance(self) -> np.ndarray:
        """Dense true P(relevant), float32 (n_users, n_items), read-only; built on first use, small worlds only.

        Raises
        ------
        ValueError
            When the world has more than :data:`DENSE_MAX_PAIRS` pairs (use :meth:`relevance_of`).
        """
        self._check_dense("relevance")
        out = self._truth.relevance(np.arange(self.n_users))
        _readonly(out)
        return out

    @cached_property
    def exposure(self) -> np.ndarray:
        """Dense true P(exposed), float32 (n_users, n_items), in ``[min_exposure, 1]``; as :attr:`relevance`."""
        self._check_dense("exposure")
        out = self._truth.exposure(np.arange(self.n_users))
        _readonly(out)
        return out

    def click_probability(self) -> np.ndarray:
        """``exposure · relevance``, the probability that a pair is a true positive (dense float32, small worlds)."""
        return self.exposure * self.relevance

    @cached_property
    def _sums(self) -> dict:
        user, _ = self._truth.pair_sums(self.user_noise_weight, self.item_noise_weight, 0.0)
        return {"expected_clicks": float(user[:, 0].sum()),
                "mean_relevance": float(user[:, 1].sum() / (self.n_users * self.n_items))}

    def expected_clicks(self) -> float:
        """Expected number of true positives, ``Σ exposure · relevance`` (one pass over all pairs, cached)."""
        return self._sums["expected_clicks"]

    def noise_rate(self) -> np.ndarray:
        """The per-pair probability that a true positive is hidden, (n_users, n_items) float32 (small worlds).

        With ``label_noise_model="liked"``: the probability that a pair of the truth is hidden,
        ``min(c w_u w_i (1 − exposure), 1)`` (on every pair; only the truth's pairs can be hidden).
        """
        self._check_dense("noise_rate()")
        w = (np.float32(self.noise_scale) * self.user_noise_weight[:, None]) * self.item_noise_weight[None, :]
        if self.label_noise_model == "liked":
            w *= np.float32(1.0) - self.exposure
        return np.clip(w, 0.0, 1.0, out=w)

    def test_relevance(self) -> np.ndarray:
        """True relevance of each user's randomized test items, (n_users, n_test_items) float32."""
        return self._truth.relevance(np.arange(self.n_users)[:, None], self.unbiased_test_items)

    def describe(self) -> dict:
        """Plain-number summary (the observed clicks' numbers plus the world's own).

        ``expected_clicks`` and ``mean_relevance`` take one pass over all pairs (cached).
        """
        d = self.clicks.describe()
        d.update({
            "true_positives": int(self.true_positives.nnz),
            "hidden_positives": int(self.hidden_positives.nnz),
            "expected_clicks": self.expected_clicks(),
            "mean_relevance": self._sums["mean_relevance"],
            "mean_exposure": float(self.item_propensity.mean(dtype=np.float64)),
            "label_noise": self.label_noise,
            "logged_lists": self.logs.n_lists,
            "list_length": self.logs.list_length,
            "logged_clicks": int(self.logs.clicks.sum()),
            "test_items_per_user": int(self.unbiased_test_items.shape[1]),
            "test_positives": int(self.unbiased_test.nnz),
        })
        return d

    def __repr__(self) -> str:
        return (f"<SyntheticWorld {self.n_users} users x {self.n_items} items, {self.clicks.nnz} clicks "
                f"({self.hidden_positives.nnz} hidden), {self.logs.n_lists} logged lists, "
                f"{self.unbiased_test_items.shape[1]} test items per user>")

    # ------------------------------------------------------------------ export
    def to_movielens(self, path, fmt: str = "100k") -> Path:
        """Write the observed clicks as a MovieLens release folder that the readers can load.

        Every click becomes a rating of 5; ids are 1-based (index + 1).

        Parameters
        ----------
        path : str or Path
            A folder (created if needed).
        fmt : {"100k", "1m"}
            ``"100k"``: ``u.data`` (``user<TAB>item<TAB>rating<TAB>timestamp``) plus a minimal
            ``u.item`` (latin-1, ``|`` separated, 24 fields). ``"1m"``: ``ratings.dat``
            (``user::item::rating::timestamp``) plus a minimal ``movies.dat``
            (``item::title::genres``).

        Returns
        -------
        pathlib.Path
            The ratings file written (``u.data`` or ``ratings.dat``).
        """
        fmt = str(fmt).lower()
        if fmt not in ("100k", "1m"):
            raise ValueError(f"fmt must be '100k' or '1m', got {fmt!r}")
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"path must be a folder to write the MovieLens files into, got the file {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        c = self.clicks
        ts = c.timestamps if c.timestamps is not None else np.zeros(c.nnz, dtype=np.int64)
        users = c.user_index() + 1
        items = c.item_index() + 1
        ts = np.asarray(ts, dtype=np.int64)
        # order by user then time, as the releases are roughly ordered
        order = np.lexsort((ts, users))
        sep = "\t" if fmt == "100k" else "::"
        lines = (pd.Series(users[order]).astype(str) + sep + pd.Series(items[order]).astype(str) + sep + "5"
                 + sep + pd.Series(ts[order]).astype(str))
        ids = np.arange(1, self.n_items + 1)
        if fmt == "100k":
            out = folder / "u.data"
            genres = "|".join(["0"] * 19)
            movie_lines = [f"{i}|Synthetic item {i} (1998)|01-Jan-1998||http://example.invalid/{i}|{genres}"
                           for i in ids]
            (folder / "u.item").write_text("\n".join(movie_lines) + "\n", encoding="latin-1")
        else:
            out = folder / "ratings.dat"
            movie_lines = [f"{i}::Synthetic item {i} (1998)::Drama" for i in ids]
            (folder / "movies.dat").write_text("\n".join(movie_lines) + "\n", encoding="latin-1")
        out.write_text("\n".join(lines.tolist()) + "\n", encoding="latin-1")
        return out


# ---------------------------------------------------------------------------- helpers
def _lognormal_mean_one(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    w = np.exp(sigma * rng.standard_normal(n))
    return (w / w.mean()).astype(np.float32)


def _standardize(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return ((x - x.mean(axis=0)) / sd).astype(np.float32)


def _calibration_pairs(rng: np.random.Generator, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs the offsets are solved on: all of them, or ``_CALIBRATION_PAIRS`` sampled ones.

    The sample has the same number of uniformly drawn users for every item, so the popular items
    (which carry most of the expected clicks) are never left out. Returns (users, items), int64.
    """
    if n_users * n_items <= _CALIBRATION_PAIRS:
        return (np.repeat(np.arange(n_users, dtype=np.int64), n_items),
                np.tile(np.arange(n_items, dtype=np.int64), n_users))
    per_item = max(1, _CALIBRATION_PAIRS // n_items)
    return (rng.integers(0, n_users, size=n_items * per_item, dtype=np.int64),
            np.repeat(np.arange(n_items, dtype=np.int64), per_item))


def _check_index_array(idx, n: int, name: str) -> np.ndarray:
    """Integer indices in ``[0, n)`` of any shape, as int64 (ValueError naming the problem)."""
    arr = np.asarray(idx)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)].flat[0]
        raise ValueError(f"{name} must be indices in [0, {n}), got {int(bad)}")
    return arr


def _solve_increasing(f, target: float, lo: float, hi: float, name: str) -> float:
    """Root of an increasing ``f(x) = target`` in [lo, hi], expanding ``hi`` when needed."""
    g = lambda x: f(x) - target  # noqa: E731
    for _ in range(60):
        if g(hi) >= 0:
            break
        lo, hi = hi, hi * 4.0
    else:  # pragma: no cover - guarded by the callers' reachability checks
        raise ValueError(f"could not calibrate {name}")
    return float(brentq(g, lo, hi, xtol=1e-10, rtol=1e-6))


def _features(rng: np.random.Generator, latent: np.ndarray, n_features: int, noise: float) -> np.ndarray | None:
    if n_features == 0:
        return None
    w = rng.standard_normal((latent.shape[1], n_features)) / np.sqrt(latent.shape[1])
    x = latent @ w + noise * rng.standard_normal((latent.shape[0], n_features))
    return _standardize(x)


def _interactions(users, items, timestamps, propensities, shape, features: dict, mask=None) -> Interactions:
    """The pairs (those where ``mask`` is true, when given) with their columns, as Interactions."""
    if mask is not None:
        users, items, propensities = users[mask], items[mask], propensities[mask]
        timestamps = None if timestamps is None else timestamps[mask]
    return Interactions.from_indices(users, items, shape, timestamps=timestamps, propensities=propensities,
                                     **features)


# ---------------------------------------------------------------------------- label noise of the truth of likes
_NOISE_MODELS = ("clicks", "liked")


def _noise_rows(n_items: int) -> int:
    """Users per block of the pass over all pairs of ``label_noise_model="liked"`` (~4M pairs a block)."""
    return max(1, (1 << 22) // max(n_items, 1))


def _liked_unexposed_weight(truth: _Truth, clicked, users: np.ndarray) -> np.ndarray:
    """``P(liked | not clicked) = r (1 − e) / (1 − r e)`` for the rows ``users``, 0 on the clicks, float64 (B, n_items)."""
    rel = truth.relevance(users).astype(np.float64)
    exp = truth.exposure(users).astype(np.float64)
    a = rel * (1.0 - exp) / np.maximum(1.0 - rel * exp, 1e-12)
    a[clicked[users].toarray() > 0] = 0.0
    return a


def _liked_truth(truth: _Truth, tu, ti, share: float, rng: np.random.Generator):
    """``label_noise_model="liked"``: the liked-but-unexposed pairs ``E`` added to the clicks (module docstring, item 5).

    Each pair that is not a click joins ``E`` with probability ``β · P(liked | not clicked)``, a
    uniform thinning of the world's liked-but-unexposed pairs, ``β`` solved so that
    ``E[|E|] = share · clicks`` (one pass over all pairs). Independent of ``ρ``: one uniform per pair
    from ``rng``, in user order. Returns ``(users, items, β)``, int64.
    """
    n_users, n_items = truth.user_factors.shape[0], truth.item_factors.shape[0]
    if share == 0 or tu.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    clicked = csr_matrix((np.ones(tu.size, dtype=np.int8), (tu, ti)), shape=(n_users, n_items))
    rows = _noise_rows(n_items)
    blocks = [np.arange(s, min(s + rows, n_users)) for s in range(0, n_users, rows)]
    mass = sum(float(_liked_unexposed_weight(truth, clicked, users).sum()) for users in blocks)
    beta = share * tu.size / max(mass, 1e-300)
    if beta >= 1.0:
        raise ValueError(f"liked_unexposed={share} asks for more liked-but-unexposed pairs than the world has: at most "
                         f"{mass / tu.size:.3f} times the clicks (raise relevance_rate or lower it)")
    eu, ei = [], []
    for users in blocks:
        p = beta * _liked_unexposed_weight(truth, clicked, users)
        r, i = np.nonzero(rng.random(p.shape) < p)
        eu.append(users[r])
        ei.append(i)
    return np.concatenate(eu).astype(np.int64), np.concatenate(ei).astype(np.int64), float(beta)


def _hide_liked(truth: _Truth, users, items, w_user, w_item, uniforms, rho: float):
    """Hide ``ρ`` of the truth ``(users, items)``: ``P(hidden) = min(c w_u w_i (1 − e_ui), 1)``.

    ``c`` is solved so that the expected hidden share of the truth is exactly ``ρ``; a pair is
    hidden when its ``uniforms`` entry (drawn once, independent of ``ρ``) is below its
    probability, so the hidden sets are nested as ``ρ`` grows. Returns ``(hidden, c, probability)``.
    """
    if rho == 0 or users.size == 0:
        return np.zeros(users.size, dtype=bool), 0.0, np.zeros(users.size)
    b = w_user[users].astype(np.float64) * w_item[items] * (1.0 - truth.exposure(users, items).astype(np.float64))
    reachable = float((b > 0).mean())
    if rho >= reachable * (1 - 1e-6):
        raise ValueError(f"label_noise={rho} cannot be reached with label_noise_model='liked': only {reachable:.4f} "
                         "of the liked pairs are not fully exposed (exposure 1 is never hidden)")
    c = _solve_increasing(lambda s: float(np.minimum(s * b, 1.0).mean()), rho, 0.0,
                          rho / max(float(b.mean()), 1e-300), "noise scale")
    prob = np.minimum(c * b, 1.0)
    return uniforms < prob, c, prob


# ---------------------------------------------------------------------------- the generator
@dataclass(frozen=True)
class _WorldConfig:
    """The checked arguments of :func:`make_world` (documented there), without the seed.

    ``__post_init__`` checks every value, in the order and with the messages make_world has
    always used, and stores it checked (counts as ``int``, rates as ``float``) with the defaults
    that depend on other arguments resolved (``n_logged_lists``, ``log_candidates``,
    ``liked_unexposed``). ``target_interactions`` is kept as given, as the messages quote it.
    """

    n_users: int
    n_items: int
    target_interactions: float
    factors: int
    relevance_scale: float
    quality_std: float
    relevance_rate: float
    popularity_exponent: float
    popularity_quality_corr: float
    exposure_eta: float
    user_activity_sigma: float
    min_exposure: float
    label_noise: float
    noise_heterogeneity: float
    label_noise_model: str
    liked_unexposed: float | None
    n_logged_lists: int | None
    list_length: int
    log_candidates: int | None
    logging_noise: float
    logging_ranker: str
    logging_labels: int
    position_eta: float
    n_test_items: int
    n_user_features: int
    n_item_features: int
    feature_noise: float
    timestamps: bool

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("n_users", check_int(self.n_users, "n_users"))
        put("n_items", check_int(self.n_items, "n_items"))
        check_number(self.target_interactions, "target_interactions", 0.0, strict=True)
        put("factors", check_int(self.factors, "factors"))
        put("relevance_scale", check_number(self.relevance_scale, "relevance_scale", 0.0))
        put("quality_std", check_number(self.quality_std, "quality_std", 0.0))
        put("relevance_rate", check_number(self.relevance_rate, "relevance_rate", 0.0, high=1.0, strict=True,
                                          high_strict=True))
        put("popularity_exponent", check_number(self.popularity_exponent, "popularity_exponent", 0.0))
        put("popularity_quality_corr", check_number(self.popularity_quality_corr, "popularity_quality_corr", -1.0,
                                                   high=1.0))
        put("exposure_eta", check_number(self.exposure_eta, "exposure_eta", 0.0))
        put("user_activity_sigma", check_number(self.user_activity_sigma, "user_activity_sigma", 0.0))
        put("min_exposure", check_number(self.min_exposure, "min_exposure", 0.0, high=1.0, strict=True))
        put("label_noise", check_number(self.label_noise, "label_noise", 0.0, high=1.0, high_strict=True))
        put("noise_heterogeneity", check_number(self.noise_heterogeneity, "noise_heterogeneity", 0.0))
        model = self.label_noise_model
        if model not in _NOISE_MODELS:
            raise ValueError(f"label_noise_model must be one of {_NOISE_MODELS}, got {model!r}")
        if model != "liked" and self.liked_unexposed is not None:
            raise ValueError(f"liked_unexposed is a parameter of label_noise_model='liked', got label_noise_model="
                             f"{model!r}")
        if model == "liked":
            put("liked_unexposed", 1.0 if self.liked_unexposed is None
                else check_number(self.liked_unexposed, "liked_unexposed", 0.0))
        n_users, n_items = self.n_users, self.n_items
        if model == "liked" and n_users * n_items > DENSE_MAX_PAIRS:
            raise ValueError(f"label_noise_model='liked' visits every pair: at most DENSE_MAX_PAIRS = "
                             f"{DENSE_MAX_PAIRS} pairs, got {n_users} x {n_items}")
        put("n_logged_lists", 20 * n_users if self.n_logged_lists is None
            else check_int(self.n_logged_lists, "n_logged_lists", 0))
        L = check_int(self.list_length, "list_length")
        put("list_length", L)
        if L > n_items:
            raise ValueError(f"list_length must be <= n_items ({n_items}), got {L}")
        n_cand = min(5 * L, n_items) if self.log_candidates is None else check_int(self.log_candidates,
                                                                                  "log_candidates")
        put("log_candidates", n_cand)
        if n_cand < L:
            raise ValueError(f"log_candidates must be >= list_length ({L}), got {n_cand}")
        if n_cand > n_items:
            raise ValueError(f"log_candidates must be <= n_items ({n_items}), got {n_cand}")
        put("logging_noise", check_number(self.logging_noise, "logging_noise", 0.0))
        if self.logging_ranker not in ("relevance", "linear"):
            raise ValueError(f"logging_ranker must be 'relevance' or 'linear', got {self.logging_ranker!r}")
        put("logging_labels", check_int(self.logging_labels, "logging_labels"))
        put("position_eta", check_number(self.position_eta, "position_eta", 0.0))
        put("n_test_items", check_int(self.n_test_items, "n_test_items", 0))
        if self.n_test_items > n_items:
            raise ValueError(f"n_test_items must be <= n_items ({n_items}), got {self.n_test_items}")
        put("n_user_features", check_int(self.n_user_features, "n_user_features", 0))
        put("n_item_features", check_int(self.n_item_features, "n_item_features", 0))
        put("feature_noise", check_number(self.feature_noise, "feature_noise", 0.0))
        if self.logging_ranker == "linear" and self.n_logged_lists and not (self.n_user_features
                                                                            and self.n_item_features):
            raise ValueError("logging_ranker='linear' needs side features (n_user_features and n_item_features > 0)")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @property
    def latent_scale(self) -> np.float32:
        """The factors' scale ``k^(-1/4)``, so that ``U_u·V_i`` has variance ≈ 1 (module docstring, item 1)."""
        return np.float32(self.factors ** -0.25)

    def params(self, random_state: RandomState, liked_scale: float, **calibrated) -> dict:
        """:attr:`SyntheticWorld.params`: the checked arguments, the seed (``"Generator"`` for a generator) and the
        calibrated constants; ``liked_unexposed`` and ``liked_scale`` under ``label_noise_model="liked"`` only."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "liked_unexposed"}
        params["random_state"] = (random_state if isinstance(random_state, (int, np.integer)) or random_state is None
                                  else "Generator")
        params.update(calibrated)
        if self.label_noise_model == "liked":
            params.update(liked_unexposed=self.liked_unexposed, liked_scale=liked_scale)
        return params
def make_world(
    n_users: int = 943,
    n_items: int = 1682,
    target_interactions: int = 100_000,
    *,
    factors: int = 10,
    relevance_scale: float = 1.5,
    quality_std: float = 1.0,
    relevance_rate: float = 0.2,
    popularity_exponent: float = 1.4,
    popularity_quality_corr: float = 0.5,
    exposure_eta: float = 1.0,
    user_activity_sigma: float = 0.9,
    min_exposure: float = 1e-4,
    label_noise: float = 0.0,
    noise_heterogeneity: float = 1.0,
    label_noise_model: str = "clicks",
    liked_unexposed: float | None = None,
    n_logged_lists: int | None = None,
    list_length: int = 10,
    log_candidates: int | None = None,
    logging_noise: float = 1.0,
    logging_ranker: str = "relevance",
    logging_labels: int = 2000,
    position_eta: float = 1.0,
    n_test_items: int = 16,
    n_user_features: int = 16,
    n_item_features: int = 16,
    feature_noise: float = 0.5,
    timestamps: bool = True,
    random_state: RandomState = 0,
) -> SyntheticWorld:
    """Draw a seeded synthetic world with known relevance, exposure, label noise and position bias.

    The generative model is written out in the module docstring; every formula there names the
    parameter below that controls it.

    Parameters
    ----------
    n_users, n_items : int
        Size of the world (default: MovieLens 100K's 943 × 1,682; ML-1M is 6,040 × 3,706).
    target_interactions : int
        Expected number of true positives (clicks before label noise); the exposure scale is
        solved to hit it.
    factors : int
        Rank ``k`` of the latent relevance factors.
    relevance_scale : float
        Weight of the personal part ``U_u·V_i`` in the relevance logit (larger: more personal).
    quality_std : float
        Standard deviation of the item quality ``q_i`` in the relevance logit.
    relevance_rate : float
        Mean relevance over all pairs, in (0, 1); the logit offset is solved to hit it.
    popularity_exponent : float
        The long tail: ``item_popularity = rank^-popularity_exponent``; 0 makes all items equal.
    popularity_quality_corr : float
        Rank correlation between popularity and item quality, in [-1, 1].
    exposure_eta : float
        MNAR strength: ``exposure ∝ item_popularity^exposure_eta``; 0 is missing at random.
    user_activity_sigma : float
        Log-standard deviation of the user activity factor in the exposure (0: equal users).
    min_exposure : float
        Lower clip of the exposure, in (0, 1], so that every pair has a positive propensity.
    label_noise : float
        ``ρ`` in [0, 1): the expected fraction of true positives hidden among the unobserved.
    noise_heterogeneity : float
        Log-standard deviation of the per-user and per-item factors of the noise rate
        (0: every true positive is hidden with probability ``ρ``).
    label_noise_model : {"clicks", "liked"}
        ``"clicks"`` (default): ``ρ`` is the hidden fraction of the clicks (a thinning of the clicks).
        ``"liked"``: the truth is the clicks plus liked-but-unexposed pairs, the same at every ``ρ``,
        and ``ρ`` is its hidden fraction, drawn ``∝ w_u w_i (1 − exposure)`` where a uniform negative
        sampler draws (module docstring, item 5). Worlds of at most :data:`DENSE_MAX_PAIRS` pairs.
    liked_unexposed : float, optional
        ``label_noise_model="liked"`` only: the expected number of liked-but-unexposed pairs in
        the truth, as a multiple of the clicks (default 1.0: the truth is about twice the clicks);
        0 makes the truth the clicks. At most what the world has (``Σ P(liked | not clicked)``).
    n_logged_lists : int or None
        Number of logged ranked lists; None gives 20 per user. 0 gives no lists.
    list_length : int
        Positions per logged list ``L``.
    log_candidates : int or None
        Candidate items (uniform, distinct) the logging ranker ranks per list, in
        [``list_length``, ``n_items``]; None gives ``min(5 · list_length, n_items)``.
    logging_noise : float
        Standard deviation of the Gaussian noise the logging ranker adds to its score.
    logging_ranker : {"relevance", "linear"}
        The logging ranker's score. ``"relevance"``: the true ``logit(relevance)`` (position is then
        a noisy monotone function of relevance). ``"linear"``: a weak ranker over the side
        features, like the production ranker of Ai et al. (a Ranking SVM trained on 1% of the
        labelled data): an L2-regularized logistic regression on the bilinear features
        ``[x_u, 1] ⊗ [x_i, 1]``, fitted to ``logging_labels`` uniformly drawn pairs labelled
        ``Bernoulli(relevance)``; its errors are a function of the features, so position carries a
        bias a feature-based ranker trained on raw clicks absorbs. Needs side features.
    logging_labels : int
        Labelled pairs the ``"linear"`` logging ranker is fitted on (fewer: a weaker ranker).
    position_eta : float
        Position bias: examination ``θ_k = (1/k)^position_eta``.
    n_test_items : int
        Uniformly drawn test items per user (like Coat's 16); 0 gives no test set.
    n_user_features, n_item_features : int
        Width of the dense side features (0: none).
    feature_noise : float
        Standard deviation of the noise in the side features (relative to unit-variance signal).
    timestamps : bool
        Attach random timestamps (uniform over MovieLens 100K's time span) to the clicks.
    random_state : int, numpy.random.Generator or None
        Seed; the same seed gives the same world.

    Returns
    -------
    SyntheticWorld

    Raises
    ------
    ValueError
        For a parameter out of range, or a ``target_interactions`` that even full exposure cannot
        reach (``Σ relevance``).

    Examples
    --------
    >>> world = make_world(random_state=0)
    >>> world.clicks.shape
    (943, 1682)
    """
    cfg = _WorldConfig(
        n_users=n_users, n_items=n_items, target_interactions=target_interactions, factors=factors,
        relevance_scale=relevance_scale, quality_std=quality_std, relevance_rate=relevance_rate,
        popularity_exponent=popularity_exponent, popularity_quality_corr=popularity_quality_corr,
        exposure_eta=exposure_eta, user_activity_sigma=user_activity_sigma, min_exposure=min_exposure,
        label_noise=label_noise, noise_heterogeneity=noise_heterogeneity, label_noise_model=label_noise_model,
        liked_unexposed=liked_unexposed, n_logged_lists=n_logged_lists, list_length=list_length,
        log_candidates=log_candidates, logging_noise=logging_noise, logging_ranker=logging_ranker,
        logging_labels=logging_labels, position_eta=position_eta, n_test_items=n_test_items,
        n_user_features=n_user_features, n_item_features=n_item_features, feature_noise=feature_noise,
        timestamps=timestamps)
    rng = check_random_state(random_state)
    # one child generator per part (module docstring): changing one part leaves the others' draws alone
    (rng_latent, rng_pop, rng_click, rng_noise, rng_logs, rng_test, rng_feat, rng_time,
     rng_cal) = rng.spawn(9)
    cal_u, cal_i = _calibration_pairs(rng_cal, cfg.n_users, cfg.n_items)
    U, V, quality, offset = _relevance(cfg, rng_latent, cal_u, cal_i)
    popularity = _popularity(cfg, rng_pop, quality)
    truth, exposure_scale = _exposure(cfg, rng_pop, U, V, quality, offset, popularity, cal_u, cal_i)
    del cal_u, cal_i
    drawn = _clicks(cfg, rng_click, rng_time, truth)
    noise = _label_noise(cfg, rng_noise, rng_time, truth, drawn)
    n_clicks = drawn.users.size
    del drawn
    user_features, item_features, feats = _side_features(cfg, rng_feat, U, V, quality)
    true_positives, clicks, hidden_positives = _observed(cfg, noise, feats)
    noise = noise._replace(truth=None, hidden=None)  # the pairs live on in the Interactions only
    logs = _logged_lists(cfg, rng_logs, truth, user_features, item_features)
    test_items, test_labels, unbiased_test = _unbiased_test(cfg, rng_test, truth, feats)

    params = cfg.params(random_state, relevance_offset=offset, exposure_scale=exposure_scale,
                        noise_scale=noise.scale, liked_scale=noise.liked_scale)
    logger.debug("synthetic world %dx%d: relevance offset %.4f, exposure scale %.4g, noise scale %.4g, "
                 "%d true positives, %d hidden", cfg.n_users, cfg.n_items, offset, exposure_scale, noise.scale,
                 n_clicks, hidden_positives.nnz)
    return SyntheticWorld(
        clicks=clicks,
        true_positives=true_positives,
        hidden_positives=hidden_positives,
        unbiased_test=unbiased_test,
        unbiased_test_items=test_items,
        unbiased_test_labels=test_labels,
        logs=logs,
        item_popularity=popularity,
        item_propensity=_mean_clipped(truth.user_activity, truth.item_exposure, cfg.min_exposure),
        user_activity=truth.user_activity,
        user_noise_rate=noise.user_rate,
        item_noise_rate=noise.item_rate,
        user_noise_weight=noise.w_user,
        item_noise_weight=noise.w_item,
        noise_scale=float(noise.scale),
        user_factors=U,
        item_factors=V,
        item_quality=quality,
        user_features=user_features,
        item_features=item_features,
        params=params,
        _truth=truth,
    )


class _Pairs(NamedTuple):
    """Pairs of a world with their columns: int64 users and items, int64 timestamps (or None), float32 exposure."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None
    propensities: np.ndarray


class _Noise(NamedTuple):
    """What label noise made: the truth's pairs, which of them are hidden, and the noise rates' pieces."""

    truth: _Pairs | None        # the true positives: the clicks, plus E under label_noise_model="liked"
    hidden: np.ndarray | None   # bool, per truth pair
    w_user: np.ndarray          # float32 (n_users,), mean 1
    w_item: np.ndarray          # float32 (n_items,), mean 1
    scale: float                # c
    user_rate: np.ndarray       # float32 (n_users,): expected hidden fraction of a user's truth
    item_rate: np.ndarray       # float32 (n_items,)
    liked_scale: float | None   # β of label_noise_model="liked", else None


def _relevance(cfg: _WorldConfig, rng: np.random.Generator, cal_u: np.ndarray, cal_i: np.ndarray):
    """Item 1 of the module docstring: ``U, V ~ N(0, I_k / sqrt(k))``, ``q ~ N(0, quality_std²)`` and the
    offset ``b`` that makes the mean of ``σ(relevance_scale · U_u·V_i + q_i + b)`` over (a subsample of)
    the calibration pairs ``relevance_rate``. Returns ``(U, V, q, b)``, float32 arrays and a float."""
    scale = cfg.latent_scale
    U = (rng.standard_normal((cfg.n_users, cfg.factors), dtype=np.float32) * scale)
    V = (rng.standard_normal((cfg.n_items, cfg.factors), dtype=np.float32) * scale)
    quality = (cfg.quality_std * rng.standard_normal(cfg.n_items)).astype(np.float32)
    step = max(1, cal_u.size // _OFFSET_PAIRS)
    cal = _logit_pairs(U, V, quality, np.float32(cfg.relevance_scale), cal_u[::step], cal_i[::step])
    offset = _solve_increasing(lambda b: float(expit(cal + np.float32(b)).mean(dtype=np.float64)),
                               cfg.relevance_rate, -60.0, 1.0, "relevance_rate")
    return U, V, quality, offset


def _popularity(cfg: _WorldConfig, rng: np.random.Generator, quality: np.ndarray) -> np.ndarray:
    """Item 2: ``item_popularity = ρ^(-popularity_exponent)``, the ranks ``ρ`` sorted by a key of correlation
    ``popularity_quality_corr`` with the standardized quality. float32 (n_items,), max 1."""
    z = (quality - quality.mean()) / (quality.std() or 1.0)
    c = cfg.popularity_quality_corr
    key = c * z + np.sqrt(max(0.0, 1.0 - c * c)) * rng.standard_normal(cfg.n_items)
    rank = np.empty(cfg.n_items, dtype=np.int64)
    rank[np.argsort(-key, kind="stable")] = np.arange(1, cfg.n_items + 1)
    return (rank.astype(np.float64) ** -cfg.popularity_exponent).astype(np.float32)


def _exposure(cfg: _WorldConfig, rng: np.random.Generator, U, V, quality, offset: float, popularity: np.ndarray,
              cal_u: np.ndarray, cal_i: np.ndarray) -> tuple[_Truth, float]:
    """Item 3: ``a_u ~ LogNormal(0, user_activity_sigma²)`` (mean 1) and the scale ``s`` of
    ``exposure = clip(s · a_u · item_popularity^exposure_eta, min_exposure, 1)`` that makes
    ``Σ exposure · relevance`` over the calibration pairs ``target_interactions`` times their share of all
    pairs. Raises when no ``s`` reaches it. Returns the world's :class:`_Truth` and ``s``."""
    n_users, n_items = cfg.shape
    cal_share = cal_u.size / (n_users * n_items)  # the calibration pairs' share of all pairs
    rel_scale = np.float32(cfg.relevance_scale)
    activity = _lognormal_mean_one(rng, cfg.user_activity_sigma, n_users)
    pop_eta = popularity ** np.float32(cfg.exposure_eta)
    rel_cal = _relevance_pairs(U, V, quality, rel_scale, np.float32(offset), cal_u, cal_i)
    base_cal = activity[cal_u] * pop_eta[cal_i]
    cal_target = float(cfg.target_interactions) * cal_share
    reachable = float(rel_cal.sum(dtype=np.float64))
    if cal_target >= reachable * (1 - 1e-6):
        raise ValueError(
            f"target_interactions={cfg.target_interactions} cannot be reached: even full exposure gives about "
            f"{reachable / cal_share:.0f} clicks (relevance_rate={cfg.relevance_rate}); "
            "lower target_interactions or raise relevance_rate")

    def expected(s):
        e = np.clip(np.float32(s) * base_cal, cfg.min_exposure, 1.0)
        return float(np.sum(e * rel_cal, dtype=np.float64))

    if expected(0.0) >= cal_target:
        raise ValueError(
            f"target_interactions={cfg.target_interactions} is below what min_exposure={cfg.min_exposure} alone "
            f"gives (about {expected(0.0) / cal_share:.0f} clicks); lower min_exposure")
    exposure_scale = _solve_increasing(expected, cal_target, 0.0, 1.0 / float(base_cal.max()), "exposure scale")
    truth = _Truth(U, V, quality, rel_scale, np.float32(offset), activity,
                   (np.float32(exposure_scale) * pop_eta).astype(np.float32), np.float32(cfg.min_exposure))
    return truth, exposure_scale


def _timestamps(rng: np.random.Generator, n: int, on: bool) -> np.ndarray | None:
    """``n`` uniform unix times over MovieLens 100K's span (items 4 and 5), or None when ``on`` is false."""
    return rng.integers(_T0, _T1 + 1, size=n, dtype=np.int64) if on else None


def _clicks(cfg: _WorldConfig, rng: np.random.Generator, rng_time: np.random.Generator, truth: _Truth) -> _Pairs:
    """Item 4: the clicks ``Y ~ Bernoulli(exposure · relevance)`` (:meth:`_Truth.draw_clicks`), with their
    exposure as propensity and uniform timestamps."""
    users, items = truth.draw_clicks(rng)
    propensities = truth.exposure(users, items)
    return _Pairs(users, items, _timestamps(rng_time, users.size, cfg.timestamps), propensities)


def _label_noise(cfg: _WorldConfig, rng: np.random.Generator, rng_time: np.random.Generator, truth: _Truth,
                 clicks: _Pairs) -> _Noise:
    """Item 5: the factors ``w_u, w_i ~ LogNormal(0, noise_heterogeneity²)`` (mean 1) and one hiding uniform
    per click, then the hidden set of ``label_noise_model`` (:func:`_noise_of_clicks`, :func:`_noise_of_likes`)."""
    w_user = _lognormal_mean_one(rng, cfg.noise_heterogeneity, cfg.n_users)
    w_item = _lognormal_mean_one(rng, cfg.noise_heterogeneity, cfg.n_items)
    uniforms = rng.random(clicks.users.size)
    if cfg.label_noise_model == "liked":
        return _noise_of_likes(cfg, rng, rng_time, truth, clicks, w_user, w_item, uniforms)
    return _noise_of_clicks(cfg, truth, clicks, w_user, w_item, uniforms)


def _noise_of_clicks(cfg: _WorldConfig, truth: _Truth, clicks: _Pairs, w_user, w_item, uniforms) -> _Noise:
    """Item 5, ``label_noise_model="clicks"``: a click is hidden when its uniform is below
    ``noise_rate = clip(c · w_u · w_i, 0, 1)``, ``c`` solved so that the clicks' rates sum to ``ρ`` times their
    number; the per-user / per-item rates are ``Σ noise_rate · P(click) / Σ P(click)`` over all pairs."""
    n = clicks.users.size
    if cfg.label_noise == 0 or n == 0:
        return _Noise(clicks, np.zeros(n, dtype=bool), w_user, w_item, 0.0, np.zeros(cfg.n_users, dtype=np.float32),
                      np.zeros(cfg.n_items, dtype=np.float32), None)
    prod = w_user[clicks.users].astype(np.float64) * w_item[clicks.items]
    scale = _solve_increasing(lambda s: float(np.minimum(s * prod, 1.0).sum()), cfg.label_noise * n,
                              0.0, cfg.label_noise, "noise scale")
    hidden = uniforms < np.minimum(scale * prod, 1.0)
    prod = None  # freed before the pass over all pairs
    user_sums, item_sums = truth.pair_sums(w_user, w_item, scale)
    return _Noise(clicks, hidden, w_user, w_item, scale,
                  (user_sums[:, 2] / np.maximum(user_sums[:, 0], 1e-12)).astype(np.float32),
                  (item_sums[:, 1] / np.maximum(item_sums[:, 0], 1e-12)).astype(np.float32), None)


def _noise_of_likes(cfg: _WorldConfig, rng: np.random.Generator, rng_time: np.random.Generator, truth: _Truth,
                    clicks: _Pairs, w_user, w_item, uniforms) -> _Noise:
    """Item 5, ``label_noise_model="liked"``: the truth is the clicks plus the liked-but-unexposed pairs ``E``
    (:func:`_liked_truth`), the same at every ``ρ``; ``ρ`` of it is hidden with
    ``P(hidden) = min(c · w_u · w_i · (1 − exposure), 1)`` (:func:`_hide_liked`), and the per-user / per-item
    rates are the mean ``P(hidden)`` of their truth pairs (the flip rate ``P(ỹ = 0 | y = 1)``)."""
    eu, ei, liked_scale = _liked_truth(truth, clicks.users, clicks.items, cfg.liked_unexposed, rng)
    hide_e = rng.random(eu.size)
    e_time = _timestamps(rng_time, eu.size, cfg.timestamps)
    users, items = np.concatenate([clicks.users, eu]), np.concatenate([clicks.items, ei])
    hidden, scale, prob = _hide_liked(truth, users, items, w_user, w_item, np.concatenate([uniforms, hide_e]),
                                      cfg.label_noise)
    liked = _Pairs(users, items, None if clicks.timestamps is None else np.concatenate([clicks.timestamps, e_time]),
                   np.concatenate([clicks.propensities, truth.exposure(eu, ei)]))
    n_users, n_items = cfg.shape
    user_rate = np.bincount(users, prob, n_users) / np.maximum(np.bincount(users, minlength=n_users), 1)
    item_rate = np.bincount(items, prob, n_items) / np.maximum(np.bincount(items, minlength=n_items), 1)
    return _Noise(liked, hidden, w_user, w_item, scale, user_rate.astype(np.float32), item_rate.astype(np.float32),
                  liked_scale)


def _side_features(cfg: _WorldConfig, rng: np.random.Generator, U, V, quality):
    """Item 8: ``user_features = standardize(U W_u + ε)``, ``item_features = standardize([V, q] W_i + ε)``
    (``q`` rescaled to the factors' scale). Returns the two float32 arrays (or None) and the Interactions
    keyword arguments that carry them."""
    user_features = _features(rng, U, cfg.n_user_features, cfg.feature_noise)
    item_latent = np.hstack([V, quality[:, None] / max(cfg.quality_std, 1e-12) * cfg.latent_scale])
    item_features = _features(rng, item_latent, cfg.n_item_features, cfg.feature_noise)
    feats = {}
    if user_features is not None:
        feats["user_features"] = user_features
        feats["user_feature_names"] = tuple(f"u{j}" for j in range(cfg.n_user_features))
    if item_features is not None:
        feats["item_features"] = item_features
        feats["item_feature_names"] = tuple(f"i{j}" for j in range(cfg.n_item_features))
    return user_features, item_features, feats


def _observed(cfg: _WorldConfig, noise: _Noise, feats: dict) -> tuple[Interactions, Interactions, Interactions]:
    """Items 4-5 as Interactions: ``(true_positives, clicks, hidden_positives)``, the clicks the truth minus the
    hidden pairs (the same object as the truth when nothing is hidden: Interactions are immutable)."""
    truth, hidden = noise.truth, noise.hidden
    true_positives = _interactions(*truth, cfg.shape, feats)
    clicks = _interactions(*truth, cfg.shape, feats, ~hidden) if hidden.any() else true_positives
    return true_positives, clicks, _interactions(*truth, cfg.shape, feats, hidden)


def _logged_lists(cfg: _WorldConfig, rng: np.random.Generator, truth: _Truth, user_features, item_features
                  ) -> LoggedLists:
    """Item 6: logged lists ranked by ``score + logging_noise · N(0, 1)`` (:func:`_draw_logs`), the score
    ``logit(relevance)`` or, for ``logging_ranker="linear"``, the weak feature ranker
    (:func:`_linear_logging_scores`), with position clicks ``examined · relevant``, ``θ_k = (1/k)^position_eta``."""
    log_score = None
    if cfg.logging_ranker == "linear" and cfg.n_logged_lists:
        log_score = _linear_logging_scores(rng, truth, user_features, item_features, cfg.logging_labels)
    return _draw_logs(rng, truth, cfg.n_logged_lists, cfg.list_length, cfg.log_candidates, cfg.logging_noise,
                      cfg.position_eta, log_score)


def _unbiased_test(cfg: _WorldConfig, rng: np.random.Generator, truth: _Truth, feats: dict):
    """Item 7: ``n_test_items`` distinct uniform items per user (sorted), labelled ``Bernoulli(relevance)``.
    Returns the items (int64), the labels (int8) and the positive pairs as Interactions (propensity 1)."""
    n_users = cfg.n_users
    if cfg.n_test_items:
        items = np.sort(_distinct_uniform(rng, n_users, cfg.n_test_items, cfg.n_items), axis=1)
        rel = truth.relevance(np.arange(n_users)[:, None], items)
        labels = (rng.random(items.shape, dtype=np.float32) < rel).astype(np.int8)
        del rel
    else:
        items = np.zeros((n_users, 0), dtype=np.int64)
        labels = np.zeros((n_users, 0), dtype=np.int8)
    pu, pk = np.nonzero(labels)
    return items, labels, _interactions(pu, items[pu, pk], None, np.ones(pu.size, np.float32), cfg.shape, feats)


def _linear_logging_scores(rng: np.random.Generator, truth: _Truth, user_features: np.ndarray,
                           item_features: np.ndarray, n_labels: int, l2: float = 1.0):
    """A weak logging ranker: logistic regression on ``[x_u, 1] ⊗ [x_i, 1]`` from ``n_labels`` labels.

    ``n_labels`` uniform (user, item) pairs get a ``Bernoulli(relevance)`` label; the weights
    minimize the summed logistic loss plus ``l2 / 2 · ‖w‖²`` (Newton's method, a few steps).
    Returns the score ``x_u W x_i`` (on the logit scale) as two float32 tables whose row dot
    products give it: ``(x W, x_i)``, shapes (n_users, d_i + 1) and (n_items, d_i + 1).
    """
    n_users, n_items = truth.user_factors.shape[0], truth.item_factors.shape[0]
    xu = np.hstack([user_features, np.ones((n_users, 1), np.float32)]).astype(np.float64)
    xi = np.hstack([item_features, np.ones((n_items, 1), np.float32)]).astype(np.float64)
    u = rng.integers(0, n_users, size=n_labels)
    i = rng.integers(0, n_items, size=n_labels)
    y = (rng.random(n_labels) < truth.relevance(u, i)).astype(np.float64)
    phi = (xu[u][:, :, None] * xi[i][:, None, :]).reshape(n_labels, -1)
    w = np.zeros(phi.shape[1])
    for _ in range(25):
        p = expit(phi @ w)
        grad = phi.T @ (p - y) + l2 * w
        hess = (phi * (p * (1 - p))[:, None]).T @ phi + l2 * np.eye(w.size)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return (xu @ w.reshape(xu.shape[1], xi.shape[1])).astype(np.float32), xi.astype(np.float32)


@numba.njit(nogil=True, parallel=True, cache=True)
def _rank_lists(U, V, quality, scale, offset, score_user, score_item, users, cand, noise, L
                ):  # pragma: no cover - compiled
    """The top ``L`` candidates of each list by ``score + noise``, best first, and their relevance.

    The score is ``logit(relevance)`` when ``score_user`` has no rows, else the dot product of
    ``score_user[u]`` and ``score_item[i]``. Ties keep the earlier candidate first. Returns
    (items int64 (n, L), relevance float32 (n, L)).
    """
    n, m = cand.shape
    items = np.empty((n, L), dtype=np.int64)
    rel = np.empty((n, L), dtype=np.float32)
    linear = score_user.shape[0] > 0
    for t in numba.prange(n):
        u = users[t]
        top_s = rel[t]    # the scores of the kept candidates while selecting, best first
        top_j = items[t]  # and their positions in cand[t]
        k = 0
        for j in range(m):
            i = cand[t, j]
            if linear:
                sc = np.float32(0.0)
                for d in range(score_user.shape[1]):
                    sc += score_user[u, d] * score_item[i, d]
            else:
                sc = _logit_at(U, V, quality, scale, u, i) + offset
            sc += noise[t, j]
            if k < L:
                p = k
                k += 1
            elif sc > top_s[L - 1]:
                p = L - 1
            else:
                continue
            while p > 0 and top_s[p - 1] < sc:
                top_s[p] = top_s[p - 1]
                top_j[p] = top_j[p - 1]
                p -= 1
            top_s[p] = sc
            top_j[p] = j
        for q in range(L):
            i = cand[t, top_j[q]]
            items[t, q] = i
            rel[t, q] = _relevance_at(U, V, quality, scale, offset, u, i)
    return items, rel


def _draw_logs(rng: np.random.Generator, truth: _Truth, n_lists: int, L: int, n_cand: int,
               logging_noise: float, position_eta: float, log_score=None) -> LoggedLists:
    """Logged lists: uniform distinct candidates, ranked by a noisy logging ranker, position clicks.

    The ranker's score is ``logit(relevance)``, or the linear ranker's when ``log_score`` holds
    its two tables (:func:`_linear_logging_scores`); Gaussian noise of standard deviation
    ``logging_noise`` is added per candidate. Lists are drawn in blocks of :data:`_LOG_BLOCK`,
    so only the candidates of one block are held.
    """
    n_users, n_items = truth.user_factors.shape[0], truth.item_factors.shape[0]
    theta = (1.0 / np.arange(1, L + 1, dtype=np.float64)) ** position_eta
    theta = theta.astype(np.float32)
    users = rng.integers(0, n_users, size=n_lists, dtype=np.int64)
    score_user, score_item = log_score if log_score is not None else (np.zeros((0, 1), np.float32),) * 2
    items = np.empty((n_lists, L), dtype=np.int64)
    shown_rel = np.empty((n_lists, L), dtype=np.float32)
    examined = np.empty((n_lists, L), dtype=bool)
    relevant = np.empty((n_lists, L), dtype=bool)
    for s in range(0, n_lists, _LOG_BLOCK):
        e = min(s + _LOG_BLOCK, n_lists)
        cand = _distinct_uniform(rng, e - s, n_cand, n_items)  # distinct uniform candidates per list
        noise = rng.standard_normal(cand.shape, dtype=np.float32)
        noise *= np.float32(logging_noise)
        items[s:e], shown_rel[s:e] = _rank_lists(truth.user_factors, truth.item_factors, truth.item_quality,
                                                 truth.scale, truth.offset, score_user, score_item, users[s:e],
                                                 cand, noise, L)
        examined[s:e] = rng.random((e - s, L), dtype=np.float32) < theta[None, :]
        relevant[s:e] = rng.random((e - s, L), dtype=np.float32) < shown_rel[s:e]
    clicks = (examined & relevant).astype(np.int8)
    return LoggedLists(users=users, items=items, clicks=clicks, relevance=shown_rel, examined=examined,
                       relevant=relevant, position_propensity=theta)


def _distinct_uniform(rng: np.random.Generator, n_rows: int, k: int, n_items: int) -> np.ndarray:
    """``n_rows`` independent uniform draws of ``k`` distinct items out of ``n_items``, int64 (n_rows, k)."""
    if k == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    if 4 * k <= n_items:  # few collisions: draw with replacement, redraw the duplicates
        return _make_rows_distinct(rng, rng.integers(0, n_items, size=(n_rows, k), dtype=np.int64), n_items)
    # a large share of the catalogue: a random partial permutation per row
    keys = rng.random((n_rows, n_items), dtype=np.float32)
    return np.argpartition(keys, k - 1, axis=1)[:, :k].astype(np.int64)


def _make_rows_distinct(rng: np.random.Generator, cand: np.ndarray, n_items: int) -> np.ndarray:
    """Redraw duplicate entries within each row until every row holds distinct items (vectorized).

    The process treats all item labels alike, so each row ends as a uniform random k-subset; rows
    come back sorted in ascending item order. After the first sort only the rows that had a
    duplicate are looked at again.
    """
    cand = np.sort(cand, axis=1)
    rows = np.arange(cand.shape[0])
    sub = cand
    for _ in range(200):
        dup = np.zeros(sub.shape, dtype=bool)
        dup[:, 1:] = sub[:, 1:] == sub[:, :-1]
        bad = dup.any(axis=1)
        if not bad.any():
            return cand
        rows, sub, dup = rows[bad], sub[bad], dup[bad]
        sub[dup] = rng.integers(0, n_items, size=int(dup.sum()), dtype=np.int64)
        sub = np.sort(sub, axis=1)
        cand[rows] = sub
    raise ValueError("could not draw distinct items; lower log_candidates / n_test_items")  # pragma: no cover
