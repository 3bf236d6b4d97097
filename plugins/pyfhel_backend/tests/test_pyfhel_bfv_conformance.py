import pytest
from cipherface_pyfhel import PyfhelBFVBackend

from cipherface.testing import BackendConformance


class TestPyfhelBFVConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return PyfhelBFVBackend
