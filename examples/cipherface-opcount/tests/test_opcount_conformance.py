"""A third-party plugin's whole test file: the cipherface conformance suite, one fixture."""

import pytest
from cipherface_opcount import OpCountBackend

from cipherface.testing import BackendConformance


class TestOpCountConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return OpCountBackend
