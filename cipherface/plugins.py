"""One plugin manager: entry points in group ``cipherface`` plus the built-in plugins,
registered the same way, and name lookup over what they register."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from cipherface import hookspecs
from cipherface.errors import DuplicatePluginError, UnknownPluginError

if TYPE_CHECKING:
    from cipherface.backend import FHEBackend
    from cipherface.embedder import Embedder
    from cipherface.protocols.base import DistanceProtocol

ENTRY_POINT_GROUP = "cipherface"
BUILTIN_PLUGINS = ("cipherface.protocols", "cipherface.embedders.deepface")
DEFAULT_BACKEND = "tenseal"
DEFAULT_EMBEDDER = "deepface"
BACKEND_ENV = "CIPHERFACE_BACKEND"
LOAD_PLUGINS_ENV = "CIPHERFACE_LOAD_PLUGINS"


@dataclass
class Registry:
    backends: dict[str, type[FHEBackend]] = field(default_factory=dict)
    embedders: dict[str, Callable[..., Embedder]] = field(default_factory=dict)
    protocols: dict[str, DistanceProtocol] = field(default_factory=dict)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The built-in plugins, then the installed ones (entry-point group ``cipherface``), or only
    those ``$CIPHERFACE_LOAD_PLUGINS`` names (comma-separated distribution names; empty: none)."""
    pm = pluggy.PluginManager("cipherface")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(import_module(name), name=name)
    wanted = os.environ.get(LOAD_PLUGINS_ENV)
    chosen = None if wanted is None else {n.strip().lower() for n in wanted.split(",") if n.strip()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else ep.name
        if chosen is not None and dist.lower() not in chosen:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        plugin = ep.load()
        pm.register(plugin, name=ep.name)
        _DISTRIBUTIONS[getattr(plugin, "__name__", ep.name)] = f"{dist} {ep.dist.version if ep.dist else '?'}"
    return pm


_DISTRIBUTIONS: dict[str, str] = {}


@lru_cache(maxsize=1)
def registry() -> Registry:
    reg = Registry()

    def adder(kind: str, table: dict[str, Any]):
        def register(obj: Any) -> None:
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise DuplicatePluginError(f"a plugin registered a {kind} without a name: {obj!r}")
            if name in table:
                raise DuplicatePluginError(
                    f"two plugins register a {kind} named {name!r}: {_origin(table[name])} and {_origin(obj)}; "
                    f"uninstall one, or choose with ${LOAD_PLUGINS_ENV}"
                )
            table[name] = obj

        return register

    hook = plugin_manager().hook
    hook.register_backends(register=adder("backend", reg.backends))
    hook.register_embedders(register=adder("embedder", reg.embedders))
    hook.register_protocols(register=adder("protocol", reg.protocols))
    from cipherface.params import add_scheme

    hook.register_schemes(register=add_scheme)
    return reg


def _origin(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return module.split(".")[0]


def register_commands(cli: Any) -> None:
    """Let every plugin add its commands to the command line."""
    plugin_manager().hook.register_commands(cli=cli)


class LazyModule:
    """A module imported on first attribute access, for backend plugins' native libraries.

    Registering a backend must not load its library: two plugins built on two copies of
    Microsoft SEAL (TenSEAL's and Pyfhel's) share SEAL's GNU-unique globals once both are in
    one process (the memory-manager profile, so one copy allocates through the other's pool).
    Loaded lazily, a process holds only the libraries of the backends it uses."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = import_module(self._name)
        return getattr(self._module, attr)


def _lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        installed = ", ".join(sorted(table)) or "none"
        raise UnknownPluginError(f"unknown {kind} {name!r}; installed {kind}s: {installed}") from None


def backend_name(name: str | None = None) -> str:
    """The backend to use: the argument, else $CIPHERFACE_BACKEND, else tenseal."""
    return name or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND


def get_backend(name: str | None = None) -> type[FHEBackend]:
    return _lookup("backend", registry().backends, backend_name(name))


def get_protocol(name: str) -> DistanceProtocol:
    return _lookup("protocol", registry().protocols, name)


def get_embedder(name: str = "deepface", **options: Any) -> Embedder:
    return _lookup("embedder", registry().embedders, name)(**options)


def embedder_for(model: str | None = None, detector: str | None = None) -> Embedder:
    """The embedder for a model name as users give it (``--model``): an embedder plugin's own name
    (e.g. ``facenet512-casia``), or else one of DeepFace's models (default Dlib)."""
    options = {} if detector is None else {"detector": detector}
    if model in registry().embedders:
        return get_embedder(model, **options)
    return get_embedder(DEFAULT_EMBEDDER, **({"model": model} if model else {}), **options)


def distributions() -> dict[str, str]:
    """Plugin module name -> 'distribution version' for what entry points loaded."""
    plugin_manager()
    return dict(_DISTRIBUTIONS)
