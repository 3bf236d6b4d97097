"""A metric as one inner product of an encrypted reference row with a probe row in the clear: how
the protocols run on partially homomorphic backends (``probe-in-clear``, e.g. Paillier), which
multiply a ciphertext by plaintexts only.

The reference is ``gallery_row(a)`` followed by 1, the probe ``probe_row(b)`` followed by its
offset, so ``value = reference · probe``: for Euclidean the reference row carries its own squared
norm, encrypted by the key owner, and the probe its squared norm in the clear. 1:1 and the packed
gallery then compute the same quantity the encrypted protocols do, and the key owner decides on it
with the metric's own cutoff.
"""

from __future__ import annotations

import numpy as np

from cipherface.capabilities import CT_MULTIPLY, PROBE_IN_CLEAR
from cipherface.protocols.base import DistanceProtocol


class ProbeInClear(DistanceProtocol):
    def __init__(self, metric: DistanceProtocol) -> None:
        self.metric = metric
        self.name = metric.name
        self.value_name = metric.value_name
        self.quant_scale = metric.quant_scale
        self.requires = (metric.requires - {CT_MULTIPLY}) | {PROBE_IN_CLEAR}
        self.gallery_requires = (metric.gallery_requires - {CT_MULTIPLY}) | {PROBE_IN_CLEAR}

    def prepare(self, embedding):
        return np.append(self.metric.gallery_row(embedding), 1.0)

    def prepare_probe(self, embedding):
        row, offset = self.metric.probe_row(embedding)
        return np.append(row, offset)

    def encode(self, values):
        return self.metric.encode(values)

    def encrypted(self, backend, a, b, dim):
        return backend.sum_slots(backend.drop_to_depth(backend.multiply(a, b), 0), dim)

    def plaintext(self, a, b):
        return float(np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64))

    def cutoff(self, threshold):
        return self.metric.cutoff(threshold)

    def decide(self, value, threshold):
        return self.metric.decide(value, threshold)

    def distance(self, value):
        return self.metric.distance(value)

    def gallery_row(self, embedding):
        return self.metric.gallery_row(embedding)

    def probe_row(self, embedding):
        return self.metric.probe_row(embedding)

    def check(self, embedding, limit, *, probe=False):
        # the bound is the metric's on the embedding as it prepares it: every partial sum of the
        # rows' product (cosine: within 1 + |â||b̂|; Euclidean: |a|² + 2|a||b| + |b|²) is within it
        self.metric.prepare_checked(embedding, limit)

    def prepare_checked(self, embedding, limit, *, probe=False):
        self.check(embedding, limit)
        return self.prepare_probe(embedding) if probe else self.prepare(embedding)

    def result_bound(self, norm):
        return self.metric.result_bound(norm)

    def value_range(self, limit):
        return self.metric.value_range(limit)
