"""cipherface backend on distance-comparison-preserving encryption (IronCore Alloy, AGPL-3.0-or-later).

DCPE (Fuchsbauer, Ghosal, Hauke, O'Neill: "Approximate distance-comparison-preserving symmetric
encryption", SCN 2022; IronCore's Cloaked AI) encrypts a whole vector with a secret key: a keyed
shuffle of its components, a scaling and noise bounded by the **approximation factor**, so that
distances between encrypted vectors approximate the plaintext's. The matcher then computes them
itself: capability ``distance-preserving`` (the command line refuses it without
``--matcher-sees-distances``). The key owner transforms each embedding as it prepares it
(``FHEBackend.encrypt_vector``); this backend's slots carry the transformed vectors as they are,
and its arithmetic is ordinary arithmetic on them, so 1:1 (with canaries) and the packed gallery
run the metrics' own computations.

This distribution is AGPL because its library is; the MIT core never imports it.
"""

from __future__ import annotations

from cipherface import hookimpl
from cipherface_dcpe.backend import DcpeBackend
from cipherface_dcpe.params import SCHEME, DcpeParams

__all__ = ["DcpeBackend", "DcpeParams"]


@hookimpl
def register_backends(register):
    register(DcpeBackend)


@hookimpl
def register_schemes(register):
    register(SCHEME)
