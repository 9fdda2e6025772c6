"""Registries of named components: the built-ins plus out-of-tree plug-ins found through entry points.

:data:`recsampling.samplers.SAMPLERS` and :data:`recsampling.models.MODELS` are both a
:class:`Registry`. A component registers itself with a decorator in its own file; an installed
package declares its components under an entry point group, as pytest and Optuna plug-ins do::

    # the plug-in's pyproject.toml
    [project.entry-points."recsampling.samplers"]
    marginbpr = "my_package.samplers:MarginBPR"

The value names a class (registered under the entry point's name) or a module whose import
registers a class of that name with the decorator. Entry points are discovered on the first
lookup (and again when a name is not found) and each is imported only when its name is first
looked up, or when every class is asked for (:meth:`Registry.classes`). A plug-in that fails to
import is named in the error of a lookup of its name and skipped, with a logged warning, by
:meth:`Registry.classes`.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import EntryPoint, entry_points
from collections.abc import Callable, Iterator, Mapping

__all__ = ["Registry"]

logger = logging.getLogger("recsampling")


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" of {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point '{ep.name} = {ep.value}' in group {ep.group!r}{where}"


class Registry(Mapping):
    """Name -> class of one kind of component (read-only mapping; register with :meth:`register`).

    Parameters
    ----------
    kind : str
        What the classes are, for messages (``"sampler"``).
    group : str
        The entry point group of plug-ins (``"recsampling.samplers"``).
    base : type
        Every registered class must subclass it.
    builtins : str
        A module whose import registers the built-in classes (imported on the first lookup).

    Notes
    -----
    ``name in registry`` and iteration (the names) import no plug-in; indexing imports the
    one looked up. Indexing an unknown name raises ``KeyError``, a plug-in that fails to load
    ``ValueError`` (so ``get`` does not hide it); :meth:`lookup` raises ``ValueError`` for both.
    Iteration yields the registered classes in registration order (the built-ins first), then the
    plug-ins not imported yet, then the broken ones.
    """

    def __init__(self, kind: str, group: str, base: type, builtins: str):
        self.kind = kind
        self.group = group
        self.base = base
        self.builtins = builtins
        self._classes: dict[str, type] = {}
        self._pending: dict[str, EntryPoint] = {}
        self._failed: dict[str, str] = {}
        self._origin: dict[str, str] = {}  # name -> value of the entry point it was loaded from
        self._ignored: set[tuple[str, str]] = set()  # (name, value) of plug-ins already warned about
        self._warned: set[str] = set()  # broken plug-ins already logged by classes()
        self._scanned = False

    # -- registration ----------------------------------------------------------------------
    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make ``cls`` available as ``name`` (sets ``cls.name``)."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")

        def deco(cls: type) -> type:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise ValueError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}, got {cls!r}")
            old = self._classes.get(name)
            if old is not None and old is not cls:
                raise ValueError(f"{self.kind} name {name!r} is already registered to "
                                 f"{old.__module__}.{old.__qualname__}")
            cls.name = name
            self._classes[name] = cls
            self._pending.pop(name, None)
            return cls

        return deco

    # -- discovery -------------------------------------------------------------------------
    def _scan(self) -> None:
        """Import the built-ins (once) and record the entry points of names not yet known."""
        if not self._scanned:
            self._scanned = True
            importlib.import_module(self.builtins)
        for ep in entry_points(group=self.group):
            if ep.name in self._classes or ep.name in self._failed:
                cls = self._classes.get(ep.name)
                key = (ep.name, ep.value)
                if cls is not None and self._origin.get(ep.name) != ep.value and key not in self._ignored:
                    self._ignored.add(key)  # warn once per process
                    logger.warning("%s plug-in ignored: %s uses the name of %s.%s", self.kind, _describe(ep),
                                   cls.__module__, cls.__qualname__)
                continue
            first = self._pending.setdefault(ep.name, ep)
            if first is not ep and first.value != ep.value and (ep.name, ep.value) not in self._ignored:
                self._ignored.add((ep.name, ep.value))
                logger.warning("%s plug-in ignored: %s uses the name of %s", self.kind, _describe(ep),
                               _describe(first))

    def _ensure(self) -> None:
        if not self._scanned:
            self._scan()

    def _load(self, name: str) -> type:
        """The class of ``name``, importing its plug-in if needed (ValueError naming a broken one)."""
        if name in self._classes:
            return self._classes[name]
        if name in self._failed:
            raise ValueError(self._failed[name])
        ep = self._pending[name]
        self._origin[name] = ep.value
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - any error inside the plug-in is reported with its name
            return self._fail(ep, f"failed to load: {type(e).__name__}: {e}")
        if name in self._classes:  # the import registered it with the decorator
            return self._classes[name]
        if not isinstance(obj, type):
            return self._fail(ep, f"loads {type(obj).__name__} {getattr(obj, '__name__', obj)!r}, which registered "
                                  f"no {self.kind} named {name!r} (name a {self.base.__name__} subclass, or a module "
                                  "that registers one under this name)")
        if not issubclass(obj, self.base):
            return self._fail(ep, f"loads {obj.__qualname__}, which is not a subclass of {self.base.__name__}")
        registered = [n for n, c in self._classes.items() if c is obj]
        if registered:
            return self._fail(ep, f"loads {obj.__qualname__}, which is registered as {registered[0]!r}: the entry "
                                  "point's name and the registered name must agree")
        try:
            return self.register(name)(obj)
        except ValueError as e:
            return self._fail(ep, str(e))

    def _fail(self, ep: EntryPoint, why: str) -> type:
        self._pending.pop(ep.name, None)
        self._failed[ep.name] = f"{self.kind} plug-in {ep.name!r} ({_describe(ep)}) {why}"
        raise ValueError(self._failed[ep.name])

    # -- lookup ----------------------------------------------------------------------------
    def _known(self, name) -> bool:
        return name in self._classes or name in self._pending or name in self._failed

    def __contains__(self, name) -> bool:
        self._ensure()
        if not self._known(name) and isinstance(name, str):
            self._scan()  # a plug-in installed since the last look
        return self._known(name)

    def __getitem__(self, name: str) -> type:
        if name not in self:
            raise KeyError(self._unknown(name))
        return self._load(name)

    def lookup(self, name: str) -> type:
        """The class registered as ``name``.

        Raises
        ------
        ValueError
            naming the registered names when ``name`` is unknown, or the plug-in that failed to load.
        """
        if name not in self:
            raise ValueError(self._unknown(name))
        return self._load(name)

    def _unknown(self, name) -> str:
        return (f"unknown {self.kind} {name!r}; choose one of {sorted(self)} (or install a package that declares "
                f"one under the entry point group {self.group!r})")

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        return iter([*self._classes, *(n for n in self._pending if n not in self._classes), *self._failed])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def classes(self) -> dict[str, type]:
        """Every class that loads, by name (plug-ins imported; a broken one is logged and left out)."""
        out = {}
        for name in list(self):
            try:
                out[name] = self._load(name)
            except ValueError as e:
                if name not in self._warned:
                    self._warned.add(name)
                    logger.warning("%s", e)
        return out

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, names={list(self)})"
