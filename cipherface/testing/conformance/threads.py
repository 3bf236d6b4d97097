"""The conformance suite, capability threads: concurrent use when the backend declares it thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cipherface.plugins import get_protocol
from cipherface.testing.conformance._base import (
    _Fixtures,
    assert_close,
)


class ThreadSafetyTests(_Fixtures):
    capability = "threads"

    def test_concurrent_distances_equal_sequential_ones(self, backend, rng, supports_threads, tolerance):
        if not supports_threads:
            pytest.skip("backend declares thread_safe = False")
        p = get_protocol("euclidean")
        pairs = [(backend.encrypt(rng.normal(size=128)), backend.encrypt(rng.normal(size=128))) for _ in range(8)]

        def run(pair):
            return backend.decrypt(p.encrypted(backend, pair[0], pair[1], 128), 1)[0]

        sequential = [run(pair) for pair in pairs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(run, pairs * 2))
        assert_close(concurrent, sequential * 2, tolerance, "threads: concurrent results")
