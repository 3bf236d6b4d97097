"""DCPE parameter sets: the approximation factor (privacy against accuracy) and the slots per vector."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from cipherface.errors import ParameterError
from cipherface.params import Scheme, VectorParams

#: The key is 32 random bytes (AES-256 and HMAC-SHA-256 underneath): 128 bits against recovering it.
#: The level says nothing about what the distances disclose: that is the point of the scheme
#: (measured by ``cipherface audit``).
LEVELS = (128,)


@dataclass(frozen=True)
class DcpeParams(VectorParams):
    """``approximation_factor`` β bounds the noise DCPE adds (a ball of radius s·β/4 around the scaled
    vector): larger hides more and preserves distances less. ``slots`` is how many values one vector
    holds: it sets the packed gallery's block size and the longest 1:1 window."""

    approximation_factor: float
    slots: int
    security_level: int

    SETTING = ("approximation_factor", 1.0)

    @property
    def scale(self) -> float:
        return 1.0

    def problems(self) -> list[str]:
        out = []
        if self.security_level not in LEVELS:
            out.append(f"security level {self.security_level} is not one of {list(LEVELS)} (a 32-byte key)")
        if not (math.isfinite(self.approximation_factor) and 0 < self.approximation_factor <= 1000):
            out.append(f"the approximation factor must be in (0, 1000], got {self.approximation_factor}")
        if self.slots < 256 or self.slots & (self.slots - 1) or self.slots > 1 << 16:
            out.append(f"slots must be a power of two from 256 to 65536, got {self.slots}")
        return out

    def describe(self) -> str:
        return f"approximation factor {self.approximation_factor:g}, {self.slots} slots (vectors the matcher reads)"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DcpeParams:
        try:
            factor = data["approximation_factor"]
            if isinstance(factor, bool) or not isinstance(factor, (int, float)):
                raise TypeError(f"approximation_factor {factor!r} is not a number")
            return cls(float(factor), *(int(data[f.name]) for f in fields(cls)[1:]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"malformed parameter set {data!r}: {exc}") from None


# the factors measured in docs/schemes.md: 1 is the default (Dlib faces: AUC 0.978, 96 % of decisions
# equal plaintext's); 2.5 and 5 hide more and preserve less
PRESETS = {f"dcpe-{f:g}": DcpeParams(f, 4096, 128) for f in (0.5, 1.0, 2.5, 5.0)}
SCHEME = Scheme(
    name="dcpe",
    params_type=DcpeParams,
    presets=PRESETS,
    level_presets={128: "dcpe-1"},
    default="dcpe-1",
)
