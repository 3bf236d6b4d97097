"""Column-major packing: slot j of component ciphertext i of a block holds component i of identity j.

A block of ``slot_count`` identities is scored with d ciphertext products against d replicated
probe ciphertexts (component i in every slot), one relinearisation, one rescale (none for a block
at the last prime, ``layout.py``) and no rotation. The key owner uploads the probe as one
packed ciphertext that the matcher expands into those d (``packed-probe`` backends whose key set
holds the expansion's Galois keys: about 115 KB instead of d x 115 KB), or else as the d
ciphertexts themselves. These functions run on the key owner's side.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from cipherface import envelope
from cipherface.backend import FHEBackend
from cipherface.errors import IntegrityError
from cipherface.gallery import layout as layouts
from cipherface.protocols.base import DistanceProtocol

#: Probe ciphertexts are sent with the one level the scan consumes (the matcher brings them down to
#: the last prime for blocks stored there).
STORAGE_DEPTH = 1


def encrypt_probe(
    backend: FHEBackend,
    protocol: DistanceProtocol,
    embedding: np.ndarray,
    *,
    packed: bool | None = None,
    limit: float | None = None,
) -> tuple[list[bytes], np.ndarray, float]:
    """The probe (one packed ciphertext where the backend and key set can and ``packed`` is not
    False, else one replicated ciphertext per component), and what the key owner keeps in the
    clear: the probe row (to check canaries) and the offset it adds to scores. ``limit``: the
    largest score the gallery's layout holds (default: the parameter set's)."""
    protocol.check(embedding, backend.params.result_limit if limit is None else limit, probe=True)
    row, offset = protocol.probe_row(embedding)
    if packed is not False and backend.can_expand(len(row)):
        blobs = [backend.encrypt_packed_blob(row, depth=STORAGE_DEPTH)]
    else:  # in the clear on a probe-in-clear backend (the matcher multiplies the gallery by it)
        blobs = [
            backend.encrypt_blob(
                np.full(backend.slot_count, v),
                depth=STORAGE_DEPTH,
                kind=envelope.GALLERY_BLOCK,
                meta={"component": i},
                probe=True,
            )
            for i, v in enumerate(row)
        ]
    return blobs, np.asarray(row, dtype=np.float64), offset


def decrypt_scores(backend: FHEBackend, blob: bytes) -> tuple[int, np.ndarray]:
    """The block number and the slot_count scores of one result blob of a scan."""
    ct, meta = backend.load_ciphertext(blob, kind=envelope.RESULT)
    block = meta.get("block") if isinstance(meta, dict) else None
    if type(block) is not int:
        raise IntegrityError(f"a scan result names no block (got {str(block)[:40]!r}): refused")
    return block, backend.decrypt(ct)


def decrypt_block(backend: FHEBackend, blobs: Sequence[bytes]) -> np.ndarray:
    """A stored block in the clear, (components x slots): for the key owner only (slot zeroing)."""
    return np.array([backend.decrypt(backend.load_ciphertext(b, kind=envelope.GALLERY_BLOCK)[0]) for b in blobs])


def encrypt_block(backend: FHEBackend, columns: np.ndarray, block: int, layout: int) -> list[bytes]:
    """One stored ciphertext per row of ``columns`` (components x slots) for a block, in ``layout``."""
    return _encrypt_share(backend, columns, block, 0, layout)


class EncryptionPool:
    """The key owner's block encryption on every core (the bindings hold the GIL): worker processes
    of this machine, each holding the secret bundle, encrypt a share of a block's components.
    Used for enrolments of more than one block; the bundle never leaves the key owner's machine."""

    def __init__(self, backend: FHEBackend, workers: int) -> None:
        self.workers = workers
        context = mp.get_context("spawn")
        # the bundle goes through a queue, not the workers' arguments: those are written to each new
        # process before it has started Python, which held the caller up for 0.3 s per worker
        self._keys = context.Queue()
        self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_load_key, initargs=(self._keys,))
        bundle = backend.export_secret_bundle()
        for _ in range(workers):
            self._keys.put(bundle)

    def submit(self, columns: np.ndarray, block: int, layout: int) -> Callable[[], list[bytes]]:
        """Start encrypting a block (``encrypt_block``): call the result to wait for its ciphertexts.
        Blocks submitted one after the other are encrypted in that order."""
        shares = [idx for idx in np.array_split(np.arange(len(columns)), self.workers) if len(idx)]
        futures = [self._pool.submit(_encrypt_in_worker, columns[idx], block, int(idx[0]), layout) for idx in shares]
        return lambda: [blob for f in futures for blob in f.result()]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._keys.cancel_join_thread()  # bundles no worker took (none was started) are dropped
        self._keys.close()


_WORKER_BACKEND: list[FHEBackend] = []


def _load_key(keys: Any) -> None:
    import signal

    from cipherface.backend import open_bundle

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool
    _WORKER_BACKEND[:] = [open_bundle(keys.get(), envelope.SECRET_BUNDLE)]


def _encrypt_in_worker(columns: np.ndarray, block: int, first: int, layout: int) -> list[bytes]:
    return _encrypt_share(_WORKER_BACKEND[0], columns, block, first, layout)


def _encrypt_share(backend: FHEBackend, columns: np.ndarray, block: int, first: int, layout: int) -> list[bytes]:
    # seeded where the backend can: the random half of each stored ciphertext is a 64-byte seed
    return [
        layouts.encrypt_column(backend, layout, col, block=block, component=first + i) for i, col in enumerate(columns)
    ]
