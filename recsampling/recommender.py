"""The estimator front: ``Recommender(model=..., sampler=...).fit(train).recommend(users)``.

A thin scikit-learn-style wrapper over the pieces (``make_model``, ``make_sampler``,
``Trainer``, ``scoring.topk``, ``evaluation.evaluate``), which stay usable on their own. The
constructor stores its arguments untouched; ``fit`` validates them, starts from scratch and
returns ``self``; learned attributes end in ``_``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recsampling._utils import RandomState, check_memory, check_random_state, to_jsonable
from recsampling.data.interactions import Interactions

__all__ = ["Recommender"]

logger = logging.getLogger("recsampling")

_STATE_FILE = "model.pt"
_PARAMS_FILE = "recommender.json"


class Recommender:
    """Fit a model with a sampler on implicit feedback, then recommend and evaluate.

    Parameters
    ----------
    model : {"mf", "twotower"}, default "mf"
    sampler : str, default "bpr"
        A registered sampler (``recsampling.samplers.SAMPLERS``): ``"bpr"``, ``"popularity"``,
        ``"dns"``, ``"inbatch"``, ``"nbpo"``, ``"relmf"``, ``"ubpr"``, ``"dla"``, ...
    model_params, sampler_params : dict, optional
        Constructor parameters of the model (e.g. ``{"factors": 64}``) and of the sampler
        (e.g. ``{"n_negatives": 4}``).
    epochs, batch_size, optimizer, lr, l2, device, backend, n_threads, patience, metric,
    eval_every, progress, callbacks
        Passed to :class:`recsampling.train.Trainer`.
    random_state : int, numpy.random.Generator or None
        Seeds the model's initialization and the training (one generator, resolved once per fit).

    Attributes
    ----------
    model_ : EmbeddingModel
    sampler_ : Sampler
    history_ : TrainResult
    train_ : Interactions
        The training data (its seen items are excluded from recommendations).
    """

    def __init__(
        self,
        model: str = "mf",
        sampler: str = "bpr",
        model_params: dict | None = None,
        sampler_params: dict | None = None,
        epochs: int = 20,
        batch_size: int = 1024,
        optimizer: str = "adam",
        lr: float = 0.01,
        l2: float = 0.0,
        device: str = "auto",
        random_state: RandomState = None,
        backend: str = "auto",
        n_threads: int | None = None,
        patience: int | None = None,
        metric: str = "ndcg@10",
        eval_every: int = 1,
        progress: bool = False,
        callbacks: Sequence[Callable[[int, dict], Any]] = (),
    ):
        self.model = model
        self.sampler = sampler
        self.model_params = model_params
        self.sampler_params = sampler_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.device = device
        self.random_state = random_state
        self.backend = backend
        self.n_threads = n_threads
        self.patience = patience
        self.metric = metric
        self.eval_every = eval_every
        self.progress = progress
        self.callbacks = callbacks

    _TRAINER_ARGS = ("epochs", "batch_size", "optimizer", "lr", "l2", "device", "backend", "n_threads", "patience",
                     "metric", "eval_every", "progress", "callbacks")

    def get_params(self) -> dict:
        """The constructor arguments (sklearn convention)."""
        return {k: getattr(self, k) for k in ("model", "sampler", "model_params", "sampler_params", "random_state",
                                              *self._TRAINER_ARGS)}

    # ------------------------------------------------------------------------------------------
    def fit(self, train: Interactions, valid: Interactions | None = None) -> "Recommender":
        """Train from scratch on ``train`` (``valid`` enables early stopping); returns ``self``.

        Sizes are checked before anything is allocated: ``factors`` whose tables (with their
        gradients and Adam moments) exceed the machine's memory here, a sampler's per-row item
        counts beyond the catalogue and a batch beyond memory in :class:`recsampling.train.Trainer`
        (a ``ValueError`` each).
        """
        from recsampling.models import make_model
        from recsampling.samplers import make_sampler
        from recsampling.train import Trainer

        if not isinstance(train, Interactions):
            raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
        for name in ("model_params", "sampler_params"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict or None, got {type(value).__name__}")
        rng = check_random_state(self.random_state)
        mp = dict(self.model_params or {})
        factors = mp.get("factors", 64)
        if isinstance(factors, int) and not isinstance(factors, bool) and factors > 0:  # the model refuses others
            # float32 weights, their gradients and two Adam moments (the trainer checks the rest)
            check_memory((train.n_users + train.n_items) * factors * 4 * 4,
                         f"the model (factors={factors}, {train.n_users} users x {train.n_items} items)", "factors")
        mp.setdefault("random_state", rng)
        model = make_model(self.model, train, **mp)
        try:
            sampler = make_sampler(self.sampler, **(self.sampler_params or {}))
        except TypeError as e:
            raise ValueError(f"bad parameters for sampler {self.sampler!r}: {e}") from None
        trainer = Trainer(random_state=rng, **{k: getattr(self, k) for k in self._TRAINER_ARGS})
        self.history_ = trainer.fit(model, sampler, train, valid)
        self.model_, self.sampler_, self.train_ = model, sampler, train
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ValueError("this Recommender is not fitted yet; call fit(train) first")

    def _user_index(self, users, raw_ids: bool) -> np.ndarray | None:
        if users is None:
            return None
        users = np.atleast_1d(np.asarray(users))
        if not raw_ids:
            return users
        idx = _lookup(self.train_.user_ids, users)
        if (idx < 0).any():
            raise ValueError(f"unknown user id {_show_id(users[np.flatnonzero(idx < 0)[0]])}; this model's user ids "
                             f"look like {_show_id(self.train_.user_ids[0])}; use recommend_new_user for users "
                             "without training data")
        return idx

    def _out_ids(self, ids: np.ndarray, raw_ids: bool) -> np.ndarray:
        if not raw_ids:
            return ids
        out = np.empty(ids.shape, dtype=object)
        ok = ids >= 0
        out[ok] = self.train_.item_ids[ids[ok]]
        out[~ok] = None
        return out

    def recommend(self, users=None, k: int = 10, exclude_seen: bool = True, raw_ids: bool = False,
                  device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for ``users``.

        Parameters
        ----------
        users : array-like, optional
            User indices (or raw user ids with ``raw_ids=True``); all users when None.
        k : int
            List length; beyond the candidates left a list is padded. Lists that would not fit
            in memory are a ``ValueError`` (:func:`recsampling.scoring.topk`).
        exclude_seen : bool, default True
            Leave out each user's training items.
        raw_ids : bool, default False
            Take raw user ids and return raw item ids (``None`` pads short lists) instead of
            indices (``-1`` pads).
        device : str

        Returns
        -------
        ids, scores : numpy arrays of shape (n_users, k), best first
        """
        from recsampling.scoring import topk

        self._check_fitted()
        idx = self._user_index(users, raw_ids)
        U, V = self.model_.embedding_tables()
        ids, scores = topk(U, V, k, exclude=self.train_.matrix if exclude_seen else None, users=idx,
                           device=device)
        return self._out_ids(ids, raw_ids), scores

    def new_user_vectors(self, items, l2: float | None = None, random_state: RandomState = 0) -> np.ndarray:
        """Fold users who are not in the training data into the model, without retraining.

        Each new user's vector minimizes the objective the model was trained with, for that user
        alone, with the item table frozen (:func:`recsampling.foldin.fold_in`): BPR's pairwise loss
        against the sampler's negatives for the BPR family, the pointwise likelihood for BPO / NBPO
        / Rel-MF, the softmax for in-batch negatives and DLA (:func:`recsampling.foldin.objective_for`),
        plus the fit's L2. The constant columns of the user vectors (the 1 that multiplies the item
        bias) keep their value. Works for both models (only the item table is used), so a
        two-tower user without features is folded in the same way.

        Parameters
        ----------
        items : scipy sparse matrix or Interactions of shape (n_new, n_items), or a sequence of sequences
            The item indices of each new user (row ``r`` or element ``r``: user ``r``'s items).
        l2 : float, optional
            Weight of the L2 on the new vectors; default the fit's ``l2`` (or ``0.01`` when the fit had
            none: without any, a user whose items can be ranked above all others has no finite optimum).
        random_state : int, numpy.random.Generator or None, default 0
            Seeds the negative draws, which only happen for catalogues of more than 4,096 items.

        Returns
        -------
        numpy.ndarray of float32, shape (n_new, d)
        """
        import scipy.sparse as sp

        from recsampling.foldin import fold_in, objective_for

        self._check_fitted()
        n_items = self.train_.n_items
        m = getattr(items, "matrix", items)
        if not sp.issparse(m):
            rows = list(items) if isinstance(items, (list, tuple, np.ndarray)) else None
            if rows is None or any(np.ndim(r) != 1 for r in rows):
                raise ValueError("items must be a sparse (n_new, n_items) matrix, an Interactions, or a sequence of "
                                 "item-index sequences, one per new user (for one user: [items])")
            rows = [np.asarray(r) if len(r) else np.zeros(0, np.int64) for r in rows]
            idx = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n_items):
                raise ValueError(f"item indices must be integers in [0, {n_items}), got "
                                 f"{idx.min().item()!r}..{idx.max().item()!r} ({idx.dtype})")
            indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])])
            m = sp.csr_matrix((np.ones(idx.size, np.float32), idx.astype(np.int64), indptr),
                              shape=(len(rows), n_items))
        if l2 is None:
            l2 = float(self.l2) if self.l2 > 0 else 1e-2
        _, V = self.model_.embedding_tables()
        return fold_in(V, m, l2=l2, fixed_columns=self.model_.fixed_user_columns(), random_state=random_state,
                       **objective_for(self.sampler_))

    def recommend_new_user(self, items, k: int = 10, exclude_seen: bool = True, raw_ids: bool = False,
                           l2: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` for a user not in the training data, from the items they interacted with.

        The user vector comes from :meth:`new_user_vectors` (the fit's objective, item table
        frozen); ``raw_ids=True`` takes and returns raw item ids.

        Returns
        -------
        ids, scores : numpy arrays of shape (k,)
        """
        import scipy.sparse as sp

        from recsampling.scoring import topk

        self._check_fitted()
        items = np.atleast_1d(np.asarray(items))
        if raw_ids:
            idx = _lookup(self.train_.item_ids, items)
            if (idx < 0).any():
                raise ValueError(f"unknown item id {_show_id(items[np.flatnonzero(idx < 0)[0]])}; this model's item "
                                 f"ids look like {_show_id(self.train_.item_ids[0])}")
            items = idx
        if items.size == 0:
            raise ValueError("items must hold at least one item")
        u = self.new_user_vectors([items], l2=l2)
        _, V = self.model_.embedding_tables()
        exclude = None
        if exclude_seen:
            seen = np.unique(items.astype(np.int64))
            exclude = sp.csr_matrix((np.ones(seen.size, np.float32), seen, [0, seen.size]),
                                    shape=(1, self.train_.n_items))
        ids, scores = topk(u, V, k, exclude=exclude)
        return self._out_ids(ids, raw_ids)[0], scores[0]

    def evaluate(self, test, ks=(10,), **kwargs):
        """Metrics on ``test`` with the training items excluded (:func:`recsampling.evaluation.evaluate`).

        Returns
        -------
        EvalResult
            ``.to_dict()`` gives ``{"ndcg@10": ..., "recall@10": ..., ...}``.

        Raises
        ------
        ValueError
            when ``test`` (or a given ``train``) is an Interactions whose user or item id maps are
            not this model's: index k would mean another user or item than in training. Put such
            data in the model's index space with ``Interactions.from_arrays(users, items,
            user_ids=rec.train_.user_ids, item_ids=rec.train_.item_ids)``.
        """
        from recsampling.evaluation import evaluate

        self._check_fitted()
        kwargs.setdefault("train", self.train_)
        for name, data in (("test", test), ("train", kwargs["train"])):
            if isinstance(data, Interactions):
                self._check_same_ids(data, name)
        return evaluate(self.model_, test, ks=ks, **kwargs)

    def _check_same_ids(self, data: Interactions, name: str) -> None:
        """Refuse data whose index -> raw id maps are not this model's (indices would mean other users)."""
        for axis, mine, theirs in (("user", self.train_.user_ids, data.user_ids),
                                   ("item", self.train_.item_ids, data.item_ids)):
            if mine is theirs:
                continue
            if mine.shape != theirs.shape:
                raise ValueError(f"{name} has {theirs.size} {axis}s, this model {mine.size}: the data is not in the "
                                 "model's index space; build it with Interactions.from_arrays(..., user_ids="
                                 "rec.train_.user_ids, item_ids=rec.train_.item_ids)")
            differ = np.flatnonzero(~np.asarray(mine == theirs, dtype=bool))  # by value: 1 is not '1'; 1 is 1.0
            if differ.size:
                k = int(differ[0])
                raise ValueError(f"{name}'s {axis} ids differ from this model's at {differ.size} of {mine.size} "
                                 f"indices (first: index {k} is {axis} {_show_id(theirs[k])} in {name}, "
                                 f"{_show_id(mine[k])} in the model): the data changed since training, or is not in "
                                 "the model's index space; build it with Interactions.from_arrays(..., user_ids="
                                 "rec.train_.user_ids, item_ids=rec.train_.item_ids)")

    # ------------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Save to the folder ``path``: ``model.pt`` (weights, sampler state, training data, id
        maps; no pickled objects), ``recommender.json`` (the constructor arguments, history) and
        ``SHA256SUMS`` (their checksums, which :meth:`load` verifies).

        Raises
        ------
        ValueError
            when a raw id cannot be saved exactly (ids must be int, uint, float, bool or str;
            an object array may mix these, e.g. ``1`` and ``'1'``).
        """
        from recsampling._checksums import record_checksum
        from recsampling._files import atomic_write
        from recsampling.checkpoint import save_checkpoint

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if k != "callbacks"}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        params = to_jsonable(params)
        save_checkpoint(path / _STATE_FILE, self.model_, self.sampler_, self.train_)
        atomic_write(path / _PARAMS_FILE, json.dumps({"params": params, "history": to_jsonable(self.history_.to_dict())},
                                                     indent=1))
        record_checksum(path / _PARAMS_FILE)
        return path

    @classmethod
    def load(cls, path) -> "Recommender":
        """Load a Recommender saved by :meth:`save` (ready to recommend and evaluate).

        Every file is first checked against its SHA-256 in the folder's ``SHA256SUMS``; a folder
        saved before checksums were recorded loads with a logged warning per file.

        Raises
        ------
        ValueError
            naming the file that is missing, corrupted (checksum mismatch) or malformed.
        """
        from recsampling._checksums import MANIFEST, verify_checksum
        from recsampling.checkpoint import load_checkpoint
        from recsampling.train import TrainResult

        path = Path(path)
        if not (path / _PARAMS_FILE).is_file() or not (path / _STATE_FILE).is_file():
            raise ValueError(f"{str(path)!r} is not a saved Recommender folder (expected {_PARAMS_FILE} and "
                             f"{_STATE_FILE})")
        if not verify_checksum(path / _PARAMS_FILE):
            logger.warning("%s has no checksum in %s (saved before checksums were recorded, or copied without it): "
                           "corruption cannot be detected", path / _PARAMS_FILE, MANIFEST)
        label = repr(str(path / _PARAMS_FILE))
        try:
            meta = json.loads((path / _PARAMS_FILE).read_text(encoding="utf-8"))
            _check_keys(meta, {"params", "history"}, label)
            _check_keys(meta["params"], set(cls().get_params()) - {"callbacks"}, f"{label}: params")
            rec = cls(**meta["params"])
            history = TrainResult(**meta["history"])
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{str(path / _PARAMS_FILE)!r} is not valid JSON: {e}") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{str(path / _PARAMS_FILE)!r} is malformed ({type(e).__name__}: {e})") from None
        ck = load_checkpoint(path / _STATE_FILE)
        if ck.train is None:
            raise ValueError(f"{str(path / _STATE_FILE)!r} has no training data; a Recommender needs it (its seen "
                             "items and id maps)")
        from recsampling.models import model_name

        saved = (model_name(ck.model), None if ck.sampler is None else ck.sampler.name)
        if saved != (rec.model, rec.sampler):
            raise ValueError(f"{label} names model {rec.model!r} and sampler {rec.sampler!r}, but "
                             f"{str(path / _STATE_FILE)!r} holds {saved[0]!r} and {saved[1]!r}: the files are not "
                             "from one save")
        rec.model_, rec.sampler_, rec.train_ = ck.model, ck.sampler, ck.train
        rec.history_ = history
        return rec

    def __repr__(self) -> str:
        fitted = "fitted" if hasattr(self, "model_") else "not fitted"
        return f"Recommender(model={self.model!r}, sampler={self.sampler!r}, {fitted})"


def _check_keys(d, expected: set, where: str) -> None:
    """A dict read back from ``recommender.json`` must hold exactly the keys :meth:`Recommender.save` writes."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(d).__name__}")
    extra, missing = sorted(set(d) - expected), sorted(expected - set(d))
    if extra or missing:
        found = "; ".join(f"{what} key(s) {keys}" for what, keys in (("unknown", extra), ("missing", missing)) if keys)
        raise ValueError(f"{where} has {found}; expected exactly {sorted(expected)} (as Recommender.save writes them)")


def _lookup(universe: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in ``universe`` (-1 when absent)."""
    import pandas as pd

    return pd.Index(universe).get_indexer(values)


def _show_id(value) -> str:
    """``'196' (str)`` or ``196 (int64)``: raw ids match by value and type, so '196' is not 196."""
    kind = "str" if isinstance(value, str) else type(value).__name__  # numpy.str_ is a str
    plain = value.item() if isinstance(value, np.generic) else value
    return f"{plain!r} ({kind})"
