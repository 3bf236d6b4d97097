"""A Dask scheduler and workers as processes of their own on 127.0.0.1 (the tests and the scale
benchmark start one): each worker one process, one thread (the FHE bindings hold the GIL), no nanny,
so that killing one is a worker lost for good."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cipherface.errors import GalleryError
from cipherface.service.process import free_port, stop

DASK = str(Path(sys.executable).with_name("dask"))


class Cluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--dashboard-address", ":0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.workers: list[subprocess.Popen] = []

    def add_worker(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
             "--dashboard-address", ":0", "--name", f"w{len(self.workers)}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def wait_for(self, n: int, timeout: float = 90) -> list[str]:
        """The scheduler's worker addresses, once it has ``n``."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            while True:
                found = sorted(client.scheduler_info(n_workers=-1)["workers"])
                if len(found) == n:
                    return found
                if time.monotonic() > deadline:
                    raise GalleryError(f"the Dask cluster has {len(found)} workers, not {n}")
                time.sleep(0.2)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            stop(proc)


@contextmanager
def cluster(workers: int) -> Iterator[Cluster]:
    """A scheduler and ``workers`` workers until the block ends."""
    c = Cluster()
    try:
        for _ in range(workers):
            c.add_worker()
        c.wait_for(workers)
        yield c
    finally:
        c.close()
