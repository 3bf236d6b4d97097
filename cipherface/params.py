"""Parameter sets per scheme (CKKS, BFV), named presets, and the HE-standard security check.

Each scheme has its own parameter type with its own usability rules beside the shared
security check; a backend declares the scheme it runs and its parameter type
(``FHEBackend.scheme``, ``FHEBackend.params_type``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from cipherface.errors import DimensionError, ParameterError

#: Largest log2(q) allowed for a security level, by polynomial modulus degree:
#: HomomorphicEncryption.org standard, classical attacks, ternary secret.
HE_STANDARD_MAX_LOG_Q: dict[int, dict[int, int]] = {
    4096: {128: 109, 192: 75, 256: 58},
    8192: {128: 218, 192: 152, 256: 118},
    16384: {128: 438, 192: 305, 256: 237},
    32768: {128: 881, 192: 611, 256: 476},
}

SECURITY_LEVELS = (128, 192, 256)
MAX_PRIME_BITS = 60
#: Bits the first prime must hold above the scale: results up to 2^(bits-2) with a
#: factor-2 margin (cosine needs 2, Euclidean 4·norm²; the key owner checks each input).
MIN_HEADROOM_BITS = 10
#: Bits a product at the first prime alone keeps above its scale (results up to 2^(bits-2) = 16):
#: cosine distances reach 2; squared Euclidean distances of Dlib's embeddings (norms up to ~1.6
#: on the shared photos) up to 4·norm² ≈ 10.
LAST_PRIME_HEADROOM_BITS = 6
#: The coarsest grid (2^-bits) a last-prime block's values may be rounded to: the rounding error
#: (at most half of it, 6e-5) is a template's quantisation, like 13-bit fixed-point embeddings.
LAST_PRIME_GRID_BITS = 13


def _security_problems(n: int, bits: tuple[int, ...], level: int) -> list[str]:
    """The HE-standard check every scheme shares: ring, level, primes, total modulus size."""
    out: list[str] = []
    if n not in HE_STANDARD_MAX_LOG_Q:
        out.append(
            f"poly_modulus_degree {n} is not in the HE standard table (expected one of {sorted(HE_STANDARD_MAX_LOG_Q)})"
        )
    if level not in SECURITY_LEVELS:
        out.append(f"security level {level} is not one of {list(SECURITY_LEVELS)}")
    if len(bits) < 2:
        out.append(f"coeff_mod_bit_sizes {list(bits)} needs at least two primes (data and special)")
    if any(b < 20 or b > MAX_PRIME_BITS for b in bits):
        out.append(f"every prime must have 20 to {MAX_PRIME_BITS} bits, got {list(bits)}")
    limit = HE_STANDARD_MAX_LOG_Q.get(n, {}).get(level)
    total = sum(bits)
    if limit is not None and total > limit:
        out.append(
            f"log2(q) = {'+'.join(map(str, bits))} = {total} exceeds {limit}, the most that "
            f"N={n} allows for {level}-bit security (HE standard, classical, ternary secret)"
        )
    return out


class CheckedParams:
    """What every parameter set shares, whatever its scheme: a claimed level, checks naming every
    problem, a plain-dict form (ints, and tuples of ints). Subclasses are frozen dataclasses listing
    their fields in the order their constructor takes them."""

    security_level: int

    def problems(self) -> list[str]:
        raise NotImplementedError

    def check(self) -> Self:
        """Raise :class:`ParameterError` naming every problem; return self if there is none."""
        problems = self.problems()
        if problems:
            raise ParameterError("; ".join(problems))
        return self

    def check_plain(self, values: Any) -> None:
        """Refuse plaintext values this scheme cannot encode exactly enough (default: any finite real)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in fields(self)  # type: ignore[arg-type]
            for value in [getattr(self, f.name)]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        try:
            return cls(
                **{
                    f.name: tuple(int(b) for b in data[f.name])
                    if str(f.type).startswith("tuple")
                    else int(data[f.name])
                    for f in fields(cls)  # type: ignore[arg-type]
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"malformed parameter set {data!r}: {exc}") from None


class VectorParams(CheckedParams):
    """What parameter sets of schemes without a ring share (Paillier's, DCPE's, from plugins):
    ``slots`` values per vector (the packed gallery's block size and the longest 1:1 window), one
    product, and results kept within ±2^20 (every plaintext is checked against it)."""

    slots: int

    @property
    def slot_count(self) -> int:
        return self.slots

    @property
    def depth(self) -> int:
        return 1

    @property
    def result_limit(self) -> float:
        return float(2**20)

    def check_plain(self, values: Any) -> None:
        import numpy as np

        worst = float(np.max(np.abs(values))) if np.size(values) else 0.0
        if worst > self.result_limit:
            raise DimensionError(f"a value of magnitude {worst:.4g} exceeds ±{self.result_limit:g}")


class SchemeParams(CheckedParams):
    """What every scheme's parameter set shares: a ring, a prime chain, a claimed level, one
    setting of its own (``SETTING``) (RLWE schemes: CKKS, BFV)."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    security_level: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "coeff_mod_bit_sizes", tuple(int(b) for b in self.coeff_mod_bit_sizes))

    @property
    def slot_count(self) -> int:
        """Slots of one ciphertext (for BFV: one batching row, within which a rotation cycles)."""
        return self.poly_modulus_degree // 2

    @property
    def scale(self) -> float:
        """The factor a value is encoded with (1: integers, encoded exactly)."""
        return 1.0

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def max_log_q(self) -> int | None:
        return HE_STANDARD_MAX_LOG_Q.get(self.poly_modulus_degree, {}).get(self.security_level)

    # a ciphertext's level: "multiplications left" for the protocols, a position in SEAL's chain
    @property
    def top_index(self) -> int:
        """Chain index of a fresh ciphertext (every data prime; the last prime is the special one)."""
        return len(self.coeff_mod_bit_sizes) - 2

    def chain_index(self, depth: int) -> int:
        """Where in the modulus chain (SEAL's chain index) a ciphertext with ``depth`` products left sits."""
        return depth

    def depth_at(self, chain_index: int) -> int:
        """The products left to a ciphertext at ``chain_index`` (inverse of :meth:`chain_index`)."""
        return chain_index

    def describe(self) -> str:
        """One line for ``params list``."""
        return (
            f"N={self.poly_modulus_degree:<6} q={list(self.coeff_mod_bit_sizes)} "
            f"({self.total_bits}/{self.max_log_q} bits)"
        )


@dataclass(frozen=True)
class CKKSParams(SchemeParams):
    """A CKKS parameter set and the security level it claims.

    ``coeff_mod_bit_sizes`` lists the primes of the modulus chain, the last one
    being SEAL's special (key-switching) prime; the ones in between are consumed
    one per rescale, so the multiplicative depth is ``len(coeff_mod_bit_sizes) - 2``.
    """

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    security_level: int

    #: The scheme's own setting beside ring, primes and level, and its default.
    SETTING: ClassVar[tuple[str, int]] = ("scale_bits", 40)

    @property
    def depth(self) -> int:
        """Multiplicative depth: rescales available to a fresh ciphertext."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def max_abs_result(self) -> float:
        """Largest magnitude a fully rescaled result can hold before it wraps around."""
        return float(2 ** (self.coeff_mod_bit_sizes[0] - self.scale_bits - 1))

    @property
    def result_limit(self) -> float:
        """Largest magnitude the key owner lets a result reach: half the wrap-around point."""
        return self.max_abs_result / 2

    @property
    def last_prime_scale_bits(self) -> tuple[int, int] | None:
        """The scales (bits) of the two operands of a product made at the first prime alone, without
        a rescale (the packed gallery's last-prime layout): (stored, brought), a ciphertext the key
        owner encrypts there and one the matcher brings there from the level above. Their product
        keeps ``LAST_PRIME_HEADROOM_BITS`` in the first prime; the brought one gets more bits, as
        the rescale that brings it adds more noise (about 2^11 per slot at N=8192) than a fresh
        encryption (2^8). None when the stored scale leaves the grid of :attr:`last_prime_grid`
        coarser than 2^-``LAST_PRIME_GRID_BITS``."""
        total = min(2 * self.scale_bits, self.coeff_mod_bit_sizes[0] - LAST_PRIME_HEADROOM_BITS)
        brought = min(self.scale_bits, (total + 3) // 2)
        stored = total - brought
        return (stored, brought) if stored - self._noise_bits >= LAST_PRIME_GRID_BITS else None

    @property
    def _noise_bits(self) -> int:
        """log2 of 16σ, σ = 3.2·√N the standard deviation of a fresh encryption's noise per slot."""
        return round(math.log2(16 * 3.2 * math.sqrt(self.poly_modulus_degree)))

    @property
    def last_prime_grid(self) -> float:
        """The grid a last-prime block's values are rounded to: 16σ over the stored scale (2^-14 at
        N=8192). Rounding a decrypted block to it removes the noise of its last encryption (at
        least 7σ from the nearest other grid point), so blocks rewritten any number of times do
        not drift; a value's rounding error is at most half of it."""
        bits = self.last_prime_scale_bits
        if bits is None:
            raise ParameterError(f"{list(self.coeff_mod_bit_sizes)}: the first prime holds no last-prime product")
        return float(2.0 ** (self._noise_bits - bits[0]))

    @property
    def last_prime_result_limit(self) -> float:
        """:attr:`result_limit` of a product at the first prime alone (operands at
        :attr:`last_prime_scale_bits`): half its wrap-around point."""
        bits = self.last_prime_scale_bits
        if bits is None:
            raise ParameterError(f"{list(self.coeff_mod_bit_sizes)}: the first prime holds no last-prime product")
        return float(2 ** (self.coeff_mod_bit_sizes[0] - sum(bits) - 2))

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    def problems(self) -> list[str]:
        """Every reason this set is unusable or does not meet its claimed level."""
        out = _security_problems(self.poly_modulus_degree, self.coeff_mod_bit_sizes, self.security_level)
        bits = self.coeff_mod_bit_sizes
        if not 20 <= self.scale_bits <= MAX_PRIME_BITS:
            out.append(f"scale_bits must be 20 to {MAX_PRIME_BITS}, got {self.scale_bits}")
        elif len(bits) >= 2:
            out += self._ckks_problems()
        return out

    def _ckks_problems(self) -> list[str]:
        """What makes SEAL's CKKS compute wrong answers with this chain, whatever its security."""
        out: list[str] = []
        bits, scale = self.coeff_mod_bit_sizes, self.scale_bits
        first, middle, special = bits[0], bits[1:-1], bits[-1]
        if not middle:
            out.append(
                f"coeff_mod_bit_sizes {list(bits)} has no prime between the first and the special one: "
                "depth 0, but the distance protocols multiply once (use at least three primes)"
            )
        if special < max(bits[:-1]):
            out.append(
                f"the special (last) prime has {special} bits, fewer than the {max(bits[:-1])}-bit prime before it: "
                "key switching (relinearisation, rotation) then adds noise far above the scale and results "
                f"are garbage; make the last prime at least {max(bits[:-1])} bits"
            )
        wrong = [b for b in middle if b != scale]
        if wrong:
            out.append(
                f"the primes a rescale divides by ({list(middle)} bits) must equal the scale 2^{scale}, "
                f"got {wrong}: otherwise the scale drifts at every multiplication"
            )
        headroom = first - scale
        if headroom < MIN_HEADROOM_BITS:
            out.append(
                f"the first prime ({first} bits) leaves {headroom} bits above the scale 2^{scale}: results wrap "
                f"around beyond ±2^{headroom - 1}; the protocols need {MIN_HEADROOM_BITS} bits "
                f"(a first prime of at least {scale + MIN_HEADROOM_BITS} bits)"
            )
        return out

    @classmethod
    def parse(cls, spec: str) -> CKKSParams:
        """``N:BITS,BITS,...:SCALE_BITS:LEVEL``, e.g. ``8192:60,40,40,60:40:128`` (not checked)."""
        try:
            n, bits, scale, level = spec.split(":")
            return cls(int(n), tuple(int(b) for b in bits.split(",")), int(scale), int(level))
        except ValueError:
            raise ParameterError(
                f"cannot read parameter set {spec!r}: expected N:BITS,BITS,...:SCALE_BITS:LEVEL, "
                "e.g. 8192:60,40,40,60:40:128"
            ) from None


@dataclass(frozen=True)
class BFVParams(SchemeParams):
    """A BFV parameter set: exact integer arithmetic modulo a plaintext prime ``t``.

    ``plain_modulus_bits`` sizes ``t`` (a batching prime, t ≡ 1 mod 2N, that the backend finds);
    results are exact as long as they stay within ±t/2, and the key owner keeps them within
    ±t/4. BFV has no levels: ``coeff_mod_bit_sizes`` (the last prime special, as in CKKS) is a
    noise budget, which must hold one ciphertext product with its relinearisation and the
    rotations that sum it."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    plain_modulus_bits: int
    security_level: int

    SETTING: ClassVar[tuple[str, int]] = ("plain_modulus_bits", 20)

    @property
    def depth(self) -> int:
        """Ciphertext products a fresh ciphertext takes (the distance protocols need one)."""
        return 1

    @property
    def result_limit(self) -> float:
        """Largest magnitude the key owner lets a result reach: half of t/2."""
        return float(2 ** (self.plain_modulus_bits - 2))

    @property
    def product_index(self) -> int | None:
        """Chain index a product is switched down to: the fewest data primes that keep
        ``PRODUCT_BITS_ABOVE_T`` bits above t (smaller, cheaper to rotate); None if only the top does."""
        bits = self.coeff_mod_bit_sizes[:-1]
        for index in range(self.top_index):
            if sum(bits[: index + 1]) >= self.plain_modulus_bits + PRODUCT_BITS_ABOVE_T:
                return index
        return None

    def chain_index(self, depth: int) -> int:
        # BFV has no rescale: depth 1 is the top of the chain, depth 0 the level a product is switched to
        return self.top_index if depth >= 1 else int(self.product_index or 0)

    def depth_at(self, chain_index: int) -> int:
        if chain_index == self.top_index:
            return 1
        if chain_index == self.product_index:
            return 0
        raise ValueError(f"chain index {chain_index} is not a level this BFV parameter set uses")

    def batch_row(self, values: Any, slots: int) -> Any:
        """The N int64 batching slots a BFV plaintext encodes: ``values`` (checked integers) in the
        first row's first slots, or a scalar in each of the row's ``slots``; zeros elsewhere."""
        import numpy as np

        row = np.zeros(self.poly_modulus_degree, dtype=np.int64)
        if isinstance(values, float):
            row[:slots] = int(values)
        else:
            row[: values.size] = values.astype(np.int64)
        return row

    def check_plain(self, values: Any) -> None:
        import numpy as np

        arr = np.asarray(values, dtype=np.float64)
        if not np.all(arr == np.round(arr)):
            raise DimensionError(
                "BFV encrypts integers: quantise the values first (the protocols do, see docs/schemes.md)"
            )
        bound = 2 ** (self.plain_modulus_bits - 1)
        if np.any(np.abs(arr) >= bound):
            raise DimensionError(
                f"BFV values must lie within ±{bound - 1} (plain modulus of {self.plain_modulus_bits} bits)"
            )

    def problems(self) -> list[str]:
        out = _security_problems(self.poly_modulus_degree, self.coeff_mod_bit_sizes, self.security_level)
        bits, t = self.coeff_mod_bit_sizes, self.plain_modulus_bits
        if not MIN_PLAIN_BITS <= t <= MAX_PLAIN_BITS:
            out.append(f"plain_modulus_bits must be {MIN_PLAIN_BITS} to {MAX_PLAIN_BITS}, got {t}")
        elif len(bits) >= 2:
            if bits[-1] < max(bits[:-1]):
                out.append(
                    f"the special (last) prime has {bits[-1]} bits, fewer than the {max(bits[:-1])}-bit prime "
                    "before it: key switching then adds noise beyond the budget"
                )
            if self.product_index is None:
                out.append(
                    f"no level below the top of {list(bits)} keeps {PRODUCT_BITS_ABOVE_T} bits above the "
                    f"{t}-bit plain modulus: add a data prime (a product is switched down to a lower level)"
                )
            budget = sum(bits[:-1]) - 2 * t - self.poly_modulus_degree.bit_length()
            if budget < MIN_BFV_BUDGET_BITS:
                out.append(
                    f"the data primes ({sum(bits[:-1])} bits) leave a noise budget of {budget} bits after one "
                    f"product of {t}-bit plaintexts at N={self.poly_modulus_degree}; the protocols need "
                    f"{MIN_BFV_BUDGET_BITS}: more or larger primes, or a smaller plain modulus"
                )
        return out


#: BFV plain modulus sizes: at least 17 bits (a batching prime for N up to 32768), at most 30.
MIN_PLAIN_BITS, MAX_PLAIN_BITS = 17, 30
#: Noise budget (bits) a BFV set must keep after one product: relinearisation and log2(d) rotations.
MIN_BFV_BUDGET_BITS = 40
#: Bits above t the primes of a product's level must hold: its noise after the switch down and
#: log2(d) rotations (measured with SEAL: 15 bits of budget left at t+23 bits, 22 at t+30).
PRODUCT_BITS_ABOVE_T = 28

PRESETS: dict[str, CKKSParams] = {
    "n8192-s128": CKKSParams(8192, (60, 40, 40, 60), 40, 128),
    "n16384-s128": CKKSParams(16384, (60, 40, 40, 40, 40, 40, 40, 60), 40, 128),
    "n8192-s192": CKKSParams(8192, (56, 40, 56), 40, 192),
    "n16384-s192": CKKSParams(16384, (60, 40, 40, 40, 40, 60), 40, 192),
    "n16384-s256": CKKSParams(16384, (60, 40, 40, 60), 40, 256),
    "n32768-s256": CKKSParams(32768, (60, 40, 40, 40, 40, 40, 40, 40, 40, 60), 40, 256),
}

BFV_PRESETS: dict[str, BFVParams] = {
    "bfv-n8192-s128": BFVParams(8192, (43, 43, 44, 44, 44), 20, 128),
    "bfv-n8192-s192": BFVParams(8192, (50, 50, 52), 20, 192),
    "bfv-n16384-s256": BFVParams(16384, (58, 59, 60, 60), 20, 256),
}

#: Per scheme: its parameter type and its presets (``params list/check --scheme``). Plugins add
#: theirs through the ``register_schemes`` hook (``Scheme``); read them through ``schemes()``.
SCHEMES: dict[str, tuple[type, dict[str, Any]]] = {"ckks": (CKKSParams, PRESETS), "bfv": (BFVParams, BFV_PRESETS)}
#: Schemes whose parameter sets are a ring and a prime chain (``params check`` builds those).
RLWE_SCHEMES = tuple(SCHEMES)

#: The preset ``--security LEVEL`` picks: the smallest ring that reaches the level.
DEFAULT_PRESET_FOR_LEVEL = {128: "n8192-s128", 192: "n8192-s192", 256: "n16384-s256"}
DEFAULT_PRESET = "n8192-s128"
LEVEL_PRESETS = {
    "ckks": DEFAULT_PRESET_FOR_LEVEL,
    "bfv": {128: "bfv-n8192-s128", 192: "bfv-n8192-s192", 256: "bfv-n16384-s256"},
}
DEFAULT_PRESETS = {"ckks": DEFAULT_PRESET, "bfv": "bfv-n8192-s128"}


@dataclass(frozen=True)
class Scheme:
    """A scheme a plugin adds: its parameter type (with ``slot_count``, ``depth``, ``result_limit``,
    ``security_level``, ``check``, ``to_dict``/``from_dict``, ``describe``), named presets, the
    preset each security level picks, and the default."""

    name: str
    params_type: type
    presets: dict[str, Any]
    level_presets: dict[int, str]
    default: str


def add_scheme(scheme: Scheme) -> None:
    """Register a plugin's scheme (called once per registry by ``cipherface.plugins``)."""
    if scheme.name in SCHEMES and SCHEMES[scheme.name][0] is not scheme.params_type:
        raise ParameterError(f"two plugins define scheme {scheme.name!r}")
    SCHEMES[scheme.name] = (scheme.params_type, scheme.presets)
    LEVEL_PRESETS[scheme.name] = dict(scheme.level_presets)
    DEFAULT_PRESETS[scheme.name] = scheme.default


def default_preset(scheme: str) -> str:
    """The preset a scheme uses when none is named."""
    schemes()
    return DEFAULT_PRESETS[scheme]


def schemes() -> dict[str, tuple[type, dict[str, Any]]]:
    """Every scheme: the built-in ones and those of installed plugins."""
    from cipherface.plugins import registry

    registry()
    return SCHEMES


def resolve_params(spec: Any = None, scheme: str = "ckks") -> Any:
    """A parameter set of ``scheme`` from a preset name, a security level, or a set; checked."""
    known = schemes()
    if scheme not in known:
        raise ParameterError(f"unknown scheme {scheme!r}; installed schemes: {', '.join(known)}")
    params_type, presets = known[scheme]
    if isinstance(spec, params_type):
        return spec.check()
    if spec is not None and not isinstance(spec, (str, int)):
        raise ParameterError(f"a {type(spec).__name__} is not a {scheme} parameter set ({params_type.__name__})")
    key = str(DEFAULT_PRESETS[scheme] if spec is None else spec)
    if key.isdigit():
        level = int(key)
        if level not in LEVEL_PRESETS[scheme]:
            raise ParameterError(f"security level {level} is not one of {list(SECURITY_LEVELS)}")
        key = LEVEL_PRESETS[scheme][level]
    if key not in presets:
        raise ParameterError(f"unknown {scheme} parameter preset {key!r}; presets: {', '.join(presets)}")
    return presets[key].check()
