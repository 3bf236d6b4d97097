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
capability flag ``supports_threads`` (defaults to ``backend_class.thread_safe``).
``cipherface conformance NAME`` runs the same suite on any installed backend.
"""

from cipherface.testing.conformance import (
    CAPABILITIES,
    BackendConformance,
    DimensionTests,
    EnvelopeTests,
    KeyTests,
    PrecisionTests,
    PresetTests,
    PrimitiveTests,
    ProtocolTests,
    ThreadSafetyTests,
)

__all__ = [
    "CAPABILITIES",
    "BackendConformance",
    "DimensionTests",
    "EnvelopeTests",
    "KeyTests",
    "PrecisionTests",
    "PresetTests",
    "PrimitiveTests",
    "ProtocolTests",
    "ThreadSafetyTests",
]
