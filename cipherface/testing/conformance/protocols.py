"""The conformance suite, capability protocols: euclidean and cosine against numpy, decisions equal plaintext."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import CT_MULTIPLY, DISTANCE_PRESERVING, PROBE_IN_CLEAR, ROTATION, protocol_for
from cipherface.errors import DimensionError
from cipherface.testing.conformance._base import (
    PROTOCOLS,
    _Fixtures,
    assert_close,
    fitted,
)


class ProtocolTests(_Fixtures):
    capability = "protocols"
    needs = ((CT_MULTIPLY, PROBE_IN_CLEAR, DISTANCE_PRESERVING), ROTATION)

    def _encrypted(self, backend, name, a, b):
        """Decrypted and plaintext result of ``name`` (in the backend's arithmetic: reals, or
        quantised integers) on ``a`` and ``b``, scaled into what the key owner accepts."""
        p = protocol_for(backend, name)
        limit = backend.params.result_limit
        pa, pb = p.prepare(fitted(p, a, limit)), p.prepare_probe(fitted(p, b, limit))
        ct = p.encrypted(backend, backend.encrypt(pa), backend.encrypt_probe(pb), pa.size)
        return backend.decrypt(ct, 1)[0], p.plaintext(pa, pb)

    @pytest.mark.parametrize("name", PROTOCOLS)
    @pytest.mark.parametrize("dim", (128, 512, 4096))
    def test_random_embeddings_match_numpy(self, backend, rng, tolerance, name, dim):
        if dim > backend.slot_count:
            pytest.skip(f"d={dim} exceeds the slot count")
        got, want = self._encrypted(backend, name, rng.normal(size=dim), rng.normal(size=dim))
        assert_close(got, want, tolerance, f"protocols: {name} at d={dim}")

    @pytest.mark.parametrize("name", PROTOCOLS)
    @pytest.mark.parametrize("case", ["identical", "opposite_maxima", "negative", "one_hot", "tiny", "zeros_vs_ones"])
    def test_adversarial_embeddings_match_numpy(self, backend, tolerance, name, case):
        d = 128
        a, b = {
            "identical": (np.full(d, 0.3), np.full(d, 0.3)),
            "opposite_maxima": (np.ones(d), -np.ones(d)),
            "negative": (-np.linspace(0.1, 1, d), -np.linspace(1, 0.1, d)),
            "one_hot": (np.eye(d)[0], np.eye(d)[d - 1]),
            "tiny": (np.full(d, 1e-4), np.full(d, -1e-4)),
            "zeros_vs_ones": (np.zeros(d), np.ones(d)),
        }[case]
        if name == "cosine" and not np.any(a):
            with pytest.raises(DimensionError):
                protocol_for(backend, name).prepare(a)
            return
        got, want = self._encrypted(backend, name, a, b)
        assert_close(got, want, tolerance, f"protocols: {name} on {case}")

    def test_euclidean_of_zero_vectors_is_zero(self, backend, tolerance):
        got, want = self._encrypted(backend, "euclidean", np.zeros(64), np.zeros(64))
        if DISTANCE_PRESERVING not in backend.capabilities:  # (there: between two noisy encryptions of 0)
            assert want == 0.0
        assert_close(got, want, tolerance, "protocols: euclidean of zeros")

    @pytest.mark.parametrize("name", PROTOCOLS)
    def test_decisions_equal_plaintext_decisions(self, backend, rng, name):
        p = protocol_for(backend, name)
        thresholds = {"cosine": [0.5, 0.9, 1.0, 1.1], "euclidean": [10.0, 15.0, 16.0, 17.0]}[name]
        for _ in range(4):
            got, want = self._encrypted(backend, name, rng.normal(size=128), rng.normal(size=128))
            for t in thresholds:
                if abs(want - p.cutoff(t)) < 1e-3:
                    continue  # within noise of the threshold: either answer is honest
                assert p.decide(got, t) == p.decide(want, t), f"protocols: {name} decision differs at {t}"
