"""The training loops of the NBPO authors' code (Wenhui-Yu/NBPO), as our samplers, with their settings.

``_NBPO.py`` / ``_BPO.py`` / ``_BPR.py`` run on our :class:`~recsampling.train.Trainer`
(``benchmarks/nbpo_noise.py --protocol authors``): MF without biases, K0 = K1 = 50,
``U, V ~ U(0,1)/√K0``, their ``P, Q`` initialisation
(:data:`~recsampling.samplers.nbpo.AUTHORS_FLIP_INIT`), 4 uniform negatives per voted pair, plain
SGD on the sum over batches of 5,000 rows in their (user) order, the L2 on the whole tables once per
batch, the learning rate × 0.99 per epoch, 200 epochs, no early stopping, their per-method ``eta``,
``lambda_r``, ``lambda_phi`` (``movielens`` or ``amazon``, :data:`AUTHORS_SETTINGS`).
:mod:`recsampling.samplers.nbpo` has the comparison table, line by line.

- :func:`authors_sampler`: a sampler of ours whose loss makes each SGD step the authors' update;
- :func:`authors_loop`: a method's model (their init), sampler and settings.

Not registered: each is a registered sampler (``bpr``, ``bpo``, ``nbpo``) run their way.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recsampling.samplers.base import make_sampler

__all__ = ["AUTHORS_FIXED", "AUTHORS_SETTINGS", "authors_loop", "authors_sampler"]

#: ``_NBPO.py`` / ``_BPO.py`` / ``_BPR.py`` of Wenhui-Yu/NBPO: per data set and method the learning rate
#: ``eta`` and the L2 coefficients ``lambda_r`` (U, V) and ``lambda_phi`` (P, Q; NBPO only)
AUTHORS_SETTINGS = {
    "movielens": {"bpr": dict(eta=0.02, lambda_r=1.0), "bpo": dict(eta=0.01, lambda_r=1.0),
                  "nbpo": dict(eta=0.02, lambda_r=0.5, lambda_phi=1.0)},
    "amazon": {"bpr": dict(eta=0.05, lambda_r=1.0), "bpo": dict(eta=0.05, lambda_r=2.0),
               "nbpo": dict(eta=0.05, lambda_r=1.0, lambda_phi=5.0)},
}
#: the rest of the authors' setup, the same in all three files: K0 (= K1), negatives per voted pair,
#: rows per batch, epochs, the per-epoch learning-rate decay
AUTHORS_FIXED = dict(factors=50, n_negatives=4, batch_size=5000, epochs=200, decay=0.99)


def authors_sampler(name: str, params: dict, lambda_r: float, lambda_phi: float, decay: float):
    """A sampler of ours (``make_sampler(name, **params)``) run the way the authors' loops run it.

    On our Trainer with ``optimizer="sgd"`` (a step on the batch *sum* of the loss, at lr ``eta``)
    the returned sampler's loss makes each step the authors' ``W += eta_e (dW − lambda W)``:

    - the row losses are summed over the row's drawn negatives (BPR: our loss is the mean over
      the ``k`` triples, so it is multiplied by ``k``; BPO / NBPO already sum a row, the voted term
      weighted ``k``, i.e. once per drawn negative);
    - the L2 is over the *whole* tables once per batch: ``lambda_r/2 (‖U‖² + ‖V‖²)`` (and
      ``lambda_phi/2 (‖P‖² + ‖Q‖²)`` for NBPO), divided by the batch's rows because the Trainer
      multiplies the loss by them;
    - ``eta_e = eta · decay^(e+1)`` in epoch ``e`` (their ``eta = eta * 0.99`` before each epoch):
      the loss is multiplied by ``decay^(e+1)``, exact for plain SGD;
    - rows in the authors' order, user by user (``train_data`` is read per user and never
      shuffled), in batches of consecutive rows.

    Parameters
    ----------
    name : str
        A registered sampler: ``"bpr"``, ``"bpo"`` or ``"nbpo"``.
    params : dict
        Its parameters.
    lambda_r, lambda_phi : float
        The L2 of the model's tables and of the flip factors (NBPO; 0 for none).
    decay : float
        The learning-rate factor per epoch.

    Returns
    -------
    Sampler
        An instance of a subclass of the registered sampler's class (``Authors<Class>``).
    """
    base = type(make_sampler(name, **params))
    k = int(params.get("n_negatives", 1))

    class Authors(base):
        def __init__(self):
            super().__init__(**params)
            self.epochs_started = 0

        def epoch_order(self, n, rng):  # the authors' order: their train_data, user by user
            return np.arange(n)

        def batches(self, batch_size, rng):
            self.epochs_started += 1
            yield from super().batches(batch_size, rng)

        def loss(self, model, batch):
            rows = len(batch)
            loss = super().loss(model, batch) * (k if name == "bpr" else 1)
            reg = 0.5 * lambda_r * sum(w.pow(2).sum() for w in model.parameters())
            if lambda_phi and getattr(self, "flip_", None) is not None:
                reg = reg + 0.5 * lambda_phi * sum(w.pow(2).sum() for w in self.flip_.parameters())
            return decay ** self.epochs_started * (loss + reg / rows)

    Authors.__name__ = Authors.__qualname__ = f"Authors{base.__name__}"
    return Authors()


def authors_loop(name: str, params: dict, train, seed: int, *, data: str = "movielens",
                 factors: int = AUTHORS_FIXED["factors"], n_negatives: int = AUTHORS_FIXED["n_negatives"],
                 decay: float = AUTHORS_FIXED["decay"], lr: float | None = None):
    """A method's model, sampler and settings in the authors' loop (fit them with ``optimizer="sgd"``).

    MF without biases, ``U, V ~ U(0, 1) / sqrt(K0)``; NBPO's ``P ~ 5 U(0, 1) / sqrt(K1)``,
    ``Q ~ −5 U(0, 1) / sqrt(K1)`` is :data:`~recsampling.samplers.nbpo.AUTHORS_FLIP_INIT` (pass it as
    ``params["flip_init"]``); K1 = K0 and their ``lambda_phi`` on the whole ``P, Q`` replaces our
    per-row ``flip_l2``.

    Parameters
    ----------
    name : str
        ``"bpr"``, ``"bpo"``, or ``"nbpo"`` (any other name: an NBPO variant, with NBPO's settings).
    params : dict
        The sampler's parameters (``n_negatives`` is replaced, NBPO's ``flip_dim`` defaults to
        ``factors`` and its ``flip_l2`` is 0).
    train : Interactions
        The training data (the model's shape).
    seed : int
        Seeds the model's initialisation.
    data : {"movielens", "amazon"}
        Whose tuned ``eta`` / ``lambda_r`` / ``lambda_phi`` (:data:`AUTHORS_SETTINGS`).
    factors, n_negatives : int
        K0 (= K1) and the negatives per voted pair.
    decay : float
        The learning-rate factor per epoch.
    lr : float, optional
        Replaces their ``eta``.

    Returns
    -------
    model : MatrixFactorization
    sampler : Sampler
        Of :func:`authors_sampler`.
    setting : dict
        ``eta`` (the SGD learning rate), ``lambda_r`` and, for NBPO, ``lambda_phi``.
    """
    from recsampling.models import make_model

    base = name if name in ("bpr", "bpo") else "nbpo"
    setting = dict(AUTHORS_SETTINGS[data][base])
    if lr is not None:
        setting["eta"] = lr
    params = dict(params, n_negatives=n_negatives)
    if base == "nbpo":
        params.setdefault("flip_dim", factors)
        params["flip_l2"] = 0.0
    model = make_model("mf", train, factors=factors, user_bias=False, item_bias=False, random_state=seed)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for w in model.parameters():
            w.copy_(torch.rand(w.shape, generator=gen) / math.sqrt(factors))
    sampler = authors_sampler(base, params, setting["lambda_r"], setting.get("lambda_phi", 0.0), decay)
    return model, sampler, setting
