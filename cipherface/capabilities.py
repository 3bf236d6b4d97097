"""Capabilities: what a backend can compute, declared by the backend and required by protocols.

A protocol (or the packed gallery) states the capabilities it needs; asking a backend for one
it cannot run is a ``MissingCapabilityError`` naming what is missing, before anything is
encrypted. The conformance suite tests each capability a backend declares and skips, saying
which, the ones it does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from cipherface.errors import MissingCapabilityError

#: Ciphertext-ciphertext multiplication (with relinearisation).
CT_MULTIPLY = "ct-multiply"
#: Slot rotations by the steps whose Galois keys the bundle carries.
ROTATION = "rotation"
#: Approximate arithmetic on reals (CKKS): results within a tolerance.
APPROXIMATE = "approximate"
#: Exact arithmetic on integers modulo a plaintext modulus (BFV/BGV).
EXACT = "exact"
#: A modulus chain: rescale and drop levels, ciphertexts stored at the lowest level they need.
LEVELS = "levels"
#: A native, fused multiply-accumulate over many ciphertext pairs (the gallery's kernel).
NATIVE_INNER_PRODUCT = "native-inner-product"
#: Secret-key encryption serialised with a seed for the random half (half the bytes).
SEEDED_ENCRYPTION = "seeded-encryption"

ALL = (CT_MULTIPLY, ROTATION, APPROXIMATE, EXACT, LEVELS, NATIVE_INNER_PRODUCT, SEEDED_ENCRYPTION)


def require(backend: object, needed: Iterable[str], what: str) -> None:
    """Refuse to run ``what`` on a backend that lacks a capability it needs."""
    have = getattr(backend, "capabilities", frozenset())
    missing = sorted(set(needed) - set(have))
    if missing:
        raise MissingCapabilityError(
            f"{what} needs {', '.join(missing)}, which backend {getattr(backend, 'name', backend)!r} does not "
            f"provide (it has: {', '.join(sorted(have)) or 'none'})"
        )


def protocol_for(backend: object, metric: str, *, gallery: bool = False):
    """The protocol named ``metric`` in the arithmetic ``backend`` computes (reals, or quantised
    integers on an exact backend), refused if the backend cannot run it (1:1, or the packed gallery)."""
    from cipherface.plugins import get_protocol

    protocol = get_protocol(metric)
    if EXACT in getattr(backend, "capabilities", ()):
        protocol = protocol.quantised()
    if gallery:
        require(backend, protocol.gallery_requires, f"the packed gallery for {metric!r}")
    else:
        require(backend, protocol.requires, f"the {metric!r} protocol")
    return protocol
