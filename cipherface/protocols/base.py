"""The interface of an encrypted distance protocol."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from cipherface.backend import Ciphertext, FHEBackend
from cipherface.errors import DimensionError


class DistanceProtocol(ABC):
    """A distance computed on encrypted embeddings and decided against a threshold.

    ``prepare`` runs on the key owner's side before encryption, ``encrypted``
    on the matcher's side (backend primitives only), ``decide`` on the key
    owner's side after decryption.  ``plaintext`` is the numpy oracle on
    prepared vectors: decrypted values must match it.
    """

    name: ClassVar[str]
    #: Multiplicative depth the encrypted computation consumes.
    depth: ClassVar[int] = 1
    #: What the decrypted value is, for users (e.g. "squared Euclidean distance").
    value_name: ClassVar[str]

    def prepare(self, embedding: np.ndarray) -> np.ndarray:
        arr = np.asarray(embedding, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise DimensionError(f"an embedding must be a non-empty 1-D vector, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise DimensionError("embedding contains NaN or infinity")
        return arr

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

    @abstractmethod
    def probe_row(self, embedding: np.ndarray) -> tuple[np.ndarray, float]:
        """The probe vector and an offset such that value = gallery_row · probe_row + offset.

        This turns every metric into one encrypted inner product per identity, which the
        packed gallery computes for thousands of identities per ciphertext."""

    def distance(self, value: float) -> float:
        """The distance in the units thresholds are given in."""
        return float(value)
