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

   with the offset ``b`` solved so that the mean relevance over all pairs is ``relevance_rate``.

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
   ``Σ_ui exposure·relevance`` equals ``target_interactions``.

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
   nested as ``ρ`` grows and everything else stays the same.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit

from recsampling._utils import RandomState, check_random_state
from recsampling.data.interactions import Interactions

__all__ = ["SyntheticWorld", "LoggedLists", "make_world"]

logger = logging.getLogger(__name__)

# the time span of MovieLens 100K (unix seconds), used for the random timestamps
_T0, _T1 = 874_724_710, 893_286_638
# calibration looks at a subsample of users when the matrix is larger than this many pairs
_CALIBRATION_PAIRS = 2_000_000


def _readonly(*arrays) -> None:
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False


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
    (the raw ids of every Interactions here equal the indices).

    Attributes
    ----------
    clicks : Interactions
        The observed training data: true positives minus the hidden ones. Columns:
        ``propensities`` (the true exposure of each pair), ``timestamps`` (int64 unix seconds);
        no ratings. Carries ``user_features`` / ``item_features``.
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
    relevance : numpy.ndarray
        float32, (n_users, n_items): true P(relevant).
    exposure : numpy.ndarray
        float32, (n_users, n_items): true P(exposed), in ``[min_exposure, 1]``.
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
        The ``c`` of ``noise_rate = clip(c w_u w_i, 0, 1)``.
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
    relevance: np.ndarray
    exposure: np.ndarray
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

    def __post_init__(self):
        _readonly(self.unbiased_test_items, self.unbiased_test_labels, self.relevance, self.exposure,
                  self.item_popularity, self.item_propensity, self.user_activity, self.user_noise_rate,
                  self.item_noise_rate, self.user_noise_weight, self.item_noise_weight, self.user_factors,
                  self.item_factors, self.item_quality, self.user_features, self.item_features)

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return int(self.relevance.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.relevance.shape[1])

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

    def click_probability(self) -> np.ndarray:
        """``exposure · relevance``, the probability that a pair is a true positive (float32)."""
        return self.exposure * self.relevance

    def expected_clicks(self) -> float:
        """Expected number of true positives, ``Σ exposure · relevance``."""
        return float(np.sum(self.exposure * self.relevance, dtype=np.float64))

    def noise_rate(self) -> np.ndarray:
        """The per-pair probability that a true positive is hidden, (n_users, n_items) float32."""
        w = (np.float32(self.noise_scale) * self.user_noise_weight[:, None]) * self.item_noise_weight[None, :]
        return np.clip(w, 0.0, 1.0, out=w)

    def test_relevance(self) -> np.ndarray:
        """True relevance of each user's randomized test items, (n_users, n_test_items) float32."""
        return np.take_along_axis(self.relevance, self.unbiased_test_items, axis=1)

    def describe(self) -> dict:
        """Plain-number summary (the observed clicks' numbers plus the world's own)."""
        d = self.clicks.describe()
        d.update({
            "true_positives": int(self.true_positives.nnz),
            "hidden_positives": int(self.hidden_positives.nnz),
            "expected_clicks": self.expected_clicks(),
            "mean_relevance": float(self.relevance.mean(dtype=np.float64)),
            "mean_exposure": float(self.exposure.mean(dtype=np.float64)),
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
def _check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_real(value, name: str, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def _lognormal_mean_one(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    w = np.exp(sigma * rng.standard_normal(n))
    return (w / w.mean()).astype(np.float32)


def _standardize(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return ((x - x.mean(axis=0)) / sd).astype(np.float32)


def _calibration_rows(n_users: int, n_items: int, pairs: int = _CALIBRATION_PAIRS) -> np.ndarray:
    """Evenly spaced user rows whose pairs number about ``pairs`` (all rows when fewer)."""
    n = max(1, min(n_users, pairs // max(1, n_items)))
    return np.unique(np.linspace(0, n_users - 1, n).round().astype(np.int64))


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


def _interactions(users, items, shape, timestamps, propensities, features: dict) -> Interactions:
    return Interactions.from_indices(users, items, shape, timestamps=timestamps, propensities=propensities,
                                     **features)


# ---------------------------------------------------------------------------- the generator
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
    n_users = _check_positive_int(n_users, "n_users")
    n_items = _check_positive_int(n_items, "n_items")
    target = _check_real(target_interactions, "target_interactions", 0.0, low_open=True)
    factors = _check_positive_int(factors, "factors")
    relevance_scale = _check_real(relevance_scale, "relevance_scale", 0.0)
    quality_std = _check_real(quality_std, "quality_std", 0.0)
    relevance_rate = _check_real(relevance_rate, "relevance_rate", 0.0, 1.0, low_open=True, high_open=True)
    popularity_exponent = _check_real(popularity_exponent, "popularity_exponent", 0.0)
    popularity_quality_corr = _check_real(popularity_quality_corr, "popularity_quality_corr", -1.0, 1.0)
    exposure_eta = _check_real(exposure_eta, "exposure_eta", 0.0)
    user_activity_sigma = _check_real(user_activity_sigma, "user_activity_sigma", 0.0)
    min_exposure = _check_real(min_exposure, "min_exposure", 0.0, 1.0, low_open=True)
    label_noise = _check_real(label_noise, "label_noise", 0.0, 1.0, high_open=True)
    noise_heterogeneity = _check_real(noise_heterogeneity, "noise_heterogeneity", 0.0)
    n_logged_lists = 20 * n_users if n_logged_lists is None else _check_positive_int(
        n_logged_lists, "n_logged_lists", 0)
    list_length = _check_positive_int(list_length, "list_length")
    if list_length > n_items:
        raise ValueError(f"list_length must be <= n_items ({n_items}), got {list_length}")
    log_candidates = (min(5 * list_length, n_items) if log_candidates is None
                      else _check_positive_int(log_candidates, "log_candidates"))
    if log_candidates < list_length:
        raise ValueError(f"log_candidates must be >= list_length ({list_length}), got {log_candidates}")
    if log_candidates > n_items:
        raise ValueError(f"log_candidates must be <= n_items ({n_items}), got {log_candidates}")
    logging_noise = _check_real(logging_noise, "logging_noise", 0.0)
    if logging_ranker not in ("relevance", "linear"):
        raise ValueError(f"logging_ranker must be 'relevance' or 'linear', got {logging_ranker!r}")
    logging_labels = _check_positive_int(logging_labels, "logging_labels")
    position_eta = _check_real(position_eta, "position_eta", 0.0)
    n_test_items = _check_positive_int(n_test_items, "n_test_items", 0)
    if n_test_items > n_items:
        raise ValueError(f"n_test_items must be <= n_items ({n_items}), got {n_test_items}")
    n_user_features = _check_positive_int(n_user_features, "n_user_features", 0)
    n_item_features = _check_positive_int(n_item_features, "n_item_features", 0)
    feature_noise = _check_real(feature_noise, "feature_noise", 0.0)
    if logging_ranker == "linear" and n_logged_lists and not (n_user_features and n_item_features):
        raise ValueError("logging_ranker='linear' needs side features (n_user_features and n_item_features > 0)")

    rng = check_random_state(random_state)
    (rng_latent, rng_pop, rng_click, rng_noise, rng_logs, rng_test, rng_feat,
     rng_time) = rng.spawn(8)
    shape = (n_users, n_items)
    cal_rows = _calibration_rows(n_users, n_items)

    # 1. relevance ------------------------------------------------------------------------
    scale = np.float32(factors ** -0.25)
    U = (rng_latent.standard_normal((n_users, factors), dtype=np.float32) * scale)
    V = (rng_latent.standard_normal((n_items, factors), dtype=np.float32) * scale)
    quality = (quality_std * rng_latent.standard_normal(n_items)).astype(np.float32)
    logits = np.float32(relevance_scale) * (U @ V.T)
    logits += quality[None, :]
    cal = logits[_calibration_rows(n_users, n_items, 300_000)]  # a rate: a subsample is plenty
    offset = _solve_increasing(lambda b: float(expit(cal + np.float32(b)).mean(dtype=np.float64)),
                               relevance_rate, -60.0, 1.0, "relevance_rate")
    logits += np.float32(offset)
    relevance = expit(logits).astype(np.float32, copy=False)
    del logits, cal

    # 2. popularity -----------------------------------------------------------------------
    z = (quality - quality.mean()) / (quality.std() or 1.0)
    c = popularity_quality_corr
    key = c * z + np.sqrt(max(0.0, 1.0 - c * c)) * rng_pop.standard_normal(n_items)
    rank = np.empty(n_items, dtype=np.int64)
    rank[np.argsort(-key, kind="stable")] = np.arange(1, n_items + 1)
    popularity = (rank.astype(np.float64) ** -popularity_exponent).astype(np.float32)

    # 3. exposure -------------------------------------------------------------------------
    activity = _lognormal_mean_one(rng_pop, user_activity_sigma, n_users)
    base = activity[:, None] * (popularity.astype(np.float32) ** np.float32(exposure_eta))[None, :]
    rel_cal = relevance[cal_rows]
    base_cal = base[cal_rows]
    cal_target = target * len(cal_rows) / n_users
    reachable = float(rel_cal.sum(dtype=np.float64))
    if cal_target >= reachable * (1 - 1e-6):
        raise ValueError(
            f"target_interactions={target_interactions} cannot be reached: even full exposure gives about "
            f"{reachable * n_users / len(cal_rows):.0f} clicks (relevance_rate={relevance_rate}); "
            "lower target_interactions or raise relevance_rate")

    def expected(s):
        e = np.clip(np.float32(s) * base_cal, min_exposure, 1.0)
        return float(np.sum(e * rel_cal, dtype=np.float64))

    if expected(0.0) >= cal_target:
        raise ValueError(
            f"target_interactions={target_interactions} is below what min_exposure={min_exposure} alone gives "
            f"(about {expected(0.0) * n_users / len(cal_rows):.0f} clicks); lower min_exposure")
    exposure_scale = _solve_increasing(expected, cal_target, 0.0, 1.0 / float(base_cal.max()), "exposure scale")
    del rel_cal, base_cal
    base *= np.float32(exposure_scale)
    exposure = np.clip(base, min_exposure, 1.0, out=base)
    del base
    item_propensity = exposure.mean(axis=0, dtype=np.float64).astype(np.float32)

    # 4. clicks ---------------------------------------------------------------------------
    p_click = exposure * relevance
    draw = rng_click.random(shape, dtype=np.float32)
    tu, ti = np.nonzero(draw < p_click)
    del draw
    n_tp = tu.size
    tp_prop = exposure[tu, ti]
    tp_time = (rng_time.integers(_T0, _T1 + 1, size=n_tp, dtype=np.int64) if timestamps else None)

    # 5. label noise ----------------------------------------------------------------------
    w_user = _lognormal_mean_one(rng_noise, noise_heterogeneity, n_users)
    w_item = _lognormal_mean_one(rng_noise, noise_heterogeneity, n_items)
    hide_u = rng_noise.random(n_tp)
    if label_noise > 0 and n_tp:
        prod = w_user[tu].astype(np.float64) * w_item[ti]
        noise_scale = _solve_increasing(lambda s: float(np.minimum(s * prod, 1.0).sum()), label_noise * n_tp,
                                        0.0, label_noise, "noise scale")
        q_tp = np.minimum(noise_scale * prod, 1.0)
        hidden = hide_u < q_tp
        # expected hidden fraction of each user's / item's true positives
        q = np.minimum(np.float32(noise_scale) * w_user[:, None] * w_item[None, :], np.float32(1.0))
        q *= p_click
        denom_u = p_click.sum(axis=1, dtype=np.float64)
        denom_i = p_click.sum(axis=0, dtype=np.float64)
        user_noise_rate = (q.sum(axis=1, dtype=np.float64) / np.maximum(denom_u, 1e-12)).astype(np.float32)
        item_noise_rate = (q.sum(axis=0, dtype=np.float64) / np.maximum(denom_i, 1e-12)).astype(np.float32)
        del q
    else:
        noise_scale = 0.0
        hidden = np.zeros(n_tp, dtype=bool)
        user_noise_rate = np.zeros(n_users, dtype=np.float32)
        item_noise_rate = np.zeros(n_items, dtype=np.float32)
    del p_click

    # 8. side features (before building the Interactions that carry them) ------------------
    user_features = _features(rng_feat, U, n_user_features, feature_noise)
    item_features = _features(rng_feat, np.hstack([V, quality[:, None] / max(quality_std, 1e-12) * scale]),
                              n_item_features, feature_noise)
    feats = {}
    if user_features is not None:
        feats["user_features"] = user_features
        feats["user_feature_names"] = tuple(f"u{j}" for j in range(n_user_features))
    if item_features is not None:
        feats["item_features"] = item_features
        feats["item_feature_names"] = tuple(f"i{j}" for j in range(n_item_features))

    def sub(mask):
        return _interactions(tu[mask], ti[mask], shape, None if tp_time is None else tp_time[mask],
                             tp_prop[mask], feats)

    true_positives = sub(slice(None))
    clicks = sub(~hidden)
    hidden_positives = sub(hidden)

    # 6. logged ranked lists --------------------------------------------------------------
    if logging_ranker == "linear" and n_logged_lists:
        log_score = _linear_logging_scores(rng_logs, relevance, user_features, item_features, logging_labels)
    else:
        log_score = None
    logs = _draw_logs(rng_logs, relevance, n_logged_lists, list_length, log_candidates, logging_noise,
                      position_eta, log_score)

    # 7. unbiased test set ----------------------------------------------------------------
    if n_test_items:
        test_items = np.sort(_distinct_uniform(rng_test, n_users, n_test_items, n_items), axis=1)
        test_rel = np.take_along_axis(relevance, test_items, axis=1)
        test_labels = (rng_test.random(test_items.shape, dtype=np.float32) < test_rel).astype(np.int8)
    else:
        test_items = np.zeros((n_users, 0), dtype=np.int64)
        test_labels = np.zeros((n_users, 0), dtype=np.int8)
    pu, pk = np.nonzero(test_labels)
    unbiased_test = _interactions(pu, test_items[pu, pk], shape, None, np.ones(pu.size, np.float32), feats)

    params = dict(
        n_users=n_users, n_items=n_items, target_interactions=target_interactions, factors=factors,
        relevance_scale=relevance_scale, quality_std=quality_std, relevance_rate=relevance_rate,
        popularity_exponent=popularity_exponent, popularity_quality_corr=popularity_quality_corr,
        exposure_eta=exposure_eta, user_activity_sigma=user_activity_sigma, min_exposure=min_exposure,
        label_noise=label_noise, noise_heterogeneity=noise_heterogeneity, n_logged_lists=n_logged_lists,
        list_length=list_length, log_candidates=log_candidates, logging_noise=logging_noise,
        logging_ranker=logging_ranker, logging_labels=logging_labels, position_eta=position_eta,
        n_test_items=n_test_items, n_user_features=n_user_features,
        n_item_features=n_item_features, feature_noise=feature_noise, timestamps=timestamps,
        random_state=random_state if isinstance(random_state, (int, np.integer)) or random_state is None
        else "Generator",
        relevance_offset=offset, exposure_scale=exposure_scale, noise_scale=noise_scale,
    )
    logger.debug("synthetic world %dx%d: relevance offset %.4f, exposure scale %.4g, noise scale %.4g, "
                 "%d true positives, %d hidden", n_users, n_items, offset, exposure_scale, noise_scale, n_tp,
                 int(hidden.sum()))
    return SyntheticWorld(
        clicks=clicks,
        true_positives=true_positives,
        hidden_positives=hidden_positives,
        unbiased_test=unbiased_test,
        unbiased_test_items=test_items,
        unbiased_test_labels=test_labels,
        logs=logs,
        relevance=relevance,
        exposure=exposure,
        item_popularity=popularity,
        item_propensity=item_propensity,
        user_activity=activity,
        user_noise_rate=user_noise_rate,
        item_noise_rate=item_noise_rate,
        user_noise_weight=w_user,
        item_noise_weight=w_item,
        noise_scale=float(noise_scale),
        user_factors=U,
        item_factors=V,
        item_quality=quality,
        user_features=user_features,
        item_features=item_features,
        params=params,
    )


def _linear_logging_scores(rng: np.random.Generator, relevance: np.ndarray, user_features: np.ndarray,
                           item_features: np.ndarray, n_labels: int, l2: float = 1.0) -> np.ndarray:
    """A weak logging ranker: logistic regression on ``[x_u, 1] ⊗ [x_i, 1]`` from ``n_labels`` labels.

    ``n_labels`` uniform (user, item) pairs get a ``Bernoulli(relevance)`` label; the weights
    minimize the summed logistic loss plus ``l2 / 2 · ‖w‖²`` (Newton's method, a few steps).
    Returns the score matrix (n_users, n_items), on the logit scale, float32.
    """
    n_users, n_items = relevance.shape
    xu = np.hstack([user_features, np.ones((n_users, 1), np.float32)]).astype(np.float64)
    xi = np.hstack([item_features, np.ones((n_items, 1), np.float32)]).astype(np.float64)
    u = rng.integers(0, n_users, size=n_labels)
    i = rng.integers(0, n_items, size=n_labels)
    y = (rng.random(n_labels) < relevance[u, i]).astype(np.float64)
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
    return (xu @ w.reshape(xu.shape[1], xi.shape[1]) @ xi.T).astype(np.float32)


def _draw_logs(rng: np.random.Generator, relevance: np.ndarray, n_lists: int, L: int, n_cand: int,
               logging_noise: float, position_eta: float, log_score: np.ndarray | None = None) -> LoggedLists:
    """Logged lists: uniform distinct candidates, ranked by a noisy logging ranker, position clicks.

    The ranker's score is ``log_score`` (n_users, n_items) when given, else ``logit(relevance)``;
    Gaussian noise of standard deviation ``logging_noise`` is added per shown candidate.
    """
    n_users, n_items = relevance.shape
    theta = (1.0 / np.arange(1, L + 1, dtype=np.float64)) ** position_eta
    theta = theta.astype(np.float32)
    users = rng.integers(0, n_users, size=n_lists, dtype=np.int64)
    # distinct uniform candidates per list
    cand = _distinct_uniform(rng, n_lists, n_cand, n_items)
    rel = relevance[users[:, None], cand]
    base = logit(np.clip(rel, 1e-6, 1 - 1e-6)) if log_score is None else log_score[users[:, None], cand]
    score = base + np.float32(logging_noise) * rng.standard_normal(cand.shape, dtype=np.float32)
    top = np.argpartition(-score, L - 1, axis=1)[:, :L] if L < n_cand else np.arange(n_cand)[None, :].repeat(
        n_lists, axis=0)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, axis=1), axis=1), axis=1)
    items = np.take_along_axis(cand, top, axis=1)
    shown_rel = np.take_along_axis(rel, top, axis=1).astype(np.float32)
    examined = rng.random((n_lists, L), dtype=np.float32) < theta[None, :]
    relevant = rng.random((n_lists, L), dtype=np.float32) < shown_rel
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
    come back sorted in ascending item order except for the redrawn entries.
    """
    for _ in range(200):
        cand = np.sort(cand, axis=1)
        dup = np.zeros(cand.shape, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            return cand
        cand[dup] = rng.integers(0, n_items, size=n_dup, dtype=np.int64)
    raise ValueError("could not draw distinct items; lower log_candidates / n_test_items")  # pragma: no cover
