"""The plugin's own handling of SEAL's format: ciphertexts stored uncompressed where zstd saves
nothing, and score blocks rounded for the download, whose fields the key owner checks."""

import struct

import numpy as np
import pytest
from cipherface_tenseal import TenSEALBackend, seal_format

from cipherface import envelope
from cipherface.errors import EnvelopeError


@pytest.fixture(scope="module")
def keys():
    owner = TenSEALBackend.generate(max_dim=16)
    return owner, TenSEALBackend.load_bundle(owner.export_public_bundle())


def test_zstd_is_kept_only_where_it_saves_bytes(keys):
    owner, _ = keys
    values = np.random.default_rng(1).uniform(-1, 1, owner.slot_count)
    one_prime = envelope.decode(owner.encrypt_last_prime_blob(values)).parts["ct"]
    two_primes = envelope.decode(owner.encrypt_blob(values, depth=1)).parts["ct"]
    assert seal_format.HEADER.unpack_from(one_prime)[4] == seal_format.NONE  # 60-bit words: nothing to gain
    assert seal_format.HEADER.unpack_from(two_primes)[4] == seal_format.ZSTD  # the 40-bit prime packs


@pytest.fixture(scope="module")
def rounded(keys):
    owner, matcher = keys
    values = np.random.default_rng(2).uniform(-1, 1, owner.slot_count)
    block, _ = matcher.load_ciphertext(owner.encrypt_last_prime_blob(values))
    ones = matcher.to_last_prime(matcher.encrypt(np.ones(owner.slot_count), depth=1))
    result = matcher.inner_product([block], [ones])
    return matcher.dump_for_decryption(result, error=2e-6), owner.decrypt(result)


def test_a_rounded_score_block_is_smaller_and_decrypts_within_the_error(keys, rounded):
    owner, _ = keys
    blob, exact = rounded
    assert envelope.decode(blob).parts["ct"][:4] == seal_format.ROUNDED_MAGIC
    assert len(blob) < 0.65 * 131_000
    got = owner.decrypt(owner.load_ciphertext(blob, kind=envelope.RESULT)[0])
    assert np.max(np.abs(got - exact)) <= 2e-6


@pytest.mark.parametrize(
    "field, offset, value",
    [
        ("k", 4, struct.pack("<B", 30)),
        ("width", 5, struct.pack("<B", 4)),
        ("degree", 6, struct.pack("<I", 4096)),
        ("parms_id", 10, b"\x01" * 32),
        ("scale", 42, struct.pack("<d", float("inf"))),
        ("magic", 0, b"CFRX"),
    ],
)
def test_an_edited_rounded_score_block_is_refused(keys, rounded, field, offset, value):
    owner, _ = keys
    env = envelope.decode(rounded[0])
    data = bytearray(env.parts["ct"])
    data[offset : offset + len(value)] = value
    env.parts = {"ct": bytes(data)}
    with pytest.raises(EnvelopeError, match="cannot read it"):
        owner.load_ciphertext(env.to_bytes(), kind=envelope.RESULT)


def test_a_truncated_or_lengthened_rounded_score_block_is_refused(keys, rounded):
    owner, _ = keys
    env = envelope.decode(rounded[0])
    for data in (env.parts["ct"][:-5], env.parts["ct"] + b"\0" * 5, env.parts["ct"][:20]):
        env.parts = {"ct": data}
        with pytest.raises(EnvelopeError, match="cannot read it"):
            owner.load_ciphertext(env.to_bytes(), kind=envelope.RESULT)
