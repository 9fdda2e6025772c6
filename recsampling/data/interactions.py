"""The one data object of the toolkit: an immutable user × item implicit-feedback matrix.

Orientation is always **users × items** (rows are users), unlike some peers; every function in
the package takes and returns that orientation.

Per-interaction columns (``ratings``, ``timestamps``, ``propensities``) are aligned with the
CSR storage order of ``matrix`` (row by row, items sorted within a row), so
``ratings[k]`` belongs to the pair ``(row_of(k), matrix.indices[k])``.

Duplicate (user, item) pairs are never silently doubled. They collapse to one interaction with
value 1, and the columns are aggregated by this documented rule:

- ``rating``: the **maximum** of the duplicates' ratings,
- ``timestamp``: the **earliest** (first time the user interacted with the item),
- ``propensity``: the **mean**.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["Interactions"]

_COLUMNS = ("ratings", "timestamps", "propensities")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _plain(value):
    """A numpy scalar as the Python value, so messages read ``30``, not ``np.int64(30)``."""
    return value.item() if isinstance(value, np.generic) else value


def _check_ids(values, name: str) -> None:
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        bad = np.isnan(arr)
        if bad.any():
            raise ValueError(f"column {name!r} has a missing (NaN) id at row {_first_bad(bad)}")
    elif arr.dtype == object:
        bad = pd.isna(pd.Series(arr)).to_numpy()
        if bad.any():
            raise ValueError(f"column {name!r} has a missing (NaN) id at row {_first_bad(bad)}")


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _check_id_map(values, n: int, name: str) -> np.ndarray:
    """Validate an index -> raw id map: one-dimensional, ``n`` ids, none missing, all distinct."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a one-dimensional array of {n} ids, got shape {arr.shape}")
    if arr.dtype.kind == "f" or arr.dtype == object:
        bad = pd.isna(pd.Series(arr)).to_numpy()
        if bad.any():
            raise ValueError(f"{name} has a missing (NaN/None) id at index {_first_bad(bad)}")
    index = pd.Index(arr)
    try:
        unique = index.is_unique
    except TypeError as e:
        raise ValueError(f"{name} must hold hashable ids (str, numbers): {e}") from None
    if not unique:
        dup = _first_bad(index.duplicated())
        raise ValueError(f"{name} must be distinct, but id {_plain(arr[dup])!r} appears again at index {dup} "
                         "(ids that compare equal, such as 1 and 1.0, are one id)")
    return arr


def _first_row(indptr: np.ndarray, k: int) -> int:
    """Row of stored entry ``k`` of a valid ``indptr``."""
    return int(np.searchsorted(indptr, k, side="right") - 1)


def _check_compressed(indptr, indices, n_data: int, n_major: int, n_minor: int, name: str, major: str,
                      minor: str) -> None:
    """The bounds a CSR (or CSC) matrix's index arrays must keep before any C routine reads them."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    for part, arr in (("indptr", indptr), ("indices", indices)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{name}.{part} must be a one-dimensional integer array, got {arr.dtype} {arr.shape}")
    if indptr.size != n_major + 1:
        raise ValueError(f"{name}.indptr must have n_{major}s + 1 = {n_major + 1} entries, got {indptr.size}")
    nnz = indices.size
    if n_data != nnz:
        raise ValueError(f"{name} has {nnz} {minor} indices but {n_data} values; expected one value per index")
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise ValueError(f"{name}.indptr must start at 0 and end at the number of stored entries ({nnz}), "
                         f"got {_plain(indptr[0])} and {_plain(indptr[-1])}")
    steps = np.diff(indptr.astype(np.int64))
    if steps.size and steps.min() < 0:
        raise ValueError(f"{name}.indptr must be non-decreasing; it decreases after {major} {_first_bad(steps < 0)}")
    if nnz:
        lo, hi = indices.min(), indices.max()
        if lo < 0 or hi >= n_minor:
            k = _first_bad((indices < 0) | (indices >= n_minor))
            raise ValueError(f"{name} has {minor} index {_plain(indices[k])} in {major} {_first_row(indptr, k)}; "
                             f"expected indices in [0, {n_minor}) for shape {n_major} x {n_minor}")


def _check_structure(m, name: str) -> None:
    """Bounds of a sparse matrix's index arrays against its shape (CSR, CSC and COO)."""
    n_rows, n_cols = m.shape
    if m.format == "csr":
        _check_compressed(m.indptr, m.indices, np.asarray(m.data).size, n_rows, n_cols, name, "row", "column")
    elif m.format == "csc":
        _check_compressed(m.indptr, m.indices, np.asarray(m.data).size, n_cols, n_rows, name, "column", "row")
    elif m.format == "coo":
        coords = getattr(m, "coords", None) or (m.row, m.col)
        for axis, (arr, n) in enumerate(zip(coords, (n_rows, n_cols))):
            arr = np.asarray(arr)
            if arr.size != np.asarray(m.data).size:
                raise ValueError(f"{name} has {arr.size} coordinates on axis {axis} but {np.asarray(m.data).size} "
                                 "values; expected one per value")
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(f"{name} has a coordinate {_plain(arr[_first_bad((arr < 0) | (arr >= n))])} on axis "
                                 f"{axis} outside [0, {n}) for shape {n_rows} x {n_cols}")


def _check_canonical(m: sp.csr_matrix) -> None:
    """Column indices strictly increasing within each row (sorted, no duplicates)."""
    idx = m.indices
    if idx.size < 2:
        return
    bad = np.diff(idx.astype(np.int64) if idx.dtype.kind == "u" else idx) <= 0
    starts = m.indptr[1:-1]
    starts = starts[(starts > 0) & (starts < idx.size)]
    bad[starts - 1] = False  # the first entry of a row may be smaller than the last of the row before
    if bad.any():
        k = _first_bad(bad) + 1
        raise ValueError(f"matrix must be canonical CSR, but row {_first_row(m.indptr, k)} has unsorted or duplicate "
                         f"column indices (stored entry {k}); use Interactions.from_csr, which sorts and sums them")


def _check_indices(idx, n: int | None, name: str) -> np.ndarray:
    """Validate contiguous integer indices; return int64 array."""
    arr = np.asarray(idx)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name} has a missing (NaN) index at row {_first_bad(bad)}")
        bad = arr != np.round(arr)
        if bad.any():
            raise ValueError(f"{name} must hold integers, found {arr[_first_bad(bad)].item()!r} at row {_first_bad(bad)}")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        bad = arr < 0
        raise ValueError(f"{name} must be non-negative, found {arr[_first_bad(bad)]} at row {_first_bad(bad)}")
    if n is not None and arr.size and arr.max() >= n:
        bad = arr >= n
        raise ValueError(f"{name} must be < {n}, found {arr[_first_bad(bad)]} at row {_first_bad(bad)}")
    return arr


def _check_shape(shape) -> tuple[int, int]:
    """(n_users, n_items): non-negative integers whose (user, item) keys fit int64 and whose row
    pointers fit in memory."""
    from recsampling._utils import check_memory

    try:
        n_users, n_items = shape
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (n_users, n_items), got {shape!r}") from None
    for n in (n_users, n_items):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"shape must be two integers >= 0, got {shape!r}")
    n_users, n_items = int(n_users), int(n_items)
    if n_users * n_items >= 2**63:
        raise ValueError(f"shape {n_users} x {n_items} has more cells than int64 can index")
    check_memory((n_users + 1) * 8, f"an interaction matrix of {n_users} users", "the shape")
    return n_users, n_items


def _check_column(values, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"column {name!r} must have one value per interaction ({n}), got shape {arr.shape}")
    if arr.dtype.kind not in "iufb":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r} must be numeric, got dtype {arr.dtype}") from None
    bad = ~np.isfinite(arr.astype(np.float64))
    if bad.any():
        raise ValueError(f"column {name!r} has a missing (NaN) or infinite value at row {_first_bad(bad)}")
    return arr


def _check_features(values, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 2-D array with {n} rows, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite values (first in row {_first_bad(~np.isfinite(arr).all(1))})")
    return arr


@dataclass(frozen=True, eq=False)
class Interactions:
    """Immutable implicit feedback: a users × items CSR matrix plus aligned optional columns.

    Build one with :meth:`from_dataframe`, :meth:`from_arrays` or :meth:`from_csr`; the
    constructor itself validates everything and is also usable directly. Every index array is
    checked against the shape before any scipy routine or kernel reads it (``indptr``: n_users + 1
    non-decreasing entries from 0 to nnz; ``indices`` in [0, n_items), strictly increasing within
    each row), so that no input, however made (an edited checkpoint included), can make a kernel
    read or write out of bounds. The id maps hold one distinct, non-missing id per index (ids
    of different types, such as ``1`` and ``'1'``, are different ids; ``1`` and ``1.0`` are one).

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        users × items, float32, canonical (sorted indices, no duplicates, no explicit zeros).
        Its values are 1 unless built from a CSR with other weights.
    user_ids, item_ids : numpy.ndarray
        Raw id of each row / column index (index -> raw id).
    ratings, timestamps, propensities : numpy.ndarray or None
        Per-interaction columns aligned with ``matrix.data``.
    user_features, item_features : numpy.ndarray or None
        Dense side features, one row per user / item (float32).
    user_feature_names, item_feature_names : tuple of str
        Names of the feature columns.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    propensities: np.ndarray | None = None
    user_features: np.ndarray | None = None
    item_features: np.ndarray | None = None
    user_feature_names: tuple = field(default=())
    item_feature_names: tuple = field(default=())

    def __post_init__(self):
        m = self.matrix
        if not sp.issparse(m):
            raise ValueError(f"matrix must be a scipy sparse matrix, got {type(m).__name__}")
        _check_structure(m, "matrix")  # before scipy's C code reads the index arrays
        m = sp.csr_matrix(m, dtype=np.float32)
        _check_canonical(m)
        m.has_canonical_format = True
        if m.data.size and not np.isfinite(m.data).all():
            raise ValueError(f"matrix has NaN or infinite values (first at stored entry {_first_bad(~np.isfinite(m.data))})")
        object.__setattr__(self, "matrix", m)
        n_users, n_items = m.shape
        uid = _check_id_map(self.user_ids, n_users, "user_ids")
        iid = _check_id_map(self.item_ids, n_items, "item_ids")
        object.__setattr__(self, "user_ids", uid)
        object.__setattr__(self, "item_ids", iid)
        for name in _COLUMNS:
            object.__setattr__(self, name, _check_column(getattr(self, name), m.nnz, name))
        object.__setattr__(self, "user_features", _check_features(self.user_features, n_users, "user_features"))
        object.__setattr__(self, "item_features", _check_features(self.item_features, n_items, "item_features"))
        for arr in (m.data, m.indices, m.indptr, uid, iid, *(getattr(self, c) for c in _COLUMNS),
                    self.user_features, self.item_features):
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False
        object.__setattr__(self, "user_feature_names", tuple(self.user_feature_names))
        object.__setattr__(self, "item_feature_names", tuple(self.item_feature_names))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_indices(
        cls,
        users: Iterable[int],
        items: Iterable[int],
        shape: tuple[int, int],
        *,
        user_ids=None,
        item_ids=None,
        values=None,
        ratings=None,
        timestamps=None,
        propensities=None,
        **features,
    ) -> "Interactions":
        """Build from contiguous integer indices (the constructor the others funnel into).

        Parameters
        ----------
        users, items : array-like of int
            Row and column index of each interaction.
        shape : (int, int)
            (n_users, n_items).
        user_ids, item_ids : array-like, optional
            Raw id of each index; defaults to ``arange``.
        values : array-like, optional
            Weight of each interaction (default 1). Duplicates keep the maximum.
        ratings, timestamps, propensities : array-like, optional
            Per-interaction columns; duplicates aggregate as the module docstring says.
        **features
            ``user_features``, ``item_features`` and their ``*_names``.
        """
        n_users, n_items = _check_shape(shape)
        u = _check_indices(users, n_users, "users")
        i = _check_indices(items, n_items, "items")
        if u.shape != i.shape:
            raise ValueError(f"users and items must have the same length, got {u.size} and {i.size}")
        n = u.size
        cols = {name: _check_column(v, n, name) for name, v in
                (("values", values), ("ratings", ratings), ("timestamps", timestamps), ("propensities", propensities))}
        # sort by (user, item) and collapse duplicates
        key = u * n_items + i
        order = np.argsort(key, kind="stable")
        key = key[order]
        start = np.ones(n, dtype=bool)
        start[1:] = key[1:] != key[:-1]
        group = np.cumsum(start) - 1
        first = np.flatnonzero(start)
        n_unique = first.size

        def agg(arr, how):
            if arr is None:
                return None
            arr = arr[order]
            if n_unique == n:
                return arr
            if how == "mean":
                out = np.bincount(group, weights=arr.astype(np.float64), minlength=n_unique) / np.bincount(group)
                return out.astype(np.float32)
            out = arr[first].copy()
            ufunc = np.maximum if how == "max" else np.minimum
            ufunc.at(out, group, arr)
            return out

        data = agg(cols["values"], "max")
        data = np.ones(n_unique, np.float32) if data is None else data.astype(np.float32)
        uu = u[order][first]
        ii = i[order][first]
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(uu, minlength=n_users), out=indptr[1:])
        m = sp.csr_matrix((data, ii.astype(np.int32), indptr), shape=(n_users, n_items))
        m.has_sorted_indices = True
        return cls(
            matrix=m,
            user_ids=np.arange(n_users) if user_ids is None else np.asarray(user_ids),
            item_ids=np.arange(n_items) if item_ids is None else np.asarray(item_ids),
            ratings=agg(cols["ratings"], "max"),
            timestamps=agg(cols["timestamps"], "min"),
            propensities=agg(cols["propensities"], "mean"),
            **features,
        )

    @classmethod
    def from_arrays(
        cls,
        users,
        items,
        *,
        ratings=None,
        timestamps=None,
        propensities=None,
        user_ids=None,
        item_ids=None,
        unknown: str = "error",
        **features,
    ) -> "Interactions":
        """Build from raw user and item ids of any hashable kind.

        Parameters
        ----------
        users, items : array-like
            Raw ids, one per interaction.
        ratings, timestamps, propensities : array-like, optional
            Per-interaction columns.
        user_ids, item_ids : array-like, optional
            The id universe (index -> raw id). Give the ids of another Interactions to put
            this one in the same index space (e.g. a test set aligned to its train set).
            Default: the sorted distinct ids found.
        unknown : {"error", "drop"}
            What to do with ids that are not in a given universe.
        """
        users, items = np.asarray(users), np.asarray(items)
        for name, arr in (("users", users), ("items", items)):
            if arr.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional (one raw id per interaction), got shape {arr.shape}")
        if users.size != items.size:
            raise ValueError(f"users and items must have the same length, got {users.size} and {items.size}")
        df = pd.DataFrame({"user_id": users, "item_id": items})
        for name, v in (("rating", ratings), ("timestamp", timestamps), ("propensity", propensities)):
            if v is not None:
                df[name] = np.asarray(v)
        return cls.from_dataframe(
            df,
            rating_col="rating" if ratings is not None else None,
            timestamp_col="timestamp" if timestamps is not None else None,
            propensity_col="propensity" if propensities is not None else None,
            user_ids=user_ids,
            item_ids=item_ids,
            unknown=unknown,
            **features,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "item_id",
        rating_col: str | None = None,
        timestamp_col: str | None = None,
        propensity_col: str | None = None,
        *,
        user_ids=None,
        item_ids=None,
        unknown: str = "error",
        **features,
    ) -> "Interactions":
        """Build from a pandas DataFrame of (user, item[, rating, timestamp, propensity]) rows.

        Raises
        ------
        ValueError
            naming the column and the first offending row: a missing column, a NaN id, a
            NaN rating, an empty frame, an id outside a given universe.
        """
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
        wanted = [c for c in (user_col, item_col, rating_col, timestamp_col, propensity_col) if c is not None]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise ValueError(f"missing column(s) {missing}; the frame has {list(df.columns)}")
        if len(df) == 0:
            raise ValueError("no interactions: the data is empty")
        if unknown not in ("error", "drop"):
            raise ValueError(f"unknown must be 'error' or 'drop', got {unknown!r}")
        _check_ids(df[user_col].to_numpy(), user_col)
        _check_ids(df[item_col].to_numpy(), item_col)
        columns = {}
        for key, col in (("ratings", rating_col), ("timestamps", timestamp_col), ("propensities", propensity_col)):
            if col is not None:
                try:
                    columns[key] = _check_column(df[col].to_numpy(), len(df), col)
                except ValueError as e:
                    raise ValueError(str(e).replace(f"column {key!r}", f"column {col!r}")) from None

        def encode(values, universe, col):
            try:
                if universe is None:
                    codes, uniques = pd.factorize(values, sort=True)
                    return codes, np.asarray(uniques), np.ones(len(values), bool)
                universe = np.asarray(universe)
                codes = pd.Index(universe).get_indexer(values)
            except TypeError:  # unhashable ids (lists, dicts, arrays); found row by row on this error path only
                row = next(r for r, v in enumerate(values) if not _hashable(v))
                what = "list" if isinstance(values[row], (list, np.ndarray)) else type(values[row]).__name__
                raise ValueError(f"column {col!r} holds {what} values (row {row}: {values[row]!r:.60}); ids must be "
                                 "numbers or strings") from None
            ok = codes >= 0
            if not ok.all() and unknown == "error":
                row = _first_bad(~ok)
                raise ValueError(f"column {col!r} has id {_plain(values[row])!r} at row {row} that is not in the given id list")
            return codes, universe, ok

        u_codes, uids, ok_u = encode(df[user_col].to_numpy(), user_ids, user_col)
        i_codes, iids, ok_i = encode(df[item_col].to_numpy(), item_ids, item_col)
        keep = ok_u & ok_i
        if not keep.all():
            u_codes, i_codes = u_codes[keep], i_codes[keep]
            columns = {k: v[keep] for k, v in columns.items()}
            if keep.sum() == 0:
                raise ValueError("no interactions left after dropping ids outside the given id lists")
        return cls.from_indices(u_codes, i_codes, (len(uids), len(iids)), user_ids=uids, item_ids=iids,
                                **columns, **features)

    @classmethod
    def from_csr(cls, matrix, user_ids=None, item_ids=None, **kwargs) -> "Interactions":
        """Build from any scipy sparse users × items matrix; stored zeros are dropped.

        Values are kept as weights; duplicates (in COO input, or repeated column indices in a
        CSR row) are summed, so pass a deduplicated matrix when sums are not wanted. Unsorted
        rows are sorted. The index arrays of CSR, CSC and COO input are checked against the shape
        first (a ``ValueError`` names the offending index), since scipy's sorting and summing
        trust them.
        """
        if not sp.issparse(matrix):
            raise ValueError(f"expected a scipy sparse matrix, got {type(matrix).__name__}")
        _check_structure(matrix, "matrix")  # scipy's sorting and summing trust the index arrays
        m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        n_users, n_items = m.shape
        return cls(
            matrix=m,
            user_ids=np.arange(n_users) if user_ids is None else np.asarray(user_ids),
            item_ids=np.arange(n_items) if item_ids is None else np.asarray(item_ids),
            **kwargs,
        )

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    def __len__(self) -> int:
        return self.matrix.nnz

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_users * self.n_items)

    def user_index(self) -> np.ndarray:
        """Row index of each stored interaction (aligned with ``matrix.data``)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.matrix.indptr))

    def item_index(self) -> np.ndarray:
        """Column index of each stored interaction (aligned with ``matrix.data``)."""
        return self.matrix.indices.astype(np.int64)

    def user_counts(self) -> np.ndarray:
        """Interactions per user."""
        return np.diff(self.matrix.indptr)

    def item_counts(self) -> np.ndarray:
        """Interactions per item."""
        return np.bincount(self.matrix.indices, minlength=self.n_items)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per interaction with raw ids, indices and the optional columns."""
        u, i = self.user_index(), self.item_index()
        out = {"user_id": self.user_ids[u], "item_id": self.item_ids[i], "user": u, "item": i,
               "value": self.matrix.data}
        for name, col in (("rating", self.ratings), ("timestamp", self.timestamps), ("propensity", self.propensities)):
            if col is not None:
                out[name] = col
        return pd.DataFrame(out)

    def describe(self) -> dict:
        """Plain-number summary (what ``recsampling datasets describe`` prints)."""
        uc, ic = self.user_counts(), self.item_counts()
        d = {
            "users": int(self.n_users),
            "items": int(self.n_items),
            "interactions": int(self.nnz),
            "density": float(self.density),
            "users_without_interactions": int((uc == 0).sum()),
            "items_without_interactions": int((ic == 0).sum()),
            "min_user_interactions": int(uc.min()) if uc.size else 0,
            "max_user_interactions": int(uc.max()) if uc.size else 0,
            "max_item_interactions": int(ic.max()) if ic.size else 0,
            "has_ratings": self.ratings is not None,
            "has_timestamps": self.timestamps is not None,
            "has_propensities": self.propensities is not None,
            "user_features": 0 if self.user_features is None else int(self.user_features.shape[1]),
            "item_features": 0 if self.item_features is None else int(self.item_features.shape[1]),
        }
        if self.ratings is not None and self.ratings.size:
            d["rating_min"] = float(self.ratings.min())
            d["rating_max"] = float(self.ratings.max())
        return d

    def __repr__(self) -> str:
        cols = [c for c in _COLUMNS if getattr(self, c) is not None]
        feats = []
        if self.user_features is not None:
            feats.append(f"user_features={self.user_features.shape[1]}")
        if self.item_features is not None:
            feats.append(f"item_features={self.item_features.shape[1]}")
        extra = (", columns=" + "/".join(cols)) if cols else ""
        extra += (", " + ", ".join(feats)) if feats else ""
        return (f"<Interactions {self.n_users} users x {self.n_items} items, {self.nnz} interactions "
                f"(density {self.density:.4%}){extra}>")

    # ------------------------------------------------------------------ derived data
    def subset(self, mask: np.ndarray) -> "Interactions":
        """Keep the stored interactions where ``mask`` (aligned with ``matrix.data``) is True.

        The result lives in the same index space (same shape and id maps, features kept).
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise ValueError(f"mask must have one entry per interaction ({self.nnz}), got shape {mask.shape}")
        m = self.matrix
        rows = self.user_index()[mask]
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.n_users), out=indptr[1:])
        new = sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
        new.has_sorted_indices = True
        cols = {c: (None if getattr(self, c) is None else getattr(self, c)[mask]) for c in _COLUMNS}
        return replace(self, matrix=new, **cols)

    def with_values(self, **changes) -> "Interactions":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def to_implicit(self, threshold: float | None = 4.0) -> "Interactions":
        """Turn ratings into "interacted": keep pairs with ``rating >= threshold``.

        Parameters
        ----------
        threshold : float or None
            None keeps every rated pair as a positive.
        """
        if threshold is None:
            return self
        if self.ratings is None:
            raise ValueError("to_implicit(threshold) needs ratings, and this data has none; pass threshold=None")
        return self.subset(self.ratings >= threshold)

    def kcore(self, min_user: int = 5, min_item: int = 5, compact: bool = True) -> "Interactions":
        """Iteratively drop users and items with fewer than ``min_user`` / ``min_item`` interactions.

        Parameters
        ----------
        min_user, min_item : int, default 5
            Fewest interactions a kept user / item has (>= 1), counted on the survivors until no
            more rows or columns drop.
        compact : bool
            Re-index the survivors (drop empty rows and columns) when True; keep the index space
            when False.

        Returns
        -------
        Interactions

        Raises
        ------
        ValueError
            when a minimum is < 1 or the core is empty.
        """
        if min_user < 1 or min_item < 1:
            raise ValueError(f"min_user and min_item must be >= 1, got {min_user} and {min_item}")
        keep = np.ones(self.nnz, dtype=bool)
        u, i = self.user_index(), self.item_index()
        while True:
            uc = np.bincount(u[keep], minlength=self.n_users)
            ic = np.bincount(i[keep], minlength=self.n_items)
            new = keep & (uc[u] >= min_user) & (ic[i] >= min_item)
            if new.sum() == keep.sum():
                break
            keep = new
        if not keep.any():
            raise ValueError(f"the {min_user}/{min_item}-core is empty")
        out = self.subset(keep)
        return out.compact() if compact else out

    def compact(self) -> "Interactions":
        """Drop users and items without interactions and re-index the rest."""
        users = np.flatnonzero(self.user_counts() > 0)
        items = np.flatnonzero(self.item_counts() > 0)
        return self.take(users, items)

    def take(self, users: np.ndarray, items: np.ndarray | None = None) -> "Interactions":
        """Restrict to the given user (and item) indices, re-indexed in the given order."""
        users = np.asarray(users, dtype=np.int64)
        items = np.arange(self.n_items) if items is None else np.asarray(items, dtype=np.int64)
        sub = self.matrix[users][:, items].tocsr()
        pos = np.arange(self.nnz, dtype=np.float64) + 1.0  # carry row positions through slicing
        carrier = sp.csr_matrix((pos, self.matrix.indices, self.matrix.indptr), shape=self.shape)[users][:, items]
        carrier.sort_indices()
        sub.sort_indices()
        idx = carrier.data.astype(np.int64) - 1
        cols = {c: (None if getattr(self, c) is None else getattr(self, c)[idx]) for c in _COLUMNS}
        return Interactions(
            matrix=sub,
            user_ids=self.user_ids[users],
            item_ids=self.item_ids[items],
            user_features=None if self.user_features is None else self.user_features[users],
            item_features=None if self.item_features is None else self.item_features[items],
            user_feature_names=self.user_feature_names,
            item_feature_names=self.item_feature_names,
            **cols,
        )
