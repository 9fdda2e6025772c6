"""Reading interaction tables from files: a folder-or-zip source, strict parsing, a generic reader.

Every reader in :mod:`recsampling.data` funnels through :func:`parse_table`, which reads a
delimited file with pandas' C parser and then checks it, so that a malformed file ends in one
``ValueError`` line naming the file, the column and the line, e.g.::

    ValueError: /data/ml-100k/u.data: column 'timestamp' is missing at line 7 (expected 4 tab-separated fields)

:func:`read_interactions` is the generic reader for any CSV / TSV / Parquet file of
(user, item[, rating, timestamp]) columns.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import pandas as pd

from recsampling.data.interactions import Interactions

__all__ = ["Source", "parse_table", "read_interactions"]

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


def read_interactions(
    path: str | Path,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
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
        Names of the id columns (ids may be numbers or strings; they are mapped to contiguous
        indices in sorted order, and the map is kept in ``user_ids`` / ``item_ids``). In a text
        file a column of integers written plainly is read as int64, or uint64 beyond int64; any
        other column keeps its text exactly (``"007"``, ``"1.0"``, ids beyond uint64), so every
        id reads back as the file wrote it.
    rating_col, timestamp_col : str, optional
        Names of the optional rating and timestamp columns.
    sep : str, optional
        Field separator for text files; guessed from the suffix / first line when None.
    header : bool
        Whether a text file has a header line. When False, give ``names``.
    names : sequence of str, optional
        Column names for a header-less text file (must include the columns asked for).

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
    wanted = [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - any parse error means a bad file
            raise ValueError(f"{path}: could not be read as Parquet ({type(e).__name__}: {e})") from None
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the file has {list(df.columns)}")
        for col in (user_col, item_col):
            bad = df[col].isna().to_numpy()
            if bad.any():
                raise ValueError(f"{path}: column {col!r} has a missing (NaN) id at row {int(np.flatnonzero(bad)[0])}")
        for col in (rating_col, timestamp_col):
            if col is None:
                continue
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{path}: column {col!r} has a missing or non-numeric value at row {row}")
            df[col] = values
    else:
        sep = sep or guessed or _sniff_sep(path)
        if header:
            all_names = _header_names(path, sep)
        else:
            if names is None:
                raise ValueError(f"{path}: header=False needs names=[...] for the columns")
            all_names = list(names)
        missing = [c for c in wanted if c not in all_names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the file has {all_names}")
        positions = [all_names.index(c) for c in wanted]
        order = sorted(range(len(wanted)), key=lambda k: positions[k])
        numeric = [c for c in (rating_col, timestamp_col) if c is not None]
        df = parse_table(
            path,
            str(path),
            [wanted[k] for k in order],
            sep=sep,
            header=header,
            usecols=[positions[k] for k in order],
            numeric=numeric,
            compression="infer",
        )
        for col in (user_col, item_col):
            df[col] = _integer_ids(df[col])
    try:
        return Interactions.from_dataframe(df, user_col, item_col, rating_col, timestamp_col)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


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
