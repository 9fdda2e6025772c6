"""The DLA benchmark's logs and diagnostics (``benchmarks/dla_positions.py``, Ai et al., SIGIR 2018).

- :func:`biased_logs`: logged lists whose logging ranker also promotes some items (an ablation of
  :func:`recsampling.data.synthetic.make_world`'s logs);
- :func:`irw_closed_form`: the exact minimizer of DLA's eq. (7) over one propensity per position;
- :func:`log_relevance_scores`: a ranker's log-relevance of logged (user, item) pairs;
- :func:`true_ndcg`: true-relevance NDCG@K of a model's full top-K.
"""

from __future__ import annotations

import numpy as np

__all__ = ["biased_logs", "irw_closed_form", "log_relevance_scores", "true_ndcg"]


def biased_logs(world, n_lists: int, eta: float, bias: float, seed: int, L: int = 10, n_cand: int = 50) -> dict:
    """Logged lists whose logging ranker favours some items regardless of relevance.

    Like ``make_world``'s logs (uniform user, ``n_cand`` distinct uniform candidates, top ``L`` of
    ``logit(relevance) + N(0, 1)``, clicks ``Bernoulli((1/k)^eta) * Bernoulli(relevance)``) but
    the logging score also adds ``bias * b_i`` with a fixed ``b_i ~ N(0, 1)`` per item (a
    promoted-items effect): the raw clicks then over-credit the promoted items.
    """
    rng = np.random.default_rng([seed, 7])
    n_users, n_items = world.relevance.shape
    boost = rng.standard_normal(n_items)
    users = rng.integers(0, n_users, size=n_lists)
    chunk = max(1, 2**22 // n_items)  # distinct uniform candidates: smallest keys of a random row
    cand = np.concatenate([np.argpartition(rng.random((min(chunk, n_lists - s), n_items)), n_cand - 1, axis=1)
                           [:, :n_cand] for s in range(0, n_lists, chunk)])
    rel = np.asarray(world.relevance)[users[:, None], cand].astype(np.float64)
    score = np.log(rel) - np.log1p(-rel) + bias * boost[cand] + rng.standard_normal(cand.shape)
    top = np.argsort(-score, axis=1, kind="stable")[:, :L]
    items = np.take_along_axis(cand, top, axis=1)
    shown = np.take_along_axis(rel, top, axis=1)
    theta = (1.0 / np.arange(1, L + 1)) ** eta
    clicks = (rng.random((n_lists, L)) < theta) & (rng.random((n_lists, L)) < shown)
    return {"users": users.astype(np.int64), "items": items.astype(np.int64), "clicks": clicks.astype(np.int8)}


def irw_closed_form(log_relevance: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """The minimizer of eq. (7) over one free logit per position, for given log-relevances.

    ``P_k ∝ Σ_n v_nk c_nk`` with ``v_nk = exp(log r_n1 − log r_nk)``, returned relative to
    position 1. With the true relevance it is the best any propensity estimate can do from these
    clicks (its error is the sampling noise of the log); with a trained ranker's scores it is
    where the propensity logits go for that ranker (no optimization noise).
    """
    lr = np.asarray(log_relevance, dtype=np.float64)
    p = (np.exp(lr[:, :1] - lr) * np.asarray(clicks, dtype=np.float64)).sum(0)
    return p / p[0]


def log_relevance_scores(model, users: np.ndarray, items: np.ndarray, link: str) -> np.ndarray:
    """``model.score`` of the pairs ``(users, items)`` (any matching shapes) as log-relevances: as they
    are (``link="exp"``) or through ``log sigmoid`` (``"sigmoid"``), float64 (DLASampler.relevance_link)."""
    import torch

    with torch.no_grad():
        s = model.score(torch.as_tensor(np.array(users)), torch.as_tensor(np.array(items)))
        if link == "sigmoid":
            s = torch.nn.functional.logsigmoid(s)
    return s.double().cpu().numpy()


def true_ndcg(model, relevance: np.ndarray, k: int = 10) -> float:
    """Mean over users of ``true_ndcg@k`` of ``model``'s top ``k`` of all items against ``relevance``
    (:func:`recsampling.metrics.true_relevance_metrics`; no item excluded)."""
    from recsampling.metrics import true_relevance_metrics
    from recsampling.scoring import topk

    U, V = model.embedding_tables()
    ids, _ = topk(U, V, k, device="cpu")
    return float(np.mean(true_relevance_metrics(ids, relevance, (k,))[f"true_ndcg@{k}"]))
