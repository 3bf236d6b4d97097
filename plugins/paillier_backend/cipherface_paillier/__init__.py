"""cipherface backend on Paillier's cryptosystem (python-paillier and gmpy2, GPL-3.0-or-later).

Partially homomorphic: ciphertexts add, and multiply by values in the clear, never by each other.
So the matcher computes ``Enc(reference row) · probe row`` with the **probe in the clear**, as the
reference design's PHE mode does (capability ``probe-in-clear``: the command line refuses it
without ``--matcher-sees-probe``). A vector of ``slots`` reals is one Paillier ciphertext per
slot; rotations permute them (no keys needed), so 1:1 sums a window as the FHE backends do, and the
packed gallery scores a block as one multiply-accumulate of its columns by the probe's values.

This distribution is GPL because its libraries are; the MIT core never imports it.
"""

from __future__ import annotations

from cipherface import hookimpl
from cipherface_paillier.backend import PaillierBackend
from cipherface_paillier.params import SCHEME, PaillierParams

__all__ = ["PaillierBackend", "PaillierParams"]


@hookimpl
def register_backends(register):
    register(PaillierBackend)


@hookimpl
def register_schemes(register):
    register(SCHEME)
