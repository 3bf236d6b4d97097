"""The key owner's custody of a gallery the matcher keeps: it writes every block, and trusts none.

Every block the key owner writes holds, besides its identities, ``canaries`` random
templates at slots only the key owner knows (they look like identities in the slot map),
re-randomised at every rewrite, and is sealed (``seal.py``) with its version, which the key
owner also records in its own ``Directory``. Before a query's scores are used, the key owner
checks the gallery's state (every seal genuine, current, and matching the slot rows; no block
missing) and each block's scores (its canaries score what the key owner computes in the clear
for this probe; slots that hold nobody score 0; values the metric can take). A block dropped,
swapped, relabelled, replayed or forged, or a slot row changed, is refused with
``IntegrityError`` naming it.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cipherface.backend import FHEBackend
from cipherface.errors import IntegrityError, StaleBlockError, WriteConflictError
from cipherface.gallery import layout as layouts
from cipherface.gallery.directory import BlockVersion, Directory
from cipherface.gallery.encrypted_gallery import BlockWrite, GalleryState, StoredBlock, new_ids
from cipherface.gallery.packing import EncryptionPool, decrypt_block, encrypt_block
from cipherface.gallery.seal import canary_templates, check_blobs, check_slots, make_seal, open_seal
from cipherface.integrity import CANARY_TOLERANCE, new_nonce
from cipherface.protocols.base import VALUE_SLACK, DistanceProtocol

#: Canary templates per block (of 4,096 slots at N=8192: 0.2% of the capacity).
CANARIES_PER_BLOCK = 8


@dataclass(frozen=True)
class Rewrite:
    """One block as the key owner rewrote it: what the matcher stores, and what the key owner records."""

    write: BlockWrite
    version: BlockVersion
    canary_rows: list[tuple[str, int, int]]  # slot rows of a new block's canaries


class Custody:
    def __init__(
        self,
        backend: FHEBackend,
        protocol: DistanceProtocol,
        directory: Directory,
        *,
        gallery_id: str,
        canaries: int,
        dim: int,
        layout: int = layouts.TWO_PRIMES,
    ) -> None:
        self.backend = backend
        self.protocol = protocol
        self.directory = directory
        self.gallery_id = gallery_id
        self.canaries = canaries
        self.dim = dim
        #: The layout blocks are written in (``layout.py``).
        self.layout = layout
        self._templates: dict[tuple[int, str], np.ndarray] = {}
        #: Worker processes encrypting blocks on every core (set for large enrolments), or None.
        self.pool: EncryptionPool | None = None
        self._slots_checked: dict[int, tuple[str, dict[int, str]]] = {}  # block -> (seal, slot rows) checked

    @property
    def limit(self) -> float:
        """The largest score the layout holds (every embedding and probe is checked against it)."""
        return layouts.result_limit(self.layout, self.backend)

    @property
    def key(self) -> bytes:
        return self.backend.integrity_key

    # ------------------------------------------------------------------ writes
    def place(self, state: GalleryState, n: int) -> tuple[list[tuple[int, int]], dict[int, tuple[int, ...]]]:
        """``n`` free (block, slot) pairs, holes first; and the canary slots of the new blocks (drawn
        at random, so nothing tells the matcher which slot rows are canaries)."""
        size = self.backend.slot_count
        out: list[tuple[int, int]] = []
        for block in sorted(state.seals):
            used = state.slots.get(block, {})
            if len(used) < size:
                out += [(block, s) for s in range(size) if s not in used][: n - len(out)]
            if len(out) == n:
                return out, {}
        new: dict[int, tuple[int, ...]] = {}
        block = max(state.seals, default=-1) + 1
        while len(out) < n:
            new[block] = tuple(sorted(secrets.SystemRandom().sample(range(size), self.canaries)))
            free = [s for s in range(size) if s not in new[block]]
            out += [(block, s) for s in free[: n - len(out)]]
            block += 1
        return out, new

    def rewrite(self, block: int, stored: StoredBlock | None, **changes: Any) -> Rewrite:
        """``begin_rewrite``, waited for."""
        return self.begin_rewrite(block, stored, **changes)()

    def begin_rewrite(
        self,
        block: int,
        stored: StoredBlock | None,
        *,
        put: Mapping[int, tuple[str, np.ndarray]] | None = None,
        clear: Mapping[int, str] | None = None,
        canary_slots: Sequence[int] = (),
    ) -> Callable[[], Rewrite]:
        """The block re-encrypted with ``put`` (slot -> (id, gallery row)) written, ``clear``
        (slot -> id) zeroed and fresh canaries; ``stored`` (None: a new block with these
        ``canary_slots``) is checked against its seal and the key owner's record first. Its
        encryption is started (on the pool's workers, where there is a pool); calling the result
        waits for it and gives the ``Rewrite``. A bulk enrolment checks and commits one block while
        the workers encrypt the next."""
        put, clear = dict(put or {}), dict(clear or {})
        canary_rows: list[tuple[str, int, int]] = []
        if stored is None:
            columns = np.zeros((self.protocol.width(self.dim), self.backend.slot_count))
            version, slots = 1, {}
            canaries = tuple(canary_slots)
            canary_rows = [(i, block, s) for i, s in zip(new_ids([block] * len(canaries)), canaries)]
            slots = {s: i for i, _, s in canary_rows}
        else:
            seal = open_seal(self.key, stored.seal, self.gallery_id, block)
            check_blobs(seal, stored.blobs)
            check_slots(seal, stored.slots)
            canaries = self._accepted(block, seal.version, seal.nonce).canaries
            columns = decrypt_block(self.backend, stored.blobs)
            version, slots = seal.version + 1, dict(stored.slots)
            if layouts.of_block(self.backend, stored.blobs) != self.layout:  # its rows must fit this layout
                for slot in set(slots) - set(canaries) - set(clear):
                    self.protocol.check_input(columns[: self.dim, slot], self.limit)
        for slot, ident in clear.items():
            if slots.get(slot) != ident or slot in canaries:
                raise WriteConflictError(f"block {block} slot {slot} no longer holds {ident}")
            del slots[slot]
            columns[:, slot] = 0.0
        for slot, (ident, row) in put.items():
            if slot in slots:
                raise WriteConflictError(f"block {block} slot {slot} was taken by another enrolment")
            slots[slot] = ident
            columns[:, slot] = row
        columns = layouts.stored_values(self.layout, self.backend, columns)  # no drift over rewrites
        nonce = new_nonce()
        columns[:, list(canaries)] = self._canary_rows(block, nonce).T  # fresh at every rewrite
        if self.pool:
            encrypted = self.pool.submit(columns, block, self.layout)
        else:
            encrypted = functools.partial(list, encrypt_block(self.backend, columns, block, self.layout))

        def finish() -> Rewrite:
            blobs = encrypted()
            seal = make_seal(self.key, self.gallery_id, block, version, nonce, blobs, slots)
            return Rewrite(
                BlockWrite(blobs, seal.to_text(), stored.seal if stored else None),
                BlockVersion(block, version, nonce, canaries),
                canary_rows,
            )

        return finish

    # ------------------------------------------------------------------ checks
    def check_state(self, state: GalleryState) -> dict[int, BlockVersion]:
        """Every block of a committed state, checked: its seal genuine and made for it, its slot rows
        those sealed, its version the one the key owner wrote last (or is writing now); no block the
        key owner wrote is missing. Returns the version (canary nonce and slots) of each block."""
        current, accepted = self.directory.versions(self.gallery_id)
        out: dict[int, BlockVersion] = {}
        checked: dict[int, tuple[str, dict[int, str]]] = {}
        for block, text in state.seals.items():
            seal = open_seal(self.key, text, self.gallery_id, block)
            rows = state.slots.get(block, {})
            before = self._slots_checked.get(block)
            # a state shares the slot rows of blocks no commit touched: hash only the ones that changed
            if before is None or before[0] != text or before[1] is not rows:
                check_slots(seal, rows)
            checked[block] = (text, rows)
            out[block] = self._accepted(block, seal.version, seal.nonce, (current, accepted))
        self._slots_checked = checked
        missing = sorted(set(current) - set(out))
        if missing:
            raise IntegrityError(
                f"block {missing[0]} ({len(missing)} in all) is missing from the gallery: deleted or withheld; "
                "nothing was decided"
            )
        strays = sorted(set(state.slots) - set(out))
        if strays:
            raise IntegrityError(f"slot rows name block {strays[0]}, which the key owner never sealed: refused")
        return out

    def _accepted(self, block: int, version: int, nonce: str, records=None) -> BlockVersion:
        current, accepted = records or self.directory.versions(self.gallery_id)
        known = accepted.get(block, {}).get((version, nonce))
        if known is not None:
            return known
        if block in current and version <= current[block].version:
            raise StaleBlockError(
                f"block {block} is stale: version {version}, but the key owner last wrote version "
                f"{current[block].version} (an old copy replayed); nothing was decided"
            )
        raise IntegrityError(
            f"block {block} version {version} is not one this key owner wrote (its records are in another "
            "key folder, or the block is forged); nothing was decided"
        )

    def check_scores(
        self, block: int, scores: np.ndarray, version: BlockVersion, occupied: Sequence[int], probe_row: np.ndarray
    ) -> np.ndarray:
        """The scores of the occupied, non-canary slots of one block's result, refused unless its
        canaries score what they must for this probe and its empty slots score 0."""
        what = f"scores of block {block}"
        if scores.shape != (self.backend.slot_count,) or not np.all(np.isfinite(scores)):
            raise IntegrityError(f"{what}: not {self.backend.slot_count} finite values; nothing was decided")
        expected = self._canary_rows(block, version.nonce) @ probe_row
        actual = scores[list(version.canaries)]
        error = float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))))
        if not error <= CANARY_TOLERANCE:
            raise IntegrityError(
                f"{what}: its canaries score other than the key owner planted (error {error:.3g}): the result "
                "was forged, taken from another block or query, replayed, or corrupted; nothing was decided"
            )
        empty = np.ones(scores.size, dtype=bool)
        empty[np.asarray(occupied, dtype=np.int64)] = False
        stray = float(np.max(np.abs(scores[empty]), initial=0.0))
        if stray > VALUE_SLACK:
            raise IntegrityError(
                f"{what}: slots that hold nobody decrypted to {stray:.6g}, not 0: the block is corrupted, "
                "forged, or was scanned under another key; nothing was decided"
            )
        return scores

    def check_block(self, block: int, stored: StoredBlock, version: BlockVersion) -> None:
        """A stored block, decrypted: its ciphertexts those sealed, its canaries in place, its empty
        slots 0 (``gallery verify``)."""
        check_blobs(open_seal(self.key, stored.seal, self.gallery_id, block), stored.blobs)
        columns = decrypt_block(self.backend, stored.blobs)
        error = float(np.max(np.abs(columns[:, list(version.canaries)] - self._canary_rows(block, version.nonce).T)))
        empty = np.ones(columns.shape[1], dtype=bool)
        empty[list(stored.slots)] = False
        stray = float(np.max(np.abs(columns[:, empty]), initial=0.0))
        if not (error <= CANARY_TOLERANCE and stray <= VALUE_SLACK):
            raise IntegrityError(
                f"block {block} decrypts to other canaries (error {error:.3g}) or to non-zero empty slots "
                f"({stray:.3g}) than the key owner wrote: corrupted or forged"
            )

    def _canary_rows(self, block: int, nonce: str) -> np.ndarray:
        """The gallery rows of a block version's canary templates (canaries x width)."""
        key = (block, nonce)
        if key not in self._templates:
            if len(self._templates) > 4096:
                self._templates.clear()
            templates = canary_templates(self.key, self.gallery_id, block, nonce, self.canaries, self.dim)
            self._templates[key] = np.array([self.protocol.canary_row(t) for t in templates])
        return self._templates[key]
