"""The conformance suite, capability primitives: homomorphic operations, each skipped unless the
backend declares the capability it uses."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import CT_MULTIPLY, LEVELS, ROTATION, SEEDED_ENCRYPTION
from cipherface.errors import CipherfaceError
from cipherface.testing.conformance._base import (
    _Fixtures,
    assert_close,
    needs,
)


class PrimitiveTests(_Fixtures):
    capability = "primitives"

    @pytest.fixture
    def xy(self, rng, plain):
        return plain(rng.uniform(-1, 1, size=256)), plain(rng.uniform(-1, 1, size=256))

    def _check(self, backend, ct, expected, tol, what):
        assert_close(backend.decrypt(ct, len(expected)), expected, tol, f"primitives: {what}")

    def test_add(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.add(backend.encrypt(x), backend.encrypt(y)), x + y, tolerance, "add")

    def test_sub(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.sub(backend.encrypt(x), backend.encrypt(y)), x - y, tolerance, "sub")

    def test_negate(self, backend, xy, tolerance):
        x, _ = xy
        self._check(backend, backend.negate(backend.encrypt(x)), -x, tolerance, "negate")

    def test_add_plain_vector(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.add_plain(backend.encrypt(x), y), x + y, tolerance, "add_plain")

    def test_add_plain_scalar(self, backend, xy, tolerance, plain):
        x, c = xy[0], float(plain(0.75))
        self._check(backend, backend.add_plain(backend.encrypt(x), c), x + c, tolerance, "add scalar")

    @needs(CT_MULTIPLY)
    def test_multiply_ciphertexts(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.multiply(backend.encrypt(x), backend.encrypt(y)), x * y, tolerance, "ct*ct")

    @needs(CT_MULTIPLY, LEVELS)
    def test_multiply_consumes_one_level(self, backend, xy):
        x, y = xy
        a = backend.encrypt(x)
        assert backend.depth_left(backend.multiply(a, backend.encrypt(y))) == backend.depth_left(a) - 1

    def test_multiply_plain(self, backend, xy, tolerance):
        x, y = xy
        self._check(backend, backend.multiply_plain(backend.encrypt(x), y), x * y, tolerance, "ct*pt")

    def test_multiply_scalar(self, backend, xy, tolerance, plain):
        x, c = xy[0], float(plain(-2.5))
        self._check(backend, backend.multiply_scalar(backend.encrypt(x), c), x * c, tolerance, "ct*scalar")

    @needs(CT_MULTIPLY)
    def test_lazy_multiply_accumulate(self, backend, rng, tolerance, plain):
        xs, ys = plain(rng.uniform(-1, 1, size=(4, 64))), plain(rng.uniform(-1, 1, size=(4, 64)))
        acc = None
        for x, y in zip(xs, ys):
            prod = backend.multiply(backend.encrypt(x), backend.encrypt(y), relinearize=False, rescale=False)
            acc = prod if acc is None else backend.add(acc, prod)
        out = backend.rescale(backend.relinearize(acc))
        self._check(backend, out, (xs * ys).sum(axis=0), tolerance, "deferred relinearise/rescale")

    @needs(ROTATION)
    @pytest.mark.parametrize("step", [1, 4, 3, 37, -1])
    def test_rotate(self, backend, xy, tolerance, step):
        full = np.zeros(backend.slot_count)
        full[:256] = xy[0]
        self._check(
            backend, backend.rotate(backend.encrypt(full), step), np.roll(full, -step), tolerance, f"rotate by {step}"
        )

    @needs(ROTATION)
    @pytest.mark.parametrize("length", [1, 100, 128, 4096])
    def test_sum_slots(self, backend, rng, tolerance, length, plain):
        length = min(length, backend.slot_count)
        x = plain(rng.uniform(-1, 1, size=length))
        out = backend.decrypt(backend.sum_slots(backend.encrypt(x), length), 1)[0]
        assert_close(out, x.sum(), tolerance, f"primitives: sum of {length} slots")

    @needs(LEVELS)
    def test_drop_level_keeps_value(self, backend, xy, tolerance):
        x, _ = xy
        a = backend.encrypt(x)
        low = backend.drop_level(a, 1)
        assert backend.depth_left(low) == backend.depth_left(a) - 1
        self._check(backend, low, x, tolerance, "drop_level")

    @needs(LEVELS)
    def test_dropped_ciphertext_serialises_smaller(self, backend, xy):
        a = backend.encrypt(xy[0])
        low = backend.drop_to_depth(a, 0)
        assert len(backend.dump_ciphertext(low)) < len(backend.dump_ciphertext(a)), (
            "primitives: a ciphertext at a lower level should serialise smaller"
        )

    @needs(LEVELS)
    def test_level_survives_serialisation(self, backend, xy, tolerance):
        x, y = xy
        low = backend.drop_level(backend.encrypt(x), 1)
        loaded, _ = backend.load_ciphertext(backend.dump_ciphertext(low))
        assert backend.depth_left(loaded) == backend.depth_left(low), "primitives: level lost in serialisation"
        self._check(backend, backend.add(loaded, backend.encrypt(y)), x + y, tolerance, "add after load")

    @needs(CT_MULTIPLY)
    def test_inner_product(self, backend, rng, tolerance, plain):
        a, b = plain(rng.uniform(-1, 1, size=(5, 300))), plain(rng.uniform(-1, 1, size=(5, 300)))
        cts_a = [backend.encrypt(v, depth=1) for v in a]
        cts_b = [backend.encrypt(v, depth=1) for v in b]
        out = backend.inner_product(cts_a, cts_b)
        self._check(backend, out, (a * b).sum(axis=0), tolerance, "inner_product")
        assert backend.depth_left(out) == backend.depth_left(cts_a[0]) - 1

    def test_encrypt_blob_round_trips_through_the_public_key(self, backend, public_backend, xy, tolerance):
        x, y = xy
        blob = backend.encrypt_blob(x, depth=1)
        ct, _ = public_backend.load_ciphertext(blob)
        assert public_backend.depth_left(ct) == 1
        # the second operand as a probe: encrypted, or in the clear on a probe-in-clear backend
        other = public_backend.load_ciphertext(backend.encrypt_blob(y, depth=1, probe=True))[0]
        self._check(backend, public_backend.multiply(ct, other), x * y, tolerance, "encrypt_blob")

    @needs(SEEDED_ENCRYPTION)
    def test_seeded_encryption_halves_the_bytes(self, backend, public_backend, xy, tolerance):
        x, _ = xy
        seeded = backend.encrypt_blob(x, depth=1)
        full = backend.dump_ciphertext(backend.encrypt(x, depth=1))
        assert len(seeded) < 0.6 * len(full), f"primitives: seeded {len(seeded)} B vs {len(full)} B"
        ct, _ = public_backend.load_ciphertext(seeded)  # the matcher expands the seed
        self._check(backend, ct, x, tolerance, "seeded encryption")
        # the public half cannot encrypt with the secret key: it falls back to a full ciphertext
        assert len(public_backend.encrypt_blob(x, depth=1)) > 0.9 * len(full)

    @needs(LEVELS)
    def test_operands_at_different_levels_are_aligned(self, backend, xy, tolerance):
        x, y = xy
        self._check(
            backend,
            backend.add(backend.drop_level(backend.encrypt(x), 1), backend.encrypt(y)),
            x + y,
            tolerance,
            "add across levels",
        )

    @needs(CT_MULTIPLY, LEVELS)
    def test_multiplying_past_the_depth_is_a_clear_error(self, backend, xy):
        a = backend.drop_to_depth(backend.encrypt(xy[0]), 0)
        with pytest.raises(CipherfaceError, match="depth"):
            backend.multiply(a, a)
