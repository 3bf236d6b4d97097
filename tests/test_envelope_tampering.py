"""Every header bit and every malformed header field is refused with an EnvelopeError, before any
field is believed or any byte reaches an FHE library."""

import hashlib
import json
import struct

import numpy as np
import pytest

from cipherface import envelope
from cipherface.errors import CipherfaceError, EnvelopeError


@pytest.fixture(scope="module")
def blob(owners):
    owner = owners["tenseal"]
    return owner.encrypt(np.random.default_rng(1).normal(size=128), "euclidean")


def test_every_header_bit_flip_is_refused(owner, blob):
    """The reported reproduction: of 2,100 header bit flips, 90 were not refused (4 with wrong output)."""
    start = len(envelope.MAGIC)
    head_len = struct.unpack_from(">HI", blob, start)[1]
    end = start + 6 + head_len + 32
    accepted = []
    for byte in range(start, end):
        for bit in range(8):
            flipped = bytearray(blob)
            flipped[byte] ^= 1 << bit
            try:
                envelope.decode(bytes(flipped))
            except EnvelopeError:
                continue
            accepted.append((byte, bit))
    assert (end - start) * 8 > 2000
    assert not accepted, f"{len(accepted)} header bit flips were accepted, e.g. {accepted[:5]}"


def rebuild(blob, mutate):
    """A blob whose header JSON is edited and whose checksum is made to match again: only the
    field checks stand between it and the libraries."""
    start = len(envelope.MAGIC)
    version, head_len = struct.unpack_from(">HI", blob, start)
    head = json.loads(blob[start + 6 : start + 6 + head_len])
    payload = blob[start + 6 + head_len + 32 :]
    raw = mutate(head)
    raw = raw if isinstance(raw, bytes) else json.dumps(head).encode()
    prefix = envelope.MAGIC + struct.pack(">HI", version, len(raw)) + raw
    return prefix + hashlib.sha256(prefix + payload).digest() + payload


MALFORMED = {
    "deep nesting": lambda h: ('{"kind":' + "[" * 100000 + "]" * 100000 + "}").encode(),
    "1e400": lambda h: json.dumps(h).replace('"dim": 128', '"dim": 1e400').encode(),
    "NaN": lambda h: json.dumps(h).replace('"dim": 128', '"dim": NaN').encode(),
    "meta null": lambda h: h.update(meta=None),
    "backend list": lambda h: h.update(backend=["tenseal"]),
    "kind unknown": lambda h: h.update(kind="gallery"),
    "negative part": lambda h: h.update(parts=[["ct", -5]]),
    "fractional part": lambda h: h.update(parts=[["ct", 2.5]]),
    "bool part": lambda h: h.update(parts=[["ct", True]]),
    "repeated part": lambda h: h.update(parts=[["ct", 0], ["ct", h["parts"][0][1]]]),
    "header a list": lambda h: b"[1, 2]",
    "params a string": lambda h: h.update(params="n8192"),
    "key id empty": lambda h: h.update(key_id=""),
    "not utf-8": lambda h: b'{"kind": "\xff"}',
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_header_field_is_an_envelope_error(blob, case):
    with pytest.raises(EnvelopeError):
        envelope.decode(rebuild(blob, MALFORMED[case]))


@pytest.mark.parametrize(("field", "value"), [("metric", None), ("dim", "128"), ("dim", -1), ("dim", 10**9)])
def test_a_malformed_meta_field_is_a_cipherface_error_at_the_matcher(owner, matcher, field, value):
    env = envelope.decode(owner.encrypt(np.ones(128), "cosine"))
    env.meta[field] = value
    with pytest.raises(CipherfaceError):
        matcher.distance(env.to_bytes(), env.to_bytes())


def test_format_1_blobs_are_refused_with_a_reason(blob):
    old = bytearray(blob)
    struct.pack_into(">H", old, len(envelope.MAGIC), 1)
    with pytest.raises(envelope.VersionError, match="checksum does not cover its header"):
        envelope.decode(bytes(old))
