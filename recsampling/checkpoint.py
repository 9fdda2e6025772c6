"""Checkpoints: a model, its sampler's state and the id maps in one file, with no pickled objects.

:func:`save_checkpoint` writes a ``torch.save`` of plain tensors, lists and strings plus a JSON of
the model's and the sampler's constructor parameters, and records the file's SHA-256 in its
folder's manifest (:mod:`recsampling._checksums`). :func:`load_checkpoint` reads it back with
``torch.load(weights_only=True)`` and validates everything as untrusted input, so that an edited
file ends in a ``ValueError`` and never reaches a kernel. The :class:`~recsampling.train.Trainer`
(``checkpoint_dir=``) and :meth:`recsampling.Recommender.save` write through it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recsampling._utils import RandomState, check_random_state, to_jsonable
from recsampling.data.interactions import Interactions
from recsampling.samplers.base import Sampler

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint"]

logger = logging.getLogger("recsampling")

_FORMAT = "recsampling-checkpoint"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    model : EmbeddingModel
        Rebuilt with its parameters and weights.
    sampler : Sampler or None
        Rebuilt from its constructor parameters; prepared on ``train`` and with its state loaded
        when the training data was saved, else unprepared with ``sampler_state`` kept aside.
    train : Interactions or None
        The training interactions (matrix, ids, columns, features) when saved.
    user_ids, item_ids : numpy.ndarray
        The index -> raw id maps.
    sampler_state : dict
        The sampler's state dict as saved.
    extra : dict
        Whatever JSON-able data was given to ``save_checkpoint`` (epoch, history, ...).
    """

    model: nn.Module
    sampler: Sampler | None
    train: Interactions | None
    user_ids: np.ndarray
    item_ids: np.ndarray
    sampler_state: dict
    extra: dict


_ID_KINDS = {"int": torch.int64, "uint": torch.int64, "float": torch.float64, "bool": torch.bool}
_ID_TYPES = {"b": bool, "i": int, "f": float, "s": str}


def _id_type(value) -> str | None:
    """The one-letter type code of a raw id in an object array; None for unsupported types."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        return "f"
    return "s" if isinstance(value, str) else None


def _ids_out(ids: np.ndarray, name: str):
    """An id map as tensors / lists that read back to equal ids of the same types (or a ValueError)."""
    ids = np.asarray(ids)
    kind = ids.dtype.kind
    if kind == "b":
        return {"kind": "bool", "values": torch.from_numpy(ids.copy())}
    if kind == "i":
        return {"kind": "int", "values": torch.from_numpy(ids.astype(np.int64))}
    if kind == "u":  # uint64 kept bit for bit in an int64 tensor (torch has no full uint64 support)
        return {"kind": "uint", "values": torch.from_numpy(ids.astype(np.uint64).view(np.int64))}
    if kind == "f":
        return {"kind": "float", "values": torch.from_numpy(ids.astype(np.float64))}
    if kind == "U":
        return {"kind": "str", "values": [str(x) for x in ids.tolist()]}
    if kind != "O":
        raise ValueError(f"{name} of dtype {ids.dtype} cannot be saved exactly; a checkpoint keeps int, uint, "
                         "float, bool or str ids (convert them, e.g. with .astype(str))")
    values = ids.tolist()
    types = [_id_type(v) for v in values]
    if None in types:
        k = types.index(None)
        raise ValueError(f"{name}[{k}] = {values[k]!r} is a {type(values[k]).__name__}; a checkpoint keeps ids "
                         "that are str, int, float or bool (convert the others, e.g. to str)")
    if all(t == "s" for t in types):
        return {"kind": "str", "values": [str(v) for v in values]}
    # mixed types (e.g. 1 and '1'): each id as its type code and exact text
    text = [repr(float(v)) if t == "f" else str(int(v)) if t == "i" else str(bool(v)) if t == "b" else str(v)
            for v, t in zip(values, types)]
    return {"kind": "object", "types": "".join(types), "values": text}


def _ids_in(d, n: int, name: str) -> np.ndarray:
    """Read back what :func:`_ids_out` wrote, checked: ``n`` distinct ids of the saved types."""
    from recsampling.data.interactions import _check_id_map

    if not isinstance(d, dict) or "kind" not in d or "values" not in d:
        raise ValueError(f"{name} is malformed (expected a dict with 'kind' and 'values')")
    kind, values = d["kind"], d["values"]
    if kind in _ID_KINDS:
        if not torch.is_tensor(values) or values.dtype != _ID_KINDS[kind] or values.ndim != 1:
            raise ValueError(f"{name} of kind {kind!r} must be a 1-D {_ID_KINDS[kind]} tensor")
        arr = values.numpy()
        if kind == "uint":
            arr = arr.view(np.uint64)
    elif kind in ("str", "object"):
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{name} of kind {kind!r} must be a list of str")
        if kind == "str":
            arr = np.asarray(values, dtype=object)
        else:
            types = d.get("types")
            if not isinstance(types, str) or len(types) != len(values) or set(types) - set(_ID_TYPES):
                raise ValueError(f"{name} of kind 'object' needs one type code in {sorted(_ID_TYPES)} per id")
            arr = np.empty(len(values), dtype=object)
            try:
                arr[:] = [v == "True" if t == "b" else _ID_TYPES[t](v) for v, t in zip(values, types)]
            except ValueError as e:
                raise ValueError(f"{name} holds an id that does not read as its type: {e}") from None
    else:
        raise ValueError(f"{name} has unknown kind {kind!r}; expected one of {sorted([*_ID_KINDS, 'str', 'object'])}")
    return _check_id_map(arr, n, name)


def save_checkpoint(path, model: nn.Module, sampler: Sampler | None, train: Interactions, *,
                    include_train: bool = True, extra: dict | None = None) -> Path:
    """Save a model, its sampler's state and the id maps to one file (no pickled objects).

    The file's SHA-256 goes into the ``SHA256SUMS`` manifest of its folder (see
    :mod:`recsampling._checksums`), which :func:`load_checkpoint` checks.

    Parameters
    ----------
    path : str or Path
        The file to write (parents are created).
    model : EmbeddingModel
        A registered model (``"mf"``, ``"twotower"``).
    sampler : Sampler or None
        Saved as its registry name, constructor parameters (JSON) and ``state_dict()``.
    train : Interactions
        Its id maps are saved; with ``include_train`` also the matrix and columns, so that a
        loaded sampler can be prepared again and its learned state restored.
    include_train : bool, default True
        Store the training matrix and its columns (False: only the id maps; smaller files).
    extra : dict, optional
        JSON-able data stored alongside.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        when the parameters are not JSON-able or an id map cannot be saved exactly (ids must be
        int, uint, float, bool or str; object arrays may mix these types).
    """
    from recsampling._checksums import record_checksum
    from recsampling._files import atomic_write
    from recsampling.models import model_name
    from recsampling.samplers import sampler_params

    path = Path(path)
    meta = {
        "format": _FORMAT,
        "version": 1,
        "model": {"name": model_name(model), "params": to_jsonable(model.get_params()),
                  "n_users": int(model.n_users), "n_items": int(model.n_items)},
        "sampler": None if sampler is None else {"name": sampler.name, "params": to_jsonable(sampler_params(sampler))},
        "extra": to_jsonable(extra or {}),
    }
    try:
        meta_json = json.dumps(meta)
    except TypeError as e:
        raise ValueError(f"checkpoint parameters must be JSON-able: {e}") from None
    blob: dict[str, Any] = {
        "meta": meta_json,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "sampler_state": {} if sampler is None else {k: v.detach().cpu() for k, v in sampler.state_dict().items()},
        "user_ids": _ids_out(train.user_ids, "user_ids"),
        "item_ids": _ids_out(train.item_ids, "item_ids"),
    }
    if include_train:
        m = train.matrix
        t: dict[str, Any] = {"shape": list(m.shape), "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                             "indices": torch.from_numpy(m.indices.astype(np.int64)),
                             "data": torch.from_numpy(m.data.astype(np.float32))}
        for col in ("ratings", "timestamps", "propensities", "user_features", "item_features"):
            v = getattr(train, col)
            if v is not None:
                t[col] = torch.from_numpy(np.ascontiguousarray(v).astype(np.float64 if v.ndim == 1 else np.float32))
        t["user_feature_names"] = [str(x) for x in train.user_feature_names]
        t["item_feature_names"] = [str(x) for x in train.item_feature_names]
        blob["train"] = t
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(blob, tmp))  # a failed write (disk full) leaves no temporary
    record_checksum(path)
    return path


def _tensor(t: dict, key: str, dtype: torch.dtype, ndim: int) -> np.ndarray:
    v = t[key]
    if not torch.is_tensor(v) or v.dtype != dtype or v.ndim != ndim:
        raise ValueError(f"the saved training data's {key!r} must be a {ndim}-D {dtype} tensor")
    return v.numpy()


def _check_finite(state: dict, what: str) -> None:
    for k, v in state.items():
        if not torch.is_tensor(v):
            raise ValueError(f"{what} {k!r} is a {type(v).__name__}, expected a tensor")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"{what} {k!r} has NaN or infinite values")


def _check_state_shapes(name: str, n_users: int, n_items: int, params: dict, state: dict) -> None:
    """The weights the saved parameters describe must be the stored ones, names and shapes.

    The model is built on torch's meta device first (shapes, no memory), so that edited
    parameters (``factors=10**12``) end in this ``ValueError`` rather than in an allocation.
    """
    from recsampling.models import model_from_params

    try:
        with torch.device("meta"):
            shell = model_from_params(name, n_users, n_items, params)
    except MemoryError:  # a placeholder array (e.g. side features) of the described size
        raise ValueError(f"the model's parameters {params} describe a model too large for memory") from None
    except (RuntimeError, NotImplementedError) as e:  # a plug-in model that cannot be built on the meta device
        logger.debug("model %r cannot be built on the meta device (%s); its shapes are checked after building", name, e)
        return
    expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise ValueError(f"the model weights do not fit the model {name!r}: missing {missing}, unexpected {unexpected}")
    for key, shape in expected.items():
        if stored[key] != shape:
            raise ValueError(f"the model weights do not fit the model: {key!r} is stored with shape {stored[key]}, "
                             f"but the model's parameters ({params}) give {shape}")


def _load_train(t, user_ids: np.ndarray, item_ids: np.ndarray) -> Interactions:
    """The saved training data, validated like any input (index bounds before scipy sees them)."""
    import scipy.sparse as sp

    from recsampling.data.interactions import _check_compressed

    if not isinstance(t, dict):
        raise ValueError("the saved training data is malformed (expected a dict)")
    shape = (len(user_ids), len(item_ids))
    if list(t["shape"]) != list(shape):
        raise ValueError(f"the saved training matrix has shape {t['shape']}, but the id maps give {list(shape)}")
    indptr, indices = _tensor(t, "indptr", torch.int64, 1), _tensor(t, "indices", torch.int64, 1)
    data = _tensor(t, "data", torch.float32, 1)
    _check_compressed(indptr, indices, data.size, shape[0], shape[1], "the saved training matrix", "row", "column")
    m = sp.csr_matrix((data, indices, indptr), shape=shape)
    cols = {c: _tensor(t, c, torch.float64, 1) for c in ("ratings", "timestamps", "propensities") if c in t}
    cols.update({c: _tensor(t, c, torch.float32, 2) for c in ("user_features", "item_features") if c in t})
    names = {}
    for key in ("user_feature_names", "item_feature_names"):
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ValueError(f"the saved training data's {key!r} must be a list of str")
        names[key] = tuple(value)
    return Interactions(matrix=m, user_ids=user_ids, item_ids=item_ids, **names, **cols)


def load_checkpoint(path, *, random_state: RandomState = 0) -> Checkpoint:
    """Load what :func:`save_checkpoint` wrote (``torch.load(weights_only=True)``), checked.

    The file is first compared with its SHA-256 in the folder's ``SHA256SUMS`` manifest; a file
    without a recorded checksum (written before checksums were, or copied without the manifest)
    loads with a logged warning. Everything read back is then validated as untrusted input, so
    that an edited file ends in a ``ValueError`` and never reaches a kernel: the id maps (exact
    types, distinct, one per row / column of the model), the training matrix (index bounds, sorted
    rows, finite values), finite weights whose shapes fit the model, and a sampler state whose
    integer tensors (e.g. DLA's popularity buckets) equal those ``prepare`` derives from the saved
    training data.

    Parameters
    ----------
    path : str or Path
    random_state : int, Generator or None
        Passed to ``sampler.prepare`` when the sampler is rebuilt on the saved training data
        (its learned state is then loaded over whatever ``prepare`` initialized).

    Returns
    -------
    Checkpoint

    Raises
    ------
    ValueError
        naming the file: missing, not a checkpoint, corrupted (checksum mismatch) or inconsistent.
    """
    from recsampling._checksums import MANIFEST, verify_checksum
    from recsampling.models import model_from_params
    from recsampling.samplers import make_sampler

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file {str(path)!r} does not exist")
    if not verify_checksum(path):
        logger.warning("%s has no checksum in %s (saved before checksums were recorded, or copied without it): "
                       "corruption cannot be detected", path, MANIFEST)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one clear message
        raise ValueError(f"{str(path)!r} is not a recsampling checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{str(path)!r} is not a recsampling checkpoint (format "
                         f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    try:
        mm = meta["model"]
        n_users, n_items = mm["n_users"], mm["n_items"]
        if not (isinstance(n_users, int) and isinstance(n_items, int) and n_users >= 1 and n_items >= 1):
            raise ValueError(f"the model's n_users and n_items must be positive integers, got {n_users!r}, {n_items!r}")
        user_ids = _ids_in(blob["user_ids"], n_users, "user_ids")
        item_ids = _ids_in(blob["item_ids"], n_items, "item_ids")
        state = blob["model_state"]
        _check_finite(state, "model weight")
        _check_state_shapes(mm["name"], n_users, n_items, mm["params"], state)  # before allocating the model
        model = model_from_params(mm["name"], n_users, n_items, mm["params"])
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"the model weights do not fit the model: {str(e).splitlines()[0]}") from None
        model.eval()
        train = _load_train(blob["train"], user_ids, item_ids) if "train" in blob else None
        sampler = None
        sstate = blob.get("sampler_state", {})
        _check_finite(sstate, "sampler state")
        if meta.get("sampler") is not None:
            try:
                sampler = make_sampler(meta["sampler"]["name"], **meta["sampler"]["params"])
            except TypeError as e:
                raise ValueError(f"bad sampler parameters: {e}") from None
            if train is not None:
                sampler.prepare(train, check_random_state(random_state))
                derived = sampler.state_dict()
                for k, v in sstate.items():
                    if k in derived and not v.is_floating_point() and not torch.equal(v, derived[k]):
                        raise ValueError(f"sampler state {k!r} differs from what the sampler derives from the saved "
                                         "training data")
                try:
                    sampler.load_state_dict(sstate)
                except RuntimeError as e:
                    raise ValueError(f"the sampler state does not fit the sampler: {str(e).splitlines()[0]}") from None
            elif sstate:
                logger.info("checkpoint without training data: sampler state kept in Checkpoint.sampler_state")
        extra = meta.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError(f"'extra' must be a dict, got {type(extra).__name__}")
    except ValueError as e:
        raise ValueError(f"{str(path)!r}: {e}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{str(path)!r} is a malformed recsampling checkpoint ({type(e).__name__}: {e})") from None
    return Checkpoint(model=model, sampler=sampler, train=train, user_ids=user_ids, item_ids=item_ids,
                      sampler_state=sstate, extra=extra)
