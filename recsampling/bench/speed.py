"""The speed benchmarks' data and timings (``training_speed.py``, ``scoring_speed.py``, ``scale.py``).

Data
----
- :func:`movielens_pairs`: ML-1M's (user, item) pairs, or ML-100K with ratings >= 4 and its side
  features, as ``training_speed.py`` times them; None when the set is absent;
- :func:`synthetic_ml1m`: its stand-in, a seeded long-tail matrix of ML-1M's shape (lognormal user
  activity, Zipf-like item popularity);
- :func:`scoring_problem`: ``scoring_speed.py``'s seeded random factors (scale 0.1) and a realistic
  exclusion matrix of about ``n_seen`` pairs (item popularity ~ rank^-0.9, log-normal user activity,
  like MovieLens);
- :func:`ml20m_shape`: ``scale.py``'s world sizes, MovieLens-20M's shape scaled in users (the 26,744
  items stay; all 138,493 users at 20M clicks);
- :func:`save_clicks` / :func:`load_clicks`: a world's clicks (CSR, propensities, side features)
  handed from ``scale.py``'s build step to its steps, each a fresh process whose peak resident
  memory is its own; :func:`head`: the first users, a warm-up fit's data.

Timings
-------
- Training (``training_speed.py``): implicit's CPU BPR (``peer("implicit", "bpr")`` of
  :mod:`recsampling.bench.contenders`, BLAS held at one thread) counts nnz samples per iteration
  (random nonzeros drawn with replacement; a negative the user liked is skipped), so its rate is
  :attr:`~recsampling.bench.contenders.Fit.samples` / ``train_s``. Ours is ``Trainer.fit`` with ``backend="auto"`` (the fused kernel when
  :func:`recsampling.fast.find_kernel` has one, else the torch loop), its rate
  :func:`recsampling.bench.measure.epoch_rate`: the median over the epochs after the first (which
  pays for numba's compile when its disk cache is cold, and for the kernel's binding). On a shared
  machine one baseline figure would skew later ratios, so the scripts time implicit again right
  before each pair and each ratio uses that adjacent figure.
  A pair on the fused kernel is also trained on the torch path with the same optimizer, lr and l2
  (``--torch-batch`` rows per step; DLA keeps its batch size). On ML-1M pairs the two-tower model has
  no side features: it is MF-shaped (its vectors are its ID embeddings) and takes the MF kernel.
- :func:`grid_pairs`: the (model, sampler) pairs of the suite's grid that a run times.
- :func:`ndcg_se`: NDCG@k and its standard error over users (full ranking, training items
  excluded), printed beside a speed so that speed cannot hide a broken loss.
- Top-k: ours is :func:`recsampling.scoring.topk`; implicit's is :func:`implicit_recommender`'s
  ``recommend(users, seen, N=k, filter_already_liked_items=True)`` on the same factors.
  implicit runs its batches on its own threads and calls numpy's BLAS inside each:
  :func:`by_blas_threads` times it with BLAS at one thread (implicit's advice) and at the
  benchmark's threads, and the scripts keep its faster setting. :func:`same_lists` and
  :func:`excluded_returned` check the answers beside the times.

Scoring (``scoring_speed.py``)
------------------------------
On :func:`scoring_problem`'s factors (ML-1M's 6,040 users x 3,706 items, 64 factors, about a million
seen pairs by default): ours, ``topk(U, V, k, exclude=seen)`` for all users (exact exclusion,
deterministic ties); implicit's ``recommend(all users, seen, N=k, filter_already_liked_items=True)``
with the same factors assigned; the bare product ``U @ V.T`` (torch, and numpy on the CPU: the floor
any exact full scorer pays is the faster). Each is repeated after a warm-up
(:func:`~recsampling.bench.measure.best_and_median`); the ratios use the medians. The large case
(100k users x 200k items) scores a subset of the users (``--large-users``) with the process's peak
resident memory; its time for all users is extrapolated linearly and labelled so.

Scale (``scale.py``, issue 15)
------------------------------
A world of ``N`` expected clicks has :func:`ml20m_shape`'s users and items and
:func:`~recsampling.data.synthetic.make_world`'s defaults otherwise (20 logged lists per user, 16
randomized test items per user, 16 + 16 side features). Each step runs in a fresh subprocess, so
that its peak resident memory (``ru_maxrss`` of that process: interpreter, torch and numba
included) is its own; the world is saved once (:func:`save_clicks`). The steps' functions import
what they use when called, so that a step's process loads only its own libraries.

- ``build`` (:func:`build_world`): ``make_world(...)`` (wall time of the call; peak memory of the process).
- ``mf+bpr``, ``mf+nbpo``, ``mf+relmf``, ``mf+ubpr``, ``twotower+bpr`` (:func:`pair_epoch`): one epoch, i.e.
  ``Trainer(epochs=1, backend="auto", n_threads=T).fit`` on all the clicks, timed as the whole
  call (sampler preparation included; ``kernel_epoch_s`` is the epoch loop alone) after a warm-up
  fit on 2% of the users in the same process (:func:`head`: numba's cached kernels load, thread
  pools start). Settings are ``benchmarks/speed_settings.json``'s
  (:func:`~recsampling.bench.contenders.speed_params`: SGD lr 0.05, one negative per positive, the
  per-sampler overrides; 64 factors). The two-tower model uses the world's side features, so it
  takes the torch path (Adam, batches of 4096; ``backend`` says what ran); that path trains on a
  uniform sample of ``--torch-sample`` clicks (the same batches, fewer of them) and its time is
  scaled to all clicks, labelled ``"extrapolated": true``.
- ``implicit+bpr`` (the baseline) and ``implicit+als`` (:func:`peer_epoch`): implicit's CPU BPR / ALS with
  ``factors=64, iterations=1, num_threads=T``, the whole ``fit`` call after the same warm-up;
  implicit's BPR is timed again right before each of the steps above and ``ratio_vs_implicit_bpr``
  (our epoch / implicit's, lower is better) uses that adjacent figure.
- ``topk`` (:func:`topk_time`): :func:`recsampling.scoring.topk` (k = 10, every user, the clicks excluded) on MF-BPR's
  trained factors, on T threads; ``implicit+recommend``: implicit's ``recommend(all users, clicks,
  N=10, filter_already_liked_items=True)`` on the same factors and ``num_threads=T`` (its faster
  of numpy's BLAS at 1 and at T threads). ``topk_speedup_vs_implicit`` is implicit's time / ours.

Targets at 20M: the build under 2 minutes and 8 GiB; every MF sampler's epoch at most 1.5x
implicit BPR's; top-k at least 2x faster than implicit's ``recommend``; no step of ours above 3 GiB.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["movielens_pairs", "synthetic_ml1m", "scoring_problem", "ml20m_shape", "save_clicks", "load_clicks",
           "head", "ndcg_se", "implicit_recommender", "by_blas_threads", "grid_pairs", "same_lists", "excluded_returned",
           "build_world", "peer_epoch", "pair_epoch", "topk_time", "ML20M"]

#: MovieLens-20M's users, items and interactions
ML20M = (138_493, 26_744, 20_000_000)


def movielens_pairs(data_dir: str | Path, dataset: str):
    """ML-1M's (user, item) pairs (``pairs.csv.gz``, no features), or ML-100K (``u.data``) with
    ratings >= 4 and its user / item side features, as Interactions; None when the files are absent."""
    from recsampling.data import read_movielens

    folder = Path(data_dir) / dataset
    if not (folder / ("u.data" if dataset == "ml-100k" else "pairs.csv.gz")).is_file():
        return None
    if dataset == "ml-100k":
        return read_movielens(folder).to_implicit(4.0)
    return read_movielens(folder, features=False)


def synthetic_ml1m(seed: int = 0, n_users: int = 6040, n_items: int = 3706, nnz: int = 1_000_209):
    """A seeded long-tail matrix of ML-1M's shape (``nnz`` distinct pairs), as Interactions: lognormal
    user activity, Zipf-like item popularity (rank^-0.9, the ranks shuffled over the items)."""
    import scipy.sparse as sp

    from recsampling.data import Interactions

    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    draws = int(nnz * 1.6)
    u = rng.choice(n_users, draws, p=activity / activity.sum())
    i = rng.choice(n_items, draws, p=popularity / popularity.sum())
    key = np.unique(u.astype(np.int64) * n_items + i)
    key = rng.permutation(key)[:nnz]
    m = sp.csr_matrix((np.ones(key.size, np.float32), (key // n_items, key % n_items)), shape=(n_users, n_items))
    return Interactions.from_csr(m)


def scoring_problem(n_users: int, n_items: int, factors: int, n_seen: int, seed: int):
    """Seeded factors ``U`` (users x factors) and ``V`` (items x factors), float32 with scale 0.1, and a
    CSR ``seen`` matrix of about ``n_seen`` distinct pairs to exclude (item popularity ~ rank^-0.9,
    user activity log-normal: drawn, deduplicated and topped up, at most four rounds)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    U = (rng.standard_normal((n_users, factors)) * 0.1).astype(np.float32)
    V = (rng.standard_normal((n_items, factors)) * 0.1).astype(np.float32)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pop = rng.permutation(pop / pop.sum())
    act = rng.lognormal(0.0, 1.0, n_users)
    act /= act.sum()
    target = int(n_seen)
    draw = int(target * 1.25)
    seen = None
    for _ in range(4):
        u = rng.choice(n_users, size=draw, p=act)
        i = rng.choice(n_items, size=draw, p=pop)
        m = sp.csr_matrix((np.ones(draw, np.float32), (u, i)), shape=(n_users, n_items))
        seen = m if seen is None else seen + m
        seen.sum_duplicates()
        if seen.nnz >= target:
            break
        draw = int((target - seen.nnz) * 1.5) + 1
    seen.data[:] = 1.0
    seen.sort_indices()
    return U, V, seen


def ml20m_shape(interactions: int) -> dict:
    """``n_users``, ``n_items`` and ``interactions`` of a world of ML-20M's shape scaled in users:
    the catalogue stays, the users shrink with the clicks."""
    users, items, nnz = ML20M
    return {"n_users": max(1, round(users * interactions / nnz)), "n_items": items, "interactions": interactions}


def save_clicks(path: str | Path, clicks) -> None:
    """Save Interactions' CSR, propensities and side features to the ``.npz`` file ``path``."""
    np.savez(path, indptr=clicks.matrix.indptr, indices=clicks.matrix.indices, shape=np.array(clicks.shape),
             propensities=clicks.propensities, user_features=clicks.user_features, item_features=clicks.item_features)


def load_clicks(path: str | Path):
    """The Interactions of :func:`save_clicks` (every value 1)."""
    import scipy.sparse as sp

    from recsampling.data import Interactions

    z = np.load(path)
    m = sp.csr_matrix((np.ones(z["indices"].size, np.float32), z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return Interactions.from_csr(m, propensities=z["propensities"], user_features=z["user_features"],
                                 item_features=z["item_features"])


def head(data, share: float = 0.02, at_least: int = 50):
    """The first ``share`` of the users (at least ``at_least``), every item: a warm-up fit's data."""
    return data.take(np.arange(min(data.n_users, max(at_least, int(data.n_users * share)))))


def ndcg_se(model, test, train, k: int = 10) -> tuple[float, float]:
    """NDCG@k of ``model`` on ``test`` and its standard error over users (full ranking, the items of
    ``train`` excluded; NaN standard error where there is none)."""
    from recsampling.evaluation import evaluate

    r = evaluate(model, test, train=train, ks=(k,), metrics=("ndcg",), device="cpu").to_dict()
    return float(r[f"ndcg@{k}"]), float(r.get(f"ndcg@{k}_sem", float("nan")))


def implicit_recommender(U: np.ndarray, V: np.ndarray, threads: int):
    """implicit's CPU ALS model holding the factors ``U`` (users) and ``V`` (items) on ``threads``
    threads: its ``recommend`` ranks by ``U @ V.T``. Its warning about OpenBLAS threads (advice for
    ALS training) is silenced."""
    from implicit.cpu.als import AlternatingLeastSquares

    warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
    model = AlternatingLeastSquares(factors=U.shape[1], num_threads=threads, random_state=0)
    model.user_factors, model.item_factors = U, V
    return model


def by_blas_threads(fn: Callable[[], object], threads: int) -> dict:
    """``{blas: fn()}`` with numpy's BLAS held at ``blas`` threads, for 1 (implicit's advice) and
    ``threads``, in that order."""
    from threadpoolctl import threadpool_limits

    out = {}
    for blas in sorted({1, threads}):
        with threadpool_limits(limits=blas, user_api="blas"):
            out[blas] = fn()
    return out


def grid_pairs(models: Sequence[str], samplers: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (model, sampler) pairs of :func:`recsampling.suite.grid` of ``models``, in its order; only
    the ``samplers`` given (None: all).

    Raises
    ------
    ValueError
        naming the models and samplers that are not registered (the samplers of no model's grid).
    """
    from recsampling.models import MODELS
    from recsampling.suite import grid

    g = grid()
    known = {s for mo in MODELS for s in g.get(mo, ())}
    bad = [mo for mo in models if mo not in MODELS] + [s for s in samplers or () if s not in known]
    if bad:
        raise ValueError(f"unknown model or sampler {bad}; models: {', '.join(MODELS)}; samplers: all or some of "
                         f"{sorted(known)}")
    return [(mo, s) for mo in models for s in g[mo] if samplers is None or s in samplers]


def same_lists(a: np.ndarray, b: np.ndarray) -> float:
    """The share of rows (users) of two top-k id arrays that hold the same ids, in any order (random
    float factors have few ties, so exact scorers agree)."""
    return float(np.mean(np.all(np.sort(np.asarray(a), 1) == np.sort(np.asarray(b), 1), axis=1)))


def excluded_returned(ids: np.ndarray, seen) -> int:
    """How many entries of the top-k ids (users x k, ``-1`` padded) are pairs of ``seen`` (CSR), which
    an exact exclusion never returns."""
    ids = np.asarray(ids)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    return int(np.asarray(seen[rows, np.maximum(ids.ravel(), 0)]).ravel()[ids.ravel() >= 0].sum())


def build_world(n_users: int, n_items: int, interactions: int, seed: int, threads: int, path: str | Path) -> dict:
    """``make_world(n_users, n_items, interactions, random_state=seed)`` on ``threads`` numba threads, its
    wall time, and its clicks saved to ``path`` (:func:`save_clicks`).

    Returns
    -------
    dict
        ``build_s``, ``clicks``, ``logged_lists``, ``test_items_per_user``.
    """
    import time

    import numba

    from recsampling.data.synthetic import make_world

    numba.set_num_threads(threads)
    t = time.perf_counter()
    world = make_world(n_users, n_items, interactions, random_state=seed)
    build_s = time.perf_counter() - t
    save_clicks(path, world.clicks)
    return {"build_s": build_s, "clicks": int(world.clicks.nnz), "logged_lists": world.logs.n_lists,
            "test_items_per_user": int(world.unbiased_test_items.shape[1])}


def peer_epoch(data, method: str, params: dict, seed: int, threads: int) -> dict:
    """The fit of the peer ``implicit + method`` with ``params`` on ``data`` after a warm-up fit on
    :func:`head`; ``epoch_s`` is its :attr:`~recsampling.bench.contenders.Fit.train_s`."""
    from recsampling.bench.contenders import peer

    warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
    contender = peer("implicit", method)
    contender.fit(head(data), params, seed, n_threads=threads)
    return {"epoch_s": contender.fit(data, params, seed, n_threads=threads).train_s, "backend": "implicit.cpu"}


def pair_epoch(data, model: str, sampler: str, params: dict, seed: int, threads: int, torch_sample: int = 0,
               factors_path: str | Path | None = None) -> dict:
    """One fit of ``Ours(model, sampler)`` with ``params`` on ``data``, timed as the whole call after a
    warm-up fit on :func:`head`.

    Parameters
    ----------
    data : Interactions
    model, sampler : str
    params : dict
        :class:`~recsampling.bench.contenders.Ours` parameters (one epoch for an epoch's time).
    seed, threads : int
    torch_sample : int
        When the warm-up ran on the torch path and ``0 < torch_sample < data.nnz``: time a uniform
        sample of that many clicks (the same users, items and features; the same batches, fewer of
        them) and scale the time to all clicks (``"extrapolated": true``).
    factors_path : path, optional
        Save the trained user and item tables there (``.npz``, ``U`` and ``V``, float32).

    Returns
    -------
    dict
        ``epoch_s``, ``kernel_epoch_s`` (the first epoch's loop alone), ``samples_per_s``,
        ``timed_clicks``, ``extrapolated``, ``backend``, ``optimizer``, ``lr``, ``loss``.
    """
    import time

    from recsampling.bench.contenders import Ours
    from recsampling.bench.measure import epoch_rate

    pair = Ours(model, sampler)
    warm = pair.fit(head(data), params, seed, n_threads=threads)
    timed = data
    if warm.result.backend == "torch" and 0 < torch_sample < data.nnz:
        keep = np.zeros(data.nnz, dtype=bool)
        keep[np.random.default_rng(seed).choice(data.nnz, size=torch_sample, replace=False)] = True
        timed = data.subset(keep)
    t = time.perf_counter()
    fit = pair.fit(timed, params, seed, n_threads=threads)
    seconds = time.perf_counter() - t
    result = fit.result
    if factors_path is not None:
        U, V = (np.ascontiguousarray(x, dtype=np.float32) for x in fit.model.embedding_tables())
        np.savez(factors_path, U=U, V=V)
    scale = data.nnz / timed.nnz
    return {"epoch_s": seconds * scale, "kernel_epoch_s": float(result.history[0]["time"]) * scale,
            "samples_per_s": epoch_rate(result.history), "timed_clicks": int(timed.nnz),
            "extrapolated": timed is not data, "backend": result.backend, "optimizer": params["optimizer"],
            "lr": params["lr"], "loss": float(result.losses[-1])}


def topk_time(U: np.ndarray, V: np.ndarray, seen, k: int, threads: int, implicit: bool = False):
    """The top-``k`` lists of every user with ``seen`` excluded, timed once after a warm-up on the
    first 1,000 users: ours (:func:`recsampling.scoring.topk` on ``threads`` torch threads) or, with
    ``implicit``, implicit's ``recommend`` (:func:`implicit_recommender`, its faster setting of
    :func:`by_blas_threads`).

    Returns
    -------
    (dict, numpy.ndarray)
        ``topk_s`` and ``backend`` (implicit: also ``blas_threads`` and ``by_blas_threads_s``), and
        the lists (users x k; implicit's of its last BLAS setting).
    """
    import time

    first = np.arange(min(1000, U.shape[0]))
    if not implicit:
        import torch

        from recsampling.scoring import topk

        torch.set_num_threads(threads)
        topk(U, V, k, exclude=seen, users=first)  # warm-up
        t = time.perf_counter()
        ids, _ = topk(U, V, k, exclude=seen)
        return {"topk_s": time.perf_counter() - t, "backend": "recsampling.scoring.topk (cpu)"}, np.asarray(ids)
    model = implicit_recommender(U, V, threads)
    users, matrix = np.arange(U.shape[0]), seen.copy()
    model.recommend(first, matrix[first], N=k, filter_already_liked_items=True)  # warm-up

    def timed():
        t = time.perf_counter()
        ids = model.recommend(users, matrix, N=k, filter_already_liked_items=True)[0]
        return time.perf_counter() - t, ids

    runs = by_blas_threads(timed, threads)
    by_blas = {str(b): s for b, (s, _) in runs.items()}
    best = min(by_blas, key=by_blas.get)
    return ({"topk_s": by_blas[best], "blas_threads": int(best), "by_blas_threads_s": by_blas,
             "backend": "implicit.cpu recommend"}, np.asarray(runs[max(runs)][1]))
