"""The key owner's directory: opaque gallery ids to names, kept on-prem beside the secret key."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path


class Directory:
    """SQLite table id -> name. The matcher's gallery never sees a name."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # names are the key owner's secret too: owner-only, and SQLite gives its -wal/-shm files the same mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS names (id TEXT PRIMARY KEY, name TEXT NOT NULL)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS names_by_name ON names (name)")

    def add(self, rows: Iterable[tuple[str, str]]) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO names (id, name) VALUES (?, ?)", list(rows))

    def ids_of(self, name: str) -> list[str]:
        return [i for (i,) in self._conn.execute("SELECT id FROM names WHERE name = ?", (name,))]

    def names_of(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self._conn.execute(f"SELECT id, name FROM names WHERE id IN ({marks})", chunk).fetchall())
        return out

    def remove(self, ids: Iterable[str]) -> None:
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM names WHERE id = ?", [(i,) for i in ids])

    def counts(self) -> dict[str, int]:
        return dict(self._conn.execute("SELECT name, COUNT(*) FROM names GROUP BY name ORDER BY name"))

    def close(self) -> None:
        self._conn.close()
