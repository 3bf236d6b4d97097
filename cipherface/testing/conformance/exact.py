"""The conformance suite, capability exact: integer arithmetic modulo a plain modulus (BFV), and
every preset of the scheme through both quantised protocols and the gallery kernel, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import EXACT
from cipherface.errors import DimensionError
from cipherface.params import schemes
from cipherface.testing.conformance._base import _Fixtures, protocol_errors


class ExactTests(_Fixtures):
    capability = "exact"
    needs = (EXACT,)

    def test_integers_round_trip_exactly_up_to_the_limit(self, backend, rng):
        limit = int(backend.params.result_limit)
        x = np.concatenate([[limit, -limit, 0, 1, -1], rng.integers(-limit, limit, size=500)]).astype(float)
        got = backend.decrypt(backend.encrypt(x), x.size)
        assert np.array_equal(got, x), "exact: integers did not round-trip exactly"

    def test_every_slot_round_trips(self, backend, rng):
        x = rng.integers(-1000, 1000, size=backend.slot_count).astype(float)
        assert np.array_equal(backend.decrypt(backend.encrypt(x)), x), "exact: not every slot round-trips"

    @pytest.mark.parametrize("depth", [0, 1])
    def test_encrypt_at_a_lower_level(self, backend, rng, depth):
        x = rng.integers(-1000, 1000, size=200).astype(float)
        ct = backend.encrypt(x, depth=depth)
        assert backend.depth_left(ct) == depth, f"exact: asked depth {depth}, got {backend.depth_left(ct)}"
        assert np.array_equal(backend.decrypt(ct, 200), x), f"exact: encrypted at depth {depth}"

    def test_products_and_sums_are_exact(self, backend, rng):
        a, b = rng.integers(-127, 128, size=(2, 128)).astype(float)
        out = backend.decrypt(backend.sum_slots(backend.multiply(backend.encrypt(a), backend.encrypt(b)), 128), 1)
        assert out[0] == a @ b, f"exact: inner product {out[0]} != {a @ b}"

    def test_fractions_are_refused(self, backend):
        with pytest.raises(DimensionError, match="integers"):
            backend.encrypt([1.0, 0.5])

    def test_values_beyond_the_plain_modulus_are_refused(self, backend):
        with pytest.raises(DimensionError, match="within"):
            backend.encrypt([4 * backend.params.result_limit])

    @pytest.mark.parametrize("preset_name", [name for scheme in schemes().values() for name in scheme[1]])
    def test_preset_computes_both_quantised_protocols_exactly(self, backend_class, preset_name):
        presets = schemes()[backend_class.scheme][1]
        if preset_name not in presets:
            pytest.skip(f"preset {preset_name} is for another scheme than {backend_class.scheme!r}")
        errors = protocol_errors(backend_class, preset_name, presets[preset_name], 0.0)
        assert not errors, f"exact: preset {preset_name}: " + "; ".join(errors)
