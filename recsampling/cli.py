"""The ``recsampling`` command: datasets, train, evaluate, recommend, tune, bench and the demo (main job).

Every command that prints a table also takes ``--json`` (then its last stdout line is one JSON
object). Bad arguments and bad files end with one clear line on stderr and a non-zero exit, never
a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from recsampling._utils import positive_int, to_jsonable

__all__ = ["main"]

EXIT_USAGE = 2
SPLIT_FILE = "split.json"  # the data settings of 'train --out', read back by 'evaluate'
# the data flags' defaults, for the parser and for an evaluate without split.json
_SPLIT_DEFAULTS = {"dataset": None, "data_dir": None, "threshold": 4.0, "test_fraction": 0.2, "seed": 0}

logger = logging.getLogger("recsampling")


class CLIError(Exception):
    """An error meant for the user: printed as one line, exit status 2."""


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


def _load_config(path: str | None) -> dict:
    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"config file {p} does not exist")
    text = p.read_text()
    try:
        if p.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file
        raise CLIError(f"config file {p} could not be parsed: {e}") from None


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
def _dataset(args) -> Any:
    from recsampling.data.datasets import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=getattr(args, "download", False))


def _train_test(args):
    """(train, test, test_items) as positives, from a dataset name or file, split as asked."""
    from recsampling.data.splits import random_split

    ds = _dataset(args)
    data = ds.interactions
    threshold = args.threshold
    if threshold is not None and data.ratings is None:
        threshold = None  # pairs without ratings are all positives
    train = data.to_implicit(threshold)
    test_items = None
    if ds.test is not None:
        test = ds.test.to_implicit(threshold) if (threshold is not None and ds.test.ratings is not None) else ds.test
        test_items = ds.info.get("test_items") if isinstance(ds.info, dict) else None
    else:
        split = random_split(train, test_fraction=args.test_fraction, random_state=args.seed)
        train, test = split.train, split.test
    return ds, train, test, test_items


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
    return Recommender(
        model=args.model or config.get("model", "mf"),
        sampler=args.sampler or config.get("sampler", "bpr"),
        model_params=model_params,
        sampler_params=sampler_params,
        random_state=args.seed,
        progress=not args.json and not args.quiet,
        **params,
    )


def _protocol(test_items) -> dict:
    """Rank each user's randomized test items where the data set has them, else every item."""
    return {} if test_items is None else {"protocol": "test_items", "test_items": test_items}


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
            "test_fraction": args.test_fraction, "seed": args.seed}


def _use_training_split(args) -> None:
    """Fill the data flags 'evaluate' was not given from the model folder's ``split.json``.

    A flag that was given and differs from training's is used, with a warning: on a data set
    without a randomized test set another seed or fraction draws another holdout, whose test pairs
    include training pairs.
    """
    path = Path(args.model_dir) / SPLIT_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
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


def cmd_train(args) -> int:
    config = _load_config(args.config)
    ds, train, test, test_items = _train_test(args)
    rec = _recommender_from_args(args, config)
    rec.fit(train)
    if _end_distributed():  # under torchrun: rank 0 alone evaluates, writes and prints
        return 0
    ks = tuple(args.k)
    result = rec.evaluate(test, ks=ks, **_protocol(test_items))
    out = {"dataset": ds.name, "model": rec.model, "sampler": rec.sampler, **result.to_dict(),
           "world_size": rec.history_.world_size}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        rec.save(args.out)
        (Path(args.out) / SPLIT_FILE).write_text(json.dumps(_split_settings(args), indent=2))
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
    rec = _load_recommender(args.model_dir)
    _use_training_split(args)
    ds, train, test, test_items = _train_test(args)
    result = rec.evaluate(test, ks=tuple(args.k), **_protocol(test_items))
    d, table = _eval_table(result)
    _emit({"dataset": ds.name, **d}, args.json, table)
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
    ids, scores = rec.recommend(idx, k=args.top)
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
                              progress=not (args.json or args.quiet))
    _emit(summary, args.json, table)
    return 0


def cmd_tune(args) -> int:
    from collections import Counter

    import optuna

    from recsampling.data.splits import validation_split
    from recsampling.suite import GRID, load_task
    from recsampling.tuning import _redacted, default_storage, run_study, save_plots

    if args.model not in ("mf", "twotower"):
        raise CLIError(f"--model must be mf or twotower, got {args.model!r}")
    samplers = list(GRID[args.model]) if args.sampler == "all" else [s.strip() for s in args.sampler.split(",")]
    from recsampling.samplers import SAMPLERS

    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:  # before any study runs: a typo late in the list would otherwise cost the earlier studies
        raise CLIError(f"unknown sampler(s) {unknown}; choose among {sorted(SAMPLERS)} or 'all'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = load_task(args.dataset, args.data_dir, quick=args.quick, split_seed=args.split_seed)
    # tune on a validation split of the training part: the suite's test set is never looked at
    inner = validation_split(task.train, 0.2, random_state=args.seed)
    storage = args.storage or default_storage(args.run_dir, "studies")
    rows, plots = [], []
    for sampler in samplers:
        name = f"{args.dataset}-{args.model}-{sampler}"
        study = run_study(args.model, sampler, inner.train, inner.eval_test, n_trials=args.trials, storage=storage,
                          study_name=name, pruner=args.pruner, seed=args.seed, epochs=args.epochs,
                          metric=args.metric, dataset=args.dataset, device=args.device,
                          heartbeat_interval=args.heartbeat, grace_period=args.grace_period,
                          retries=args.retry_failed)
        # finished trials only; those running (in other workers) or queued are counted apart
        n = Counter(t.state.name for t in study.trials)
        done = n["COMPLETE"]
        rows.append({"study": name, "finished": done + n["PRUNED"] + n["FAIL"], "complete": done,
                     "pruned": n["PRUNED"], "failed": n["FAIL"], "running": n["RUNNING"], "waiting": n["WAITING"],
                     f"best {args.metric}": study.best_value if done else None,
                     "best params": study.best_params if done else None})
        if args.plots and done:
            plots += save_plots(study, args.plots, name)
    import pandas as pd

    shown = _redacted(storage)  # no password on the screen
    table = pd.DataFrame(rows).to_string(index=False) + f"\nstorage: {shown}  (use: recsampling bench --tuned {shown})"
    _emit({"storage": shown, "studies": rows, "plots": plots}, args.json, table)
    return 0


# --------------------------------------------------------------------------- parser
def _add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required,
                   help="a dataset name (see 'recsampling datasets list') or a CSV/TSV/Parquet file")
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (e.g. ../shared/data)")
    p.add_argument("--download", action="store_true", help="download the official release if absent")
    p.add_argument("--threshold", type=float, default=_SPLIT_DEFAULTS["threshold"],
                   help="ratings >= this are positives (default 4; ignored for data without ratings)")
    p.add_argument("--test-fraction", type=float, default=_SPLIT_DEFAULTS["test_fraction"],
                   help="per-user holdout fraction when the data has no randomized test set")
    p.add_argument("-k", type=int, nargs="+", default=[10], help="cut-offs of the metrics (default 10)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="a TOML or JSON file with model/sampler/model_params/sampler_params/trainer")
    p.add_argument("--model", help="mf or twotower (default mf)")
    p.add_argument("--sampler", help="a registered sampler, e.g. bpr, popularity, dns, bpo, nbpo, relmf, ubpr, dla")
    p.add_argument("--model-param", action="append", metavar="KEY=VALUE", help="model parameter (repeatable)")
    p.add_argument("--sampler-param", action="append", metavar="KEY=VALUE", help="sampler parameter (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--l2", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adagrad", "adam"])
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--backend", choices=["auto", "torch", "fused"],
                   help="auto (default): a fused CPU kernel when one exists for model+sampler+optimizer, else torch")
    p.add_argument("--threads", dest="n_threads", type=positive_int, help="threads of the fused kernels")
    p.add_argument("--out", help="folder to save the trained model in")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsampling", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
        p.add_argument("--seed", type=int, default=_SPLIT_DEFAULTS["seed"], help="random seed (default 0)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("datasets", help="list the supported data sets or describe one")
    p.add_argument("action", choices=["list", "describe"])
    p.add_argument("dataset", nargs="?", help="name or file, for describe")
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (e.g. ../shared/data)")
    p.add_argument("--download", action="store_true", help="download the official release if absent")
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
    p.set_defaults(func=cmd_evaluate, seed=None, threshold=None, test_fraction=None)

    p = sub.add_parser("recommend", help="top-k items for some users of a saved model")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--users", required=True, help="comma separated raw user ids")
    p.add_argument("--top", type=int, default=10, help="how many items (default 10)")
    common(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("tune", help="Optuna studies of a model x sampler(s) on a validation split, resumable")
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic, ml-100k, ml-1m, coat or yahoo-r3 (the suite's protocol; default synthetic)")
    p.add_argument("--data-dir", default=None, help="folder holding the real data sets (e.g. ../shared/data)")
    p.add_argument("--quick", action="store_true", help="the small synthetic world")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the world / train-test split (as in bench)")
    p.add_argument("--model", default="mf", help="mf or twotower (default mf)")
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
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    common(p)
    p.set_defaults(func=cmd_tune)

    sub.add_parser("bench", help="the benchmark suite (models x samplers x datasets x seeds); "
                                 "'recsampling bench --help' lists its options", add_help=False)

    p = sub.add_parser("demo", help="the main job: every method on the embedded synthetic world, one table")
    p.add_argument("--quick", action="store_true", help="a smaller world and fewer epochs")
    p.add_argument("--epochs", type=int, default=None)
    common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["bench"]:  # the suite parses its own options
        from recsampling.suite import main as suite_main

        at = argv.index("bench")
        debug = "--debug" in argv[:at]
        command = lambda: suite_main(argv[at + 1:], prog="recsampling bench")  # noqa: E731
    else:
        args = build_parser().parse_args(argv)
        debug = args.debug
        command = lambda: args.func(args)  # noqa: E731
    logging.basicConfig(level=logging.WARNING, format="recsampling: %(levelname)s: %(message)s")
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        print("recsampling: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError) as e:
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"recsampling: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
