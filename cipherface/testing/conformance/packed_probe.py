"""The conformance suite, capability packed-probe: values packed in one ciphertext come back, after
the matcher's expansion with the public keys only, as one ciphertext per value holding it in every
slot; a key set without the expansion's Galois keys says so instead of computing something else."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface import envelope
from cipherface.backend import expansion_steps
from cipherface.capabilities import PACKED_PROBE
from cipherface.errors import CipherfaceError
from cipherface.testing.conformance._base import _Fixtures, assert_close


class PackedProbeTests(_Fixtures):
    capability = "packed-probe"
    needs = (PACKED_PROBE,)

    @pytest.mark.parametrize("count", [1, 2, 3, 33, 128, 129])
    def test_expansion_gives_each_value_in_every_slot(self, backend, public_backend, rng, tolerance, count):
        values = rng.uniform(-1, 1, size=count)
        blob = backend.encrypt_packed_blob(values, depth=1)
        ct, meta = public_backend.load_ciphertext(blob, kind=envelope.PACKED_PROBE)
        assert meta["count"] == count, "packed-probe: the envelope does not record the count"
        expanded = public_backend.expand(ct, count)
        assert len(expanded) == count, f"packed-probe: {len(expanded)} ciphertexts expanded from {count} values"
        got = np.array([backend.decrypt(c) for c in expanded])
        assert_close(got, np.repeat(values[:, None], backend.slot_count, axis=1), tolerance * 10, "packed-probe")

    def test_expanded_values_multiply_like_encrypted_ones(self, backend, public_backend, rng, tolerance):
        # the scan's kernel on expanded ciphertexts: Σ column_k · probe_k per slot
        probe, columns = rng.uniform(-1, 1, size=16), rng.uniform(-1, 1, size=(16, backend.slot_count))
        ct = public_backend.load_ciphertext(backend.encrypt_packed_blob(probe, depth=1), kind=envelope.PACKED_PROBE)[0]
        scored = public_backend.inner_product(
            [backend.encrypt(c, depth=1) for c in columns], public_backend.expand(ct, len(probe))
        )
        assert_close(backend.decrypt(scored), probe @ columns, tolerance * 10, "packed-probe: products")

    def test_one_ciphertext_whatever_the_count(self, backend, rng):
        sizes = [len(backend.encrypt_packed_blob(rng.uniform(-1, 1, size=n), depth=1)) for n in (2, 128)]
        assert max(sizes) < 1.2 * min(sizes), f"packed-probe: {sizes} bytes for 2 and 128 values"

    def test_key_set_without_expansion_keys_refuses(self, backend_class, preset, rng):
        bare = backend_class.generate(preset, rotation_steps=[1])
        assert not bare.can_expand(128), "packed-probe: can_expand without the expansion's Galois keys"
        with pytest.raises(CipherfaceError, match="Galois key"):
            bare.encrypt_packed_blob(rng.uniform(-1, 1, size=128))

    def test_default_keys_hold_the_expansion_steps(self, backend):
        n = backend.params.poly_modulus_degree
        missing = set(expansion_steps(129, n)) - set(backend.rotation_steps)
        assert not missing, f"packed-probe: default keys lack expansion steps {sorted(missing)}"

    def test_more_values_than_a_quarter_of_the_ring_are_refused(self, backend):
        with pytest.raises(CipherfaceError):
            backend.encrypt_packed_blob(np.zeros(backend.params.poly_modulus_degree // 4 + 1))
