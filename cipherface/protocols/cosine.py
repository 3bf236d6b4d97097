"""Cosine distance 1 − α̂·β̂ on vectors the key owner L2-normalises before encryption."""

from __future__ import annotations

import numpy as np

from cipherface.errors import DimensionError
from cipherface.protocols.base import DistanceProtocol


class Cosine(DistanceProtocol):
    name = "cosine"
    depth = 1
    value_name = "cosine distance"

    def prepare(self, embedding):
        arr = super().prepare(embedding)
        norm = np.linalg.norm(arr)
        if norm == 0:
            raise DimensionError("cosine distance is undefined for an all-zero embedding")
        return arr / norm

    def encrypted(self, backend, a, b, dim):
        # nothing multiplies after this: rotate at the lowest level, where key switching is cheapest
        dot = backend.sum_slots(backend.drop_to_depth(backend.multiply(a, b), 0), dim)
        return backend.add_plain(backend.negate(dot), 1.0)

    def plaintext(self, a, b):
        return float(1.0 - np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64))

    def gallery_row(self, embedding):
        return self.prepare(embedding)

    def probe_row(self, embedding):
        # 1 - ĝ·p̂ = ĝ·(-p̂) + 1
        return -self.prepare(embedding), 1.0

    def cutoff(self, threshold):
        return float(threshold)

    def result_bound(self, norm):
        return 2.0  # inputs are unit vectors: dot products in [-1, 1], distances in [0, 2]

    def value_range(self, limit):
        return 0.0, 2.0
