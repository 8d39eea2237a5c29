"""Connections to PostgreSQL, with psycopg errors mapped to syncd's."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from syncd.errors import StoreError

_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)|(://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in a DSN or in a message that may quote one."""
    return _PASSWORD.sub(
        lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(3)}***{m.group(5)}", text
    )


def passwords(dsn: str) -> list[str]:
    """The password in a DSN as written there (maybe percent-encoded or quoted) and as
    libpq reads it, so that logs can mask every form; empty without a password."""
    forms = {m.group(2) or m.group(4) for m in _PASSWORD.finditer(dsn)}
    try:
        parsed = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        parsed = None
    forms.add(str(parsed) if parsed else "")
    return sorted(form for form in forms if form)


@asynccontextmanager
async def connect(
    dsn: str, *, autocommit: bool = False, application_name: str = "syncd"
) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    """An async connection with dict rows; connection failures become ``StoreError``."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=autocommit, row_factory=dict_row, application_name=application_name
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {redact(str(exc)).strip()}") from exc
    try:
        yield conn
    finally:
        await conn.close()
