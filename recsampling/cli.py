"""The ``recsampling`` command: datasets, train, evaluate, recommend, tune, bench and the demo (main job).

Every command that prints a table also takes ``--json`` (then its last stdout line is one JSON
object). Bad arguments and bad files end with one clear line on stderr and exit status 2, never
a traceback (``--debug`` shows it); an unexpected error is one line too, with exit status 1.

Output: warnings and progress lines go to stderr as ``recsampling: ...`` lines: one per epoch of
``train`` when stderr is not a terminal (a terminal gets tqdm's bars), one per finished trial of
``tune``. ``-q`` drops the progress, ``-qq`` the warnings too; ``-v`` adds the library's INFO
messages, ``-vv`` its DEBUG ones (before or after the command name).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from recsampling._utils import positive_int, resolve_device, to_jsonable

__all__ = ["ArgumentParser", "main"]

EXIT_USAGE = 2
SPLIT_FILE = "split.json"  # the data settings of 'train --out', read back by 'evaluate'
# the data flags' defaults, for the parser and for an evaluate without split.json
_SPLIT_DEFAULTS = {"dataset": None, "data_dir": None, "threshold": 4.0, "test_fraction": 0.2, "seed": 0,
                   "user_col": "auto", "item_col": "auto", "rating_col": "auto", "timestamp_col": "auto"}
_COLUMN_FLAGS = ("user_col", "item_col", "rating_col", "timestamp_col")

logger = logging.getLogger("recsampling")
#: progress lines (an epoch of train, a trial of tune): shown unless -q, whatever the library's level
progress = logging.getLogger("recsampling.progress")


class CLIError(Exception):
    """An error meant for the user: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, ``PROG: error: MESSAGE (see 'PROG --help')``, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _LineFormatter(logging.Formatter):
    """``recsampling: message``, ``recsampling: warning: message``; a record's traceback only with --debug."""

    def __init__(self, debug: bool):
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if self.debug and record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"recsampling: {text}"


# --------------------------------------------------------------------------- output helpers
def _emit(obj: dict, as_json: bool, table=None) -> None:
    """Print ``table`` (a DataFrame or str) or the dict, or one JSON line with ``--json``."""
    if as_json:
        print(json.dumps(to_jsonable(obj)))
        return
    if table is None:
        width = max((len(str(k)) for k in obj), default=0)
        for k, v in obj.items():
            print(f"{str(k):<{width}}  {v}")
    else:
        print(table if isinstance(table, str) else table.to_string())


#: what a --config file may hold, and its [trainer] table (the training flags of 'train')
_CONFIG_KEYS = ("model", "sampler", "model_params", "sampler_params", "trainer")
_TRAINER_KEYS = ("epochs", "lr", "l2", "batch_size", "optimizer", "device", "backend", "n_threads")


def _unknown_key(given, allowed: Sequence[str], where: str) -> None:
    """Refuse the first key of ``given`` not in ``allowed``, suggesting the closest."""
    import difflib

    for key in given:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CLIError(f"{where}: unknown key {key!r}{hint}; expected {', '.join(allowed)}")


def _load_config(path: str | None) -> dict:
    """The --config file (TOML by its suffix, else JSON), checked: only the known keys and types."""
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"config file {p} {'is a folder' if p.is_dir() else 'does not exist'}; expected a TOML or "
                       "JSON file")
    kind = "TOML" if p.suffix.lower() == ".toml" else "JSON"
    try:
        text = p.read_text(encoding="utf-8")
        if kind == "TOML":
            import tomllib

            config = tomllib.loads(text)
        else:
            config = json.loads(text)
    except (OSError, ValueError) as e:  # ValueError: TOML, JSON and UTF-8 decoding errors
        raise CLIError(f"config file {p} could not be parsed as {kind}: {e}") from None
    where = f"config file {p}"
    if not isinstance(config, dict):
        raise CLIError(f"{where} must hold a {'table' if kind == 'TOML' else 'JSON object'} with keys "
                       f"{', '.join(_CONFIG_KEYS)}; got a {type(config).__name__}")
    _unknown_key(config, _CONFIG_KEYS, where)
    for key in ("model", "sampler"):
        if key in config and not isinstance(config[key], str):
            raise CLIError(f"{where}: {key} must be a name (a string), got {config[key]!r}")
    for key in ("model_params", "sampler_params", "trainer"):
        if key in config and not isinstance(config[key], dict):
            raise CLIError(f"{where}: {key} must be a table of NAME = VALUE, got a {type(config[key]).__name__} "
                           f"({config[key]!r:.40})")
    _unknown_key(config.get("trainer", {}), _TRAINER_KEYS, f"{where}: [trainer]")
    return config


def _parse_kv(pairs: Sequence[str] | None, what: str) -> dict:
    """``["n_negatives=4", "alpha=0.5"]`` -> ``{"n_negatives": 4, "alpha": 0.5}`` (JSON values)."""
    out = {}
    for item in pairs or ():
        if "=" not in item:
            raise CLIError(f"{what} must look like KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


# --------------------------------------------------------------------------- data
def _read_options(args) -> dict:
    """A file's columns as --user-col ... say (``none``: not read); refused for a data set name."""
    columns = {key: getattr(args, key, "auto") for key in _COLUMN_FLAGS}
    columns = {key: None if value == "none" else value for key, value in columns.items()}
    path = Path(str(args.dataset)).expanduser()
    if path.is_file() and path.suffix.lower() != ".zip":
        return columns
    given = ["--" + k.replace("_", "-") for k, v in columns.items() if v != "auto"]
    if given:
        raise CLIError(f"{', '.join(given)} name{'s' if len(given) == 1 else ''} the columns of a CSV/TSV/Parquet "
                       f"file; {args.dataset!r} is not one")
    return {}


def _dataset(args) -> Any:
    """The data set of --dataset, as read for 'datasets describe'."""
    from recsampling.data.datasets import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=getattr(args, "download", False),
                        **_read_options(args))


def _task(args):
    """The evaluation task of the data flags: positives, the randomized test or a seeded split."""
    from recsampling.tasks import load_task

    return load_task(args.dataset, data_dir=args.data_dir, seed=args.seed, threshold=args.threshold,
                     test_fraction=args.test_fraction, ks=tuple(args.k), download=getattr(args, "download", False),
                     **_read_options(args))


def cmd_datasets(args) -> int:
    from recsampling.data.datasets import describe_dataset, list_datasets

    if args.action == "list":
        rows = list_datasets()
        import pandas as pd

        _emit({"datasets": rows}, args.json, pd.DataFrame(rows).to_string(index=False))
        return 0
    if not args.dataset:
        raise CLIError("datasets describe needs a dataset name or file, e.g. 'recsampling datasets describe ml-100k'")
    ds = _dataset(args)
    _emit(describe_dataset(ds), args.json)
    return 0


# --------------------------------------------------------------------------- train / evaluate / recommend
def _recommender_from_args(args, config: dict):
    from recsampling.recommender import Recommender

    params = dict(config.get("trainer", {}))
    for key in ("epochs", "lr", "l2", "batch_size", "optimizer", "device", "backend", "n_threads"):
        value = getattr(args, key, None)
        if value is not None:
            params[key] = value
    model_params = {**config.get("model_params", {}), **_parse_kv(args.model_param, "--model-param")}
    sampler_params = {**config.get("sampler_params", {}), **_parse_kv(args.sampler_param, "--sampler-param")}
    sampler = args.sampler or config.get("sampler", "bpr")
    # bars on a terminal, else the trainer's progress line per epoch (-v: its own INFO line per epoch instead)
    shown = args.verbosity == 0 or (args.verbosity > 0 and sys.stderr.isatty())
    return Recommender(
        model=args.model or config.get("model", "mf"),
        sampler=sampler,
        model_params=model_params,
        sampler_params=sampler_params,
        random_state=args.seed,
        progress=shown,
        **params,
    )


_DEFAULT_FACTORS = 64  # the built-in models' default, for the size estimate of a saved model


def _eval_table(result) -> tuple[dict, str]:
    d = result.to_dict()
    return d, result.summary.to_string(index=False)


def _split_settings(args) -> dict:
    """The flags that decide the train/test split, with paths made absolute (for 'evaluate')."""
    dataset = args.dataset
    if Path(dataset).is_file():
        dataset = str(Path(dataset).resolve())
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    return {"dataset": dataset, "data_dir": data_dir, "threshold": args.threshold,
            "test_fraction": args.test_fraction, "seed": args.seed, **{k: getattr(args, k) for k in _COLUMN_FLAGS}}


def _read_split(path: Path) -> dict:
    """A model folder's ``split.json``, checked: a JSON object of the data flags and their types."""
    from recsampling._checksums import MANIFEST, verify_checksum

    if not path.is_file():
        return {}
    if not verify_checksum(path):  # raises on a mismatch: a changed split.json would evaluate on another split
        logger.warning("%s has no checksum in %s (saved before split.json was checked, or copied without it): "
                       "corruption cannot be detected", path, MANIFEST)
    redo = "give the data flags (--dataset, ...) and delete the file, or train again with --out"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CLIError(f"{path} is not valid JSON ({e}); {redo}") from None
    if not isinstance(saved, dict):
        raise CLIError(f"{path} must hold a JSON object of the training run's data flags ({', '.join(_SPLIT_DEFAULTS)})"
                       f", got a {type(saved).__name__}; {redo}")
    _unknown_key(saved, tuple(_SPLIT_DEFAULTS), str(path))
    number = (int, float)
    types = {"dataset": (str,), "data_dir": (str, type(None)), "threshold": (*number, type(None)),
             "test_fraction": number, "seed": (int,), **{k: (str, type(None)) for k in _COLUMN_FLAGS}}
    for key, value in saved.items():
        if isinstance(value, bool) or not isinstance(value, types[key]):
            raise CLIError(f"{path}: {key} must be {' or '.join(t.__name__ for t in types[key])}, got {value!r}; {redo}")
    return saved


def _use_training_split(args) -> None:
    """Fill the data flags 'evaluate' was not given from the model folder's ``split.json``.

    A flag that was given and differs from training's is used, with a warning: on a data set
    without a randomized test set another seed or fraction draws another holdout, whose test pairs
    include training pairs.
    """
    saved = _read_split(Path(args.model_dir) / SPLIT_FILE)
    if args.dataset is not None and Path(args.dataset).is_file():
        args.dataset = str(Path(args.dataset).resolve())
    for key, default in _SPLIT_DEFAULTS.items():
        given = getattr(args, key)
        if given is None:
            setattr(args, key, saved.get(key, default))
        elif key in saved and key != "data_dir" and given != saved[key]:
            flag = "--" + key.replace("_", "-")
            logger.warning("the model in %s was trained with %s %s; evaluating with %s %s", args.model_dir, flag,
                           saved[key], flag, given)
    if args.dataset is None:
        raise CLIError(f"{args.model_dir} has no {SPLIT_FILE} (written by 'recsampling train --out'): give --dataset")


def _end_distributed() -> bool:
    """Close torchrun's process group after a fit; True on a rank other than 0 (it has nothing left to do)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        dist.destroy_process_group()
        return rank != 0
    return False


def _saved_bytes(train, factors) -> int:
    """A lower bound of the size of a saved model: embedding tables, training matrix, columns, ids."""
    factors = factors if isinstance(factors, int) and not isinstance(factors, bool) else _DEFAULT_FACTORS
    columns = sum(getattr(train, c) is not None for c in ("ratings", "timestamps", "propensities"))
    return int((train.n_users + train.n_items) * (4 * factors + 8) + train.nnz * (12 + 8 * columns)
               + (train.n_users + 1) * 8)


def _save(rec, out: Path, settings: dict) -> None:
    """Save the model and ``split.json`` in ``out`` through a staging folder inside it.

    A save that fails (a full disk) leaves ``out`` as it was and nothing behind: the staging
    folder is removed, and ``out`` too when this run created it.
    """
    import os
    import shutil

    from recsampling._checksums import MANIFEST, record_checksum
    from recsampling._files import atomic_write

    created = not out.exists()
    stage = out / f".saving{os.getpid()}"
    try:
        rec.save(stage)
        atomic_write(stage / SPLIT_FILE, json.dumps(settings, indent=2))
        names = [f.name for f in stage.iterdir() if f.name != MANIFEST]
        for name in names:
            os.replace(stage / name, out / name)
        for name in names:  # into out's own manifest, which may list other files too
            record_checksum(out / name)
    except BaseException as e:
        shutil.rmtree(out if created else stage, ignore_errors=True)
        if isinstance(e, OSError):
            raise CLIError(f"could not save the model in {out}: {e.strerror or e}; nothing was written") from None
        raise
    shutil.rmtree(stage, ignore_errors=True)


def cmd_train(args) -> int:
    from recsampling._files import check_writable
    from recsampling.evaluation import check_cutoffs

    config = _load_config(args.config)
    task = _task(args)
    train = task.train
    rec = _recommender_from_args(args, config)
    check_cutoffs(args.k, train.n_items)  # before training; the fit checks its own sizes before allocating
    if args.out:  # before training: a folder that cannot take the model fails now, not after the fit
        check_writable(args.out, _saved_bytes(train, (rec.model_params or {}).get("factors")), what="--out")
    rec.fit(train)
    if _end_distributed():  # under torchrun: rank 0 alone evaluates, writes and prints
        return 0
    result = task.evaluate(rec)
    out = {"dataset": task.name, "model": rec.model, "sampler": rec.sampler, **result.to_dict(),
           "world_size": rec.history_.world_size}
    if args.out:
        _save(rec, Path(args.out), _split_settings(args))
        out["saved_to"] = str(args.out)
    _, table = _eval_table(result)
    _emit(out, args.json, table + (f"\nsaved to {args.out}" if args.out else ""))
    return 0


def _load_recommender(path: str):
    from recsampling.recommender import Recommender

    p = Path(path)
    if not p.exists():
        raise CLIError(f"model folder {p} does not exist (train one with 'recsampling train --out {p}')")
    return Recommender.load(p)


def cmd_evaluate(args) -> int:
    from recsampling.evaluation import check_cutoffs

    rec = _load_recommender(args.model_dir)
    _use_training_split(args)
    task = _task(args)
    check_cutoffs(args.k, rec.train_.n_items)
    result = task.evaluate(rec)
    d, table = _eval_table(result)
    _emit({"dataset": task.name, **d}, args.json, table)
    return 0


def cmd_recommend(args) -> int:
    import numpy as np

    rec = _load_recommender(args.model_dir)
    raw = [u.strip() for u in args.users.split(",") if u.strip()]
    if not raw:
        raise CLIError("--users needs at least one user id, e.g. --users 1,2,3")
    user_ids = rec.train_.user_ids
    lookup = {str(u): i for i, u in enumerate(user_ids)}
    missing = [u for u in raw if u not in lookup]
    if missing:
        raise CLIError(f"unknown user id(s) {missing[:5]}; the model knows {len(user_ids)} users")
    idx = np.array([lookup[u] for u in raw])
    ids, scores = rec.recommend(idx, k=min(args.top, rec.train_.n_items))  # more than every item is every item
    items = rec.train_.item_ids
    rows = {u: [items[i].item() if hasattr(items[i], "item") else items[i] for i in row if i >= 0]
            for u, row in zip(raw, ids)}
    if args.json:
        _emit({"recommendations": rows}, True)
    else:
        for u, its in rows.items():
            print(f"{u}: {' '.join(map(str, its))}")
    return 0


def cmd_demo(args) -> int:
    from recsampling.demo import run_demo

    table, summary = run_demo(quick=args.quick, seed=args.seed, epochs=args.epochs,
                              progress=not args.json and args.verbosity >= 0 and sys.stderr.isatty())
    _emit(summary, args.json, table)
    return 0


def _flag(key: str, value) -> str:
    flag = "--" + key.replace("_", "-")
    return (flag if value else f"no {flag}") if isinstance(value, bool) else f"{flag} {value}"


def _check_studies(storage: str, names: Sequence[str], settings: dict) -> None:
    """Refuse, before the data is loaded, a stored study whose trials were run with other
    ``settings`` (what a trial measures: epochs, data, metric); :func:`recsampling.tuning.run_study`
    checks again and records them."""
    import optuna

    from recsampling.tuning import _open_storage, _redacted, settings_conflict

    rdb = _open_storage(storage)
    stored_names = set(optuna.study.get_all_study_names(storage=rdb))
    for name in names:
        if name not in stored_names:
            continue
        conflict = settings_conflict(optuna.load_study(study_name=name, storage=rdb), settings)
        if conflict is not None:
            key, stored, asked = conflict
            raise CLIError(f"study {name} in {_redacted(storage)} was tuned with {_flag(key, stored)}, this run "
                           f"asks for {_flag(key, asked)}: their trials would not compare; run with the "
                           "study's settings, or give another --storage or --run-dir")


@contextlib.contextmanager
def _optuna_lines(verbosity: int):
    """Optuna's line per finished trial through our logging (shown unless -q; tracebacks with --debug)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO if verbosity >= 0 else logging.WARNING if verbosity == -1
                                 else logging.ERROR)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    # our own line names each study: not Optuna's 'A new study created' / 'Using an existing study'
    quiet = [logging.getLogger(name) for name in ("optuna.storages._rdb.storage", "optuna.study.study")]

    def no_study_line(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("A new study created", "Using an existing study"))

    for lg in quiet:
        lg.addFilter(no_study_line)
    try:
        yield
    finally:
        for lg in quiet:
            lg.removeFilter(no_study_line)
        optuna.logging.disable_propagation()
        optuna.logging.enable_default_handler()
        optuna.logging.set_verbosity(level)


def cmd_tune(args) -> int:
    import os
    import socket
    from collections import Counter

    from recsampling._files import check_writable
    from recsampling.data.splits import validation_split
    from recsampling.models import MODELS
    from recsampling.samplers import SAMPLERS, samplers_for
    from recsampling.suite import suite_task
    from recsampling.tuning import _redacted, default_storage, make_objective, run_study, save_plots

    if args.model not in MODELS:
        raise CLIError(f"--model must be a registered model ({', '.join(MODELS)}), got {args.model!r}")
    samplers = samplers_for(args.model) if args.sampler == "all" else [s.strip() for s in args.sampler.split(",")]

    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:  # before any study runs: a typo late in the list would otherwise cost the earlier studies
        raise CLIError(f"unknown sampler(s) {unknown}; choose among {sorted(SAMPLERS)} or 'all'")
    if args.plots:
        check_writable(args.plots, what="--plots")
    if args.storage is None:
        check_writable(args.run_dir, what="--run-dir")
    storage = args.storage or default_storage(args.run_dir, "studies")
    names = {sampler: f"{args.dataset}-{args.model}-{sampler}" for sampler in samplers}
    settings = {"epochs": args.epochs, "quick": args.quick, "split_seed": args.split_seed, "metric": args.metric}
    _check_studies(storage, list(names.values()), settings)  # before the data is loaded
    task = suite_task(args.dataset, args.data_dir, quick=args.quick, split_seed=args.split_seed)
    # tune on a validation split of the training part: the suite's test set is never looked at
    inner = validation_split(task.train, 0.2, random_state=args.seed)
    for sampler in samplers:  # the metric and each sampler's objective, before any study is created
        make_objective(inner.train, inner.eval_test, args.model, sampler, epochs=args.epochs, metric=args.metric)
    me = f"{socket.gethostname()}:{os.getpid()}"  # the 'worker' attribute of the trials this process runs
    rows, plots, mine = [], [], Counter()
    with _optuna_lines(args.verbosity):
        for sampler, name in names.items():
            progress.info("study %s: %d trials of %d epochs", name, args.trials, args.epochs)
            study = run_study(args.model, sampler, inner.train, inner.eval_test, n_trials=args.trials,
                              storage=storage, study_name=name, pruner=args.pruner, seed=args.seed,
                              epochs=args.epochs, metric=args.metric, dataset=args.dataset, device=args.device,
                              heartbeat_interval=args.heartbeat, grace_period=args.grace_period,
                              retries=args.retry_failed,
                              settings={"quick": args.quick, "split_seed": args.split_seed})
            # finished trials only; those running (in other workers) or queued are counted apart
            n = Counter(t.state.name for t in study.trials)
            mine.update(t.state.name for t in study.trials if t.user_attrs.get("worker") == me)
            done = n["COMPLETE"]
            rows.append({"study": name, "finished": done + n["PRUNED"] + n["FAIL"], "complete": done,
                         "pruned": n["PRUNED"], "failed": n["FAIL"], "running": n["RUNNING"],
                         "waiting": n["WAITING"], f"best {args.metric}": study.best_value if done else None,
                         "best params": study.best_params if done else None})
            if args.plots and done:
                plots += save_plots(study, args.plots, name)
    import pandas as pd

    shown = _redacted(storage)  # no password on the screen
    table = pd.DataFrame(rows).to_string(index=False) + f"\nstorage: {shown}  (use: recsampling bench --tuned {shown})"
    _emit({"storage": shown, "studies": rows, "plots": plots}, args.json, table)
    if mine["FAIL"] and not (mine["COMPLETE"] or mine["PRUNED"]):
        print(f"recsampling: error: every trial this run started failed ({mine['FAIL']}; the reasons are in the "
              "lines above)", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- parser
def _device(text: str) -> str:
    """argparse type of --device: a device torch cannot use is a usage error (the text is kept)."""
    try:
        resolve_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _finite(text: str) -> float:
    """argparse type of a number flag: a finite float."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _seed(text: str) -> int:
    """argparse type of a seed: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _add_column_args(p: argparse.ArgumentParser) -> None:
    for role, names in (("user", "user_id, userId, user, uid, ..."), ("item", "item_id, movieId, product_id, ..."),
                        ("rating", "rating, score, stars, ..."), ("timestamp", "timestamp, time, date, ...")):
        none = "; 'none': do not read one" if role in ("rating", "timestamp") else ""
        p.add_argument(f"--{role}-col", default=_SPLIT_DEFAULTS[f"{role}_col"], metavar="NAME",
                       help=f"the {role} column of a CSV/TSV/Parquet file (default auto: {names}{none})")


def _add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required,
                   help="a dataset name (see 'recsampling datasets list') or a CSV/TSV/Parquet file")
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (e.g. ../shared/data)")
    p.add_argument("--download", action="store_true", help="download the official release if absent")
    p.add_argument("--threshold", type=_finite, default=_SPLIT_DEFAULTS["threshold"],
                   help="ratings >= this are positives (default 4; ignored for data without ratings)")
    p.add_argument("--test-fraction", type=float, default=_SPLIT_DEFAULTS["test_fraction"],
                   help="per-user holdout fraction when the data has no randomized test set")
    _add_column_args(p)
    p.add_argument("-k", type=positive_int, nargs="+", default=[10], help="cut-offs of the metrics (default 10)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a TOML or JSON file with model/sampler/model_params/sampler_params/trainer")
    p.add_argument("--model", help="a registered model: mf (default), twotower or an installed plug-in's")
    p.add_argument("--sampler", help="a registered sampler, e.g. bpr (default), popularity, dns, bpo, nbpo, relmf, "
                                     "ubpr, dla, or an installed plug-in's")
    p.add_argument("--model-param", action="append", metavar="KEY=VALUE", help="model parameter (repeatable)")
    p.add_argument("--sampler-param", action="append", metavar="KEY=VALUE", help="sampler parameter (repeatable)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--l2", type=float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--optimizer", choices=["sgd", "adagrad", "adam"])
    p.add_argument("--device", type=_device, help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--backend", choices=["auto", "torch", "fused"],
                   help="auto (default): a fused CPU kernel when one exists for model+sampler+optimizer, else torch")
    p.add_argument("--threads", dest="n_threads", type=positive_int, help="threads of the fused kernels")
    p.add_argument("--out", help="folder to save the trained model in")


def _add_verbosity_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("-v", "--verbose", dest=prefix + "verbose", action="count", default=0,
                   help="more messages: -v the library's INFO, -vv its DEBUG")
    p.add_argument("-q", "--quiet", dest=prefix + "quiet", action="count", default=0,
                   help="fewer messages: -q no progress (bars, lines per epoch or trial), -qq no warnings")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="recsampling", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_verbosity_args(parser, "global_")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.add_argument("--seed", type=_seed, default=_SPLIT_DEFAULTS["seed"], help="random seed (default 0)")
        _add_verbosity_args(p)

    p = sub.add_parser("datasets", help="list the supported data sets or describe one")
    p.add_argument("action", choices=["list", "describe"])
    p.add_argument("dataset", nargs="?", help="name or file, for describe")
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (e.g. ../shared/data)")
    p.add_argument("--download", action="store_true", help="download the official release if absent")
    _add_column_args(p)
    common(p)
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train a model and evaluate it on the test split")
    _add_data_args(p)
    _add_train_args(p)
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a saved model (on its training run's split unless told otherwise)",
                       description="Evaluate a saved model. --dataset, --data-dir, --threshold, --test-fraction "
                                   "and --seed default to the training run's (split.json in --model-dir), not to "
                                   "the defaults shown below; a differing value (but --data-dir) is used with a "
                                   "warning.")
    p.add_argument("--model-dir", required=True)
    _add_data_args(p, required=False)
    common(p)
    # unset data flags come from the model folder's split.json (the training run's)
    p.set_defaults(func=cmd_evaluate, seed=None, threshold=None, test_fraction=None,
                   **{key: None for key in _COLUMN_FLAGS})

    p = sub.add_parser("recommend", help="top-k items for some users of a saved model")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--users", required=True, help="comma separated raw user ids")
    p.add_argument("--top", type=positive_int, default=10,
                   help="how many items (default 10; at most the catalogue's)")
    common(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("tune", help="Optuna studies of a model x sampler(s) on a validation split, resumable")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic, ml-100k, ml-1m, coat or yahoo-r3 (the suite's protocol; default synthetic)")
    p.add_argument("--data-dir", default=None, help="folder holding the real data sets (e.g. ../shared/data)")
    p.add_argument("--quick", action="store_true", help="the small synthetic world")
    p.add_argument("--split-seed", type=_seed, default=0, help="seed of the world / train-test split (as in bench)")
    p.add_argument("--model", default="mf", help="a registered model: mf (default), twotower or a plug-in's")
    p.add_argument("--sampler", default="bpr",
                   help="a sampler, a comma-separated list, or 'all' (every sampler of the model, the same budget each)")
    p.add_argument("--trials", type=positive_int, default=20, help="trials per study added by this call (default 20)")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per trial (default 10)")
    p.add_argument("--metric", default="ndcg@10", help="validation metric maximized (default ndcg@10)")
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--storage", default=None,
                   help="Optuna RDB URL shared by the studies (default sqlite file RUN_DIR/studies.db); "
                        "postgresql://user:password@host:5432/db needs pip install 'recsampling[postgres]'. "
                        "Start any number of tune processes on one storage: each runs --trials more")
    p.add_argument("--heartbeat", type=positive_int, default=60, metavar="SECONDS",
                   help="a running trial writes a heartbeat to the storage this often (default 60)")
    p.add_argument("--grace-period", type=positive_int, default=None, metavar="SECONDS",
                   help="a running trial without a heartbeat for this long lost its worker: it is marked "
                        "FAIL (default twice --heartbeat)")
    p.add_argument("--retry-failed", type=int, default=0, metavar="N",
                   help="run such a lost trial again with its parameters, up to N times (default 0)")
    p.add_argument("--run-dir", default="runs/tuning", help="folder of the default storage (default runs/tuning)")
    p.add_argument("--plots", default=None, metavar="DIR", help="save Optuna's history and importance PNGs in DIR")
    p.add_argument("--device", default="cpu", type=_device, help="cpu (default), cuda, cuda:N or auto")
    common(p)
    p.set_defaults(func=cmd_tune)

    sub.add_parser("bench", help="the benchmark suite (models x samplers x datasets x seeds); "
                                 "'recsampling bench --help' lists its options", add_help=False)

    p = sub.add_parser("demo", help="the main job: every method on the embedded synthetic world, one table")
    p.add_argument("--quick", action="store_true", help="a smaller world and fewer epochs")
    p.add_argument("--epochs", type=positive_int, default=None)
    common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def _configure_logging(verbosity: int, debug: bool):
    """Levels from -v / -q (see the module docstring) and one-line records on stderr.

    Returns a function that puts the previous levels (and handlers) back, so that a program or a
    test calling :func:`main` keeps its own logging. A root logger with handlers already (pytest's,
    an application's) is left to print as it does.
    """
    package = logging.getLogger("recsampling")
    before = (package.level, progress.level)
    level = (logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else
             logging.WARNING if verbosity >= -1 else logging.ERROR)
    package.setLevel(level)
    progress.setLevel(logging.INFO if verbosity >= 0 else level)
    root = logging.getLogger()
    handler = None
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LineFormatter(debug))
        root.addHandler(handler)

    def restore() -> None:
        package.setLevel(before[0])
        progress.setLevel(before[1])
        if handler is not None:
            root.removeHandler(handler)

    return restore


def _error_line(e: BaseException) -> tuple[str, int]:
    """The one stderr line for an exception, and the exit status: 2 for the user's input, else 1."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, (CLIError, ValueError, OSError, KeyError)):  # OSError: files, permissions, a full disk
        return first, EXIT_USAGE
    # numpy's MemoryError, torch's allocator failing on CPU ("can't allocate memory") or CUDA ("out of memory")
    if isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and ("allocate memory" in text
                                                                       or "out of memory" in text)):
        return f"out of memory ({first[:200]}); lower the sizes (factors, batch size, sampler counts, -k)", EXIT_USAGE
    return (f"unexpected {type(e).__name__}: {first} (a bug? 'recsampling --debug ...' shows the traceback)", 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``recsampling`` command line; returns the exit status (0 ok, 2 bad input, 1 failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv if not a.startswith("-")]
    try:
        if words[:1] == ["bench"]:  # the suite parses its own options; ours are those before 'bench'
            from recsampling.suite import main as suite_main

            at = argv.index("bench")
            args = build_parser().parse_args(argv[:at + 1])
            command = lambda: suite_main(argv[at + 1:], prog="recsampling bench")  # noqa: E731
        else:
            args = build_parser().parse_args(argv)
            command = lambda: args.func(args)  # noqa: E731
    except SystemExit as e:  # --help, or a usage error (its one line is printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    args.verbosity = (args.global_verbose + getattr(args, "verbose", 0)
                      - args.global_quiet - getattr(args, "quiet", 0))
    restore = _configure_logging(args.verbosity, args.debug)
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        print("recsampling: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # the suite's own parser
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - one line, never a traceback (but with --debug)
        if args.debug:
            raise
        msg, status = _error_line(e)
        print(f"recsampling: error: {msg}", file=sys.stderr)
        return status
    finally:
        restore()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
