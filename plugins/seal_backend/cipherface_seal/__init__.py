"""cipherface backend on Microsoft SEAL 4.x through ``seal-python`` (MIT).

seal-python's bindings serialise keys and ciphertexts to bytes in memory (no temporary
files, unlike the ``tenseal.sealapi`` bindings), return new objects from the evaluator,
and encode at the top level only: plaintexts and fresh ciphertexts are modulus-switched
down to the level they are needed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from cipherface import CKKSParams, FHEBackend, hookimpl
from cipherface.backend import galois_element
from cipherface.errors import EnvelopeError, ParameterError
from cipherface.plugins import LazyModule

seal = LazyModule("seal")  # loaded when the backend is first used, not when it is registered


def _context(params: CKKSParams):
    parms = seal.EncryptionParameters(seal.scheme_type.ckks)
    parms.set_poly_modulus_degree(params.poly_modulus_degree)
    parms.set_coeff_modulus(seal.CoeffModulus.Create(params.poly_modulus_degree, list(params.coeff_mod_bit_sizes)))
    level = {128: seal.sec_level_type.tc128, 192: seal.sec_level_type.tc192, 256: seal.sec_level_type.tc256}
    context = seal.SEALContext(parms, True, level[params.security_level])
    if not context.parameters_set():
        raise ParameterError(f"SEAL refuses {params.to_dict()}: {context.parameter_error_message()}")
    return context


def _loaded(kind: str, load, data: bytes):
    """A SEAL object from bytes; SEAL's own validation errors become EnvelopeErrors."""
    try:
        return load(data)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise EnvelopeError(f"SEAL cannot load this {kind}: {exc}") from None


class SEALBackend(FHEBackend):
    """CKKS on the Microsoft SEAL 4.x inside seal-python 4.4."""

    name = "seal"
    thread_safe = True  # SEAL's evaluator, encoder and encryptor are safe to share

    def __init__(self, params, key_id, rotation_steps, context, public_key, relin_keys, galois_keys, secret_key):
        super().__init__(params, key_id, rotation_steps)
        self._context = context
        self._public_key = public_key
        self._relin_keys = relin_keys
        self._galois_keys = galois_keys
        self._secret_key = secret_key
        self._encoder = seal.CKKSEncoder(context)
        self._evaluator = seal.Evaluator(context)
        self._encryptor = seal.Encryptor(context, public_key)
        self._decryptor = seal.Decryptor(context, secret_key) if secret_key is not None else None

    @classmethod
    def library_version(cls) -> str:
        try:
            return version("seal-python")
        except PackageNotFoundError:
            return "unknown"

    @classmethod
    def _generate(cls, params, key_id, rotation_steps):
        context = _context(params)
        keygen = seal.KeyGenerator(context)
        galois_keys = None
        if rotation_steps:
            galois_keys = seal.GaloisKeys()
            keygen.create_galois_keys(list(rotation_steps), galois_keys)  # steps, not Galois elements
        return cls(
            params,
            key_id,
            rotation_steps,
            context,
            keygen.create_public_key(),
            keygen.create_relin_keys(),
            galois_keys,
            keygen.secret_key(),
        )

    @classmethod
    def _from_parts(cls, params, key_id, rotation_steps, parts: Mapping[str, bytes], secret):
        context = _context(params)
        public_key = _loaded("public key", context.from_public_str, parts["public_key"])
        relin_keys = _loaded("relinearisation key", context.from_relin_str, parts["relin_keys"])
        galois_keys = None
        if rotation_steps or parts["galois_keys"]:
            galois_keys = _loaded("Galois key", context.from_galois_str, parts["galois_keys"])
            elts = [galois_element(s, params.poly_modulus_degree) for s in rotation_steps]
            missing = [s for s, e in zip(rotation_steps, elts) if not galois_keys.has_key(e)]
            if missing:
                raise EnvelopeError(f"the bundle lists rotation steps {missing} but holds no Galois key for them")
        secret_key = _loaded("secret key", context.from_secret_str, parts["secret_key"]) if secret else None
        return cls(params, key_id, rotation_steps, context, public_key, relin_keys, galois_keys, secret_key)

    def _bundle_parts(self, secret: bool) -> dict[str, bytes]:
        parts = {
            "public_key": self._public_key.to_string(),
            "relin_keys": self._relin_keys.to_string(),
            "galois_keys": self._galois_keys.to_string() if self._galois_keys is not None else b"",
        }
        if secret:
            parts["secret_key"] = self._secret_key.to_string()
        return parts

    @property
    def has_secret_key(self) -> bool:
        return self._decryptor is not None

    def depth_left(self, ct) -> int:
        return self._context.get_context_data(ct.parms_id()).chain_index()

    def _scale(self, ct) -> float:
        return ct.scale()

    # ------------------------------------------------------------ helpers
    def _encode(self, values: np.ndarray | float, parms_id, scale: float):
        pt = self._encoder.encode(values if isinstance(values, float) else np.ascontiguousarray(values), scale)
        if list(pt.parms_id()) != list(parms_id):
            self._evaluator.mod_switch_to_inplace(pt, parms_id)
        return pt

    # --------------------------------------------------------- primitives
    def _encrypt(self, values, depth):
        ct = self._encryptor.encrypt(self._encoder.encode(np.ascontiguousarray(values), self.params.scale))
        while self.depth_left(ct) > depth:
            self._evaluator.mod_switch_to_next_inplace(ct)
        return ct

    def _decrypt(self, ct):
        return self._encoder.decode(self._decryptor.decrypt(ct))

    def _add(self, a, b):
        return self._evaluator.add(a, b)

    def _sub(self, a, b):
        return self._evaluator.sub(a, b)

    def _negate(self, a):
        return self._evaluator.negate(a)

    def _add_plain(self, a, plain):
        return self._evaluator.add_plain(a, self._encode(plain, a.parms_id(), a.scale()))

    def _multiply(self, a, b, relinearize, rescale):
        out = self._evaluator.multiply(a, b)
        if relinearize:
            self._evaluator.relinearize_inplace(out, self._relin_keys)
        if rescale:
            self._evaluator.rescale_to_next_inplace(out)
        return out

    def _multiply_plain(self, a, plain, rescale):
        out = self._evaluator.multiply_plain(a, self._encode(plain, a.parms_id(), self.params.scale))
        if rescale:
            self._evaluator.rescale_to_next_inplace(out)
        return out

    def _inner_product(self, a, b):
        ev = self._evaluator
        acc = ev.multiply(a[0], b[0])
        for x, y in zip(a[1:], b[1:]):
            ev.add_inplace(acc, ev.multiply(x, y))
        ev.relinearize_inplace(acc, self._relin_keys)
        ev.rescale_to_next_inplace(acc)
        return acc

    def _relinearize(self, a):
        return self._evaluator.relinearize(a, self._relin_keys)

    def _rescale(self, a):
        return self._evaluator.rescale_to_next(a)

    def _drop_level(self, a, levels):
        for _ in range(levels):
            a = self._evaluator.mod_switch_to_next(a)
        return a

    def _rotate(self, a, step):
        return self._evaluator.rotate_vector(a, step, self._galois_keys)

    def _serialize(self, ct) -> bytes:
        return ct.to_string()

    def _deserialize(self, data: bytes, depth: int):
        return _loaded("ciphertext", self._context.from_cipher_str, data)


@hookimpl
def register_backends(register):
    register(SEALBackend)
