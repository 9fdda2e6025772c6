"""Reading interaction tables from files: a folder-or-zip source, strict parsing, a generic reader.

Every reader in :mod:`recsampling.data` funnels through :func:`parse_table`, which reads a
delimited file with pandas' C parser and then checks it, so that a malformed file ends in one
``ValueError`` line naming the file, the column and the line, e.g.::

    ValueError: /data/ml-100k/u.data: column 'timestamp' is missing at line 7 (expected 4 tab-separated fields)

:func:`read_interactions` is the generic reader for any CSV / TSV / Parquet file of
(user, item[, rating, timestamp]) columns; it recognises the common names of each column
(:data:`COLUMN_NAMES`: ``user_id`` / ``userId`` / ``user`` ..., ``rating`` / ``score`` /
``stars`` ..., ``timestamp`` / ``time`` / ``date`` ...), so a rating or timestamp column is never
dropped for want of being named.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import pandas as pd

from recsampling.data.interactions import Interactions

logger = logging.getLogger(__name__)

__all__ = ["COLUMN_NAMES", "Source", "parse_table", "read_interactions", "recognise_columns"]

_SEP_NAMES = {"\t": "tab", ",": "comma", "|": "'|'", ":": "':'", "::": "'::'", ";": "';'", " ": "space"}


class Source:
    """A folder or a zip archive holding the files of one data set.

    Files are addressed by their base name (``"u.data"``); in a zip the member may sit in a
    sub-folder (``ml-100k/u.data``), which is found automatically.

    Parameters
    ----------
    path : str or Path
        A directory or a ``.zip`` file.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.is_zip = self.path.is_file() and zipfile.is_zipfile(self.path)
        self._members: dict[str, str] = {}
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                for name in zf.namelist():
                    if name.endswith("/") or "__MACOSX" in name:
                        continue
                    rel = name.split("/", 1)[1] if "/" in name else name
                    self._members.setdefault(rel, name)
                    self._members.setdefault(name.rsplit("/", 1)[-1], name)

    def __repr__(self) -> str:
        return f"Source({str(self.path)!r})"

    def has(self, name: str) -> bool:
        """Whether the file ``name`` (relative path inside the set) exists."""
        if self.is_zip:
            return name in self._members
        return (self.path / name).is_file()

    def label(self, name: str) -> str:
        """How the file is named in messages: a path, or ``archive.zip!member``."""
        if self.is_zip:
            return f"{self.path}!{self._members.get(name, name)}"
        return str(self.path / name)

    def open(self, name: str) -> IO[bytes]:
        """Open the file ``name`` for binary reading (the caller closes it)."""
        if not self.has(name):
            raise FileNotFoundError(f"{self.label(name)} does not exist")
        if self.is_zip:
            zf = zipfile.ZipFile(self.path)
            member = zf.open(self._members[name])  # streams; keeps the archive open until closed
            zf.close()
            return member
        return open(self.path / name, "rb")


#: Cell texts read as a missing value (ids too: an id "nan" is a missing id, not a string).
_MISSING = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"]

def _line_of(row: int, header: bool) -> int:
    return int(row) + 1 + int(header)


def parse_table(
    fileobj,
    label: str,
    names: Sequence[str],
    *,
    sep: str = "\t",
    header: bool = False,
    usecols: Sequence[int] | None = None,
    numeric: Sequence[str] = (),
    integer: Sequence[str] = (),
    encoding: str = "utf-8",
    compression: str | None = None,
) -> pd.DataFrame:
    """Read a delimited table strictly; any malformed line raises one clear ``ValueError``.

    Parameters
    ----------
    fileobj : path or binary file object
    label : str
        The file's name in error messages.
    names : sequence of str
        Column names (for ``header=True`` files they replace the header's names; the header's
        width must match).
    sep : str
        Field separator (a single character; ``"::"`` is handled by reading ``":"`` and taking
        every other field).
    header : bool
        Whether the first line is a header.
    usecols : sequence of int, optional
        Positions of the fields to keep (default: the first ``len(names)``).
    numeric, integer : sequence of str
        Columns that must parse as numbers / as whole numbers.
    encoding : str
        Text encoding (invalid bytes raise a ``ValueError`` naming the file and the byte offset).
    compression : str or None
        pandas' ``compression`` (``"gzip"``, ``"zip"``, ``"infer"``, ...; None: plain text).

    Returns
    -------
    pandas.DataFrame
        With columns ``names``; ``integer`` columns as int64, ``numeric`` ones as float64.

    Raises
    ------
    ValueError
        naming ``label``, the column and the 1-based line number of the first bad value
        (a missing field, an extra field, a non-numeric value, a fractional id).
    """
    names = list(names)
    n_fields = len(names)
    double_colon = sep == "::"
    if double_colon:
        read_sep = ":"
        usecols = [2 * k for k in (usecols if usecols is not None else range(n_fields))]
    else:
        read_sep = sep
        usecols = list(usecols) if usecols is not None else list(range(n_fields))
    sep_name = _SEP_NAMES.get(sep, repr(sep))
    expected = f"expected {n_fields} {sep_name}-separated fields: {', '.join(names)}"
    fast = {}
    for k, pos in enumerate(usecols):
        if names[k] in integer:
            fast[pos] = np.int64
        elif names[k] in numeric:
            fast[pos] = np.float64
        else:
            fast[pos] = str

    def read(dtype, skip_blank=True):
        if hasattr(fileobj, "seek"):
            fileobj.seek(0)
        try:
            return pd.read_csv(
                fileobj,
                sep=read_sep,
                header=None,
                skiprows=1 if header else None,
                usecols=usecols,
                dtype=dtype,
                keep_default_na=False,
                na_values=_MISSING,
                encoding=encoding,
                compression=compression,
                engine="c",
                skip_blank_lines=skip_blank,
            )
        except pd.errors.ParserError as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else "could not be parsed"
            raise ValueError(f"{label}: malformed line ({msg}); {expected}") from None
        except pd.errors.EmptyDataError:
            raise ValueError(f"{label}: the file is empty; {expected}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{label}: not valid {encoding} text ({e.reason} at byte {e.start})") from None
        except ValueError as e:
            if dtype is not str:
                raise
            raise ValueError(f"{label}: {str(e).splitlines()[0]}; {expected}") from None

    try:
        with np.errstate(invalid="ignore"):  # pandas' own cast of an overflowing column; it raises below
            df = read(fast)  # clean files: typed in one pass, no per-value Python strings
    except (ValueError, OverflowError) as e:  # OverflowError: a whole number beyond int64
        if str(e).startswith(label):
            raise
        df = None
    if df is not None and any(_beyond_float(df[pos].to_numpy()) for pos, t in fast.items() if t is np.int64):
        df = None  # pandas casts a column with a '2.0' through float64: whole numbers >= 2**53 may be rounded
    if df is None or df.isna().to_numpy().any():
        # read again as text, blank lines kept so that row k is line k (+ header): find the culprit
        df = _diagnose(read(str, skip_blank=False), label, names, header, numeric, integer, expected)
    if df.shape[1] != n_fields:
        raise ValueError(f"{label}: found {df.shape[1]} columns; {expected}")
    df.columns = names
    if len(df) == 0:
        raise ValueError(f"{label}: no data rows; {expected}")
    return df


def _beyond_float(values: np.ndarray) -> bool:
    """Whether an int64 column holds a value that float64 cannot hold exactly (|v| >= 2**53)."""
    return bool(values.size) and bool(((values >= 2**53) | (values <= -(2**53))).any())


def _diagnose(df, label, names, header, numeric, integer, expected) -> pd.DataFrame:
    """Find the first bad value of a table read as strings; raise, or return it typed."""
    if df.shape[1] != len(names):
        raise ValueError(f"{label}: found {df.shape[1]} columns; {expected}")
    df.columns = list(names)
    missing = df.isna().to_numpy()
    blank = missing.all(1)  # blank lines are skipped, as the fast path does
    missing[blank] = False
    if missing.any():  # a short line leaves NaN in its last fields
        row = int(np.flatnonzero(missing.any(1))[0])
        col = names[int(np.flatnonzero(missing[row])[0])]
        raise ValueError(f"{label}: column {col!r} is missing at line {_line_of(row, header)} ({expected})")
    for col in list(numeric) + [c for c in integer if c not in numeric]:
        raw = df[col]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna().to_numpy() & ~blank
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{label}: column {col!r} has non-numeric value {raw.iloc[row]!r} at line {_line_of(row, header)}"
            )
        values = values.to_numpy()
        if col in integer:
            if values.dtype.kind == "f":
                frac = (values != np.round(values)) & ~blank
                if frac.any():
                    row = int(np.flatnonzero(frac)[0])
                    raise ValueError(
                        f"{label}: column {col!r} must hold whole numbers, found {raw.iloc[row]!r} "
                        f"at line {_line_of(row, header)}"
                    )
                # a float holds every whole number exactly only below 2**53 (pandas reads a column as
                # float when one value overflows int64 or is written with a point or an exponent)
                big = (np.abs(values) >= 2.0**53) & ~blank
            else:
                big = (values > np.iinfo(np.int64).max) & ~blank  # uint64
            if big.any():
                row = int(np.flatnonzero(big)[0])
                raise ValueError(
                    f"{label}: column {col!r} has {raw.iloc[row]!r} at line {_line_of(row, header)}, too large "
                    "to read exactly; expected whole numbers in the int64 range (below 2**53 in magnitude "
                    "when written with a decimal point or an exponent)"
                )
            values = np.where(blank, 0, values).astype(np.int64)
        else:
            values = values.astype(np.float64)
        df[col] = values
    return df[~blank].reset_index(drop=True)


def _guess_format(path: Path) -> tuple[str, str | None]:
    """(kind, separator) from the file name: parquet, or csv with , / tab."""
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet", None
    if ".tsv" in suffixes or ".tab" in suffixes:
        return "csv", "\t"
    if ".csv" in suffixes:
        return "csv", ","
    return "csv", None


#: Column names recognised for each role when a reader is told ``"auto"``, most specific first;
#: compared case-insensitively and without spaces, ``_``, ``-`` and ``.`` (so ``userId``,
#: ``user_id``, ``User ID`` are one name).
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "user", "uid", "users", "customer_id", "customer", "reviewer_id", "visitor_id",
             "member_id", "account_id", "client_id", "session_id"),
    "item": ("item_id", "item", "iid", "items", "movie_id", "movie", "product_id", "product", "asin",
             "song_id", "song", "track_id", "track", "artist_id", "book_id", "isbn", "article_id",
             "business_id", "video_id", "content_id"),
    "rating": ("rating", "ratings", "score", "stars", "star_rating", "overall", "rate"),
    "timestamp": ("timestamp", "timestamps", "ts", "unix_timestamp", "unix_time", "unix_review_time", "datetime",
                  "time", "date", "event_time", "created_at"),
}
_ROLE_ARGS = {"user": "user_col", "item": "item_col", "rating": "rating_col", "timestamp": "timestamp_col"}


def _normal(name) -> str:
    return "".join(c for c in str(name).lower() if c not in " _-.")


def recognise_columns(columns: Sequence[str], label: str, user_col: str = "auto", item_col: str = "auto",
                      rating_col: str | None = "auto", timestamp_col: str | None = "auto") -> dict[str, str | None]:
    """Which column of a table holds the user, item, rating and timestamp.

    Parameters
    ----------
    columns : sequence of str
        The table's column names.
    label : str
        The file's name in error messages.
    user_col, item_col : str
        A column name, or ``"auto"``: the first name of :data:`COLUMN_NAMES` the table has.
    rating_col, timestamp_col : str or None
        A column name, ``"auto"`` (recognised when present, else not read) or None (not read).

    Returns
    -------
    dict
        ``{"user": name, "item": name, "rating": name or None, "timestamp": name or None}``.

    Raises
    ------
    ValueError
        when a named column is absent, a user or item column cannot be recognised, or two roles
        name the same column.
    """
    columns = [str(c) for c in columns]
    given = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
    out: dict[str, str | None] = {}
    for role, value in given.items():
        if value is None and role in ("user", "item"):
            raise ValueError(f"{_ROLE_ARGS[role]} must be a column name or 'auto', got None")
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{_ROLE_ARGS[role]} must be a column name, 'auto' or None, got {value!r}")
    missing = [v for v in given.values() if v not in (None, "auto") and v not in columns]
    if missing:
        raise ValueError(f"{label}: missing column(s) {missing}; the file has {columns}")
    taken = {v for v in given.values() if v not in (None, "auto")}
    by_name: dict[str, str] = {}
    for c in columns:
        by_name.setdefault(_normal(c), c)  # the first of columns whose names differ only in spelling
    for role, value in given.items():
        if value != "auto":
            out[role] = value
            continue
        found = next((by_name[_normal(n)] for n in COLUMN_NAMES[role]
                      if _normal(n) in by_name and by_name[_normal(n)] not in taken), None)
        if found is None and role in ("user", "item"):
            raise ValueError(f"{label}: found no {role} column among {columns} (recognised names: "
                             f"{', '.join(COLUMN_NAMES[role][:6])}, ...); name it with {_ROLE_ARGS[role]}=... "
                             f"(--{role}-col on the command line)")
        out[role] = found
        if found is not None:
            taken.add(found)
    chosen = [v for v in out.values() if v is not None]
    if len(set(chosen)) != len(chosen):
        dup = next(v for v in chosen if chosen.count(v) > 1)
        roles = [r for r, v in out.items() if v == dup]
        raise ValueError(f"{label}: column {dup!r} cannot be both the {' and the '.join(roles)} column")
    if any(v == "auto" for v in given.values()):
        logger.info("%s: columns %s", label, {r: v for r, v in out.items() if v is not None})
    return out


_EPOCH = pd.Timestamp(0, tz="UTC")


def _as_seconds(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(numbers, dates in seconds since 1970 UTC) of a timestamp column; NaN where a value is not one."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        dates = pd.to_datetime(values, utc=True)
        return pd.Series(np.nan, index=values.index), (dates - _EPOCH).dt.total_seconds()
    try:
        numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    except TypeError:  # lists, maps
        return pd.Series(np.nan, index=values.index), pd.Series(np.nan, index=values.index)
    if values.dtype.kind in "iufb" or not numbers.isna().any():
        return numbers, pd.Series(np.nan, index=values.index)
    try:
        dates = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    except (TypeError, ValueError):
        return numbers, pd.Series(np.nan, index=values.index)
    return numbers, (dates - _EPOCH).dt.total_seconds()


def _seconds(values: pd.Series, label: str, col: str, one_based: bool = False) -> np.ndarray:
    """A timestamp column as float64: all numbers (e.g. Unix seconds) as they are, or all ISO 8601
    dates as seconds since 1970 (UTC).

    ``one_based`` numbers the rows in messages from 1 (the data rows of a text file) rather than 0
    (a Parquet file's rows, as elsewhere).

    Raises
    ------
    ValueError
        naming the first value that is neither (or the first date in a column of numbers).
    """
    numbers, dates = _as_seconds(values)
    for kind in (numbers, dates):
        if not kind.isna().any():
            return kind.to_numpy(np.float64)
    bad = (numbers.isna() & dates.isna()).to_numpy()
    mixed = not bad.any()
    row = int(np.flatnonzero(numbers.isna().to_numpy() if mixed else bad)[0])
    what = "a date among numbers" if mixed else "neither a number nor an ISO 8601 date"
    where = f"data row {row + 1}" if one_based else f"row {row}"
    raise ValueError(f"{label}: column {col!r} has {values.iloc[row]!r:.60} at {where}, {what}; "
                     "expected numbers (e.g. Unix seconds) or ISO 8601 dates, or no timestamps "
                     "(timestamp_col=None, --timestamp-col none)")


def _check_scalar_ids(values: pd.Series, label: str, col: str) -> None:
    """Ids of a Parquet column must be numbers or strings (not lists, maps, bytes, dates)."""
    if values.dtype.kind in "iufb":
        return
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "integer", "mixed-integer", "floating", "mixed-integer-float", "boolean", "empty"):
        return
    scalar = np.fromiter((isinstance(v, (str, int, float, np.integer, np.floating)) or v is None
                          for v in values), dtype=bool, count=len(values))  # the error path only
    row = int(np.flatnonzero(~scalar)[0]) if (~scalar).any() else 0
    value = values.iloc[row]
    what = "list" if isinstance(value, (list, tuple, np.ndarray)) else type(value).__name__
    raise ValueError(f"{label}: column {col!r} holds {what} values (row {row}: {value!r:.60}); "
                     "ids must be integers or strings")


def read_interactions(
    path: str | Path,
    user_col: str = "auto",
    item_col: str = "auto",
    rating_col: str | None = "auto",
    timestamp_col: str | None = "auto",
    *,
    sep: str | None = None,
    header: bool = True,
    names: Sequence[str] | None = None,
) -> Interactions:
    """Read any CSV / TSV / Parquet file of (user, item[, rating, timestamp]) columns.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.tsv`` / ``.tab``, ``.parquet`` / ``.pq`` (optionally ``.gz`` / ``.zip``
        compressed for the text formats). Other suffixes are read as text with the separator
        sniffed from the first line (tab, comma, ``;``, ``|`` or ``::``).
    user_col, item_col : str
        Names of the id columns, or ``"auto"`` (default): the first of the common names in
        :data:`COLUMN_NAMES` (``user_id``, ``userId``, ``user``, ``uid``, ``customer_id``, ...;
        ``item_id``, ``movieId``, ``product_id``, ``asin``, ...). Ids may be numbers or strings;
        they are mapped to contiguous indices in sorted order, and the map is kept in
        ``user_ids`` / ``item_ids``. In a text file a column of integers written plainly is read
        as int64, or uint64 beyond int64; any other column keeps its text exactly (``"007"``,
        ``"1.0"``, ids beyond uint64), so every id reads back as the file wrote it.
    rating_col, timestamp_col : str or None
        Names of the rating and timestamp columns; ``"auto"`` (default) reads a column with a
        common name (``rating``, ``score``, ``stars``, ...; ``timestamp``, ``time``, ``date``, ...)
        when there is one, None reads none. Timestamps are numbers (e.g. Unix seconds) or ISO
        8601 dates (read as seconds since 1970, UTC).
    sep : str, optional
        Field separator for text files; guessed from the suffix / first line when None.
    header : bool
        Whether a text file has a header line. When False, give ``names``.
    names : sequence of str, optional
        Column names for a header-less text file.

    Returns
    -------
    Interactions

    Raises
    ------
    FileNotFoundError
        when ``path`` does not exist.
    ValueError
        naming the file, the column and the line of the first bad value, or the missing column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; give the path of a CSV, TSV or Parquet file")
    kind, guessed = _guess_format(path)
    label = str(path)
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except ImportError as e:
            raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow): {e}") from None
        except Exception as e:  # noqa: BLE001 - any parse error means a bad file
            raise ValueError(f"{path}: could not be read as Parquet ({type(e).__name__}: {e})") from None
        cols = recognise_columns(df.columns, label, user_col, item_col, rating_col, timestamp_col)
        for col in (cols["user"], cols["item"]):
            values = df[col]
            if isinstance(values.dtype, pd.CategoricalDtype):  # dictionary-encoded strings
                values = df[col] = values.astype(values.cat.categories.dtype)
            _check_scalar_ids(values, label, col)
            bad = values.isna().to_numpy()
            if bad.any():
                raise ValueError(f"{path}: column {col!r} has a missing (NaN) id at row {int(np.flatnonzero(bad)[0])}")
        if cols["rating"] is not None:
            col = cols["rating"]
            try:
                values = pd.to_numeric(df[col], errors="coerce")
            except TypeError:  # lists, maps
                values = pd.Series(np.nan, index=df.index)
            bad = values.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{path}: column {col!r} has a missing or non-numeric value at row {row} "
                                 f"({df[col].iloc[row]!r:.60})")
            df[col] = values
        if cols["timestamp"] is not None:
            df[cols["timestamp"]] = _seconds(df[cols["timestamp"]], label, cols["timestamp"])
    else:
        sep = sep or guessed or _sniff_sep(path)
        if header:
            all_names = _header_names(path, sep)
        else:
            if names is None:
                raise ValueError(f"{path}: header=False needs names=[...] for the columns")
            all_names = [str(n) for n in names]
        cols = recognise_columns(all_names, label, user_col, item_col, rating_col, timestamp_col)
        df = _read_text(path, sep, header, all_names, cols)
    used = {r: c for r, c in cols.items() if c is not None}
    try:
        return Interactions.from_dataframe(df, used["user"], used["item"], used.get("rating"), used.get("timestamp"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _read_text(path: Path, sep: str, header: bool, all_names: list[str], cols: dict) -> pd.DataFrame:
    """The recognised columns of a text table, checked by :func:`parse_table`; dates become seconds."""
    wanted = [c for c in cols.values() if c is not None]
    positions = [all_names.index(c) for c in wanted]
    order = sorted(range(len(wanted)), key=lambda k: positions[k])
    ts = cols["timestamp"]

    def parse(numeric):
        return parse_table(path, str(path), [wanted[k] for k in order], sep=sep, header=header,
                           usecols=[positions[k] for k in order], numeric=numeric, compression="infer")

    numeric = [c for c in (cols["rating"], ts) if c is not None]
    try:
        df = parse(numeric)
    except ValueError as e:
        if ts is None or f"column {ts!r} has non-numeric value" not in str(e):
            raise
        df = parse([c for c in numeric if c != ts])  # dates: read as text, converted here
        df[ts] = _seconds(df[ts], str(path), ts, one_based=True)
    for col in (cols["user"], cols["item"]):
        df[col] = _integer_ids(df[col])
    return df


def _integer_ids(text: pd.Series) -> pd.Series:
    """Ids as integers when every cell is an integer written plainly, else the text unchanged.

    Plainly means the cell is exactly the decimal form of an int64 or uint64 (surrounding spaces
    aside), so the integer reads back to the same id: ``"2**63"`` stays exact as uint64, while
    ``"007"``, ``"1.0"``, ``"1e3"`` or an id beyond uint64 keep their text (``"007"`` and ``"7"``
    stay two ids).
    """
    values = pd.to_numeric(text, errors="coerce")  # int64, or uint64 when needed; float64 otherwise
    if values.dtype.kind not in "iu":
        return text
    if not (values.astype(str).to_numpy() == text.str.strip().to_numpy()).all():
        return text
    return values


def _first_line(path: Path) -> str:
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        return fh.readline().rstrip("\r\n")


def _sniff_sep(path: Path) -> str:
    line = _first_line(path)
    for cand in ("::", "\t", ",", ";", "|"):
        if cand in line:
            return cand
    return " "


def _header_names(path: Path, sep: str) -> list[str]:
    if len(sep) == 1:
        try:
            return [str(c).strip() for c in pd.read_csv(path, sep=sep, nrows=0, compression="infer").columns]
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: the file is empty; expected a header line") from None
        except Exception as e:  # noqa: BLE001 - any parse error means a bad file
            raise ValueError(f"{path}: could not read the header line ({e})") from None
    line = _first_line(path)
    if not line:
        raise ValueError(f"{path}: the file is empty; expected a header line")
    return [c.strip().strip('"') for c in line.split(sep)]
