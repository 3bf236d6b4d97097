"""The conformance suite, capability dimensions: vectors the backend must refuse."""

from __future__ import annotations

import numpy as np
import pytest

from cipherface.errors import DimensionError
from cipherface.testing.conformance._base import _Fixtures


class DimensionTests(_Fixtures):
    capability = "dimensions"

    def test_vector_longer_than_slot_count_is_refused(self, backend):
        with pytest.raises(DimensionError, match="slots"):
            backend.encrypt(np.ones(backend.slot_count + 1))

    def test_nan_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt([1.0, float("nan")])

    def test_matrix_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt(np.ones((2, 2)))

    def test_empty_vector_is_refused(self, backend):
        with pytest.raises(DimensionError):
            backend.encrypt([])
