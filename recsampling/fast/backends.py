"""The one place that picks a training backend: (model, sampler, optimizer, device) -> kernel.

The Trainer asks :func:`find_kernel`; a hit is a factory that binds the model's tables and the
prepared sampler's state into a :class:`FusedEpochs` runner, a miss means the torch autograd loop
(always correct, any model, sampler, optimizer and device; every kernel is tested against it).
Kernels register here with :func:`register_kernel`, never on a sampler or a model.

Which models a kernel takes is decided by the model's *shape*, not its class name:
:func:`model_kind` is ``"mf"`` for any model whose score is ``<p_u, q_i> + b_i (+ b_u)`` over
plain embedding tables: :class:`~recsampling.models.MatrixFactorization`, and a
:class:`~recsampling.models.TwoTower` with ID embeddings and no feature tower (its vectors *are*
its ID embeddings, the same model and the same regularization).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numba
import numpy as np
import torch

from recsampling._utils import check_int, check_random_state

__all__ = ["register_kernel", "find_kernel", "kernel_keys", "model_kind", "FusedEpochs"]

logger = logging.getLogger("recsampling")

#: (model kind, sampler name, optimizer, device type) -> factory(model, sampler, **options) -> runner
_KERNELS: dict[tuple[str, str, str, str], Callable[..., "FusedEpochs"]] = {}


def register_kernel(models, samplers, optimizers, devices=("cpu",)):
    """Decorator: ``factory(model, sampler, *, optimizer, lr, l2, n_threads, batch_size)`` serves these keys."""

    def deco(factory):
        for m in models:
            for s in samplers:
                for o in optimizers:
                    for d in devices:
                        _KERNELS[(m, s, o, d)] = factory
        return factory

    return deco


def kernel_keys() -> list[tuple[str, str, str, str]]:
    """Every registered (model kind, sampler, optimizer, device) key, sorted."""
    return sorted(_KERNELS)


def _mf_tables(model) -> tuple | None:
    """``(U, V, b_u or None, b_i or None)`` parameters of an MF-shaped model on plain tables, else None."""
    from recsampling.models.mf import MatrixFactorization
    from recsampling.models.two_tower import TwoTower

    if isinstance(model, MatrixFactorization):
        return (model.user_factors.weight, model.item_factors.weight,
                None if model.user_biases is None else model.user_biases.weight,
                None if model.item_biases is None else model.item_biases.weight)
    if isinstance(model, TwoTower):
        ut, it = model.user_tower, model.item_tower
        if ut.ids is None or it.ids is None or ut.mlp is not None or it.mlp is not None \
                or ut.proj is not None or it.proj is not None:
            return None
        return ut.ids.weight, it.ids.weight, None, None if model.item_biases is None else model.item_biases.weight
    return None


def model_kind(model) -> str | None:
    """The kernel family a model belongs to (``"mf"``), or None when only torch can train it."""
    return "mf" if _mf_tables(model) is not None else None


def find_kernel(model, sampler, optimizer: str, device) -> Callable[..., "FusedEpochs"] | None:
    """The fused kernel factory for this combination, or None (use the torch loop).

    Parameters
    ----------
    model : EmbeddingModel
    sampler : Sampler
        Its registry name is the key (``sampler.name``).
    optimizer : str
    device : str or torch.device
        Kernels run on CPU tables only.
    """
    kind = model_kind(model)
    dev = torch.device(device).type
    if kind is None or any(p.device.type != dev for p in model.parameters()):
        return None
    factory = _KERNELS.get((kind, getattr(sampler, "name", ""), optimizer, dev))
    accepts = getattr(factory, "accepts", None)  # optional: a factory may serve only some settings
    return None if accepts is not None and not accepts(sampler) else factory


def _resolve_threads(n_threads: int | None) -> int:
    limit = numba.config.NUMBA_NUM_THREADS
    if n_threads is None:
        return numba.get_num_threads()
    return check_int(n_threads, "n_threads (at most numba's thread pool)", 1, high=limit, none_ok=True)


def _view(t: torch.Tensor | None) -> np.ndarray:
    """A writable float32 numpy view of a CPU parameter (biases flattened); empty for None."""
    if t is None:
        return np.empty(0, dtype=np.float32)
    a = t.data.numpy()
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise ValueError(f"fused kernels need float32 C-contiguous tables, got {a.dtype}")
    return a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a


def _absent() -> tuple[np.ndarray, ...]:
    """Four absent tables in the kernels' layout: two factor tables (0, 1), two bias vectors (0,)."""
    return (np.empty((0, 1), np.float32), np.empty((0, 1), np.float32), np.empty(0, np.float32),
            np.empty(0, np.float32))


def _sums(tables: tuple[np.ndarray, ...], adagrad: bool) -> tuple[np.ndarray, ...]:
    """Adagrad's running sums of squared gradients for ``tables`` (zeros), or absent tables for SGD."""
    return tuple(np.zeros_like(a) for a in tables) if adagrad else _absent()


@dataclass
class FusedEpochs:
    """A bound fused kernel: call :meth:`epoch` once per epoch; it updates the model in place.

    Attributes
    ----------
    name : str
        What runs, for logs and ``TrainResult.backend`` details.
    run : callable
        ``run(seed, n_threads) -> (loss_sum, n_rows)``.
    n_threads : int
    """

    name: str
    run: Callable[[np.uint64], tuple[float, int]]
    n_threads: int
    state: dict[str, Any] = field(default_factory=dict)

    def epoch(self, rng) -> tuple[float, int]:
        """One epoch; returns (mean row loss, rows stepped)."""
        gen = check_random_state(rng)
        seed = np.uint64(gen.integers(0, 2**63, dtype=np.int64))
        previous = numba.get_num_threads()
        numba.set_num_threads(self.n_threads)
        try:
            loss_sum, rows = self.run(seed)
        finally:
            numba.set_num_threads(previous)
        return (float(loss_sum / rows) if rows else float("nan")), int(rows)


# ----------------------------------------------------------------------------------------------
# matrix factorization: one kernel, the sampler's state translated into its options


def _mf_runner(model, sampler, *, optimizer: str, lr: float, l2: float, n_threads: int | None,
               batch_size: int | None = None) -> FusedEpochs:
    """Bind the MF kernel to ``model`` and the prepared ``sampler`` (``batch_size`` is unused: one step per row)."""
    from recsampling.fast import mf as K
    from recsampling.fast.draws import _negative_table, interaction_bitmap

    train = sampler.train_
    if train is None:
        raise RuntimeError("the sampler must be prepared before a kernel is bound")
    m = train.matrix
    indptr = np.ascontiguousarray(m.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(m.indices, dtype=np.int32)
    n_items = m.shape[1]
    U, V, bu, bi = (_view(t) for t in _mf_tables(model))
    adagrad = optimizer == "adagrad"
    tables = (U, V, bu, bi)
    accs = _sums(tables, adagrad)
    iopt = np.zeros(K.N_IOPT, dtype=np.int64)
    fopt = np.zeros(K.N_FOPT, dtype=np.float64)
    iopt[K.I_OPT] = K.OPT_ADAGRAD if adagrad else K.OPT_SGD
    fopt[K.F_LR], fopt[K.F_L2] = lr, l2
    iopt[K.I_DRAW] = K.DRAW_REJECT
    spec = _SPECS[sampler.name](sampler, iopt, fopt, K)
    iopt[K.I_SKIP] = int(getattr(sampler, "collision", "redraw") == "skip")
    click_w = np.ascontiguousarray(spec.get("click_w", ()), dtype=np.float64)
    user_w = np.ascontiguousarray(spec.get("user_w", ()), dtype=np.float64)
    absent = _absent()
    flips = tuple(absent[i] if t is None else _view(t) for i, t in enumerate(spec.get("flips", (None,) * 4)))
    flip_accs = _sums(flips, adagrad)
    alpha = spec.get("alpha")
    prob, alias = _negative_table(indices, n_items, alpha)
    bitmap = interaction_bitmap(indptr, indices, n_items)

    def run(seed):
        # the bias vectors one per cache line for the epoch, then written back
        spread = K.spread_vectors(tables, accs, flips, flip_accs)
        iopt[K.I_PREFETCH] = int(numba.get_num_threads() > 1)  # alone, a thread's prefetches only cost
        out = K.mf_epoch(indptr, indices, bitmap, prob, alias, click_w, user_w, *spread, iopt, fopt, seed)
        K.gather_vectors((tables, accs, flips, flip_accs), spread)
        return out

    return FusedEpochs(name=f"numba mf+{sampler.name} ({optimizer})", run=run, n_threads=_resolve_threads(n_threads),
                       state={"iopt": iopt, "fopt": fopt, "tables": tables, "accs": accs, "flips": flips,
                              "flip_accs": flip_accs, "click_w": click_w, "user_w": user_w})


def _spec_pairwise(s, iopt, fopt, K) -> dict:
    iopt[K.I_LOSS] = K.LOSS_BPR
    k = int(getattr(s, "n_candidates", s.n_negatives))  # DNS draws n_candidates, keeps n_negatives
    iopt[K.I_K] = k
    iopt[K.I_NSEL] = int(s.n_negatives)
    return {"alpha": s._alpha}


def _spec_bpo(s, iopt, fopt, K) -> dict:
    iopt[K.I_LOSS] = K.LOSS_BPO
    iopt[K.I_K] = int(s.n_negatives)
    fopt[K.F_POSW] = s._positive_weight()
    return {}


def _spec_nbpo(s, iopt, fopt, K) -> dict:
    spec = _spec_bpo(s, iopt, fopt, K)
    iopt[K.I_LOSS] = K.LOSS_NBPO
    iopt[K.I_EXACT] = int(s.objective == "exact")
    flip = s.flip_
    fopt[K.F_FLIP_LR] = float(s.flip_lr or fopt[K.F_LR])
    fopt[K.F_FLIP_L2] = float(s.flip_l2)
    fopt[K.F_FLIP_OFFSET] = 0.0 if flip.kind == "factor" else flip.offset
    get = lambda name: getattr(flip, name).weight if hasattr(flip, name) else None  # noqa: E731
    spec["flips"] = (get("P"), get("Q"), get("user_logit"), get("item_logit"))
    return spec


def _spec_rel(s, iopt, fopt, K) -> dict:
    iopt[K.I_LOSS] = K.LOSS_REL
    iopt[K.I_K] = int(s.n_negatives)
    iopt[K.I_LOGDELTA] = int(s.delta == "log")
    iopt[K.I_FLOOR] = int(s.floor_ is not None)
    fopt[K.F_FLOOR] = 0.0 if s.floor_ is None else float(s.floor_)
    fopt[K.F_SCALE] = float(s.scale_)
    return {"click_w": 1.0 / np.asarray(s.theta_, dtype=np.float64), "user_w": s.unobserved_weight_}


def _spec_ubpr(s, iopt, fopt, K) -> dict:
    iopt[K.I_LOSS] = K.LOSS_UBPR
    iopt[K.I_K] = int(s.n_negatives)
    iopt[K.I_DRAW] = K.DRAW_OTHER
    iopt[K.I_BETA] = int(s.beta is not None)
    fopt[K.F_BETA] = 0.0 if s.beta is None else float(s.beta)
    return {"click_w": 1.0 / np.asarray(s.theta_, dtype=np.float64)}


_SPECS = {"bpr": _spec_pairwise, "popularity": _spec_pairwise, "dns": _spec_pairwise, "bpo": _spec_bpo,
          "nbpo": _spec_nbpo, "pointwise": _spec_rel, "relmf": _spec_rel, "ubpr": _spec_ubpr}

register_kernel(("mf",), tuple(_SPECS), ("sgd", "adagrad"))(_mf_runner)


# DLA on candidate sets (setting 2): a mini-batch kernel of its own (logged lists stay on torch)
from recsampling.fast.dla import _dla_runner  # noqa: E402

register_kernel(("mf",), ("dla",), ("sgd", "adagrad"))(_dla_runner)
