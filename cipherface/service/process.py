"""A matcher service in a process of its own on 127.0.0.1 (the demo, the tests and the load test
start one): up when ``/health`` answers, stopped and reaped on exit."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from cipherface.errors import ServiceError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(data: str | Path, *extra: str, port: int | None = None) -> tuple[list[str], str]:
    """The command that serves ``data`` on a free loopback port, and its URL."""
    port = port or free_port()
    command = [sys.executable, "-m", "cipherface", "serve", "--data", str(data), "--port", str(port), *extra]
    return command, f"http://127.0.0.1:{port}"


def wait_until_up(proc: subprocess.Popen, url: str, *, ca_file: str | None = None, wait: float = 90.0) -> None:
    """Return once the server at ``url`` answers /health; a ServiceError if ``proc`` exits or time runs out."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    deadline = time.monotonic() + wait
    while True:
        try:
            if httpx.get(f"{url}/health", verify=verify, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise ServiceError(f"the matcher service did not start: {err}")
        time.sleep(0.2)


@contextmanager
def running(command: Sequence[str], url: str, *, ca_file: str | None = None, wait: float = 90.0) -> Iterator[str]:
    """Run ``command`` (a server) until the block ends; ``url`` once its /health answers."""
    proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(proc, url, ca_file=ca_file, wait=wait)
        yield url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process (killed if it does not stop) and reap it."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()
