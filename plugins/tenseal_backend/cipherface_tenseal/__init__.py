"""cipherface backend on TenSEAL.

TenSEAL's high-level ``CKKSVector`` has no rotation and always generates every
power-of-two Galois key (35 MB at N=8192), so this backend drives the Microsoft
SEAL build TenSEAL ships through its low-level ``tenseal.sealapi`` bindings:
only the Galois keys the caller asks for are generated, relinearisation and
rescaling can be deferred, and ciphertexts can be dropped to lower levels.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import struct
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from cipherface import CKKSParams, FHEBackend, hookimpl
from cipherface.backend import galois_element
from cipherface.capabilities import (
    CT_MULTIPLY,
    EXACT,
    LAST_PRIME,
    LEVELS,
    NATIVE_INNER_PRODUCT,
    PACKED_PROBE,
    ROTATION,
    SEEDED_ENCRYPTION,
)
from cipherface.errors import CipherfaceError, EnvelopeError, ParameterError
from cipherface.params import BFVParams
from cipherface.plugins import LazyModule
from cipherface_tenseal import kernel, seal_format

seal = LazyModule("tenseal.sealapi")  # loaded when the backend is first used, not when it is registered


class _Scratch:
    """SEAL's Python bindings serialise only to file paths: a private folder
    (on tmpfs where there is one, mode 0700) holds each file for one call.

    The folder is named after this process, and folders of processes that are gone (killed
    before their exit handler ran) are removed when the next one starts."""

    PREFIX = "cipherface-seal-"

    def __init__(self) -> None:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
        self._sweep(base)
        self.dir = tempfile.mkdtemp(prefix=f"{self.PREFIX}{os.getpid()}-", dir=base)
        atexit.register(shutil.rmtree, self.dir, True)

    @classmethod
    def _sweep(cls, base: str) -> None:
        for folder in Path(base).glob(cls.PREFIX + "*"):
            pid = folder.name[len(cls.PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    def _path(self) -> str:
        return os.path.join(self.dir, secrets.token_hex(8))

    def dump(self, obj) -> bytes:
        path = self._path()
        try:
            obj.save(path)
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            if os.path.exists(path):
                os.unlink(path)

    def load(self, obj, context, data: bytes):
        path = self._path()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            obj.load(context, path)
            return obj
        finally:
            if os.path.exists(path):
                os.unlink(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


_scratch = _Scratch()


def _ciphertext_bytes(ct) -> bytes:
    """A ciphertext as SEAL serialises it, uncompressed where zstd saves nothing (``seal_format``)."""
    return seal_format.smallest(_scratch.dump(ct))


def _context(params: CKKSParams | BFVParams):
    bfv = isinstance(params, BFVParams)
    parms = seal.EncryptionParameters(seal.SCHEME_TYPE.BFV if bfv else seal.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(params.poly_modulus_degree)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(params.poly_modulus_degree, list(params.coeff_mod_bit_sizes)))
    if bfv:
        parms.set_plain_modulus(seal.PlainModulus.Batching(params.poly_modulus_degree, params.plain_modulus_bits))
    level = {128: seal.SEC_LEVEL_TYPE.TC128, 192: seal.SEC_LEVEL_TYPE.TC192, 256: seal.SEC_LEVEL_TYPE.TC256}
    context = seal.SEALContext(parms, True, level[params.security_level])
    if not context.parameters_set():
        raise ParameterError(f"SEAL refuses {params.to_dict()}: {context.parameters_error_message()}")
    return context


@functools.lru_cache(maxsize=4)
def _slot_roots(n: int) -> np.ndarray:
    """3^i mod 2N for each CKKS slot i of SEAL 4 (its slots' order)."""
    return np.array([pow(3, i, 2 * n) for i in range(n // 2)], dtype=np.int64)


class TenSEALBackend(FHEBackend):
    """CKKS on the Microsoft SEAL inside TenSEAL 0.3.18."""

    name = "tenseal"
    capabilities = FHEBackend.capabilities | {SEEDED_ENCRYPTION, PACKED_PROBE, NATIVE_INNER_PRODUCT, LAST_PRIME}
    thread_safe = True  # SEAL's evaluator, encoder and encryptor are safe to share

    def __init__(self, params, key_id, rotation_steps, context, public_key, relin_keys, galois_keys, secret_key):
        super().__init__(params, key_id, rotation_steps)
        self._context = context
        self._public_key = public_key
        self._relin_keys = relin_keys
        self._galois_keys = galois_keys
        self._secret_key = secret_key
        self._encoder = self._make_encoder(context)
        self._evaluator = seal.Evaluator(context)
        self._encryptor = seal.Encryptor(context, public_key)
        self._decryptor = seal.Decryptor(context, secret_key) if secret_key is not None else None
        self._monomials: dict[tuple[int, int], object] = {}  # (power, depth) -> plaintext, for expansion
        if secret_key is not None:
            self._encryptor.set_secret_key(secret_key)  # for seeded (symmetric) encryption

    @classmethod
    def library_version(cls) -> str:
        try:
            return version("tenseal")
        except PackageNotFoundError:
            return "unknown"

    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        context = _context(params)
        keygen = seal.KeyGenerator(context)
        public_key, relin_keys, galois_keys = seal.PublicKey(), seal.RelinKeys(), seal.GaloisKeys()
        keygen.create_public_key(public_key)
        keygen.create_relin_keys(relin_keys)
        if rotation_steps:
            elts = [galois_element(s, params.poly_modulus_degree) for s in rotation_steps]
            keygen.create_galois_keys(elts, galois_keys)
        return cls(params, key_id, rotation_steps, context, public_key, relin_keys, galois_keys, keygen.secret_key())

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts: Mapping[str, bytes], secret):
        context = _context(params)
        public_key = _scratch.load(seal.PublicKey(), context, parts["public_key"])
        relin_keys = _scratch.load(seal.RelinKeys(), context, parts["relin_keys"])
        galois_keys = seal.GaloisKeys()
        if rotation_steps or parts["galois_keys"]:
            _scratch.load(galois_keys, context, parts["galois_keys"])
        missing = [s for s in rotation_steps if not galois_keys.has_key(galois_element(s, params.poly_modulus_degree))]
        if missing:
            raise EnvelopeError(f"the bundle lists rotation steps {missing} but holds no Galois key for them")
        secret_key = _scratch.load(seal.SecretKey(), context, parts["secret_key"]) if secret else None
        return cls(params, key_id, rotation_steps, context, public_key, relin_keys, galois_keys, secret_key)

    def _bundle_parts(self, secret: bool) -> dict[str, bytes]:
        parts = {
            "public_key": _scratch.dump(self._public_key),
            "relin_keys": _scratch.dump(self._relin_keys),
            "galois_keys": _scratch.dump(self._galois_keys) if self.rotation_steps else b"",
        }
        if secret:
            parts["secret_key"] = _scratch.dump(self._secret_key)
        return parts

    @property
    def has_secret_key(self) -> bool:
        return self._decryptor is not None

    def depth_left(self, ct) -> int:
        return self.params.depth_at(self._context.get_context_data(ct.parms_id()).chain_index())

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _make_encoder(context):
        return seal.CKKSEncoder(context)

    def _encode(self, values: np.ndarray | float, parms_id, scale: float):
        pt = seal.Plaintext()
        if isinstance(values, float):
            self._encoder.encode(values, parms_id, scale, pt)
        else:
            self._encoder.encode(values.tolist(), parms_id, scale, pt)
        return pt

    # --------------------------------------------------------- primitives
    def _parms_at(self, depth: int):
        index = self.params.chain_index(depth)
        data = self._context.first_context_data()
        while data.chain_index() > index:
            data = data.next_context_data()
        return data.parms_id()

    def _encrypt(self, values, depth):
        ct = seal.Ciphertext()
        self._encryptor.encrypt(self._encode(values, self._parms_at(depth), self.params.scale), ct)
        return self._drop_level(ct, self.depth_left(ct) - depth) if self.depth_left(ct) > depth else ct

    def _encrypt_seeded(self, values, depth):
        # SEAL's symmetric encryption returns a Serializable whose random half is saved as a seed
        return _ciphertext_bytes(
            self._encryptor.encrypt_symmetric(self._encode(values, self._parms_at(depth), self.params.scale))
        )

    def _encrypt_last_prime(self, values, scale):
        return self._encrypted(self._encode(values, self._parms_at(0), scale))

    def _encrypted(self, plain) -> bytes:
        """``plain`` encrypted and serialised: seeded (symmetric) with the secret key, else public."""
        if self.has_secret_key:
            return _ciphertext_bytes(self._encryptor.encrypt_symmetric(plain))
        ct = seal.Ciphertext()
        self._encryptor.encrypt(plain, ct)
        return self._serialize(ct)

    def _to_last_prime(self, ct, scale):
        # the rescale divides by the level's last prime q: a constant 1 encoded at scale·q/ct.scale
        # leaves exactly ``scale`` (SEAL keeps scales as doubles)
        prime = self._context.get_context_data(ct.parms_id()).parms().coeff_modulus()[-1].value()
        out = seal.Ciphertext()
        self._evaluator.multiply_plain(ct, self._encode(1.0, ct.parms_id(), scale * prime / ct.scale), out)
        self._next_level(out)
        return out

    def _coefficients(self, coefficients: np.ndarray, parms_id, scale: float):
        """A plaintext whose polynomial has these coefficients (times ``scale``): SEAL's CKKS slot i
        is the polynomial at ζ^(3^i), ζ = exp(iπ/N), so its complex encoder given those values
        makes exactly it."""
        n = self.params.poly_modulus_degree
        powers = np.flatnonzero(coefficients)  # a monomial: one column
        exponents = np.outer(_slot_roots(n), powers) % (2 * n)
        slots = np.exp(1j * np.pi * exponents / n) @ coefficients[powers]
        pt = seal.Plaintext()
        self._encoder.encode(slots.tolist(), parms_id, scale, pt)
        return pt

    def _encrypt_packed(self, values, depth):
        return self._encrypted(self._coefficients(values, self._parms_at(depth), self.params.scale))

    def _times_monomial(self, ct, power):
        depth = self.depth_left(ct)
        plain = self._monomials.get((power, depth))
        if plain is None:
            n = self.params.poly_modulus_degree
            coefficients = np.zeros(power % n + 1)
            coefficients[power % n] = 1.0 if power >= 0 else -1.0  # X^-k = -X^(N-k)
            plain = self._monomials[(power, depth)] = self._coefficients(coefficients, ct.parms_id(), 1.0)
        out = seal.Ciphertext()
        self._evaluator.multiply_plain(ct, plain, out)
        return out

    def _decrypt(self, ct):
        pt = seal.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return self._encoder.decode_double(pt)

    def _add(self, a, b):
        out = seal.Ciphertext()
        self._evaluator.add(a, b, out)
        return out

    def _sub(self, a, b):
        out = seal.Ciphertext()
        self._evaluator.sub(a, b, out)
        return out

    def _negate(self, a):
        out = seal.Ciphertext()
        self._evaluator.negate(a, out)
        return out

    def _add_plain(self, a, plain):
        out = seal.Ciphertext()
        self._evaluator.add_plain(a, self._encode(plain, a.parms_id(), a.scale), out)
        return out

    def _multiply(self, a, b, relinearize, rescale):
        out = seal.Ciphertext()
        self._evaluator.multiply(a, b, out)
        if relinearize:
            self._evaluator.relinearize_inplace(out, self._relin_keys)
        if rescale:
            self._next_level(out)
        return out

    def _multiply_plain(self, a, plain, rescale):
        out = seal.Ciphertext()
        self._evaluator.multiply_plain(a, self._encode(plain, a.parms_id(), self.params.scale), out)
        if rescale:
            self._next_level(out)
        return out

    def _inner_product(self, a, b):
        # in place: one temporary and one accumulator for the whole block
        ev = self._evaluator
        acc, tmp = seal.Ciphertext(), seal.Ciphertext()
        ev.multiply(a[0], b[0], acc)
        for x, y in zip(a[1:], b[1:]):
            ev.multiply(x, y, tmp)
            ev.add_inplace(acc, tmp)
        return self._finished(acc)

    def _scan_operand(self, cts):
        if kernel.library() is None:
            return cts
        moduli = self._context.get_context_data(cts[0].parms_id()).parms().coeff_modulus()
        made = kernel.operand([_scratch.dump(c) for c in cts], np.array([m.value() for m in moduli], dtype=np.uint64))
        return cts if made is None else made  # not the kernel's case (e.g. BFV, not in NTT form): SEAL's

    def _scan_inner_product(self, a, b):
        if not isinstance(a, kernel.Operand) and not isinstance(b, kernel.Operand):
            return self.inner_product(a, b)
        lib = kernel.library()
        raw = (
            kernel.inner_product(lib, a, b) if isinstance(a, kernel.Operand) and isinstance(b, kernel.Operand) else None
        )
        if raw is None:
            raise CipherfaceError("the probe's ciphertexts do not match the block's (level, scale or count)")
        return self._finished(_scratch.load(seal.Ciphertext(), self._context, raw))

    def _finished(self, acc):
        """An inner product's sum relinearised, and rescaled unless at the last prime (``last-prime``)."""
        self._evaluator.relinearize_inplace(acc, self._relin_keys)
        if self.depth_left(acc):
            self._next_level(acc)
        return acc

    def _relinearize(self, a):
        out = seal.Ciphertext()
        self._evaluator.relinearize(a, self._relin_keys, out)
        return out

    def _rescale(self, a):
        out = seal.Ciphertext()
        self._evaluator.rescale_to_next(a, out)
        return out

    def _next_level(self, ct) -> None:
        """In place, after a product: CKKS divides out one prime (rescale)."""
        self._evaluator.rescale_to_next_inplace(ct)

    def _drop_level(self, a, levels):
        out = seal.Ciphertext()
        self._evaluator.mod_switch_to(a, self._parms_at(self.depth_left(a) - levels), out)
        return out

    def _rotate(self, a, step):
        out = seal.Ciphertext()
        self._evaluator.rotate_vector(a, step, self._galois_keys, out)
        return out

    def _serialize(self, ct) -> bytes:
        return _ciphertext_bytes(ct)

    def _deserialize(self, data: bytes, depth: int):
        if data[: len(seal_format.ROUNDED_MAGIC)] == seal_format.ROUNDED_MAGIC:  # a score block, for decryption
            ct = _scratch.load(seal.Ciphertext(), self._context, seal_format.unrounded(data, self._level(depth)))
            self._evaluator.transform_to_ntt_inplace(ct)
            return ct
        return _scratch.load(seal.Ciphertext(), self._context, data)

    def _serialize_rounded(self, ct, error: float) -> bytes:
        # one prime only: rounding each prime's residues apart is not rounding the coefficients
        moduli = self._context.get_context_data(ct.parms_id()).parms().coeff_modulus()
        bits = seal_format.droppable_bits(error, ct.scale, self.params.poly_modulus_degree)
        if len(moduli) == 1 and ct.size() == 2 and ct.is_ntt_form() and bits > 0:
            coefficients = seal.Ciphertext()
            self._evaluator.transform_from_ntt(ct, coefficients)
            made = seal_format.rounded(_scratch.dump(coefficients), bits, moduli[0].value())
            if made is not None:
                return made
        return self._serialize(ct)

    def _check_serialized(self, data: bytes, depth: int) -> str | None:
        # SEAL's own checks without expanding the seed (a third of a millisecond per stored ciphertext)
        return seal_format.ckks_problem(data, self._level(depth))

    def _level(self, depth: int) -> seal_format.Level:
        levels = self.__dict__.setdefault("_levels", {})
        if depth not in levels:
            parms_id = self._parms_at(depth)
            data = self._context.get_context_data(parms_id)
            header = seal.Serialization.SEALHeader()
            levels[depth] = seal_format.Level(
                version=(header.version_major, header.version_minor),
                parms_id=struct.pack("<4Q", *parms_id),
                degree=self.params.poly_modulus_degree,
                moduli=np.array([m.value() for m in data.parms().coeff_modulus()], dtype=np.uint64),
                bits=data.total_coeff_modulus_bit_count(),
            )
        return levels[depth]


class TenSEALBFVBackend(TenSEALBackend):
    """BFV on the same SEAL: exact integers modulo t, packed in the first batching row (so rotations
    cycle over ``slot_count`` = N/2 slots as in CKKS); a product is switched down to a lower level."""

    name = "tenseal-bfv"
    scheme = "bfv"
    params_type = BFVParams
    capabilities = frozenset({CT_MULTIPLY, ROTATION, EXACT, LEVELS, SEEDED_ENCRYPTION})

    @staticmethod
    def _make_encoder(context):
        return seal.BatchEncoder(context)

    def _check_serialized(self, data: bytes, depth: int) -> str | None:
        return FHEBackend._check_serialized(self, data, depth)  # BFV's metadata differ: SEAL reads it

    def _encode(self, values, parms_id, scale):
        pt = seal.Plaintext()
        self._encoder.encode(
            self.params.batch_row(values, self.slot_count).tolist(), pt
        )  # a BFV plaintext is valid at every level
        return pt

    def _encrypt_seeded(self, values, depth):
        if depth < self.params.depth:  # symmetric encryption is at the top; the seed does not survive a switch
            return self._serialize(self._encrypt(values, depth))
        return super()._encrypt_seeded(values, depth)

    def _decrypt(self, ct):
        pt = seal.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return self._encoder.decode_int64(pt)[: self.slot_count]

    def _next_level(self, ct) -> None:
        self._evaluator.mod_switch_to_inplace(ct, self._parms_at(0))

    def _rescale(self, a):
        return self._drop_level(a, 1)

    def _rotate(self, a, step):
        out = seal.Ciphertext()
        self._evaluator.rotate_rows(a, step, self._galois_keys, out)
        return out


@hookimpl
def register_backends(register):
    register(TenSEALBackend)
    register(TenSEALBFVBackend)
