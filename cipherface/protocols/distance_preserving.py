"""A metric on the vectors a distance-preserving backend makes of whole embeddings (``distance-preserving``,
e.g. IronCore's DCPE): how the protocols run when the matcher may compute distances itself.

The key owner prepares an embedding as the metric does, then applies the backend's secret transform
to it as a whole (``FHEBackend.encrypt_vector``: a keyed shuffle, scaling and bounded noise), and
prepares the result once more (cosine renormalises it). Everything after that, 1:1 with canaries and
the packed gallery, is the metric's own computation on these vectors, which the backend carries in
its slots as they are. The value is the metric between the transformed vectors: it approximates the
plaintext distance (how well is the approximation factor's trade-off, measured in docs/schemes.md),
and the matcher can compute it too. The transform's noise biases it (on average by a known function
of the noise's energy, which the key owner measures on its own key): the key owner moves its cutoff
by that bias and reports distances without it. Canaries stay untransformed (the key owner must recompute them):
they catch a result computed on other operands, not a matcher reporting another value on purpose.
"""

from __future__ import annotations

import numpy as np

from cipherface.capabilities import CT_MULTIPLY, DISTANCE_PRESERVING
from cipherface.protocols.base import DistanceProtocol


class DistancePreserving(DistanceProtocol):
    def __init__(self, metric: DistanceProtocol, backend) -> None:
        self.metric = metric
        self.backend = backend
        self.name = metric.name
        self.value_name = f"{metric.value_name} between distance-preserving encryptions"
        self.quant_scale = metric.quant_scale
        self.requires = (metric.requires - {CT_MULTIPLY}) | {DISTANCE_PRESERVING}
        self.gallery_requires = (metric.gallery_requires - {CT_MULTIPLY}) | {DISTANCE_PRESERVING}

    def prepare(self, embedding):
        # the transform needs the key owner's secret: the matcher never prepares anything
        return self.metric.prepare(self.backend.encrypt_vector(self.metric.prepare(embedding)))

    def encode(self, values):
        return self.metric.encode(values)

    def encrypted(self, backend, a, b, dim):
        return self.metric.encrypted(backend, a, b, dim)

    def plaintext(self, a, b):
        return self.metric.plaintext(a, b)

    # The transform's noise adds to every distance on average (Euclidean: twice its energy; cosine:
    # it shrinks the normalised vectors' inner products): the key owner, who measured the energy
    # on its own key, moves its cutoff by that bias and reports distances without it.
    def cutoff(self, threshold):
        return self.metric.noisy(self.metric.cutoff(threshold), self.backend.transform_noise())

    def plain_value(self, value):
        return self.metric.denoised(value, self.backend.transform_noise())

    def distance(self, value):
        return self.metric.distance(self.plain_value(value))

    def gallery_row(self, embedding):
        return self.metric.gallery_row(self.prepare(embedding))

    def probe_row(self, embedding):
        return self.metric.probe_row(self.prepare(embedding))

    def canary_row(self, template):
        return self.metric.gallery_row(np.asarray(template, dtype=np.float64))

    def width(self, dim):
        return self.metric.width(dim)

    def check(self, embedding, limit, *, probe=False):
        # the key owner accepts what it accepts on any backend (the embedding as the metric prepares
        # it); the transform's scaling and noise cannot wrap anything around: arithmetic on reals.
        # No transform here: each one is a fresh encryption, made once where it is kept
        self.metric.prepare_checked(embedding, limit)

    def prepare_checked(self, embedding, limit, *, probe=False):
        self.check(embedding, limit)
        return self.prepare(embedding)

    def result_bound(self, norm):
        return self.metric.result_bound(norm)

    def value_range(self, limit):
        # ... but they can carry a genuine result a little past the untransformed inputs' bound
        return self.metric.value_range(TRANSFORM_HEADROOM * limit)


#: How far past the metric's own bound a result of transformed inputs may go (scaling near 1, noise
#: of a quarter of the approximation factor: far less than this).
TRANSFORM_HEADROOM = 4.0
