"""Squared Euclidean distance: d² = Σ(α−β)², decided against threshold²."""

from __future__ import annotations

import math

import numpy as np

from cipherface.protocols.base import DistanceProtocol


class Euclidean(DistanceProtocol):
    name = "euclidean"
    depth = 1
    value_name = "squared Euclidean distance"

    def encrypted(self, backend, a, b, dim):
        diff = backend.sub(a, b)
        # nothing multiplies after this: rotate at the lowest level, where key switching is cheapest
        squared = backend.drop_to_depth(backend.multiply(diff, diff), 0)
        return backend.sum_slots(squared, dim)

    def plaintext(self, a, b):
        diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        return float(diff @ diff)

    def gallery_row(self, embedding):
        # ||g - p||² = ||g||² - 2 g·p + ||p||²: store (g, ||g||²), probe with (-2p, 1) and add ||p||²
        g = self.prepare(embedding)
        return np.append(g, g @ g)

    def gallery_rows(self, embeddings, limit):
        g = self._prepared_rows(embeddings, limit)
        return np.column_stack([g, np.einsum("ij,ij->i", g, g)])

    def probe_row(self, embedding):
        p = self.prepare(embedding)
        return np.append(-2.0 * p, 1.0), float(p @ p)

    def cutoff(self, threshold):
        return float(threshold) ** 2 * self.unit

    def noisy(self, value, energy):
        # ‖a + n - b - m‖² = ‖a - b‖² + ‖n‖² + ‖m‖² on average
        return float(value) + 2.0 * energy * self.unit

    def denoised(self, value, energy):
        return float(value) - 2.0 * energy * self.unit

    def result_bound(self, norm):
        # (|a| + |b|)² bounds d² and every partial sum; the gallery's |g|² - 2g·p stays within 3·norm²
        return 4.0 * norm * norm

    def value_range(self, limit):
        return 0.0, float(limit)

    def distance(self, value):
        # CKKS noise can make a zero distance decrypt slightly negative
        return math.sqrt(max(float(value), 0.0) / self.unit)
