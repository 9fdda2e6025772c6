"""Models: matrix factorization and the two-tower model, built by name with :func:`make_model`.

Every model is an :class:`~recsampling.models.base.EmbeddingModel`: two embedding tables (biases
folded in), ``score(users, items)``, ``recommend(users, k)``. :data:`MODELS` holds the built-ins
and the plug-ins that installed packages declare under the entry point group
``recsampling.models`` (:mod:`recsampling._registry`).
"""

from __future__ import annotations

from recsampling.data.interactions import Interactions
from recsampling.models.base import MODELS, EmbeddingModel, register_model
from recsampling.models.mf import MatrixFactorization
from recsampling.models.two_tower import TwoTower

__all__ = ["EmbeddingModel", "MatrixFactorization", "TwoTower", "MODELS", "register_model", "make_model",
           "model_name", "model_from_params"]

def model_name(model: EmbeddingModel) -> str:
    """The registry name of a model instance (``"mf"``, ``"twotower"``, a plug-in's)."""
    name = type(model).name
    if not name or MODELS.get(name) is not type(model):
        raise ValueError(f"{type(model).__name__} is not a registered model; registered: {sorted(MODELS)}")
    return name


def make_model(name: str, train: Interactions, **params) -> EmbeddingModel:
    """Build a registered model sized to ``train``.

    Parameters
    ----------
    name : str
        A registered model (``"mf"``, ``"twotower"``, a plug-in's).
    train : Interactions
        Gives ``n_users`` and ``n_items``, and the side features of a model that takes them
        (:meth:`~recsampling.models.base.EmbeddingModel.from_interactions`).
    **params
        The model's constructor parameters; a model with feature towers also takes
        ``use_features`` (default True): use ``train.user_features`` / ``train.item_features``
        when present and not given explicitly.

    Returns
    -------
    EmbeddingModel
    """
    cls = MODELS.lookup(name)
    if not isinstance(train, Interactions):
        raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
    try:
        return cls.from_interactions(train, **params)
    except TypeError as e:
        raise ValueError(f"bad parameters for model {name!r}: {e}") from None


def model_from_params(name: str, n_users: int, n_items: int, params: dict) -> EmbeddingModel:
    """Rebuild an (untrained) model from ``get_params()`` output (checkpoints)."""
    return MODELS.lookup(name).from_params(n_users, n_items, params)
