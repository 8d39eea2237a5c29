"""Forward-only migrations from ``sql/migrations/NNNN_name.sql``.

``apply()`` is idempotent and safe when several replicas start at once: runs are
serialised by a session advisory lock, and each migration is applied in its own
transaction together with its row in ``syncd.schema_migrations``. An applied migration
whose file changed afterwards is an error, never silently skipped. Given a grants file
(``deploy/sql/least_privilege.sql``), it then applies that in one transaction under the
same lock: concurrent GRANTs on one table would fail with "tuple concurrently updated".
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from syncd.db import capture
from syncd.db.connect import connect
from syncd.db.queries import QUERIES, sql_dir
from syncd.errors import MigrationError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class Status:
    applied: list[int]
    pending: list[Migration]

    @property
    def current(self) -> bool:
        return not self.pending


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migration files in version order; names and numbering are checked."""
    folder = directory or sql_dir() / "migrations"
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} must be named NNNN_snake_case.sql")
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        found.append(Migration(int(match[1]), match[2], text, digest))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration {migration.label} is out of sequence: expected version {expected:04d}"
            )
    return found


async def status(dsn: str) -> Status:
    """Which migrations are applied and which are pending (creates nothing)."""
    migrations = load_migrations()
    async with connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(QUERIES["migrations_table_exists"])).fetchone()
        if not row or not row["present"]:
            return Status(applied=[], pending=migrations)
        rows = await (await conn.execute(QUERIES["select_applied_migrations"])).fetchall()
    return compare(migrations, {r["version"]: r["checksum"] for r in rows})


def compare(migrations: list[Migration], applied: dict[int, str]) -> Status:
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}, which this syncd does not know: "
                "run a newer syncd"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {migration.label} changed after it was applied; "
                "migrations are forward-only: restore the file and add a new migration"
            )
    pending = [m for m in migrations if m.version not in applied]
    return Status(applied=sorted(applied), pending=pending)


def default_grants() -> Path:
    """The shipped least-privilege grants: in a wheel next to the schema, else in deploy/."""
    folder = sql_dir()
    for candidate in (
        folder / "least_privilege.sql",
        folder.parent / "deploy" / "sql" / "least_privilege.sql",
    ):
        if candidate.is_file():
            return candidate
    raise MigrationError(f"least_privilege.sql is missing next to {folder}; reinstall syncd")


def read_grants(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MigrationError(f"cannot read the grants file {path}: {exc.strerror}") from exc


async def apply(dsn: str, *, grants: Path | None = None) -> list[Migration]:
    """Apply pending migrations in order, then ``grants`` if given; returns the migrations
    applied (empty when current)."""
    grants_sql = read_grants(grants) if grants is not None else None
    async with connect(dsn, autocommit=True, application_name="syncd-migrate") as conn:
        await conn.execute(QUERIES["lock_migrations"])
        try:
            await conn.execute(QUERIES["create_migrations_table"])
            rows = await (await conn.execute(QUERIES["select_applied_migrations"])).fetchall()
            state = compare(load_migrations(), {r["version"]: r["checksum"] for r in rows})
            for migration in state.pending:
                await _apply_one(conn, migration)
            if state.pending:
                # Captures installed by an earlier syncd ran as their installer.
                await capture.rebuild_legacy(conn)
            if grants is not None and grants_sql is not None:
                await _apply_grants(conn, grants, grants_sql)
            return state.pending
        finally:
            await conn.execute(QUERIES["unlock_migrations"])


async def _apply_one(conn: psycopg.AsyncConnection[dict[str, object]], m: Migration) -> None:
    try:
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(
                QUERIES["insert_applied_migration"],
                {"version": m.version, "name": m.name, "checksum": m.checksum},
            )
    except psycopg.Error as exc:
        raise MigrationError(f"migration {m.label} failed: {exc}".strip()) from exc
    logger.info("migration applied", extra={"action": "migration_applied", "migration": m.label})


async def _apply_grants(
    conn: psycopg.AsyncConnection[dict[str, object]], path: Path, text: str
) -> None:
    try:
        async with conn.transaction():
            await conn.execute(text)
    except psycopg.Error as exc:
        detail = (exc.diag.message_primary or str(exc)).strip()
        raise MigrationError(
            f"applying the grants in {path.name} failed: {detail}; run deploy/sql/roles.sql "
            "as a superuser first, and `syncd migrate --grants` as the schema's owner"
        ) from exc
    logger.info("grants applied", extra={"action": "grants_applied", "file": path.name})
