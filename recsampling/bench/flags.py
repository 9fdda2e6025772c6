"""What the scripts under ``benchmarks/`` share on the command line: flags, result files, output.

- :func:`add_flags`: the common flags (``--data-dir``, ``--seed``, ``--seeds``, ``--threads``,
  ``--quick``, ``--json``, ``--no-write``, ``--tag``), each with one meaning everywhere; a script
  picks its own default and help text;
- :func:`write_results`: ``<stem>.json`` (and ``<stem>.md``) in the results folder;
- :func:`emit`: the human-readable text, and with ``--json`` one JSON object as the last stdout
  line (the text then goes to stderr), the contract every script's checks read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recsampling._utils import positive_int

__all__ = ["DATA_DIR", "add_flags", "write_results", "emit"]

#: ``../shared/data`` beside the checkout holding this package
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

_FLAGS = {
    "data_dir": ("--data-dir", dict(default=str(DATA_DIR), help="folder holding the real data sets "
                                                                "(default ../shared/data beside the checkout)")),
    "seed": ("--seed", dict(type=int, default=0, help="seed of the split / world (default %(default)s)")),
    "seeds": ("--seeds", dict(type=positive_int, default=3, help="seeds (default %(default)s)")),
    "threads": ("--threads", dict(type=positive_int, default=1, help="CPU threads (default %(default)s)")),
    "quick": ("--quick", dict(action="store_true", help="a tiny smoke run (seconds), not the result")),
    "json": ("--json", dict(action="store_true", help="print one JSON object as the last stdout line")),
    "no_write": ("--no-write", dict(action="store_true", help="do not write benchmarks/results/")),
    "tag": ("--tag", dict(default="", help="suffix of the result files (for ablations)")),
}


def add_flags(parser: argparse.ArgumentParser, *names: str, defaults: dict | None = None,
              helps: dict | None = None) -> argparse.ArgumentParser:
    """Add the common flags ``names`` (of ``data_dir``, ``seed``, ``seeds``, ``threads``, ``quick``,
    ``json``, ``no_write``, ``tag``) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    *names : str
        The flags, by their ``args`` attribute name.
    defaults, helps : dict, optional
        A script's own default / help text of a flag (by name).

    Returns
    -------
    argparse.ArgumentParser
        ``parser``.
    """
    defaults, helps = defaults or {}, helps or {}
    unknown = sorted(set(names) - set(_FLAGS)) + sorted((set(defaults) | set(helps)) - set(names))
    if unknown:
        raise ValueError(f"unknown or unrequested common flag(s) {unknown}; expected some of {sorted(_FLAGS)}")
    for name in names:
        flag, kw = _FLAGS[name]
        kw = dict(kw)
        if name in defaults:
            kw["default"] = defaults[name]
        if name in helps:
            kw["help"] = helps[name]
        parser.add_argument(flag, **kw)
    return parser


def write_results(folder: str | Path, stem: str, result: dict, text: str | None = None, indent: int = 1,
                  **dumps) -> Path:
    """Write ``result`` to ``folder/<stem>.json`` (and ``text`` to ``<stem>.md``); returns the JSON path.

    ``dumps`` goes to :func:`json.dumps` (e.g. ``default=float``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(result, indent=indent, **dumps))
    if text is not None:
        (folder / f"{stem}.md").write_text(text + "\n")
    return path


def emit(result: dict, text: str, as_json: bool, footer: str | None = None, **dumps) -> None:
    """Print ``text``; with ``as_json`` to stderr, and ``result`` as one JSON line last on stdout.

    ``footer`` (e.g. the wall time) follows the text without ``as_json``; ``dumps`` goes to
    :func:`json.dumps`.
    """
    if as_json:
        print(text, file=sys.stderr)
        print(json.dumps(result, **dumps))
        return
    print(text)
    if footer is not None:
        print(footer)
