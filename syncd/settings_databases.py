"""``[databases.<name>]``: business databases besides syncd's own PostgreSQL.

A kind that names one (``[kinds.<kind>] database = "<name>"``) has its business table
there; a kind that names none uses syncd's own PostgreSQL, as before. Only MySQL 8.0+
and MariaDB 10.6+ for now (docs/mysql.md). The DSN is a secret: ``dsn_file`` reads it
from a file, and neither ``syncd config show`` nor an error repeats it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from syncd.db.mysql.url import TIME_ZONE, MySQLDatabase, check_dsn

DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def read_secret_files(data: Any, names: tuple[str, ...]) -> Any:
    """Replace ``<name>_file`` keys by the stripped content of the file they name."""
    from syncd.settings import _read_secret_files

    return _read_secret_files(data, names)


class BusinessDatabaseSettings(BaseModel):
    """[databases.<name>]: one MySQL or MariaDB server's database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: SecretStr = Field(
        description="mysql://user:password@host:3306/database (or mariadb://); a secret"
    )
    pool_max_size: int = Field(default=4, ge=1, le=100)
    connect_timeout: float = Field(default=10.0, gt=0, le=300, description="seconds")
    statement_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="the longest one write-back may take, seconds"
    )
    lock_timeout: int = Field(
        default=5, ge=1, le=3600, description="innodb_lock_wait_timeout of syncd's sessions, s"
    )
    time_zone: str = Field(
        default="+00:00",
        description="syncd's session time zone (an offset): the zone of times it writes "
        "into DATETIME columns",
    )

    # --- the relay of the outbox (docs/mysql.md, "Ingest") ---
    poll_min: float = Field(
        default=0.05, gt=0, le=60, description="the relay's poll interval while rows come, s"
    )
    poll_max: float = Field(
        default=2.0, gt=0, le=600, description="the relay's longest poll interval when idle, s"
    )
    relay_batch_size: int = Field(default=200, ge=1, le=10_000)
    ledger_retention_days: int = Field(
        default=30,
        ge=1,
        le=36_500,
        description="days a row of the write-back ledger syncd_writeback is kept once its "
        "approval is recorded as written back",
    )

    @model_validator(mode="after")
    def _poll(self) -> BusinessDatabaseSettings:
        if self.poll_min > self.poll_max:
            raise ValueError(
                f"poll_min ({self.poll_min}) must not exceed poll_max ({self.poll_max})"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _files(cls, data: Any) -> Any:
        return read_secret_files(data, ("dsn",))

    @field_validator("dsn")
    @classmethod
    def _url(cls, dsn: SecretStr) -> SecretStr:
        check_dsn(dsn.get_secret_value())
        return dsn

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        if zone.upper() == "UTC":
            return "+00:00"
        if not TIME_ZONE.match(zone):
            raise ValueError("must be an offset like +08:00 or +00:00 (or UTC)")
        return zone

    def plain(self, name: str) -> MySQLDatabase:
        """The values the App hands to the MySQL adapter."""
        return MySQLDatabase(
            name=name,
            dsn=self.dsn.get_secret_value(),
            pool_max_size=self.pool_max_size,
            connect_timeout=self.connect_timeout,
            statement_timeout=self.statement_timeout,
            lock_timeout=self.lock_timeout,
            time_zone=self.time_zone,
        )


#: Names no ``[databases.<name>]`` may take: ``syncd`` is syncd's own PostgreSQL in the
#: DBA views' and the metrics' ``database``, ``other`` a metric label's rest.
RESERVED_NAMES = frozenset({"syncd", "other"})


def check_names(databases: dict[str, BusinessDatabaseSettings]) -> None:
    for name in databases:
        if not DATABASE_NAME.match(name):
            raise ValueError(
                f"database name {name!r} must be lower-case letters, digits and _ (max 40)"
            )
        if name in RESERVED_NAMES:
            raise ValueError(
                f"database name {name!r} is reserved (`syncd` names syncd's own PostgreSQL "
                "in the DBA views and metrics): choose another name for [databases."
                f"{name}]"
            )


def check_kinds(kinds: dict[str, Any], databases: dict[str, BusinessDatabaseSettings]) -> None:
    """Every kind's ``database`` is declared."""
    for kind_name, kind in kinds.items():
        name = kind.database
        if name is not None and name not in databases:
            declared = ", ".join(sorted(databases)) or "none"
            raise ValueError(
                f"[kinds.{kind_name}] database = {name!r}, but no [databases.{name}] is "
                f"declared (declared: {declared}): add [databases.{name}] with "
                'dsn = "mysql://user:password@host:3306/database", or remove the database '
                "setting to use syncd's own PostgreSQL"
            )
