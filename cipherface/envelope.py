"""The versioned wire format every blob that leaves a process is wrapped in.

Layout (all integers big-endian)::

    b"CIPHERFACE\\n"            magic, 11 bytes
    u16  format version
    u32  header length H
    H    header: UTF-8 JSON (kind, backend, scheme, params, key_id, meta, parts, sha256)
    ...  payload: the parts' bytes, concatenated in header order

The header is plain JSON and the parts are opaque library serialisations, so
loading never unpickles anything.  A SHA-256 over the payload catches truncation
and corruption before any bytes reach a native library.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cipherface.errors import (
    BackendMismatchError,
    EnvelopeError,
    KeyMismatchError,
    VersionError,
    WrongKindError,
)

MAGIC = b"CIPHERFACE\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">HI")
MAX_HEADER_BYTES = 1 << 20

SECRET_BUNDLE = "secret-bundle"
PUBLIC_BUNDLE = "public-bundle"
CIPHERTEXT = "ciphertext"
RESULT = "result"
GALLERY_BLOCK = "gallery-block"
KINDS = (SECRET_BUNDLE, PUBLIC_BUNDLE, CIPHERTEXT, RESULT, GALLERY_BLOCK)


@dataclass
class Envelope:
    """A decoded blob: who made it, under which key, and its named parts."""

    kind: str
    backend: str
    scheme: str
    params: dict[str, Any]
    key_id: str
    parts: dict[str, bytes]
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        if self.kind not in KINDS:
            raise EnvelopeError(f"unknown envelope kind {self.kind!r}; kinds: {', '.join(KINDS)}")
        payload = b"".join(self.parts.values())
        header = {
            "kind": self.kind,
            "backend": self.backend,
            "scheme": self.scheme,
            "params": self.params,
            "key_id": self.key_id,
            "meta": self.meta,
            "parts": [[name, len(data)] for name, data in self.parts.items()],
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        return MAGIC + _PREFIX.pack(self.version, len(head)) + head + payload

    def part(self, name: str) -> bytes:
        try:
            return self.parts[name]
        except KeyError:
            raise EnvelopeError(
                f"{self.kind} from backend {self.backend!r} has no part {name!r} "
                f"(it has: {', '.join(self.parts) or 'none'})"
            ) from None


def describe(blob: bytes) -> str:
    """A short human description of what a blob claims to be (for error messages)."""
    try:
        env = decode(blob)
    except EnvelopeError as exc:
        return f"not a valid envelope ({exc})"
    return f"{env.kind} from backend {env.backend!r}, key {env.key_id}"


def decode(blob: bytes | bytearray | memoryview) -> Envelope:
    """Parse and integrity-check a blob without interpreting its parts."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise EnvelopeError(f"expected bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if not blob.startswith(MAGIC):
        if MAGIC.startswith(blob):
            raise EnvelopeError(f"truncated blob: {len(blob)} bytes, shorter than the envelope magic")
        raise EnvelopeError(f"not a cipherface blob: it does not start with {MAGIC!r} (first bytes {blob[:12]!r})")
    start = len(MAGIC) + _PREFIX.size
    if len(blob) < start:
        raise EnvelopeError(f"truncated blob: {len(blob)} bytes, the envelope prefix alone needs {start}")
    version, head_len = _PREFIX.unpack_from(blob, len(MAGIC))
    if version > FORMAT_VERSION:
        raise VersionError(
            f"blob written in wire-format version {version}; this cipherface reads up to version "
            f"{FORMAT_VERSION}: upgrade cipherface to load it"
        )
    if version < 1:
        raise VersionError(f"blob claims wire-format version {version}, which never existed")
    if head_len > MAX_HEADER_BYTES:
        raise EnvelopeError(f"corrupted blob: header length {head_len} is over {MAX_HEADER_BYTES}")
    if len(blob) < start + head_len:
        raise EnvelopeError(f"truncated blob: header needs {head_len} bytes, only {len(blob) - start} are there")
    try:
        header = json.loads(blob[start : start + head_len].decode("utf-8"))
        kind, backend, scheme = header["kind"], header["backend"], header["scheme"]
        params, key_id, meta = header["params"], header["key_id"], header.get("meta", {})
        layout = [(str(name), int(size)) for name, size in header["parts"]]
        digest = header["sha256"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnvelopeError(f"corrupted blob: unreadable envelope header ({exc})") from None
    payload = blob[start + head_len :]
    expected = sum(size for _, size in layout)
    if len(payload) != expected:
        word = "truncated" if len(payload) < expected else "corrupted"
        raise EnvelopeError(f"{word} {kind}: payload is {len(payload)} bytes, the header announces {expected}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise EnvelopeError(f"corrupted {kind}: payload checksum does not match its header")
    parts, offset = {}, 0
    for name, size in layout:
        parts[name] = payload[offset : offset + size]
        offset += size
    return Envelope(kind, backend, scheme, params, key_id, parts, meta, version)


def expect(
    blob: bytes,
    *,
    kind: str | tuple[str, ...],
    backend: str | None = None,
    key_id: str | None = None,
) -> Envelope:
    """Decode a blob and check it is of the kind, backend and key the caller holds."""
    env = decode(blob)
    kinds = (kind,) if isinstance(kind, str) else kind
    if env.kind not in kinds:
        raise WrongKindError(f"expected a {' or '.join(kinds)}, got a {env.kind} (backend {env.backend!r})")
    if backend is not None and env.backend != backend:
        raise BackendMismatchError(
            f"this {env.kind} was made by backend {env.backend!r}, but it is being loaded by backend {backend!r}"
        )
    if key_id is not None and env.key_id != key_id:
        raise KeyMismatchError(
            f"this {env.kind} was made under key {env.key_id}, but the loaded key is {key_id}: "
            "it belongs to another key owner or another key generation"
        )
    return env


def pack(
    kind: str,
    *,
    backend: str,
    scheme: str,
    params: Mapping[str, Any],
    key_id: str,
    parts: Mapping[str, bytes],
    meta: Mapping[str, Any] | None = None,
) -> bytes:
    return Envelope(kind, backend, scheme, dict(params), key_id, dict(parts), dict(meta or {})).to_bytes()
