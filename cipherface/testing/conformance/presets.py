"""The conformance suite, capability presets: every preset meets its security level and CKKS rules."""

from __future__ import annotations

import pytest

from cipherface.params import PRESETS
from cipherface.testing.conformance._base import _Fixtures


class PresetTests(_Fixtures):
    capability = "presets"

    def test_extra_parameter_sets_are_accepted(self, extra_parameter_sets):
        if not extra_parameter_sets:
            pytest.skip("no extra parameter sets given (cipherface conformance --params)")
        refused = {name: p.problems() for name, p in extra_parameter_sets.items() if p.problems()}
        assert not refused, f"presets: refused parameter set(s): {refused}"

    @pytest.mark.parametrize("name", list(PRESETS))
    def test_preset_meets_its_security_level(self, backend_class, name):
        p = PRESETS[name]
        assert p.problems() == [], f"presets: {name} is refused: {p.problems()}"
        b = backend_class.generate(name, rotation_steps=[1])
        assert (b.slot_count, b.security_level) == (p.slot_count, p.security_level)
        assert b.depth_left(b.encrypt([1.0])) == p.depth, f"presets: {name} depth"
