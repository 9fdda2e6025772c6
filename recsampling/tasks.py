"""Evaluation tasks: a data set, its split and its test protocol as one object.

A :class:`Task` holds what every comparison needs to score a model the same way: the training
and test Interactions (plus an optional validation part), the protocol, the optional truth of a
synthetic world and the metrics. :func:`load_task` builds one for the built-in data sets and for
files; :meth:`Task.evaluate` scores a model with :func:`recsampling.evaluation.evaluate` (the one
evaluation code) and returns its :class:`~recsampling.evaluation.EvalResult`.

Protocols (the names of :func:`recsampling.evaluation.evaluate`):

- ``"full"``: every item the user has not interacted with (in ``train`` or ``valid``) is ranked;
  the MovieLens sets and files, split per user at random.
- ``"test_items"``: each user ranks only their own given test items (``test_items``), the
  randomized-test protocol of Saito et al. (WSDM 2020) for Coat, Yahoo! R3 and the synthetic
  world's missing-at-random test set.

Example::

    from recsampling.tasks import load_task
    task = load_task("ml-100k", data_dir="../shared/data", seed=0)   # 80/20 per user, full ranking
    result = task.evaluate(model)                                    # an EvalResult
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from recsampling import metrics as M
from recsampling.data.interactions import Interactions

__all__ = ["Task", "load_task", "PROTOCOLS"]

PROTOCOLS = ("full", "test_items")


@dataclass(frozen=True, eq=False)
class Task:
    """A train / test split and how to score a model on it.

    Attributes
    ----------
    name : str
        The data set (a registry name or a file path).
    train : Interactions
        The positives a model is fitted on.
    test : Interactions
        The relevant test pairs, in the index space of ``train``.
    protocol : {"full", "test_items"}
        Full ranking with the known pairs excluded, or ranking of each user's ``test_items``.
    test_items : numpy.ndarray, optional
        int64 (n_users, n) candidates of ``protocol="test_items"``, ``-1`` padded.
    valid : Interactions, optional
        Pairs held out of the training data for model selection (early stopping, tuning); fit on
        ``train``, select on ``valid`` (:meth:`validation_task`). Never used by :meth:`evaluate`
        but as known pairs, excluded from the full ranking like ``train``.
    relevance : numpy.ndarray or SyntheticWorld, optional
        True relevance probabilities (a synthetic world): enables the ``true_*`` metrics.
    propensities : numpy.ndarray, optional
        Observation propensity of each test pair (canonical CSR order) or of each item: enables
        the ``ips_*`` / ``snips_*`` metrics.
    metrics : tuple of str, optional
        Base metric names of :meth:`evaluate` (None: :func:`~recsampling.evaluation.evaluate`'s
        default set).
    ks : tuple of int
        Cut-offs of :meth:`evaluate`.
    source : object, optional
        What the task was built from: the :class:`~recsampling.data.datasets.Dataset` (raw
        ratings, ``info``; for ``synthetic`` ``source.info["world"]`` is the world with its truth).
    """

    name: str
    train: Interactions
    test: Interactions
    protocol: str = "full"
    test_items: np.ndarray | None = None
    valid: Interactions | None = None
    relevance: object = None
    propensities: np.ndarray | None = None
    metrics: tuple | None = None
    ks: tuple = (10,)
    source: object = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        for field in ("train", "test"):
            if not isinstance(getattr(self, field), Interactions):
                raise ValueError(f"Task.{field} must be an Interactions, got {type(getattr(self, field)).__name__}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"Task.protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        shape = self.train.shape
        for field in ("test", "valid"):
            data = getattr(self, field)
            if data is not None and data.shape != shape:
                raise ValueError(f"Task.{field} must share train's index space {shape}, got {data.shape}")
        if self.protocol == "test_items":
            if self.test_items is None:
                raise ValueError("Task(protocol='test_items') needs test_items: the (n_users, n) candidates of each "
                                 "user, -1 padded")
            arr = np.asarray(self.test_items)
            if arr.ndim != 2 or arr.shape[0] != shape[0] or arr.dtype.kind not in "iu":
                raise ValueError(f"Task.test_items must be an integer array of shape (n_users={shape[0]}, n), got "
                                 f"{arr.dtype} {arr.shape}")
        if self.ks is not None:
            object.__setattr__(self, "ks", tuple(M._check_ks(self.ks)))
        if self.metrics is not None:
            names = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
            object.__setattr__(self, "metrics", names)

    # ---------------------------------------------------------------------------------------------
    @functools.cached_property
    def known(self) -> Interactions:
        """The pairs a model may have seen: ``train``, plus ``valid`` when there is one."""
        if self.valid is None:
            return self.train
        m = (self.train.matrix + self.valid.matrix).tocsr()
        m.data[:] = 1.0
        return Interactions.from_csr(m, user_ids=self.train.user_ids, item_ids=self.train.item_ids)

    def validation_task(self) -> "Task":
        """The task of model selection: fit on ``train``, rank ``valid`` against every other item.

        Raises
        ------
        ValueError
            when the task has no validation part (``load_task(..., valid_fraction=...)``).
        """
        if self.valid is None:
            raise ValueError(f"task {self.name!r} has no validation part; load it with valid_fraction=")
        return Task(f"{self.name} (validation)", self.train, self.valid, metrics=self.metrics, ks=self.ks,
                    source=self.source)

    def evaluate(self, model, *, metrics: Sequence[str] | None = None, ks: int | Iterable[int] | None = None,
                 protocol: str | None = None, users=None, device: str = "auto", memory_budget_mb: float = 256,
                 progress: bool = False):
        """Score ``model`` on the test set under the task's protocol.

        Parameters
        ----------
        model : model, (U, V) pair or fitted Recommender
            What :func:`recsampling.evaluation.evaluate` takes; a fitted
            :class:`~recsampling.recommender.Recommender` is evaluated through its own
            ``evaluate``, which checks that the task's id maps are its training data's and
            excludes what it was trained on (``rec.train_``; with a validation part, ``known``).
        metrics, ks : optional
            Override the task's.
        protocol : {"full", "test_items"}, optional
            Override the task's: ``"full"`` on a task with test items ranks every item the user
            has not clicked (the true relevance is known for all of them; test pairs that are
            also training clicks are dropped, as the missing-at-random test expects).
        users, device, memory_budget_mb, progress
            As in :func:`recsampling.evaluation.evaluate`.

        Returns
        -------
        EvalResult
        """
        from recsampling.evaluation import evaluate
        from recsampling.recommender import Recommender

        protocol = self.protocol if protocol is None else protocol
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if protocol == "test_items" and self.test_items is None:
            raise ValueError(f"task {self.name!r} has no test items; its protocol is {self.protocol!r}")
        kw = dict(train=self.known, ks=self.ks if ks is None else ks,
                  metrics=self.metrics if metrics is None else metrics, protocol=protocol,
                  relevance=self.relevance, propensities=self.propensities, users=users, device=device,
                  memory_budget_mb=memory_budget_mb, progress=progress)
        if protocol == "test_items":
            kw["test_items"] = self.test_items
        # a missing-at-random test set overlaps the clicks by design: dropping those pairs is expected
        quiet = _quiet("recsampling.evaluation") if protocol != self.protocol else contextlib.nullcontext()
        with quiet:
            if isinstance(model, Recommender):
                if self.valid is None:
                    del kw["train"]  # its own training data (the task's, unless the data changed since)
                return model.evaluate(self.test, **kw)
            return evaluate(model, self.test, **kw)

    def figures(self, model, names: Sequence[str], *, device: str = "auto") -> dict[str, float]:
        """The figures ``names`` (``"metric@k"``, e.g. ``"ndcg@10"``) of ``model``, as floats.

        ``true_*`` metrics rank every item the user has not clicked against the true relevance
        (``protocol="full"``); the others follow the task's protocol.
        """
        names = [str(n) for n in names]
        bad = [n for n in names if "@" not in n]
        if bad:
            raise ValueError(f"figures are 'metric@k' names such as 'ndcg@10', got {bad}")
        truth = [n for n in names if n.split("@")[0] in M.TRUTH_METRICS]
        rest = [n for n in names if n not in truth]
        out: dict[str, float] = {}
        for group, protocol in ((truth, "full"), (rest, None)):
            if group:
                r = self.evaluate(model, metrics=_bases(group), ks=_ks(group), protocol=protocol, device=device)
                d = r.to_dict()
                out.update({n: float(d[n]) for n in group})
        return {n: out[n] for n in names}

    def describe(self) -> dict:
        """Sizes and protocol, for logs and JSON."""
        d = {"name": self.name, "protocol": self.protocol, "n_users": self.train.n_users,
             "n_items": self.train.n_items, "train_interactions": int(self.train.nnz),
             "test_interactions": int(self.test.nnz)}
        if self.valid is not None:
            d["valid_interactions"] = int(self.valid.nnz)
        if self.test_items is not None:
            d["test_items_per_user"] = int(np.asarray(self.test_items).shape[1])
        return d


@contextlib.contextmanager
def _quiet(name: str):
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)  # the caller's level, not NOTSET


def _ks(names: Iterable[str]) -> tuple:
    return tuple(sorted({int(m.split("@")[1]) for m in names}))


def _bases(names: Iterable[str]) -> tuple:
    return tuple(dict.fromkeys(m.split("@")[0] for m in names))


def load_task(name: str | Path, *, data_dir=None, seed: int = 0, threshold: float | None = 4.0,
              test_fraction: float = 0.2, valid_fraction: float | None = None, valid_seed: int | None = None,
              world: dict | None = None, metrics: Sequence[str] | None = None, ks: int | Iterable[int] = (10,),
              download: bool = False, **read_options) -> Task:
    """Load a data set and its test protocol as a :class:`Task`.

    - A set with a randomized test set (``coat``, ``yahoo-r3``, ``synthetic``): train on its
      (biased) training data, ``protocol="test_items"`` over each user's randomized test items;
      ``synthetic`` also carries the world's true ``relevance``.
    - Any other set or file (``ml-100k``, ``ml-1m``, ..., a CSV / TSV / Parquet file): a random
      ``test_fraction`` of each user's positives is the test set (seeded by ``seed``; users
      without training data left out), ``protocol="full"``.

    Parameters
    ----------
    name : str or Path
        A registry name of :func:`recsampling.data.list_datasets` or a file / folder path.
    data_dir : path, optional
        The folder holding the real sets' folders (e.g. ``../shared/data``).
    seed : int
        Seeds the synthetic world and the train / test split.
    threshold : float or None
        Ratings >= ``threshold`` are positives (train and test); None keeps every pair; ignored
        for data without ratings.
    test_fraction : float
        The per-user holdout of the random split, in (0, 1).
    valid_fraction : float, optional
        Carve this share of each user's training positives into ``Task.valid``.
    valid_seed : int, optional
        Seed of the validation split (default ``seed``).
    world : dict, optional
        :func:`recsampling.data.synthetic.make_world` arguments for ``synthetic``.
    metrics, ks : optional
        The task's defaults for :meth:`Task.evaluate`.
    download : bool
        Fetch a MovieLens release when absent.
    **read_options
        Passed to :func:`recsampling.data.load_dataset` (a file's ``user_col``, ...).

    Returns
    -------
    Task

    Raises
    ------
    ValueError
        for an unknown name, a bad argument or a malformed file.
    FileNotFoundError
        when a real set's files are absent.
    """
    from recsampling.data.datasets import load_dataset
    from recsampling.data.splits import _check_fraction, random_split, validation_split

    if threshold is not None and (isinstance(threshold, bool) or not np.isfinite(float(threshold))):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    # the splitters' own check, before the data set is loaded
    test_fraction = _check_fraction(test_fraction, "test_fraction")
    if valid_fraction is not None:
        valid_fraction = _check_fraction(valid_fraction, "valid_fraction")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if world is not None and str(name) != "synthetic":
        raise ValueError(f"world= (make_world's arguments) is for 'synthetic', not {str(name)!r}")
    if str(name) == "synthetic":
        read_options = {**(world or {}), "random_state": int(seed), **read_options}
    ds = load_dataset(name, data_dir=data_dir, download=download, **read_options)
    data = ds.interactions

    def positives(x: Interactions) -> Interactions:
        return x.to_implicit(threshold) if threshold is not None and x.ratings is not None else x

    train = positives(data)
    relevance = None
    w = ds.info.get("world") if isinstance(ds.info, dict) else None
    if w is not None:
        try:
            relevance = np.asarray(w.relevance)  # dense when the world is small enough
        except ValueError:
            relevance = w  # computed per chunk of users from the world's factors
    if ds.test is not None:
        test = positives(ds.test)
        test_items = ds.info.get("test_items") if isinstance(ds.info, dict) else None
        protocol = "full" if test_items is None else "test_items"
    else:
        split = random_split(train, test_fraction, random_state=int(seed))
        train, test, test_items, protocol = split.train, split.eval_test, None, "full"
    valid = None
    if valid_fraction is not None:
        vs = validation_split(train, valid_fraction, random_state=int(seed if valid_seed is None else valid_seed))
        train, valid = vs.train, vs.eval_test
    return Task(ds.name, train, test, protocol=protocol, test_items=test_items, valid=valid, relevance=relevance,
                metrics=metrics, ks=ks, source=ds)
