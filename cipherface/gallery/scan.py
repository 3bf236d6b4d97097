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
from typing import Any, Protocol

from cipherface import envelope
from cipherface.backend import Ciphertext, FHEBackend, open_bundle
from cipherface.errors import DimensionError, GalleryError, StaleScanError
from cipherface.gallery.store import GalleryStore

#: What rounding a score block for its download may add to a score (``dump_for_decryption``),
#: against 2e-6 to 3.5e-5 of the layouts' own noise and a canary tolerance of 1e-4: at the last
#: prime the blocks come back 37% smaller.
SCORE_ROUNDING = 2e-6


class BlockCache:
    """A share of the store's blocks (those numbered ``part[0]`` modulo ``part[1]``), scanned from one
    snapshot. Up to ``resident`` blocks (all when None) stay deserialised between scans; the others
    are streamed: read, scored and dropped, so a share larger than memory scans in bounded memory
    (at the cost of reading it at every scan). A commit makes it read again only the resident
    blocks whose seal changed: an enrolment that rewrites one block of a large gallery costs one
    block's deserialisation, not the gallery's."""

    def __init__(self, store: GalleryStore, backend: FHEBackend, resident: int | None = None) -> None:
        self.store = store
        self.backend = backend
        self.resident = resident
        self._blocks: dict[int, tuple[str | None, int, Any]] = {}  # block -> (seal, level, scan operand)
        self.width: int = store.meta()["width"]
        self._key: tuple[int, tuple[int, int]] | None = None  # (generation, part) of the last scan
        self._share: list[int] = []  # ... and that scan's blocks

    def held(self) -> list[int]:
        """The blocks deserialised in memory now."""
        return sorted(self._blocks)

    def scan(self, probe: Sequence[bytes], part: tuple[int, int] = (0, 1)) -> tuple[int, list[bytes]]:
        """The committed generation and one encrypted score ciphertext per block of the share (a
        result blob only the key owner can read), all from that generation."""
        components = probe_components(self.backend, probe, self.width)
        probes: dict[int, Any] = {}  # the probe's scan operand at each level a block has, made once

        def probe_at(depth: int) -> Any:
            if depth not in probes:
                probes[depth] = self.backend.scan_operand(at_level(self.backend, components, depth))
            return probes[depth]

        out = []
        with self.store.snapshot():
            generation = self.store.generation()
            if self._key != (generation, part):
                seals = self.store.seals()
                self._share = [b for b in self.store.block_ids() if b % part[1] == part[0]]
                keep = set(self._share if self.resident is None else self._share[: self.resident])
                unchanged = {b for b, (seal, *_) in self._blocks.items() if seal is not None and seal == seals.get(b)}
                self._blocks = {b: held for b, held in self._blocks.items() if b in keep & unchanged}
                self._key = (generation, part)
                for b in keep - set(self._blocks):
                    self._blocks[b] = (seals.get(b), *self._read(b))
            for b in self._share:
                held = self._blocks.get(b)
                depth, operand = held[1:] if held is not None else self._read(b)  # streamed
                result = self.backend.scan_inner_product(operand, probe_at(depth))
                out.append(self.backend.dump_for_decryption(result, error=SCORE_ROUNDING, meta={"block": b}))
        return generation, out

    def _read(self, block: int) -> tuple[int, Any]:
        """A block's level (its layout, ``layout.py``) and its ciphertexts as the backend's scan kernel
        reads them (``FHEBackend.scan_operand``)."""
        cts = [self.backend.load_ciphertext(x, kind=envelope.GALLERY_BLOCK)[0] for x in self.store.read_block(block)]
        return self.backend.depth_left(cts[0]), self.backend.scan_operand(cts)


def _packed(probe: Sequence[bytes], width: int) -> envelope.Envelope | None:
    """The envelope of a packed probe, None for one of ``width`` component ciphertexts, or a
    ``DimensionError`` for neither."""
    if len(probe) == 1:
        env = envelope.decode(probe[0])
        if env.kind == envelope.PACKED_PROBE:
            count = env.meta.get("count")
            if type(count) is not int or count != width:
                raise DimensionError(f"the packed probe holds {str(count)[:20]} values, the gallery needs {width}")
            return env
    if len(probe) != width:
        raise DimensionError(f"probe has {len(probe)} components, the gallery needs {width}")
    return None


def check_probe(probe: Sequence[bytes], width: int) -> None:
    """Refuse a probe of another width than the gallery's, before any scan starts."""
    _packed(probe, width)


def probe_components(backend: FHEBackend, probe: Sequence[bytes], width: int) -> list[Ciphertext]:
    """The ``width`` ciphertexts a block's components are multiplied by: those uploaded, or those the
    matcher expands from one packed probe (``FHEBackend.expand``, with the public Galois keys)."""
    packed = _packed(probe, width)
    if packed is None:
        return [backend.load_ciphertext(p, kind=envelope.GALLERY_BLOCK)[0] for p in probe]
    return backend.expand(backend.load_ciphertext(packed, kind=envelope.PACKED_PROBE)[0], width)


def at_level(backend: FHEBackend, components: Sequence[Ciphertext], depth: int) -> list[Ciphertext]:
    """The probe's components at the level of the block they multiply: as sent (one level left), or
    brought to the last prime (``FHEBackend.to_last_prime``, public) for a block stored there."""
    return [backend.to_last_prime(c) for c in components] if depth == 0 else list(components)


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


def _serve(conn, path: str, index: int, workers: int, resident: int | None) -> None:
    """A worker: opens the store itself, keeps its share of the blocks, scores every probe sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool

    store = GalleryStore.open(path)
    cache = BlockCache(store, open_bundle(store.public_bundle(), envelope.PUBLIC_BUNDLE), resident)
    while True:
        probe = conn.recv()
        if probe is None:
            break
        try:
            conn.send(("ok", cache.scan(probe, (index, workers))))
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    store.close()


class LocalScan:
    """The scan on this machine's cores: ``workers`` long-lived processes, each holding one share of
    the blocks of the gallery it last scanned (started again for another gallery)."""

    def __init__(self, workers: int, resident: int | None = None) -> None:
        self.workers = workers
        self.resident_blocks = resident  # blocks each process keeps deserialised (None: its whole share)
        self._pool: _ProcessPool | None = None

    def scan(self, source: str, probe: Sequence[bytes]) -> tuple[int, list[bytes]]:
        if self._pool is None or self._pool.source != source:
            self.close()
            self._pool = _ProcessPool(source, self.workers, self.resident_blocks)
        return self._pool.scan(probe)

    def pids(self) -> list[int]:
        """The scanning processes (none before the first scan)."""
        return [proc.pid for proc in self._pool._procs] if self._pool is not None else []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _ProcessPool:
    def __init__(self, source: str, workers: int, resident: int | None) -> None:
        self.source = source
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        for index in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, source, index, workers, resident), daemon=True)
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
