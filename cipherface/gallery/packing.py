"""Column-major packing: slot j of component ciphertext i of a block holds component i of identity j.

One probe is d replicated ciphertexts (component i in every slot), so a block of
``slot_count`` identities is scored with d ciphertext products, one relinearisation
and one rescale, and no rotation.  These functions run on the key owner's side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cipherface import envelope
from cipherface.backend import FHEBackend
from cipherface.errors import DimensionError
from cipherface.protocols.base import DistanceProtocol

#: Gallery and probe ciphertexts are stored with exactly the one level the scan consumes.
STORAGE_DEPTH = 1


def encrypt_columns(
    backend: FHEBackend,
    protocol: DistanceProtocol,
    embeddings: Sequence[np.ndarray],
    slots: Sequence[tuple[int, int]],
) -> dict[int, list[bytes]]:
    """Encrypt identities into the component ciphertexts of the blocks their slots are in.

    Returns, per block, one blob per component holding these identities at their slots and
    zero elsewhere; the matcher adds them to what the block already holds."""
    if len(embeddings) != len(slots):
        raise DimensionError(f"{len(embeddings)} embeddings for {len(slots)} slots")
    for e in embeddings:
        protocol.check_input(protocol.prepare(e), backend.params.result_limit)
    rows = np.array([protocol.gallery_row(e) for e in embeddings])
    by_block: dict[int, list[int]] = {}
    for k, (block, _) in enumerate(slots):
        by_block.setdefault(block, []).append(k)
    out = {}
    for block, members in by_block.items():
        columns = np.zeros((rows.shape[1], backend.slot_count))
        columns[:, [slots[k][1] for k in members]] = rows[members].T
        out[block] = encrypt_block(backend, columns, block)
    return out


def encrypt_probe(backend: FHEBackend, protocol: DistanceProtocol, embedding: np.ndarray) -> tuple[list[bytes], float]:
    """The probe as replicated component ciphertexts, and the offset the key owner adds to scores."""
    protocol.check_input(protocol.prepare(embedding), backend.params.result_limit)
    row, offset = protocol.probe_row(embedding)
    return [_dump_stored(backend, np.full(backend.slot_count, v), component=i) for i, v in enumerate(row)], offset


def decrypt_scores(backend: FHEBackend, blob: bytes) -> tuple[int, np.ndarray]:
    """The block number and the slot_count scores of one result blob of a scan."""
    ct, meta = backend.load_ciphertext(blob, kind=envelope.RESULT)
    return int(meta["block"]), backend.decrypt(ct)


def decrypt_block(backend: FHEBackend, blobs: Sequence[bytes]) -> np.ndarray:
    """A stored block in the clear, (components x slots): for the key owner only (slot zeroing)."""
    return np.array([backend.decrypt(backend.load_ciphertext(b, kind=envelope.GALLERY_BLOCK)[0]) for b in blobs])


def encrypt_block(backend: FHEBackend, columns: np.ndarray, block: int) -> list[bytes]:
    """One stored ciphertext per row of ``columns`` (components x slots) for a block."""
    return [_dump_stored(backend, col, block=block, component=i) for i, col in enumerate(columns)]


def _dump_stored(backend: FHEBackend, values: np.ndarray, **meta: int) -> bytes:
    ct = backend.encrypt(values, depth=STORAGE_DEPTH)
    return backend.dump_ciphertext(ct, kind=envelope.GALLERY_BLOCK, meta=meta)
