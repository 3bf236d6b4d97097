"""The conformance suite, capability precision: encrypt/decrypt, and every preset through both
protocols and the gallery kernel."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import APPROXIMATE
from cipherface.params import schemes
from cipherface.testing.conformance._base import (
    DIMS,
    _Fixtures,
    assert_close,
    protocol_errors,
)


class PrecisionTests(_Fixtures):
    capability = "precision"
    needs = (APPROXIMATE,)

    @pytest.mark.parametrize("dim", DIMS)
    def test_encrypt_decrypt_round_trip(self, backend, rng, tolerance, dim):
        if dim > backend.slot_count:
            pytest.skip(f"d={dim} exceeds the slot count")
        x = rng.uniform(-1, 1, size=dim)
        assert_close(backend.decrypt(backend.encrypt(x), dim), x, tolerance, f"precision: d={dim}")

    def test_round_trip_at_full_slot_count(self, backend, rng, tolerance):
        x = rng.uniform(-1, 1, size=backend.slot_count)
        assert_close(backend.decrypt(backend.encrypt(x)), x, tolerance, "precision: all slots")

    @pytest.mark.parametrize("depth", [0, 1])
    def test_encrypt_at_a_lower_level(self, backend, rng, tolerance, depth):
        x = rng.uniform(-1, 1, size=200)
        ct = backend.encrypt(x, depth=depth)
        assert backend.depth_left(ct) == depth, f"precision: asked depth {depth}, got {backend.depth_left(ct)}"
        assert_close(backend.decrypt(ct, 200), x, tolerance, f"precision: encrypted at depth {depth}")

    def test_unused_slots_decrypt_to_zero(self, backend, tolerance):
        out = backend.decrypt(backend.encrypt([3.0, -2.0]))
        assert_close(out[2:], np.zeros(backend.slot_count - 2), tolerance, "precision: padding slots")

    @pytest.mark.parametrize("preset_name", [n for _, presets in schemes().values() for n in presets])
    def test_preset_computes_both_protocols_within_tolerance(self, backend_class, preset_name, protocol_tolerance):
        presets = schemes()[backend_class.scheme][1]
        if preset_name not in presets:
            pytest.skip(f"preset {preset_name} is for another scheme than {backend_class.scheme!r}")
        errors = protocol_errors(backend_class, preset_name, presets[preset_name], protocol_tolerance)
        assert not errors, f"precision: preset {preset_name}: " + "; ".join(errors)

    def test_extra_parameter_sets_compute_both_protocols_within_tolerance(
        self, backend_class, extra_parameter_sets, protocol_tolerance
    ):
        if not extra_parameter_sets:
            pytest.skip("no extra parameter sets given (cipherface conformance --params)")
        errors = [
            f"parameter set {name} {list(p.coeff_mod_bit_sizes)}: {e}"
            for name, p in extra_parameter_sets.items()
            for e in protocol_errors(backend_class, name, p, protocol_tolerance)
        ]
        assert not errors, "precision: " + "; ".join(errors)
