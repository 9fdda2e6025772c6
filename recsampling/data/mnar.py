"""MNAR data sets with a randomized (missing-at-random) test set: Coat and Yahoo! R3.

Both sets have a *biased* training set (users rated items they chose: missing not at random)
and an *unbiased* test set (users rated items drawn uniformly at random for them). The readers
return the two separately, in the **same index space** (same shape, same id maps), as
:class:`MNARData`; ratings are kept, and turning them into implicit feedback is the caller's
choice (``data.train.to_implicit(4)``).

- **Coat** (Schnabel, Swaminathan, Singh, Chandak, Joachims, "Recommendations as Treatments:
  Debiasing Learning and Evaluation", ICML 2016): ``train.ascii`` and ``test.ascii`` are dense
  290 × 300 matrices of ratings 1–5, 0 = unrated; each user has 24 self-selected training items
  and 16 uniformly random test items. ``propensities.ascii`` (the authors' learned propensities,
  a dense matrix) is attached to the training pairs as ``propensities`` when present;
  ``user_item_features/{user,item}_features.ascii`` (one-hot, with ``*_features_map.txt`` naming
  the columns) become ``user_features`` / ``item_features``. Raw ids are the 0-based row /
  column numbers.
- **Yahoo! R3** (Marlin & Zemel, "Collaborative prediction and ranking with non-random missing
  data", RecSys 2009; Yahoo! Webscope R3): ``ydata-ymusic-rating-study-v1_0-train.txt`` and
  ``-test.txt``, tab separated ``user item rating`` with 1-based ids; 15,400 users × 1,000 songs
  in train, 5,400 users × 10 random songs each in test. Raw ids are kept 1-based; the index space
  is the union of the ids of both files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsampling.data.interactions import Interactions
from recsampling.data.tables import Source, parse_table

__all__ = ["MNARData", "find_coat", "find_yahoo_r3", "load_coat", "load_yahoo_r3", "read_coat", "read_yahoo_r3"]

logger = logging.getLogger(__name__)

COAT_URL = "https://www.cs.cornell.edu/~schnabts/mnar/"
YAHOO_URL = "https://webscope.sandbox.yahoo.com/catalog.php?datatype=r"
YAHOO_TRAIN = "ydata-ymusic-rating-study-v1_0-train.txt"
YAHOO_TEST = "ydata-ymusic-rating-study-v1_0-test.txt"
_COAT_FOLDERS = ("coat",)
_YAHOO_FOLDERS = ("yahoo-r3", "yahoo_r3", "yahoo", "R3", "ydata-ymusic-rating-study-v1_0")


@dataclass(frozen=True)
class MNARData:
    """A biased training set and an unbiased (randomized) test set in one index space.

    Attributes
    ----------
    train : Interactions
        Ratings on items the users selected themselves (missing not at random).
    test : Interactions
        Ratings on items drawn uniformly at random per user (missing at random).
    """

    train: Interactions
    test: Interactions

    def __post_init__(self):
        if self.train.shape != self.test.shape:
            raise ValueError(f"train and test must share one index space, got shapes {self.train.shape} "
                             f"and {self.test.shape}")

    def to_implicit(self, threshold: float | None = 4.0) -> "MNARData":
        """Both sets with ``Interactions.to_implicit(threshold)`` applied."""
        return MNARData(self.train.to_implicit(threshold), self.test.to_implicit(threshold))


# --------------------------------------------------------------------------- locating
def _find(name: str, data_dir, folders, marker: str, hint: str) -> Source:
    if data_dir is None:
        from recsampling.data.movielens import cache_dir

        roots = [cache_dir()]
    else:
        roots = [Path(data_dir).expanduser()]
    for root in roots:
        for cand in [root] + [root / f for f in folders] + [root / f"{f}.zip" for f in folders]:
            if cand.exists():
                src = Source(cand)
                if (src.is_zip or cand.is_dir()) and src.has(marker):
                    return src
    where = roots[0]
    raise FileNotFoundError(f"{name} not found: put {marker} in {where / folders[0]}/ ({hint})")


def find_coat(data_dir: str | Path | None = None) -> Source:
    """Locate Coat: ``data_dir/coat/``, ``data_dir/coat.zip``, or ``data_dir`` itself."""
    return _find("coat", data_dir, _COAT_FOLDERS, "train.ascii", f"get coat.zip from {COAT_URL}")


def find_yahoo_r3(data_dir: str | Path | None = None) -> Source:
    """Locate Yahoo! R3: ``data_dir/yahoo-r3/`` (or ``yahoo_r3``, ``yahoo``, ``R3``), or ``data_dir`` itself."""
    return _find("yahoo-r3", data_dir, _YAHOO_FOLDERS, YAHOO_TRAIN,
                 f"Yahoo! Webscope R3 needs its data agreement: request it at {YAHOO_URL}")


def _no_download(name: str, url: str) -> None:
    raise ValueError(f"{name} cannot be downloaded automatically (its terms require you to fetch it); get it from "
                     f"{url} and pass data_dir")


def load_coat(data_dir: str | Path | None = None, download: bool = False, features: bool = True) -> MNARData:
    """Load Coat from ``data_dir`` (the folder containing ``coat/``, or ``coat/`` itself).

    Parameters
    ----------
    data_dir : str or Path, optional
        Where to look; None looks in the cache folder.
    download : bool
        Not offered for Coat (a ``ValueError`` says where to get it) unless the files are found.
    features : bool
        Attach the one-hot user / item features when present.
    """
    try:
        src = find_coat(data_dir)
    except FileNotFoundError:
        if download:
            _no_download("coat", COAT_URL)
        raise
    return read_coat(src.path, features=features)


def load_yahoo_r3(data_dir: str | Path | None = None, download: bool = False) -> MNARData:
    """Load Yahoo! R3 from ``data_dir`` (the folder containing ``yahoo-r3/``, or that folder)."""
    try:
        src = find_yahoo_r3(data_dir)
    except FileNotFoundError:
        if download:
            _no_download("yahoo-r3", YAHOO_URL)
        raise
    return read_yahoo_r3(src.path)


# --------------------------------------------------------------------------- Coat
def _dense(src: Source, fname: str, integer: bool) -> np.ndarray:
    label = src.label(fname)
    with src.open(fname) as fh:
        try:
            arr = np.loadtxt(fh, dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise ValueError(f"{label}: {str(e).splitlines()[0]}") from None
    if arr.size == 0:
        raise ValueError(f"{label}: the file is empty; expected a dense whitespace-separated matrix")
    bad = ~np.isfinite(arr) | (arr < 0)
    if integer:
        bad |= arr != np.round(arr)
    if bad.any():
        r, c = (int(x[0]) for x in np.nonzero(bad))
        what = "a whole number >= 0 (0 = unrated)" if integer else "a finite number >= 0"
        raise ValueError(f"{label}: value {arr[r, c].item()!r} at line {r + 1}, column {c + 1}; expected {what}")
    return arr


def _coat_features(src: Source, kind: str, n: int) -> tuple[np.ndarray | None, tuple]:
    fname = f"user_item_features/{kind}_features.ascii"
    if not src.has(fname):
        return None, ()
    arr = _dense(src, fname, integer=False)
    if arr.shape[0] != n:
        raise ValueError(f"{src.label(fname)}: has {arr.shape[0]} rows, expected one per {kind} ({n})")
    names = tuple(f"f{k}" for k in range(arr.shape[1]))
    map_name = f"user_item_features/{kind}_features_map.txt"
    if src.has(map_name):
        with src.open(map_name) as fh:
            lines = [ln.strip() for ln in fh.read().decode("utf-8", errors="replace").splitlines() if ln.strip()]
        if len(lines) == arr.shape[1]:
            names = tuple(lines)
        else:
            logger.warning("%s names %d columns, the features have %d; using f0, f1, ...",
                           src.label(map_name), len(lines), arr.shape[1])
    return arr.astype(np.float32), names


def read_coat(path: str | Path, features: bool = True) -> MNARData:
    """Read Coat from its folder or zip (``train.ascii``, ``test.ascii`` and optional extras).

    Parameters
    ----------
    path : str or Path
        The folder holding ``train.ascii`` / ``test.ascii`` (or a zip of it).
    features : bool
        Attach the user / item features from ``user_item_features/`` when present.

    Returns
    -------
    MNARData
        ``train``: 290 × 300 with 6,960 ratings, propensities attached when
        ``propensities.ascii`` is there; ``test``: the 4,640 randomized ratings (16 per user).
    """
    src = Source(path)
    for fname in ("train.ascii", "test.ascii"):
        if not src.has(fname):
            raise FileNotFoundError(f"{src.label(fname)} does not exist; a Coat folder holds train.ascii and "
                                    f"test.ascii (get them from {COAT_URL})")
    train = _dense(src, "train.ascii", integer=True)
    test = _dense(src, "test.ascii", integer=True)
    if train.shape != test.shape:
        raise ValueError(f"{src.label('test.ascii')}: shape {test.shape} differs from train.ascii's {train.shape}")
    shape = train.shape
    extra = {}
    if features:
        uf, un = _coat_features(src, "user", shape[0])
        itf, inames = _coat_features(src, "item", shape[1])
        extra = dict(user_features=uf, item_features=itf, user_feature_names=un, item_feature_names=inames)
    props = None
    if src.has("propensities.ascii"):
        props = _dense(src, "propensities.ascii", integer=False)
        if props.shape != shape:
            raise ValueError(f"{src.label('propensities.ascii')}: shape {props.shape} differs from train's {shape}")

    def build(mat, with_props):
        u, i = np.nonzero(mat)
        return Interactions.from_indices(
            u, i, shape, user_ids=np.arange(shape[0]), item_ids=np.arange(shape[1]),
            ratings=mat[u, i].astype(np.float32), propensities=props[u, i] if with_props else None, **extra)

    return MNARData(build(train, props is not None), build(test, False))


# --------------------------------------------------------------------------- Yahoo! R3
def read_yahoo_r3(path: str | Path) -> MNARData:
    """Read Yahoo! R3 from its folder or zip (the two ``ydata-ymusic-rating-study-v1_0-*.txt`` files).

    Returns
    -------
    MNARData
        Users and items indexed over the union of both files' ids (raw ids stay 1-based).
    """
    src = Source(path)
    frames = []
    for fname in (YAHOO_TRAIN, YAHOO_TEST):
        if not src.has(fname):
            raise FileNotFoundError(f"{src.label(fname)} does not exist; Yahoo! R3 needs {YAHOO_TRAIN} and "
                                    f"{YAHOO_TEST} (request them at {YAHOO_URL})")
        with src.open(fname) as fh:
            frames.append(parse_table(fh, src.label(fname), ["user_id", "item_id", "rating"], sep="\t",
                                      integer=["user_id", "item_id"], numeric=["rating"]))
    users = np.union1d(frames[0]["user_id"].to_numpy(), frames[1]["user_id"].to_numpy())
    items = np.union1d(frames[0]["item_id"].to_numpy(), frames[1]["item_id"].to_numpy())
    out = []
    for fname, df in zip((YAHOO_TRAIN, YAHOO_TEST), frames):
        try:
            out.append(Interactions.from_dataframe(df, "user_id", "item_id", "rating", user_ids=users, item_ids=items))
        except ValueError as e:
            raise ValueError(f"{src.label(fname)}: {e}") from None
    return MNARData(out[0], out[1])
