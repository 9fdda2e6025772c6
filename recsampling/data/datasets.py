"""Load any supported data set by name: ``load_dataset("ml-100k", data_dir="../shared/data")``.

Names: ``ml-100k``, ``ml-1m``, ``ml-10m``, ``ml-20m``, ``ml-25m``, ``ml-32m``, ``ml-latest``,
``ml-latest-small`` (MovieLens, every rating kept), ``coat`` and ``yahoo-r3`` (biased train in
``interactions``, the randomized test in ``test``), ``synthetic`` (the embedded world of
:mod:`recsampling.data.synthetic`), or the path of a CSV / TSV / Parquet file (the generic reader)
or of a data set's folder / zip.

``data_dir`` is the folder that *contains* ``ml-100k/``, ``coat/``, ... (e.g. ``../shared/data``);
the set's own folder is accepted too. Without ``data_dir`` the cache folder
(``platformdirs.user_cache_dir("recsampling")``) is searched, and ``download=True`` fetches a
MovieLens release there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from recsampling.data.interactions import Interactions

__all__ = ["Dataset", "describe_dataset", "list_datasets", "load_dataset"]

_MOVIELENS_LICENSE = ("GroupLens terms: research use, no redistribution without permission, no commercial use "
                      "without permission, cite Harper & Konstan (TiiS 2015)")


@dataclass(frozen=True)
class Dataset:
    """A loaded data set.

    Attributes
    ----------
    name : str
        Registry name (or the file path for the generic reader).
    interactions : Interactions
        All interactions (MovieLens, a file) or the biased training set (Coat, Yahoo! R3, the
        synthetic world's observed clicks).
    test : Interactions or None
        The randomized (missing-at-random) test set in the same index space, where the set has
        one; None otherwise (then split ``interactions`` with :mod:`recsampling.data.splits`).
    info : dict
        Where it came from (``source``), and for sets with a randomized test ``test_items``:
        int64 (n_users, k) per-user test candidate items, padded with -1. The synthetic set also
        carries its ``world`` (the known truth).
    """

    name: str
    interactions: Interactions
    test: Interactions | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.test is not None and self.test.shape != self.interactions.shape:
            raise ValueError(f"test must share the index space of interactions, got shapes {self.test.shape} "
                             f"and {self.interactions.shape}")

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, interactions={self.interactions!r}, test={self.test!r}, "
                f"info keys={sorted(self.info)})")


def _test_items(test: Interactions) -> np.ndarray:
    """(n_users, max per-user count) item indices of each user's test items, padded with -1."""
    counts = test.user_counts()
    width = int(counts.max()) if counts.size else 0
    out = np.full((test.n_users, width), -1, dtype=np.int64)
    u = test.user_index()
    pos = np.arange(test.nnz) - test.matrix.indptr[u]
    out[u, pos] = test.item_index()
    return out


# --------------------------------------------------------------------------- loaders
def _movielens(name: str) -> Callable[..., Dataset]:
    def load(data_dir=None, download=False, features=True, **kw) -> Dataset:
        from recsampling.data.movielens import find_movielens, read_movielens

        _no_extra(name, kw)
        src = find_movielens(name, data_dir, download)
        return Dataset(name, read_movielens(src.path, features=features), None, {"source": str(src.path)})

    return load


def _mnar(name: str) -> Callable[..., Dataset]:
    def load(data_dir=None, download=False, **kw) -> Dataset:
        from recsampling.data import mnar

        features = kw.pop("features", True)
        _no_extra(name, kw)
        find, url = (mnar.find_coat, mnar.COAT_URL) if name == "coat" else (mnar.find_yahoo_r3, mnar.YAHOO_URL)
        try:
            src = find(data_dir)
        except FileNotFoundError:
            if download:
                mnar._no_download(name, url)
            raise
        data = mnar.read_coat(src.path, features=features) if name == "coat" else mnar.read_yahoo_r3(src.path)
        return Dataset(name, data.train, data.test, {"source": str(src.path), "test_items": _test_items(data.test)})

    return load


def _synthetic(data_dir=None, download=False, **kw) -> Dataset:
    import inspect

    from recsampling.data.synthetic import make_world

    try:
        inspect.signature(make_world).bind(**kw)
    except TypeError as e:
        raise ValueError(f"synthetic takes make_world's arguments: {e}") from None
    world = make_world(**kw)
    info = {"source": "recsampling.data.synthetic.make_world", "params": dict(getattr(world, "params", {}) or kw),
            "world": world}
    test_items = getattr(world, "unbiased_test_items", None)
    if test_items is not None:
        info["test_items"] = test_items
    return Dataset("synthetic", world.clicks, world.unbiased_test, info)


def _no_extra(name: str, kw: dict) -> None:
    if kw:
        raise ValueError(f"{name} takes no options {sorted(kw)}; only data_dir, download and features")


_REGISTRY: dict[str, dict] = {}


def _register(name, loader, size, license, url, users=None, items=None, interactions=None):
    _REGISTRY[name] = {"loader": loader, "size": size, "license": license, "url": url,
                       "users": users, "items": items, "interactions": interactions}


def _init_registry() -> None:
    from recsampling.data.movielens import GROUPLENS_URL, MOVIELENS_RELEASES

    # figures from each release's README (movies = listed in the movies file; the matrix has the rated ones)
    sizes = {
        "ml-100k": "100,000 ratings (1-5), 943 users x 1,682 movies",
        "ml-1m": "1,000,209 ratings (1-5), 6,040 users x 3,706 rated movies",
        "ml-10m": "10,000,054 ratings (0.5-5), 10,681 movies, 71,567 users listed",
        "ml-20m": "20,000,263 ratings (0.5-5), 138,493 users, 27,278 movies",
        "ml-25m": "25,000,095 ratings (0.5-5), 162,541 users, 62,423 movies",
        "ml-32m": "32,000,204 ratings (0.5-5), 200,948 users, 87,585 movies",
        "ml-latest": "the full current release (grows over time; ~33M+ ratings)",
        "ml-latest-small": "~100k ratings, ~600 users, ~9,700 movies (changes over time)",
    }
    users = {"ml-100k": 943, "ml-1m": 6040, "ml-20m": 138_493, "ml-25m": 162_541, "ml-32m": 200_948}
    ratings = {"ml-100k": 100_000, "ml-1m": 1_000_209, "ml-10m": 10_000_054, "ml-20m": 20_000_263,
               "ml-25m": 25_000_095, "ml-32m": 32_000_204}
    for name in MOVIELENS_RELEASES:
        _register(name, _movielens(name), sizes[name], _MOVIELENS_LICENSE, GROUPLENS_URL.format(name=name),
                  users.get(name), {"ml-100k": 1682, "ml-1m": 3706}.get(name), ratings.get(name))
    from recsampling.data.mnar import COAT_URL, YAHOO_URL

    _register("coat", _mnar("coat"), "290 users x 300 items; train 6,960 self-selected ratings (MNAR), "
              "test 4,640 random ratings (16 per user, MAR)",
              "research use; cite Schnabel et al. (ICML 2016)", COAT_URL, 290, 300, 6960)
    _register("yahoo-r3", _mnar("yahoo-r3"), "15,400 users x 1,000 songs; train 311,704 ratings (MNAR), "
              "test 54,000 random ratings (5,400 users x 10, MAR)",
              "Yahoo! Webscope data agreement (non-commercial research; no redistribution)", YAHOO_URL,
              15400, 1000, 311704)
    _register("synthetic", _synthetic, "generated: 943 users x 1,682 items, ~100k clicks by default "
              "(sizes are parameters)", "part of recsampling (MIT)", "recsampling.data.synthetic", None, None, None)


def _registry() -> dict[str, dict]:
    if not _REGISTRY:
        _init_registry()
    return _REGISTRY


# --------------------------------------------------------------------------- public API
def list_datasets() -> list[dict]:
    """The supported data sets: one dict per set with ``name``, ``size``, ``license``, ``url``.

    Returns
    -------
    list of dict
    """
    return [{"name": name, "size": spec["size"], "license": spec["license"], "url": spec["url"]}
            for name, spec in _registry().items()]


def load_dataset(name: str | Path, data_dir: str | Path | None = None, download: bool = False, **kw) -> Dataset:
    """Load a data set by registry name, or read a file / folder by path.

    Parameters
    ----------
    name : str or Path
        A registry name (see :func:`list_datasets`), or the path of a CSV / TSV / Parquet file of
        (user, item[, rating, timestamp]) columns, or of a MovieLens / Coat / Yahoo! R3 folder or
        zip.
    data_dir : str or Path, optional
        The folder that contains the set's folder (``ml-100k/``, ``coat/``, ...), or the set's own
        folder. None searches the cache folder.
    download : bool
        Fetch a MovieLens release from GroupLens when it is not found (never for Coat / Yahoo! R3,
        whose terms ask you to fetch them yourself).
    **kw
        Passed to the loader: ``features`` for the real sets, :func:`make_world`'s arguments for
        ``synthetic``, and for a file the column names (``user_col``, ``item_col``,
        ``rating_col``, ``timestamp_col``: each ``"auto"`` by default, which recognises the
        common names such as ``userId`` or ``rating``, see
        :func:`recsampling.data.tables.read_interactions`), ``sep``, ``header``, ``names``.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        for an unknown name or a malformed file (one line naming the file, column and line).
    FileNotFoundError
        when the set's files are absent (the message says where to put them).
    """
    registry = _registry()
    key = str(name)
    if key in registry:
        return registry[key]["loader"](data_dir=data_dir, download=download, **kw)
    path = Path(key).expanduser()
    if path.exists():
        return _load_path(path, **kw)
    if any(key.lower().endswith(s) for s in (".csv", ".tsv", ".tab", ".parquet", ".pq", ".gz", ".zip", ".txt")):
        raise FileNotFoundError(f"{key} does not exist")
    raise ValueError(f"unknown dataset {key!r}; expected one of {sorted(registry)} or the path of a "
                     f"CSV/TSV/Parquet file")


def _load_path(path: Path, **kw) -> Dataset:
    from recsampling.data import mnar
    from recsampling.data.movielens import _is_movielens, read_movielens
    from recsampling.data.tables import Source, read_interactions

    if path.is_dir() or path.suffix.lower() == ".zip":
        _no_extra(str(path), {k: v for k, v in kw.items() if k != "features"})  # column names are for files
        src = Source(path)
        if _is_movielens(src):
            return Dataset(str(path), read_movielens(path, **kw), None, {"source": str(path)})
        if src.has("train.ascii"):
            data = mnar.read_coat(path, **kw)
        elif src.has(mnar.YAHOO_TRAIN):
            data = mnar.read_yahoo_r3(path)
        else:
            raise ValueError(f"{path}: found no MovieLens, Coat or Yahoo! R3 files in it")
        return Dataset(str(path), data.train, data.test, {"source": str(path), "test_items": _test_items(data.test)})
    return Dataset(str(path), read_interactions(path, **kw), None, {"source": str(path)})


def describe_dataset(ds: Dataset) -> dict:
    """A plain-number summary: ``Interactions.describe()`` of ``interactions`` plus test counts.

    Parameters
    ----------
    ds : Dataset

    Returns
    -------
    dict
        ``name``, ``users``, ``items``, ``interactions`` (of ``ds.interactions``: the training set
        where there is a separate test), the other ``describe()`` fields, and when a test set
        exists ``test_interactions``, ``test_users`` (users with a test item) and
        ``test_items_per_user_min`` / ``_max``.
    """
    out = {"name": ds.name}
    out.update(ds.interactions.describe())
    if ds.test is not None:
        tc = ds.test.user_counts()
        has = tc > 0
        out["test_interactions"] = int(ds.test.nnz)
        out["test_users"] = int(has.sum())
        out["test_items_per_user_min"] = int(tc[has].min()) if has.any() else 0
        out["test_items_per_user_max"] = int(tc.max()) if tc.size else 0
        if ds.test.ratings is not None and ds.test.ratings.size:
            out["test_rating_min"] = float(ds.test.ratings.min())
            out["test_rating_max"] = float(ds.test.ratings.max())
    if "source" in ds.info:
        out["source"] = str(ds.info["source"])
    return out
