"""Run the conformance suite on a backend and report per capability (``cipherface conformance``)."""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cipherface.backend import FHEBackend
from cipherface.params import CKKSParams
from cipherface.plugins import get_backend
from cipherface.testing.conformance import CAPABILITIES

# Backends and extra parameter sets under test, handed to the generated test module of the same process.
TARGETS: dict[str, type[FHEBackend]] = {}
EXTRA_SETS: dict[str, dict[str, CKKSParams]] = {}

_MODULE = """
import pytest

from cipherface.testing import BackendConformance
from cipherface.testing.runner import EXTRA_SETS, TARGETS


class TestConformance(BackendConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def backend_class(cls):
        return TARGETS[{token!r}]

    @pytest.fixture(scope="class")
    @classmethod
    def extra_parameter_sets(cls):
        return EXTRA_SETS[{token!r}]
"""


def _capability_of() -> dict[str, str]:
    return {name: cap for cap, cls in CAPABILITIES.items() for name in vars(cls) if name.startswith("test_")}


@dataclass
class CapabilityResult:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


class _Collector:
    def __init__(self) -> None:
        self.by_capability: dict[str, CapabilityResult] = defaultdict(CapabilityResult)
        self.capability = _capability_of()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return
        test = report.nodeid.rsplit("::", 1)[-1]
        result = self.by_capability[self.capability.get(re.sub(r"\[.*", "", test), "other")]
        if report.passed:
            result.passed += 1
        elif report.skipped:
            result.skipped += 1
        else:
            result.failed += 1
            lines = [ln[1:].strip() for ln in str(report.longrepr).splitlines() if ln.startswith("E ")]
            result.failures.append({"test": test, "message": lines[0] if lines else str(report.longrepr)[-300:]})


def run_conformance(
    backend: str | type[FHEBackend],
    keyword: str | None = None,
    extra_sets: dict[str, CKKSParams] | None = None,
) -> dict[str, Any]:
    """Run every conformance test on a backend (a name or a class), with parameter sets to check
    beside the presets; results per capability."""
    cls = get_backend(backend) if isinstance(backend, str) else backend
    token = secrets.token_hex(6)
    TARGETS[token] = cls
    EXTRA_SETS[token] = dict(extra_sets or {})
    collector = _Collector()
    try:
        with tempfile.TemporaryDirectory(prefix="cipherface-conformance-") as tmp:
            path = Path(tmp) / f"test_conformance_{token}.py"
            path.write_text(textwrap.dedent(_MODULE.format(token=token)))
            args = [str(path), "-p", "no:terminal", "-p", "no:cacheprovider", "--rootdir", tmp, "-c", os.devnull]
            if keyword:
                args += ["-k", keyword]
            pytest.main(args, plugins=[collector])
    finally:
        TARGETS.pop(token, None)
        EXTRA_SETS.pop(token, None)
    caps = {cap: collector.by_capability[cap] for cap in [*CAPABILITIES, "other"] if cap in collector.by_capability}
    return {
        "backend": cls.name,
        "ok": all(r.ok for r in caps.values()) and any(r.passed for r in caps.values()),
        "capabilities": {
            cap: {"passed": r.passed, "failed": r.failed, "skipped": r.skipped, "failures": r.failures}
            for cap, r in caps.items()
        },
    }
