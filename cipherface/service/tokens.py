"""Bearer tokens of the matcher service: one tenant each, stored as hashes only.

``cipherface serve token create --tenant T`` prints a token once; the service keeps its
SHA-256, so its data folder never holds a usable token. Tokens are revoked by hash prefix.
They live in the data folder (``tokens.db``), or with ``--store postgresql://...`` in that
database (``public.cipherface_tokens``), which every service node sharing it then honours.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from pathlib import Path

from cipherface.errors import CipherfaceError
from cipherface.gallery.sqlite_store import SQLiteConnection

TOKENS_FILE = "tokens.db"
#: Tenant and gallery names: a letter or digit, then letters, digits, '.', '_' or '-' (at most 64).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PREFIX = "cft_"


def checked_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value) or ".." in value:
        raise CipherfaceError(
            f"{what} {str(value)[:80]!r} is not valid: 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, data_dir: str | Path | None, store: str | None = None) -> None:
        if store is not None:
            from cipherface.gallery.postgres_store import connect

            self._conn, self._table = connect(store), "public.cipherface_tokens"
        else:
            if data_dir is None:
                raise CipherfaceError("tokens are kept in --data DIR or in --store postgresql://...")
            path = Path(data_dir) / TOKENS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn, self._table = SQLiteConnection(conn), "tokens"
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} "
            "(digest TEXT PRIMARY KEY, tenant TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)"
        )

    def create(self, tenant: str) -> str:
        """A new token for ``tenant`` (shown once; only its hash is kept)."""
        token = PREFIX + secrets.token_urlsafe(32)
        self._conn.execute(
            f"INSERT INTO {self._table} VALUES (?, ?, ?)", (_digest(token), checked_name(tenant, "tenant"), time.time())
        )
        return token

    def tenant_of(self, token: str) -> str | None:
        row = self._conn.execute(f"SELECT tenant FROM {self._table} WHERE digest = ?", (_digest(token),)).fetchone()
        return row[0] if row else None

    def list(self) -> list[dict[str, object]]:
        rows = self._conn.execute(f"SELECT digest, tenant, created FROM {self._table} ORDER BY created").fetchall()
        return [{"id": d[:12], "tenant": t, "created": c} for d, t, c in rows]

    def revoke(self, token_id: str) -> int:
        """Revoke the tokens whose hash starts with ``token_id`` (as `token list` shows it)."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", token_id or ""):
            raise CipherfaceError(f"a token id is 8 to 64 hex digits (see `token list`), got {token_id[:80]!r}")
        return self._conn.execute(f"DELETE FROM {self._table} WHERE digest LIKE ?", (token_id + "%",)).rowcount

    def close(self) -> None:
        self._conn.conn.close()
