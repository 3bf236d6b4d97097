import pytest
from cipherface_paillier import PaillierBackend

from cipherface.testing import BackendConformance


class TestPaillierConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return PaillierBackend
