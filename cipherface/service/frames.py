"""Framing of several binary blobs in one HTTP body: each frame an 8-byte big-endian length and
the bytes. Bodies are written as a stream of frames and read frame by frame, so neither side
joins them into another copy; a length past the limit or a cut-off frame is refused."""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from cipherface.errors import EnvelopeError

_LENGTH = struct.Struct(">Q")
MEDIA_TYPE = "application/octet-stream"


def encode(frames: Iterable[bytes]) -> Iterator[bytes]:
    """The body of ``frames``, piece by piece (a request or response streams it)."""
    for frame in frames:
        yield _LENGTH.pack(len(frame))
        yield frame


def header(obj: Any) -> bytes:
    """A JSON frame (the first of a body that describes the blobs after it)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def read_header(frame: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        raise EnvelopeError("the body's first frame is not JSON") from None
    if not isinstance(obj, dict):
        raise EnvelopeError("the body's first frame is not a JSON object")
    return obj


class FrameReader:
    """Frames out of a body that arrives in chunks of any size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        out = []
        while len(self._buf) >= _LENGTH.size:
            (n,) = _LENGTH.unpack_from(self._buf)
            if n > self.limit:
                raise EnvelopeError(f"a frame of {n} bytes is over the limit of {self.limit}")
            if len(self._buf) < _LENGTH.size + n:
                break
            out.append(bytes(self._buf[_LENGTH.size : _LENGTH.size + n]))
            del self._buf[: _LENGTH.size + n]
        return out

    def close(self) -> None:
        if self._buf:
            raise EnvelopeError(f"the body ends inside a frame ({len(self._buf)} bytes left over)")


def decode(body: bytes, limit: int | None = None) -> list[bytes]:
    reader = FrameReader(limit or len(body))
    out = reader.feed(body)
    reader.close()
    return out


def read(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    reader = FrameReader(limit)
    for chunk in chunks:
        yield from reader.feed(chunk)
    reader.close()


async def aread(chunks: AsyncIterator[bytes], limit: int) -> list[bytes]:
    reader = FrameReader(limit)
    out: list[bytes] = []
    async for chunk in chunks:
        out += reader.feed(chunk)
    reader.close()
    return out
