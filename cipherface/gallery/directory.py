"""The key owner's records, kept on-prem beside the secret key: names, block versions, layouts.

``names`` maps the opaque ids in a gallery to people; ``versions`` remembers which version
(and canary nonce and canary slots) of each block the key owner last wrote, so a block the
matcher replays from before a rewrite is refused. The two files (this one and the matcher's
gallery) cannot share a transaction, so every write is two-phase: rows are first written as
pending with the writer's pid, the gallery commits, then they are made current (or dropped if
the gallery refused). Pending rows left by a killed writer are reconciled against the gallery
on the next open.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cipherface.errors import GalleryError

SCHEMA_VERSION = 2
#: SQLite's page cache per connection (its default is 2 MB): a million names' index pages stay in it.
CACHE_KIB = 256 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS names (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, gallery TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'current', pid INTEGER);
CREATE INDEX IF NOT EXISTS names_by_name ON names (gallery, name);
CREATE TABLE IF NOT EXISTS versions (
    gallery TEXT NOT NULL, block INTEGER NOT NULL, version INTEGER NOT NULL, nonce TEXT NOT NULL,
    canaries TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER,
    PRIMARY KEY (gallery, block, nonce));
CREATE TABLE IF NOT EXISTS layouts (gallery TEXT PRIMARY KEY, layout INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class BlockVersion:
    block: int
    version: int
    nonce: str
    canaries: tuple[int, ...]  # the block's canary slots


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Directory:
    """SQLite file in the key owner's folder (mode 0600). The matcher's gallery never sees a name."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # names are the key owner's secret too: owner-only, and SQLite gives its -wal/-shm files the same mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # ids are random: inserts touch pages all over
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {t for (t,) in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and version != SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} was written by an older cipherface (schema {version}, this one reads "
                f"{SCHEMA_VERSION}): enrol into a new gallery with a new key folder"
            )
        with self._write():
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                self._conn.execute(stmt)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _write(self) -> sqlite3.Connection:
        return _Immediate(self._conn)

    # ----------------------------------------------------------------- names
    def ids_of(self, gallery: str, name: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM names WHERE gallery = ? AND name = ? AND state != 'adding'", (gallery, name)
        )
        return [i for (i,) in rows]

    def names_of(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self._conn.execute(f"SELECT id, name FROM names WHERE id IN ({marks})", chunk).fetchall())
        return out

    def pending_names(self, gallery: str) -> int:
        return self._conn.execute(
            "SELECT COUNT(*) FROM names WHERE gallery = ? AND state != 'current'", (gallery,)
        ).fetchone()[0]

    # --------------------------------------------------------------- layouts
    def layout(self, gallery: str) -> int:
        """The layout the key owner writes this gallery's blocks in (``layout.py``); 1 for a gallery
        made before layouts were recorded."""
        row = self._conn.execute("SELECT layout FROM layouts WHERE gallery = ?", (gallery,)).fetchone()
        return 1 if row is None else int(row[0])

    def set_layout(self, gallery: str, layout: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO layouts VALUES (?, ?) ON CONFLICT (gallery) DO UPDATE SET layout = excluded.layout",
                (gallery, layout),
            )

    # -------------------------------------------------------------- versions
    def versions(self, gallery: str) -> tuple[dict[int, BlockVersion], dict[int, dict[tuple[int, str], BlockVersion]]]:
        """Per block: the current version, and every version a query may accept (the current one and
        newer ones being written now)."""
        current: dict[int, BlockVersion] = {}
        accepted: dict[int, dict[tuple[int, str], BlockVersion]] = {}
        rows = self._conn.execute(
            "SELECT block, version, nonce, canaries, state FROM versions WHERE gallery = ? ORDER BY state", (gallery,)
        ).fetchall()
        for block, version, nonce, canaries, state in rows:
            v = BlockVersion(block, version, nonce, tuple(json.loads(canaries)))
            if state == "current":
                current[block] = v
        for block, version, nonce, canaries, _ in rows:
            if block not in current or version >= current[block].version:
                v = BlockVersion(block, version, nonce, tuple(json.loads(canaries)))
                accepted.setdefault(block, {})[(version, nonce)] = v
        return current, accepted

    # ---------------------------------------------------------- two-phase writes
    def begin(
        self, gallery: str, added: Iterable[tuple[str, str]], removing: Iterable[str], blocks: Iterable[BlockVersion]
    ) -> None:
        """Phase one, before the gallery commits: everything this write will change, as pending."""
        pid = os.getpid()
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO names (id, name, gallery, state, pid) VALUES (?, ?, ?, 'adding', ?)",
                [(i, n, gallery, pid) for i, n in added],
            )
            conn.executemany("UPDATE names SET state = 'removing', pid = ? WHERE id = ?", [(pid, i) for i in removing])
            conn.executemany(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                [(gallery, b.block, b.version, b.nonce, json.dumps(list(b.canaries)), pid) for b in blocks],
            )

    def end(
        self,
        gallery: str,
        added: Iterable[str],
        removing: Iterable[str],
        blocks: Iterable[BlockVersion],
        committed: bool,
    ) -> None:
        """Phase two: the gallery committed (make it current) or refused (undo phase one)."""
        added, removing, blocks = list(added), list(removing), list(blocks)
        with self._write() as conn:
            if committed:
                conn.executemany("UPDATE names SET state = 'current', pid = NULL WHERE id = ?", [(i,) for i in added])
                conn.executemany("DELETE FROM names WHERE id = ?", [(i,) for i in removing])
                for b in blocks:
                    self._promote(conn, gallery, b.block, b.version, b.nonce)
            else:
                conn.executemany("DELETE FROM names WHERE id = ?", [(i,) for i in added])
                conn.executemany(
                    "UPDATE names SET state = 'current', pid = NULL WHERE id = ?", [(i,) for i in removing]
                )
                conn.executemany(
                    "DELETE FROM versions WHERE gallery = ? AND block = ? AND nonce = ?",
                    [(gallery, b.block, b.nonce) for b in blocks],
                )

    @staticmethod
    def _promote(conn: sqlite3.Connection, gallery: str, block: int, version: int, nonce: str) -> None:
        newest = conn.execute(
            "SELECT MAX(version) FROM versions WHERE gallery = ? AND block = ? AND state = 'current'", (gallery, block)
        ).fetchone()[0]
        if newest is not None and newest > version:  # a later write already landed
            conn.execute("DELETE FROM versions WHERE gallery = ? AND block = ? AND nonce = ?", (gallery, block, nonce))
            return
        conn.execute("DELETE FROM versions WHERE gallery = ? AND block = ? AND state = 'current'", (gallery, block))
        conn.execute(
            "UPDATE versions SET state = 'current', pid = NULL WHERE gallery = ? AND block = ? AND nonce = ?",
            (gallery, block, nonce),
        )

    def reconcile(
        self, gallery: str, present: Callable[[list[str]], set[str]], sealed: Mapping[int, tuple[int, str]]
    ) -> int:
        """Settle what writers that died between the two phases left pending, from what the gallery
        holds (``present``: which of these ids it lists; ``sealed``: block -> (version, nonce)).
        Returns how many rows were settled."""
        with self._write() as conn:
            names = [
                (i, state)
                for i, state, pid in conn.execute(
                    "SELECT id, state, pid FROM names WHERE gallery = ? AND state != 'current'", (gallery,)
                )
                if not _alive(pid)
            ]
            there = present([i for i, _ in names]) if names else set()
            for ident, _state in names:  # adding or removing: the gallery says whether it landed
                if ident in there:
                    conn.execute("UPDATE names SET state = 'current', pid = NULL WHERE id = ?", (ident,))
                else:
                    conn.execute("DELETE FROM names WHERE id = ?", (ident,))
            versions = [
                (b, v, n)
                for b, v, n, pid in conn.execute(
                    "SELECT block, version, nonce, pid FROM versions WHERE gallery = ? AND state = 'pending'",
                    (gallery,),
                )
                if not _alive(pid)
            ]
            for block, version, nonce in versions:
                if sealed.get(block) == (version, nonce):
                    self._promote(conn, gallery, block, version, nonce)
                else:
                    conn.execute(
                        "DELETE FROM versions WHERE gallery = ? AND block = ? AND nonce = ?", (gallery, block, nonce)
                    )
        return len(names) + len(versions)

    def close(self) -> None:
        self._conn.close()


class _Immediate:
    """``with`` a write transaction taken at once (writers queue instead of failing)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
