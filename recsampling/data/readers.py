"""All readers in one place: MovieLens, the MNAR sets (Coat, Yahoo! R3) and any table file.

The implementations live in :mod:`recsampling.data.movielens`, :mod:`recsampling.data.mnar` and
:mod:`recsampling.data.tables`; this module gathers their public functions. For loading by name
(``"ml-100k"``, ``"coat"``, ...) use :func:`recsampling.data.datasets.load_dataset`.
"""

from recsampling.data.mnar import (
    MNARData,
    find_coat,
    find_yahoo_r3,
    load_coat,
    load_yahoo_r3,
    read_coat,
    read_yahoo_r3,
)
from recsampling.data.movielens import (
    MOVIELENS_RELEASES,
    cache_dir,
    download_movielens,
    find_movielens,
    load_movielens,
    read_movielens,
)
from recsampling.data.tables import Source, read_interactions

__all__ = [
    "MNARData",
    "MOVIELENS_RELEASES",
    "Source",
    "cache_dir",
    "download_movielens",
    "find_coat",
    "find_movielens",
    "find_yahoo_r3",
    "load_coat",
    "load_movielens",
    "load_yahoo_r3",
    "read_coat",
    "read_interactions",
    "read_movielens",
    "read_yahoo_r3",
]
