import pytest
from cipherface_tenseal import TenSEALBFVBackend

from cipherface.testing import BackendConformance


class TestTenSEALBFVConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return TenSEALBFVBackend
