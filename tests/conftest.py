"""Shared fixtures: a seeded rng, the real-data folder (skips when absent), benchmark scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def restore_threads():
    """Give the session its torch thread count back after a benchmark's ``main`` set its own."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)


def write_fake_coat(folder: Path, n_users: int = 12, n_items: int = 15, seed: int = 0) -> Path:
    """Dense ``train.ascii`` / ``test.ascii`` in Coat's format: 6 self-selected and 5 random items per user."""
    rng = np.random.default_rng(seed)
    train, test = np.zeros((n_users, n_items), int), np.zeros((n_users, n_items), int)
    for u in range(n_users):
        items = rng.permutation(n_items)
        train[u, items[:6]] = rng.integers(1, 6, 6)
        test[u, items[6:11]] = rng.integers(1, 6, 5)
    folder.mkdir(parents=True)
    for name, m in (("train.ascii", train), ("test.ascii", test)):
        (folder / name).write_text("\n".join(" ".join(map(str, row)) for row in m) + "\n")
    return folder
