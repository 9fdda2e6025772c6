"""The Interactions object: construction, validation, duplicates, derived data, immutability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsampling.data.interactions import Interactions


def _frame():
    return pd.DataFrame({
        "user_id": ["b", "a", "a", "c", "b"],
        "item_id": [10, 20, 10, 30, 30],
        "rating": [5.0, 3.0, 4.0, 1.0, 2.0],
        "timestamp": [5, 4, 3, 2, 1],
    })


def test_from_dataframe_maps_sorted_raw_ids_to_contiguous_indices():
    data = Interactions.from_dataframe(_frame(), rating_col="rating", timestamp_col="timestamp")
    assert data.shape == (3, 3)
    assert list(data.user_ids) == ["a", "b", "c"]
    assert list(data.item_ids) == [10, 20, 30]
    assert data.matrix.dtype == np.float32
    dense = data.matrix.toarray()
    assert dense.tolist() == [[1, 1, 0], [1, 0, 1], [0, 0, 1]]
    # columns are aligned with CSR storage order: a-10, a-20, b-10, b-30, c-30
    assert data.ratings.tolist() == [4.0, 3.0, 5.0, 2.0, 1.0]
    assert data.timestamps.tolist() == [3, 4, 5, 1, 2]
    back = data.to_dataframe()
    assert set(zip(back.user_id, back.item_id, back.rating)) == set(
        zip(_frame().user_id, _frame().item_id, _frame().rating))


def test_duplicates_collapse_by_the_documented_rule():
    data = Interactions.from_arrays(
        [1, 1, 1, 2], [7, 7, 7, 7],
        ratings=[2.0, 5.0, 3.0, 1.0], timestamps=[30, 10, 20, 5], propensities=[0.2, 0.4, 0.6, 1.0])
    assert data.nnz == 2  # never silently doubled
    assert data.matrix.data.tolist() == [1.0, 1.0]
    assert data.ratings.tolist() == [5.0, 1.0]  # maximum rating
    assert data.timestamps.tolist() == [10, 5]  # earliest time
    assert data.propensities.tolist() == pytest.approx([0.4, 1.0])  # mean propensity


@pytest.mark.parametrize("column,value,message", [
    ("user_id", np.nan, r"column 'user_id' has a missing \(NaN\) id at row 2"),
    ("item_id", None, r"column 'item_id' has a missing \(NaN\) id at row 2"),
    ("rating", np.nan, r"column 'rating' has a missing \(NaN\) or infinite value at row 2"),
])
def test_missing_values_name_column_and_row(column, value, message):
    df = pd.DataFrame({"user_id": [1.0, 2.0, 3.0], "item_id": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
    if column == "item_id":
        df["item_id"] = df["item_id"].astype(object)
    df.loc[2, column] = value
    with pytest.raises(ValueError, match=message):
        Interactions.from_dataframe(df, rating_col="rating")


def test_missing_column_and_empty_data():
    df = pd.DataFrame({"user_id": [1], "item_id": [2]})
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rating'\]"):
        Interactions.from_dataframe(df, rating_col="rating")
    with pytest.raises(ValueError, match="empty"):
        Interactions.from_dataframe(df.iloc[:0])
    with pytest.raises(ValueError, match="DataFrame"):
        Interactions.from_dataframe({"user_id": [1]})


@pytest.mark.parametrize("users,message", [
    ([0, -1, 2], r"users must be non-negative, found -1 at row 1"),
    ([0, 1.5, 2], r"users must hold integers, found 1.5 at row 1"),
    ([0, 1, 3], r"users must be < 3, found 3 at row 2"),
    (["a", "b", "c"], r"users must hold integer indices"),
])
def test_bad_indices_name_row(users, message):
    with pytest.raises(ValueError, match=message):
        Interactions.from_indices(users, [0, 1, 2], (3, 3))


def test_unknown_ids_error_or_drop():
    base = Interactions.from_arrays([1, 2], [10, 20])
    with pytest.raises(ValueError, match=r"column 'item_id' has id 30 at row 1 that is not in the given id list"):
        Interactions.from_arrays([1, 2], [10, 30], user_ids=base.user_ids, item_ids=base.item_ids)
    aligned = Interactions.from_arrays([1, 2], [10, 30], user_ids=base.user_ids, item_ids=base.item_ids,
                                       unknown="drop")
    assert aligned.shape == base.shape and aligned.nnz == 1


def test_from_csr_drops_zeros_and_keeps_weights():
    m = sp.csr_matrix(np.array([[0, 2.0], [0.0, 0]]))
    data = Interactions.from_csr(m)
    assert data.nnz == 1 and data.matrix.data.tolist() == [2.0]
    with pytest.raises(ValueError, match="scipy sparse"):
        Interactions.from_csr(np.eye(2))


def test_to_implicit_threshold_and_none():
    data = Interactions.from_dataframe(_frame(), rating_col="rating")
    pos = data.to_implicit(4)
    assert pos.shape == data.shape
    assert pos.nnz == 2 and (pos.ratings >= 4).all()
    assert data.to_implicit(None) is data
    with pytest.raises(ValueError, match="needs ratings"):
        Interactions.from_arrays([1], [2]).to_implicit(4)


def test_kcore_iterates_until_stable():
    # user 0 has 3 items, user 1 has 2 items (one shared), user 2 has 1 item
    data = Interactions.from_indices([0, 0, 0, 1, 1, 2], [0, 1, 2, 0, 1, 3], (3, 4))
    core = data.kcore(min_user=2, min_item=2)
    assert core.shape == (2, 2)
    assert core.nnz == 4
    same_space = data.kcore(min_user=2, min_item=2, compact=False)
    assert same_space.shape == data.shape and same_space.nnz == 4
    with pytest.raises(ValueError, match="empty"):
        data.kcore(min_user=10)
    with pytest.raises(ValueError, match=">= 1"):
        data.kcore(min_user=0)


def test_take_and_subset_carry_columns_and_features():
    data = Interactions.from_indices(
        [0, 0, 1, 2], [0, 2, 1, 2], (3, 3), ratings=[1.0, 2.0, 3.0, 4.0],
        user_features=np.eye(3), item_features=np.arange(6).reshape(3, 2), item_feature_names=("x", "y"))
    taken = data.take(np.array([2, 0]), np.array([2, 0]))
    assert taken.shape == (2, 2)
    assert taken.user_ids.tolist() == [2, 0] and taken.item_ids.tolist() == [2, 0]
    assert taken.matrix.toarray().tolist() == [[1, 0], [1, 1]]
    assert taken.ratings.tolist() == [4.0, 2.0, 1.0]
    assert taken.user_features.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert taken.item_feature_names == ("x", "y")
    sub = data.subset(data.ratings > 1.5)
    assert sub.shape == data.shape and sub.nnz == 3
    assert sub.ratings.tolist() == [2.0, 3.0, 4.0]
    assert sub.item_features is data.item_features
    with pytest.raises(ValueError, match="one entry per interaction"):
        data.subset(np.ones(2, bool))


def test_immutable():
    data = Interactions.from_arrays([1, 2], [3, 4], ratings=[1.0, 2.0])
    with pytest.raises(Exception):
        data.ratings = None
    with pytest.raises(ValueError):
        data.ratings[0] = 5.0
    with pytest.raises(ValueError):
        data.matrix.data[0] = 5.0
    with pytest.raises(ValueError):
        data.user_ids[0] = 9


def test_repr_and_describe():
    data = Interactions.from_dataframe(_frame(), rating_col="rating", timestamp_col="timestamp")
    text = repr(data)
    assert "3 users x 3 items, 5 interactions" in text and "ratings/timestamps" in text
    d = data.describe()
    assert (d["users"], d["items"], d["interactions"]) == (3, 3, 5)
    assert d["rating_min"] == 1.0 and d["rating_max"] == 5.0 and d["has_timestamps"]


def test_feature_shape_is_checked():
    with pytest.raises(ValueError, match="user_features must be a 2-D array with 2 rows"):
        Interactions.from_arrays([1, 2], [3, 4], user_features=np.ones((3, 2)))


# --------------------------------------------------------------------------- structure of untrusted input
def _csr(indices, indptr, shape=(2, 4)):
    indices, indptr = np.asarray(indices), np.asarray(indptr)
    m = sp.csr_matrix((np.ones(3, np.float32), np.array([0, 1, 2]), np.array([0, 2, 3])), shape=shape)
    m.indices, m.indptr = indices, indptr  # as an edited file or a careless caller leaves them
    m.data = np.ones(indices.size, np.float32)
    return m


@pytest.mark.parametrize("indices,indptr,message", [
    ([0, 1, 10**7], [0, 2, 3], r"column index 10000000 in row 1; expected indices in \[0, 4\)"),  # issue 17's segfault
    ([0, -1, 2], [0, 2, 3], r"column index -1 in row 0"),
    ([0, 1, 2], [1, 2, 3], r"indptr must start at 0 and end at the number of stored entries \(3\)"),
    ([0, 1, 2], [0, 2, 7], r"indptr must start at 0 and end at the number of stored entries \(3\), got 0 and 7"),
    ([0, 1, 2], [0, 2, 1, 3], r"indptr must have n_rows \+ 1 = 3 entries, got 4"),
    ([0, 1, 2], [0, 5, 3], r"indptr must be non-decreasing"),
    ([2, 1, 3], [0, 2, 3], r"row 0 has unsorted or duplicate column indices"),
    ([1, 1, 3], [0, 2, 3], r"row 0 has unsorted or duplicate column indices"),
])
def test_a_matrix_inconsistent_with_its_shape_is_refused_before_any_kernel_sees_it(indices, indptr, message):
    m = _csr(indices, indptr)
    m.has_sorted_indices = True  # a flag that lies must not be trusted either
    with pytest.raises(ValueError, match=message):
        Interactions(matrix=m, user_ids=np.arange(2), item_ids=np.arange(4))
    if "unsorted" not in message:  # from_csr sorts and sums, but only once the bounds hold
        with pytest.raises(ValueError, match=message):
            Interactions.from_csr(m)


def test_from_csr_canonicalises_unsorted_rows_and_checks_coo_and_csc_bounds():
    data = Interactions.from_csr(_csr([2, 1, 3], [0, 2, 3]))
    assert data.matrix.indices.tolist() == [1, 2, 3]
    coo = sp.coo_matrix((np.ones(2), (np.array([0, 1]), np.array([0, 3]))), shape=(2, 4))
    coo.col[1] = 99
    with pytest.raises(ValueError, match=r"coordinate 99 on axis 1 outside \[0, 4\)"):
        Interactions.from_csr(coo)
    csc = sp.csc_matrix(np.eye(2))
    csc.indices[1] = 50
    with pytest.raises(ValueError, match=r"row index 50 in column 1"):
        Interactions.from_csr(csc)


def test_non_finite_values_are_refused():
    m = sp.csr_matrix(np.array([[1.0, np.inf]], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or infinite"):
        Interactions.from_csr(m)


@pytest.mark.parametrize("user_ids,message", [
    (np.array([7, 7, 8]), r"user_ids must be distinct, but id 7 appears again at index 1"),
    (np.array([1, 1.0, 2], dtype=object), r"user_ids must be distinct, but id 1.0 appears again at index 1"),
    (np.array(["a", None, "b"], dtype=object), r"user_ids has a missing \(NaN/None\) id at index 1"),
    (np.array([1.0, np.nan, 2.0]), r"user_ids has a missing \(NaN/None\) id at index 1"),
    (np.arange(2), r"user_ids must be a one-dimensional array of 3 ids, got shape \(2,\)"),
])
def test_id_maps_must_be_one_distinct_id_per_index(user_ids, message):
    m = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=message):
        Interactions(matrix=m, user_ids=user_ids, item_ids=np.arange(3))


def test_ids_of_different_types_are_distinct_ids():
    data = Interactions.from_arrays(np.array([1, "1"], dtype=object), [5, 6])
    assert data.n_users == 2 and sorted(map(repr, data.user_ids)) == ["'1'", "1"]
