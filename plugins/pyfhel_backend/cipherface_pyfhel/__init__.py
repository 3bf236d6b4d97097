"""cipherface backend on Pyfhel 3.5 (Microsoft SEAL 4.x)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from cipherface import CKKSParams, FHEBackend, hookimpl
from cipherface.capabilities import CT_MULTIPLY, EXACT, ROTATION
from cipherface.errors import CipherfaceError, EnvelopeError, ParameterError, SecretKeyRequiredError
from cipherface.params import BFVParams
from cipherface.plugins import LazyModule

pyfhel = LazyModule("Pyfhel")  # loaded when the backend is first used, not when it is registered


def _context(params: CKKSParams | BFVParams):
    he = pyfhel.Pyfhel()
    scheme = (
        {"scheme": "bfv", "t_bits": params.plain_modulus_bits}
        if isinstance(params, BFVParams)
        else {
            "scheme": "ckks",
            "scale": params.scale,
        }
    )
    status = he.contextGen(
        n=params.poly_modulus_degree,
        qi_sizes=list(params.coeff_mod_bit_sizes),
        sec=params.security_level,
        **scheme,
    )
    if status != "success: valid":
        raise ParameterError(f"SEAL (via Pyfhel) refuses {params.to_dict()}: {status}")
    return he


class PyfhelBackend(FHEBackend):
    """CKKS through Pyfhel's Python API."""

    name = "pyfhel"
    thread_safe = True  # operations allocate new ciphertexts; the SEAL objects are read-only

    def __init__(self, params, key_id, rotation_steps, he, secret: bool) -> None:
        super().__init__(params, key_id, rotation_steps)
        self._he = he
        self._secret = secret

    @classmethod
    def library_version(cls) -> str:
        try:
            return version("Pyfhel")
        except PackageNotFoundError:
            return "unknown"

    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        he = _context(params)
        he.keyGen()
        he.relinKeyGen()
        if rotation_steps:
            he.rotateKeyGen(list(rotation_steps))
        return cls(params, key_id, rotation_steps, he, secret=True)

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts: Mapping[str, bytes], secret):
        he = _context(params)
        he.from_bytes_public_key(parts["public_key"])
        he.from_bytes_relin_key(parts["relin_keys"])
        if rotation_steps or parts["galois_keys"]:
            he.from_bytes_rotate_key(parts["galois_keys"])
        if secret:
            he.from_bytes_secret_key(parts["secret_key"])
        # Pyfhel silently generates any key it finds empty when an operation needs it (from an
        # empty secret key on the matcher's side): refuse such a bundle here instead
        empty = [
            name
            for name, is_empty in (
                ("public_key", he.is_public_key_empty()),
                ("relin_keys", he.is_relin_key_empty()),
                ("galois_keys", bool(rotation_steps) and he.is_rotate_key_empty()),
                ("secret_key", secret and he.is_secret_key_empty()),
            )
            if is_empty
        ]
        if empty:
            raise EnvelopeError(f"the bundle's {', '.join(empty)} did not load: refused rather than generated")
        return cls(params, key_id, rotation_steps, he, secret=secret)

    def _bundle_parts(self, secret: bool) -> dict[str, bytes]:
        parts = {
            "public_key": self._he.to_bytes_public_key(),
            "relin_keys": self._he.to_bytes_relin_key(),
            "galois_keys": self._he.to_bytes_rotate_key() if self.rotation_steps else b"",
        }
        if secret:
            parts["secret_key"] = self._he.to_bytes_secret_key()
        return parts

    @property
    def has_secret_key(self) -> bool:
        return self._secret

    def depth_left(self, ct) -> int:
        return self.params.depth_at(self.params.top_index - ct.mod_level)

    def _level_of(self, depth: int) -> int:
        """Pyfhel's ``mod_level`` (switches from the top) of a ciphertext with ``depth`` products left."""
        return self.params.top_index - self.params.chain_index(depth)

    @staticmethod
    def _at(ct, level: int):
        """Set Pyfhel's level counter, which its multiply, rescale and loads do not keep right."""
        ct.mod_level = level
        return ct

    # ------------------------------------------------------------ helpers
    def _encode(self, plain: np.ndarray | float, level: int, scale: float):
        if isinstance(plain, float):
            arr = np.full(self.slot_count, plain)
        else:
            arr = np.zeros(self.slot_count)
            arr[: plain.size] = plain
        pt = self._he.encodeFrac(np.ascontiguousarray(arr), scale=scale)
        for _ in range(level):
            self._he.mod_switch_to_next(pt)
        return pt

    # --------------------------------------------------------- primitives
    def _encrypt(self, values, depth):
        level = self._level_of(depth)
        return self._at(self._he.encryptPtxt(self._encode(values, level, self.params.scale)), level)

    def _decrypt(self, ct):
        if self._he.is_secret_key_empty():  # Pyfhel segfaults decrypting without one
            raise SecretKeyRequiredError("cannot decrypt: this Pyfhel context holds no secret key")
        return self._he.decryptFrac(ct)

    def _add(self, a, b):
        return self._at(self._he.add(a, b, in_new_ctxt=True), a.mod_level)

    def _sub(self, a, b):
        return self._at(self._he.sub(a, b, in_new_ctxt=True), a.mod_level)

    def _negate(self, a):
        return self._at(self._he.negate(a, in_new_ctxt=True), a.mod_level)

    def _add_plain(self, a, plain):
        out = self._he.add_plain(a, self._encode(plain, a.mod_level, a.scale), in_new_ctxt=True)
        return self._at(out, a.mod_level)

    def _multiply(self, a, b, relinearize, rescale):
        out = self._he.multiply(a, b, in_new_ctxt=True)
        if relinearize:
            self._he.relinearize(out)
        out = self._at(out, a.mod_level)
        return self._rescale(out) if rescale else out

    def _multiply_plain(self, a, plain, rescale):
        out = self._he.multiply_plain(a, self._encode(plain, a.mod_level, self.params.scale), in_new_ctxt=True)
        out = self._at(out, a.mod_level)
        return self._rescale(out) if rescale else out

    def _relinearize(self, a):
        out = pyfhel.PyCtxt(copy_ctxt=a)
        self._he.relinearize(out)
        return self._at(out, a.mod_level)

    def _rescale(self, a):
        out = pyfhel.PyCtxt(copy_ctxt=a)
        self._he.rescale_to_next(out)
        return self._at(out, a.mod_level + 1)

    def _drop_level(self, a, levels):
        out = pyfhel.PyCtxt(copy_ctxt=a)
        target = self._level_of(self.depth_left(a) - levels)
        for _ in range(target - a.mod_level):
            self._he.mod_switch_to_next(out)
        return self._at(out, target)

    def _primes_at(self, depth: int) -> int:
        """Primes a serialised ciphertext with ``depth`` products left holds."""
        return self.params.chain_index(depth) + 1

    def _rotate(self, a, step):
        if self._he.is_rotate_key_empty():  # Pyfhel would generate Galois keys here
            raise CipherfaceError(f"cannot rotate by {step}: this key set holds no Galois keys")
        return self._at(self._he.rotate(a, step, in_new_ctxt=True), a.mod_level)

    def _serialize(self, ct) -> bytes:
        return ct.to_bytes()

    def _deserialize(self, data: bytes, depth: int):
        ct = pyfhel.PyCtxt(pyfhel=self._he, bytestring=data)
        # Pyfhel's view of a loaded ciphertext has no level: the envelope records it; check it
        # against the ciphertext's size (polynomials x N x primes x 8 bytes, plus a small header)
        primes, want = len(data) // (ct.size() * self.params.poly_modulus_degree * 8), self._primes_at(depth)
        if primes != want:
            raise ValueError(f"{primes} prime(s) in the ciphertext, {want} for {depth} level(s) left")
        return self._at(ct, self._level_of(depth))


class PyfhelBFVBackend(PyfhelBackend):
    """BFV through Pyfhel: exact integers modulo t in the first batching row (``slot_count`` = N/2,
    within which rotations cycle); a product is switched down to a lower level."""

    name = "pyfhel-bfv"
    scheme = "bfv"
    params_type = BFVParams
    capabilities = frozenset({CT_MULTIPLY, ROTATION, EXACT})
    _fresh_primes: int | None = None

    def _encode(self, plain, level, scale):
        return self._he.encodeInt(self.params.batch_row(plain, self.slot_count))  # valid at every level

    def _encrypt(self, values, depth):
        ct = self._at(self._he.encryptPtxt(self._encode(values, 0, 1.0)), 0)  # BFV encrypts at the top
        return self._drop_level(ct, self.params.depth - depth) if depth < self.params.depth else ct

    def _decrypt(self, ct):
        if self._he.is_secret_key_empty():  # Pyfhel segfaults decrypting without one
            raise SecretKeyRequiredError("cannot decrypt: this Pyfhel context holds no secret key")
        return self._he.decryptInt(ct)[: self.slot_count]

    def _rescale(self, a):
        return self._drop_level(a, 1)

    # Pyfhel 3.5's mod_switch_to_next leaves a BFV ciphertext as it is (its noise budget and size do
    # not change): the ciphertext stays at the top of the chain, and ``mod_level`` only counts the
    # product taken, so the level is still tracked (and recorded in the envelope) as on TenSEAL
    def _drop_level(self, a, levels):
        return self._at(pyfhel.PyCtxt(copy_ctxt=a), self._level_of(self.depth_left(a) - levels))

    def _primes_at(self, depth):
        # every BFV ciphertext keeps the primes it was encrypted with (Pyfhel 3.5 keeps the special
        # prime too for some chains): as many as a fresh encryption has
        if self._fresh_primes is None:
            fresh = self._he.encryptInt(np.zeros(self.params.poly_modulus_degree, dtype=np.int64))
            self._fresh_primes = len(fresh.to_bytes()) // (fresh.size() * self.params.poly_modulus_degree * 8)
        return self._fresh_primes


@hookimpl
def register_backends(register):
    register(PyfhelBackend)
    register(PyfhelBFVBackend)
