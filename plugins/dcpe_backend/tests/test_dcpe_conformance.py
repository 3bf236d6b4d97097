import pytest
from cipherface_dcpe import DcpeBackend

from cipherface.testing import BackendConformance


class TestDcpeConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return DcpeBackend
