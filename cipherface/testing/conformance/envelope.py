"""The conformance suite, capability envelope: what loading must refuse."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from cipherface import envelope
from cipherface.capabilities import LEVELS
from cipherface.errors import (
    BackendMismatchError,
    CipherfaceError,
    EnvelopeError,
    KeyMismatchError,
    VersionError,
    WrongKindError,
)
from cipherface.testing.conformance._base import (
    _Fixtures,
    assert_close,
    needs,
)


class EnvelopeTests(_Fixtures):
    capability = "envelope"

    @pytest.fixture(scope="class")
    @classmethod
    def blob(cls, backend, plain):
        return backend.dump_ciphertext(backend.encrypt(plain(np.linspace(-1, 1, 16))), meta={"dim": 16})

    def test_ciphertext_round_trip(self, backend, blob, tolerance, plain):
        ct, meta = backend.load_ciphertext(blob)
        assert meta == {"dim": 16}
        assert_close(backend.decrypt(ct, 16), plain(np.linspace(-1, 1, 16)), tolerance, "envelope: round trip")

    def test_matcher_can_load_and_reserialise(self, public_backend, blob):
        ct, _ = public_backend.load_ciphertext(blob)
        assert envelope.decode(public_backend.dump_ciphertext(ct)).kind == envelope.CIPHERTEXT

    def test_wrong_key_is_refused(self, other_key_backend, blob):
        with pytest.raises(KeyMismatchError, match="key"):
            other_key_backend.load_ciphertext(blob)

    def test_wrong_backend_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.backend = "some-other-backend"
        with pytest.raises(BackendMismatchError, match="some-other-backend"):
            backend.load_ciphertext(env.to_bytes())

    def test_bundle_of_another_backend_is_refused(self, backend):
        env = envelope.decode(backend.export_public_bundle())
        env.backend = "some-other-backend"
        with pytest.raises(BackendMismatchError, match=backend.name):
            type(backend).load_bundle(env.to_bytes())

    def test_wrong_kind_is_refused(self, backend):
        with pytest.raises(WrongKindError, match="public-bundle"):
            backend.load_ciphertext(backend.export_public_bundle())

    def test_future_version_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.version = envelope.FORMAT_VERSION + 1
        with pytest.raises(VersionError, match="upgrade"):
            backend.load_ciphertext(env.to_bytes())

    def test_truncated_ciphertext_is_refused(self, backend, blob):
        for cut in (0, 5, len(envelope.MAGIC) + 3, 60, len(blob) // 2, len(blob) - 1):
            with pytest.raises(EnvelopeError):
                backend.load_ciphertext(blob[:cut])

    def test_truncated_bundle_is_refused(self, backend):
        bundle = backend.export_public_bundle()
        with pytest.raises(EnvelopeError, match="truncated"):
            type(backend).load_bundle(bundle[: len(bundle) - 100])

    def test_random_bytes_are_refused(self, backend):
        with pytest.raises(EnvelopeError, match="not a cipherface blob"):
            backend.load_ciphertext(secrets.token_bytes(4096))

    def test_flipped_byte_is_refused(self, backend, blob):
        corrupted = bytearray(blob)
        corrupted[-10] ^= 0xFF
        with pytest.raises(EnvelopeError, match="corrupted"):
            backend.load_ciphertext(bytes(corrupted))

    def test_well_formed_envelope_with_garbage_payload_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.parts = {"ct": secrets.token_bytes(len(env.parts["ct"]))}
        with pytest.raises(EnvelopeError, match=backend.name):
            backend.load_ciphertext(env.to_bytes())

    @pytest.fixture(scope="class")
    @classmethod
    def stored_blobs(cls, backend, public_backend, plain):
        """Ciphertexts as a gallery stores them: the key owner's (seeded where the backend can) and
        the matcher's, at every level, and at the last prime where the backend has it."""
        values = plain(np.linspace(-0.5, 0.5, 16))
        depths = range(min(backend.params.depth, 1) + 1)
        blobs = [owner.encrypt_blob(values, depth=d) for owner in (backend, public_backend) for d in depths]
        if backend.last_prime_scales is not None:
            blobs.append(backend.encrypt_last_prime_blob(values))
        return blobs

    def test_the_matchers_check_accepts_genuine_ciphertexts(self, public_backend, stored_blobs):
        for blob in stored_blobs:
            assert public_backend.check_ciphertext(blob) == public_backend.load_ciphertext(blob)[1], (
                "envelope: check_ciphertext and load_ciphertext disagree on a genuine ciphertext's metadata"
            )

    def test_the_matchers_check_lets_nothing_through_that_loading_refuses(self, public_backend, stored_blobs):
        """``check_ciphertext`` (what the matcher runs on every block it stores; a backend may make
        it faster than loading) on ciphertexts whose library bytes were edited, the envelope's
        checksum made to match: whatever it accepts, ``load_ciphertext`` must read."""
        rng = np.random.default_rng(5)
        refused = 0
        for blob in stored_blobs:
            for _ in range(150):
                env = envelope.decode(blob)
                data = bytearray(env.parts["ct"])
                for _ in range(int(rng.integers(1, 4))):  # the metadata and the tail most often
                    where = (rng.integers(0, 160), rng.integers(0, len(data)), len(data) - rng.integers(1, 100))
                    data[int(where[rng.integers(0, 3)]) % len(data)] = int(rng.integers(0, 256))
                env.parts = {"ct": bytes(data[: len(data) - int(rng.integers(0, 2)) * int(rng.integers(1, 9))])}
                edited = env.to_bytes()
                try:
                    public_backend.check_ciphertext(edited)
                except EnvelopeError:
                    refused += 1
                    continue
                public_backend.load_ciphertext(edited)  # must not raise
        assert refused > 0, "envelope: check_ciphertext refused none of the edited ciphertexts"

    def test_a_ciphertext_dumped_for_decryption_decrypts_within_the_error_asked(self, backend, public_backend, plain):
        """``dump_for_decryption`` (the scan's score blocks) may round, never by more than asked:
        on a fresh ciphertext at the last level, and on a product of last-prime operands (scale
        2^54 on TenSEAL) where rounding saves the most."""
        rng = np.random.default_rng(8)
        # a few values: rounding moves every slot, and every slot is decrypted and compared (a
        # backend that encrypts slot by slot, Paillier, pays 12 s to decrypt 1,024 of them)
        values = plain(rng.uniform(-1, 1, min(backend.slot_count, 64)))
        cases = {"last level": public_backend.encrypt(values, depth=0)}
        if backend.last_prime_scales is not None:
            a, _ = public_backend.load_ciphertext(backend.encrypt_last_prime_blob(values))
            ones = public_backend.to_last_prime(public_backend.encrypt(plain(np.ones(backend.slot_count)), depth=1))
            cases["last-prime product"] = public_backend.inner_product([a], [ones])
        for what, ct in cases.items():
            exact = public_backend.dump_ciphertext(ct, kind=envelope.RESULT)
            before = backend.decrypt(backend.load_ciphertext(exact, kind=envelope.RESULT)[0])
            for error in (1e-6, 1e-4):
                small = public_backend.dump_for_decryption(ct, error=error)
                assert len(small) <= len(exact), f"envelope: dumped for decryption, a {what} grew"
                after = backend.decrypt(backend.load_ciphertext(small, kind=envelope.RESULT)[0])
                moved = np.max(np.abs(after - before))
                assert moved <= error, f"envelope: a {what} dumped for decryption moved by {moved:.3g} > {error:g}"
        with pytest.raises(CipherfaceError, match="rounding error"):
            public_backend.dump_for_decryption(cases["last level"], error=0.0)

    def test_the_recorded_level_is_checked(self, backend, blob):
        ct, _ = backend.load_ciphertext(blob)
        assert backend.depth_left(ct) == envelope.decode(blob).meta["level"] == backend.params.depth
        for wrong in (backend.params.depth + 1, -1, "2", None):
            env = envelope.decode(blob)
            env.meta = {**env.meta, "level": wrong}
            with pytest.raises(EnvelopeError, match="level"):
                backend.load_ciphertext(env.to_bytes())
        dropped = backend.drop_level(ct)
        ct2, _ = backend.load_ciphertext(backend.dump_ciphertext(dropped))
        assert backend.depth_left(ct2) == backend.params.depth - 1

    @needs(LEVELS)
    def test_a_recorded_level_the_ciphertext_does_not_have_is_refused(self, backend, blob):
        env = envelope.decode(blob)
        env.meta = {**env.meta, "level": backend.params.depth - 1}  # a valid level, not this ciphertext's
        with pytest.raises(EnvelopeError, match="level"):
            backend.load_ciphertext(env.to_bytes())

    def test_another_scheme_is_refused(self, backend, blob):
        for made in (blob, backend.export_public_bundle()):
            env = envelope.decode(made)
            env.scheme = "not-" + backend.scheme
            with pytest.raises(KeyMismatchError, match=f"is for scheme 'not-{backend.scheme}'"):
                if env.kind == envelope.CIPHERTEXT:
                    backend.load_ciphertext(env.to_bytes())
                else:
                    type(backend).load_bundle(env.to_bytes())

    def test_other_parameters_are_refused(self, backend, blob):
        env = envelope.decode(blob)
        setting = type(backend.params).SETTING[0]  # the scheme's own setting (CKKS scale, BFV plain modulus)
        env.params = {**env.params, setting: env.params[setting] - 1}
        with pytest.raises(KeyMismatchError, match="parameters"):
            backend.load_ciphertext(env.to_bytes())
