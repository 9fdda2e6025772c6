"""The main job: every method of the toolkit on the embedded synthetic world, in one table.

The world's truth is known, so the table shows what each method really learned, not only how
well it fits clicks: ``true_ndcg@10`` ranks all non-training items against the true relevance
probabilities; ``dcg@5`` / ``recall@5`` rank each user's 16 uniformly drawn (missing-at-random)
test items, the protocol of Coat and Yahoo! R3.
"""

from __future__ import annotations

import time

import pandas as pd

from recsampling.recommender import Recommender
from recsampling.tasks import load_task

__all__ = ["methods", "run_demo"]


def methods() -> list[tuple[str, str, str, dict]]:
    """The rows of the table, derived from the registries: ``(label, model, sampler, sampler_params)``.

    One row per registered sampler (plug-ins included), in registry order, on the first
    registered model it is meant for (``Sampler.models``), with its ``Sampler.demo_params``;
    the label is ``"<model> + <sampler>"``.
    """
    from recsampling.models import MODELS
    from recsampling.samplers import SAMPLERS

    models = list(MODELS.classes())
    rows = []
    for name, cls in SAMPLERS.classes().items():
        model = next((m for m in models if cls.fits(m)), None)
        if model is not None:
            rows.append((f"{model} + {name}", model, name, dict(cls.demo_params)))
    return rows


def run_demo(quick: bool = False, seed: int = 0, epochs: int | None = None,
             progress: bool = True) -> tuple[str, dict]:
    """Train every method of :func:`methods` on the synthetic world and evaluate it.

    Parameters
    ----------
    quick : bool
        A smaller world (300 users x 500 items) and 3 epochs.
    seed : int
        Seeds the world and every fit.
    epochs : int, optional
        Overrides the number of epochs (default 10, quick 3).
    progress : bool
        Show a progress bar per fit.

    Returns
    -------
    (str, dict)
        The printable table, and ``{"methods": {label: metrics}, ...}`` for ``--json``.
    """
    task = load_task("synthetic", seed=seed,
                     world=dict(n_users=300, n_items=500, target_interactions=15_000) if quick else None)
    n_epochs = epochs if epochs is not None else (3 if quick else 10)
    train = task.train
    figures = {"true_ndcg@10": "true_ndcg@10", "dcg@5": "dcg@5 (MAR test)", "recall@5": "recall@5 (MAR test)"}
    rows = {}
    for label, model, sampler, sampler_params in methods():
        start = time.perf_counter()
        rec = Recommender(model=model, sampler=sampler, model_params={"factors": 32},
                          sampler_params=sampler_params, epochs=n_epochs, optimizer="adam", lr=0.01,
                          l2=1e-4, batch_size=1024, random_state=seed, progress=progress).fit(train)
        fit_s = time.perf_counter() - start
        got = task.figures(rec.model_, list(figures))
        rows[label] = {**{shown: got[name] for name, shown in figures.items()}, "fit_s": fit_s}
    table = pd.DataFrame(rows).T
    text = (f"synthetic world: {train.n_users} users x {train.n_items} items, {train.nnz} clicks, "
            f"{n_epochs} epochs, seed {seed}\n" + table.to_string(float_format=lambda v: f"{v:.4f}"))
    world = task.source.info["world"]
    return text, {"world": world.describe() if hasattr(world, "describe") else {}, "epochs": n_epochs,
                  "methods": rows}
