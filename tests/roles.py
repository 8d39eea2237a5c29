"""Database roles in tests: syncd's shipped roles, and login roles of each test's own.

Roles belong to the whole server, and every test database shares it. ``roles.sql``
(idempotent) creates ``syncd_owner``, ``syncd_daemon``, ``syncd_application`` and
``syncd_capture``; a test never logs in as one of them, nor changes one (no password,
no attribute): it logs in through login roles of its own (a unique name, a per-test
password) that are members of the shared role and have it as their session role, so
``current_user`` is exactly ``syncd_owner`` or ``syncd_daemon`` and what the owner
creates belongs to ``syncd_owner``. An application's login role is different: it is the
role that owns the application's schema and tables, as an application's role does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
ROLES_SQL = ROOT / "deploy" / "sql" / "roles.sql"
GRANTS_SQL = ROOT / "deploy" / "sql" / "least_privilege.sql"
DAEMON = "syncd_daemon"
OWNER = "syncd_owner"
APPLICATION = "syncd_application"


def create_roles(admin: str) -> None:
    """``deploy/sql/roles.sql`` as the superuser, in the database of ``admin``."""
    with psycopg.connect(admin, autocommit=True) as conn:
        # Test sessions sharing one server (SYNCD_TEST_DSN, pytest -n) take turns: roles
        # are cluster-wide, and two "create unless it exists" at once would collide.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('syncd tests: roles'))")
            conn.execute(ROLES_SQL.read_text(encoding="utf-8"))


def create_login(
    admin: str,
    name: str,
    *,
    acts_as: str | None = None,
    member_of: Iterable[str] = (),
    password: str | None = None,
) -> str:
    """The login role ``name`` (no superuser, no other attribute); returns its DSN for the
    database of ``admin``. With ``acts_as`` it is a member of that role and sets it as its
    session role; ``member_of`` adds memberships that keep it itself (``current_user``)."""
    password = password or secrets.token_urlsafe(16)
    ident = sql.Identifier(name)
    groups = [*([acts_as] if acts_as else []), *member_of]
    create = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
    statement: sql.Composed = create.format(ident, sql.Literal(password))
    if groups:
        statement = sql.SQL("{} IN ROLE {}").format(
            statement, sql.SQL(", ").join(map(sql.Identifier, groups))
        )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)
        if acts_as:
            conn.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(ident, sql.Literal(acts_as)))
    return psycopg.conninfo.make_conninfo(admin, user=name, password=password)


def drop_logins(admin: str, names: Iterable[str]) -> None:
    """Drop login roles made by :func:`create_login`, once their databases are gone (what
    they own elsewhere goes with the database; in ``admin``'s database it is dropped)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def grant_on_database(admin: str, privileges: str, role: str) -> None:
    """``GRANT privileges ON DATABASE`` (the one of ``admin``) ``TO role``, as a DBA."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
                sql.SQL(privileges), sql.Identifier(conn.info.dbname), sql.Identifier(role)
            )
        )


def user_of(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn)["user"])


def installer_grants(role: str) -> sql.Composed:
    """What docs/security.md ("Who may run capture add") tells a DBA to grant a role
    that owns its table and runs ``syncd capture add`` on it."""
    return sql.SQL(
        "GRANT USAGE ON SCHEMA syncd TO {role};"
        "GRANT EXECUTE ON FUNCTION syncd.capture_row() TO {role};"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON syncd.capture TO {role};"
    ).format(role=sql.Identifier(role))


def _qualified(name: str) -> sql.Identifier:
    schema, _, table = name.rpartition(".")
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def write_back_grants(kinds: Mapping[str, Mapping[str, Any]]) -> sql.Composed:
    """What a business table's DBA grants ``syncd_daemon`` for these kinds' write-backs
    (deploy/sql/least_privilege.sql, docs/security.md): USAGE on the schema, SELECT on
    the key column and UPDATE on the mapped columns only; or EXECUTE on the procedure,
    taken from PUBLIC (it runs as its owner)."""
    statements: list[sql.Composable] = []
    daemon = sql.Identifier(DAEMON)
    for kind in kinds.values():
        write_back = kind["write_back"]
        name = write_back.get("procedure") or write_back["table"]
        schema = name.rpartition(".")[0] or "public"
        statements.append(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), daemon)
        )
        if write_back.get("procedure"):
            procedure = sql.SQL("PROCEDURE {}(text, jsonb)").format(_qualified(name))
            statements.append(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(procedure))
            statements.append(sql.SQL("GRANT EXECUTE ON {} TO {}").format(procedure, daemon))
            continue
        statements.append(
            sql.SQL("GRANT SELECT ({}), UPDATE ({}) ON {} TO {}").format(
                sql.Identifier(write_back["key_column"]),
                sql.SQL(", ").join(map(sql.Identifier, write_back["columns"])),
                _qualified(name),
                daemon,
            )
        )
    return sql.SQL(";").join(statements)
