"""Capabilities: what a backend can compute, declared by the backend and required by protocols.

A protocol (or the packed gallery) states the capabilities it needs; asking a backend for one
it cannot run is a ``MissingCapabilityError`` naming what is missing, before anything is
encrypted. The conformance suite tests each capability a backend declares and skips, saying
which, the ones it does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from cipherface.errors import DisclosureError, MissingCapabilityError

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

#: A probe packed in one ciphertext's coefficients (``FHEBackend.encrypt_packed_blob``) that the
#: matcher expands into one ciphertext per component holding it in every slot (``FHEBackend.expand``:
#: Galois automorphisms by the key set's expansion steps, additions, monomial products): the packed
#: gallery's query uploads one ciphertext instead of one per component. A backend without it, or a
#: key set without the expansion's Galois keys, uploads the components.
PACKED_PROBE = "packed-probe"

#: Products at the first prime alone, without a rescale (``FHEBackend.encrypt_last_prime_blob``,
#: ``FHEBackend.to_last_prime``; ``inner_product`` of such operands keeps the product of their
#: scales): the packed gallery's last-prime layout stores blocks at one prime, half the bytes and
#: half the scan's work of a product that is rescaled. A backend without it stores blocks at two.
LAST_PRIME = "last-prime"

#: Products of an encrypted vector with one in the clear only (partially homomorphic, e.g. Paillier):
#: the probe goes to the matcher in the clear and every protocol computes
#: Enc(reference row) · clear probe row. A disclosure: the CLI asks for ``--matcher-sees-probe``.
PROBE_IN_CLEAR = "probe-in-clear"

#: Distance-comparison-preserving encryption (e.g. IronCore's DCPE): the key owner's secret transform
#: of each whole embedding (``FHEBackend.encrypt_vector``) gives a vector whose distances to other such
#: vectors approximate the plaintext's; the backend's slots carry these vectors as they are, and every
#: protocol runs its metric on them. A disclosure: the matcher reads them and can rank and decide
#: without the key owner; the CLI asks for ``--matcher-sees-distances``.
DISTANCE_PRESERVING = "distance-preserving"

ALL = (
    CT_MULTIPLY,
    ROTATION,
    APPROXIMATE,
    EXACT,
    LEVELS,
    NATIVE_INNER_PRODUCT,
    SEEDED_ENCRYPTION,
    PACKED_PROBE,
    LAST_PRIME,
    PROBE_IN_CLEAR,
    DISTANCE_PRESERVING,
)

#: Capabilities that give the matcher something beyond ciphertexts, what it then sees, and the
#: command-line flag by which a user accepts it.
DISCLOSURES: dict[str, tuple[str, str]] = {
    PROBE_IN_CLEAR: ("the matcher sees every probe embedding in the clear", "--matcher-sees-probe"),
    DISTANCE_PRESERVING: (
        "the matcher computes approximate distances between all encrypted embeddings itself, and can rank "
        "and decide without the key owner",
        "--matcher-sees-distances",
    ),
}

#: The disclosures a caller accepted; None: not enforced (the Python API, where naming the
#: backend is the choice). The command line enforces it (``enforce_disclosures``).
_accepted: set[str] | None = None


def enforce_disclosures(accepted: Iterable[str] | None) -> None:
    """From now on, refuse key owners on backends whose disclosures are not all in ``accepted``
    (None: stop enforcing)."""
    global _accepted
    _accepted = None if accepted is None else set(accepted)


def check_disclosures(backend: object) -> None:
    """Refuse a backend that discloses something the caller did not accept (when enforced)."""
    if _accepted is None:
        return
    missing = sorted(set(getattr(backend, "capabilities", ())) & set(DISCLOSURES) - _accepted)
    if missing:
        what = "; ".join(f"{DISCLOSURES[c][0]} (accept with {DISCLOSURES[c][1]})" for c in missing)
        raise DisclosureError(
            f"backend {getattr(backend, 'name', backend)!r} is not fully encrypted: {what}. "
            "docs/schemes.md compares what each scheme lets the matcher learn"
        )


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
    if PROBE_IN_CLEAR in getattr(backend, "capabilities", ()):
        protocol = protocol.probe_in_clear()
    if DISTANCE_PRESERVING in getattr(backend, "capabilities", ()):
        protocol = protocol.distance_preserving(backend)
    if gallery:
        require(backend, protocol.gallery_requires, f"the packed gallery for {metric!r}")
    else:
        require(backend, protocol.requires, f"the {metric!r} protocol")
    return protocol
