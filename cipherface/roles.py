"""The two parties: the key owner (secret key, on-prem) and the matcher (public bundle, cloud)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cipherface import envelope
from cipherface.backend import FHEBackend, open_bundle
from cipherface.capabilities import check_disclosures, protocol_for
from cipherface.errors import (
    CipherfaceError,
    DimensionError,
    IntegrityError,
    SecretKeyRequiredError,
    WrongKindError,
)
from cipherface.integrity import (
    CANARY_SLOTS,
    canaries_fit,
    canary_values,
    check_canaries,
    checked_nonce,
    new_nonce,
)
from cipherface.params import CKKSParams
from cipherface.plugins import get_backend

SECRET_FILE = "secret.cfk"
PUBLIC_FILE = "public.cfk"


def read_blob(source: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise CipherfaceError(f"no such file: {path}")
    return path.read_bytes()


@dataclass(frozen=True)
class Decision:
    """What the key owner learns from one encrypted comparison."""

    metric: str
    value: float  # the decrypted quantity (squared distance for euclidean)
    distance: float  # in threshold units
    threshold: float
    cutoff: float  # what ``value`` is compared with
    same_person: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeyOwner:
    """Holds the secret key: prepares and encrypts embeddings, decrypts and decides."""

    def __init__(self, backend: FHEBackend) -> None:
        if not backend.has_secret_key:
            raise SecretKeyRequiredError(
                f"a KeyOwner needs the secret bundle; backend {backend.name!r} holds only the public bundle"
            )
        check_disclosures(backend)
        self.backend = backend

    @classmethod
    def generate(
        cls,
        backend: str | None = None,
        params: CKKSParams | str | int | None = None,
        *,
        rotation_steps: Sequence[int] | None = None,
        max_dim: int | None = None,
    ) -> KeyOwner:
        return cls(get_backend(backend).generate(params, rotation_steps=rotation_steps, max_dim=max_dim))

    @classmethod
    def load(cls, source: bytes | str | os.PathLike[str]) -> KeyOwner:
        """From a secret bundle (bytes, a file, or a key folder holding secret.cfk)."""
        if not isinstance(source, (bytes, bytearray)) and Path(source).is_dir():
            folder = Path(source)
            source = folder / SECRET_FILE
            if not source.is_file():
                has = "only public.cfk (the matcher's half)" if (folder / PUBLIC_FILE).is_file() else "no key files"
                raise SecretKeyRequiredError(
                    f"key folder {folder} holds {has}, no {SECRET_FILE}: this needs the key owner's secret "
                    "bundle (make one with `cipherface keygen --out DIR`)"
                )
        env = envelope.decode(read_blob(source))
        if env.kind == envelope.PUBLIC_BUNDLE:
            raise WrongKindError("this is a public bundle: a KeyOwner needs the secret bundle (secret.cfk)")
        return cls(open_bundle(env, envelope.SECRET_BUNDLE))

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write secret.cfk (mode 0600) and public.cfk into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner-only when it is made here
        secret, public = folder / SECRET_FILE, folder / PUBLIC_FILE
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(self.backend.export_secret_bundle())
        os.chmod(secret, 0o600)
        public.write_bytes(self.public_bundle())
        return secret, public

    @property
    def key_id(self) -> str:
        return self.backend.key_id

    def public_bundle(self) -> bytes:
        return self.backend.export_public_bundle()

    def encrypt(self, embedding: np.ndarray, metric: str, *, probe: bool = False) -> bytes:
        """Prepare an embedding for ``metric`` (e.g. L2-normalise), check that no result can wrap
        around, and encrypt it with canary slots behind the window the matcher sums. The ``probe``
        of a comparison (the second operand) goes in the clear on a ``probe-in-clear`` backend."""
        protocol = protocol_for(self.backend, metric)
        prepared = protocol.prepare_checked(embedding, self.backend.params.result_limit, probe=probe)
        start = protocol.window(prepared.size)
        if not canaries_fit(start, self.backend.slot_count):
            raise DimensionError(
                f"embedding length {prepared.size} leaves no room for the integrity canaries in "
                f"{self.backend.slot_count} slots: use a parameter set with a larger ring"
            )
        nonce = new_nonce()
        slots = np.zeros(start + CANARY_SLOTS)
        slots[: prepared.size] = prepared
        slots[start:] = protocol.encode(canary_values(self.backend.integrity_key, nonce))
        ct = self.backend.encrypt_probe(slots) if probe else self.backend.encrypt(slots)
        return self.backend.dump_ciphertext(ct, meta={"metric": metric, "dim": int(prepared.size), "nonce": nonce})

    def decrypt_result(self, blob: bytes, metric: str) -> float:
        """The distance value of a matcher's result for the comparison the key owner asked for.

        The key owner's own ``metric`` is used, never the header's; the result is refused unless
        its canaries are the ones planted and its value is one the metric can produce."""
        protocol = protocol_for(self.backend, metric)
        ct, meta = self.backend.load_ciphertext(blob, kind=envelope.RESULT)
        if meta.get("metric") != metric:
            raise IntegrityError(
                f"the result says it is a {meta.get('metric')!r} distance, but the key owner asked for "
                f"{metric!r}: refused (relabelled or mixed up)"
            )
        dim, nonces = meta.get("dim"), meta.get("nonces")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 < dim <= self.backend.slot_count:
            raise IntegrityError(f"the result's header gives an impossible embedding length {str(dim)[:40]}")
        if not isinstance(nonces, list) or len(nonces) != 2:
            raise IntegrityError("the result's header does not name the two ciphertexts it compared")
        start = protocol.window(dim)
        if not canaries_fit(start, self.backend.slot_count):
            raise IntegrityError(f"the result's header gives an embedding length {dim} no canary fits behind")
        key = self.backend.integrity_key
        u, v = (protocol.encode(canary_values(key, checked_nonce(n, "a compared ciphertext"))) for n in nonces)
        slots = self.backend.decrypt_at(ct, [0, *range(start, start + CANARY_SLOTS)])
        check_canaries(slots[1:], protocol.window_values(u, v, dim, CANARY_SLOTS), "the result")
        protocol.check_values(slots[0], self.backend.params.result_limit, "the result")
        return float(slots[0])

    def decide(self, blob: bytes, threshold: float, metric: str) -> Decision:
        """Decrypt a result for ``metric`` (the key owner's record) and decide against ``threshold``."""
        threshold = checked_threshold(threshold)
        value = self.decrypt_result(blob, metric)
        protocol = protocol_for(self.backend, metric)
        return Decision(
            metric=protocol.name,
            value=value,
            distance=protocol.distance(value),
            threshold=threshold,
            cutoff=protocol.cutoff(threshold),
            same_person=protocol.decide(value, threshold),
        )


def checked_threshold(threshold: float) -> float:
    value = float(threshold)
    if not np.isfinite(value) or value < 0:
        raise CipherfaceError(f"a distance threshold must be a finite number >= 0, got {threshold}")
    return value


class Matcher:
    """Holds only the public bundle: computes encrypted distances, can decrypt nothing."""

    def __init__(self, public_bundle: bytes | str | os.PathLike[str]) -> None:
        env = envelope.decode(read_blob(public_bundle))
        if env.kind == envelope.SECRET_BUNDLE:
            raise WrongKindError(
                "a Matcher must be given the public bundle, never the secret bundle (it holds the secret key)"
            )
        self.backend = open_bundle(env, envelope.PUBLIC_BUNDLE)

    @property
    def key_id(self) -> str:
        return self.backend.key_id

    def distance(self, a: bytes, b: bytes) -> bytes:
        """The encrypted distance between two encrypted embeddings, as a result blob."""
        ct_a, meta_a = self.backend.load_ciphertext(a)
        ct_b, meta_b = self.backend.load_ciphertext(b)
        if meta_a.get("metric") != meta_b.get("metric"):
            raise DimensionError(
                f"embeddings were prepared for different metrics ({meta_a.get('metric')} vs {meta_b.get('metric')})"
            )
        if meta_a.get("dim") != meta_b.get("dim"):
            raise DimensionError(f"embedding lengths differ: {meta_a.get('dim')} vs {meta_b.get('dim')}")
        metric, dim = meta_a.get("metric"), meta_a.get("dim")
        if not isinstance(metric, str) or isinstance(dim, bool) or not isinstance(dim, int):
            raise DimensionError(f"ciphertext header has no valid metric and dim (got {metric!r:.40}, {dim!r:.40})")
        if not 0 < dim <= self.backend.slot_count:
            raise DimensionError(f"ciphertext header gives dim {dim}, outside 1..{self.backend.slot_count}")
        try:
            result = protocol_for(self.backend, metric).encrypted(self.backend, ct_a, ct_b, dim)
        except CipherfaceError:
            raise
        except Exception as exc:  # the library refused mid-computation: name it, never a bare library error
            raise CipherfaceError(f"backend {self.backend.name!r} failed on a {metric} distance: {exc}") from None
        meta = {"metric": metric, "dim": dim, "nonces": [meta_a.get("nonce"), meta_b.get("nonce")]}
        return self.backend.dump_ciphertext(result, kind=envelope.RESULT, meta=meta)
