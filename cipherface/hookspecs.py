"""The hooks a cipherface plugin implements (pluggy project ``cipherface``).

Every ``register_*`` hook is called with one ``register(obj)`` function, the same for every
kind: ``obj`` is anything with a ``name`` (a backend class, an embedder class or factory, a
protocol instance). Two plugins registering the same name of the same kind is an error.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("cipherface")
hookimpl = HookimplMarker("cipherface")


@hookspec
def register_backends(register):
    """Register FHEBackend subclasses: ``register(BackendClass)``."""


@hookspec
def register_embedders(register):
    """Register embedders: ``register(EmbedderClass)``; ``EmbedderClass(**options)`` makes one."""


@hookspec
def register_protocols(register):
    """Register DistanceProtocol instances: ``register(protocol)``."""


@hookspec
def register_schemes(register):
    """Register schemes beyond CKKS and BFV: ``register(cipherface.params.Scheme(...))``."""


@hookspec
def register_commands(cli):
    """Add commands to the ``cipherface`` command line: ``cli`` is its click group."""
