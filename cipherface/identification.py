"""1:N identification: the key owner and the matcher around a packed encrypted gallery.

Each call below says which side does what; the matcher's part only ever touches
ciphertexts, opaque ids and the public bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cipherface.errors import GalleryError, IntegrityError, SlotsTakenError, StaleScanError
from cipherface.gallery import Directory, EncryptedGallery, decrypt_scores, encrypt_columns, encrypt_probe
from cipherface.gallery.encrypted_gallery import new_ids
from cipherface.gallery.packing import decrypt_block, encrypt_block
from cipherface.plugins import get_protocol
from cipherface.protocols.base import VALUE_SLACK
from cipherface.roles import KeyOwner, checked_threshold
from cipherface.timing import Stopwatch

DIRECTORY_FILE = "directory.db"
#: Scans (or enrolment attempts) before giving up on a gallery that keeps changing under them.
MAX_ATTEMPTS = 20


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
        if gallery.key_id != owner.key_id:
            raise GalleryError(
                f"gallery {gallery.store.path} is encrypted under key {gallery.key_id}, "
                f"the key owner holds {owner.key_id}"
            )
        self.owner = owner
        self.gallery = gallery
        self.directory = directory
        self.protocol = get_protocol(gallery.metric)

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
    ) -> Identifier:
        """Open a gallery with the key owner's folder; with ``create``, make both when absent."""
        gallery_path, key_dir = Path(gallery_path), Path(key_dir)
        if not gallery_path.exists():
            if not create:
                raise GalleryError(f"no gallery at {gallery_path}")
            owner = KeyOwner.load(key_dir) if (key_dir / "secret.cfk").exists() else None
            if owner is None:
                owner = KeyOwner.generate(backend)
                owner.save(key_dir)
            elif backend is not None and backend != owner.backend.name:
                raise GalleryError(f"the key in {key_dir} is for backend {owner.backend.name!r}, not {backend!r}")
            gallery = EncryptedGallery.create(gallery_path, owner.public_bundle(), metric, dim)
        else:
            gallery = EncryptedGallery.open(gallery_path)  # first: a file that is no gallery says so
            try:
                owner = KeyOwner.load(key_dir)
                EncryptedGallery.check_made_for(gallery.store.meta(), gallery_path, key_id=owner.key_id)
            except BaseException:
                gallery.close()
                raise
        return cls(owner, gallery, Directory(key_dir / DIRECTORY_FILE))

    def close(self) -> None:
        self.gallery.close()
        self.directory.close()

    def __enter__(self) -> Identifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ enrolment
    def enroll(self, names: Sequence[str], embeddings: Sequence[np.ndarray], *, progress: bool = True) -> list[str]:
        """Enrol templates (one per embedding), one transaction per block's worth."""
        if len(names) != len(embeddings):
            raise GalleryError(f"{len(names)} names for {len(embeddings)} embeddings")
        for e in embeddings:
            if np.asarray(e).shape != (self.gallery.dim,):
                raise GalleryError(f"embedding of shape {np.asarray(e).shape}; this gallery holds d={self.gallery.dim}")
        ids: list[str] = []
        step = self.gallery.slot_count
        bar = tqdm(total=len(names), desc="enrolling", unit="id", disable=not progress or len(names) < 2)
        for start in range(0, len(names), step):
            chunk_names, chunk = names[start : start + step], embeddings[start : start + step]
            chunk_ids = new_ids(len(chunk))
            self.directory.add(zip(chunk_ids, chunk_names))  # key owner, on-prem
            for attempt in range(MAX_ATTEMPTS):
                slots = self.gallery.allocate(len(chunk))  # matcher: free slots
                columns = encrypt_columns(self.owner.backend, self.protocol, chunk, slots)  # key owner
                try:
                    self.gallery.enroll(columns, slots, chunk_ids)  # matcher: one transaction, slots re-checked
                    break
                except SlotsTakenError:
                    if attempt == MAX_ATTEMPTS - 1:
                        raise
            ids += chunk_ids
            bar.update(len(chunk))
        bar.close()
        self.gallery.store.checkpoint()
        return ids

    def remove(self, name: str) -> int:
        """Remove every template of a name; their slots are zeroed and become free for reuse."""
        ids = self.directory.ids_of(name)
        backend = self.owner.backend

        def zeroed(block: int, blobs: list[bytes], slots: list[int]) -> list[bytes]:
            # the key owner re-encrypts the block with those slots zeroed, inside the matcher's write
            # transaction: nothing enrolled into the block meanwhile can be lost
            columns = decrypt_block(backend, blobs)
            columns[:, slots] = 0.0
            return encrypt_block(backend, columns, block)

        removed = self.gallery.remove(ids, zeroed)
        if not removed:
            raise GalleryError(f"{name!r} is not enrolled in this gallery")
        self.directory.remove(ids)
        return removed

    def names(self) -> dict[str, int]:
        """Enrolled names and their number of templates (only ids the gallery really holds)."""
        present = {ident for slots in self.gallery.slot_map()[1].values() for ident in slots.values()}
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
    ) -> Identification:
        """Top-k templates by distance, and the accept/reject decision for the closest."""
        if top_k < 1 or workers < 1:
            raise GalleryError(f"top_k and workers must be at least 1, got top_k={top_k}, workers={workers}")
        if threshold is None:
            from cipherface.embedders.thresholds import DEFAULT_MODEL, default_threshold

            threshold = default_threshold(DEFAULT_MODEL, self.gallery.metric)
        threshold = checked_threshold(threshold)
        watch = Stopwatch()
        with watch("encrypt_probe"):  # key owner
            probe, offset = encrypt_probe(self.owner.backend, self.protocol, embedding)
        with watch("encrypted_scan"):  # matcher
            results, slot_map = self._consistent_scan(probe, workers)
        with watch("decrypt_rank"):  # key owner
            ids, values = [], []
            for blob in results:
                block, scores = decrypt_scores(self.owner.backend, blob)
                occupied = slot_map.get(block, {})
                slots = np.fromiter(occupied, dtype=int, count=len(occupied))
                values.append(self._checked(block, scores, slots, offset))
                ids += list(occupied.values())
            candidates = self._rank(ids, np.concatenate(values) if values else np.array([]), top_k, threshold)
        return Identification(self.gallery.metric, threshold, candidates, watch.ms)

    def _consistent_scan(self, probe: list[bytes], workers: int) -> tuple[list[bytes], dict[int, dict[int, str]]]:
        """Scores and the slot map they are ranked with, from one committed generation: a scan that
        raced a commit is done again, so a slot reused meanwhile can never name the wrong person."""
        for _ in range(MAX_ATTEMPTS):
            try:
                generation, results = self.gallery.scan(probe, workers=workers)
            except StaleScanError:
                continue
            mapped, slot_map = self.gallery.slot_map()
            if mapped == generation:
                return results, slot_map
        raise StaleScanError(f"the gallery changed during each of {MAX_ATTEMPTS} scans: try again when it is quieter")

    def _checked(self, block: int, scores: np.ndarray, slots: np.ndarray, offset: float) -> np.ndarray:
        """The values of a block's occupied slots, refusing a block no honest scan can produce: a slot
        that holds nobody must score 0, and every value must be one the metric can take."""
        empty = np.ones(scores.size, dtype=bool)
        empty[slots] = False
        stray = float(np.max(np.abs(scores[empty]), initial=0.0))
        if not np.all(np.isfinite(scores)) or stray > VALUE_SLACK:
            raise IntegrityError(
                f"scores of block {block}: slots that hold nobody decrypted to {stray:.6g}, not 0: the "
                "block is corrupted, forged, or was scanned under another key; nothing was decided"
            )
        values = scores[slots] + offset
        self.protocol.check_values(values, self.owner.backend.params.result_limit, f"scores of block {block}")
        return values

    def _rank(self, ids: list[str], values: np.ndarray, top_k: int, threshold: float) -> list[Candidate]:
        if not ids:
            return []
        k = min(top_k, len(ids))
        best = np.argpartition(values, k - 1)[:k]
        best = best[np.argsort(values[best])]
        names = self.directory.names_of(ids[i] for i in best)
        cutoff = self.protocol.cutoff(threshold)
        return [
            Candidate(
                name=names.get(ids[i], "?"),
                identity=ids[i],
                value=float(values[i]),
                distance=self.protocol.distance(float(values[i])),
                accepted=bool(values[i] <= cutoff),
            )
            for i in best
        ]
