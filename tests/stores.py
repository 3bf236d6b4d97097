"""Galleries on either store in tests, and what a dishonest matcher does to them: copy a gallery,
edit its rows."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from unittest import mock

from cipherface.gallery.postgres_store import REGISTRY, _schema_of, connect, split_location
from cipherface.gallery.store import GalleryStore, is_postgres

#: Where the matcher keeps galleries: every gallery test runs on both.
STORES = ("sqlite", "postgresql")
TABLES = ("meta", "bundle", "blocks", "identities", "seals", "commits", "written")


def copy_gallery(src: str, dst: str) -> None:
    """``dst`` becomes a copy of ``src`` as it is now (replacing what was there)."""
    GalleryStore.delete(dst)
    if not is_postgres(src):
        shutil.copy(src, dst)
        return
    url, name = split_location(src)
    new = split_location(dst)[1]
    db = connect(url)
    with db.conn.transaction():
        schema, fresh = _schema_of(db, name), f"g_{secrets.token_hex(16)}"
        db.execute(f'CREATE SCHEMA "{fresh}"')
        for table in TABLES:
            db.execute(f'CREATE TABLE "{fresh}".{table} (LIKE "{schema}".{table} INCLUDING ALL)')
            db.execute(f'INSERT INTO "{fresh}".{table} SELECT * FROM "{schema}".{table}')
        db.execute(f"INSERT INTO {REGISTRY} (name, schema) VALUES (?, ?)", (new, fresh))
    db.conn.close()


def edit(location: str | Path, *statements: tuple[str, tuple]) -> None:
    """Run statements on the gallery's tables in one transaction that moves its generation on."""
    store = GalleryStore.open(location)
    with store.transaction() as sql:
        for statement, args in statements:
            sql.execute(statement, args)
    store.close()


def query(location: str | Path, statement: str, args: tuple = ()) -> list[tuple]:
    store = GalleryStore.open(location)
    rows = [tuple(r) for r in store.sql.execute(statement, args).fetchall()]
    store.close()
    return rows


def gallery_location(request, store: str, folder: Path, name: str = "g") -> str:
    """A new gallery's location on ``store``: a file in ``folder``, or a fresh name in the test
    session's PostgreSQL server."""
    if store == "sqlite":
        return str(folder / f"{name}.db")  # in the test's tmp_path, which pytest removes
    location = f"{request.getfixturevalue('postgres_url')}#{name}-{secrets.token_hex(6)}"
    request.addfinalizer(lambda: dropped(location))
    return location


def dropped(location: str) -> None:
    """Drop a test's PostgreSQL gallery when the test is over, so that the session's server does not
    grow by every gallery of the suite; one still locked (a process the test left) is left alone."""
    # the server is gone or the schema still in use: the session's cleanup removes it
    with mock.patch.dict(os.environ, PGOPTIONS="-c lock_timeout=5s"), contextlib.suppress(Exception):
        GalleryStore.delete(location)
