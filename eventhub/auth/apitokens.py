"""API tokens for the daemon's HTTP API, stored hashed in the state database.

A token is shown once, when created (``eventhub tokens create NAME``); only its
SHA-256 is kept. Tokens are 32 random bytes, so a fast hash is as good as a slow
one: there is nothing to brute-force. The first characters (``ehk_`` and 6 more)
are kept in clear so that a user can tell tokens apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils.migrations import Migrations

from ..errors import NameNotFound, UserError
from ..events import format_time, parse_time
from ..redact import register_secret
from ..statedb import StateDB

PREFIX = "ehk_"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TOKEN_RE = re.compile(r"ehk_[A-Za-z0-9_-]{43}")

migrations = Migrations("eventhub.tokens")


@migrations()
def m001_api_tokens(db: Any) -> None:
    db.executescript(
        """
        CREATE TABLE api_tokens (
            name TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            created TEXT NOT NULL,
            last_used TEXT
        );
        """
    )


@migrations()
def m002_token_scope(db: Any) -> None:
    db.execute("ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write'")


SCOPES = ("read", "write")


class TokenNotFound(NameNotFound):
    kind = "API token"


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without the token."""

    name: str
    hint: str
    created: datetime
    last_used: datetime | None
    #: ``"write"`` (the whole API) or ``"read"`` (GET routes only).
    scope: str = "write"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hint": self.hint,
            "scope": self.scope,
            "created": format_time(self.created),
            "last_used": format_time(self.last_used) if self.last_used else None,
        }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class APITokenStore:
    """Create, check, list and revoke API tokens."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.migrate(migrations)

    def create(self, name: str, *, scope: str = "write") -> str:
        """A new token named ``name``; returns it (the only time it is shown). It is
        registered as a secret of this process (:mod:`eventhub.redact`).

        Args:
            name: What the token is for (letters, digits, ``.``, ``-``, ``_``).
            scope: ``"write"`` for the whole API, ``"read"`` for GET routes only.

        Raises:
            UserError: for a bad name or scope, or a name already in use.
        """
        if scope not in SCOPES:
            raise UserError(f"token scope must be 'read' or 'write', not {scope!r}")
        if not _NAME_RE.fullmatch(name):
            raise UserError(
                f"token name {name!r}: use letters, digits, '.', '-' and '_' "
                "(at most 64)"
            )
        token = PREFIX + secrets.token_urlsafe(32)
        register_secret(token)  # shown once, by the caller; never in a log line
        now = format_time(datetime.now(UTC))
        with self.db.write() as conn:
            if conn.execute(
                "SELECT 1 FROM api_tokens WHERE name = ?", (name,)
            ).fetchone():
                raise UserError(f"a token named {name!r} exists; revoke it first")
            conn.execute(
                "INSERT INTO api_tokens (name, hash, hint, created, scope)"
                " VALUES (?,?,?,?,?)",
                (name, _digest(token), token[:10], now, scope),
            )
        return token

    def check(self, token: str) -> TokenInfo | None:
        """The stored token, or None if ``token`` is not a live token."""
        if not _TOKEN_RE.fullmatch(token):
            return None
        row = (
            self.db.connection()
            .execute(
                "SELECT name, hint, created, last_used, scope FROM api_tokens"
                " WHERE hash = ?",
                (_digest(token),),
            )
            .fetchone()
        )
        return None if row is None else _info(row)

    def touch(self, name: str, moment: datetime) -> None:
        """Record a use (at most once a minute per token, to spare writes)."""
        stamp = format_time(moment)
        with self.db.write() as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used = ? WHERE name = ?"
                " AND (last_used IS NULL OR last_used < ?)",
                (stamp, name, format_time(moment.replace(second=0, microsecond=0))),
            )

    def list(self) -> list[TokenInfo]:
        rows = (
            self.db.connection()
            .execute(
                "SELECT name, hint, created, last_used, scope FROM api_tokens"
                " ORDER BY name"
            )
            .fetchall()
        )
        return [_info(row) for row in rows]

    def revoke(self, name: str) -> None:
        """Delete a token; requests carrying it are refused from now on.

        Raises:
            TokenNotFound: if no token has that name.
        """
        with self.db.write() as conn:
            deleted = conn.execute(
                "DELETE FROM api_tokens WHERE name = ?", (name,)
            ).rowcount
        if not deleted:
            raise TokenNotFound(name, [t.name for t in self.list()])


def _info(row: Any) -> TokenInfo:
    name, hint, created, used, scope = row
    return TokenInfo(
        name, hint, parse_time(created), parse_time(used) if used else None, scope
    )
