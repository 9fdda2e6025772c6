"""Samplers: one interface for every way of treating the unobserved items.

Import this package (or any module in it) and every built-in sampler is registered in
:data:`SAMPLERS`; build one with :func:`make_sampler`. A new sampler is one new file with an
``@register("name")`` class plus its module name in ``_BUILTIN`` below.
"""

from __future__ import annotations

import importlib
import importlib.util

from recsampling.samplers.base import SAMPLERS, Batch, Sampler, make_sampler, register, to_tensors

__all__ = ["SAMPLERS", "Batch", "Sampler", "make_sampler", "register", "to_tensors", "sampler_params"]

#: modules whose import registers built-in samplers (a module not yet present is skipped)
_BUILTIN = ("negatives", "inbatch", "nbpo", "mnar", "dla")

for _name in _BUILTIN:
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
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
