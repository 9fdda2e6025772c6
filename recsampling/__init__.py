"""recsampling: what to do with the items a user did not touch, on one interface.

See the README for the tour; the pieces are ``recsampling.data`` (Interactions, readers, splits,
the synthetic world), ``recsampling.samplers``, ``recsampling.models``, ``recsampling.train``,
``recsampling.checkpoint``, ``recsampling.scoring``, ``recsampling.metrics`` and ``recsampling.tuning``.
"""

from recsampling.data import Interactions
from recsampling.recommender import Recommender

__version__ = "0.1.0"
__all__ = ["Interactions", "Recommender", "__version__"]
