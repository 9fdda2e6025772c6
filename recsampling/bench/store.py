"""The cell store: one JSON file per finished fit, so a killed run resumes where it stopped.

A *cell* is one fit and its evaluation, named by a key (e.g. the suite's
``<dataset>__<model>__<method>__seed<k>``). Its record, a JSON-able dict with at least ``key``,
``status`` (``"ok"`` or ``"failed"``) and ``config`` (every setting that changes its result), is
written atomically to ``ROOT/cells/<key>.json``: a crash mid-write leaves the old file or none,
never half of one. :meth:`CellStore.finished` hands back a record only when its configuration
is the one asked for, so a changed setting reruns its cells and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

from recsampling._files import atomic_write
from recsampling._utils import to_jsonable

__all__ = ["CellStore", "read_record", "same_config"]


def read_record(path: str | Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing or not JSON (e.g. cut by a crash)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def same_config(a: dict, b: dict) -> bool:
    """Whether two configurations are equal once through JSON (tuples and lists compare equal)."""
    def canonical(x: dict):
        return json.loads(json.dumps(to_jsonable(x), sort_keys=True))

    return canonical(a) == canonical(b)


class CellStore:
    """The cells of a run folder ``root`` (``root/cells/<key>.json``).

    Parameters
    ----------
    root : path
        The run folder.
    create : bool
        Create ``root/cells`` now (a store only read, e.g. for a report, leaves the disk alone).
    """

    def __init__(self, root: str | Path, create: bool = False):
        self.root = Path(root)
        self.cells = self.root / "cells"
        if create:
            self.cells.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"CellStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the record of ``key`` lives."""
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"a cell key must be a plain file stem, got {key!r}")
        return self.cells / f"{key}.json"

    def finished(self, key: str, config: dict) -> dict | None:
        """The finished (``status == "ok"``) record of ``key`` made with ``config``, else None."""
        path = self.path(key)
        old = read_record(path) if path.exists() else None
        if old is not None and old.get("status") == "ok" and same_config(old.get("config", {}), config):
            return old
        return None

    def put(self, record: dict) -> Path:
        """Write ``record`` (its ``key`` names the file) atomically; returns the path."""
        if "key" not in record:
            raise ValueError("a cell record needs a 'key'")
        path = self.path(record["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(to_jsonable(record), indent=1))  # a failed write removes its temporary
        return path

    def records(self, keys: set | None = None) -> list[dict]:
        """The finished records, in file-name order; only those of ``keys`` when given."""
        recs = []
        for path in sorted(self.cells.glob("*.json")):
            rec = read_record(path)
            if rec is None or rec.get("status") != "ok" or (keys is not None and rec.get("key") not in keys):
                continue
            recs.append(rec)
        return recs
