import pytest
from cipherface_tenseal import TenSEALBackend

from cipherface.testing import BackendConformance


class TestTenSEALConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return TenSEALBackend
