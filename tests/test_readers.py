"""Readers: every release format on small files written here, malformed files, the real data."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsampling.data import movielens
from recsampling.data.datasets import describe_dataset, list_datasets, load_dataset
from recsampling.data.mnar import load_coat, read_coat, read_yahoo_r3
from recsampling.data.movielens import download_movielens, load_movielens, read_movielens
from recsampling.data.tables import read_interactions

RATINGS = [  # user, item, rating, timestamp
    (1, 10, 5, 881250949),
    (1, 20, 3, 881250950),
    (2, 10, 4, 891717742),
    (3, 30, 1, 878887116),
    (3, 20, 2, 880606923),
]


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path_factory, monkeypatch):
    """Never look into (or write to) the real user cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setattr(movielens, "cache_dir", lambda: cache)
    return cache


# --------------------------------------------------------------------------- writers (release formats)
def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def write_ml100k(folder: Path) -> Path:
    _write(folder / "u.data", "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
              "War", "Western"]
    _write(folder / "u.genre", "".join(f"{g}|{k}\n" for k, g in enumerate(genres)) + "\n")
    flags = {10: [1], 20: [2, 5], 30: [0]}
    lines = []
    for item, on in flags.items():
        f = ["1" if k in on else "0" for k in range(19)]
        lines.append("|".join([str(item), "Café (1995)", "01-Jan-1995", "", "http://x"] + f))
    _write(folder / "u.item", "\n".join(lines) + "\n", encoding="latin-1")
    _write(folder / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    _write(folder / "u.occupation", "other\ntechnician\nwriter\n")
    return folder


def write_ml1m(folder: Path, ratings_file: bool = True) -> Path:
    if ratings_file:
        _write(folder / "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in RATINGS))
    _write(folder / "movies.dat", "10::Star Wars: Episode IV (1977)::Action|Sci-Fi\n20::Toy Story (1995)::Comedy\n"
           "30::Amélie (2001)::Comedy|Romance\n40::Unrated (1999)::Drama\n", encoding="latin-1")
    _write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    return folder


def write_ml20m(folder: Path) -> Path:
    rows = "".join(f"{u},{i},{r - 0.5},{t}\n" for u, i, r, t in RATINGS)
    _write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n" + rows)
    _write(folder / "movies.csv", 'movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n'
           "20,Toy Story (1995),Comedy\n30,Nothing (2000),(no genres listed)\n")
    return folder


def zip_folder(folder: Path, zip_path: Path, prefix: str) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{prefix}/{f.relative_to(folder).as_posix()}")
    return zip_path


def _check_small(data, rating_scale=1.0):
    assert data.shape == (3, 3)
    assert data.nnz == 5
    assert data.user_ids.tolist() == [1, 2, 3] and data.item_ids.tolist() == [10, 20, 30]
    df = data.to_dataframe()
    got = {(int(u), int(i)): (float(r), int(t)) for u, i, r, t in zip(df.user_id, df.item_id, df.rating, df.timestamp)}
    assert got == {(u, i): (float(r) - (0 if rating_scale == 1.0 else 0.5), t) for u, i, r, t in RATINGS}


# --------------------------------------------------------------------------- MovieLens formats
def test_ml100k_folder_with_side_features(tmp_path):
    data = read_movielens(write_ml100k(tmp_path / "ml-100k"))
    _check_small(data)
    assert data.item_features.shape == (3, 19)
    names = data.item_feature_names
    assert names[0] == "genre:unknown" and names[1] == "genre:Action"
    assert data.item_features[1, names.index("genre:Comedy")] == 1  # item 20
    assert data.item_features[1].sum() == 2
    un = data.user_feature_names
    assert un[:3] == ("age", "gender:F", "gender:M")
    assert [n for n in un if n.startswith("occupation:")] == ["occupation:other", "occupation:technician",
                                                              "occupation:writer"]
    uf = data.user_features
    assert uf[:, 0].tolist() == pytest.approx([1 / 30, 1.0, 0.0])  # ages 24, 53, 23 min-max scaled
    assert uf[1, un.index("gender:F")] == 1 and uf[1, un.index("occupation:other")] == 1


def test_ml100k_by_name_from_parent_folder_own_folder_and_zip(tmp_path):
    folder = write_ml100k(tmp_path / "data" / "ml-100k")
    _check_small(load_movielens("ml-100k", tmp_path / "data"))
    _check_small(load_movielens("ml-100k", folder))
    zdir = tmp_path / "zipped"
    zdir.mkdir()
    zip_folder(folder, zdir / "ml-100k.zip", "ml-100k")
    data = load_movielens("ml-100k", zdir)
    _check_small(data)
    assert data.item_features.shape == (3, 19)
    _check_small(read_movielens(zdir / "ml-100k.zip"))


def test_ml1m_dat_format_with_users_and_genres(tmp_path):
    data = load_movielens("ml-1m", write_ml1m(tmp_path / "ml-1m").parent)
    _check_small(data)
    # the genre vocabulary is the catalogue's (Drama only from the unrated movie 40); rows are the rated items
    assert data.item_feature_names == ("genre:Action", "genre:Comedy", "genre:Drama", "genre:Romance",
                                       "genre:Sci-Fi")
    assert data.item_features.tolist() == [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 1, 0, 1, 0]]
    un = data.user_feature_names
    uf = data.user_features
    assert uf[:, 0].tolist() == pytest.approx([0.0, 1.0, 24 / 55])  # age codes 1, 56, 25
    assert uf[0, un.index("occupation:K-12 student")] == 1  # code 10
    assert uf[2, un.index("occupation:scientist")] == 1  # code 15


def test_ml10m_zip_uses_its_release_folder_name(tmp_path):
    folder = write_ml1m(tmp_path / "src")
    (folder / "users.dat").unlink()  # 10M has no users.dat
    zip_folder(folder, tmp_path / "ml-10m.zip", "ml-10M100K")
    data = load_movielens("ml-10m", tmp_path)
    _check_small(data)
    assert data.user_features is None and data.item_features.shape == (3, 5)


def test_ml20m_style_csv_folder_and_25m_zip(tmp_path):
    folder = write_ml20m(tmp_path / "ml-20m")
    data = load_movielens("ml-20m", tmp_path)
    _check_small(data, rating_scale=0.5)
    assert data.ratings.dtype.kind == "f"
    assert data.item_feature_names == ("genre:Action", "genre:Comedy", "genre:Crime")
    assert data.item_features[2].sum() == 0  # "(no genres listed)" is no genre
    zip_folder(folder, tmp_path / "ml-25m.zip", "ml-25m")
    _check_small(load_movielens("ml-25m", tmp_path), rating_scale=0.5)
    for name in ("ml-32m", "ml-latest", "ml-latest-small"):
        (tmp_path / f"{name}").mkdir()
        (tmp_path / name / "ratings.csv").write_bytes((folder / "ratings.csv").read_bytes())
        assert load_movielens(name, tmp_path).nnz == 5


def test_pairs_only_layout_gives_interactions_without_ratings(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m", ratings_file=False)
    with gzip.open(folder / "pairs.csv.gz", "wt") as fh:
        fh.write("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i, _, _ in RATINGS))
    data = load_movielens("ml-1m", tmp_path)
    assert data.shape == (3, 3) and data.nnz == 5
    assert data.ratings is None and data.timestamps is None
    assert data.user_features.shape[0] == 3


def test_csv_header_is_checked(tmp_path):
    _write(tmp_path / "ml-20m" / "ratings.csv", "user,item,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"ratings.csv: header is .*expected 'userId,movieId,rating,timestamp'"):
        load_movielens("ml-20m", tmp_path)


# --------------------------------------------------------------------------- malformed files
def test_udata_line_with_missing_column_names_file_column_and_line(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    _write(folder / "u.data", "1\t10\t5\t881250949\n1\t20\t3\n2\t10\t4\t891717742\n")
    with pytest.raises(ValueError) as err:
        load_dataset("ml-100k", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(folder / "u.data") in msg and "'timestamp'" in msg and "line 2" in msg


def test_non_numeric_and_fractional_values(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    _write(folder / "u.data", "1\t10\t5\t881250949\n1\tx\t3\t1\n")
    with pytest.raises(ValueError, match=r"u.data: column 'item_id' has non-numeric value 'x' at line 2"):
        read_movielens(folder)
    _write(folder / "u.data", "1\t10\t5\t881250949\n\n1\t10\t5\t1\n1\ty\t3\t1\n")
    with pytest.raises(ValueError, match=r"column 'item_id' has non-numeric value 'y' at line 4"):
        read_movielens(folder)  # blank lines are skipped but counted
    _write(folder / "u.data", "1\t10\t5\t881250949\n1.5\t10\t3\t1\n")
    with pytest.raises(ValueError, match=r"column 'user_id' must hold whole numbers, found '1.5' at line 2"):
        read_movielens(folder)


def test_dat_line_with_missing_field(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    _write(folder / "ratings.dat", "1::10::5::881250949\n2::10::4::1\n3::30\n")
    with pytest.raises(ValueError, match=r"ratings.dat: column 'rating' is missing at line 3"):
        read_movielens(folder)


def test_csv_with_nan_user_id_names_column_and_line(tmp_path):
    path = _write(tmp_path / "x.csv", "user,item,rating\n1,2,3\n,4,5\n")
    with pytest.raises(ValueError) as err:
        load_dataset(str(path), user_col="user", item_col="item", rating_col="rating")
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "'user'" in msg and "line 3" in msg


def test_empty_and_missing_column_files(tmp_path):
    path = _write(tmp_path / "e.csv", "user_id,item_id\n")
    with pytest.raises(ValueError, match=r"e.csv: the file is empty"):
        read_interactions(path)
    path = _write(tmp_path / "m.csv", "user_id,other\n1,2\n")
    with pytest.raises(ValueError, match=r"m.csv: found no item column among \['user_id', 'other'\].*item_col="):
        read_interactions(path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['item'\]"):
        read_interactions(path, item_col="item")


# --------------------------------------------------------------------------- generic reader
def test_generic_csv_tsv_parquet_with_column_names(tmp_path):
    df = pd.DataFrame({"who": ["u2", "u1", "u1"], "what": ["b", "a", "b"], "stars": [4.0, 5.0, 1.0],
                       "when": [3, 2, 1]})
    df.to_csv(tmp_path / "x.csv", index=False)
    df.to_csv(tmp_path / "x.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "x.parquet")
    for name in ("x.csv", "x.tsv", "x.parquet"):
        ds = load_dataset(str(tmp_path / name), user_col="who", item_col="what", rating_col="stars",
                          timestamp_col="when")
        data = ds.interactions
        assert ds.test is None
        assert data.user_ids.tolist() == ["u1", "u2"] and data.item_ids.tolist() == ["a", "b"]
        assert data.ratings.tolist() == [5.0, 1.0, 4.0]
        assert data.timestamps.tolist() == [2, 1, 3]
    no_header = _write(tmp_path / "raw.txt", "7::8\n9::8\n")
    data = read_interactions(no_header, header=False, names=["user_id", "item_id"])
    assert data.shape == (2, 1) and data.user_ids.tolist() == [7, 9]


def test_generic_parquet_nan_id(tmp_path):
    pd.DataFrame({"user_id": [1.0, np.nan], "item_id": [1, 2]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(ValueError, match=r"n.parquet: column 'user_id' has a missing \(NaN\) id at row 1"):
        read_interactions(tmp_path / "n.parquet")


# --------------------------------------------------------------------------- MNAR sets
def write_yahoo(folder: Path) -> Path:
    _write(folder / "ydata-ymusic-rating-study-v1_0-train.txt", "1\t1\t5\n1\t3\t1\n2\t2\t4\n4\t1\t2\n")
    _write(folder / "ydata-ymusic-rating-study-v1_0-test.txt", "1\t2\t3\n2\t4\t5\n3\t1\t1\n")
    return folder


def test_yahoo_r3_train_and_test_share_one_index_space(tmp_path):
    write_yahoo(tmp_path / "yahoo-r3")
    ds = load_dataset("yahoo-r3", tmp_path)
    train, test = ds.interactions, ds.test
    assert train.shape == test.shape == (4, 4)
    assert train.user_ids.tolist() == test.user_ids.tolist() == [1, 2, 3, 4]  # 1-based raw ids kept
    assert train.nnz == 4 and test.nnz == 3
    assert test.user_counts().tolist() == [1, 1, 1, 0]  # user 3 only in test, user 4 only in train
    assert test.ratings.tolist() == [3.0, 5.0, 1.0]
    assert train.to_implicit(4).nnz == 2
    assert ds.info["test_items"].tolist() == [[1], [3], [0], [-1]]


def test_yahoo_r3_malformed_line(tmp_path):
    folder = write_yahoo(tmp_path / "yahoo-r3")
    _write(folder / "ydata-ymusic-rating-study-v1_0-test.txt", "1\t2\t3\n2\t4\n")
    with pytest.raises(ValueError, match=r"-test.txt: column 'rating' is missing at line 2"):
        read_yahoo_r3(folder)


def write_coat(folder: Path, rng) -> tuple[np.ndarray, np.ndarray]:
    train = np.zeros((4, 5), int)
    test = np.zeros((4, 5), int)
    train[[0, 0, 1, 2, 3], [0, 1, 2, 3, 4]] = [5, 1, 4, 3, 2]
    test[[0, 1, 2, 3], [4, 4, 0, 1]] = [4, 2, 5, 1]
    folder.mkdir(parents=True)
    np.savetxt(folder / "train.ascii", train, fmt="%d")
    np.savetxt(folder / "test.ascii", test, fmt="%d")
    np.savetxt(folder / "propensities.ascii", rng.uniform(0.01, 0.2, (4, 5)))
    (folder / "user_item_features").mkdir()
    np.savetxt(folder / "user_item_features" / "user_features.ascii", np.eye(4, 2, dtype=int), fmt="%d")
    np.savetxt(folder / "user_item_features" / "item_features.ascii", np.eye(5, 3, dtype=int), fmt="%d")
    _write(folder / "user_item_features" / "user_features_map.txt", "gender:men\ngender:women")
    return train, test


def test_coat_format(tmp_path, rng):
    train, test = write_coat(tmp_path / "coat", rng)
    data = load_coat(tmp_path)
    assert data.train.shape == data.test.shape == (4, 5)
    assert np.array_equal(data.train.matrix.toarray() > 0, train > 0)
    assert data.train.ratings.tolist() == [5, 1, 4, 3, 2]
    assert data.test.nnz == 4
    props = np.loadtxt(tmp_path / "coat" / "propensities.ascii")
    assert data.train.propensities.tolist() == pytest.approx(props[train > 0].tolist())
    assert data.train.user_feature_names == ("gender:men", "gender:women")
    assert data.train.item_feature_names == ("f0", "f1", "f2")  # no map file
    assert data.test.item_features.shape == (5, 3)
    assert data.to_implicit(4).train.nnz == 2
    zip_folder(tmp_path / "coat", tmp_path / "coat.zip", "coat")
    (tmp_path / "coat" / "train.ascii").unlink()
    assert read_coat(tmp_path / "coat.zip").train.nnz == 5


def test_coat_bad_value_names_file_line_and_column(tmp_path, rng):
    write_coat(tmp_path / "coat", rng)
    m = np.loadtxt(tmp_path / "coat" / "test.ascii")
    m[2, 3] = 2.5
    np.savetxt(tmp_path / "coat" / "test.ascii", m)
    with pytest.raises(ValueError, match=r"test.ascii: value 2.5 at line 3, column 4"):
        load_dataset("coat", tmp_path)


# --------------------------------------------------------------------------- offline, download, registry
def test_offline_without_files_says_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("ml-100k", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"put u.data in {tmp_path / 'ml-100k'}/" in msg and "download=True" in msg
    with pytest.raises(FileNotFoundError, match=r"put train.ascii in .*coat"):
        load_dataset("coat", tmp_path)
    with pytest.raises(ValueError, match="cannot be downloaded automatically"):
        load_dataset("yahoo-r3", tmp_path, download=True)


def _release_zip(tmp_path: Path) -> bytes:
    folder = write_ml100k(tmp_path / "release" / "ml-100k")
    return zip_folder(folder, tmp_path / "release.zip", "ml-100k").read_bytes()


def test_download_is_verified_and_cached(tmp_path, monkeypatch, _empty_cache):
    payload = _release_zip(tmp_path)
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        if url.endswith(".md5"):
            Path(dest).write_text(f"{hashlib.md5(payload).hexdigest()}  ml-100k.zip\n")
        else:
            Path(dest).write_bytes(payload)

    monkeypatch.setattr(movielens, "_fetch", fake_fetch)
    monkeypatch.setattr(movielens, "KNOWN_MEMBER_SHA256", {})  # the fake u.data is not the real one
    data = load_movielens("ml-100k", tmp_path / "nowhere", download=True)
    _check_small(data)
    assert calls == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                     "https://files.grouplens.org/datasets/movielens/ml-100k.zip.md5"]
    assert (_empty_cache / "ml-100k.zip").is_file() and (_empty_cache / "ml-100k.zip.sha256").is_file()
    _check_small(load_movielens("ml-100k"))  # now found in the cache, no new fetch
    assert len(calls) == 2
    (_empty_cache / "ml-100k.zip").write_bytes(payload + b"tampered")
    with pytest.raises(ValueError, match="changed since it was downloaded"):
        download_movielens("ml-100k")


def test_download_rejects_bad_checksum_and_known_member_hash(tmp_path, monkeypatch, _empty_cache):
    payload = _release_zip(tmp_path)

    def fake_fetch(url, dest):
        Path(dest).write_text("0" * 32) if url.endswith(".md5") else Path(dest).write_bytes(payload)

    monkeypatch.setattr(movielens, "_fetch", fake_fetch)
    with pytest.raises(ValueError, match="does not match its published MD5"):
        download_movielens("ml-100k")
    assert not any(_empty_cache.iterdir())  # nothing half-verified is left behind

    def no_md5(url, dest):
        if url.endswith(".md5"):
            raise OSError("offline")
        Path(dest).write_bytes(payload)

    monkeypatch.setattr(movielens, "_fetch", no_md5)
    with pytest.raises(ValueError, match=r"u.data has sha256 .* expected 06416e59"):
        download_movielens("ml-100k")  # the fake u.data is not the real release's


def test_registry_lists_every_set_and_rejects_unknown_names():
    names = [d["name"] for d in list_datasets()]
    assert names == ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest", "ml-latest-small",
                     "coat", "yahoo-r3", "synthetic"]
    assert all(d["url"] and d["license"] and d["size"] for d in list_datasets())
    with pytest.raises(ValueError, match="unknown dataset 'ml-5k'"):
        load_dataset("ml-5k")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("missing.csv")


def test_synthetic_dataset():
    ds = load_dataset("synthetic", n_users=40, n_items=60, target_interactions=300, random_state=3)
    assert ds.interactions.shape == ds.test.shape == (40, 60)
    d = describe_dataset(ds)
    assert (d["users"], d["items"]) == (40, 60) and d["test_interactions"] == ds.test.nnz
    again = load_dataset("synthetic", n_users=40, n_items=60, target_interactions=300, random_state=3)
    assert (again.interactions.matrix != ds.interactions.matrix).nnz == 0


# --------------------------------------------------------------------------- real data (../shared/data)
def test_real_ml100k(shared_data):
    digest = hashlib.sha256((shared_data / "ml-100k" / "u.data").read_bytes()).hexdigest()
    assert digest.startswith("06416e59")
    ds = load_dataset("ml-100k", shared_data)
    d = describe_dataset(ds)
    assert (d["users"], d["items"], d["interactions"]) == (943, 1682, 100000)
    data = ds.interactions
    assert data.user_ids.min() == 1 and data.user_ids.max() == 943
    assert data.item_ids.min() == 1 and data.item_ids.max() == 1682
    assert set(np.unique(data.ratings)) == {1, 2, 3, 4, 5}
    assert data.user_counts().min() == 20
    assert data.item_features.shape == (1682, 19) and data.user_features.shape == (943, 24)
    assert data.to_implicit(4).nnz == 55375


def test_real_ml1m_pairs(shared_data):
    data = load_dataset("ml-1m", shared_data).interactions
    assert data.shape == (6040, 3706) and data.nnz == 1000209
    assert data.ratings is None
    assert data.user_ids.max() == 6040 and data.item_ids.max() == 3952
    assert data.user_features.shape == (6040, 24) and data.item_features.shape == (3706, 18)


def test_real_coat(shared_data):
    ds = load_dataset("coat", shared_data)
    d = describe_dataset(ds)
    train = np.loadtxt(shared_data / "coat" / "train.ascii")
    assert (d["users"], d["items"], d["interactions"]) == (290, 300, int((train > 0).sum()))
    assert (ds.test.user_counts() == 16).all()
    assert d["test_interactions"] == 290 * 16
    assert (ds.interactions.user_counts() == 24).all()
    assert ds.interactions.item_features.shape == (300, 33)
    assert ds.interactions.user_feature_names[0] == "gender:men"


def test_generic_compressed_csv(tmp_path):
    df = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [5, 5, 6]})
    df.to_csv(tmp_path / "p.csv.gz", index=False)
    df.to_csv(tmp_path / "p.csv.zip", index=False)
    for name in ("p.csv.gz", "p.csv.zip"):
        data = read_interactions(tmp_path / name)
        assert data.shape == (2, 2) and data.nnz == 3


def test_load_dataset_by_folder_path_and_release_format_check(tmp_path, rng):
    write_coat(tmp_path / "coat", rng)
    ds = load_dataset(str(tmp_path / "coat"))
    assert ds.test is not None and ds.test.nnz == 4 and ds.info["test_items"].shape == (4, 1)
    folder = write_ml100k(tmp_path / "ml-100k")
    assert load_dataset(str(folder)).interactions.nnz == 5
    with pytest.raises(FileNotFoundError, match="put ratings.dat in"):
        load_dataset("ml-1m", folder)  # a 100K folder is not read as ML-1M
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found no MovieLens, Coat or Yahoo! R3 files"):
        load_dataset(str(tmp_path / "empty"))


# --------------------------------------------------------------------------- ids read exactly, or refused
def test_generic_reader_keeps_large_and_textual_ids_exact(tmp_path):
    big = 2**63  # beyond int64: read as uint64, not wrapped to -2**63
    data = read_interactions(_write(tmp_path / "u.csv", f"user_id,item_id\n{big},1\n2,1\n"))
    assert data.user_ids.dtype == np.uint64 and data.user_ids.tolist() == [2, big]
    huge = 2**64 + 5  # beyond uint64: kept as its text
    data = read_interactions(_write(tmp_path / "h.csv", f"user_id,item_id\n{huge},1\n2,1\n"))
    assert sorted(data.user_ids.tolist()) == sorted([str(huge), "2"])
    exact = 2**53 + 1  # next to a value with a decimal point: not rounded through float64
    data = read_interactions(_write(tmp_path / "f.csv", f"user_id,item_id\n{exact},1\n2.0,1\n"))
    assert str(exact) in data.user_ids.tolist()
    data = read_interactions(_write(tmp_path / "z.csv", "user_id,item_id\n007,1\n7,1\n"))
    assert data.n_users == 2  # '007' and '7' are two ids


@pytest.mark.parametrize("user", [str(2**63), str(2**53 + 1)])
def test_integer_columns_refuse_values_they_cannot_hold_exactly(tmp_path, user):
    folder = write_ml100k(tmp_path / "ml-100k")
    _write(folder / "u.data", f"{user}\t10\t5\t881250949\n2.0\t10\t3\t1\n")
    with pytest.raises(ValueError, match=rf"u.data: column 'user_id' has '{user}' at line 1, too large to read exactly"):
        read_movielens(folder)


def test_integer_columns_keep_large_plain_integers_exact(tmp_path):
    folder = write_ml100k(tmp_path / "ml-100k")
    _write(folder / "u.data", f"{2**53 + 1}\t10\t5\t881250949\n{-2**63}\t10\t3\t1\n")
    data = read_movielens(folder)
    assert sorted(data.user_ids.tolist()) == [-2**63, 2**53 + 1]


# --------------------------------------------------------------------------- columns recognised by their common names
@pytest.mark.parametrize("header", ["user_id,item_id,rating,timestamp", "userId,movieId,rating,timestamp",
                                    "User ID,ASIN,Score,unixReviewTime", "customer_id,product_id,stars,time"])
def test_generic_reader_recognises_common_column_names(tmp_path, header):
    path = _write(tmp_path / "x.csv", header + "\n1,10,5,100\n1,20,1,200\n2,10,4,300\n")
    data = read_interactions(path)
    assert data.shape == (2, 2) and data.ratings.tolist() == [5.0, 1.0, 4.0]
    assert data.timestamps.tolist() == [100, 200, 300]
    skipped = read_interactions(path, rating_col=None, timestamp_col=None)
    assert skipped.ratings is None and skipped.timestamps is None


def test_generic_reader_reads_iso_dates_as_seconds_and_names_a_bad_one(tmp_path):
    path = _write(tmp_path / "d.csv", "user,item,date\n1,a,1970-01-02\n2,b,1970-01-01T00:01:00Z\n")
    assert read_interactions(path).timestamps.tolist() == [86400.0, 60.0]
    bad = _write(tmp_path / "b.csv", "user,item,date\n1,a,1970-01-02\n2,b,yesterday\n")
    with pytest.raises(ValueError, match=r"b.csv: column 'date' has 'yesterday' at data row 2, neither a number"):
        read_interactions(bad)
    pd.DataFrame({"user": [1, 2], "item": [3, 4], "when": pd.to_datetime(["1970-01-01", "1970-01-03"])}).to_parquet(
        tmp_path / "d.parquet")
    assert read_interactions(tmp_path / "d.parquet", timestamp_col="when").timestamps.tolist() == [0.0, 172800.0]


def test_generic_reader_refuses_ambiguous_or_unrecognised_columns(tmp_path):
    path = _write(tmp_path / "x.csv", "who,what\n1,2\n")
    with pytest.raises(ValueError, match=r"found no user column among \['who', 'what'\].*user_col="):
        read_interactions(path)
    assert read_interactions(path, user_col="who", item_col="what").shape == (1, 1)
    with pytest.raises(ValueError, match="cannot be both the user and the item column"):
        read_interactions(path, user_col="who", item_col="who")


@pytest.mark.parametrize("values, what", [([[1, 2], [3]], "list"), ([{"a": 1}, {"b": 2}], "dict"),
                                          ([b"a", b"b"], "bytes")])
def test_parquet_ids_must_be_numbers_or_strings(tmp_path, values, what):
    pd.DataFrame({"user_id": values, "item_id": [1, 2]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=rf"p.parquet: column 'user_id' holds {what} values \(row 0"):
        read_interactions(tmp_path / "p.parquet")
