"""Out-of-tree samplers and models through entry points, and the tables derived from the registries.

A plug-in here is what a user's project installs: one module and a ``.dist-info`` folder whose
``entry_points.txt`` declares the groups ``recsampling.samplers`` / ``recsampling.models``
(what ``pip install -e`` of a pyproject with ``[project.entry-points."recsampling.samplers"]``
writes), put on ``sys.path`` (in-process) or ``PYTHONPATH`` (for a fresh process).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recsampling._registry import Registry
from recsampling.data.interactions import Interactions
from recsampling.models import MODELS
from recsampling.samplers import SAMPLERS, make_sampler

PLUGIN_MODULE = "rs_test_margin_plugin"

PLUGIN_SOURCE = '''
"""A user's own sampler and model, in one file of their project."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsampling.models.base import EmbeddingModel
from recsampling.samplers import Batch, Sampler
from recsampling.samplers.negatives import draw_negatives


class MarginBPR(Sampler):
    """BPR with a margin: -log sigma(s_ui - s_uj - margin), uniform negatives."""

    demo_params = {"margin": 0.25}

    def __init__(self, n_negatives: int = 1, margin: float = 0.5):
        super().__init__()
        self.n_negatives = n_negatives
        self.margin = margin

    @classmethod
    def search_space(cls, trial):
        return {**super().search_space(trial), "margin": trial.suggest_float("margin", 0.0, 1.0)}

    def batches(self, batch_size, rng):
        self._check_prepared()
        m = self.train_.matrix
        users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        order = self.epoch_order(users.size, rng)
        for start in range(0, order.size, batch_size):
            rows = order[start:start + batch_size]
            neg = draw_negatives(m, users[rows], self.n_negatives, rng)
            yield Batch(users=users[rows].astype(np.int64),
                        items=np.concatenate([m.indices[rows, None], neg], 1).astype(np.int64))

    def loss(self, model, batch):
        s = model.score(batch.users, batch.items)
        return -F.logsigmoid(s[:, :1] - s[:, 1:] - self.margin).mean()


class PlainMF(EmbeddingModel):
    """Dot products of two embedding tables, no biases."""

    def __init__(self, n_users, n_items, factors: int = 8, random_state=None):
        super().__init__(n_users, n_items)
        self.factors = factors
        gen = torch.Generator().manual_seed(int(np.random.default_rng(random_state).integers(2**31)))
        self.U = nn.Parameter(0.1 * torch.randn(n_users, factors, generator=gen))
        self.V = nn.Parameter(0.1 * torch.randn(n_items, factors, generator=gen))

    def get_params(self):
        return {"factors": self.factors}

    def user_embeddings(self, users=None):
        return self.U if users is None else self.U[users]

    def item_embeddings(self, items=None):
        return self.V if items is None else self.V[items]
'''

ENTRY_POINTS = f"""
[recsampling.samplers]
marginbpr = {PLUGIN_MODULE}:MarginBPR

[recsampling.models]
plainmf = {PLUGIN_MODULE}:PlainMF
"""


def _distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> Path:
    """``root`` holding the modules and ``<name>-0.1.dist-info`` with these entry points."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def _tiny(n_users: int = 30, n_items: int = 20, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    u, i = np.nonzero(rng.random((n_users, n_items)) < 0.3)
    return Interactions.from_indices(u, i, (n_users, n_items))


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plug-in on sys.path; the registries forget it afterwards."""
    import importlib

    root = _distribution(tmp_path / "site", "rs-test-margin-plugin", ENTRY_POINTS, {PLUGIN_MODULE: PLUGIN_SOURCE})
    saved = [(reg, {k: (v.copy() if isinstance(v, (dict, set)) else v) for k, v in vars(reg).items()})
             for reg in (SAMPLERS, MODELS)]
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for reg, state in saved:
        vars(reg).update(state)
    sys.modules.pop(PLUGIN_MODULE, None)


# --------------------------------------------------------------------------- in-tree metadata
def test_tables_derive_from_the_samplers_metadata():
    from recsampling.demo import methods
    from recsampling.suite import grid

    g = grid()
    assert set(g) >= set(MODELS)
    for model in MODELS:
        assert set(g[model]) == {n for n, cls in SAMPLERS.items() if cls.models is None or model in cls.models}
    rows = {label: (model, sampler, params) for label, model, sampler, params in methods()}
    assert {sampler for _, sampler, _ in rows.values()} == set(SAMPLERS)
    for model, sampler, params in rows.values():
        assert SAMPLERS[sampler].fits(model)
        make_sampler(sampler, **params)  # the demo's parameters are the sampler's own


def test_search_space_comes_from_the_classes():
    optuna = pytest.importorskip("optuna")
    from recsampling.tuning import search_space

    trial = optuna.trial.FixedTrial({"n_negatives": 2, "lr": 0.01, "l2": 1e-4, "factors": 16, "clip": 0.05,
                                     "eta": 0.4, "flip_l2": 0.1, "propensity_lr": 0.01, "top_k": 20, "hard_ratio": 0.5,
                                     "skip_top": 5, "sel_l2": 1e-4, "n_candidates": 10, "margin": 0.5})
    for name in SAMPLERS:
        params = search_space(trial, "mf", name)["sampler_params"]
        make_sampler(name, **params)  # every drawn knob is a constructor parameter
    # the naive pointwise loss has no propensities: Rel-MF's knobs are not drawn for it
    assert set(search_space(trial, "mf", "pointwise")["sampler_params"]) == {"n_negatives"}
    with pytest.raises(ValueError, match="unknown model 'svd'"):
        search_space(trial, "svd", "bpr")


# --------------------------------------------------------------------------- the registry
class _Thing:
    pass


def _registry(tmp_path, monkeypatch, entry_points: str, modules: dict[str, str]) -> Registry:
    import importlib

    root = _distribution(tmp_path / "things", "rs-test-things", entry_points, modules)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)
    return Registry("thing", "rs_test.things", _Thing, builtins="json")


_GOOD = f"""
from {__name__} import _Thing

class Good(_Thing):
    pass

class NotAThing:
    pass
"""


def test_registry_loads_a_plugin_only_when_it_is_looked_up(tmp_path, monkeypatch):
    reg = _registry(tmp_path, monkeypatch, "[rs_test.things]\ngood = rs_test_good:Good\n", {"rs_test_good": _GOOD})
    assert "good" in reg and list(reg) == ["good"]
    assert "rs_test_good" not in sys.modules  # names are known without importing the plug-in
    cls = reg["good"]
    assert cls.__name__ == "Good" and cls.name == "good" and "rs_test_good" in sys.modules
    assert reg.lookup("good") is cls and reg.classes() == {"good": cls}


def test_registry_names_a_broken_plugin(tmp_path, monkeypatch, caplog):
    reg = _registry(tmp_path, monkeypatch, """
        [rs_test.things]
        broken = rs_test_broken:Thing
        stranger = rs_test_good:NotAThing
        good = rs_test_good:Good
        """, {"rs_test_broken": "import no_such_module_here\n", "rs_test_good": _GOOD})
    with pytest.raises(ValueError, match=r"thing plug-in 'broken' \(entry point 'broken = rs_test_broken:Thing' in "
                                         r"group 'rs_test.things' of rs-test-things 0.1\) failed to load: "
                                         r"ModuleNotFoundError.*no_such_module_here"):
        reg.lookup("broken")
    assert "broken" in reg  # known, so a lookup says why it fails instead of 'unknown'
    with pytest.raises(ValueError, match="not a subclass of _Thing"):
        reg["stranger"]
    with caplog.at_level(logging.WARNING, logger="recsampling"):
        assert list(reg.classes()) == ["good"]
    assert "broken" in caplog.text and "stranger" in caplog.text
    with pytest.raises(ValueError, match=r"unknown thing 'nope'; choose one of \['broken', 'good', 'stranger'\].*"
                                         "rs_test.things"):
        reg.lookup("nope")
    with pytest.raises(KeyError):
        reg["nope"]


def test_registry_keeps_a_builtin_name_and_accepts_a_module_that_registers(tmp_path, monkeypatch, caplog):
    module = f"""
        from {__name__} import _Thing, REG

        @REG.register("decorated")
        class Decorated(_Thing):
            pass
        """
    reg = _registry(tmp_path, monkeypatch, """
        [rs_test.things]
        builtin = rs_test_good:Good
        decorated = rs_test_decorated
        """, {"rs_test_good": _GOOD, "rs_test_decorated": module})
    monkeypatch.setattr(sys.modules[__name__], "REG", reg, raising=False)

    @reg.register("builtin")
    class Builtin(_Thing):
        pass

    with caplog.at_level(logging.WARNING, logger="recsampling"):
        assert reg["builtin"] is Builtin
    assert "plug-in ignored" in caplog.text and "builtin = rs_test_good:Good" in caplog.text
    assert reg["decorated"].__name__ == "Decorated"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("builtin")(type("Other", (_Thing,), {}))


# --------------------------------------------------------------------------- an installed plug-in
def test_installed_plugin_joins_every_table_and_checkpoint(plugin, tmp_path):
    optuna = pytest.importorskip("optuna")
    from recsampling.demo import methods
    from recsampling.recommender import Recommender
    from recsampling.suite import grid, plan
    from recsampling.tuning import search_space

    assert "marginbpr" in SAMPLERS and "plainmf" in MODELS
    assert PLUGIN_MODULE not in sys.modules  # not imported until something needs the class
    g = grid()
    assert "marginbpr" in g["mf"] and "marginbpr" in g["twotower"] and "bpr" in g["plainmf"]
    assert {c.model for c in plan(["synthetic"], None, [0], ["marginbpr"])} == set(MODELS)
    space = search_space(optuna.trial.FixedTrial({"n_negatives": 2, "margin": 0.3, "lr": 0.01, "l2": 1e-4,
                                                  "factors": 16}), "plainmf", "marginbpr")
    assert space["sampler_params"] == {"n_negatives": 2, "margin": 0.3} and space["model_params"] == {"factors": 16}
    assert ("mf + marginbpr", "mf", "marginbpr", {"margin": 0.25}) in methods()

    train = _tiny()
    rec = Recommender(model="plainmf", sampler="marginbpr", sampler_params={"margin": 0.1}, epochs=2,
                      random_state=0, device="cpu").fit(train)
    back = Recommender.load(rec.save(tmp_path / "saved"))
    assert type(back.model_).__name__ == "PlainMF" and back.sampler_.margin == 0.1
    np.testing.assert_array_equal(back.recommend([0, 1], k=3)[0], rec.recommend([0, 1], k=3)[0])


def _run(args: list[str], env: dict, cwd: Path) -> dict:
    p = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_cli_trains_tunes_benches_and_loads_a_plugin_in_fresh_processes(tmp_path):
    site = _distribution(tmp_path / "site", "rs-test-margin-plugin", ENTRY_POINTS, {PLUGIN_MODULE: PLUGIN_SOURCE})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    rng = np.random.default_rng(0)
    u, i = np.nonzero(rng.random((60, 40)) < 0.25)
    data = tmp_path / "tiny.csv"
    data.write_text("user_id,item_id\n" + "".join(f"{a},{b}\n" for a, b in zip(u, i)))
    model_dir, bench_dir, empty = tmp_path / "model", tmp_path / "bench", tmp_path / "no-data"
    # one fresh process: train, tune, bench, as the command line does them (rc 0 each, JSON last)
    script = textwrap.dedent(f"""
        import json, sys
        from recsampling.cli import main
        runs = [["train", "--sampler", "marginbpr", "--model", "plainmf", "--dataset", {str(data)!r}, "--epochs", "1",
                 "--out", {str(model_dir)!r}, "--json", "--device", "cpu"],
                ["tune", "--quick", "--sampler", "marginbpr", "--trials", "1", "--epochs", "1", "--json",
                 "--storage", "sqlite:///{tmp_path / 'studies.db'}"],
                ["bench", "--quick", "--samplers", "marginbpr", "--out", {str(bench_dir)!r}, "--seeds", "1",
                 "--epochs", "1", "--data-dir", {str(empty)!r}, "--no-plots", "--quiet", "--json"]]
        for argv in runs:
            if main(argv) != 0:
                sys.exit(f"{{argv[0]}} failed")
        """)
    p = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    trained, tuned, bench = (json.loads(line) for line in p.stdout.splitlines() if line.startswith("{"))
    assert trained["sampler"] == "marginbpr" and trained["model"] == "plainmf"
    assert tuned["studies"][0]["complete"] == 1 and "margin" in tuned["studies"][0]["best params"]
    assert not bench["failed"] and set(bench["results"]["synthetic"]) == {f"{m} + marginbpr" for m in MODELS} | {
        "plainmf + marginbpr"}
    # a new process knows neither class until the saved model asks for them
    recs = _run(["-m", "recsampling.cli", "recommend", "--model-dir", str(model_dir), "--users", "0", "--top", "5",
                 "--json"], env, tmp_path)
    assert len(recs["recommendations"]["0"]) == 5
