"""The scan on a Dask cluster: the gallery's blocks partitioned over the scheduler's workers.

Every query asks the scheduler for its workers, numbers them in address order and gives worker ``i``
of ``n`` the blocks numbered ``i`` modulo ``n``: adding or losing a worker rebalances the partitions
at the next query.  A worker opens the gallery's store itself (a file path it can reach, or a shared
PostgreSQL database), keeps its partitions deserialised in memory and rereads only blocks a commit
changed.  A partition is pinned to its worker but may run elsewhere: when a worker dies during a
query, the scheduler runs its partition on another worker, which reads it from the store, and the
query still returns every block's scores.  Only the probe (from the caller straight to every worker)
and the encrypted score blocks travel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from cipherface import envelope
from cipherface.backend import open_bundle
from cipherface.errors import CipherfaceError, GalleryError
from cipherface.gallery.scan import BlockCache, merge_parts
from cipherface.gallery.store import GalleryStore

#: Times a query is sent again after losing a worker the scheduler could not replace in it.
LOST_WORKER_ATTEMPTS = 3
#: Partitions a worker keeps deserialised (its own, and one it ran for a lost worker meanwhile).
RESIDENT_PARTS = 2
_resident: OrderedDict[tuple[str, tuple[int, int]], BlockCache] = OrderedDict()
_resident_lock = threading.Lock()


def scan_part(
    source: str, part: tuple[int, int], probe: list[bytes], resident: int | None = None
) -> tuple[int, list[bytes]]:
    """On a worker: the scores of the gallery's blocks numbered ``part[0]`` modulo ``part[1]``
    (``resident`` of them kept deserialised, the rest streamed from the store)."""
    with _resident_lock:
        cache = _resident.pop((source, part), None)
        if cache is not None and cache.resident != resident:  # another memory bound: start afresh
            cache.store.close()
            cache = None
        if cache is None:
            store = GalleryStore.open(source)
            cache = BlockCache(store, open_bundle(store.public_bundle(), envelope.PUBLIC_BUNDLE), resident)
        _resident[(source, part)] = cache
        while len(_resident) > RESIDENT_PARTS:
            _, dropped = _resident.popitem(last=False)
            dropped.store.close()
        return cache.scan(probe, part)


def resident_parts() -> list[tuple[str, tuple[int, int]]]:
    """On a worker: the (gallery, partition) pairs it holds deserialised."""
    with _resident_lock:
        return sorted(_resident)


class DaskScan:
    """Scans on the Dask scheduler at ``address`` (``tcp://HOST:PORT``; ``dask://HOST:PORT`` too)."""

    def __init__(self, address: str, *, resident: int | None = None, timeout: float = 30) -> None:
        self.resident_blocks = resident  # blocks each worker keeps deserialised per partition (None: all)
        try:
            from distributed import Client
        except ImportError:
            raise GalleryError("the Dask scan needs distributed: pip install 'cipherface[dask]'") from None
        self.address = "tcp://" + address.split("://", 1)[1] if address.startswith("dask://") else address
        try:
            self.client = Client(self.address, timeout=timeout, set_as_default=False)
        except OSError as exc:
            raise GalleryError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def scan(self, source: str, probe: Sequence[bytes]) -> tuple[int, list[bytes]]:
        """Every partition scanned on its worker; a query that lost a worker in a way the scheduler
        cannot repair (the probe's only copy went with it) is sent again to the workers left."""
        from concurrent.futures import CancelledError

        from distributed.scheduler import KilledWorker

        for attempt in range(1, LOST_WORKER_ATTEMPTS + 1):
            try:
                return merge_parts(self._scan_once(source, list(probe)))
            except (CancelledError, KilledWorker, OSError) as exc:
                if attempt == LOST_WORKER_ATTEMPTS:
                    raise GalleryError(
                        f"the Dask scan lost workers {attempt} times: {type(exc).__name__}: {exc}"
                    ) from None
            except CipherfaceError:
                raise
            except Exception as exc:  # a task's own error
                raise GalleryError(f"the Dask scan failed: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    def _scan_once(self, source: str, probe: list[bytes]) -> list[tuple[int, list[bytes]]]:
        workers = self.workers()
        if not workers:
            raise GalleryError(f"the Dask scheduler at {self.address} has no workers")
        # the probe goes from here to every worker (not through the scheduler), so that a partition
        # rerun on another worker finds it there
        [shared] = self.client.scatter([probe], broadcast=True, hash=False)
        n, resident = len(workers), self.resident_blocks
        futures = [
            self.client.submit(
                scan_part, source, (i, n), shared, resident, workers=[w], allow_other_workers=True, pure=False
            )
            for i, w in enumerate(workers)
        ]
        try:
            return self.client.gather(futures)
        finally:
            self.client.cancel([*futures, shared])  # the workers drop the probe and any part still running

    def resident(self) -> dict[str, list[tuple[str, tuple[int, int]]]]:
        """Worker address -> the (gallery, partition) pairs it holds in memory."""
        held = self.client.run(resident_parts)
        return {w: [(g, tuple(p)) for g, p in parts] for w, parts in held.items()}

    def close(self) -> None:
        self.client.close()
