"""The hooks a cipherface plugin implements (pluggy project ``cipherface``)."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("cipherface")
hookimpl = HookimplMarker("cipherface")


@hookspec
def register_backends(register):
    """Register FHEBackend subclasses: ``register(BackendClass)``."""


@hookspec
def register_embedders(register):
    """Register embedders: ``register(name, factory)``, factory(**options) -> Embedder."""


@hookspec
def register_protocols(register):
    """Register DistanceProtocol instances: ``register(protocol)``."""
