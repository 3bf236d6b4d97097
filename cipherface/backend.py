"""The abstract CKKS backend every FHE library plugs in through.

A backend instance holds one key set (secret or public only) and offers the
small primitive set the distance protocols and the packed gallery are written
against.  Ciphertexts are the library's own objects, opaque to the core; they
cross process boundaries only through :meth:`FHEBackend.dump_ciphertext`, which
wraps them in the versioned envelope.
"""

from __future__ import annotations

import functools
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeAlias, final

import numpy as np

from cipherface import envelope
from cipherface.capabilities import (
    APPROXIMATE,
    CT_MULTIPLY,
    DISTANCE_PRESERVING,
    LAST_PRIME,
    LEVELS,
    PACKED_PROBE,
    PROBE_IN_CLEAR,
    ROTATION,
    SEEDED_ENCRYPTION,
    require,
)
from cipherface.errors import (
    CipherfaceError,
    DimensionError,
    EnvelopeError,
    KeyMismatchError,
    SecretKeyRequiredError,
)
from cipherface.params import CKKSParams, resolve_params

Ciphertext: TypeAlias = Any
"""A backend's native ciphertext object; only its own backend interprets it."""

Values: TypeAlias = "np.ndarray | Sequence[float]"


#: Encryptions of a zero vector of this length that measure a distance-preserving transform's noise.
NOISE_PROBES, NOISE_PROBE_DIM = 16, 512

INTEGRITY_PART = "integrity_key"
INTEGRITY_KEY_BYTES = 32


#: The key of a ciphertext envelope's metadata that records its level (``depth_left``).
LEVEL_FIELD = "level"


def _checked_steps(steps: Any, slot_count: int, error: type[CipherfaceError] = EnvelopeError) -> list[int]:
    """Rotation steps as distinct ints in 1..slot_count-1, or a clear refusal (a step 0 would
    loop forever, a missing key would make a library generate one)."""
    if not isinstance(steps, (list, tuple)) or len(steps) > slot_count:
        raise error(f"rotation steps must be a list of at most {slot_count} integers, got {str(steps)[:80]}")
    bad = [s for s in steps if isinstance(s, bool) or not isinstance(s, int) or not 0 < s < slot_count]
    if bad:
        raise error(f"rotation steps must be integers in 1..{slot_count - 1}, got {bad[:5]}")
    if len(set(steps)) != len(steps):
        raise error(f"rotation steps repeat: {sorted(steps)[:20]}")
    return list(steps)


def open_bundle(
    blob: bytes | envelope.Envelope, kind: str | tuple[str, ...] = (envelope.SECRET_BUNDLE, envelope.PUBLIC_BUNDLE)
) -> FHEBackend:
    """The backend instance a bundle belongs to, found by the backend name in its envelope: the one
    loading path (the envelope is decoded once and passed down)."""
    from cipherface.plugins import get_backend

    env = envelope.expect(blob, kind=kind)
    return get_backend(env.backend).load_bundle(env)


def galois_element(step: int, poly_modulus_degree: int) -> int:
    """The Galois element of a left rotation by ``step`` in a power-of-two cyclotomic ring with
    batching (SEAL's convention: 3^step mod 2N), to check which keys a bundle holds."""
    return pow(3, step, 2 * poly_modulus_degree)


def expansion_levels(count: int) -> int:
    """Rounds of a packed probe's expansion for ``count`` values (each round doubles the ciphertexts)."""
    return max(count - 1, 0).bit_length()


@functools.lru_cache(maxsize=8)
def expansion_steps(count: int, poly_modulus_degree: int) -> tuple[int, ...]:
    """The rotation steps of a packed probe's expansion for ``count`` values: round j applies the
    automorphism X -> X^(N/2^j + 1), which is the rotation by the step whose Galois element
    (3^step mod 2N) it is. Defined for up to N/4 (half the slot count) values."""
    n = poly_modulus_degree
    levels = expansion_levels(count)
    if not 0 < count <= n // 4:
        raise CipherfaceError(f"a packed probe holds 1 to {n // 4} values, not {count}")
    logs, element = {}, 1
    for step in range(n // 2):  # 3 generates the rotations' group: 3^step mod 2N
        logs[element] = step
        element = element * 3 % (2 * n)
    return tuple(logs[n // (1 << j) + 1] for j in range(levels))


def power_of_two_steps(limit: int) -> list[int]:
    """Rotation steps 1, 2, 4, ... below ``limit``: enough to sum ``limit`` slots."""
    steps, step = [], 1
    while step < limit:
        steps.append(step)
        step *= 2
    return steps


class FHEBackend(ABC):
    """One CKKS key set and the primitives computed under it.

    Subclasses implement the underscore methods and the abstract primitives;
    key handling, envelopes, validation and the composite operations
    (:meth:`rotate` by any step, :meth:`sum_slots`) live here once.

    Multiplications relinearise and rescale by default, so a caller never
    tracks scales; ``relinearize=False``/``rescale=False`` defer that work for
    multiply-accumulate loops, followed by one :meth:`relinearize` and
    :meth:`rescale` on the sum.
    """

    #: Registry name, also written into every envelope this backend makes.
    name: ClassVar[str]
    scheme: ClassVar[str] = "ckks"
    #: The parameter type of the scheme (its own security and usability checks).
    params_type: ClassVar[type] = CKKSParams
    #: What this backend can compute (``cipherface.capabilities``); protocols require some.
    capabilities: ClassVar[frozenset[str]] = frozenset({CT_MULTIPLY, ROTATION, APPROXIMATE, LEVELS})
    #: True when one instance may be used from several threads at once.
    thread_safe: ClassVar[bool] = False
    #: Names of the parts :meth:`_bundle_parts` writes into a public bundle, and those only a
    #: secret bundle adds. Loading refuses a bundle with a part missing, unknown or misplaced.
    public_parts: ClassVar[tuple[str, ...]] = ("public_key", "relin_keys", "galois_keys")
    secret_parts: ClassVar[tuple[str, ...]] = ("secret_key",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = sorted(name for name in _final_methods() if name in vars(cls))
        if overridden:
            raise TypeError(
                f"backend class {cls.__qualname__} overrides {', '.join(overridden)}: the public operations are "
                "final (they check and align operands once); implement the underscore hooks instead "
                "(docs/plugin-authors.md)"
            )

    def __init__(self, params: CKKSParams, key_id: str, rotation_steps: Sequence[int]) -> None:
        self.params = params
        self.key_id = key_id
        self.rotation_steps = tuple(sorted(set(int(s) for s in rotation_steps)))
        self._integrity_key: bytes | None = None
        self._noise_energy: float | None = None

    # ----------------------------------------------------------- key handling
    @classmethod
    @final
    def generate(
        cls,
        params: CKKSParams | str | int | None = None,
        *,
        rotation_steps: Sequence[int] | None = None,
        max_dim: int | None = None,
    ) -> FHEBackend:
        """Fresh keys for a checked parameter set.

        Only the Galois keys for ``rotation_steps`` are made (default: ``key_steps`` for
        embeddings of up to ``max_dim`` values, any length when None); fewer steps make a smaller
        public bundle.
        """
        p = resolve_params(params, cls.scheme)
        steps = cls.key_steps(p, max_dim) if rotation_steps is None else [int(s) for s in rotation_steps]
        backend = cls._generate(p, secrets.token_hex(8), _checked_steps(steps, p.slot_count, CipherfaceError))
        backend._integrity_key = secrets.token_bytes(INTEGRITY_KEY_BYTES)
        return backend

    @classmethod
    @final
    def key_steps(cls, params: Any, max_dim: int | None = None) -> list[int]:
        """The rotation steps a key set needs for embeddings of up to ``max_dim`` values (default:
        up to the slot count): every power of two below it (to sum a vector and compose any
        rotation) and, on a ``packed-probe`` backend, the expansion's steps for a gallery row of up to
        ``max_dim + 1`` values (one Galois key per round, so the matcher never composes them)."""
        limit = params.slot_count if max_dim is None else max_dim
        steps = set(power_of_two_steps(limit))
        if PACKED_PROBE in cls.capabilities:
            steps |= set(expansion_steps(min(limit + 1, params.poly_modulus_degree // 4), params.poly_modulus_degree))
        return sorted(steps)

    @classmethod
    @final
    def load_bundle(cls, blob: bytes | envelope.Envelope) -> FHEBackend:
        """A backend from a secret or public bundle made by this backend.

        Every part the bundle needs must be there and nothing else: a backend never makes key
        material while loading (a missing Galois key is an error, not a key generated here)."""
        env = envelope.expect(blob, kind=(envelope.SECRET_BUNDLE, envelope.PUBLIC_BUNDLE), backend=cls.name)
        secret = env.kind == envelope.SECRET_BUNDLE
        cls._check_scheme(env)
        params = cls.params_type.from_dict(env.params).check()
        steps = _checked_steps(env.meta.get("rotation_steps", []), params.slot_count)
        cls._check_parts(env.kind, env.parts)
        parts = {name: data for name, data in env.parts.items() if name != INTEGRITY_PART}
        try:
            backend = cls._from_parts(params, env.key_id, steps, parts, secret)
        except CipherfaceError:
            raise
        except Exception as exc:
            raise EnvelopeError(f"corrupted {env.kind} for backend {cls.name!r}: {exc}") from None
        if secret:
            backend._integrity_key = env.parts[INTEGRITY_PART]
        return backend

    @classmethod
    def _check_scheme(cls, env: envelope.Envelope) -> None:
        if env.scheme != cls.scheme:
            raise KeyMismatchError(
                f"this {env.kind} is for scheme {env.scheme[:40]!r}, backend {cls.name!r} runs {cls.scheme!r}"
            )

    @classmethod
    def _check_parts(cls, kind: str, parts: Mapping[str, bytes]) -> None:
        expected = set(cls.public_parts)
        if kind == envelope.SECRET_BUNDLE:
            expected |= {*cls.secret_parts, INTEGRITY_PART}
        missing, extra = sorted(expected - set(parts)), sorted(set(parts) - expected)
        if missing or extra:
            raise EnvelopeError(
                f"{kind} of backend {cls.name!r} "
                + "; ".join(
                    ([f"lacks part(s) {missing}"] if missing else [])
                    + ([f"has unexpected part(s) {extra}"] if extra else [])
                )
                + f" (expected exactly {sorted(expected)}): refused, nothing is made up for it"
            )
        if kind == envelope.SECRET_BUNDLE and len(parts[INTEGRITY_PART]) != INTEGRITY_KEY_BYTES:
            raise EnvelopeError(
                f"secret bundle's integrity key has {len(parts[INTEGRITY_PART])} bytes, not {INTEGRITY_KEY_BYTES}"
            )

    @final
    def export_secret_bundle(self) -> bytes:
        """Everything, secret key and integrity key included: stays with the key owner."""
        self._require_secret("export the secret bundle")
        parts = {**self._bundle_parts(secret=True), INTEGRITY_PART: self.integrity_key}
        return self._bundle(envelope.SECRET_BUNDLE, parts)

    @final
    def export_public_bundle(self) -> bytes:
        """Public, relinearisation and Galois keys: what a matcher needs, no secret key."""
        return self._bundle(envelope.PUBLIC_BUNDLE, self._bundle_parts(secret=False))

    @final
    def public_copy(self) -> FHEBackend:
        """This key set without its secret key, as a matcher would load it."""
        return type(self).load_bundle(self.export_public_bundle())

    def _bundle(self, kind: str, parts: Mapping[str, bytes]) -> bytes:
        return self._pack(kind, parts, {"rotation_steps": list(self.rotation_steps)})

    def _pack(self, kind: str, parts: Mapping[str, bytes], meta: Mapping[str, Any] | None) -> bytes:
        """An envelope naming this backend, scheme, parameter set and key."""
        return envelope.pack(
            kind,
            backend=self.name,
            scheme=self.scheme,
            params=self.params.to_dict(),
            key_id=self.key_id,
            parts=parts,
            meta=meta,
        )

    def _require_secret(self, action: str) -> None:
        if not self.has_secret_key:
            raise SecretKeyRequiredError(
                f"cannot {action}: backend {self.name!r} holds only the public bundle of key "
                f"{self.key_id}; only the key owner's secret bundle can"
            )

    # ------------------------------------------------------------ properties
    @property
    def integrity_key(self) -> bytes:
        """The key owner's 32-byte secret for canaries and MACs (never in the public bundle)."""
        self._require_secret("use the integrity key")
        if self._integrity_key is None:
            raise SecretKeyRequiredError(f"backend {self.name!r} was not made by generate() or load_bundle()")
        return self._integrity_key

    @property
    def slot_count(self) -> int:
        return self.params.slot_count

    @property
    def security_level(self) -> int:
        return self.params.security_level

    @property
    @abstractmethod
    def has_secret_key(self) -> bool: ...

    @abstractmethod
    def depth_left(self, ct: Ciphertext) -> int:
        """Rescales this ciphertext can still take (0: at the last level)."""

    # ------------------------------------------------------ encrypt / decrypt
    @final
    def encrypt(self, values: Values, *, depth: int | None = None) -> Ciphertext:
        """Encrypt up to ``slot_count`` reals into one ciphertext; unused slots are zero.

        With ``depth``, the ciphertext is made with only that many levels left: cheaper to
        make and smaller than encrypting at the top and dropping levels."""
        return self._encrypt(self._check_values(values), self._checked_depth(depth))

    @final
    def encrypt_blob(
        self,
        values: Values,
        *,
        depth: int | None = None,
        kind: str = envelope.CIPHERTEXT,
        meta: Mapping[str, Any] | None = None,
        probe: bool = False,
    ) -> bytes:
        """Encrypt and serialise in one step. A backend with the ``seeded-encryption`` capability,
        holding the secret key, encrypts with it and stores the random half of the ciphertext as a
        seed: about half the bytes (what the key owner stores in a gallery or uploads as a probe).
        A ``probe`` on a ``probe-in-clear`` backend is not encrypted: the matcher gets it in the
        clear, as that scheme requires."""
        arr, depth = self._check_values(values), self._checked_depth(depth)
        if probe and PROBE_IN_CLEAR in self.capabilities:
            data = self._serialize(self._clear_probe(arr, depth))
        elif SEEDED_ENCRYPTION in self.capabilities and self.has_secret_key:
            data = self._encrypt_seeded(arr, depth)
        else:
            data = self._serialize(self._encrypt(arr, depth))
        return self._pack_ciphertext(kind, data, depth, meta)

    @final
    def encrypt_probe(self, values: Values, *, depth: int | None = None) -> Ciphertext:
        """The probe operand of a comparison: encrypted, or in the clear on a ``probe-in-clear``
        backend (whose products need one operand in the clear)."""
        if PROBE_IN_CLEAR not in self.capabilities:
            return self.encrypt(values, depth=depth)
        return self._clear_probe(self._check_values(values), self._checked_depth(depth))

    # ------------------------------------------------------------ packed probe
    @final
    def can_expand(self, count: int) -> bool:
        """Whether ``count`` values can travel as one packed probe: the backend packs and expands, and
        its key set holds the Galois key of every expansion round (composing rotations instead would
        multiply the matcher's work)."""
        if PACKED_PROBE not in self.capabilities or not 0 < count <= self.params.poly_modulus_degree // 4:
            return False
        return set(expansion_steps(count, self.params.poly_modulus_degree)) <= set(self.rotation_steps)

    @final
    def encrypt_packed_blob(
        self,
        values: Values,
        *,
        depth: int | None = None,
        kind: str = envelope.PACKED_PROBE,
        meta: Mapping[str, Any] | None = None,
    ) -> bytes:
        """``values`` as the coefficients of one ciphertext's plaintext polynomial (divided by
        2^levels, which the expansion multiplies back), for :meth:`expand`; seeded like
        :meth:`encrypt_blob` where the backend can. The envelope records the count."""
        arr, depth = self._check_values(values), self._checked_depth(depth)
        if not self.can_expand(len(arr)):
            raise CipherfaceError(
                f"backend {self.name!r} cannot pack {len(arr)} values into one probe with this key set: it needs "
                f"the {PACKED_PROBE!r} capability and a Galois key for each expansion step (FHEBackend.key_steps)"
            )
        data = self._encrypt_packed(arr / (1 << expansion_levels(len(arr))), depth)
        return self._pack_ciphertext(kind, data, depth, {**(meta or {}), "count": len(arr)})

    @final
    def expand(self, ct: Ciphertext, count: int) -> list[Ciphertext]:
        """The matcher's side of a packed probe: ``count`` ciphertexts, the k-th holding value k in
        every slot, made with the public Galois keys only. SealPIR's expansion: round j maps each
        ciphertext c to c + σ(c), which keeps its terms X^i with bit j of i clear (doubled), and
        (c − σ(c))·X^(−2^j), which keeps the others, shifted down; σ: X -> X^(N/2^j + 1). After
        the last round ciphertext k holds value k as its constant term: that value in every slot."""
        if not self.can_expand(count):
            raise CipherfaceError(f"this key set cannot expand a packed probe of {count} values")
        out = [ct]
        for j, step in enumerate(expansion_steps(count, self.params.poly_modulus_degree)):
            evens, odds = [], []
            for i, c in enumerate(out):
                image = self._rotate(c, step)
                evens.append(self._add(c, image))
                if i + len(out) < count:  # only the ciphertexts of values below count are made
                    odds.append(self._times_monomial(self._sub(c, image), -(1 << j)))
            out = evens + odds
        return out

    def _encrypt_packed(self, values: np.ndarray, depth: int) -> bytes:
        """``values`` as plaintext coefficients 0..len-1 (at the backend's scale), encrypted and
        serialised (seeded where it can): the ``packed-probe`` capability's key-owner hook."""
        raise NotImplementedError(f"backend {self.name!r} declares no {PACKED_PROBE!r}")

    def _times_monomial(self, ct: Ciphertext, power: int) -> Ciphertext:
        """``ct`` times the monomial X^power (negative: X^(N+power) negated), its scale unchanged:
        the ``packed-probe`` capability's matcher hook."""
        raise NotImplementedError(f"backend {self.name!r} declares no {PACKED_PROBE!r}")

    # -------------------------------------------------------------- last prime
    @property
    def last_prime_scales(self) -> tuple[float, float] | None:
        """The scales of the two operands of a product at the first prime alone (``last-prime``):
        (stored, brought) (``CKKSParams.last_prime_scale_bits``), or None where the backend or its
        parameter set has none."""
        bits = getattr(self.params, "last_prime_scale_bits", None) if LAST_PRIME in self.capabilities else None
        return None if bits is None else (float(2 ** bits[0]), float(2 ** bits[1]))

    @final
    def encrypt_last_prime_blob(
        self, values: Values, *, kind: str = envelope.CIPHERTEXT, meta: Mapping[str, Any] | None = None
    ) -> bytes:
        """Encrypt at the first prime alone, at the stored scale of :attr:`last_prime_scales` (seeded
        where the backend can), and serialise: one operand of products that are not rescaled (the
        last-prime gallery's blocks)."""
        scale = self._required_last_prime()[0]
        return self._pack_ciphertext(kind, self._encrypt_last_prime(self._check_values(values), scale), 0, meta)

    @final
    def to_last_prime(self, ct: Ciphertext) -> Ciphertext:
        """``ct`` (one level left or more) at the first prime alone and the brought scale of
        :attr:`last_prime_scales`, its values unchanged: a public operation (the matcher brings the
        probe to a last-prime block)."""
        scale = self._required_last_prime()[1]
        if self.depth_left(ct) == 0:
            if np.isclose(self._scale(ct), scale, rtol=1e-9):
                return ct
            raise CipherfaceError("a ciphertext at the last prime with another scale cannot be brought to it")
        return self._to_last_prime(self.drop_to_depth(ct, 1), scale)

    def _required_last_prime(self) -> tuple[float, float]:
        scales = self.last_prime_scales
        if scales is None:
            raise CipherfaceError(
                f"backend {self.name!r} with {self.params.to_dict()} has no {LAST_PRIME!r} products "
                "(the capability, and a first prime large enough: CKKSParams.last_prime_scale_bits)"
            )
        return scales

    def _encrypt_last_prime(self, values: np.ndarray, scale: float) -> bytes:
        """``values`` at depth 0 and ``scale``, encrypted and serialised (seeded where the backend can):
        the ``last-prime`` capability's key-owner hook."""
        raise NotImplementedError(f"backend {self.name!r} declares no {LAST_PRIME!r}")

    def _to_last_prime(self, ct: Ciphertext, scale: float) -> Ciphertext:
        """``ct`` (depth 1) times a constant 1 encoded so that the rescale leaves ``scale``: the
        ``last-prime`` capability's matcher hook."""
        raise NotImplementedError(f"backend {self.name!r} declares no {LAST_PRIME!r}")

    @final
    def visible(self, ct: Ciphertext) -> np.ndarray | None:
        """What anyone holding this ciphertext (the matcher) reads from it without the secret key:
        None for a real encryption, the values of a probe sent in the clear (``probe-in-clear``).
        The leakage audit (``cipherface audit``) attacks with exactly this."""
        seen = self._visible(ct)
        return None if seen is None else np.asarray(seen, dtype=np.float64)

    def _visible(self, ct: Ciphertext) -> Sequence[float] | None:
        return None

    @final
    def encrypt_vector(self, values: Values) -> np.ndarray:
        """The key owner's secret transform of one whole vector on a ``distance-preserving`` backend:
        a vector of the same length whose distances to other such vectors approximate the
        plaintext's. Protocols apply it to each prepared embedding; the slots then carry it as it is."""
        require(self, {DISTANCE_PRESERVING}, "a distance-preserving encryption")
        self._require_secret("make a distance-preserving encryption")
        out = np.asarray(self._encrypt_vector(self._check_values(values)), dtype=np.float64)
        if out.shape != (len(values),) or not np.all(np.isfinite(out)):
            raise CipherfaceError(f"backend {self.name!r} transformed a vector into one of shape {out.shape}")
        return out

    @final
    def transform_noise(self) -> float:
        """The mean squared norm the distance-preserving transform adds to a vector (its noise's
        energy), measured by the key owner on its own key from encryptions of a zero vector, once."""
        if self._noise_energy is None:
            zero = np.zeros(min(NOISE_PROBE_DIM, self.slot_count))
            self._noise_energy = float(np.mean([np.sum(self.encrypt_vector(zero) ** 2) for _ in range(NOISE_PROBES)]))
        return self._noise_energy

    def _encrypt_vector(self, values: np.ndarray) -> Sequence[float]:
        """The distance-preserving transform (backends declaring ``distance-preserving``)."""
        raise NotImplementedError(f"backend {self.name!r} declares no distance-preserving encryption")

    def _clear_probe(self, values: np.ndarray, depth: int) -> Ciphertext:
        """A probe in the clear, as an operand of this backend's products (``probe-in-clear``)."""
        raise NotImplementedError(f"backend {self.name!r} declares no probe in the clear")

    def _encrypt_seeded(self, values: np.ndarray, depth: int) -> bytes:
        """Secret-key encryption serialised with a seed (backends declaring ``seeded-encryption``)."""
        raise NotImplementedError(f"backend {self.name!r} declares no seeded encryption")

    def _checked_depth(self, depth: int | None) -> int:
        depth = self.params.depth if depth is None else depth
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= self.params.depth:
            raise CipherfaceError(f"depth must be 0..{self.params.depth} for this parameter set, got {depth!r}")
        return depth

    @final
    def decrypt(self, ct: Ciphertext, length: int | None = None) -> np.ndarray:
        """The first ``length`` slots (all by default); needs the secret key."""
        self._require_secret("decrypt")
        if length is None:
            return np.asarray(self._decrypt(ct), dtype=np.float64)
        return np.asarray(self._decrypt_at(ct, list(range(min(length, self.slot_count)))), dtype=np.float64)

    @final
    def decrypt_at(self, ct: Ciphertext, slots: Sequence[int]) -> np.ndarray:
        """The values of the given slots only; needs the secret key."""
        self._require_secret("decrypt")
        index = [int(s) for s in slots]
        if not index or min(index) < 0 or max(index) >= self.slot_count:
            raise DimensionError(f"slots to decrypt must be within 0..{self.slot_count - 1}")
        return np.asarray(self._decrypt_at(ct, index), dtype=np.float64)

    def _decrypt_at(self, ct: Ciphertext, slots: list[int]) -> Sequence[float]:
        """Given slots (a backend that decrypts slot by slot decrypts only those)."""
        return np.asarray(self._decrypt(ct), dtype=np.float64)[slots]

    def _check_values(self, values: Values) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1:
            raise DimensionError(f"expected a 1-D vector, got shape {arr.shape}")
        if arr.size == 0:
            raise DimensionError("cannot encrypt an empty vector")
        if arr.size > self.slot_count:
            raise DimensionError(
                f"vector of length {arr.size} does not fit in {self.slot_count} slots "
                "of this parameter set; use a larger preset or split it"
            )
        if not np.all(np.isfinite(arr)):
            raise DimensionError("vector contains NaN or infinity")
        self.params.check_plain(arr)
        return arr

    # ------------------------------------------------------------ primitives
    # The public operations are final: they check and align operands once, then call the
    # plugin's underscore hook, which may assume operands at the same level and scale.
    @final
    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._add(*self._aligned(a, b))

    @final
    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._sub(*self._aligned(a, b))

    @final
    def negate(self, a: Ciphertext) -> Ciphertext:
        return self._negate(a)

    @final
    def relinearize(self, a: Ciphertext) -> Ciphertext:
        """Back to two polynomials after a multiplication done with ``relinearize=False``."""
        return self._relinearize(a)

    @abstractmethod
    def _add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext: ...

    @abstractmethod
    def _sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext: ...

    @abstractmethod
    def _negate(self, a: Ciphertext) -> Ciphertext: ...

    @abstractmethod
    def _relinearize(self, a: Ciphertext) -> Ciphertext: ...

    @final
    def add_plain(self, a: Ciphertext, values: Values | float) -> Ciphertext:
        """a + p, where p is a vector or a scalar broadcast to every slot."""
        return self._add_plain(a, self._plain_operand(values))

    @final
    def multiply(self, a: Ciphertext, b: Ciphertext, *, relinearize: bool = True, rescale: bool = True) -> Ciphertext:
        """ct·ct; deferring relinearisation/rescale is for multiply-accumulate loops."""
        self._check_depth(a, b)
        return self._multiply(*self._aligned(a, b), relinearize, rescale)

    @final
    def multiply_plain(self, a: Ciphertext, values: Values, *, rescale: bool = True) -> Ciphertext:
        """ct·pt, slot-wise by a plaintext vector."""
        self._check_depth(a)
        return self._multiply_plain(a, self._plain_operand(values), rescale)

    @final
    def multiply_scalar(self, a: Ciphertext, scalar: float, *, rescale: bool = True) -> Ciphertext:
        """ct·scalar (every slot by the same real)."""
        self._check_depth(a)
        return self._multiply_plain(a, self._plain_operand(float(scalar)), rescale)

    def _plain_operand(self, values: Values | float) -> np.ndarray | float:
        if np.isscalar(values):
            value = float(values)  # type: ignore[arg-type]
            if not np.isfinite(value):
                raise DimensionError("scalar operand is NaN or infinity")
            self.params.check_plain(value)
            return value
        return self._check_values(values)  # type: ignore[arg-type]

    @abstractmethod
    def _add_plain(self, a: Ciphertext, plain: np.ndarray | float) -> Ciphertext: ...

    @abstractmethod
    def _multiply(self, a: Ciphertext, b: Ciphertext, relinearize: bool, rescale: bool) -> Ciphertext: ...

    @abstractmethod
    def _multiply_plain(self, a: Ciphertext, plain: np.ndarray | float, rescale: bool) -> Ciphertext: ...

    @final
    def inner_product(self, a: Sequence[Ciphertext], b: Sequence[Ciphertext]) -> Ciphertext:
        """Slot-wise Σᵢ aᵢ·bᵢ with one relinearisation and one rescale: the packed-gallery kernel
        (``a``: d gallery ciphertexts, ``b``: d replicated probe ciphertexts). Operands at the first
        prime alone (``last-prime``) are not rescaled: the result keeps the product of the scales."""
        if len(a) != len(b) or not a:
            raise DimensionError(f"inner product needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
        self._check_product_depth(*a, *b)
        pairs = [self._aligned(x, y, same_scale=False) for x, y in zip(a, b)]
        products = [self._scale(x) * self._scale(y) for x, y in pairs]
        if not np.allclose(products, products[0], rtol=1e-9):
            raise CipherfaceError("the products of an inner product would have different scales: refused")
        return self._inner_product([x for x, _ in pairs], [y for _, y in pairs])

    @final
    def scan_operand(self, cts: Sequence[Ciphertext]) -> Any:
        """A block's (or a probe's) component ciphertexts in the form the backend's scan kernel reads
        (``native-inner-product``), made once when the scan loads a block; else the list itself."""
        if not cts:
            raise DimensionError("a scan operand needs at least one ciphertext")
        self._check_product_depth(*cts)
        return self._scan_operand(list(cts))

    @final
    def scan_inner_product(self, a: Any, b: Any) -> Ciphertext:
        """:meth:`inner_product` of two scan operands (a block's and the probe's): the backend's native
        kernel where it has one, the generic path otherwise; the same ciphertext either way."""
        return self._scan_inner_product(a, b)

    def _scan_operand(self, cts: list[Ciphertext]) -> Any:
        return cts

    def _scan_inner_product(self, a: Any, b: Any) -> Ciphertext:
        return self.inner_product(a, b)

    def _inner_product(self, a: Sequence[Ciphertext], b: Sequence[Ciphertext]) -> Ciphertext:
        """Portable version on the hooks (operands aligned pair by pair); backends may override
        it with a native loop."""
        acc = None
        for x, y in zip(a, b):
            prod = self._multiply(x, y, False, False)
            acc = prod if acc is None else self._add(acc, prod)
        acc = self._relinearize(acc)
        return self._rescale(acc) if self.depth_left(acc) else acc

    @final
    def rescale(self, a: Ciphertext) -> Ciphertext:
        """Divide out one prime after a multiplication done with ``rescale=False``."""
        self._check_depth(a)
        return self._rescale(a)

    @abstractmethod
    def _rescale(self, a: Ciphertext) -> Ciphertext: ...

    def _aligned(self, a: Ciphertext, b: Ciphertext, *, same_scale: bool = True) -> tuple[Ciphertext, Ciphertext]:
        """Two operands at the same level (dropping the higher one), refusing different scales
        (unless they are only multiplied: ``same_scale=False``).

        The public operations call this before a binary hook; it reads scales with :meth:`_scale`."""
        da, db = self.depth_left(a), self.depth_left(b)
        if da > db:
            a = self.drop_level(a, da - db)
        elif db > da:
            b = self.drop_level(b, db - da)
        sa, sb = self._scale(a), self._scale(b)
        if same_scale and not np.isclose(sa, sb, rtol=1e-9):
            raise CipherfaceError(
                f"ciphertext scales differ (2^{np.log2(sa):.3f} vs 2^{np.log2(sb):.3f}): "
                "combine results that went through the same number of multiplications"
            )
        return a, b

    def _scale(self, ct: Ciphertext) -> float:
        """The CKKS scale a ciphertext carries (a ``scale`` attribute unless a backend says otherwise)."""
        return float(ct.scale)

    def _check_product_depth(self, *cts: Ciphertext) -> None:
        """Operands of an inner product: a level left each, or all at the last prime at its scales."""
        scales = self.last_prime_scales or ()
        if any(self.depth_left(c) or not np.isclose(scales, self._scale(c), rtol=1e-9).any() for c in cts):
            self._check_depth(*cts)

    def _check_depth(self, *cts: Ciphertext) -> None:
        if min(self.depth_left(ct) for ct in cts) < 1:
            raise CipherfaceError(
                f"no multiplicative depth left: this parameter set allows {self.params.depth} "
                "multiplication(s); use a deeper preset"
            )

    @final
    def drop_level(self, a: Ciphertext, levels: int = 1) -> Ciphertext:
        """Modulus-switch down ``levels`` primes, value unchanged: smaller, cheaper to store."""
        left = self.depth_left(a)
        if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= left:
            raise CipherfaceError(f"cannot drop {levels} levels: only {left} are left")
        return self._drop_level(a, levels) if levels else a

    @abstractmethod
    def _drop_level(self, a: Ciphertext, levels: int) -> Ciphertext:
        """``levels`` (1..depth_left) modulus switches."""

    @final
    def drop_to_depth(self, a: Ciphertext, depth: int) -> Ciphertext:
        """Drop levels until ``depth`` multiplications remain (the lowest a computation needs)."""
        extra = self.depth_left(a) - depth
        if extra < 0:
            raise CipherfaceError(f"ciphertext has {self.depth_left(a)} levels left, {depth} are needed")
        return self.drop_level(a, extra) if extra else a

    @abstractmethod
    def _rotate(self, a: Ciphertext, step: int) -> Ciphertext:
        """Left-rotate by a step that is in ``rotation_steps``."""

    @final
    def rotate(self, a: Ciphertext, step: int) -> Ciphertext:
        """Cyclic left rotation by ``step`` slots (negative: right), composed from the Galois keys held."""
        step %= self.slot_count
        if step == 0:
            return a
        if step in self.rotation_steps:
            return self._rotate(a, step)
        remaining = step
        for s in sorted(self.rotation_steps, reverse=True):  # every step > 0: checked at load
            while remaining >= s:
                a = self._rotate(a, s)
                remaining -= s
        if remaining:
            raise CipherfaceError(
                f"cannot rotate by {step}: Galois keys exist only for steps {list(self.rotation_steps)}"
            )
        return a

    @final
    def sum_slots(self, a: Ciphertext, length: int) -> Ciphertext:
        """Slot 0 gets the sum of slots 0..length-1 (slots from ``length`` up to the next
        power of two must be zero, as they are after :meth:`encrypt`)."""
        if not 0 < length <= self.slot_count:
            raise DimensionError(f"cannot sum {length} slots of a {self.slot_count}-slot ciphertext")
        for step in power_of_two_steps(length):
            a = self.add(a, self.rotate(a, step))
        return a

    # --------------------------------------------------------- serialisation
    @abstractmethod
    def _serialize(self, ct: Ciphertext) -> bytes: ...

    def _check_serialized(self, data: bytes, depth: int) -> str | None:
        """Why ``_deserialize`` would not read ``data`` as a ciphertext with ``depth`` levels left, or
        None. By default it reads it; a backend may check faster (e.g. without expanding a seed),
        as long as it never lets through what ``_deserialize`` refuses."""
        problem = self._level_problem(self._deserialize(data, depth), depth)
        return problem and f"it {problem}"

    def _level_problem(self, ct: Ciphertext, depth: int) -> str | None:
        """How a read ciphertext contradicts the level its envelope gives, or None."""
        actual = self.depth_left(ct)
        return None if actual == depth else f"says it has {depth} level(s) left, its ciphertext has {actual}"

    @abstractmethod
    def _deserialize(self, data: bytes, depth: int) -> Ciphertext:
        """A ciphertext from ``_serialize``'s bytes; ``depth`` is the :meth:`depth_left` it had, from
        the envelope (a library that does not record levels uses it instead of guessing)."""

    @final
    def dump_ciphertext(
        self, ct: Ciphertext, *, kind: str = envelope.CIPHERTEXT, meta: Mapping[str, Any] | None = None
    ) -> bytes:
        """A ciphertext wrapped in an envelope naming this backend and key, and its level."""
        return self._pack_ciphertext(kind, self._serialize(ct), self.depth_left(ct), meta)

    @final
    def dump_for_decryption(
        self,
        ct: Ciphertext,
        *,
        error: float,
        kind: str = envelope.RESULT,
        meta: Mapping[str, Any] | None = None,
    ) -> bytes:
        """``dump_ciphertext`` for a ciphertext that is only ever decrypted (the scan's score
        blocks): the backend may round away low-order bits of it, fewer bytes to download, as long
        as what it decrypts to moves by at most ``error`` per slot. By default it is exact."""
        if not (math.isfinite(error) and error > 0):
            raise CipherfaceError(f"a rounding error must be a positive number, got {error!r}")
        return self._pack_ciphertext(kind, self._serialize_rounded(ct, error), self.depth_left(ct), meta)

    def _serialize_rounded(self, ct: Ciphertext, error: float) -> bytes:
        """``_serialize``, rounded within ``error`` (``dump_for_decryption``); ``_deserialize`` must
        read what it returns."""
        return self._serialize(ct)

    def _pack_ciphertext(self, kind: str, data: bytes, depth: int, meta: Mapping[str, Any] | None) -> bytes:
        if meta and LEVEL_FIELD in meta:
            raise CipherfaceError(f"{LEVEL_FIELD!r} is the envelope's own field in a ciphertext's metadata")
        return self._pack(kind, {"ct": data}, {**(meta or {}), LEVEL_FIELD: depth})

    @final
    def load_ciphertext(
        self, blob: bytes | envelope.Envelope, *, kind: str | tuple[str, ...] = envelope.CIPHERTEXT
    ) -> tuple[Ciphertext, dict[str, Any]]:
        """A ciphertext and its metadata, after checking backend, key and integrity."""
        env, depth, meta = self._ciphertext_envelope(blob, kind)
        try:
            ct = self._deserialize(env.part("ct"), depth)
            problem = self._level_problem(ct, depth)
        except Exception as exc:
            raise EnvelopeError(f"corrupted {env.kind}: backend {self.name!r} cannot read it ({exc})") from None
        if problem:
            raise EnvelopeError(f"this {env.kind} {problem}")
        return ct, meta

    @final
    def check_ciphertext(
        self, blob: bytes | envelope.Envelope, *, kind: str | tuple[str, ...] = envelope.CIPHERTEXT
    ) -> dict[str, Any]:
        """What ``load_ciphertext`` refuses, refused, without keeping the ciphertext: the matcher's
        check of every block ciphertext it stores. Returns the metadata."""
        env, depth, meta = self._ciphertext_envelope(blob, kind)
        try:
            problem = self._check_serialized(env.part("ct"), depth)
        except Exception as exc:
            problem = str(exc)
        if problem:
            raise EnvelopeError(f"corrupted {env.kind}: backend {self.name!r} cannot read it ({problem})")
        return meta

    def _ciphertext_envelope(
        self, blob: bytes | envelope.Envelope, kind: str | tuple[str, ...]
    ) -> tuple[envelope.Envelope, int, dict[str, Any]]:
        env = envelope.expect(blob, kind=kind, backend=self.name, key_id=self.key_id)
        self._check_scheme(env)
        if env.params != self.params.to_dict():
            raise KeyMismatchError(
                f"this {env.kind} was made with parameters {env.params}, the key uses {self.params.to_dict()}"
            )
        meta = dict(env.meta)
        depth = meta.pop(LEVEL_FIELD, None)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= self.params.depth:
            raise EnvelopeError(f"this {env.kind} gives no valid level (got {str(depth)[:40]!r})")
        return env, depth, meta

    # ------------------------------------------------------ for subclasses
    @classmethod
    @abstractmethod
    def _generate(cls, params: CKKSParams, key_id: str, rotation_steps: Sequence[int]) -> FHEBackend: ...

    @classmethod
    @abstractmethod
    def _from_parts(
        cls,
        params: CKKSParams,
        key_id: str,
        rotation_steps: Sequence[int],
        parts: Mapping[str, bytes],
        secret: bool,
    ) -> FHEBackend: ...

    @abstractmethod
    def _bundle_parts(self, secret: bool) -> dict[str, bytes]:
        """Serialised key material; the secret key only when ``secret`` is true."""

    @abstractmethod
    def _encrypt(self, values: np.ndarray, depth: int) -> Ciphertext:
        """Encrypt ``values`` (float64, at most ``slot_count``) with ``depth`` levels left (0..params.depth)."""

    @abstractmethod
    def _decrypt(self, ct: Ciphertext) -> Sequence[float]: ...

    @classmethod
    def library_version(cls) -> str:
        """Version of the FHE library underneath (for ``cipherface backends``)."""
        return "unknown"


def _final_methods() -> frozenset[str]:
    """The public operations marked ``@final`` on FHEBackend: each checks and aligns once, then
    calls a hook; a backend must not override them."""
    return frozenset(
        name for name, v in vars(FHEBackend).items() if getattr(getattr(v, "__func__", v), "__final__", False)
    )


#: Public operations a backend must not override (derived from the ``@final`` marks).
FINAL_METHODS = _final_methods()
