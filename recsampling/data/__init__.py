"""Data layer: the Interactions object, readers, splits and the synthetic world."""

from recsampling.data.interactions import Interactions
from recsampling.data.datasets import Dataset, describe_dataset, list_datasets, load_dataset
from recsampling.data.readers import (
    MNARData,
    load_coat,
    load_movielens,
    load_yahoo_r3,
    read_coat,
    read_interactions,
    read_movielens,
    read_yahoo_r3,
)
from recsampling.data.splits import Split, leave_one_out, random_split, temporal_split, validation_split

__all__ = ["Interactions"]
__all__ += ["Dataset", "describe_dataset", "list_datasets", "load_dataset"]
__all__ += ["MNARData", "load_coat", "load_movielens", "load_yahoo_r3", "read_coat", "read_interactions",
            "read_movielens", "read_yahoo_r3"]
__all__ += ["Split", "leave_one_out", "random_split", "temporal_split", "validation_split"]
from recsampling.data.synthetic import LoggedLists, SyntheticWorld, make_world  # noqa: E402

__all__ += ["LoggedLists", "SyntheticWorld", "make_world"]
