"""What syncd's MySQL user needs in a business database, as GRANT statements.

docs/mysql.md shows them for ``'syncd'@'%'``; the tests give exactly these to the user
the daemon logs in as, and nothing more. Run them as a user who may grant (the DBA),
after ``syncd migrate --database NAME`` (MySQL grants on a table only once it exists).
"""

from __future__ import annotations

from syncd.settings_kinds import WriteBackSettings

#: syncd's footprint: the outbox it reads, marks and purges; the ledger and the key
#: versions of the write-back; the migration versions it checks at start.
FOOTPRINT = {
    "syncd_schema_migrations": "SELECT",
    "syncd_outbox": "SELECT, UPDATE, DELETE",
    "syncd_writeback": "SELECT, INSERT, UPDATE, DELETE",
    "syncd_writeback_key": "SELECT, INSERT, UPDATE",
}


def _quoted(name: str) -> str:
    return ".".join(f"`{part}`" for part in name.split("."))


def footprint_grants(account: str) -> list[str]:
    """The grants on syncd's own tables (in the session's database)."""
    return [f"GRANT {what} ON `{table}` TO {account}" for table, what in FOOTPRINT.items()]


def write_back_grants(account: str, config: WriteBackSettings) -> list[str]:
    """One kind's write-back: reading the key column and updating the mapped columns of
    its table, or executing its procedure."""
    if config.procedure is not None:
        return [f"GRANT EXECUTE ON PROCEDURE {_quoted(config.procedure)} TO {account}"]
    assert config.table is not None and config.key_column is not None
    columns = ", ".join(f"`{column}`" for column in config.columns)
    return [
        f"GRANT SELECT (`{config.key_column}`), UPDATE ({columns}) ON {_quoted(config.table)} "
        f"TO {account}"
    ]
