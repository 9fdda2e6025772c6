"""Models: matrix factorization and the two-tower model, built by name with :func:`make_model`.

Every model is an :class:`~recsampling.models.base.EmbeddingModel`: two embedding tables (biases
folded in), ``score(users, items)``, ``recommend(users, k)``.
"""

from __future__ import annotations

from recsampling.data.interactions import Interactions
from recsampling.models.base import EmbeddingModel
from recsampling.models.mf import MatrixFactorization
from recsampling.models.two_tower import TwoTower

__all__ = ["EmbeddingModel", "MatrixFactorization", "TwoTower", "MODELS", "make_model", "model_name"]

#: name -> model class (what the CLI, the Recommender and Optuna accept).
MODELS: dict[str, type[EmbeddingModel]] = {"mf": MatrixFactorization, "twotower": TwoTower}


def model_name(model: EmbeddingModel) -> str:
    """The registry name of a model instance (``"mf"``, ``"twotower"``)."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model; registered: {sorted(MODELS)}")


def make_model(name: str, train: Interactions, **params) -> EmbeddingModel:
    """Build a registered model sized to ``train``.

    Parameters
    ----------
    name : {"mf", "twotower"}
    train : Interactions
        Gives ``n_users`` and ``n_items`` (and the side features for the two-tower model).
    **params
        The model's constructor parameters. ``"twotower"`` also takes ``use_features``
        (default True): use ``train.user_features`` / ``train.item_features`` when present and
        not given explicitly.

    Returns
    -------
    EmbeddingModel
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if not isinstance(train, Interactions):
        raise ValueError(f"train must be an Interactions, got {type(train).__name__}")
    params = dict(params)
    if name == "twotower":
        if params.pop("use_features", True):
            params.setdefault("user_features", train.user_features)
            params.setdefault("item_features", train.item_features)
    try:
        return MODELS[name](train.n_users, train.n_items, **params)
    except TypeError as e:
        raise ValueError(f"bad parameters for model {name!r}: {e}") from None


def model_from_params(name: str, n_users: int, n_items: int, params: dict) -> EmbeddingModel:
    """Rebuild an (untrained) model from ``get_params()`` output (checkpoints)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[name]
    if hasattr(cls, "_from_params"):
        return cls._from_params(n_users, n_items, params)
    return cls(n_users, n_items, **params)
