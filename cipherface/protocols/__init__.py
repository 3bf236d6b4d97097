"""Distance protocols, written once against FHEBackend; a built-in plugin."""

from cipherface.hookspecs import hookimpl
from cipherface.protocols.base import DistanceProtocol
from cipherface.protocols.cosine import Cosine
from cipherface.protocols.euclidean import Euclidean

__all__ = ["Cosine", "DistanceProtocol", "Euclidean"]


@hookimpl
def register_protocols(register):
    register(Euclidean())
    register(Cosine())
