"""SEAL's serialisation format, as far as this plugin reads or writes it itself.

A serialised SEAL object is a 16-byte header (magic, header size, SEAL version, compression mode,
size) and the object's members, compressed as the header says. SEAL's Python bindings save with
its default mode, zstd; but a ciphertext at one 60-bit prime is random 60-bit words that zstd
cannot shrink, and SEAL's own zstd reading costs about 0.15 ms per load (a third of loading a
seeded ciphertext). ``smallest`` keeps zstd only where it saves bytes; SEAL loads either form.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import zstandard

HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, version major/minor, compression, reserved, size
MEMBERS = struct.Struct("<32sB3QdQ")  # a ciphertext's: parms_id, is_ntt_form, size, N, primes, scale, correction
MAGIC, NONE, ZSTD = 0xA15E, 0, 2
#: Larger than any object SEAL serialises here (a Galois key set at N=16384 is about 100 MB).
MAX_BODY = 1 << 31


def body(raw: bytes) -> tuple[tuple[int, ...], bytes] | None:
    """The header fields and the uncompressed members of SEAL-serialised bytes, or None when they
    are not SEAL's (or compressed some other way)."""
    if len(raw) < HEADER.size:
        return None
    fields = HEADER.unpack_from(raw)
    if fields[0] != MAGIC or fields[4] not in (NONE, ZSTD):
        return None
    members = raw[HEADER.size :]
    if fields[4] == ZSTD:
        members = zstandard.ZstdDecompressor().decompress(members, max_output_size=MAX_BODY)
    return fields, members


def smallest(raw: bytes) -> bytes:
    """SEAL-serialised bytes uncompressed where zstd saved nothing, else as they are."""
    parsed = body(raw)
    if parsed is None or parsed[0][4] != ZSTD or HEADER.size + len(parsed[1]) > len(raw):
        return raw
    (magic, size, major, minor, _, reserved, _), members = parsed
    return HEADER.pack(magic, size, major, minor, NONE, reserved, HEADER.size + len(members)) + members


@dataclass(frozen=True)
class Level:
    """What a CKKS ciphertext at one level of a context must say about itself."""

    version: tuple[int, int]  # the SEAL version this library writes
    parms_id: bytes  # 4 little-endian words
    degree: int
    moduli: np.ndarray  # the level's primes (uint64)
    bits: int  # their total bit count: a scale must have fewer


#: SEAL's ciphertext sizes, and its pseudo-random generators (1 Blake2xb, 2 SHAKE-256).
MIN_SIZE, MAX_SIZE, PRNG_TYPES, SEED_BYTES = 2, 16, (1, 2), 64


def ckks_problem(raw: bytes, level: Level) -> str | None:
    """Why SEAL would not load ``raw`` as a CKKS ciphertext at ``level``, or None: the checks of its
    ``Ciphertext::load`` (header, metadata, sizes, every coefficient below its prime, the seed's
    generator) without expanding a seed, about a tenth of the time. Stricter than SEAL where it is
    simpler (this library's version and flags exactly)."""
    parsed = body(raw)
    if parsed is None:
        return "not SEAL's serialisation"
    fields, data = parsed
    if fields[1] != HEADER.size or fields[2:4] != level.version or fields[6] != len(raw):
        return "SEAL header of another version or size"
    if len(data) < MEMBERS.size:
        return "truncated"
    parms_id, ntt, size, degree, primes, scale, correction = MEMBERS.unpack_from(data)
    if parms_id != level.parms_id:
        return "parameters of another level or context"
    if ntt != 1 or degree != level.degree or primes != len(level.moduli) or correction != 1:
        return "metadata of another kind of ciphertext"
    if not MIN_SIZE <= size <= MAX_SIZE:
        return f"size {size}"
    if not (math.isfinite(scale) and scale > 0 and math.log2(scale) < level.bits):
        return f"scale {scale!r} out of bounds"
    offset, count = MEMBERS.size, primes * degree
    array = HEADER.unpack_from(data, offset) if len(data) >= offset + HEADER.size + 8 else None
    stored = struct.unpack_from("<Q", data, offset + HEADER.size)[0] if array else -1
    seeded = stored == count and size == 2
    if array is None or array[0] != MAGIC or array[1] != HEADER.size or array[2:5] != (*level.version, NONE):
        return "coefficient array header"
    if stored != (count if seeded else size * count) or array[6] != HEADER.size + 8 + 8 * stored:
        return "coefficient array of another size"
    start = offset + HEADER.size + 8
    end = start + 8 * stored
    rest = data[end:]
    if seeded:
        info = HEADER.unpack_from(rest) if len(rest) >= HEADER.size else None
        if info is None or info[0] != MAGIC or info[1] != HEADER.size or info[2:5] != (*level.version, NONE):
            return "seed header"
        if info[6] != len(rest) or len(rest) != HEADER.size + 1 + SEED_BYTES or rest[HEADER.size] not in PRNG_TYPES:
            return "seed of another size or generator"
    elif rest:
        return "bytes after the ciphertext"
    coefficients = np.frombuffer(data, dtype="<u8", offset=start, count=stored).reshape(-1, primes, degree)
    if np.any(coefficients >= level.moduli[None, :, None]):
        return "a coefficient is not below its prime"
    return None


def ciphertext(version: tuple[int, int], parms_id: bytes, ntt: bool, scale: float, residues: np.ndarray) -> bytes:
    """SEAL's serialisation (uncompressed) of a ciphertext whose residues are ``residues``
    (size x primes x N, uint64)."""
    size, primes, degree = residues.shape
    payload = np.ascontiguousarray(residues, dtype="<u8").tobytes()
    array = HEADER.pack(MAGIC, HEADER.size, *version, NONE, 0, HEADER.size + 8 + len(payload))
    body = MEMBERS.pack(parms_id, int(ntt), size, degree, primes, scale, 1) + array
    body += struct.pack("<Q", residues.size) + payload
    return HEADER.pack(MAGIC, HEADER.size, *version, NONE, 0, HEADER.size + len(body)) + body


# ------------------------------------------------------------------ rounded ciphertexts
#: A ciphertext of one prime, in coefficient form, each coefficient rounded to a multiple of 2^k
#: and stored in ``width`` bytes: magic, k, width, N, parms_id, scale; then 2 x N coefficients.
ROUNDED = struct.Struct("<4sBBI32sd")
ROUNDED_MAGIC = b"CFRC"


def droppable_bits(error: float, scale: float, degree: int) -> int:
    """The low-order bits of a one-prime ciphertext's coefficients that can be rounded away while
    what it decrypts to moves by at most ``error`` per slot. Rounding c0 and c1 by up to 2^(k-1)
    adds δ0 + δ1·s to the plaintext polynomial (s ternary: each coefficient a sum of about 2N/3
    terms ±δ), so a standard deviation of 2^(k-1)·sqrt((1 + 2N/3)/3) per coefficient and sqrt(N)
    times that per slot, divided by the scale; ``error`` is taken as 16 of those deviations."""
    deviation = math.sqrt((1 + 2 * degree / 3) / 3) * math.sqrt(degree) / scale
    limit = error / (16 * deviation)  # the largest 2^(k-1)
    return 0 if limit < 1 else min(math.floor(math.log2(limit)) + 1, 48)


def rounded(raw: bytes, bits: int, modulus: int) -> bytes | None:
    """A one-prime, size-2 ciphertext in coefficient form (SEAL's serialisation) with each
    coefficient rounded to a multiple of 2^bits and stored in the bytes the rest needs; None when
    that saves nothing."""
    parsed = body(raw)
    if parsed is None:
        return None
    _, data = parsed
    parms_id, ntt, size, degree, primes, scale, _ = MEMBERS.unpack_from(data)
    width = -(-(modulus.bit_length() - bits) // 8)
    if ntt or size != 2 or primes != 1 or width >= 8 or bits < 1:
        return None
    start = MEMBERS.size + HEADER.size + 8
    coefficients = np.frombuffer(data, dtype="<u8", offset=start, count=2 * degree)
    kept = (coefficients + np.uint64(1 << (bits - 1))) >> np.uint64(bits)  # to the nearest (below 2^61)
    # a coefficient within 2^(k-1) of 2^bits(q) rounds to 2^bits(q) - q, and 0 is as close: it wraps
    kept &= np.uint64((1 << (8 * width)) - 1)
    packed = kept.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :width]
    return ROUNDED.pack(ROUNDED_MAGIC, bits, width, degree, parms_id, scale) + packed.tobytes()


def unrounded(data: bytes, level: Level) -> bytes:
    """SEAL's serialisation (coefficient form) of a ``rounded`` ciphertext at ``level``; ValueError
    for anything else (these bytes come from the matcher)."""
    if len(data) < ROUNDED.size:
        raise ValueError("truncated rounded ciphertext")
    magic, bits, width, degree, parms_id, scale = ROUNDED.unpack_from(data)
    if magic != ROUNDED_MAGIC or len(level.moduli) != 1 or parms_id != level.parms_id or degree != level.degree:
        raise ValueError("a rounded ciphertext of another level or context")
    modulus = int(level.moduli[0])
    if not (0 < bits < modulus.bit_length() and width == -(-(modulus.bit_length() - bits) // 8) < 8):
        raise ValueError(f"rounded to {bits} bits in {width} bytes: not how this level is rounded")
    if not (math.isfinite(scale) and scale > 0 and math.log2(scale) < level.bits):
        raise ValueError(f"scale {scale!r} out of bounds")
    if len(data) != ROUNDED.size + 2 * degree * width:
        raise ValueError("a rounded ciphertext of another size")
    packed = np.frombuffer(data, dtype=np.uint8, offset=ROUNDED.size).reshape(-1, width)
    words = np.zeros((packed.shape[0], 8), dtype=np.uint8)
    words[:, :width] = packed
    coefficients = (words.view("<u8")[:, 0] << np.uint64(bits)) % np.uint64(modulus)
    return ciphertext(level.version, parms_id, False, scale, coefficients.reshape(2, 1, degree))
