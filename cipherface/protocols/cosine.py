"""Cosine distance 1 − α̂·β̂ on vectors the key owner L2-normalises before encryption."""

from __future__ import annotations

import numpy as np

from cipherface.errors import DimensionError
from cipherface.protocols.base import DistanceProtocol


class Cosine(DistanceProtocol):
    name = "cosine"
    depth = 1
    value_name = "cosine distance"

    def normalise(self, arr):
        norm = np.linalg.norm(arr)
        if norm == 0:
            raise DimensionError("cosine distance is undefined for an all-zero embedding")
        return arr / norm

    def normalise_rows(self, arr):
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        if not norms.all():
            raise DimensionError(
                f"cosine distance is undefined for an all-zero embedding (row {int(np.argmin(norms[:, 0]))})"
            )
        return arr / norms

    def encrypted(self, backend, a, b, dim):
        # nothing multiplies after this: rotate at the lowest level, where key switching is cheapest
        dot = backend.sum_slots(backend.drop_to_depth(backend.multiply(a, b), 0), dim)
        return backend.add_plain(backend.negate(dot), self.unit)

    def plaintext(self, a, b):
        return float(self.unit - np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64))

    def gallery_row(self, embedding):
        return self.prepare(embedding)

    def gallery_rows(self, embeddings, limit):
        return self._prepared_rows(embeddings, limit)

    def probe_row(self, embedding):
        # 1 - ĝ·p̂ = ĝ·(-p̂) + 1
        return -self.prepare(embedding), self.unit

    def cutoff(self, threshold):
        return float(threshold) * self.unit

    def distance(self, value):
        return float(value) / self.unit

    def noisy(self, value, energy):
        # unit vectors plus noise, normalised again: 1 - â·b̂ / (1 + energy) on average
        return (float(value) + energy * self.unit) / (1.0 + energy)

    def denoised(self, value, energy):
        return float(value) * (1.0 + energy) - energy * self.unit

    def result_bound(self, norm):
        # inputs are unit vectors (norm 1; quantised: about the scale): dot products within ±norm²
        return self.unit + norm * norm

    def value_range(self, limit):
        # unit vectors: distances in [0, 2]; quantised ones have norms within 2·scale after rounding
        reach = float(2 * self.quant_scale) ** 2 if self.quant_scale else 1.0
        return self.unit - reach, self.unit + reach
