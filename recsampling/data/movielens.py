"""MovieLens readers for every GroupLens release format, from a folder or the release zip.

Formats (Harper & Konstan, "The MovieLens Datasets: History and Context", TiiS 2015):

- **100K** (``ml-100k``): ``u.data`` tab separated ``user item rating timestamp``; ``u.item``
  latin-1, ``|`` separated, 19 genre flags in the last fields; ``u.user``
  ``user|age|gender|occupation|zip``; ``u.genre`` and ``u.occupation`` name lists.
- **1M / 10M** (``ml-1m``, ``ml-10m`` whose zip folder is ``ml-10M100K``): ``ratings.dat``
  ``UserID::MovieID::Rating::Timestamp``; ``movies.dat`` ``MovieID::Title::Genres`` with ``|``
  between genres; 1M also ``users.dat`` ``UserID::Gender::Age::Occupation::Zip-code``.
- **20M / 25M / 32M / latest / latest-small**: ``ratings.csv`` with the header
  ``userId,movieId,rating,timestamp``; ``movies.csv`` ``movieId,title,genres``.
- **pairs only**: a folder with ``pairs.csv.gz`` (columns ``user_id,item_id``) and no ratings
  file, as the shared ML-1M copy is; read as interactions without ratings or timestamps.

The matrix holds the users and items that occur in the ratings (ML-1M: 6,040 × 3,706, although
``movies.dat`` lists 3,883 movies). Ratings and timestamps are kept; turning ratings into
implicit feedback is the caller's choice (``Interactions.to_implicit(4)``).

Side features (``features=True``), put in ``Interactions.user_features`` / ``item_features``
with their names:

- items: one flag per genre (``genre:<name>``), from ``u.item`` / ``movies.dat`` / ``movies.csv``;
- users (100K ``u.user``, 1M ``users.dat``): ``age`` scaled to [0, 1] by min-max over the users
  (1M gives an age-bucket code, which is scaled the same way), ``gender:F`` / ``gender:M``
  one-hot, ``occupation:<name>`` one-hot.

``download=True`` fetches ``https://files.grouplens.org/datasets/movielens/<name>.zip`` into the
cache folder ``platformdirs.user_cache_dir("recsampling")``. See :func:`download_movielens` for
what is verified.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from recsampling.data.interactions import Interactions
from recsampling.data.tables import Source, parse_table

__all__ = [
    "MOVIELENS_RELEASES",
    "cache_dir",
    "download_movielens",
    "find_movielens",
    "load_movielens",
    "read_movielens",
]

logger = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"

# name -> the folder inside the official zip and the ratings file that marks the release's format
MOVIELENS_RELEASES: dict[str, dict] = {
    "ml-100k": {"folder": "ml-100k", "ratings": "u.data"},
    "ml-1m": {"folder": "ml-1m", "ratings": "ratings.dat"},
    "ml-10m": {"folder": "ml-10M100K", "ratings": "ratings.dat"},
    "ml-20m": {"folder": "ml-20m", "ratings": "ratings.csv"},
    "ml-25m": {"folder": "ml-25m", "ratings": "ratings.csv"},
    "ml-32m": {"folder": "ml-32m", "ratings": "ratings.csv"},
    "ml-latest": {"folder": "ml-latest", "ratings": "ratings.csv"},
    "ml-latest-small": {"folder": "ml-latest-small", "ratings": "ratings.csv"},
}

# sha256 of files *inside* a release that we know for certain (checked after a download).
KNOWN_MEMBER_SHA256 = {
    ("ml-100k", "u.data"): "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
}

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                 "Thriller", "War", "Western"]
ML1M_OCCUPATIONS = ["other", "academic/educator", "artist", "clerical/admin", "college/grad student",
                    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
                    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
                    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer"]

_MARKERS = ("u.data", "ratings.dat", "ratings.csv", "pairs.csv.gz")


# --------------------------------------------------------------------------- locating files
def cache_dir() -> Path:
    """The folder where downloads are cached: ``platformdirs.user_cache_dir("recsampling")``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("recsampling"))


def _check_name(name: str) -> dict:
    if name not in MOVIELENS_RELEASES:
        raise ValueError(f"unknown MovieLens release {name!r}; expected one of {sorted(MOVIELENS_RELEASES)}")
    return MOVIELENS_RELEASES[name]


def _is_movielens(src: Source) -> bool:
    return any(src.has(m) for m in _MARKERS)


def _candidates(name: str, root: Path) -> list[Path]:
    spec = MOVIELENS_RELEASES[name]
    folders = dict.fromkeys([name, spec["folder"]])
    out = [root]
    for f in folders:
        out += [root / f, root / f / f, root / f"{f}.zip"]
    return out


def find_movielens(name: str, data_dir: str | Path | None = None, download: bool = False) -> Source:
    """Locate a MovieLens release: a folder or zip in ``data_dir``, the cache, or a download.

    Parameters
    ----------
    name : str
        ``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-20m"``, ``"ml-25m"``, ``"ml-32m"``,
        ``"ml-latest"`` or ``"ml-latest-small"``.
    data_dir : str or Path, optional
        The folder that *contains* ``ml-100k/`` (or ``ml-100k.zip``), or the set's own folder,
        or the release zip itself. None looks in the cache folder only.
    download : bool
        Fetch the release into the cache when it is not found.

    Returns
    -------
    Source

    Raises
    ------
    FileNotFoundError
        with one line that says where to put the files.
    """
    spec = _check_name(name)
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    roots.append(cache_dir())
    for root in roots:
        for cand in _candidates(name, root):
            if cand.is_dir() or (cand.is_file() and zipfile.is_zipfile(cand)):
                src = Source(cand)
                if src.has(spec["ratings"]) or src.has("pairs.csv.gz"):  # this release's format
                    return src
    if download:
        return Source(download_movielens(name))
    where = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
    hint = "" if data_dir is not None else " or pass data_dir (--data-dir, the folder holding it),"
    raise FileNotFoundError(
        f"{name} not found: put {spec['ratings']} in {where / spec['folder']}/ (or {name}.zip in {where}/),"
        f"{hint} or pass download=True (--download)"
    )


# --------------------------------------------------------------------------- download
def _fetch(url: str, dest: Path) -> None:
    """Stream ``url`` into ``dest`` (the one network call of the package; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 - fixed https URL
        shutil.copyfileobj(resp, out, length=1 << 20)


def _sha256(fileobj, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: fileobj.read(chunk), b""):
        h.update(block)
    return h.hexdigest()


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - GroupLens publishes md5 sums, not for security
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_movielens(name: str, cache: str | Path | None = None, force: bool = False) -> Path:
    """Download the official GroupLens zip of a release and verify it; return the zip's path.

    What is verified:

    1. the zip's integrity (every member's CRC, ``zipfile.ZipFile.testzip``) and that it holds
       the release's ratings file;
    2. the MD5 sum GroupLens publishes beside each zip (``<url>.md5``), when it can be fetched
       (a warning is logged when it cannot);
    3. the sha256 of files inside the release where the package knows it for certain
       (ML-100K ``u.data``: ``06416e59…dca490``);
    4. the zip's own sha256 is recorded in ``<name>.zip.sha256`` beside it on first download and
       compared on every later call, so a cached file that changed is noticed. (The package does
       not ship sha256 constants for the official zips, because they could not be checked
       offline when it was written.)

    Parameters
    ----------
    name : str
        A release name (see :data:`MOVIELENS_RELEASES`).
    cache : str or Path, optional
        Where to put the zip; default :func:`cache_dir`.
    force : bool
        Download again even when a verified copy is cached.

    Returns
    -------
    Path
        The verified zip.

    Raises
    ------
    ValueError
        when a check fails (the bad file is removed).
    """
    spec = _check_name(name)
    root = Path(cache) if cache is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    zip_path = root / f"{name}.zip"
    record = root / f"{name}.zip.sha256"
    if zip_path.is_file() and not force:
        with open(zip_path, "rb") as fh:
            digest = _sha256(fh)
        if record.is_file() and record.read_text().split()[0] != digest:
            raise ValueError(f"{zip_path} changed since it was downloaded (sha256 {digest} differs from {record}); "
                             f"delete it or pass force=True")
        return zip_path
    url = GROUPLENS_URL.format(name=name)
    part = root / f"{name}.zip.part"
    logger.info("downloading %s to %s", url, zip_path)
    try:
        _fetch(url, part)
        _verify_zip(name, spec, part, url)
    except Exception:
        part.unlink(missing_ok=True)
        raise
    part.replace(zip_path)
    with open(zip_path, "rb") as fh:
        record.write_text(f"{_sha256(fh)}  {zip_path.name}\n")
    return zip_path


def _verify_zip(name: str, spec: dict, path: Path, url: str) -> None:
    if not zipfile.is_zipfile(path):
        raise ValueError(f"the download of {url} is not a zip archive")
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise ValueError(f"the download of {url} is corrupt (CRC error in {bad})")
    src = Source(path)
    if not src.has(spec["ratings"]):
        raise ValueError(f"the download of {url} does not contain {spec['ratings']}")
    md5_file = path.with_name(path.name + ".md5")
    try:
        _fetch(url + ".md5", md5_file)
        found = re.search(r"\b[0-9a-fA-F]{32}\b", md5_file.read_text(errors="replace"))
    except Exception as e:  # noqa: BLE001 - the md5 side file is optional
        logger.warning("could not fetch the published checksum %s.md5 (%s); verified the zip's CRCs only", url, e)
        found = None
    finally:
        md5_file.unlink(missing_ok=True)
    if found is not None and found.group(0).lower() != _md5(path):
        raise ValueError(f"the download of {url} does not match its published MD5 {found.group(0)}")
    for (rel, member), digest in KNOWN_MEMBER_SHA256.items():
        if rel == name:
            with src.open(member) as fh:
                got = _sha256(fh)
            if got != digest:
                raise ValueError(f"{src.label(member)} has sha256 {got}, expected {digest}")


# --------------------------------------------------------------------------- reading
def load_movielens(
    name: str = "ml-100k",
    data_dir: str | Path | None = None,
    download: bool = False,
    features: bool = True,
) -> Interactions:
    """Load a MovieLens release by name (see :func:`find_movielens` for where it looks).

    Parameters
    ----------
    name : str
        Release name, e.g. ``"ml-100k"``.
    data_dir : str or Path, optional
        Folder containing the release folder / zip, or the release folder / zip itself.
    download : bool
        Fetch the official zip into the cache when the files are not found.
    features : bool
        Attach user / item side features when the release has them.

    Returns
    -------
    Interactions
        All ratings (ratings and timestamps kept), users × items.
    """
    return read_movielens(find_movielens(name, data_dir, download).path, features=features)


def read_movielens(path: str | Path, features: bool = True) -> Interactions:
    """Read a MovieLens release from its folder or its zip; the format is detected from the files.

    Parameters
    ----------
    path : str or Path
        A folder holding ``u.data`` / ``ratings.dat`` / ``ratings.csv`` / ``pairs.csv.gz``, or a
        release zip (members like ``ml-100k/u.data``).
    features : bool
        Attach side features (genres; user demographics for 100K and 1M).

    Returns
    -------
    Interactions

    Raises
    ------
    FileNotFoundError
        when no ratings file is there.
    ValueError
        for a malformed file (naming the file, the column and the line).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a MovieLens folder or release zip")
    src = Source(path)
    if src.has("u.data"):
        data = _read_ratings(src, "u.data", sep="\t")
        if features:
            data = _attach(data, _users_100k(src), _items_100k(src))
    elif src.has("ratings.dat"):
        data = _read_ratings(src, "ratings.dat", sep="::")
        if features:
            data = _attach(data, _users_1m(src), _movies_dat(src))
    elif src.has("ratings.csv"):
        data = _read_ratings(src, "ratings.csv", sep=",", header=True)
        if features:
            data = _attach(data, None, _movies_csv(src))
    elif src.has("pairs.csv.gz"):
        data = _read_pairs(src)
        if features:
            data = _attach(data, _users_1m(src), _movies_dat(src))
    else:
        raise FileNotFoundError(f"no MovieLens ratings file ({', '.join(_MARKERS)}) in {path}")
    return data


def _read_ratings(src: Source, fname: str, sep: str, header: bool = False) -> Interactions:
    names = ["user_id", "item_id", "rating", "timestamp"]
    with src.open(fname) as fh:
        if header:
            first = fh.readline().decode("utf-8", errors="replace").strip()
            if [c.strip() for c in first.split(",")][:4] != ["userId", "movieId", "rating", "timestamp"]:
                raise ValueError(f"{src.label(fname)}: header is {first!r}, expected 'userId,movieId,rating,timestamp'")
        df = parse_table(fh, src.label(fname), names, sep=sep, header=header,
                         integer=["user_id", "item_id", "timestamp"], numeric=["rating"], encoding="latin-1")
    return _build(df, src.label(fname), rating_col="rating", timestamp_col="timestamp")


def _read_pairs(src: Source) -> Interactions:
    fname = "pairs.csv.gz"
    with src.open(fname) as fh:
        first = _gz_first_line(fh)
        if [c.strip() for c in first.split(",")][:2] != ["user_id", "item_id"]:
            raise ValueError(f"{src.label(fname)}: header is {first!r}, expected 'user_id,item_id'")
        df = parse_table(fh, src.label(fname), ["user_id", "item_id"], sep=",", header=True,
                         integer=["user_id", "item_id"], compression="gzip")
    return _build(df, src.label(fname))


def _gz_first_line(fh) -> str:
    import gzip

    fh.seek(0)
    with gzip.open(fh, "rt", encoding="utf-8", errors="replace") as g:
        line = g.readline().strip()
    fh.seek(0)
    return line


def _build(df: pd.DataFrame, label: str, **cols) -> Interactions:
    try:
        return Interactions.from_dataframe(df, "user_id", "item_id", **cols)
    except ValueError as e:
        raise ValueError(f"{label}: {e}") from None


def _attach(data: Interactions, users, items) -> Interactions:
    """Align (frame indexed by raw id, names) feature tables to the data's ids and attach them."""
    changes = {}
    for key, table, ids in (("user", users, data.user_ids), ("item", items, data.item_ids)):
        if table is None:
            continue
        frame = table
        aligned = frame.reindex(pd.Index(ids))
        n_missing = int(aligned.isna().any(axis=1).sum())
        if n_missing:
            logger.warning("%d %ss have no %s features; they get zeros", n_missing, key, key)
        changes[f"{key}_features"] = aligned.fillna(0.0).to_numpy(np.float32)
        changes[f"{key}_feature_names"] = tuple(frame.columns)
    return data.with_values(**changes) if changes else data


def _scaled(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _user_frame(ids, age, gender, occupation, occupations) -> pd.DataFrame:
    out = {"age": _scaled(np.asarray(age))}
    for g in ("F", "M"):
        out[f"gender:{g}"] = (np.asarray(gender) == g).astype(np.float32)
    occ = np.asarray(occupation)
    for o in occupations:
        out[f"occupation:{o}"] = (occ == o).astype(np.float32)
    return pd.DataFrame(out, index=pd.Index(np.asarray(ids)))


def _read_lines(src: Source, fname: str) -> list[str]:
    with src.open(fname) as fh:
        return [ln for ln in fh.read().decode("latin-1").splitlines() if ln.strip()]


def _users_100k(src: Source) -> pd.DataFrame | None:
    if not src.has("u.user"):
        return None
    with src.open("u.user") as fh:
        df = parse_table(fh, src.label("u.user"), ["user_id", "age", "gender", "occupation"], sep="|",
                         integer=["user_id", "age"], encoding="latin-1")
    occupations = (_read_lines(src, "u.occupation") if src.has("u.occupation")
                   else sorted(df["occupation"].unique()))
    occupations = [o.strip() for o in occupations]
    return _user_frame(df["user_id"], df["age"], df["gender"], df["occupation"].str.strip(), occupations)


def _items_100k(src: Source) -> pd.DataFrame | None:
    if not src.has("u.item"):
        return None
    genres = ML100K_GENRES
    if src.has("u.genre"):
        genres = [ln.rsplit("|", 1)[0] for ln in _read_lines(src, "u.genre")]
    names = ["item_id"] + [f"genre:{g}" for g in genres]
    with src.open("u.item") as fh:
        df = parse_table(fh, src.label("u.item"), names, sep="|", encoding="latin-1",
                         usecols=[0] + list(range(5, 5 + len(genres))), integer=names)
    return df.set_index("item_id").astype(np.float32)


def _users_1m(src: Source) -> pd.DataFrame | None:
    if not src.has("users.dat"):
        return None
    with src.open("users.dat") as fh:
        df = parse_table(fh, src.label("users.dat"), ["user_id", "gender", "age", "occupation"], sep="::",
                         integer=["user_id", "age", "occupation"], encoding="latin-1")
    occ = df["occupation"].to_numpy()
    if occ.min() < 0 or occ.max() >= len(ML1M_OCCUPATIONS):
        row = int(np.flatnonzero((occ < 0) | (occ >= len(ML1M_OCCUPATIONS)))[0])
        raise ValueError(f"{src.label('users.dat')}: column 'occupation' has code {occ[row]} at line {row + 1}, "
                         f"expected 0..{len(ML1M_OCCUPATIONS) - 1}")
    names = np.asarray(ML1M_OCCUPATIONS, dtype=object)[occ]
    return _user_frame(df["user_id"], df["age"], df["gender"], names, ML1M_OCCUPATIONS)


def _genre_frame(ids, genres: pd.Series) -> pd.DataFrame:
    flags = genres.fillna("").str.get_dummies(sep="|")
    flags = flags.drop(columns=[c for c in flags.columns if c in ("(no genres listed)", "")])
    flags.columns = [f"genre:{c}" for c in flags.columns]
    flags.index = pd.Index(np.asarray(ids))
    return flags.astype(np.float32)


def _movies_dat(src: Source) -> pd.DataFrame | None:
    if not src.has("movies.dat"):
        return None
    ids, genres = [], []
    for line_no, line in enumerate(_read_lines(src, "movies.dat"), start=1):
        parts = line.split("::")
        if len(parts) != 3:
            raise ValueError(f"{src.label('movies.dat')}: line {line_no} has {len(parts)} '::'-separated fields, "
                             f"expected 3 (MovieID, Title, Genres)")
        try:
            ids.append(int(parts[0]))
        except ValueError:
            raise ValueError(f"{src.label('movies.dat')}: column 'MovieID' has non-numeric value {parts[0]!r} "
                             f"at line {line_no}") from None
        genres.append(parts[2])
    return _genre_frame(ids, pd.Series(genres))


def _movies_csv(src: Source) -> pd.DataFrame | None:
    if not src.has("movies.csv"):
        return None
    with src.open("movies.csv") as fh:
        try:
            df = pd.read_csv(fh, encoding="utf-8")
        except Exception as e:  # noqa: BLE001 - any parse error is a bad file
            raise ValueError(f"{src.label('movies.csv')}: could not be parsed ({e})") from None
    for col in ("movieId", "genres"):
        if col not in df.columns:
            raise ValueError(f"{src.label('movies.csv')}: missing column {col!r}; the file has {list(df.columns)}")
    bad = pd.to_numeric(df["movieId"], errors="coerce").isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{src.label('movies.csv')}: column 'movieId' is missing or non-numeric at line {row + 2}")
    return _genre_frame(df["movieId"].astype(np.int64), df["genres"])
