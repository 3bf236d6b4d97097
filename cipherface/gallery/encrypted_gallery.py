"""The matcher's side of 1:N identification: the packed encrypted gallery and its scan."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cipherface import envelope
from cipherface.backend import FHEBackend, open_bundle
from cipherface.capabilities import protocol_for
from cipherface.errors import (
    BackendMismatchError,
    DimensionError,
    GalleryError,
    KeyMismatchError,
    StaleScanError,
    WriteConflictError,
)
from cipherface.gallery.scan import BlockCache, LocalScan, Scanner, check_probe
from cipherface.gallery.store import GalleryStore


@dataclass(frozen=True)
class GalleryState:
    """One committed state: its generation, block -> slot -> opaque id, and block -> seal."""

    generation: int
    slots: dict[int, dict[int, str]]
    seals: dict[int, str]


@dataclass(frozen=True)
class StoredBlock:
    blobs: list[bytes]
    seal: str
    slots: dict[int, str]


@dataclass(frozen=True)
class BlockWrite:
    blobs: list[bytes]
    seal: str
    read_seal: str | None  # the seal it replaces (None: a new block), checked at commit


def new_ids(blocks: Sequence[int]) -> list[str]:
    """Opaque ids for identities placed in these blocks, one each: the block's number (which the
    matcher's slot rows show anyway), then 96 random bits, so they say nothing about who; and the
    indexes on them grow where the block's rows are, not at random places all over (which made every
    commit to a large gallery rewrite thousands of index pages)."""
    text = secrets.token_bytes(12 * len(blocks)).hex()  # one read of the system's randomness for all
    return [f"{block:08x}{text[24 * i : 24 * i + 24]}" for i, block in enumerate(blocks)]


class EncryptedGallery:
    """Blocks of ``slot_count`` identities, each block ``width`` ciphertexts; opaque ids only."""

    def __init__(self, store: GalleryStore, backend: FHEBackend) -> None:
        self.store = store
        self.backend = backend
        meta = store.meta()
        self.metric: str = meta["metric"]
        self.dim: int = meta["dim"]
        self.width: int = meta["width"]
        self.protocol = protocol_for(backend, self.metric, gallery=True)
        #: Blocks a scan keeps deserialised between queries in each process (None: all of them); the
        #: others are streamed from the store at every scan (bounded memory, more reading).
        self.resident_blocks: int | None = None
        self._cache = BlockCache(store, backend)
        self.gallery_id: str = meta["gallery_id"]
        self.canaries: int = meta["canaries"]
        self._state: GalleryState | None = None
        #: Where scans run when the caller says (``use_scanner``: a cluster, a pool it shares) ...
        self.scanner: Scanner | None = None
        #: ... else on this gallery's own pool of processes for ``workers > 1``, made on first need.
        self._pool: LocalScan | None = None

    # ------------------------------------------------------------ lifecycle
    @staticmethod
    def new_meta(
        public_bundle: bytes,
        metric: str,
        dim: int,
        *,
        canaries: int,
        sign: Callable[[dict[str, Any], bytes], str],
        embedder: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The settings of a new gallery, made by the key owner: ``sign`` is its manifest MAC over
        them and the public bundle (so neither a matcher nor the wire can change them unseen)."""
        backend = open_bundle(public_bundle, envelope.PUBLIC_BUNDLE)
        protocol = protocol_for(backend, metric, gallery=True)
        meta: dict[str, Any] = {
            "gallery_id": secrets.token_hex(16),
            "canaries": canaries,
            "backend": backend.name,
            "key_id": backend.key_id,
            "params": backend.params.to_dict(),
            "metric": metric,
            "dim": dim,
            "width": protocol.width(dim),
            "slot_count": backend.slot_count,
        }
        if embedder is not None:  # signed with the rest: the matcher cannot relabel the model
            meta["embedder"] = dict(embedder)
        meta["manifest_tag"] = sign(meta, public_bundle)
        return meta

    @classmethod
    def create(cls, path: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> EncryptedGallery:
        """A new, empty gallery with the key owner's settings (``new_meta``), checked against its
        public bundle before anything is written."""
        backend = open_bundle(public_bundle, envelope.PUBLIC_BUNDLE)
        try:
            metric, dim, canaries = meta["metric"], meta["dim"], meta["canaries"]
            if not isinstance(metric, str) or type(dim) is not int or type(canaries) is not int or dim < 1:
                raise TypeError("metric, dim or canaries of the wrong type")
            protocol = protocol_for(backend, metric, gallery=True)
            expected = {
                "backend": backend.name,
                "key_id": backend.key_id,
                "params": backend.params.to_dict(),
                "width": protocol.width(dim),
                "slot_count": backend.slot_count,
            }
            wrong = sorted(k for k, v in expected.items() if meta.get(k) != v)
            if wrong or not isinstance(meta.get("gallery_id"), str) or not isinstance(meta.get("manifest_tag"), str):
                raise ValueError(f"settings {wrong or ['gallery_id/manifest_tag']} do not match the public bundle")
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"malformed gallery settings: {exc}") from None
        if not 0 < canaries < backend.slot_count // 2:
            raise GalleryError(f"{canaries} canaries per block of {backend.slot_count} slots")
        return cls(GalleryStore.create(path, public_bundle, meta), backend)

    @classmethod
    def open(cls, path: str | Path, *, key_id: str | None = None, backend: str | None = None) -> EncryptedGallery:
        """Open a gallery; with ``key_id``/``backend`` it must have been made for that key and backend."""
        store = GalleryStore.open(path)
        try:
            cls.check_made_for(store.meta(), path, key_id=key_id, backend=backend)
            return cls(store, open_bundle(store.public_bundle(), envelope.PUBLIC_BUNDLE))
        except BaseException:
            store.close()
            raise

    @staticmethod
    def check_made_for(
        meta: dict[str, Any], path: str | Path, *, key_id: str | None = None, backend: str | None = None
    ) -> None:
        """Refuse a gallery made for another key or backend than the caller's."""
        if backend is not None and meta["backend"] != backend:
            raise BackendMismatchError(f"gallery {path} was made with backend {meta['backend']!r}, not {backend!r}")
        if key_id is not None and meta["key_id"] != key_id:
            raise KeyMismatchError(
                f"gallery {path} is encrypted under key {meta['key_id']}, but the key given is {key_id}"
            )

    def bound_memory(self, resident: int | None) -> None:
        """Keep at most ``resident`` blocks deserialised per scanning process (None: no bound)."""
        if resident is not None and resident < 0:
            raise GalleryError(f"resident blocks must be 0 or more, not {resident}")
        self.resident_blocks = resident
        self._cache = BlockCache(self.store, self.backend, resident)
        self._close_pool()

    def use_scanner(self, scanner: Scanner | None) -> None:
        """Scan on ``scanner`` (a ``LocalScan`` or a ``DaskScan`` the caller owns and closes)."""
        self.scanner = scanner

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def close(self) -> None:
        self._close_pool()
        self.store.close()

    def __enter__(self) -> EncryptedGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- facts
    @property
    def label(self) -> str:
        """Where this gallery is, for messages (its file, or its database and name)."""
        return self.store.location

    def meta(self) -> dict[str, Any]:
        """The settings as stored (the key owner checks their manifest MAC before trusting them)."""
        return self.store.meta()

    def public_bundle(self) -> bytes:
        return self.store.public_bundle()

    def seal_of(self, block: int) -> str | None:
        return self.store.seal_of(block)

    def checkpoint(self) -> None:
        self.store.checkpoint()

    @property
    def key_id(self) -> str:
        return self.backend.key_id

    @property
    def slot_count(self) -> int:
        return self.backend.slot_count

    @property
    def capacity(self) -> int:
        """Identities per block: the slots less the key owner's canaries."""
        return self.slot_count - self.canaries

    def count(self) -> int:
        return self.store.count() - self.canaries * self.store.block_count()

    def info(self) -> dict[str, Any]:
        meta = self.store.meta()
        n = self.count()
        blocks = self.store.block_count()
        size = self.store.size_bytes()
        return {
            "path": self.store.location,
            "backend": meta["backend"],
            "key_id": meta["key_id"],
            "params": meta["params"],
            "metric": meta["metric"],
            "dim": meta["dim"],
            "width": meta["width"],
            "embedder": meta.get("embedder"),
            "identities": n,
            "blocks": blocks,
            "capacity": blocks * self.capacity,
            "canaries_per_block": self.canaries,
            "file_bytes": size,
            "bytes_per_identity": round(size / n) if n else None,
            "labels": "opaque ids: block number, then 96 random bits (names stay in the key owner's directory)",
        }

    def state(self) -> GalleryState:
        """The committed generation, its slot map and its seals, read in one snapshot (cached per
        generation, off the query's hot path)."""
        with self.store.snapshot():
            generation = self.store.generation()
            held = self._state
            if held is not None and held.generation < generation:  # read only the blocks rewritten since
                changed = self.store.written_since(held.generation)
                slots = {b: rows for b, rows in held.slots.items() if b not in changed}
                seals = {b: seal for b, seal in held.seals.items() if b not in changed}
                for block in changed:
                    slots[block], seals[block] = self.store.slots_of(block), self.store.seal_of(block)
                self._state = GalleryState(generation, slots, seals)
            elif held is None or held.generation != generation:
                slots = {}
                for ident, block, slot in self.store.slots():
                    slots.setdefault(block, {})[slot] = ident
                self._state = GalleryState(generation, slots, self.store.seals())
        return self._state

    def changed_since(self, generation: int | None) -> list[int] | None:
        """Blocks rewritten after ``generation`` (their slot rows and seals are all that changed), or
        None when that generation is unknown here (then only the whole state will do)."""
        if generation is None:
            return None
        with self.store.snapshot():
            if not 0 <= generation <= self.store.generation():
                return None
            return self.store.written_since(generation)

    # --------------------------------------------------------------- writes
    def read_blocks(self, blocks: Sequence[int]) -> dict[int, StoredBlock]:
        """Blocks as stored, with their seals and slot rows, from one snapshot (the key owner
        checks and rewrites them)."""
        with self.store.snapshot():
            out = {}
            for block in blocks:
                seal = self.store.seal_of(block)
                if seal is not None:
                    out[block] = StoredBlock(self.store.read_block(block), seal, self.store.slots_of(block))
        return out

    def commit(
        self,
        writes: dict[int, BlockWrite],
        add: Sequence[tuple[str, int, int]] = (),
        remove: Sequence[str] = (),
        *,
        request: str | None = None,
    ) -> None:
        """Write the key owner's rewritten blocks and their seals, add and drop slot rows, in one
        transaction; refused with ``WriteConflictError`` (nothing written) if another writer changed
        one of these blocks since it was read. A ``request`` id makes it idempotent: a commit whose
        id landed already (a client retrying after a lost answer) does nothing."""
        with self.store.transaction():
            if request is not None:
                if self.store.committed(request):
                    return
                self.store.record_commit(request)
            for block, write in writes.items():
                if self.store.seal_of(block) != write.read_seal:
                    raise WriteConflictError(f"block {block} was rewritten by another writer meanwhile")
                if len(write.blobs) != self.width:
                    raise DimensionError(f"block {block}: {len(write.blobs)} components, the gallery has {self.width}")
                self.store.write_block(block, [self._checked(b) for b in write.blobs])
                self.store.write_seal(block, write.seal)
            located = self.store.locate(remove)
            if len(located) != len(set(remove)) or any(b not in writes for _, b, _ in located):
                raise WriteConflictError("identities to remove moved or went meanwhile")
            if any(b not in writes for _, b, _ in add):
                raise DimensionError("identities added to a block that is not rewritten")
            self.store.remove_identities(list(remove))
            self.store.add_identities(list(add))

    def locate(self, ids: Sequence[str]) -> list[tuple[str, int, int]]:
        return self.store.locate(ids)

    def _checked(self, blob: bytes) -> bytes:
        self.backend.check_ciphertext(blob, kind=envelope.GALLERY_BLOCK)
        return blob

    # ----------------------------------------------------------------- scan
    def scan(self, probe: Sequence[bytes], workers: int = 1) -> tuple[int, list[bytes]]:
        """Encrypted scores of every block for one probe (result blobs only the key owner can read),
        and the committed generation they were all computed on: on the scanner set by
        ``use_scanner``, else on ``workers`` local processes, else in this process."""
        check_probe(probe, self.width)
        if self.scanner is not None:
            return self.scanner.scan(self.store.source, probe)
        if workers > 1:
            if self._pool is None or self._pool.workers != workers:
                self._close_pool()
                self._pool = LocalScan(workers, self.resident_blocks)
            return self._pool.scan(self.store.source, probe)
        return self._cache.scan(probe)

    def reload(self) -> None:
        """Forget the deserialised blocks: the next scan reads every block from the store again, as
        a matcher process just started would (the scan otherwise rereads only blocks whose seal
        changed)."""
        self._cache = BlockCache(self.store, self.backend, self.resident_blocks)

    def scan_with_state(self, probe: Sequence[bytes], workers: int = 1) -> tuple[list[bytes], GalleryState]:
        """The scores of every block and the state (slot map, seals) of the generation they were
        computed on; ``StaleScanError`` if a commit landed in between (scan again)."""
        generation, results = self.scan(probe, workers)
        state = self.state()
        if state.generation != generation:
            raise StaleScanError(
                f"the gallery committed during the scan (generation {generation} -> {state.generation})"
            )
        return results, state


class Galleries(Protocol):
    """Where a key owner's galleries are kept: files here, or a matcher service."""

    def exists(self, name: str | Path) -> bool: ...

    def create(self, name: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> Any: ...

    def open(self, name: str | Path) -> Any: ...

    def label(self, name: str | Path) -> str: ...


class LocalGalleries:
    """Galleries as files on this machine or in a PostgreSQL database: the embedded matcher (a
    service is the remote one, ``cipherface.service.RemoteMatcher``, with the same methods)."""

    def exists(self, name: str | Path) -> bool:
        return GalleryStore.exists(name)

    def create(self, name: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> EncryptedGallery:
        return EncryptedGallery.create(name, public_bundle, meta)

    def open(self, name: str | Path) -> EncryptedGallery:
        return EncryptedGallery.open(name)

    def label(self, name: str | Path) -> str:
        """What names this gallery in the key owner's records (its absolute path, or its database
        URL without password and its name)."""
        return GalleryStore.label_of(name)
