"""A gallery's layout: at which level and scale the key owner stores its blocks.

- Layout 1, **two primes**: every block ciphertext has one level left, at the parameter set's
  scale; the scan multiplies it by the probe's components, relinearises and rescales the sum to
  the first prime.
- Layout 2, **last prime** (backends with the ``last-prime`` capability whose first prime is
  large enough, ``CKKSParams.last_prime_scale_bits``): blocks at the first prime alone, at a
  smaller scale (2^26 at n8192-s128); the matcher brings each probe component there
  (``FHEBackend.to_last_prime``, a public operation: 2^28) and the sum is relinearised, not
  rescaled. Half the scan's multiplications, 57 % of the bytes stored and read; results are
  limited to ``CKKSParams.last_prime_result_limit`` (±16 at n8192-s128), which the key owner
  checks every embedding against.

Each block records its own level (in every ciphertext's envelope, covered by the key owner's
seal), and the scan brings the probe to each block's level, so a gallery whose blocks are of both
layouts (one being migrated) scans correctly. The key owner's directory records which layout it
writes (``Directory.layout``; galleries made before layouts existed are layout 1), and
``cipherface gallery migrate`` rewrites the blocks of layout 1 as layout 2.
"""

from __future__ import annotations

import numpy as np

from cipherface import envelope
from cipherface.backend import FHEBackend

TWO_PRIMES = 1
LAST_PRIME = 2
NAMES = {TWO_PRIMES: "two primes", LAST_PRIME: "the last prime"}
#: The level (products left) of a block ciphertext of each layout.
DEPTH = {TWO_PRIMES: 1, LAST_PRIME: 0}


def best(backend: FHEBackend) -> int:
    """The layout a new gallery gets: last prime where the backend and its parameter set allow it."""
    return LAST_PRIME if backend.last_prime_scales is not None else TWO_PRIMES


def checked(layout: int, backend: FHEBackend) -> int:
    """``layout`` if this backend can write it, else a ``GalleryError`` saying why."""
    from cipherface.errors import GalleryError

    if layout not in NAMES:
        raise GalleryError(f"unknown gallery layout {layout!r} (this cipherface knows {sorted(NAMES)})")
    if layout == LAST_PRIME and backend.last_prime_scales is None:
        raise GalleryError(
            f"backend {backend.name!r} with preset {backend.params.to_dict()} cannot store blocks at the last prime"
        )
    return layout


def result_limit(layout: int, backend: FHEBackend) -> float:
    """The largest magnitude a score may reach in this layout (every embedding is checked against it)."""
    if layout == LAST_PRIME:
        return backend.params.last_prime_result_limit
    return backend.params.result_limit


def stored_values(layout: int, backend: FHEBackend, columns: np.ndarray) -> np.ndarray:
    """A block's identity values as this layout stores them: at the last prime, rounded to
    ``CKKSParams.last_prime_grid`` (2^-14 at n8192-s128), so that each rewrite (the key owner
    decrypts the block and encrypts it again) gives back exactly what it stored instead of adding
    its encryption noise to the last one's (thousands of single enrolments into one block would
    otherwise move its first identity by ~2e-4); unchanged at two primes (noise ~1e-10)."""
    if layout != LAST_PRIME:
        return columns
    grid = backend.params.last_prime_grid
    return np.round(columns / grid) * grid


def encrypt_column(backend: FHEBackend, layout: int, values: np.ndarray, **meta: int) -> bytes:
    """One stored block ciphertext (seeded where the backend can)."""
    if layout == LAST_PRIME:
        return backend.encrypt_last_prime_blob(values, kind=envelope.GALLERY_BLOCK, meta=meta)
    return backend.encrypt_blob(values, depth=DEPTH[TWO_PRIMES], kind=envelope.GALLERY_BLOCK, meta=meta)


def possible(backend: FHEBackend) -> list[int]:
    """The layouts this backend and parameter set can store."""
    return [TWO_PRIMES, LAST_PRIME] if best(backend) == LAST_PRIME else [TWO_PRIMES]


def of_block(backend: FHEBackend, blobs: list[bytes]) -> int:
    """The layout a stored block was written in (its ciphertexts' level)."""
    depth = backend.depth_left(backend.load_ciphertext(blobs[0], kind=envelope.GALLERY_BLOCK)[0])
    return LAST_PRIME if depth == DEPTH[LAST_PRIME] else TWO_PRIMES
