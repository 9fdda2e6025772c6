"""Train / test splits of an Interactions, all seeded and all in the input's index space.

Every split returns a frozen :class:`Split` whose ``train`` and ``test`` have the input's shape,
id maps and side features, and together hold exactly the input's interactions (disjoint).

**Cold users.** A user can end up with test items but no training data (a single-interaction
user under leave-one-out, a user who only appears after a global time cut). Such users cannot be
scored by a model trained on ``train``, so they are *excluded from evaluation explicitly*:
``info["cold_users"]`` counts them, a logging warning reports them, ``Split.cold_users`` lists
them, and ``Split.eval_users`` / ``Split.eval_test`` are the users and the test set without them.
Evaluate on ``split.eval_test``.

Splits (vectorized: one ``lexsort`` per split, no Python loop per user):

- :func:`random_split` — per-user random holdout of a fraction of each user's interactions;
- :func:`leave_one_out` — each user's latest interaction (``by="time"``) or a random one;
- :func:`temporal_split` — a global cut by time, or the latest fraction of each user;
- :func:`validation_split` — a per-user random holdout carved from a training set.

Per-user counts round half up: a user with ``n`` interactions gets ``floor(f * n + 0.5)`` test
items (so with ``f = 0.2`` a user with 1 or 2 interactions keeps them all in train).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from recsampling._utils import RandomState, check_random_state
from recsampling.data.interactions import Interactions

__all__ = ["Split", "leave_one_out", "random_split", "temporal_split", "validation_split"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """A train / test split in one index space.

    Attributes
    ----------
    train, test : Interactions
        Disjoint; their union is the split input. Same shape and id maps as the input.
    info : dict
        ``method`` and its parameters, ``train_interactions``, ``test_interactions``,
        ``test_users`` (users with a test item), ``cold_users`` (of those, users without
        training data: excluded from evaluation), ``cold_test_interactions``, ``eval_users``.
    """

    train: Interactions
    test: Interactions
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.train.shape != self.test.shape:
            raise ValueError(f"train and test must share one index space, got shapes {self.train.shape} "
                             f"and {self.test.shape}")

    @property
    def cold_users(self) -> np.ndarray:
        """Indices of users with test items but no training interactions (not evaluated)."""
        return np.flatnonzero((self.test.user_counts() > 0) & (self.train.user_counts() == 0))

    @property
    def eval_users(self) -> np.ndarray:
        """Indices of the users to evaluate: with test items and with training data."""
        return np.flatnonzero((self.test.user_counts() > 0) & (self.train.user_counts() > 0))

    @property
    def eval_test(self) -> Interactions:
        """``test`` without the cold users' interactions (same index space)."""
        cold = self.train.user_counts() == 0
        return self.test.subset(~cold[self.test.user_index()])


def _check_fraction(value: float, name: str) -> float:
    """``value`` as a float strictly between 0 and 1 (a bool is not a fraction), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _per_user_count(counts: np.ndarray, fraction: float) -> np.ndarray:
    return np.floor(fraction * counts + 0.5).astype(np.int64)


def _rank_within_user(data: Interactions, *keys: np.ndarray) -> np.ndarray:
    """0-based rank of each interaction inside its user's row, ordered by ``keys`` (last = primary)."""
    u = data.user_index()
    order = np.lexsort((*keys, u))
    rank = np.empty(data.nnz, dtype=np.int64)
    rank[order] = np.arange(data.nnz) - data.matrix.indptr[u[order]]
    return rank


def _finish(data: Interactions, test_mask: np.ndarray, info: dict) -> Split:
    train = data.subset(~test_mask)
    test = data.subset(test_mask)
    tr, te = train.user_counts(), test.user_counts()
    cold = (te > 0) & (tr == 0)
    info = dict(info)
    info.update(
        train_interactions=int(train.nnz),
        test_interactions=int(test.nnz),
        test_users=int((te > 0).sum()),
        cold_users=int(cold.sum()),
        cold_test_interactions=int(te[cold].sum()),
        eval_users=int(((te > 0) & (tr > 0)).sum()),
    )
    if info["cold_users"]:
        logger.warning(
            "%s split: %d users have test items but no training data (%d test interactions); they are "
            "excluded from evaluation (use Split.eval_test / Split.eval_users)",
            info["method"], info["cold_users"], info["cold_test_interactions"],
        )
    return Split(train, test, info)


def _seed_info(random_state) -> int | str | None:
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return None if random_state is None else int(random_state)
    return "Generator"


def random_split(data: Interactions, test_fraction: float = 0.2, random_state: RandomState = None) -> Split:
    """Per-user random holdout: ``floor(test_fraction * n_u + 0.5)`` of each user's interactions go to test.

    Parameters
    ----------
    data : Interactions
    test_fraction : float
        In (0, 1).
    random_state : int, numpy.random.Generator or None
        Seed of the draw; the same seed gives the same split.

    Returns
    -------
    Split
    """
    fraction = _check_fraction(test_fraction, "test_fraction")
    rng = check_random_state(random_state)
    n_test = _per_user_count(data.user_counts(), fraction)
    rank = _rank_within_user(data, rng.random(data.nnz))
    mask = rank < n_test[data.user_index()]
    info = {"method": "random", "test_fraction": fraction, "random_state": _seed_info(random_state)}
    return _finish(data, mask, info)


def leave_one_out(data: Interactions, by: str = "time", random_state: RandomState = None) -> Split:
    """Hold out one interaction per user: the latest (``by="time"``) or a random one.

    Parameters
    ----------
    data : Interactions
    by : {"time", "random"}
        ``"time"`` needs timestamps; ties of the latest time are broken at random.
    random_state : int, numpy.random.Generator or None
        Seed of the random choice / tie-break.

    Returns
    -------
    Split
        Users with a single interaction have it in test and nothing in train: they are counted
        in ``info["cold_users"]`` and left out of ``eval_test``.
    """
    if by not in ("time", "random"):
        raise ValueError(f"by must be 'time' or 'random', got {by!r}")
    rng = check_random_state(random_state)
    keys = [rng.random(data.nnz)]
    if by == "time":
        if data.timestamps is None:
            raise ValueError("leave_one_out(by='time') needs timestamps, and this data has none; use by='random'")
        keys.append(data.timestamps)
    rank = _rank_within_user(data, *keys)
    mask = rank == data.user_counts()[data.user_index()] - 1
    return _finish(data, mask, {"method": f"leave_one_out_{by}", "random_state": _seed_info(random_state)})


def temporal_split(data: Interactions, test_fraction: float = 0.2, per_user: bool = False) -> Split:
    """Split by time: a global cut, or the latest fraction of each user's interactions.

    Parameters
    ----------
    data : Interactions
        Must have timestamps.
    test_fraction : float
        In (0, 1).
    per_user : bool
        False: one global cut time ``t`` = the timestamp at the ``1 - test_fraction`` quantile;
        test is every interaction at or after ``t`` (so every training interaction is strictly
        earlier than every test interaction; with ties at ``t`` the test share can exceed
        ``test_fraction``). Users first seen after ``t`` are cold (counted, not evaluated).
        True: each user's latest ``floor(test_fraction * n_u + 0.5)`` interactions (ties in
        time broken by item index, deterministically).

    Returns
    -------
    Split
        ``info["cut_time"]`` holds ``t`` for the global cut.
    """
    fraction = _check_fraction(test_fraction, "test_fraction")
    if data.timestamps is None:
        raise ValueError("temporal_split needs timestamps, and this data has none; use random_split")
    ts = data.timestamps
    if per_user:
        n = data.user_counts()
        rank = _rank_within_user(data, np.arange(data.nnz), ts)
        u = data.user_index()
        mask = rank >= (n - _per_user_count(n, fraction))[u]
        return _finish(data, mask, {"method": "temporal_per_user", "test_fraction": fraction})
    k = int(np.floor(fraction * data.nnz + 0.5))
    if k == 0:
        raise ValueError(f"test_fraction={fraction} of {data.nnz} interactions leaves no test data")
    cut = np.sort(ts, kind="stable")[data.nnz - k]
    mask = ts >= cut
    if mask.all():
        raise ValueError(f"every interaction has a timestamp >= the cut time {cut}; no training data is left")
    cut_value = cut.item() if hasattr(cut, "item") else cut
    return _finish(data, mask, {"method": "temporal_global", "test_fraction": fraction, "cut_time": cut_value})


def validation_split(train: Interactions, fraction: float = 0.1, random_state: RandomState = None) -> Split:
    """Carve a validation set from a training set by per-user random holdout.

    Parameters
    ----------
    train : Interactions
        The training part of an earlier split.
    fraction : float
        Share of each user's training interactions moved to validation, in (0, 1).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    Split
        ``Split(train=the rest, test=the validation set)``, both in ``train``'s index space.
    """
    if isinstance(train, Split):
        raise ValueError("validation_split takes the training Interactions (split.train), not a Split")
    split = random_split(train, fraction, random_state)
    info = dict(split.info, method="validation", validation_fraction=split.info["test_fraction"])
    return Split(split.train, split.test, info)
