"""The embedded store: one SQLite file (WAL) per gallery."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cipherface.errors import GalleryError
from cipherface.gallery.store import GalleryStore, Sql

#: SQLite's page cache per connection (its default is 2 MB), for the index pages of random identity
#: ids that every enrolment inserts into; block pages pass through it too.
CACHE_KIB = 128 * 1024
#: Pages of write-ahead log (4 KiB each) before SQLite folds it into the database (its default: 1,000).
WAL_PAGES = 16384


class SQLiteConnection:
    """sqlite3 speaks ``?`` already; this adds ``executemany`` beside ``execute``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self.conn.executemany(sql, rows)


class SQLiteStore(GalleryStore):
    blob_type = "BLOB"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")  # a block is 8 MB at d=128: not one per commit
        self.sql = SQLiteConnection(conn)

    @classmethod
    def create(cls, location: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> SQLiteStore:
        path = Path(location)
        if path.exists():
            raise GalleryError(f"{path} already exists; open it instead of creating it")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        with store.transaction(bump=False):
            store._fill(public_bundle, meta)
        return store

    @classmethod
    def open(cls, location: str | Path) -> SQLiteStore:
        path = Path(location)
        if not path.is_file():
            raise GalleryError(f"no gallery at {path} (create one with `cipherface enroll`)")
        try:
            store = cls(path)
            store._checked_schema()
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path} is not a cipherface gallery ({exc})") from None
        return store

    @staticmethod
    def exists(location: str | Path) -> bool:
        return Path(location).exists()

    @staticmethod
    def delete(location: str | Path) -> None:
        path = Path(location)
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)

    @staticmethod
    def label_of(location: str | Path) -> str:
        return str(Path(location).resolve())

    def close(self) -> None:
        self.sql.conn.close()

    @contextmanager
    def transaction(self, *, bump: bool = True) -> Iterator[Sql]:
        self.sql.execute("BEGIN IMMEDIATE")
        try:
            yield self.sql
            if bump:
                self._bump()
            self.sql.execute("COMMIT")
        except BaseException:
            self.sql.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[Sql]:
        self.sql.execute("BEGIN")
        try:
            yield self.sql
        finally:
            self.sql.execute("COMMIT")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it."""
        self.sql.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
