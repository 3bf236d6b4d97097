"""Bearer tokens of the matcher service: one tenant each, stored as hashes only.

``cipherface serve token create --tenant T`` prints a token once; the service keeps its
SHA-256, so its data folder never holds a usable token. Tokens are revoked by hash prefix.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from pathlib import Path

from cipherface.errors import CipherfaceError

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
    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir) / TOKENS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS tokens (digest TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL)"
        )

    def create(self, tenant: str) -> str:
        """A new token for ``tenant`` (shown once; only its hash is kept)."""
        token = PREFIX + secrets.token_urlsafe(32)
        self._conn.execute(
            "INSERT INTO tokens VALUES (?, ?, ?)", (_digest(token), checked_name(tenant, "tenant"), time.time())
        )
        return token

    def tenant_of(self, token: str) -> str | None:
        row = self._conn.execute("SELECT tenant FROM tokens WHERE digest = ?", (_digest(token),)).fetchone()
        return row[0] if row else None

    def list(self) -> list[dict[str, object]]:
        rows = self._conn.execute("SELECT digest, tenant, created FROM tokens ORDER BY created").fetchall()
        return [{"id": d[:12], "tenant": t, "created": c} for d, t, c in rows]

    def revoke(self, token_id: str) -> int:
        """Revoke the tokens whose hash starts with ``token_id`` (as `token list` shows it)."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", token_id or ""):
            raise CipherfaceError(f"a token id is 8 to 64 hex digits (see `token list`), got {token_id[:80]!r}")
        return self._conn.execute("DELETE FROM tokens WHERE digest LIKE ?", (token_id + "%",)).rowcount

    def close(self) -> None:
        self._conn.close()
