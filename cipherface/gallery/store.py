"""Where the matcher keeps a gallery: the public bundle, the blocks, their seals and the slot map.

Two stores hold the same tables behind one class: a SQLite file (WAL), the embedded default, and a
PostgreSQL database that several matcher nodes share (one schema per gallery). A gallery is named by
its *location*: a file path, or ``postgresql://...#NAME``.

Every change is one transaction: a reader sees the state before it or after it, a process killed in
the middle leaves the last committed state, and writers queue instead of failing.  Identities are
opaque ids (``new_ids``); names never reach the store (they stay in the key owner's Directory).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from cipherface.errors import GalleryError

SCHEMA_VERSION = 3
#: Older schemas this version opens (adding what they lack in place): 2 had no commit log and
#: did not record the generation each block was last written in.
UPGRADABLE = {2}
#: Location prefixes of the PostgreSQL store.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

#: The tables, in the SQL both stores speak (``{blob}``: the binary column type).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundle (id INTEGER PRIMARY KEY CHECK (id = 0), data {blob} NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    block INTEGER NOT NULL, component INTEGER NOT NULL, data {blob} NOT NULL,
    PRIMARY KEY (block, component));
CREATE TABLE IF NOT EXISTS identities (
    id TEXT PRIMARY KEY, block INTEGER NOT NULL, slot INTEGER NOT NULL, UNIQUE (block, slot));
CREATE TABLE IF NOT EXISTS seals (block INTEGER PRIMARY KEY, seal TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits (request TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS written (block INTEGER PRIMARY KEY, generation BIGINT NOT NULL);
"""


class Sql(Protocol):
    """A store's connection inside a transaction: ``?`` placeholders whichever the database."""

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None: ...


class GalleryStore:
    """Thin, transactional access to one gallery (the subclasses connect and open transactions)."""

    #: The binary column type in this database.
    blob_type = "BLOB"
    #: Errors of the database's driver that mean "a unique key is taken".
    integrity_errors: tuple[type[Exception], ...] = ()

    def __init__(self, location: str | Path) -> None:
        #: Where the gallery is, as given (what another process opens it with)...
        self.source = str(location)
        #: ... and as shown in messages and records (no password).
        self.location = self.label_of(location)
        self.sql: Sql

    # --------------------------------------------------------------- opening
    @classmethod
    def create(cls, location: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> GalleryStore:
        return store_class(location).create(location, public_bundle, meta)

    @classmethod
    def open(cls, location: str | Path) -> GalleryStore:
        return store_class(location).open(location)

    @staticmethod
    def exists(location: str | Path) -> bool:
        return store_class(location).exists(location)

    @staticmethod
    def delete(location: str | Path) -> None:
        """Drop a gallery and everything in it (the service's DELETE)."""
        store_class(location).delete(location)

    @staticmethod
    def label_of(location: str | Path) -> str:
        """What names a gallery in messages and the key owner's records (no password in it)."""
        return store_class(location).label_of(location)

    def _fill(self, public_bundle: bytes, meta: dict[str, Any]) -> None:
        """The tables of a new gallery and its settings (inside the creating transaction)."""
        for stmt in filter(str.strip, SCHEMA.format(blob=self.blob_type).split(";")):
            self.sql.execute(stmt)
        self.sql.execute("INSERT INTO bundle VALUES (0, ?)", (public_bundle,))
        rows = {**meta, "schema": SCHEMA_VERSION, "generation": 0}
        self.sql.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])

    def _checked_schema(self) -> None:
        schema = self.meta().get("schema")
        if schema in UPGRADABLE:
            with self.transaction(bump=False):
                for stmt in filter(str.strip, SCHEMA.format(blob=self.blob_type).split(";")):
                    self.sql.execute(stmt)
                self.sql.execute("INSERT INTO written SELECT block, 0 FROM seals WHERE true ON CONFLICT DO NOTHING")
                self.sql.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (json.dumps(SCHEMA_VERSION),))
        elif schema != SCHEMA_VERSION:
            self.close()
            raise GalleryError(
                f"{self.location} has gallery schema {schema}; this cipherface reads schema {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self, *, bump: bool = True) -> AbstractContextManager[Sql]:
        """A write transaction, taken at once so that writers queue; it moves the generation on
        (unless ``bump`` is false: a change of format, not of content)."""
        raise NotImplementedError

    def snapshot(self) -> AbstractContextManager[Sql]:
        """A read transaction: one consistent state for everything read inside it."""
        raise NotImplementedError

    def _bump(self) -> None:
        self.sql.execute("UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'generation'")

    def checkpoint(self) -> None:
        """Fold a write-ahead log into the database, where the store has one."""

    def size_bytes(self) -> int:
        raise NotImplementedError

    # ----------------------------------------------------------------- reads
    def meta(self) -> dict[str, Any]:
        try:
            return {k: json.loads(v) for k, v in self.sql.execute("SELECT key, value FROM meta")}
        except (TypeError, ValueError, RecursionError):
            raise GalleryError(f"{self.location}: its settings table is not valid JSON (edited?)") from None

    def generation(self) -> int:
        return int(self.sql.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def seals(self) -> dict[int, str]:
        return dict(self.sql.execute("SELECT block, seal FROM seals").fetchall())

    def block_count(self) -> int:
        return self.sql.execute("SELECT COUNT(*) FROM seals").fetchone()[0]

    def seal_of(self, block: int) -> str | None:
        row = self.sql.execute("SELECT seal FROM seals WHERE block = ?", (block,)).fetchone()
        return row[0] if row else None

    def slots_of(self, block: int) -> dict[int, str]:
        return {s: i for i, s in self.sql.execute("SELECT id, slot FROM identities WHERE block = ?", (block,))}

    def public_bundle(self) -> bytes:
        return bytes(self.sql.execute("SELECT data FROM bundle").fetchone()[0])

    def count(self) -> int:
        return self.sql.execute("SELECT COUNT(*) FROM identities").fetchone()[0]

    def block_ids(self) -> list[int]:
        return [b for (b,) in self.sql.execute("SELECT DISTINCT block FROM blocks ORDER BY block")]

    def read_block(self, block: int) -> list[bytes]:
        rows = self.sql.execute("SELECT data FROM blocks WHERE block = ? ORDER BY component", (block,)).fetchall()
        return [bytes(data) for (data,) in rows]

    def slots(self) -> list[tuple[str, int, int]]:
        return [tuple(r) for r in self.sql.execute("SELECT id, block, slot FROM identities ORDER BY block, slot")]

    def locate(self, ids: Iterable[str]) -> list[tuple[str, int, int]]:
        ids = list(ids)
        out = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.sql.execute(f"SELECT id, block, slot FROM identities WHERE id IN ({marks})", chunk)
            out += [tuple(r) for r in rows]
        return out

    def written_since(self, generation: int) -> list[int]:
        """Blocks rewritten in a commit after ``generation`` (slot rows change only in those)."""
        return [b for (b,) in self.sql.execute("SELECT block FROM written WHERE generation > ?", (generation,))]

    def committed(self, request: str) -> bool:
        """Whether a commit with this request id landed already (a client's retry)."""
        return self.sql.execute("SELECT 1 FROM commits WHERE request = ?", (request,)).fetchone() is not None

    # ---------------------------------------------------- writes (in a transaction)
    def write_block(self, block: int, blobs: list[bytes]) -> None:
        self.sql.executemany(
            "INSERT INTO blocks (block, component, data) VALUES (?, ?, ?) "
            "ON CONFLICT (block, component) DO UPDATE SET data = excluded.data",
            [(block, i, b) for i, b in enumerate(blobs)],
        )

    def write_seal(self, block: int, seal: str) -> None:
        """A block's new seal, and the generation this transaction commits as its last write."""
        self.sql.execute(
            "INSERT INTO seals (block, seal) VALUES (?, ?) ON CONFLICT (block) DO UPDATE SET seal = excluded.seal",
            (block, seal),
        )
        self.sql.execute(
            "INSERT INTO written (block, generation) "
            "SELECT ?, CAST(value AS BIGINT) + 1 FROM meta WHERE key = 'generation' "
            "ON CONFLICT (block) DO UPDATE SET generation = excluded.generation",
            (block,),
        )

    def add_identities(self, rows: list[tuple[str, int, int]]) -> None:
        try:
            self.sql.executemany("INSERT INTO identities (id, block, slot) VALUES (?, ?, ?)", rows)
        except self.integrity_errors as exc:
            raise GalleryError(f"slot or identity already taken: {exc}") from None

    def record_commit(self, request: str) -> None:
        self.sql.execute("INSERT INTO commits (request) VALUES (?)", (request,))

    def remove_identities(self, ids: list[str]) -> None:
        self.sql.executemany("DELETE FROM identities WHERE id = ?", [(i,) for i in ids])


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


def store_class(location: str | Path) -> type[GalleryStore]:
    """The store that holds galleries at this location."""
    if is_postgres(location):
        from cipherface.gallery.postgres_store import PostgresStore

        return PostgresStore
    from cipherface.gallery.sqlite_store import SQLiteStore

    return SQLiteStore
