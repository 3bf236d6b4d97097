"""The matcher's scan: reading blocks from the store and scoring them, in this process, on every
core (``LocalScan``: one long-lived process per share of the blocks) or on a Dask cluster
(``cipherface.gallery.dask_scan.DaskScan``), all behind one ``Scanner`` interface.

Neither TenSEAL's nor Pyfhel's bindings release the GIL (measured: two threads
scan no faster than one), so the scan runs in processes.  Each worker opens the
gallery's store itself, keeps its share of the blocks (block number modulo the
number of workers) deserialised in memory, and rereads the blocks a later commit
changed.  Only probe and result blobs cross the process boundary.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Sequence
from typing import Protocol

from cipherface import envelope
from cipherface.backend import Ciphertext, FHEBackend, open_bundle
from cipherface.errors import GalleryError, StaleScanError
from cipherface.gallery.store import GalleryStore


class BlockCache:
    """A share of the store's blocks, deserialised in memory. When a commit changed the gallery (its
    generation), only the blocks whose seal changed are read again: an enrolment that rewrites one
    block of a large gallery costs one block's deserialisation, not the gallery's."""

    def __init__(self, store: GalleryStore, backend: FHEBackend) -> None:
        self.store = store
        self.backend = backend
        self._blocks: dict[int, tuple[str | None, list[Ciphertext]]] = {}  # block -> (seal, ciphertexts)
        self._key: tuple[int, tuple[int, int]] | None = None  # (generation, part) they were loaded for

    def load(self, part: tuple[int, int] = (0, 1)) -> tuple[int, dict[int, list[Ciphertext]]]:
        """The committed generation and the blocks numbered ``part[0]`` modulo ``part[1]``."""
        with self.store.snapshot():
            generation = self.store.generation()
            if self._key != (generation, part):
                seals = self.store.seals()
                fresh = {}
                for b in self.store.block_ids():
                    if b % part[1] != part[0]:
                        continue
                    cached = self._blocks.get(b)
                    if cached is None or cached[0] is None or cached[0] != seals.get(b):
                        blobs = self.store.read_block(b)
                        cts = [self.backend.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in blobs]
                        cached = (seals.get(b), cts)
                    fresh[b] = cached
                self._blocks = fresh
                self._key = (generation, part)
        return generation, {b: cts for b, (_, cts) in self._blocks.items()}


def scan_blocks(backend: FHEBackend, blocks: dict[int, list[Ciphertext]], probe: Sequence[bytes]) -> list[bytes]:
    """One encrypted score ciphertext per block (a result blob only the key owner can read)."""
    cts = [backend.load_ciphertext(p, kind=envelope.GALLERY_BLOCK)[0] for p in probe]
    return [
        backend.dump_ciphertext(backend.inner_product(components, cts), kind=envelope.RESULT, meta={"block": block})
        for block, components in sorted(blocks.items())
    ]


def merge_parts(parts: Sequence[tuple[int, list[bytes]]]) -> tuple[int, list[bytes]]:
    """The shares' scores as one scan, refused if the shares saw different commits (the caller
    scans again)."""
    generations = {generation for generation, _ in parts}
    if len(generations) != 1:
        raise StaleScanError(f"scan workers saw different commits {sorted(generations)}")
    return generations.pop(), [blob for _, blobs in parts for blob in blobs]


class Scanner(Protocol):
    """Where a gallery's scan runs: ``scan`` returns the encrypted score blocks of every block of the
    gallery at ``source`` (its store location) and the one generation they were computed on."""

    def scan(self, source: str, probe: Sequence[bytes]) -> tuple[int, list[bytes]]: ...

    def close(self) -> None: ...


def _serve(conn, path: str, index: int, workers: int) -> None:
    """A worker: opens the store itself, keeps its share of the blocks, scores every probe sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool

    store = GalleryStore.open(path)
    cache = BlockCache(store, open_bundle(store.public_bundle(), envelope.PUBLIC_BUNDLE))
    while True:
        probe = conn.recv()
        if probe is None:
            break
        try:
            generation, blocks = cache.load((index, workers))
            conn.send(("ok", (generation, scan_blocks(cache.backend, blocks, probe))))
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    store.close()


class LocalScan:
    """The scan on this machine's cores: ``workers`` long-lived processes, each holding one share of
    the blocks of the gallery it last scanned (started again for another gallery)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: _ProcessPool | None = None

    def scan(self, source: str, probe: Sequence[bytes]) -> tuple[int, list[bytes]]:
        if self._pool is None or self._pool.source != source:
            self.close()
            self._pool = _ProcessPool(source, self.workers)
        return self._pool.scan(probe)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _ProcessPool:
    def __init__(self, source: str, workers: int) -> None:
        self.source = source
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        for index in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, source, index, workers), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    def scan(self, probe: Sequence[bytes]) -> tuple[int, list[bytes]]:
        probe = list(probe)
        for conn in self._conns:
            conn.send(probe)
        parts = []
        for conn in self._conns:
            try:
                status, payload = conn.recv()
            except EOFError:
                raise GalleryError("a scan worker process died") from None
            if status != "ok":
                raise GalleryError(f"scan worker failed: {payload}")
            parts.append(payload)
        return merge_parts(parts)

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
