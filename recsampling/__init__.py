"""recsampling: what to do with the items a user did not touch, on one interface.

See the README for the tour; the pieces are ``recsampling.data`` (Interactions, readers, splits,
the synthetic world), ``recsampling.samplers``, ``recsampling.models``, ``recsampling.train``,
``recsampling.checkpoint``, ``recsampling.scoring``, ``recsampling.metrics`` and ``recsampling.tuning``.
"""

import os

# OpenMP threads that sleep when idle instead of spinning, unless the user chose otherwise; read
# once, when torch's OpenMP runtime loads (hence before any import of torch). On a machine whose
# cores other processes share, spinning threads of one parallel op steal the cores the next op's
# threads need: measured on the in-batch step (ML-1M, batch 4096, 2 threads, 2 shared cores, load
# ~4), 554 ms a batch spinning against 80 ms sleeping, the same as 1 thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recsampling.data import Interactions  # noqa: E402
from recsampling.recommender import Recommender

__version__ = "0.1.0"
__all__ = ["Interactions", "Recommender", "__version__"]
