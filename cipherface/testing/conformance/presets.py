"""The conformance suite, capability presets: every preset of the backend's scheme meets its security
level and its scheme's rules."""

from __future__ import annotations

import pytest

from cipherface.params import schemes
from cipherface.testing.conformance._base import _Fixtures


class PresetTests(_Fixtures):
    capability = "presets"

    def test_extra_parameter_sets_are_accepted(self, extra_parameter_sets):
        if not extra_parameter_sets:
            pytest.skip("no extra parameter sets given (cipherface conformance --params)")
        refused = {name: p.problems() for name, p in extra_parameter_sets.items() if p.problems()}
        assert not refused, f"presets: refused parameter set(s): {refused}"

    @pytest.mark.parametrize("name", [name for _, presets in schemes().values() for name in presets])
    def test_preset_meets_its_security_level(self, backend_class, name):
        presets = schemes()[backend_class.scheme][1]
        if name not in presets:
            pytest.skip(f"preset {name} is for another scheme than {backend_class.scheme!r}")
        p = presets[name]
        assert p.problems() == [], f"presets: {name} is refused: {p.problems()}"
        b = backend_class.generate(name, rotation_steps=[1])
        assert (b.slot_count, b.security_level) == (p.slot_count, p.security_level)
        assert b.depth_left(b.encrypt([1.0])) == p.depth, f"presets: {name} depth"
