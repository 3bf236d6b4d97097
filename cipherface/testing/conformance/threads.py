"""The conformance suite, capability threads: concurrent use when the backend declares it thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from cipherface.capabilities import protocol_for
from cipherface.testing.conformance._base import (
    _Fixtures,
    assert_close,
    fitted,
)


class ThreadSafetyTests(_Fixtures):
    capability = "threads"

    def test_concurrent_distances_equal_sequential_ones(self, backend, rng, supports_threads, tolerance):
        if not supports_threads:
            pytest.skip("backend declares thread_safe = False")
        p, limit = protocol_for(backend, "euclidean"), backend.params.result_limit

        def encrypted(probe=False):
            x = fitted(p, rng.normal(size=128), limit)
            return backend.encrypt_probe(p.prepare_probe(x)) if probe else backend.encrypt(p.prepare(x))

        pairs = [(encrypted(), encrypted(probe=True)) for _ in range(8)]

        def run(pair):
            return backend.decrypt(p.encrypted(backend, pair[0], pair[1], len(p.prepare(np.ones(128)))), 1)[0]

        sequential = [run(pair) for pair in pairs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(run, pairs * 2))
        assert_close(concurrent, sequential * 2, tolerance, "threads: concurrent results")
