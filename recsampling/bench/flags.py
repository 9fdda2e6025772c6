"""What the scripts under ``benchmarks/`` share on the command line: flags, result files, output.

- :func:`add_flags`: the common flags (``--data-dir``, ``--seed``, ``--seeds``, ``--threads``,
  ``--quick``, ``--json``, ``--no-write``, ``--tag``), each with one meaning everywhere; a script
  picks its own default and help text;
- :func:`command_line`: the command that reproduces a run, for its result file;
- :func:`check_threads`: a usage error when ``--threads`` exceeds numba's pool;
- :func:`result_path`: where a script's results go, ``results/[<folder>/]<name>_<part>..[_<tag>].json``
  beside it unless ``--out`` says otherwise;
- :func:`write_results`: that JSON file (and its ``.md`` beside it), each replaced at once;
- :func:`emit`: the human-readable text, and with ``--json`` one JSON object as the last stdout
  line (the text then goes to stderr), the contract every script's checks read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from recsampling._utils import positive_int

__all__ = ["DATA_DIR", "add_flags", "check_threads", "command_line", "result_path", "write_results", "emit"]

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


def command_line(script: str | Path, argv=None) -> str:
    """``python benchmarks/<script's name> <argv>`` (``argv`` None: this process's arguments)."""
    return " ".join(["python", f"benchmarks/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)])


def check_threads(parser: argparse.ArgumentParser, threads: int) -> None:
    """A usage error (``parser.error``) when ``threads`` exceeds numba's thread pool, which its
    ``NUMBA_NUM_THREADS`` fixes when numba loads."""
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        parser.error(f"--threads {threads} exceeds numba's pool ({numba.config.NUMBA_NUM_THREADS}); "
                     "set NUMBA_NUM_THREADS")


def result_path(script: str | Path, *parts, tag: str = "", out: str | Path | None = None, folder: str = "") -> Path:
    """Where a script writes its results: ``out`` when given, else ``results/<stem>.json`` beside
    ``script`` (its ``__file__``), in ``results/<folder>/`` with a ``folder``.

    The stem is the ``parts`` that are not empty (nor False nor None) and ``tag``, joined by ``_``:
    ``result_path(__file__, "mnar", dataset, args.quick and "quick", tag=args.tag)`` is
    ``results/mnar_coat_quick.json`` for ``--quick`` on Coat.
    """
    if out is not None:
        return Path(out)
    stem = "_".join(str(p) for p in (*parts, tag) if p)
    if not stem:
        raise ValueError("a result file needs a name")
    return Path(script).resolve().parent / "results" / folder / f"{stem}.json"


def write_results(path: str | Path, result: dict, text: str | None = None, indent: int = 1, newline: bool = False,
                  **dumps) -> Path:
    """Write ``result`` to ``path`` (a ``.json`` file, its folder created) and ``text`` to the ``.md``
    beside it; returns ``path``.

    Each file is written to ``<name>.tmp`` first and then renamed: a reader (or a second process
    writing the same file) never sees half of one. ``newline`` ends the JSON with one; ``dumps`` goes
    to :func:`json.dumps` (e.g. ``default=float``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, json.dumps(result, indent=indent, **dumps) + ("\n" if newline else ""))
    if text is not None:
        _replace(path.with_suffix(".md"), text + "\n")
    return path


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
