"""The false-negative benchmarks' shared setting: their synthetic worlds and one monitored fit.

``benchmarks/false_negatives.py`` (how many of each sampler's negatives are truly relevant) and
``benchmarks/cet_selection.py`` (what CET's selection model learns) fit every sampler the same way:
a model with 32 factors on the world's clicks, Adam (lr 0.01, l2 1e-4, batch 1,024), a
:class:`recsampling.diagnostics.FalseNegativeMonitor` after each epoch that draws rows of the
sampler's negatives and records their true relevance and the true NDCG@10 on the world's unbiased
test. :func:`monitored_fit` is that fit, :data:`WORLDS` the worlds they run on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["WORLDS", "MonitoredFit", "monitored_fit"]

#: ``make_world`` arguments: the suite's --quick world and make_world's defaults
WORLDS = {"quick": dict(n_users=300, n_items=500, target_interactions=15_000),
          "default": dict(n_users=943, n_items=1682, target_interactions=100_000)}


@dataclass
class MonitoredFit:
    """A fit of :func:`monitored_fit`: the fitted model, its sampler, the monitor's per-epoch
    ``history`` and the wall seconds (the monitor's measurements included)."""

    model: object
    sampler: object
    history: list
    seconds: float


def monitored_fit(sampler, world, *, model: str = "mf", seed: int = 0, epochs: int = 10, rows: int = 20_000,
                  threads: int = 1) -> MonitoredFit:
    """Fit ``model`` (32 factors, seeded by ``seed``) with ``sampler`` on ``world.clicks``,
    measuring after each epoch.

    Parameters
    ----------
    sampler : Sampler
        Unfitted; the Trainer prepares it.
    world : SyntheticWorld
        Of :func:`recsampling.data.make_world` (its ``unbiased_test`` is the monitor's test set).
    model : str
        A registered model.
    seed : int
        Seeds the model, the Trainer and the monitor's draws.
    epochs, rows, threads : int
        Epochs; rows of negatives drawn per measurement; torch threads.

    Returns
    -------
    MonitoredFit
    """
    from recsampling.diagnostics import FalseNegativeMonitor
    from recsampling.models import make_model
    from recsampling.train import Trainer

    train, test = world.clicks, world.unbiased_test
    start = time.perf_counter()
    m = make_model(model, train, factors=32, random_state=seed)
    monitor = FalseNegativeMonitor(sampler, m, world, train, test, n_rows=rows, random_state=seed)
    Trainer(epochs=epochs, batch_size=1024, optimizer="adam", lr=0.01, l2=1e-4, progress=False, random_state=seed,
            device="cpu", n_threads=threads, callbacks=[monitor]).fit(m, sampler, train)
    return MonitoredFit(m, sampler, monitor.history, time.perf_counter() - start)
