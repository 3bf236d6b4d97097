import pytest
from cipherface_seal import SEALBackend

from cipherface.testing import BackendConformance


class TestSEALConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return SEALBackend
