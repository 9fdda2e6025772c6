"""The cell store: atomic records, resume only with the same configuration."""

from __future__ import annotations

import pytest

from recsampling.bench.store import CellStore, read_record, same_config


def test_a_record_round_trips_and_is_found_only_with_its_configuration(tmp_path):
    store = CellStore(tmp_path, create=True)
    rec = {"key": "a__mf__bpr__seed0", "status": "ok", "config": {"lr": 0.01, "ks": (5, 10)}, "metrics": {"x": 1.5}}
    path = store.put(rec)
    assert path == tmp_path / "cells" / "a__mf__bpr__seed0.json"
    assert read_record(path)["metrics"] == {"x": 1.5}
    assert store.finished(rec["key"], {"lr": 0.01, "ks": [5, 10]})["metrics"] == {"x": 1.5}  # tuple == list
    assert store.finished(rec["key"], {"lr": 0.02, "ks": [5, 10]}) is None
    assert store.finished("other", {}) is None


def test_failed_and_broken_records_are_not_finished(tmp_path):
    store = CellStore(tmp_path, create=True)
    store.put({"key": "bad", "status": "failed", "config": {}})
    (tmp_path / "cells" / "cut.json").write_text('{"key": "cut", "sta')
    store.put({"key": "good", "status": "ok", "config": {}})
    assert store.finished("bad", {}) is None and store.finished("cut", {}) is None
    assert [r["key"] for r in store.records()] == ["good"]
    assert store.records(keys={"bad"}) == []


def test_a_read_only_store_creates_nothing(tmp_path):
    assert CellStore(tmp_path / "none").records() == [] and not (tmp_path / "none").exists()


@pytest.mark.parametrize("key", ["", "../x", ".hidden"])
def test_a_key_must_be_a_file_stem(tmp_path, key):
    with pytest.raises(ValueError, match="file stem"):
        CellStore(tmp_path).path(key)


def test_same_config_compares_through_json():
    assert same_config({"a": (1, 2), "b": {"c": 1}}, {"b": {"c": 1}, "a": [1, 2]})
    assert not same_config({"a": 1}, {"a": 1, "b": None})
