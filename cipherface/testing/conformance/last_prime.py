"""The conformance suite, capability last-prime: values encrypted at the first prime alone, and
ciphertexts brought there by the matcher, multiply and sum without a rescale to what numpy gives,
up to the layout's result limit; operands of other levels or scales are refused, never combined."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface import envelope
from cipherface.capabilities import LAST_PRIME
from cipherface.errors import CipherfaceError
from cipherface.testing.conformance._base import _Fixtures, assert_close


class LastPrimeTests(_Fixtures):
    capability = "last-prime"
    needs = (LAST_PRIME,)

    def test_the_default_preset_has_last_prime_scales(self, backend):
        assert backend.last_prime_scales is not None, "last-prime: the default preset has no last-prime scales"
        assert backend.params.last_prime_result_limit >= 4, "last-prime: distances of unit embeddings do not fit"

    def test_encrypted_at_the_last_prime_decrypts(self, backend, public_backend, rng, tolerance):
        values = rng.uniform(-1, 1, size=backend.slot_count)
        blob = backend.encrypt_last_prime_blob(values, kind=envelope.GALLERY_BLOCK)
        ct = public_backend.load_ciphertext(blob, kind=envelope.GALLERY_BLOCK)[0]
        assert public_backend.depth_left(ct) == 0, "last-prime: the ciphertext has levels left"
        # a fresh encryption's noise (~2^8 per slot at N=8192) at the stored scale (2^26): ~1e-5 at most
        assert_close(backend.decrypt(ct), values, tolerance * 10, "last-prime: encryption")

    def test_brought_to_the_last_prime_keeps_its_values(self, backend, public_backend, rng, tolerance):
        values = rng.uniform(-1, 1, size=backend.slot_count)
        moved = public_backend.to_last_prime(backend.encrypt(values, depth=1))
        assert public_backend.depth_left(moved) == 0, "last-prime: to_last_prime left a level"
        # the rescale that brings it adds ~2^11 per slot at N=8192: 8e-6 at 2^28, ~4e-5 at most
        assert_close(backend.decrypt(moved), values, tolerance * 10, "last-prime: to_last_prime")

    @pytest.mark.parametrize("count", [1, 128, 513])
    def test_inner_product_at_the_last_prime_up_to_the_limit(self, backend, public_backend, rng, tolerance, count):
        # the scan's kernel: Σ column_k · probe_k per slot, one slot as large as the limit allows
        limit = backend.params.last_prime_result_limit
        columns = rng.uniform(-1, 1, size=(count, backend.slot_count)) / np.sqrt(count)
        probe = rng.uniform(-1, 1, size=count) / np.sqrt(count)
        columns[:, 0] = probe / np.linalg.norm(probe) * np.sqrt(limit) * (1 - 1e-6)
        probe = probe / np.linalg.norm(probe) * np.sqrt(limit)
        blocks = [
            public_backend.load_ciphertext(backend.encrypt_last_prime_blob(c, kind=envelope.GALLERY_BLOCK),
                                           kind=envelope.GALLERY_BLOCK)[0]
            for c in columns
        ]  # fmt: skip
        probes = [public_backend.to_last_prime(backend.encrypt(np.full(backend.slot_count, v), depth=1)) for v in probe]
        scored = public_backend.scan_inner_product(
            public_backend.scan_operand(blocks), public_backend.scan_operand(probes)
        )
        assert public_backend.depth_left(scored) == 0
        assert_close(backend.decrypt(scored), probe @ columns, tolerance * 10, "last-prime: inner product")

    def test_operands_of_different_levels_are_refused(self, backend, rng):
        values = rng.uniform(-1, 1, size=backend.slot_count)
        low = backend.load_ciphertext(backend.encrypt_last_prime_blob(values))[0]
        with pytest.raises(CipherfaceError):
            backend.inner_product([low], [backend.encrypt(values, depth=1)])
        with pytest.raises(CipherfaceError):
            backend.inner_product([low], [backend.drop_level(backend.encrypt(values, depth=1), 1)])
