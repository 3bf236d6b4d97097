"""Conformance suite for FHEBackend implementations.

A backend author subclasses :class:`BackendConformance` in their own test file
and overrides one fixture; every test then runs against their backend::

    import pytest
    from cipherface.testing import BackendConformance
    from my_package import MyBackend

    class TestMyBackend(BackendConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def backend_class(cls):
            return MyBackend

Optional fixtures to override: ``preset`` (parameter preset the keys use),
``tolerance`` (absolute/relative error allowed on decrypted values) and the
capability flag ``supports_threads`` (defaults to ``backend_class.thread_safe``). Tests of
capabilities the backend does not declare (``FHEBackend.capabilities``) are skipped, naming them.
``cipherface conformance NAME`` runs the same suite on any installed backend.
"""

from cipherface.testing import conformance
from cipherface.testing.conformance import *  # noqa: F403  (the suite's public names, listed once)

__all__ = conformance.__all__
