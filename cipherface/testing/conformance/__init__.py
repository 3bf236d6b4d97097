"""The abstract test classes of the conformance suite (see ``cipherface.testing``), one module per
capability.

Each class covers one capability (its ``capability`` attribute), each test one behaviour;
failure messages start with the capability so a report says what broke. Tests of an operation
a backend does not declare (``FHEBackend.capabilities``) are skipped with a reason naming it.
"""

from cipherface.testing.conformance._base import PROTOCOL_TOLERANCE, needs, protocol_errors
from cipherface.testing.conformance.dimensions import DimensionTests
from cipherface.testing.conformance.distance_preserving import DistancePreservingTests
from cipherface.testing.conformance.envelope import EnvelopeTests
from cipherface.testing.conformance.exact import ExactTests
from cipherface.testing.conformance.keys import KeyTests
from cipherface.testing.conformance.last_prime import LastPrimeTests
from cipherface.testing.conformance.native_kernel import NativeKernelTests
from cipherface.testing.conformance.packed_probe import PackedProbeTests
from cipherface.testing.conformance.precision import PrecisionTests
from cipherface.testing.conformance.presets import PresetTests
from cipherface.testing.conformance.primitives import PrimitiveTests
from cipherface.testing.conformance.protocols import ProtocolTests
from cipherface.testing.conformance.threads import ThreadSafetyTests

_CAPABILITY_CLASSES = (
    KeyTests,
    PrecisionTests,
    ExactTests,
    DimensionTests,
    PrimitiveTests,
    ProtocolTests,
    PackedProbeTests,
    LastPrimeTests,
    NativeKernelTests,
    DistancePreservingTests,
    EnvelopeTests,
    PresetTests,
    ThreadSafetyTests,
)


class BackendConformance(*_CAPABILITY_CLASSES):
    """Every capability; subclass this and override the ``backend_class`` fixture."""


CAPABILITIES = {cls.capability: cls for cls in _CAPABILITY_CLASSES}

__all__ = [
    "CAPABILITIES",
    "PROTOCOL_TOLERANCE",
    "BackendConformance",
    "DimensionTests",
    "DistancePreservingTests",
    "EnvelopeTests",
    "ExactTests",
    "KeyTests",
    "LastPrimeTests",
    "NativeKernelTests",
    "PackedProbeTests",
    "PrecisionTests",
    "PresetTests",
    "PrimitiveTests",
    "ProtocolTests",
    "ThreadSafetyTests",
    "needs",
    "protocol_errors",
]
