"""Data layer: the Interactions object, readers, splits and the synthetic world."""

from recsampling.data.interactions import Interactions

__all__ = ["Interactions"]
