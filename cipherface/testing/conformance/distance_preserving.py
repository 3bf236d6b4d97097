"""The conformance suite, capability distance-preserving: the key owner's transform keeps distances
roughly and hides the rest (keyed, randomised, secret)."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import DISTANCE_PRESERVING
from cipherface.errors import SecretKeyRequiredError
from cipherface.testing.conformance._base import _Fixtures


class DistancePreservingTests(_Fixtures):
    capability = "distance-preserving"
    needs = (DISTANCE_PRESERVING,)

    def test_clear_gaps_keep_their_order(self, backend, rng):
        # x's near neighbour at distance 1, a far one at 50: no bounded noise may swap them
        for _ in range(20):
            x = rng.normal(size=128)
            near = x + rng.normal(size=128) / np.sqrt(128)
            far = x + 50 * rng.normal(size=128) / np.sqrt(128)
            tx, tn, tf = (backend.encrypt_vector(v) for v in (x, near, far))
            assert tx.shape == x.shape, "distance-preserving: the transform changed the vector's length"
            assert np.linalg.norm(tx - tn) < np.linalg.norm(tx - tf), (
                "distance-preserving: a near neighbour came out farther than a far one"
            )

    def test_distances_are_approximated(self, backend, rng):
        xs = rng.normal(size=(12, 128))
        ts = np.array([backend.encrypt_vector(x) for x in xs])
        plain = [np.linalg.norm(a - b) for i, a in enumerate(xs) for b in xs[i + 1 :]]
        enc = [np.linalg.norm(a - b) for i, a in enumerate(ts) for b in ts[i + 1 :]]
        r = np.corrcoef(plain, enc)[0, 1]
        assert r > 0.5, f"distance-preserving: distances between transformed vectors correlate {r:.3f} with plaintext"

    def test_the_transform_is_randomised(self, backend, rng):
        x = rng.normal(size=128)
        assert not np.allclose(backend.encrypt_vector(x), backend.encrypt_vector(x)), (
            "distance-preserving: one vector transformed twice gave the same output (equality would show)"
        )

    def test_components_are_hidden_and_keyed(self, backend, other_key_backend, rng):
        x = rng.normal(size=128)
        tx = backend.encrypt_vector(x)
        assert np.max(np.abs(tx - x)) > 0.5, "distance-preserving: the transform left the vector as it was"
        other = other_key_backend.encrypt_vector(x)
        assert np.linalg.norm(other - tx) > 0.5 * np.linalg.norm(x), (
            "distance-preserving: another key transformed the vector to nearly the same output"
        )

    def test_the_transform_needs_the_secret_key(self, public_backend):
        with pytest.raises(SecretKeyRequiredError):
            public_backend.encrypt_vector(np.ones(16))
