"""The conformance suite, capability native-inner-product: the backend's own scan kernel gives what
the generic inner product gives, on the operands the scan makes (blocks and expanded probes)."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.capabilities import NATIVE_INNER_PRODUCT
from cipherface.errors import CipherfaceError
from cipherface.testing.conformance._base import _Fixtures, assert_close


class NativeKernelTests(_Fixtures):
    capability = "native-inner-product"
    needs = (NATIVE_INNER_PRODUCT,)

    @pytest.mark.parametrize("terms", [1, 31, 32, 33, 129])
    def test_the_kernel_equals_the_generic_inner_product(self, backend, public_backend, rng, tolerance, terms):
        columns = rng.uniform(-1, 1, size=(terms, backend.slot_count)) / np.sqrt(terms)
        probe = rng.uniform(-1, 1, size=terms)
        a = [backend.encrypt(c, depth=1) for c in columns]
        b = [backend.encrypt(np.full(backend.slot_count, p), depth=1) for p in probe]
        native = public_backend.scan_inner_product(public_backend.scan_operand(a), public_backend.scan_operand(b))
        generic = public_backend.inner_product(a, b)
        assert_close(backend.decrypt(native), backend.decrypt(generic), tolerance, "native-inner-product")
        assert_close(backend.decrypt(native), probe @ columns, tolerance * 10, "native-inner-product: plaintext")

    def test_operands_of_other_lengths_are_refused(self, backend, rng):
        a = backend.scan_operand([backend.encrypt(rng.uniform(-1, 1, size=8), depth=1) for _ in range(3)])
        b = backend.scan_operand([backend.encrypt(rng.uniform(-1, 1, size=8), depth=1) for _ in range(4)])
        with pytest.raises(CipherfaceError):
            backend.scan_inner_product(a, b)
