"""The versioned wire format every blob that leaves a process is wrapped in.

Layout (all integers big-endian)::

    b"CIPHERFACE\\n"            magic, 11 bytes
    u16  format version (2)
    u32  header length H
    H    header: UTF-8 JSON (kind, backend, scheme, params, key_id, meta, parts)
    32   SHA-256 of everything before it and the payload (version, length, header, payload)
    ...  payload: the parts' bytes, concatenated in header order

The header is plain JSON and the parts are opaque library serialisations, so
loading never unpickles anything.  The SHA-256 covers the header as well as the
payload: truncation, corruption or an edited header field is refused before any
field is believed or any byte reaches a native library.  Every header field is
checked for its type and range; a malformed one is an :class:`EnvelopeError`.
(Format 1 checksummed the payload only: its blobs are refused.)
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
FORMAT_VERSION = 2
_PREFIX = struct.Struct(">HI")
_DIGEST_BYTES = 32
MAX_HEADER_BYTES = 1 << 20
_MAX_NAME = 128  # backend, scheme, key id and part names

SECRET_BUNDLE = "secret-bundle"
PUBLIC_BUNDLE = "public-bundle"
CIPHERTEXT = "ciphertext"
RESULT = "result"
GALLERY_BLOCK = "gallery-block"
PACKED_PROBE = "packed-probe"
KINDS = (SECRET_BUNDLE, PUBLIC_BUNDLE, CIPHERTEXT, RESULT, GALLERY_BLOCK, PACKED_PROBE)


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
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        prefix = MAGIC + _PREFIX.pack(self.version, len(head)) + head
        return prefix + hashlib.sha256(prefix + payload).digest() + payload

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
    if version < FORMAT_VERSION:
        raise VersionError(
            f"blob written in wire-format version {version}, whose checksum does not cover its header; "
            f"this cipherface reads version {FORMAT_VERSION}: make it again (new keys, a new gallery)"
            if version == 1
            else f"blob claims wire-format version {version}, which never existed"
        )
    if head_len > MAX_HEADER_BYTES:
        raise EnvelopeError(f"corrupted blob: header length {head_len} is over {MAX_HEADER_BYTES}")
    body = start + head_len + _DIGEST_BYTES
    if len(blob) < body:
        raise EnvelopeError(f"truncated blob: header and checksum need {body} bytes, only {len(blob)} are there")
    header = _header(blob[start : start + head_len])  # checked field by field, believed only after the digest
    payload = blob[body:]
    layout = header["parts"]
    expected = sum(size for _, size in layout)
    if len(payload) != expected:
        word = "truncated" if len(payload) < expected else "corrupted"
        raise EnvelopeError(
            f"{word} {header['kind']}: payload is {len(payload)} bytes, the header announces {expected}"
        )
    if hashlib.sha256(blob[: start + head_len] + payload).digest() != blob[start + head_len : body]:
        raise EnvelopeError(f"corrupted {header['kind']}: the checksum over its header and payload does not match")
    parts, offset = {}, 0
    for name, size in layout:
        parts[name] = payload[offset : offset + size]
        offset += size
    return Envelope(
        header["kind"],
        header["backend"],
        header["scheme"],
        header["params"],
        header["key_id"],
        parts,
        header["meta"],
        version,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number cipherface accepts")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is too large")
    return value


def _name(header: dict[str, Any], key: str) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME:
        raise EnvelopeError(f"corrupted blob: header field {key!r} must be a short string, got {str(value)[:40]!r}")
    return value


def _header(raw: bytes) -> dict[str, Any]:
    """The header's fields, each of the type and range it must have, or an EnvelopeError."""
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(f"corrupted blob: unreadable envelope header ({str(exc)[:100]})") from None
    if not isinstance(header, dict):
        raise EnvelopeError("corrupted blob: the envelope header is not a JSON object")
    kind = _name(header, "kind")
    if kind not in KINDS:
        raise EnvelopeError(f"corrupted blob: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    for name in ("backend", "scheme", "key_id"):
        _name(header, name)
    for name in ("params", "meta"):
        if not isinstance(header.get(name), dict):
            raise EnvelopeError(f"corrupted {kind}: header field {name!r} must be an object")
    layout = header.get("parts")
    if not isinstance(layout, list) or not all(
        isinstance(p, list)
        and len(p) == 2
        and isinstance(p[0], str)
        and 0 < len(p[0]) <= _MAX_NAME
        and type(p[1]) is int
        and p[1] >= 0
        for p in layout
    ):
        raise EnvelopeError(f"corrupted {kind}: header field 'parts' must list [name, non-negative length] pairs")
    if len({name for name, _ in layout}) != len(layout):
        raise EnvelopeError(f"corrupted {kind}: a part name repeats")
    return header


def expect(
    blob: bytes | Envelope,
    *,
    kind: str | tuple[str, ...],
    backend: str | None = None,
    key_id: str | None = None,
) -> Envelope:
    """Decode a blob (once: an Envelope is taken as decoded) and check it is of the kind, backend
    and key the caller holds."""
    env = blob if isinstance(blob, Envelope) else decode(blob)
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
