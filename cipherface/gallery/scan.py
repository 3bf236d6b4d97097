"""Scanning on every core: one long-lived process per share of the blocks.

Neither TenSEAL's nor Pyfhel's bindings release the GIL (measured: two threads
scan no faster than one), so the scan runs in processes.  Each worker opens the
gallery file itself, keeps its share of the blocks (block number modulo the
number of workers) deserialised in memory, and reloads it when a later commit
changed the gallery.  Only probe and result blobs cross the process boundary.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Sequence
from pathlib import Path

from cipherface.errors import GalleryError, StaleScanError


def _serve(conn, path: str, index: int, workers: int) -> None:
    from cipherface.gallery.encrypted_gallery import EncryptedGallery, scan_blocks

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool

    gallery = EncryptedGallery.open(path)
    while True:
        probe = conn.recv()
        if probe is None:
            break
        try:
            generation, blocks = gallery.load((index, workers))
            conn.send(("ok", (generation, scan_blocks(gallery.backend, blocks, probe))))
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    gallery.close()


class ScanPool:
    def __init__(self, path: str | Path, workers: int) -> None:
        self.workers = workers
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        for index in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, str(path), index, workers), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    def scan(self, probe: Sequence[bytes]) -> tuple[int, list[bytes]]:
        """Every worker's share of the scores and the generation they scanned; a scan whose workers
        saw different commits is refused (the caller scans again)."""
        probe = list(probe)
        for conn in self._conns:
            conn.send(probe)
        out: list[bytes] = []
        generations = set()
        for conn in self._conns:
            try:
                status, payload = conn.recv()
            except EOFError:
                raise GalleryError("a scan worker process died") from None
            if status != "ok":
                raise GalleryError(f"scan worker failed: {payload}")
            generations.add(payload[0])
            out += payload[1]
        if len(generations) != 1:
            raise StaleScanError(f"scan workers saw different commits {sorted(generations)}")
        return generations.pop(), out

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
