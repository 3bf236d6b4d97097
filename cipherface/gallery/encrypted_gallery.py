"""The matcher's side of 1:N identification: the packed encrypted gallery and its scan."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cipherface import envelope
from cipherface.backend import Ciphertext, FHEBackend
from cipherface.errors import BackendMismatchError, DimensionError, KeyMismatchError, SlotsTakenError
from cipherface.gallery.store import GalleryStore
from cipherface.plugins import get_backend, get_protocol

Progress = Callable[[int], None]


def new_ids(n: int) -> list[str]:
    """Opaque identity ids: random, so they say nothing about who or when."""
    return [secrets.token_hex(16) for _ in range(n)]


def load_public_backend(bundle: bytes) -> FHEBackend:
    env = envelope.expect(bundle, kind=envelope.PUBLIC_BUNDLE)
    return get_backend(env.backend).load_bundle(bundle)


class EncryptedGallery:
    """Blocks of ``slot_count`` identities, each block ``width`` ciphertexts; opaque ids only."""

    def __init__(self, store: GalleryStore, backend: FHEBackend) -> None:
        self.store = store
        self.backend = backend
        meta = store.meta()
        self.metric: str = meta["metric"]
        self.dim: int = meta["dim"]
        self.width: int = meta["width"]
        self.protocol = get_protocol(self.metric)
        self._blocks: dict[int, list[Ciphertext]] = {}
        self._blocks_key: tuple[int, tuple[int, int]] | None = None  # (generation, part) they were loaded for
        self._slots: dict[int, dict[int, str]] = {}
        self._slots_generation = -1
        self._pool = None

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | Path, public_bundle: bytes, metric: str, dim: int) -> EncryptedGallery:
        backend = load_public_backend(public_bundle)
        protocol = get_protocol(metric)
        width = len(protocol.gallery_row(np.ones(dim)))
        meta = {
            "backend": backend.name,
            "key_id": backend.key_id,
            "params": backend.params.to_dict(),
            "metric": metric,
            "dim": dim,
            "width": width,
            "slot_count": backend.slot_count,
        }
        return cls(GalleryStore.create(path, public_bundle, meta), backend)

    @classmethod
    def open(cls, path: str | Path, *, key_id: str | None = None, backend: str | None = None) -> EncryptedGallery:
        """Open a gallery; with ``key_id``/``backend`` it must have been made for that key and backend."""
        store = GalleryStore.open(path)
        try:
            cls.check_made_for(store.meta(), path, key_id=key_id, backend=backend)
            return cls(store, load_public_backend(store.public_bundle()))
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

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.store.close()

    def __enter__(self) -> EncryptedGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- facts
    @property
    def key_id(self) -> str:
        return self.backend.key_id

    @property
    def slot_count(self) -> int:
        return self.backend.slot_count

    def count(self) -> int:
        return self.store.count()

    def info(self) -> dict[str, Any]:
        meta = self.store.meta()
        n = self.count()
        blocks = len(self.store.block_ids())
        size = self.store.size_bytes()
        return {
            "path": str(self.store.path),
            "backend": meta["backend"],
            "key_id": meta["key_id"],
            "params": meta["params"],
            "metric": meta["metric"],
            "dim": meta["dim"],
            "width": meta["width"],
            "identities": n,
            "blocks": blocks,
            "capacity": blocks * self.slot_count,
            "file_bytes": size,
            "bytes_per_identity": round(size / n) if n else None,
            "labels": "opaque random ids (names stay in the key owner's directory)",
        }

    def slot_map(self) -> tuple[int, dict[int, dict[int, str]]]:
        """The committed generation and its block -> slot -> opaque id map, read in one snapshot
        (cached per generation, off the query's hot path)."""
        with self.store.snapshot():
            generation = self.store.generation()
            if generation != self._slots_generation:
                out: dict[int, dict[int, str]] = {}
                for ident, block, slot in self.store.slots():
                    out.setdefault(block, {})[slot] = ident
                self._slots, self._slots_generation = out, generation
        return self._slots_generation, self._slots

    # ------------------------------------------------------------ enrolment
    def allocate(self, n: int) -> list[tuple[int, int]]:
        """``n`` free (block, slot) pairs: holes in existing blocks first, then new blocks."""
        blocks = self.store.block_ids()
        filled = self.store.occupancy()
        out: list[tuple[int, int]] = []
        for block in blocks:
            if filled.get(block, 0) >= self.slot_count:
                continue
            used = self.store.used_slots(block)
            out += [(block, s) for s in range(self.slot_count) if s not in used][: n - len(out)]
            if len(out) == n:
                return out
        block = (blocks[-1] + 1) if blocks else 0
        while len(out) < n:
            out += [(block, s) for s in range(min(self.slot_count, n - len(out)))]
            block += 1
        return out

    def enroll(
        self,
        columns: dict[int, list[bytes]],
        slots: Sequence[tuple[int, int]],
        ids: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Add the key owner's encrypted columns to their blocks and record the slots, in one
        transaction. Returns the opaque ids given to the new identities."""
        ids = list(ids) if ids is not None else new_ids(len(slots))
        if len(ids) != len(slots):
            raise DimensionError(f"{len(ids)} ids for {len(slots)} slots")
        with self.store.transaction() as conn:
            used = {b: self.store.used_slots(b) for b in {b for b, _ in slots}}
            taken = [(b, s) for b, s in slots if s in used[b]]
            if taken:  # another writer filled them since they were allocated: the caller allocates again
                raise SlotsTakenError(f"{len(taken)} slot(s) were taken by another enrolment, e.g. {taken[0]}")
            existing = set(self.store.block_ids())
            for block, blobs in columns.items():
                if len(blobs) != self.width:
                    raise DimensionError(f"block {block}: {len(blobs)} components, the gallery has {self.width}")
                if block in existing:
                    old = self.store.read_block(block)
                    blobs = [self._add(a, b) for a, b in zip(old, blobs)]
                else:
                    blobs = [self._checked(b) for b in blobs]
                self.store.write_block(conn, block, blobs)
                if progress:
                    progress(1)
            self.store.add_identities(conn, [(i, b, s) for i, (b, s) in zip(ids, slots)])
        return ids

    def remove(self, ids: Sequence[str], rewrite: Callable[[int, list[bytes], list[int]], list[bytes]]) -> int:
        """Remove identities in one write transaction on the state it reads: for every block holding
        some, ``rewrite(block, blobs, slots)`` (the key owner) returns the block re-encrypted with
        those slots zeroed; the new blocks and the freed slots commit together. Returns how many."""
        with self.store.transaction() as conn:
            located = self.store.locate(ids)
            by_block: dict[int, list[tuple[str, int]]] = {}
            for ident, block, slot in located:
                by_block.setdefault(block, []).append((ident, slot))
            for block, members in by_block.items():
                fresh = rewrite(block, self.store.read_block(block), [slot for _, slot in members])
                self.store.write_block(conn, block, [self._checked(b) for b in fresh])
                self.store.remove_identities(conn, [ident for ident, _ in members])
        return len(located)

    def block_blobs(self, block: int) -> list[bytes]:
        return self.store.read_block(block)

    def _checked(self, blob: bytes) -> bytes:
        self.backend.load_ciphertext(blob, kind=envelope.GALLERY_BLOCK)
        return blob

    def _add(self, stored: bytes, new: bytes) -> bytes:
        a, meta = self.backend.load_ciphertext(stored, kind=envelope.GALLERY_BLOCK)
        b, _ = self.backend.load_ciphertext(new, kind=envelope.GALLERY_BLOCK)
        return self.backend.dump_ciphertext(self.backend.add(a, b), kind=envelope.GALLERY_BLOCK, meta=meta)

    # ----------------------------------------------------------------- scan
    def load(self, part: tuple[int, int] = (0, 1)) -> tuple[int, dict[int, list[Ciphertext]]]:
        """The committed generation and the blocks numbered ``part[0]`` modulo ``part[1]``,
        deserialised in memory from one snapshot, once per generation, for scanning."""
        with self.store.snapshot():
            generation = self.store.generation()
            if self._blocks_key != (generation, part):
                wanted = [b for b in self.store.block_ids() if b % part[1] == part[0]]
                self._blocks = {b: [self._load(x) for x in self.store.read_block(b)] for b in wanted}
                self._blocks_key = (generation, part)
        return generation, self._blocks

    def _load(self, blob: bytes) -> Ciphertext:
        return self.backend.load_ciphertext(blob, kind=envelope.GALLERY_BLOCK)[0]

    def scan(self, probe: Sequence[bytes], workers: int = 1) -> tuple[int, list[bytes]]:
        """Encrypted scores of every block for one probe (result blobs only the key owner can read),
        and the committed generation they were all computed on."""
        if len(probe) != self.width:
            raise DimensionError(f"probe has {len(probe)} components, the gallery needs {self.width}")
        if workers > 1:
            from cipherface.gallery.scan import ScanPool

            if self._pool is None or self._pool.workers != workers:
                if self._pool is not None:
                    self._pool.close()
                self._pool = ScanPool(self.store.path, workers)
            return self._pool.scan(probe)
        generation, blocks = self.load()
        return generation, scan_blocks(self.backend, blocks, probe)


def scan_blocks(backend: FHEBackend, blocks: dict[int, list[Ciphertext]], probe: Sequence[bytes]) -> list[bytes]:
    cts = [backend.load_ciphertext(p, kind=envelope.GALLERY_BLOCK)[0] for p in probe]
    return [
        backend.dump_ciphertext(backend.inner_product(components, cts), kind=envelope.RESULT, meta={"block": block})
        for block, components in sorted(blocks.items())
    ]
