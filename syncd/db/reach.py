"""Can the database be reached? One connection attempt, and what its failure means.

``syncd run`` waits at start while PostgreSQL cannot be reached (not started yet,
restarting, a name that does not resolve yet, a full server): those become
:class:`DatabaseUnreachable`. A DSN that does not parse, or a login PostgreSQL refuses
(wrong password, unknown role or database, no ``pg_hba.conf`` line), will not get
better by waiting: those are configuration errors (exit code 2) at once.
"""

from __future__ import annotations

import psycopg

from syncd.db.connect import redact
from syncd.errors import ConfigError, StoreError

#: Parts of libpq's and the server's messages that mean the login itself was refused
#: (in English, the server's default; an unrecognised message means "wait").
_REFUSED_LOGIN = (
    "authentication failed",
    "no password supplied",
    "password is required",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "not permitted to log in",
    "server does not support ssl",
    "certificate",
)
#: Server refusals at login that pass: the server is starting, stopping or full.
_PASSING = (
    "starting up",
    "shutting down",
    "in recovery mode",
    "not yet accepting connections",
    "too many clients",
    "connection slots are reserved",
)


class DatabaseUnreachable(StoreError):
    """The database cannot be reached for now."""


def check_dsn(dsn: str) -> None:
    """A DSN libpq cannot parse is a configuration error, naming what is wrong."""
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(
            f"database.dsn is not a valid connection string: {redact(str(exc)).strip()}"
        ) from None


def classify(exc: psycopg.Error) -> StoreError | ConfigError:
    """What a failed connection attempt means: unreachable (wait) or refused (fix)."""
    text = " ".join(redact(str(exc)).split())
    lowered = text.lower()
    if isinstance(exc, psycopg.ProgrammingError):
        return ConfigError(f"database.dsn is not a valid connection string: {text}")
    pgconn = getattr(exc, "pgconn", None)
    refused = any(m in lowered for m in _REFUSED_LOGIN) or bool(
        pgconn is not None and pgconn.needs_password
    )
    if refused and not any(m in lowered for m in _PASSING):
        return ConfigError(
            f"PostgreSQL refused the login: {text}; check the user, password and database "
            "in database.dsn (and the server's pg_hba.conf)"
        )
    return DatabaseUnreachable(f"cannot connect to PostgreSQL: {text}")


async def probe(dsn: str, connect_timeout: float) -> None:
    """Connect once and disconnect; raises :class:`DatabaseUnreachable` or ``ConfigError``."""
    check_dsn(dsn)
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, round(connect_timeout))
        )
    except psycopg.Error as exc:
        raise classify(exc) from exc
    await conn.close()
