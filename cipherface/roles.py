"""The two parties: the key owner (secret key, on-prem) and the matcher (public bundle, cloud)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cipherface import envelope
from cipherface.backend import FHEBackend
from cipherface.errors import CipherfaceError, DimensionError, SecretKeyRequiredError, WrongKindError
from cipherface.params import CKKSParams
from cipherface.plugins import get_backend, get_protocol

SECRET_FILE = "secret.cfk"
PUBLIC_FILE = "public.cfk"


def load_backend(blob: bytes) -> FHEBackend:
    """The backend instance a secret or public bundle belongs to, found by its name."""
    env = envelope.expect(blob, kind=(envelope.SECRET_BUNDLE, envelope.PUBLIC_BUNDLE))
    return get_backend(env.backend).load_bundle(blob)


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
        self.backend = backend

    @classmethod
    def generate(
        cls,
        backend: str | None = None,
        params: CKKSParams | str | int | None = None,
        *,
        rotation_steps: Sequence[int] | None = None,
    ) -> KeyOwner:
        return cls(get_backend(backend).generate(params, rotation_steps=rotation_steps))

    @classmethod
    def load(cls, source: bytes | str | os.PathLike[str]) -> KeyOwner:
        """From a secret bundle (bytes, a file, or a key folder holding secret.cfk)."""
        if not isinstance(source, (bytes, bytearray)) and Path(source).is_dir():
            source = Path(source) / SECRET_FILE
        blob = read_blob(source)
        if envelope.decode(blob).kind == envelope.PUBLIC_BUNDLE:
            raise WrongKindError("this is a public bundle: a KeyOwner needs the secret bundle (secret.cfk)")
        return cls(load_backend(blob))

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write secret.cfk (mode 0600) and public.cfk into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
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

    def encrypt(self, embedding: np.ndarray, metric: str) -> bytes:
        """Prepare an embedding for ``metric`` (e.g. L2-normalise) and encrypt it."""
        protocol = get_protocol(metric)
        prepared = protocol.prepare(embedding)
        ct = self.backend.encrypt(prepared)
        return self.backend.dump_ciphertext(ct, meta={"metric": metric, "dim": int(prepared.size)})

    def decrypt_result(self, blob: bytes) -> tuple[float, dict[str, Any]]:
        """The decrypted value in slot 0 of a matcher's result, with its metadata."""
        ct, meta = self.backend.load_ciphertext(blob, kind=envelope.RESULT)
        return float(self.backend.decrypt(ct, 1)[0]), meta

    def decide(self, blob: bytes, threshold: float) -> Decision:
        value, meta = self.decrypt_result(blob)
        protocol = get_protocol(meta["metric"])
        return Decision(
            metric=protocol.name,
            value=value,
            distance=protocol.distance(value),
            threshold=float(threshold),
            cutoff=protocol.cutoff(threshold),
            same_person=protocol.decide(value, threshold),
        )


class Matcher:
    """Holds only the public bundle: computes encrypted distances, can decrypt nothing."""

    def __init__(self, public_bundle: bytes | str | os.PathLike[str]) -> None:
        blob = read_blob(public_bundle)
        if envelope.decode(blob).kind == envelope.SECRET_BUNDLE:
            raise WrongKindError(
                "a Matcher must be given the public bundle, never the secret bundle (it holds the secret key)"
            )
        self.backend = load_backend(blob)

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
        metric, dim = meta_a["metric"], int(meta_a["dim"])
        result = get_protocol(metric).encrypted(self.backend, ct_a, ct_b, dim)
        return self.backend.dump_ciphertext(result, kind=envelope.RESULT, meta={"metric": metric, "dim": dim})
