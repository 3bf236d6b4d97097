"""The interface of an encrypted distance protocol."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import ClassVar, Self

import numpy as np

from cipherface.backend import Ciphertext, FHEBackend
from cipherface.capabilities import APPROXIMATE, CT_MULTIPLY, EXACT, ROTATION
from cipherface.errors import DimensionError, IntegrityError, RangeError


class DistanceProtocol(ABC):
    """A distance computed on encrypted embeddings and decided against a threshold.

    ``prepare`` runs on the key owner's side before encryption, ``encrypted``
    on the matcher's side (backend primitives only), ``decide`` on the key
    owner's side after decryption.  ``plaintext`` is the numpy oracle on
    prepared vectors: decrypted values must match it.
    """

    name: ClassVar[str]
    #: Backend capabilities the 1:1 computation needs (``cipherface.capabilities``).
    requires: ClassVar[frozenset[str]] = frozenset({CT_MULTIPLY, ROTATION, APPROXIMATE})
    #: ... and those the packed gallery's scan needs (one multiply-accumulate, no rotation).
    gallery_requires: ClassVar[frozenset[str]] = frozenset({CT_MULTIPLY, APPROXIMATE})
    #: Multiplicative depth the encrypted computation consumes.
    depth: ClassVar[int] = 1
    #: What the decrypted value is, for users (e.g. "squared Euclidean distance").
    value_name: ClassVar[str]
    #: Quantisation steps per unit for exact (integer) arithmetic; None: reals (approximate).
    quant_scale: int | None = None

    def quantised(self, scale: int | None = None) -> Self:
        """This protocol on integers, for backends with exact arithmetic (BFV): every prepared
        component is rounded to ``round(x · scale)``, at most ``QUANT_MAX`` in magnitude (8 bits
        with the default scale), and every value is in those units (``unit`` = scale² for 1)."""
        out = copy.copy(self)
        out.quant_scale = int(scale or QUANT_SCALE)
        out.requires = (self.requires - {APPROXIMATE}) | {EXACT}
        out.gallery_requires = (self.gallery_requires - {APPROXIMATE}) | {EXACT}
        return out

    def probe_in_clear(self) -> DistanceProtocol:
        """This metric as one inner product of an encrypted reference row with a clear probe row,
        for backends that multiply ciphertexts by plaintexts only (``probe-in-clear``)."""
        from cipherface.protocols.probe_in_clear import ProbeInClear

        return ProbeInClear(self)

    def distance_preserving(self, backend: FHEBackend) -> DistanceProtocol:
        """This metric on the vectors a ``distance-preserving`` backend makes of whole embeddings
        (its secret transform, applied as the key owner prepares each one)."""
        from cipherface.protocols.distance_preserving import DistancePreserving

        return DistancePreserving(self, backend)

    @property
    def unit(self) -> float:
        """The value 1 in this protocol's units (scale² when quantised: products of two inputs)."""
        return float(self.quant_scale**2) if self.quant_scale else 1.0

    def prepare(self, embedding: np.ndarray) -> np.ndarray:
        """What is encrypted for an embedding: the metric's normalisation, then (exact arithmetic) quantisation."""
        arr = np.asarray(embedding, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise DimensionError(f"an embedding must be a non-empty 1-D vector, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise DimensionError("embedding contains NaN or infinity")
        return self.encode(self.normalise(arr))

    def prepare_probe(self, embedding: np.ndarray) -> np.ndarray:
        """What is encrypted (or, on a ``probe-in-clear`` backend, sent in the clear) for a probe:
        the same as for a reference unless the protocol is asymmetric."""
        return self.prepare(embedding)

    def normalise(self, arr: np.ndarray) -> np.ndarray:
        """The metric's own preparation on reals (e.g. L2-normalisation)."""
        return arr

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Reals in prepared units as this protocol computes on them: as they are, or quantised."""
        if not self.quant_scale:
            return values
        q = np.round(np.asarray(values, dtype=np.float64) * self.quant_scale)
        if np.any(np.abs(q) > QUANT_MAX):
            worst = float(np.max(np.abs(values)))
            raise RangeError(
                f"a component of magnitude {worst:.4g} does not fit the {self.name} protocol's 8-bit quantisation "
                f"(at most {QUANT_MAX / self.quant_scale:.4g}): scale the embeddings down"
            )
        return q

    @abstractmethod
    def encrypted(self, backend: FHEBackend, a: Ciphertext, b: Ciphertext, dim: int) -> Ciphertext:
        """The encrypted distance in slot 0."""

    @abstractmethod
    def plaintext(self, a: np.ndarray, b: np.ndarray) -> float:
        """The same value in the clear, on prepared vectors."""

    @abstractmethod
    def cutoff(self, threshold: float) -> float:
        """The value a decrypted result is compared with for a distance threshold."""

    def decide(self, value: float, threshold: float) -> bool:
        """Same person: the decrypted value is at most the threshold's cutoff."""
        return bool(value <= self.cutoff(threshold))

    @abstractmethod
    def gallery_row(self, embedding: np.ndarray) -> np.ndarray:
        """The vector stored for a gallery identity in the packed layout (prepared, maybe augmented)."""

    def gallery_rows(self, embeddings: np.ndarray, limit: float) -> np.ndarray:
        """The gallery rows (n x width) of many embeddings (n x d), each refused as ``check`` refuses
        it: one by one here; metrics whose preparation is row-wise arithmetic do it in one pass."""
        return np.array([self._checked_row(e, limit) for e in embeddings]).reshape(len(embeddings), -1)

    def _checked_row(self, embedding: np.ndarray, limit: float) -> np.ndarray:
        self.check(embedding, limit)
        return self.gallery_row(embedding)

    def _prepared_rows(self, embeddings: np.ndarray, limit: float) -> np.ndarray:
        """``prepare_checked`` of every row at once, for metrics whose ``normalise_rows`` does it."""
        arr = np.asarray(embeddings, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise DimensionError(f"embeddings must be a non-empty 2-D array (n x d), got shape {arr.shape}")
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            raise DimensionError(f"embedding {int(np.argmin(finite))} contains NaN or infinity")
        prepared = self.encode(self.normalise_rows(arr))
        norms = np.sqrt(np.einsum("ij,ij->i", prepared, prepared))
        over = np.flatnonzero(self.result_bound(norms) > limit)
        if over.size:
            self.check_input(prepared[over[0]], limit)  # its error, as for one embedding
        return prepared

    def normalise_rows(self, arr: np.ndarray) -> np.ndarray:
        """``normalise`` of every row of ``arr`` (n x d)."""
        return arr

    def canary_row(self, template: np.ndarray) -> np.ndarray:
        """The stored row of one of the key owner's gallery canaries, from its random template."""
        return self.gallery_row(template)

    def width(self, dim: int) -> int:
        """Components of a gallery row for embeddings of length ``dim``."""
        return len(self.canary_row(np.ones(dim)))

    @abstractmethod
    def probe_row(self, embedding: np.ndarray) -> tuple[np.ndarray, float]:
        """The probe vector and an offset such that value = gallery_row · probe_row + offset.

        This turns every metric into one encrypted inner product per identity, which the
        packed gallery computes for thousands of identities per ciphertext."""

    def distance(self, value: float) -> float:
        """The distance in the units thresholds are given in."""
        return float(value)

    def plain_value(self, value: float) -> float:
        """A decrypted value as the plaintext metric would give it (itself, unless the inputs were
        transformed with noise: ``distance_preserving``)."""
        return float(value)

    def noisy(self, value: float, energy: float) -> float:
        """The expected value when each prepared input carries independent noise of mean squared
        norm ``energy`` (a distance-preserving transform's); ``denoised`` is its inverse."""
        raise NotImplementedError(f"the {self.name} protocol has no model of noisy inputs")

    def denoised(self, value: float, energy: float) -> float:
        raise NotImplementedError(f"the {self.name} protocol has no model of noisy inputs")

    # ------------------------------------------------------------ value ranges
    @abstractmethod
    def result_bound(self, norm: float) -> float:
        """The largest magnitude any intermediate or final value reaches (1:1 and gallery) when
        every prepared input has an L2 norm of at most ``norm``."""

    @abstractmethod
    def value_range(self, limit: float) -> tuple[float, float]:
        """The values a genuine decrypted result can take when inputs keep within ``limit``."""

    def check_input(self, prepared: np.ndarray, limit: float) -> np.ndarray:
        """Refuse a prepared embedding whose results could pass ``limit`` (and so wrap around)."""
        norm = float(np.linalg.norm(prepared))
        bound = self.result_bound(norm)
        if bound > limit:
            raise RangeError(
                f"embedding norm {norm:.6g} is too large for {self.name}: results could reach {bound:.6g}, "
                f"but this parameter set holds at most ±{limit:.6g} without wrapping around; scale the "
                "embeddings down or use a parameter set with more bits between the scale and the first prime"
            )
        return prepared

    def prepare_checked(self, embedding: np.ndarray, limit: float, *, probe: bool = False) -> np.ndarray:
        """What is encrypted for an embedding (as a reference, or as the ``probe``), refused if
        any result could pass ``limit``."""
        return self.check_input(self.prepare_probe(embedding) if probe else self.prepare(embedding), limit)

    def check(self, embedding: np.ndarray, limit: float, *, probe: bool = False) -> None:
        """What ``prepare_checked`` refuses, keeping nothing (the gallery prepares its rows itself)."""
        self.prepare_checked(embedding, limit, probe=probe)

    def check_values(self, values: np.ndarray | float, limit: float, what: str) -> None:
        """Refuse decrypted values this metric cannot produce: never decide on them."""
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
        lo, hi = self.value_range(limit)
        slack = VALUE_SLACK + 1e-6 * max(abs(lo), abs(hi))
        bad = ~np.isfinite(arr) | (arr < lo - slack) | (arr > hi + slack)
        if bad.any():
            worst = arr[bad][0]
            raise IntegrityError(
                f"{what}: decrypted {self.name} value {worst:.6g} is outside [{lo:g}, {hi:g}], which no genuine "
                "result can take: it is corrupted, forged, or was computed with another key; nothing was decided"
            )

    def window(self, dim: int) -> int:
        """Slots the encrypted computation sums into slot 0 (the next power of two from ``dim``);
        slots ``window + k`` hold the same computation on the inputs' slots from ``window + k``."""
        return 1 << max(dim - 1, 0).bit_length()

    def window_values(self, a: np.ndarray, b: np.ndarray, dim: int, count: int) -> np.ndarray:
        """What slots ``window .. window + count - 1`` of a result hold when the inputs hold ``a`` and
        ``b`` from slot ``window`` on (and zeros after): the plaintext computation, window by window."""
        size = self.window(dim)
        pa, pb = np.zeros(count + size), np.zeros(count + size)
        pa[: len(a)], pb[: len(b)] = a, b
        return np.array([self.plaintext(pa[k : k + size], pb[k : k + size]) for k in range(count)])


#: Default quantisation for exact arithmetic: 127 steps per unit, components within ±127 (8 bits).
QUANT_SCALE = 127
QUANT_MAX = 127

#: Absolute slack around a metric's range: CKKS noise on a genuine result is orders below it.
VALUE_SLACK = 1e-3
