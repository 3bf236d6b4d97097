"""cipherface: privacy-preserving face recognition on CKKS-encrypted embeddings."""

from cipherface.backend import Ciphertext, FHEBackend
from cipherface.embedder import Embedder, Face
from cipherface.errors import CipherfaceError
from cipherface.hookspecs import hookimpl
from cipherface.params import PRESETS, CKKSParams, resolve_params
from cipherface.protocols.base import DistanceProtocol
from cipherface.roles import Decision, KeyOwner, Matcher

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CKKSParams",
    "CipherfaceError",
    "Ciphertext",
    "Decision",
    "DistanceProtocol",
    "Embedder",
    "FHEBackend",
    "Face",
    "KeyOwner",
    "Matcher",
    "hookimpl",
    "resolve_params",
]
