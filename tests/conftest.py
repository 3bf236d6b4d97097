"""Shared fixtures: key owners and matchers on every installed backend."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from stores import STORES, gallery_location

from cipherface import KeyOwner, Matcher
from cipherface.plugins import registry

BACKENDS = ("tenseal", "pyfhel")


def pytest_configure(config):
    # a subprocess that dies of a signal (SIGABRT, SIGSEGV) prints where, in Python and native frames
    os.environ.setdefault("PYTHONFAULTHANDLER", "1")
    # key folders the CLI makes by default go to a temporary place, not the user's ~/.local/share,
    # removed when the session ends (a suite leaves nothing on the disk it shares)
    import tempfile

    os.environ["CIPHERFACE_KEYS"] = tempfile.mkdtemp(prefix="cipherface-test-keys-")
    config.add_cleanup(lambda: shutil.rmtree(os.environ["CIPHERFACE_KEYS"], ignore_errors=True))
    missing = [name for name in BACKENDS if name not in registry().backends]
    if missing:
        raise pytest.UsageError(f"backend plugin(s) {missing} are not installed: run the README's set-up (make test)")


@pytest.fixture(scope="session", params=BACKENDS)
def backend_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def owners() -> dict[str, KeyOwner]:
    return {name: KeyOwner.generate(name, rotation_steps=[1, 2, 4, 8, 16, 32, 64, 128, 256]) for name in BACKENDS}


@pytest.fixture(scope="session")
def owner(owners, backend_name) -> KeyOwner:
    return owners[backend_name]


@pytest.fixture(scope="session")
def matcher(owner) -> Matcher:
    return Matcher(owner.public_bundle())


@pytest.fixture(scope="session")
def embedder():
    from cipherface.plugins import get_embedder

    return get_embedder("deepface")


@pytest.fixture(scope="session")
def faces():
    from faces import faces_dir

    return faces_dir()


@pytest.fixture(scope="session")
def pair_embeddings(request, faces, tmp_path_factory):
    """The 520 labelled pairs and the largest-face embedding of every photo in them (embedded once,
    by the first of the test processes to need them)."""
    return embed_pairs(lambda: request.getfixturevalue("embedder"), faces, shared(tmp_path_factory, "pairs-dlib"))


def shared(tmp_path_factory, name: str) -> Path | None:
    """Where the test processes of one session (pytest-xdist's workers) share a result computed once."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    return tmp_path_factory.getbasetemp().parent / f"{name}.npz"


def embed_pairs(embedder, faces, cache: Path | None = None):
    """The labelled pairs and the largest-face embedding of every photo in them, by ``embedder()``;
    read from ``cache`` when another test process wrote it (arrays only: nothing is unpickled)."""
    from filelock import FileLock

    from cipherface.evaluation import embed_images, read_pairs

    pairs = read_pairs(faces / "pairs.csv")
    names = sorted({p.image_a for p in pairs} | {p.image_b for p in pairs})
    with FileLock(f"{cache}.lock") if cache else contextlib.nullcontext():
        if cache and cache.is_file():
            with np.load(cache, allow_pickle=False) as saved:
                return pairs, {n: saved[n] for n in names}
        embedded = embed_images(embedder(), faces, names, progress=False)
        missing = {n: v for n, v in embedded.items() if isinstance(v, str)}
        assert not missing, f"photos without a detected face: {missing}"
        if cache:
            np.savez(cache, **embedded)
    return pairs, embedded


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL 16 server of this test session (pgserver: a private one in a temp folder)."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("postgres"), cleanup_mode="stop")
    # recycle the write-ahead log early: the suite's galleries would otherwise leave ~1 GB of it
    server.psql("ALTER SYSTEM SET max_wal_size = '256MB'; ALTER SYSTEM SET min_wal_size = '64MB';")
    server.psql("SELECT pg_reload_conf();")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(params=STORES)
def store_name(request) -> str:
    return request.param


@pytest.fixture
def gallery_at(request, store_name, tmp_path) -> str:
    """Where a test's gallery goes, on each store in turn."""
    return gallery_location(request, store_name, tmp_path)
