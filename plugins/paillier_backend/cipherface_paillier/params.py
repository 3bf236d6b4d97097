"""Paillier parameter sets: a modulus size for the claimed level, fixed-point precision, slots."""

from __future__ import annotations

from dataclasses import dataclass

from cipherface.params import Scheme, VectorParams

#: Smallest modulus for a security level (NIST SP 800-57: factoring a 3072-bit modulus ~ 128 bits).
MODULUS_BITS_FOR_LEVEL = {128: 3072, 192: 7680, 256: 15360}


@dataclass(frozen=True)
class PaillierParams(VectorParams):
    """Paillier over Z_{n²}: reals are encoded as ``round(x · 2^precision_bits)`` modulo n (signed,
    centred: no sign in the clear); a product with a clear value doubles the precision bits, so one
    product is allowed (depth 1) and results stay exact integers far below n/2.

    ``slots`` is how many values one vector ciphertext holds (one Paillier ciphertext each; exact
    zeros cost nothing): it sets the packed gallery's block size and the longest 1:1 window."""

    modulus_bits: int
    precision_bits: int
    slots: int
    security_level: int

    SETTING = ("precision_bits", 30)

    @property
    def scale(self) -> float:
        # results within ±2^20 (result_limit) stay far below n / 2^(2·precision): they never wrap
        return float(2**self.precision_bits)

    def problems(self) -> list[str]:
        out = []
        need = MODULUS_BITS_FOR_LEVEL.get(self.security_level)
        if need is None:
            out.append(f"security level {self.security_level} is not one of {sorted(MODULUS_BITS_FOR_LEVEL)}")
        elif self.modulus_bits < need:
            out.append(
                f"a {self.modulus_bits}-bit modulus does not reach {self.security_level}-bit security "
                f"(at least {need} bits: NIST SP 800-57)"
            )
        if not 16 <= self.precision_bits <= 40:
            out.append(f"precision_bits must be 16 to 40, got {self.precision_bits}")
        if self.slots < 16 or self.slots & (self.slots - 1) or self.slots > 1 << 16:
            out.append(f"slots must be a power of two from 16 to 65536, got {self.slots}")
        if 2 * self.precision_bits + 20 + 2 + self.slots.bit_length() >= self.modulus_bits:
            out.append("the modulus is too small for the precision: results would wrap around")
        return out

    def describe(self) -> str:
        return f"n={self.modulus_bits} bits, 2^-{self.precision_bits} fixed point, {self.slots} slots"


# 192- and 256-bit levels need 7,680- and 15,360-bit moduli: valid parameter sets, but every
# operation costs 10-40x more (no preset; pass a PaillierParams to ``generate``)
PRESETS = {"paillier-3072": PaillierParams(3072, 30, 1024, 128)}
SCHEME = Scheme(
    name="paillier",
    params_type=PaillierParams,
    presets=PRESETS,
    level_presets={128: "paillier-3072"},
    default="paillier-3072",
)
