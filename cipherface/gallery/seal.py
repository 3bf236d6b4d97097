"""Seals: the key owner's MACs over what it writes into a gallery the matcher keeps.

A block's seal binds, under the key owner's integrity key (secret bundle only), the
gallery's id, the block's number, its version, its canary nonce, a digest of its
ciphertexts and a digest of its slot rows. A block moved, swapped, edited or a slot row
swapped, moved or deleted no longer matches any seal; a block replayed with its old seal is
caught by the version the key owner remembers (``Directory``). The manifest tag binds the
gallery's id, metric, shape and public bundle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cipherface.errors import IntegrityError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
#: The gallery fields the manifest tag covers.
MANIFEST_FIELDS = ("gallery_id", "backend", "key_id", "params", "metric", "dim", "width", "slot_count", "canaries")


def _mac(key: bytes, label: bytes, data: bytes) -> str:
    return hmac.new(key, b"cipherface " + label + b"\0" + data, hashlib.sha256).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def blobs_digest(blobs: Sequence[bytes]) -> str:
    h = hashlib.sha256()
    for blob in blobs:
        h.update(len(blob).to_bytes(8, "big"))
        h.update(blob)
    return h.hexdigest()


def slots_digest(slots: Mapping[int, str]) -> str:
    return hashlib.sha256(_canonical(sorted((int(s), i) for s, i in slots.items()))).hexdigest()


@dataclass(frozen=True)
class Seal:
    gallery: str
    block: int
    version: int
    nonce: str
    blobs: str  # digest of the block's ciphertexts
    slots: str  # digest of its slot rows (slot -> opaque id)
    tag: str

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        del out["tag"]
        return out

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def make_seal(
    key: bytes, gallery: str, block: int, version: int, nonce: str, blobs: Sequence[bytes], slots: Mapping[int, str]
) -> Seal:
    fields = {
        "gallery": gallery,
        "block": block,
        "version": version,
        "nonce": nonce,
        "blobs": blobs_digest(blobs),
        "slots": slots_digest(slots),
    }
    return Seal(**fields, tag=_mac(key, b"block seal", _canonical(fields)))


def open_seal(key: bytes, text: Any, gallery: str, block: int) -> Seal:
    """The seal stored for ``block``, refused unless the key owner wrote it for this very place."""
    what = f"block {block}'s seal"
    try:
        raw = json.loads(text)
        seal = Seal(**raw)
        ok = (
            isinstance(seal.gallery, str)
            and type(seal.block) is int
            and type(seal.version) is int
            and all(isinstance(v, str) for v in (seal.nonce, seal.blobs, seal.slots, seal.tag))
            and _HEX32.fullmatch(seal.nonce)
            and _HEX64.fullmatch(seal.tag)
        )
    except (TypeError, ValueError, RecursionError):
        ok = False
    if not ok:
        raise IntegrityError(f"{what} is malformed: the gallery file was edited; nothing was decided")
    if not hmac.compare_digest(seal.tag, _mac(key, b"block seal", _canonical(seal.record()))):
        raise IntegrityError(f"{what} does not carry the key owner's MAC: forged or edited; nothing was decided")
    if seal.gallery != gallery or seal.block != block:
        raise IntegrityError(
            f"{what} was made for block {seal.block} of gallery {seal.gallery}: blocks were moved or swapped"
        )
    return seal


def check_blobs(seal: Seal, blobs: Sequence[bytes]) -> None:
    if not hmac.compare_digest(seal.blobs, blobs_digest(blobs)):
        raise IntegrityError(
            f"block {seal.block}'s ciphertexts are not those the key owner sealed: edited, swapped or replayed"
        )


def check_slots(seal: Seal, slots: Mapping[int, str]) -> None:
    if not hmac.compare_digest(seal.slots, slots_digest(slots)):
        raise IntegrityError(
            f"block {seal.block}'s slot rows are not those the key owner sealed: a row was swapped, moved, "
            "edited, added or deleted; nothing was decided"
        )


def manifest_tag(key: bytes, meta: Mapping[str, Any], bundle: bytes) -> str:
    fields = {k: meta.get(k) for k in MANIFEST_FIELDS}
    if "embedder" in meta:  # what made the embeddings (galleries made before it was recorded have none)
        fields["embedder"] = meta["embedder"]
    fields["bundle"] = hashlib.sha256(bundle).hexdigest()
    return _mac(key, b"gallery manifest", _canonical(fields))


def check_manifest(key: bytes, meta: Mapping[str, Any], bundle: bytes, path: object) -> None:
    tag = meta.get("manifest_tag")
    if not isinstance(tag, str) or not hmac.compare_digest(tag, manifest_tag(key, meta, bundle)):
        raise IntegrityError(
            f"gallery {path}: its settings or public bundle are not those the key owner made it with "
            "(edited, or a bundle from another key): refused"
        )


def canary_templates(key: bytes, gallery: str, block: int, nonce: str, count: int, dim: int) -> np.ndarray:
    """``count`` random unit embeddings that only the holder of ``key`` can compute for this block
    and nonce: planted in the block, scored by every query, checked by the key owner."""
    seed = _mac(key, b"gallery canaries", _canonical([gallery, block, nonce]))
    rows = np.random.default_rng(int(seed, 16)).normal(size=(count, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
