"""The conformance suite, capability keys: generation, bundles, the public bundle cannot decrypt."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface import envelope
from cipherface.capabilities import DISTANCE_PRESERVING
from cipherface.errors import SecretKeyRequiredError
from cipherface.params import schemes
from cipherface.testing.conformance._base import (
    _Fixtures,
    _secret_only_parts,
    assert_close,
)


class KeyTests(_Fixtures):
    capability = "keys"

    def test_generated_keys_report_slots_and_security(self, backend, preset):
        p = schemes()[backend.scheme][1][preset]
        assert backend.slot_count == p.slot_count, f"keys: slot count {backend.slot_count} != {p.slot_count}"
        assert backend.security_level == p.security_level
        assert backend.has_secret_key, "keys: freshly generated keys must hold the secret key"

    def test_secret_bundle_round_trip_decrypts(self, backend, rng, tolerance, plain):
        x = plain(rng.normal(size=64))
        restored = type(backend).load_bundle(backend.export_secret_bundle())
        assert restored.key_id == backend.key_id
        assert_close(restored.decrypt(backend.encrypt(x), 64), x, tolerance, "keys: secret bundle round trip")

    def test_public_bundle_encrypts_for_the_key_owner(self, backend, public_backend, rng, tolerance, plain):
        x = plain(rng.normal(size=64))
        assert_close(
            backend.decrypt(public_backend.encrypt(x), 64), x, tolerance, "keys: ciphertext made from the public bundle"
        )

    def test_public_bundle_refuses_to_decrypt(self, backend, public_backend):
        assert not public_backend.has_secret_key, "keys: backend loaded from the public bundle claims a secret key"
        with pytest.raises(SecretKeyRequiredError):
            public_backend.decrypt(backend.encrypt([1.0, 2.0]))

    def test_public_bundle_cannot_decrypt_even_bypassing_checks(self, backend, public_backend, plain):
        if DISTANCE_PRESERVING in backend.capabilities:
            pytest.skip(
                f"backend {backend.name!r} declares capability {DISTANCE_PRESERVING}: its slots carry vectors the "
                "matcher reads by design (the secret is the transform of each embedding, encrypt_vector)"
            )
        x = plain(np.linspace(-1, 1, 32))
        try:
            leaked = np.asarray(public_backend._decrypt(backend.encrypt(x)), dtype=float)[:32]
        except Exception:
            return  # no secret key to decrypt with: what we want
        assert not np.allclose(leaked, x, atol=1e-3), (
            "keys: a backend loaded from the public bundle decrypted a ciphertext: "
            "the public bundle carries the secret key"
        )

    def test_public_bundle_contains_no_secret_key_bytes(self, backend):
        public_blob = backend.export_public_bundle()
        assert envelope.decode(public_blob).kind == envelope.PUBLIC_BUNDLE
        leaks = _secret_only_parts(backend.export_secret_bundle(), public_blob)
        assert leaks is not None, "keys: the public bundle holds everything the secret bundle holds"
        for name, data in leaks:
            window = data[len(data) // 2 : len(data) // 2 + 64]
            assert window not in public_blob, f"keys: secret part {name!r} appears inside the public bundle"

    def test_public_bundle_cannot_export_secret_bundle(self, public_backend):
        with pytest.raises(SecretKeyRequiredError):
            public_backend.export_secret_bundle()

    def test_each_generation_has_its_own_key_id(self, backend, other_key_backend):
        assert backend.key_id != other_key_backend.key_id
