"""The shared store: galleries in a PostgreSQL database, one schema each, for matcher nodes that
share one database (``postgresql://USER@HOST/DB?...#NAME``; needs the ``postgresql`` extra).

The tables and the SQL are the embedded store's.  A write transaction first takes a lock on its
gallery's ``meta`` table that only writers contend for, so writers queue and readers never wait; a
read is one REPEATABLE READ transaction, so everything read in it is one committed state.  A client
killed mid-transaction is rolled back by the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cipherface.errors import GalleryError
from cipherface.gallery.store import GalleryStore, Sql

#: Gallery name -> its schema, in the database's public schema.
REGISTRY = "public.cipherface_galleries"
_REGISTRY_LOCK = 0x6366_6761  # advisory lock id serialising galleries' creation and deletion


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise GalleryError("the PostgreSQL store needs psycopg: pip install 'cipherface[postgresql]'") from None
    return psycopg


def split_location(location: str | Path) -> tuple[str, str]:
    """``postgresql://...#NAME`` -> (the database's URL, the gallery's name)."""
    url, _, name = str(location).partition("#")
    if not name or len(name) > 200 or not name.isprintable():
        raise GalleryError(f"a PostgreSQL gallery is named after '#': postgresql://USER@HOST/DB#NAME, not {url}#{name}")
    return url, name


def redacted(url: str) -> str:
    """The URL without its password (for messages and records)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class _Connection:
    """psycopg with the ``?`` placeholders of the shared SQL."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])


def connect(url: str) -> _Connection:
    psycopg = _driver()
    try:
        return _Connection(psycopg.connect(url, autocommit=True, connect_timeout=30))
    except psycopg.Error as exc:
        raise GalleryError(f"cannot connect to PostgreSQL at {redacted(url)}: {exc}".strip()) from None


def _schema_of(db: _Connection, name: str) -> str | None:
    try:
        row = db.execute(f"SELECT schema FROM {REGISTRY} WHERE name = ?", (name,)).fetchone()
    except _driver().errors.UndefinedTable:
        return None
    return row[0] if row else None


def names(url: str, prefix: str = "") -> list[str]:
    """The galleries in this database whose name starts with ``prefix``."""
    db = connect(url)
    try:
        rows = db.execute(f"SELECT name FROM {REGISTRY} WHERE starts_with(name, ?) ORDER BY name", (prefix,))
        return [n for (n,) in rows]
    except _driver().errors.UndefinedTable:
        return []
    finally:
        db.conn.close()


class PostgresStore(GalleryStore):
    blob_type = "BYTEA"

    def __init__(self, location: str | Path, schema: str, db: _Connection) -> None:
        super().__init__(location)
        self.url, self.name = split_location(location)
        self.schema = schema
        self.sql = db
        self.integrity_errors = (_driver().errors.IntegrityError,)
        db.execute(f'SET search_path TO "{schema}"')

    @classmethod
    def create(cls, location: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> PostgresStore:
        url, name = split_location(location)
        db = connect(url)
        schema = f"g_{secrets.token_hex(16)}"
        try:
            with db.conn.transaction():
                db.execute("SELECT pg_advisory_xact_lock(?)", (_REGISTRY_LOCK,))
                db.execute(f"CREATE TABLE IF NOT EXISTS {REGISTRY} (name TEXT PRIMARY KEY, schema TEXT UNIQUE)")
                if _schema_of(db, name) is not None:
                    raise GalleryError(f"{redacted(url)}#{name} already exists; open it instead of creating it")
                db.execute(f"INSERT INTO {REGISTRY} (name, schema) VALUES (?, ?)", (name, schema))
                db.execute(f'CREATE SCHEMA "{schema}"')
                store = cls(location, schema, db)
                store._fill(public_bundle, meta)
        except BaseException:
            db.conn.close()
            raise
        return store

    @classmethod
    def open(cls, location: str | Path) -> PostgresStore:
        url, name = split_location(location)
        db = connect(url)
        schema = _schema_of(db, name)
        if schema is None:
            db.conn.close()
            raise GalleryError(f"no gallery named {name!r} in {redacted(url)} (create one with `cipherface enroll`)")
        store = cls(location, schema, db)
        try:
            store._checked_schema()
        except _driver().Error as exc:
            store.close()
            raise GalleryError(f"{store.location} is not a cipherface gallery ({exc})") from None
        return store

    @staticmethod
    def exists(location: str | Path) -> bool:
        url, name = split_location(location)
        db = connect(url)
        try:
            return _schema_of(db, name) is not None
        finally:
            db.conn.close()

    @staticmethod
    def delete(location: str | Path) -> None:
        url, name = split_location(location)
        db = connect(url)
        try:
            with db.conn.transaction():
                db.execute("SELECT pg_advisory_xact_lock(?)", (_REGISTRY_LOCK,))
                schema = _schema_of(db, name)
                if schema is not None:
                    db.execute(f'DROP SCHEMA "{schema}" CASCADE')
                    db.execute(f"DELETE FROM {REGISTRY} WHERE name = ?", (name,))
        finally:
            db.conn.close()

    @staticmethod
    def label_of(location: str | Path) -> str:
        url, name = split_location(location)
        return f"{redacted(url)}#{name}"

    def close(self) -> None:
        self.sql.conn.close()

    @contextmanager
    def transaction(self, *, bump: bool = True) -> Iterator[Sql]:
        with self.sql.conn.transaction():
            self.sql.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")  # writers queue; readers do not
            yield self.sql
            if bump:
                self._bump()

    @contextmanager
    def snapshot(self) -> Iterator[Sql]:
        with self.sql.conn.transaction():
            self.sql.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield self.sql

    def size_bytes(self) -> int:
        row = self.sql.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'r'",
            (self.schema,),
        ).fetchone()
        return int(row[0])
