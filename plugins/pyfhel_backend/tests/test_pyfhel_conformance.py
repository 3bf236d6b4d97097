import pytest
from cipherface_pyfhel import PyfhelBackend

from cipherface.testing import BackendConformance


class TestPyfhelConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return PyfhelBackend
