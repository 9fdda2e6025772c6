"""Samplers: one interface for every way of treating the unobserved items.

Every sampler is in :data:`SAMPLERS`: the built-ins (each module of this package registers its
classes with ``@register("name")``) and the plug-ins that installed packages declare under the
entry point group ``recsampling.samplers`` (loaded on first lookup). Build one with
:func:`make_sampler`. A new built-in sampler is one new file in this package; a sampler of your
own project is one class plus an entry point (:mod:`recsampling._registry`).
"""

from __future__ import annotations

import importlib
import pkgutil

from recsampling.samplers.base import SAMPLERS, Batch, Sampler, make_sampler, register, samplers_for

__all__ = ["SAMPLERS", "Batch", "Sampler", "make_sampler", "register", "samplers_for", "sampler_params"]

#: the order of the built-ins in the registry, and so in the grid and the demo table (baselines
#: first); any other module of the package is imported after these, alphabetically
_ORDER = ("negatives", "inbatch", "nbpo", "mnar", "dla")

_modules = sorted((m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "base"),
                  key=lambda name: (_ORDER.index(name) if name in _ORDER else len(_ORDER), name))
for _name in _modules:
    importlib.import_module(f"{__name__}.{_name}")


def sampler_params(sampler: Sampler) -> dict:
    """A sampler's constructor parameters (sklearn-style: read back from its attributes)."""
    import inspect

    sig = inspect.signature(type(sampler).__init__)
    out = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if hasattr(sampler, name):
            out[name] = getattr(sampler, name)
    return out
