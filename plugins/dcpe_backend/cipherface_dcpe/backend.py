"""The DCPE backend: vectors of reals the matcher reads, made by IronCore Alloy's vector encryption."""

from __future__ import annotations

import asyncio
import secrets
import struct
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from cipherface import FHEBackend
from cipherface.capabilities import APPROXIMATE, DISTANCE_PRESERVING, ROTATION
from cipherface.errors import CipherfaceError, EnvelopeError, KeyMismatchError
from cipherface.plugins import LazyModule
from cipherface_dcpe.params import DcpeParams

alloy = LazyModule("ironcore_alloy")

_MAGIC = b"CFDV1"
_HEADER = struct.Struct(">5sBI")  # magic, products left, stored values
_SECRET_BYTES = 32
#: Alloy's names for the one vector secret and the one derived key every embedding uses (the same
#: shuffle and scale for all: distances are comparable only between vectors of one derivation).
_SECRET_PATH, _DERIVATION_PATH = "faces", "cipherface"


@dataclass(frozen=True)
class DcpeSlots:
    """``slot_count`` reals (DCPE-transformed embeddings, canaries, or what was computed from them)
    and the products they can still take (1 fresh, 0 after one)."""

    values: np.ndarray
    depth: int


class DcpeBackend(FHEBackend):
    name = "dcpe"
    scheme = "dcpe"
    params_type = DcpeParams
    capabilities = frozenset({APPROXIMATE, ROTATION, DISTANCE_PRESERVING})
    thread_safe = False  # one event loop per instance drives Alloy's async API
    public_parts = ()  # a symmetric scheme: the matcher needs no key at all
    secret_parts = ("secret_key",)

    def __init__(self, params, key_id, rotation_steps, secret: bytes | None):
        super().__init__(params, key_id, rotation_steps)
        self._secret = secret
        self._sdk = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def library_version(cls) -> str:
        try:
            return f"ironcore-alloy {version('ironcore-alloy')}"
        except PackageNotFoundError:
            return "unknown"

    # ------------------------------------------------------------ keys
    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        return cls(params, key_id, rotation_steps, secrets.token_bytes(_SECRET_BYTES))

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts: Mapping[str, bytes], secret):
        key = parts["secret_key"] if secret else None
        if key is not None and len(key) != _SECRET_BYTES:
            raise EnvelopeError(f"a DCPE secret key has {_SECRET_BYTES} bytes, this one {len(key)}")
        return cls(params, key_id, rotation_steps, key)

    def _bundle_parts(self, secret: bool) -> dict[str, bytes]:
        return {"secret_key": self._secret} if secret else {}

    @property
    def has_secret_key(self) -> bool:
        return self._secret is not None

    # ------------------------------------------------------------ the transform
    def _encrypt_vector(self, values):
        if self._sdk is None:
            secret = alloy.RotatableSecret(alloy.StandaloneSecret(1, alloy.Secret(self._secret)), None)
            vector = {_SECRET_PATH: alloy.VectorSecret(self.params.approximation_factor, secret)}
            config = alloy.StandaloneConfiguration(alloy.StandardSecrets(None, []), {}, vector)
            self._sdk, self._loop = alloy.Standalone(config), asyncio.new_event_loop()
        plain = alloy.PlaintextVector(
            plaintext_vector=[float(v) for v in values], secret_path=_SECRET_PATH, derivation_path=_DERIVATION_PATH
        )
        call = self._sdk.vector().encrypt(plain, alloy.AlloyMetadata.new_simple(self.key_id))
        try:
            out = self._run(call)
        except alloy.AlloyError as exc:
            raise CipherfaceError(f"IronCore Alloy refused to encrypt a vector: {exc}") from None
        return out.encrypted_vector

    def _run(self, call):
        """Alloy's coroutine to completion: on this instance's own loop, or, when the caller is
        inside a running event loop (a web handler), on a loop in a helper thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(call)
        with ThreadPoolExecutor(1) as helper:
            return helper.submit(asyncio.run, call).result()

    # ------------------------------------------------------------ slots
    def depth_left(self, ct: DcpeSlots) -> int:
        return ct.depth

    def _scale(self, ct: DcpeSlots) -> float:
        return 1.0

    def _padded(self, values) -> np.ndarray:
        out = np.zeros(self.slot_count)
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim == 0:
            out[:] = arr
        else:
            out[: arr.size] = arr
        return out

    def _encrypt(self, values, depth):
        # the values are laid as they are: what the matcher must not read in the clear is the
        # embedding, which the protocols transform first (encrypt_vector)
        return DcpeSlots(self._padded(values), depth)

    def _visible(self, ct):
        return ct.values

    def _decrypt(self, ct):
        return ct.values

    def _add(self, a, b):
        return DcpeSlots(a.values + b.values, a.depth)

    def _sub(self, a, b):
        return DcpeSlots(a.values - b.values, a.depth)

    def _negate(self, a):
        return DcpeSlots(-a.values, a.depth)

    def _add_plain(self, a, plain):
        return DcpeSlots(a.values + self._padded(plain), a.depth)

    def _multiply(self, a, b, relinearize, rescale):
        return DcpeSlots(a.values * b.values, a.depth - 1)

    def _multiply_plain(self, a, plain, rescale):
        return DcpeSlots(a.values * self._padded(plain), a.depth - 1)

    def _inner_product(self, a, b):
        return DcpeSlots(np.einsum("ij,ij->j", np.array([x.values for x in a]), np.array([y.values for y in b])), 0)

    def _relinearize(self, a):
        return a

    def _rescale(self, a):
        return a

    def _drop_level(self, a, levels):
        return DcpeSlots(a.values, a.depth - levels)

    def _rotate(self, a, step):
        return DcpeSlots(np.roll(a.values, -step), a.depth)

    # ------------------------------------------------------------ bytes
    def _serialize(self, ct) -> bytes:
        nonzero = np.flatnonzero(ct.values)
        count = int(nonzero[-1]) + 1 if nonzero.size else 0  # trailing zeros are not stored
        return _HEADER.pack(_MAGIC, ct.depth, count) + ct.values[:count].astype("<f8").tobytes()

    def _deserialize(self, data: bytes, depth: int):
        if len(data) < _HEADER.size:
            raise EnvelopeError("not a DCPE vector: too short")
        magic, stored_depth, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise EnvelopeError("not a DCPE vector")
        if count > self.slot_count:
            raise KeyMismatchError(f"a vector of {count} values, this key's vectors have {self.slot_count} slots")
        if len(data) != _HEADER.size + 8 * count:
            raise EnvelopeError(
                f"a DCPE vector of {count} values needs {_HEADER.size + 8 * count} bytes, not {len(data)}"
            )
        values = np.frombuffer(data, dtype="<f8", count=count, offset=_HEADER.size).astype(np.float64)
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) > self.params.result_limit):
            raise EnvelopeError("a DCPE vector holds values no computation of this backend gives")
        return DcpeSlots(self._padded(values), stored_depth)
