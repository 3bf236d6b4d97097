"""Malformed blobs of every kind, on every backend: refused with a CipherfaceError or accepted with
the original decision; never another exception, a different decision, a crash or a hang.
(bench/fuzz.py runs 10,000+ per kind; the issue asks for at least 1,000 per kind per backend per run.)"""

import pytest

from cipherface.testing.fuzz import KINDS, failures, fuzz

PER_KIND = 1000


@pytest.mark.parametrize("kind", KINDS)
def test_malformed_blobs_are_refused_or_change_nothing(backend_name, kind):
    outcomes = fuzz(backend_name, kind, PER_KIND, seed=hash(kind) % 1000)
    assert sum(outcomes.values()) == PER_KIND
    assert not failures(outcomes), outcomes
    assert outcomes.get("refused", 0) >= PER_KIND // 2, outcomes
