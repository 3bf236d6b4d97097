"""1:N identification: the key owner and the matcher around a packed encrypted gallery.

Each call below says which side does what; the matcher's part only ever touches
ciphertexts, opaque ids and the public bundle.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cipherface.capabilities import protocol_for
from cipherface.errors import (
    GalleryError,
    IntegrityError,
    RangeError,
    StaleBlockError,
    StaleScanError,
    WriteConflictError,
)
from cipherface.gallery import Directory, EncryptedGallery, decrypt_scores, encrypt_probe
from cipherface.gallery import layout as layouts
from cipherface.gallery.custody import CANARIES_PER_BLOCK, Custody, Rewrite
from cipherface.gallery.directory import BlockVersion
from cipherface.gallery.encrypted_gallery import Galleries, GalleryState, LocalGalleries, new_ids
from cipherface.gallery.packing import EncryptionPool
from cipherface.gallery.seal import check_manifest, manifest_tag, open_seal
from cipherface.roles import KeyOwner, checked_threshold
from cipherface.timing import Stopwatch

DIRECTORY_FILE = "directory.db"
#: The key owner's record of what made each gallery's embeddings (gallery path -> Embedder.describe()).
EMBEDDER_FILE = "embedders.json"


def default_key_dir(gallery: str | Path) -> Path:
    """Where the key owner's folder of a gallery lives when none is given: under ``$CIPHERFACE_KEYS``
    (else ``$CIPHERFACE_HOME/keys``, else ``~/.local/share/cipherface/keys``), one folder per gallery
    (its path, or its URL on a matcher service), away from the gallery (which the matcher holds)."""
    home = os.environ.get("CIPHERFACE_HOME")
    base = (
        os.environ.get("CIPHERFACE_KEYS")
        or (Path(home) / "keys" if home else None)
        or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cipherface" / "keys"
    )
    label = str(gallery) if "://" in str(gallery) else str(Path(gallery).resolve())
    stem = Path(label.rsplit("#", 1)[-1].rsplit("/", 1)[-1]).stem  # a file's, a service's or a database's name
    return Path(base) / f"{stem}-{hashlib.sha256(label.encode()).hexdigest()[:12]}"


#: Scans (or enrolment attempts) before giving up on a gallery that keeps changing under them.
MAX_ATTEMPTS = 20
#: A writer that keeps losing commit races to others (who thus make progress) keeps trying this
#: long, even past ``MAX_ATTEMPTS``: a busy gallery delays an enrolment, it does not refuse it.
WRITE_PATIENCE = 120.0
#: Blocks of a bulk enrolment whose encryption runs ahead of the one being committed.
ENROLMENT_LOOKAHEAD = 2


@dataclass(frozen=True)
class Change:
    """What the key owner asks the matcher to commit: rewritten blocks, slot rows added and dropped."""

    rewrites: dict[int, Rewrite]
    add: list[tuple[str, int, int]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    name: str
    identity: str
    value: float  # decrypted quantity (squared distance for euclidean)
    distance: float
    accepted: bool


@dataclass
class Identification:
    metric: str
    threshold: float
    candidates: list[Candidate]
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def identity(self) -> str | None:
        """The accepted top-1 name, or None when nobody in the gallery is close enough."""
        return self.candidates[0].name if self.candidates and self.candidates[0].accepted else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "accepted": self.identity is not None,
            "metric": self.metric,
            "threshold": self.threshold,
            "candidates": [asdict(c) for c in self.candidates],
            "timings_ms": self.timings_ms,
        }


class Identifier:
    """Enrol, remove, list and identify against one gallery under one key."""

    def __init__(self, owner: KeyOwner, gallery: EncryptedGallery, directory: Directory) -> None:
        meta = gallery.meta()
        EncryptedGallery.check_made_for(meta, gallery.label, key_id=owner.key_id)
        # then nothing the matcher could edit: settings and public bundle as the key owner made them
        check_manifest(owner.backend.integrity_key, meta, gallery.public_bundle(), gallery.label)
        if gallery.key_id != owner.key_id:
            raise IntegrityError(f"gallery {gallery.label}: its public bundle is for key {gallery.key_id}")
        self.owner = owner
        self.gallery = gallery
        self.directory = directory
        self.protocol = protocol_for(owner.backend, gallery.metric, gallery=True)
        self._occupied: dict[int, tuple] = {}  # block -> (seal and nonce, occupied slots, people's slots, ids)
        self.custody = Custody(
            owner.backend,
            self.protocol,
            directory,
            gallery_id=gallery.gallery_id,
            canaries=gallery.canaries,
            dim=gallery.dim,
            layout=layouts.checked(directory.layout(gallery.gallery_id), owner.backend),
        )
        self._reconcile()

    @classmethod
    def open(
        cls,
        gallery_path: str | Path,
        key_dir: str | Path,
        *,
        create: bool = False,
        backend: str | None = None,
        metric: str = "cosine",
        dim: int = 128,
        embedder: dict[str, Any] | None = None,
        matcher: Galleries | None = None,
        layout: int | None = None,
    ) -> Identifier:
        """Open a gallery with the key owner's folder; with ``create``, make both when absent.
        ``embedder`` (``Embedder.describe()``) is recorded in a new gallery's signed settings.
        ``layout``: how a new gallery's blocks are stored (``layout.py``; default: the last prime
        where the backend can).
        ``matcher``: where the galleries are (default: files here; a ``RemoteMatcher`` for a service,
        then ``gallery_path`` is the gallery's name there)."""
        where = matcher or LocalGalleries()
        key_dir = Path(key_dir)
        created = None
        if not where.exists(gallery_path):
            if not create:
                raise GalleryError(f"no gallery at {gallery_path}")
            owner = KeyOwner.load(key_dir) if (key_dir / "secret.cfk").exists() else None
            if owner is None:
                owner = KeyOwner.generate(backend)
                owner.save(key_dir)
            elif backend is not None and backend != owner.backend.name:
                raise GalleryError(f"the key in {key_dir} is for backend {owner.backend.name!r}, not {backend!r}")
            key, bundle = owner.backend.integrity_key, owner.public_bundle()
            sign = lambda meta, bundle: manifest_tag(key, meta, bundle)  # noqa: E731
            meta = EncryptedGallery.new_meta(
                bundle, metric, dim, canaries=CANARIES_PER_BLOCK, sign=sign, embedder=embedder
            )
            created = layouts.checked(layouts.best(owner.backend) if layout is None else layout, owner.backend)
            gallery = where.create(gallery_path, bundle, meta)
            if embedder is not None:  # the key owner's own record beside the gallery's signed one
                record = key_dir / EMBEDDER_FILE
                known = json.loads(record.read_text()) if record.is_file() else {}
                known[where.label(gallery_path)] = embedder
                record.write_text(json.dumps(known, indent=2, sort_keys=True))
        else:
            gallery = where.open(gallery_path)  # first: a file that is no gallery says so
            try:
                owner = KeyOwner.load(key_dir)
            except BaseException:
                gallery.close()
                raise
        try:
            directory = Directory(key_dir / DIRECTORY_FILE)
            if created is not None:
                directory.set_layout(gallery.gallery_id, created)
            return cls(owner, gallery, directory)
        except BaseException:
            gallery.close()
            raise

    def close(self) -> None:
        if self.custody.pool is not None:
            self.custody.pool.close()
            self.custody.pool = None
        self.gallery.close()
        self.directory.close()

    def __enter__(self) -> Identifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reconcile(self) -> None:
        """Settle what a writer killed between the gallery's commit and the directory's left pending."""
        sealed = {}
        for block, text in self.gallery.state().seals.items():
            try:
                seal = open_seal(self.owner.backend.integrity_key, text, self.gallery.gallery_id, block)
            except IntegrityError:
                continue  # reported by the first query
            sealed[block] = (seal.version, seal.nonce)

        def present(ids: list[str]) -> set[str]:
            return {i for i, _, _ in self.gallery.locate(ids)}

        self.directory.reconcile(self.gallery.gallery_id, present, sealed)

    # ------------------------------------------------------------ enrolment
    @property
    def embedder(self) -> dict[str, Any] | None:
        """What made this gallery's embeddings (model, detector, dim, thresholds), as the key owner
        signed it at creation; None for a gallery made before it was recorded."""
        return self.gallery.meta().get("embedder")

    def check_model(self, made_by: dict[str, Any] | None) -> None:
        """Refuse embeddings from another model than the gallery's (their distances mean nothing)."""
        mine = self.embedder
        if not mine or not made_by:
            return
        if (made_by.get("embedder"), made_by.get("model"), made_by.get("dim")) != (
            mine.get("embedder"),
            mine.get("model"),
            mine.get("dim"),
        ):
            raise GalleryError(
                f"this embedding was made by model {made_by.get('model')!r} ({made_by.get('embedder')}, "
                f"d={made_by.get('dim')}), but gallery {self.gallery.label} holds model {mine.get('model')!r} "
                f"({mine.get('embedder')}, d={mine.get('dim')}): distances between them mean nothing"
            )

    def default_threshold(self) -> float:
        """The gallery's model's threshold for its metric (DeepFace Dlib's for galleries without a record)."""
        recorded = (self.embedder or {}).get("thresholds", {}).get(self.gallery.metric)
        if recorded is not None:
            return float(recorded)
        from cipherface.embedders.thresholds import DEFAULT_MODEL, default_threshold

        return default_threshold(DEFAULT_MODEL, self.gallery.metric)

    def enroll(
        self,
        names: Sequence[str],
        embeddings: Sequence[np.ndarray],
        *,
        progress: bool = True,
        made_by: dict[str, Any] | None = None,
    ) -> list[str]:
        """Enrol templates (one per embedding), one transaction per block; ``made_by``
        (``Embedder.describe()``) must name the gallery's model when both are known."""
        self.check_model(made_by)
        if len(names) != len(embeddings):
            raise GalleryError(f"{len(names)} names for {len(embeddings)} embeddings")
        if not names:
            return []
        for e in embeddings:
            if np.shape(e) != (self.gallery.dim,):
                raise GalleryError(f"embedding of shape {np.shape(e)}; this gallery holds d={self.gallery.dim}")
        with self._layout_hint():
            rows = self.protocol.gallery_rows(np.asarray(embeddings, dtype=np.float64), self.custody.limit)
        bar = tqdm(total=len(names), desc="enrolling", unit="id", disable=not progress or len(names) < 2)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if len(names) > self.gallery.capacity and cores > 1 and self.custody.pool is None:
            # more than a block: encrypt on every core (the workers stay until ``close`` for the next one)
            self.custody.pool = EncryptionPool(self.owner.backend, cores)
        try:
            state = self.gallery.state()
            slots, canaries = self.custody.place(state, len(rows))
            ids = new_ids([block for block, _ in slots])
            name_of = dict(zip(ids, names))
            plan: dict[int, dict[int, tuple[str, np.ndarray]]] = {}
            for (block, slot), ident, row in zip(slots, ids, rows):
                plan.setdefault(block, {})[slot] = (ident, row)
            # the workers encrypt the next blocks while this one is checked and committed
            todo, begun = iter(sorted(plan)), collections.deque()
            while True:
                while len(begun) <= ENROLMENT_LOOKAHEAD and (block := next(todo, None)) is not None:
                    begun.append((block, self._begin(state, block, plan[block], canaries)))
                if not begun:
                    break
                block, started = begun.popleft()
                put = plan.pop(block)
                self._write(
                    functools.partial(self._enrolled, block=block, put=put, started=[started] if started else []),
                    added=[(ident, name_of[ident]) for ident, _ in put.values()],
                )
                bar.update(len(put))
        except BaseException:
            if self.custody.pool is not None:  # its workers may still be encrypting blocks never committed
                self.custody.pool.close()
                self.custody.pool = None
            raise
        finally:
            bar.close()
        self.gallery.checkpoint()
        return ids

    def _begin(
        self,
        state: GalleryState,
        block: int,
        put: dict[int, tuple[str, np.ndarray]],
        canaries: dict[int, tuple[int, ...]],
    ) -> Callable[[], Rewrite] | None:
        """A block of a bulk enrolment, its rewrite begun as planned on ``state``; None when the
        block moved since (its commit then plans again from the state it reads)."""
        stored = self.gallery.read_blocks([block]).get(block) if block in state.seals else None
        try:
            return self.custody.begin_rewrite(block, stored, put=put, canary_slots=canaries.get(block, ()))
        except (WriteConflictError, StaleBlockError):
            return None

    def _enrolled(
        self,
        state: GalleryState,
        *,
        block: int,
        put: dict[int, tuple[str, np.ndarray]],
        started: list[Callable[[], Rewrite]],
    ) -> Change:
        """One block's share of a bulk enrolment: the rewrite begun for it, or (when it was not, or a
        commit lost a race) its identities placed afresh on ``state``."""
        if started:
            return Change({block: started.pop()()}, add=[(ident, block, slot) for slot, (ident, _) in put.items()])
        return self._placed(state, dict(put.values()))

    def _placed(self, state: GalleryState, members: dict[str, np.ndarray]) -> Change:
        slots, canaries = self.custody.place(state, len(members))
        by_block: dict[int, dict[int, tuple[str, np.ndarray]]] = {}
        for (block, slot), (ident, row) in zip(slots, members.items()):
            by_block.setdefault(block, {})[slot] = (ident, row)
        stored = self.gallery.read_blocks(sorted(by_block))
        rewrites = {
            block: self.custody.rewrite(block, stored.get(block), put=put, canary_slots=canaries.get(block, ()))
            for block, put in by_block.items()
        }
        return Change(rewrites, add=[(ident, b, s) for (b, s), ident in zip(slots, members)])

    def remove(self, name: str) -> int:
        """Remove every template of a name; their slots are zeroed and become free for reuse."""
        ids = self.ids_of(name)

        def cleared(state: GalleryState) -> Change:
            by_block: dict[int, dict[int, str]] = {}
            for ident, block, slot in self.gallery.locate(ids):
                by_block.setdefault(block, {})[slot] = ident
            stored = self.gallery.read_blocks(sorted(by_block))
            rewrites = {b: self.custody.rewrite(b, stored.get(b), clear=clear) for b, clear in by_block.items()}
            return Change(rewrites, remove=[i for clear in by_block.values() for i in clear.values()])

        removed = len(self._write(cleared, added=()).remove)
        if not removed:
            raise GalleryError(f"{name!r} is not enrolled in this gallery")
        return removed

    def _write(self, plan: Callable[[GalleryState], Change], added: Iterable[tuple[str, str]]) -> Change:
        """One change of the gallery, as the key owner plans it from the state it reads: the blocks
        it rewrites, committed by the matcher only if nobody changed them meanwhile (else planned
        again), with the directory written in two phases around the commit. Returns the change
        committed (an empty one is not sent)."""
        added = list(added)
        new = [i for i, _ in added]
        attempt, deadline = 0, time.monotonic() + WRITE_PATIENCE
        while attempt < MAX_ATTEMPTS or time.monotonic() < deadline:
            attempt += 1
            if attempt > 1:  # another writer won the last round: back off a random, growing while
                time.sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))
            state = self.gallery.state()
            try:
                change = plan(state)
            except WriteConflictError:  # the state moved while the key owner read it
                continue
            except StaleBlockError:  # a block read just before another writer's commit, or a replay
                if self._moved_since(state):
                    continue
                raise
            if not (change.rewrites or change.add or change.remove):
                return change
            versions = [r.version for r in change.rewrites.values()]
            writes = {b: r.write for b, r in change.rewrites.items()}
            self.directory.begin(self.gallery.gallery_id, added, change.remove, versions)
            try:
                canary_rows = [row for r in change.rewrites.values() for row in r.canary_rows]
                self.gallery.commit(writes, add=canary_rows + change.add, remove=change.remove)
                committed = True
            except WriteConflictError:
                committed = False
            except BaseException:  # e.g. Ctrl-C: did the commit land? The gallery says.
                landed = all(self.gallery.seal_of(b) == w.seal for b, w in writes.items())
                self.directory.end(self.gallery.gallery_id, new, change.remove, versions, landed)
                raise
            self.directory.end(self.gallery.gallery_id, new, change.remove, versions, committed)
            if committed:
                return change
        raise WriteConflictError(
            f"other writers changed these blocks during each of {attempt} attempts over {WRITE_PATIENCE:.0f} s"
        )

    def verify(self, progress: bool = False) -> dict[str, int]:
        """Check the whole gallery as the key owner (exit code 3 in the CLI when it fails): the state
        (seals, slot rows, versions, no block missing) and every block's ciphertexts against its
        seal, decrypted: canaries in place, slots that hold nobody 0."""
        state, versions = self.checked_state()
        for block in tqdm(sorted(versions), desc="verifying", unit="block", disable=not progress):
            stored = self.gallery.read_blocks([block]).get(block)
            if stored is None or stored.seal != state.seals[block]:
                raise StaleScanError("the gallery changed during verification: run it again")
            self.custody.check_block(block, stored, versions[block])
        return {"blocks": len(versions), "identities": self.gallery.count()}

    @contextmanager
    def _layout_hint(self) -> Iterator[None]:
        """A ``RangeError`` (an embedding whose results could pass the layout's limit) that names the
        two-prime layout's larger limit, at the last prime."""
        try:
            yield
        except RangeError as exc:
            if self.layout == layouts.TWO_PRIMES:
                raise
            raise RangeError(
                f"{exc} (this gallery stores its blocks at {layouts.NAMES[self.layout]}; at two primes, "
                f"`cipherface gallery migrate --layout two-primes` or `enroll --layout two-primes` for a new "
                f"gallery, results may reach ±{self.owner.backend.params.result_limit:g})"
            ) from None

    @property
    def layout(self) -> int:
        """The layout this key owner writes the gallery's blocks in (``cipherface.gallery.layout``)."""
        return self.custody.layout

    def block_layouts(self) -> dict[int, int]:
        """How many blocks of the gallery are stored in each layout now."""
        state, _ = self.checked_state()
        counts: dict[int, int] = {}
        for block in sorted(state.seals):  # one at a time: a block is megabytes
            stored = self.gallery.read_blocks([block]).get(block)
            if stored is not None:
                kind = layouts.of_block(self.owner.backend, stored.blobs)
                counts[kind] = counts.get(kind, 0) + 1
        return counts

    def migrate(self, layout: int = layouts.LAST_PRIME, progress: bool = False) -> dict[str, int]:
        """Store every block in ``layout``: the key owner decrypts each block of another layout and
        re-encrypts it (fresh canaries, a new version), one commit per block. The layout is recorded
        first, so enrolments meanwhile write it and probes are checked against its limit; scans
        stay correct throughout (each block is scanned at its own level). Interrupted: run again.
        A block holding an embedding too large for the layout is refused with ``RangeError`` and
        stays as it was."""
        layout = layouts.checked(layout, self.owner.backend)
        self.directory.set_layout(self.gallery.gallery_id, layout)
        self.custody.layout = layout
        state, _ = self.checked_state()
        rewritten = 0
        for block in tqdm(sorted(state.seals), desc="migrating", unit="block", disable=not progress):

            def relaid(state: GalleryState, block: int = block) -> Change:
                stored = self.gallery.read_blocks([block]).get(block)
                if stored is None or layouts.of_block(self.owner.backend, stored.blobs) == layout:
                    return Change({})
                try:
                    return Change({block: self.custody.rewrite(block, stored)})
                except RangeError as exc:
                    raise RangeError(
                        f"block {block} holds an identity whose results exceed {layouts.NAMES[layout]}'s limit, so "
                        f"it stays as it is ({exc})"
                    ) from None

            rewritten += len(self._write(relaid, added=()).rewrites)
        return {"blocks": len(state.seals), "rewritten": rewritten, "layout": layout}

    def ids_of(self, name: str) -> list[str]:
        """The opaque ids of a name's templates in this gallery."""
        return self.directory.ids_of(self.gallery.gallery_id, name)

    def names(self) -> dict[str, int]:
        """Enrolled names and their number of templates (only ids the gallery really holds)."""
        state, _ = self.checked_state()
        present = {ident for slots in state.slots.values() for ident in slots.values()}
        counts: dict[str, int] = {}
        for name in self.directory.names_of(present).values():
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    # -------------------------------------------------------------- queries
    def identify(
        self,
        embedding: np.ndarray,
        *,
        top_k: int = 5,
        threshold: float | None = None,
        workers: int = 1,
        made_by: dict[str, Any] | None = None,
    ) -> Identification:
        """Top-k templates by distance, and the accept/reject decision for the closest (at the
        gallery's model's threshold unless given); a probe from another model is refused."""
        if top_k < 1 or workers < 1:
            raise GalleryError(f"top_k and workers must be at least 1, got top_k={top_k}, workers={workers}")
        self.check_model(made_by)
        threshold = checked_threshold(self.default_threshold() if threshold is None else threshold)
        watch = Stopwatch()
        with watch("encrypt_probe"):  # key owner
            with self._layout_hint():  # encrypt_probe checks the probe against the layout's limit
                probe, row, offset = encrypt_probe(
                    self.owner.backend, self.protocol, embedding, limit=self.custody.limit
                )
        return self.identify_encrypted(
            probe, row, offset, top_k=top_k, threshold=threshold, workers=workers, watch=watch
        )

    def identify_encrypted(
        self,
        probe: Sequence[bytes],
        row: np.ndarray,
        offset: float,
        *,
        top_k: int,
        threshold: float,
        workers: int = 1,
        watch: Stopwatch | None = None,
    ) -> Identification:
        """The matcher's scan of an encrypted probe (whose clear row and offset the key owner kept),
        and the key owner's checks and ranking."""
        watch = watch or Stopwatch()
        for attempt in range(MAX_ATTEMPTS):
            with watch("encrypted_scan"):  # matcher
                results, state = self._consistent_scan(list(probe), workers)
            try:
                versions = self._versions(state)
                with watch("decrypt_rank"):  # key owner
                    candidates = self._ranked(results, state, versions, row, offset, top_k, threshold)
                break
            except StaleScanError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
        return Identification(self.gallery.metric, threshold, candidates, watch.ms)

    def _ranked(
        self,
        results: list[bytes],
        state: GalleryState,
        versions: dict[int, BlockVersion],
        row: np.ndarray,
        offset: float,
        top_k: int,
        threshold: float,
    ) -> list[Candidate]:
        """The scan's score blocks, each checked against its block's version, ranked and named."""
        ids, values, seen = [], [], set()
        for blob in results:
            block, scores = decrypt_scores(self.owner.backend, blob)
            if block not in versions or block in seen:
                raise IntegrityError(
                    f"the scan returned scores for block {block} "
                    + ("twice" if block in seen else "which the gallery does not hold")
                    + ": refused; nothing was decided"
                )
            seen.add(block)
            occupied, slots, people = self._occupants(state, block, versions[block])
            scores = self.custody.check_scores(block, scores, versions[block], occupied, row)
            found = scores[slots] + offset
            self.protocol.check_values(found, self.custody.limit, f"scores of block {block}")
            values.append(found)
            ids += people
        if seen != set(versions):
            missing = sorted(set(versions) - seen)
            raise IntegrityError(
                f"the scan returned no scores for block {missing[0]} ({len(missing)} in all): a block was "
                "dropped; nothing was decided"
            )
        return self._rank(state, ids, np.concatenate(values) if values else np.array([]), top_k, threshold)

    def _occupants(
        self, state: GalleryState, block: int, version: BlockVersion
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """A block's occupied slots, and its identities' slots and ids (canaries left out), as arrays
        kept until the block's seal changes (a query at 1M identities reads 245 blocks of 4,088)."""
        key = (state.seals.get(block), version.nonce)
        held = self._occupied.get(block)
        if held is None or held[0] != key:
            rows = state.slots.get(block, {})
            people = [(s, i) for s, i in rows.items() if s not in version.canaries]
            held = (key, np.fromiter(rows, dtype=np.int64), np.array([s for s, _ in people], dtype=np.int64))
            held += ([i for _, i in people],)
            self._occupied[block] = held
        return held[1], held[2], held[3]

    def _versions(self, state: GalleryState) -> dict[int, BlockVersion]:
        """The checked versions of a state's blocks. A block older than the key owner's record is a
        replay, unless the gallery has committed since this state was read: then the writer simply
        finished meanwhile (``StaleScanError``: read again)."""
        try:
            return self.custody.check_state(state)
        except StaleBlockError:
            if self._moved_since(state):
                raise StaleScanError("the gallery changed while its state was checked") from None
            raise

    def _moved_since(self, state: GalleryState) -> bool:
        """Whether the gallery committed since ``state`` was read."""
        return self.gallery.state().generation != state.generation

    def checked_state(self) -> tuple[GalleryState, dict[int, BlockVersion]]:
        """The current state of the gallery and its blocks' versions, checked (read again if a writer
        commits meanwhile)."""
        for _ in range(MAX_ATTEMPTS):
            state = self.gallery.state()
            try:
                return state, self._versions(state)
            except StaleScanError:
                continue
        raise StaleScanError(f"the gallery changed during each of {MAX_ATTEMPTS} checks: try again when it is quieter")

    def _consistent_scan(self, probe: list[bytes], workers: int) -> tuple[list[bytes], GalleryState]:
        """Scores and the state (slot map, seals) they are checked and ranked with, from one committed
        generation: a scan that raced a commit is done again, so a slot reused meanwhile can never
        name the wrong person."""
        for _ in range(MAX_ATTEMPTS):
            try:
                return self.gallery.scan_with_state(probe, workers=workers)
            except StaleScanError:
                continue
        raise StaleScanError(f"the gallery changed during each of {MAX_ATTEMPTS} scans: try again when it is quieter")

    def _rank(
        self, state: GalleryState, ids: list[str], values: np.ndarray, top_k: int, threshold: float
    ) -> list[Candidate]:
        if not ids:
            return []
        k = min(top_k, len(ids))
        best = np.argpartition(values, k - 1)[:k]
        best = best[np.argsort(values[best])]
        names = self.directory.names_of(ids[i] for i in best)
        unnamed = [ids[i] for i in best if ids[i] not in names]
        if unnamed:
            # the key owner forgets a name only after the gallery committed its removal: the scanned
            # state was older than that commit, and its answer would name nobody (read again)
            if self._moved_since(state):
                raise StaleScanError("an identity this scan found was removed meanwhile")
            raise IntegrityError(
                f"identity {unnamed[0]} in the gallery's slot rows has no name in the key owner's "
                "directory: refused; nothing was decided"
            )
        cutoff = self.protocol.cutoff(threshold)
        return [
            Candidate(
                name=names[ids[i]],
                identity=ids[i],
                value=float(values[i]),
                distance=self.protocol.distance(float(values[i])),
                accepted=bool(values[i] <= cutoff),
            )
            for i in best
        ]
