"""Malformed blobs, at random, against everything that loads them (``bench/fuzz.py``, tests).

Every kind of blob the key owner or the matcher reads is mutated (truncated, a bit flipped,
bytes appended, a header field replaced by junk or payload bytes changed, the checksum made to
match again so the damage reaches the field checks and the FHE library) and handed to the code
that consumes it. Each outcome is one of: refused with a ``CipherfaceError``; accepted with the
original decision; accepted with another decision (a failure); another exception escaping (a
failure); the process dying or hanging (a failure, caught by running each batch in a child).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from cipherface import envelope
from cipherface.errors import CipherfaceError

GALLERY_KINDS = ("gallery-block", "probe")
KINDS = ("secret-bundle", "public-bundle", "ciphertext", "result", *GALLERY_KINDS)
BAD = ("accepted, different decision", "escaped", "crashed", "hung")
_JUNK: tuple[Any, ...] = (None, -1, 0, 2**70, 1.5, True, "", "x" * 300, [], {}, [[["deep"]]], "result", "cosine")


def repack(blob: bytes, header: dict[str, Any] | bytes, payload: bytes) -> bytes:
    """An envelope with this header and payload and a checksum that matches them."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    version = struct.unpack_from(">H", blob, len(envelope.MAGIC))[0]
    prefix = envelope.MAGIC + struct.pack(">HI", version, len(raw)) + raw
    return prefix + hashlib.sha256(prefix + payload).digest() + payload


def _split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    start = len(envelope.MAGIC)
    head_len = struct.unpack_from(">I", blob, start + 2)[0]
    header = json.loads(blob[start + 6 : start + 6 + head_len])
    return header, blob[start + 6 + head_len + 32 :]


def mutate(blob: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of a blob, and its name."""
    how = rng.choice(["truncate", "flip_bit", "append", "header_field", "payload_bytes"])
    data = bytearray(blob)
    if how == "truncate":
        return how, bytes(data[: int(rng.integers(0, len(data)))])
    if how == "flip_bit":
        i = int(rng.integers(0, len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))
        return how, bytes(data)
    if how == "append":
        return how, bytes(data) + rng.bytes(int(rng.integers(1, 64)))
    header, payload = _split(blob)
    if how == "header_field":
        target = header
        keys = list(header)
        key = keys[int(rng.integers(0, len(keys)))]
        if isinstance(header[key], dict) and header[key] and rng.random() < 0.7:
            target, keys = header[key], list(header[key])
            key = keys[int(rng.integers(0, len(keys)))]
        target[key] = _JUNK[int(rng.integers(0, len(_JUNK)))]
        return how, repack(blob, header, payload)
    body = bytearray(payload)
    for _ in range(int(rng.integers(1, 8))):
        if body:
            body[int(rng.integers(0, len(body)))] = int(rng.integers(0, 256))
    return how, repack(blob, header, bytes(body))


def targets(backend: str) -> dict[str, tuple[bytes, Callable[[bytes], Any]]]:
    """For each kind: a genuine blob and the consumer that turns such a blob into a decision."""
    from cipherface import KeyOwner, Matcher
    from cipherface.backend import power_of_two_steps

    owner = KeyOwner.generate(backend, rotation_steps=power_of_two_steps(128))
    matcher = Matcher(owner.public_bundle())
    rng = np.random.default_rng(7)
    a = rng.normal(size=128) * 0.05
    b = a + rng.normal(size=128) * 0.004
    ea, eb = owner.encrypt(a, "cosine"), owner.encrypt(b, "cosine")
    result = matcher.distance(ea, eb)

    def decided(owner_: KeyOwner, blob: bytes) -> tuple[bool, float]:
        d = owner_.decide(blob, 0.07, "cosine")
        return d.same_person, round(d.distance, 3)

    return {
        "secret-bundle": (owner.backend.export_secret_bundle(), lambda x: decided(KeyOwner.load(x), result)),
        "public-bundle": (owner.public_bundle(), lambda x: decided(owner, Matcher(x).distance(ea, eb))),
        "ciphertext": (ea, lambda x: decided(owner, matcher.distance(x, eb))),
        "result": (result, lambda x: decided(owner, x)),
    }


def gallery_targets(backend: str) -> dict[str, tuple[bytes, Callable[[bytes], Any]]]:
    """A one-block gallery (d=16, in a temporary folder removed at exit): a stored block ciphertext
    and a probe ciphertext, each consumed by a whole identification."""
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from cipherface.gallery.packing import encrypt_probe
    from cipherface.identification import Identifier

    folder = Path(tempfile.mkdtemp(prefix="cipherface-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    rng = np.random.default_rng(8)
    people = rng.normal(size=(12, 16))
    ident = Identifier.open(folder / "g.db", folder / "keys", create=True, backend=backend, metric="cosine", dim=16)
    atexit.register(ident.close)
    ident.enroll([f"p{i}" for i in range(len(people))], list(people), progress=False)
    probe_vector = people[5] + rng.normal(size=16) * 0.01
    probe, row, offset = encrypt_probe(ident.owner.backend, ident.protocol, probe_vector)
    stored = ident.gallery.store.read_block(0)[3]
    at = 0 if len(probe) == 1 else 3  # the packed probe, or one of its component ciphertexts

    def named(found: Any) -> tuple[str | None, float]:
        return found.identity, round(found.candidates[0].distance, 3)

    def with_block(blob: bytes) -> tuple[str | None, float]:
        with ident.gallery.store.transaction() as sql:
            sql.execute("UPDATE blocks SET data = ? WHERE block = 0 AND component = 3", (blob,))
        ident.gallery.reload()  # the seal is unchanged: read the edited block as a fresh matcher would
        return with_probe(probe[at])

    def with_probe(blob: bytes) -> tuple[str | None, float]:
        edited = [*probe[:at], blob, *probe[at + 1 :]]
        return named(ident.identify_encrypted(edited, row, offset, top_k=1, threshold=0.07))

    return {"gallery-block": (stored, with_block), "probe": (probe[at], with_probe)}


def run_batch(backend: str, kind: str, count: int, seed: int) -> dict[str, int]:
    """``count`` mutations of one kind of blob, in this process: outcomes counted."""
    blob, consume = (gallery_targets(backend) if kind in GALLERY_KINDS else targets(backend))[kind]
    original = consume(blob)
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    for _ in range(count):
        how, bad = mutate(blob, rng)
        try:
            got = consume(bad)
        except CipherfaceError:
            outcomes["refused"] += 1
        except Exception as exc:  # what the fuzzer is here to find
            outcomes[f"escaped: {type(exc).__name__} ({how})"] += 1
        else:
            outcomes["accepted, same decision" if got == original else f"accepted, different decision ({how})"] += 1
    return dict(outcomes)


def _child(conn, backend: str, kind: str, count: int, seed: int) -> None:
    conn.send(run_batch(backend, kind, count, seed))


def fuzz(backend: str, kind: str, count: int, seed: int = 0, timeout: float = 600.0) -> dict[str, int]:
    """A batch in a child process, so a native crash or a hang is counted, not suffered."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, backend, kind, count, seed), daemon=True)
    proc.start()
    child.close()
    if not parent.poll(timeout):
        proc.kill()
        proc.join()
        return {"hung": count}
    try:
        outcomes = parent.recv()
    except EOFError:
        outcomes = None
    proc.join(10)
    if outcomes is None:
        return {f"crashed (exit code {proc.exitcode})": count}
    return outcomes


def failures(outcomes: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in outcomes.items() if k.startswith(BAD)}
