"""The gallery file: one SQLite database (WAL) with the public bundle, the blocks, their seals
and the slot map.

Every change is one transaction: a reader sees the state before it or after it, and a
process killed in the middle leaves the last committed state.  Identities are opaque
random ids; names never reach this file (they stay in the key owner's Directory).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cipherface.errors import GalleryError

SCHEMA_VERSION = 3
#: Older schemas this version opens (adding what they lack in place): 2 had no commit log and
#: did not record the generation each block was last written in.
UPGRADABLE = {2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundle (id INTEGER PRIMARY KEY CHECK (id = 0), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    block INTEGER NOT NULL, component INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (block, component));
CREATE TABLE IF NOT EXISTS identities (
    id TEXT PRIMARY KEY, block INTEGER NOT NULL, slot INTEGER NOT NULL, UNIQUE (block, slot));
CREATE TABLE IF NOT EXISTS seals (block INTEGER PRIMARY KEY, seal TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commits (request TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS written (block INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
"""


class GalleryStore:
    """Thin, transactional access to one gallery file."""

    def __init__(self, path: str | Path, conn: sqlite3.Connection) -> None:
        self.path = Path(path)
        self._conn = conn

    @classmethod
    def create(cls, path: str | Path, public_bundle: bytes, meta: dict[str, Any]) -> GalleryStore:
        path = Path(path)
        if path.exists():
            raise GalleryError(f"{path} already exists; open it instead of creating it")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, cls._connect(path))
        with store.transaction():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                store._conn.execute(stmt)
            store._conn.execute("INSERT INTO bundle VALUES (0, ?)", (public_bundle,))
            rows = {**meta, "schema": SCHEMA_VERSION, "generation": 0}
            store._conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])
        return store

    @classmethod
    def open(cls, path: str | Path) -> GalleryStore:
        path = Path(path)
        if not path.is_file():
            raise GalleryError(f"no gallery at {path} (create one with `cipherface enroll`)")
        try:
            store = cls(path, cls._connect(path))
            schema = store.meta().get("schema")
        except sqlite3.DatabaseError as exc:
            raise GalleryError(f"{path} is not a cipherface gallery ({exc})") from None
        if schema in UPGRADABLE:
            store._upgrade()
        elif schema != SCHEMA_VERSION:
            store.close()
            raise GalleryError(f"{path} has gallery schema {schema}; this cipherface reads schema {SCHEMA_VERSION}")
        return store

    def _upgrade(self) -> None:
        """Add what an older schema lacks (new tables only; nothing stored is rewritten)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(stmt)
            self._conn.execute("INSERT OR IGNORE INTO written SELECT block, 0 FROM seals")
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (json.dumps(SCHEMA_VERSION),))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (taken at once, so writers queue instead of failing)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent state for everything read inside it."""
        self._conn.execute("BEGIN")
        try:
            yield self._conn
        finally:
            self._conn.execute("COMMIT")

    # ----------------------------------------------------------------- reads
    def meta(self) -> dict[str, Any]:
        try:
            return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}
        except (TypeError, ValueError, RecursionError):
            raise GalleryError(f"{self.path}: its settings table is not valid JSON (edited?)") from None

    def generation(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def seals(self) -> dict[int, str]:
        return dict(self._conn.execute("SELECT block, seal FROM seals"))

    def block_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM seals").fetchone()[0]

    def seal_of(self, block: int) -> str | None:
        row = self._conn.execute("SELECT seal FROM seals WHERE block = ?", (block,)).fetchone()
        return row[0] if row else None

    def slots_of(self, block: int) -> dict[int, str]:
        return {s: i for i, s in self._conn.execute("SELECT id, slot FROM identities WHERE block = ?", (block,))}

    def public_bundle(self) -> bytes:
        return self._conn.execute("SELECT data FROM bundle").fetchone()[0]

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM identities").fetchone()[0]

    def block_ids(self) -> list[int]:
        return [b for (b,) in self._conn.execute("SELECT DISTINCT block FROM blocks ORDER BY block")]

    def read_block(self, block: int) -> list[bytes]:
        rows = self._conn.execute("SELECT data FROM blocks WHERE block = ? ORDER BY component", (block,)).fetchall()
        return [data for (data,) in rows]

    def slots(self) -> list[tuple[str, int, int]]:
        return self._conn.execute("SELECT id, block, slot FROM identities ORDER BY block, slot").fetchall()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file and truncate it."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def locate(self, ids: Iterable[str]) -> list[tuple[str, int, int]]:
        ids = list(ids)
        out = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out += self._conn.execute(f"SELECT id, block, slot FROM identities WHERE id IN ({marks})", chunk).fetchall()
        return out

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())

    # ---------------------------------------------------- writes (in a transaction)
    def write_block(self, conn: sqlite3.Connection, block: int, blobs: list[bytes]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO blocks (block, component, data) VALUES (?, ?, ?)",
            [(block, i, b) for i, b in enumerate(blobs)],
        )

    def write_seal(self, conn: sqlite3.Connection, block: int, seal: str) -> None:
        """A block's new seal, and the generation this transaction commits as its last write."""
        conn.execute("INSERT OR REPLACE INTO seals (block, seal) VALUES (?, ?)", (block, seal))
        conn.execute(
            "INSERT OR REPLACE INTO written (block, generation) "
            "SELECT ?, CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'generation'",
            (block,),
        )

    def add_identities(self, conn: sqlite3.Connection, rows: list[tuple[str, int, int]]) -> None:
        try:
            conn.executemany("INSERT INTO identities (id, block, slot) VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError as exc:
            raise GalleryError(f"slot or identity already taken: {exc}") from None

    def written_since(self, generation: int) -> list[int]:
        """Blocks rewritten in a commit after ``generation`` (slot rows change only in those)."""
        return [b for (b,) in self._conn.execute("SELECT block FROM written WHERE generation > ?", (generation,))]

    def committed(self, request: str) -> bool:
        """Whether a commit with this request id landed already (a client's retry)."""
        return self._conn.execute("SELECT 1 FROM commits WHERE request = ?", (request,)).fetchone() is not None

    def record_commit(self, conn: sqlite3.Connection, request: str) -> None:
        conn.execute("INSERT INTO commits (request) VALUES (?)", (request,))

    def remove_identities(self, conn: sqlite3.Connection, ids: list[str]) -> None:
        conn.executemany("DELETE FROM identities WHERE id = ?", [(i,) for i in ids])
