"""``PostgresInboundStore``: instances of inbound kinds queued, imported or parked.

An import writes the business row (an INSERT of the mapped columns, or ``CALL
proc(business_key, instance)``) and syncd's round in one transaction. The round is
inserted first, ``ON CONFLICT DO NOTHING`` on its unique instance id: a second import of
the same instance (a duplicate event, another replica, a retry after a crash) waits for
the first to commit and then writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from syncd.db.queries import QUERIES
from syncd.db.store import BaseStore, Conn, history_line, jsonb
from syncd.domain import ApprovalRef, ApprovalState, CallRecord
from syncd.errors import ConfigError, StoreError
from syncd.ports.inbound import Imported, ImportItem, ImportRefused
from syncd.settings_inbound import InboundSettings

#: SQLSTATEs (or their classes) that say the business row cannot be written as mapped:
#: the import is parked; anything else (a lost connection, a deadlock) is tried again.
_REFUSALS = ("22", "23", "42P01", "42703", "42883", "42501", "P0001", "42804", "3F000")


def _name(qualified: str) -> sql.Identifier:
    return sql.Identifier(*qualified.split("."))


def instance_value(instance: Imported, field: str) -> Any:
    """One of ``instance_columns``' fields of ``instance``."""
    if field == "originator":
        return instance.originator
    return getattr(instance, field)


def form_value(instance: Imported, label: str) -> str | None:
    """A component's value as written: ``None`` when missing or empty."""
    value = instance.form.get(label)
    return value if value else None


class PostgresInboundStore(BaseStore):
    """Implements ``syncd.ports.inbound.InboundStore``."""

    def __init__(
        self, pool: Any, targets: Mapping[str, InboundSettings], *, actor: str,
        quiet_after: timedelta,
    ) -> None:  # fmt: skip
        super().__init__(pool, actor=actor)
        self.targets = dict(targets)
        self.quiet_after = quiet_after  # an imported round is polled after this

    async def check_targets(self) -> None:
        """Each inbound kind's table and mapped columns (or its procedure) exist; else a
        ``ConfigError`` naming every one that does not (at start, like the write-backs)."""
        problems: list[str] = []
        async with self.connection() as conn:
            for kind, target in sorted(self.targets.items()):
                problems += await _target_problems(conn, kind, target)
        if problems:
            raise ConfigError("\n".join(problems))

    async def queue(
        self, kind: str, process_code: str, instance_ids: Sequence[str], source: str, now: datetime
    ) -> int:
        async with self.connection() as conn:
            return await queue_ids(conn, kind, process_code, instance_ids, source, now)

    async def claim(
        self, limit: int, now: datetime, owner: str, lease_until: datetime
    ) -> list[ImportItem]:
        params = {"limit": limit, "now": now, "owner": owner, "lease_until": lease_until}
        return [ImportItem(**row) for row in await self.fetch_all("claim_inbound", params)]

    async def creates_in_doubt(self, process_code: str) -> bool:
        row = await self.fetch_one("inbound_creates_in_doubt", {"process_code": process_code})
        return bool(row and row["in_doubt"])

    async def release(self, item: ImportItem, owner: str, retry_at: datetime, error: str) -> None:
        params = {"instance_id": item.instance_id, "owner": owner, "error": error}
        await self._run("release_inbound", params | {"next_attempt_at": retry_at})

    async def drop(self, item: ImportItem) -> None:
        await self._run("drop_inbound", {"instance_id": item.instance_id})

    async def _run(self, name: str, params: dict[str, Any]) -> None:
        async with self.connection() as conn:
            await conn.execute(QUERIES[name], params)

    async def import_instance(
        self, item: ImportItem, instance: Imported, now: datetime, calls: Sequence[CallRecord]
    ) -> ApprovalRef | None:
        try:
            async with self.transaction() as conn:
                return await self._import(conn, item, instance, now, calls)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, psycopg.Error) and (cause.sqlstate or "").startswith(_REFUSALS):
                raise await self._refusal(instance, cause) from exc
            raise

    async def _import(
        self, conn: Conn, item: ImportItem, instance: Imported, now: datetime,
        calls: Sequence[CallRecord],
    ) -> ApprovalRef | None:  # fmt: skip
        params = _round(instance, now, state="running", error=None)
        params["next_poll_at"] = now + self.quiet_after
        row = await (await conn.execute(QUERIES["insert_inbound_approval"], params)).fetchone()
        await conn.execute(QUERIES["drop_inbound"], {"instance_id": item.instance_id})
        if row is None:
            return None  # known already: imported, or syncd's own create
        approval_id = int(row["id"])
        await conn.execute(QUERIES["begin_writeback"])
        await self._business_row(conn, instance)
        note = f"imported from DingTalk ({item.source}): instance {instance.instance_id}"
        transition = history_line(approval_id, to_state="running", message=note)
        await self.calls(conn, approval_id, now, calls, transition)
        return ApprovalRef(
            id=approval_id,
            kind=instance.kind,
            business_key=instance.instance_id,
            round=1,
            state=ApprovalState.RUNNING,
            instance_id=instance.instance_id,
            instance_created_at=instance.created_at,
        )

    async def _business_row(self, conn: Conn, instance: Imported) -> None:
        target = self.targets[instance.kind]
        values = await self._values(conn, target, instance)
        if target.procedure is not None:
            call = sql.SQL("CALL {}(%s, %s)").format(_name(target.procedure))
            await conn.execute(call, [instance.instance_id, jsonb(values)])
            return
        assert target.table is not None and target.key_column is not None
        columns = [target.key_column, *values]
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _name(target.table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        await conn.execute(insert, [instance.instance_id, *values.values()])

    async def _values(
        self, conn: Conn, target: InboundSettings, instance: Imported
    ) -> dict[str, Any]:
        """Column → value (a procedure gets the instance's fields and its whole form)."""
        originator = await self._originator(conn, target, instance)
        if target.procedure is not None:
            fields = {
                "instance_id": instance.instance_id,
                "business_id": instance.business_id,
                "title": instance.title,
                "originator": originator,
                "originator_user_id": instance.originator,
                "originator_dept_id": instance.originator_dept_id,
                "created_at": instance.created_at.isoformat() if instance.created_at else None,
            }
            return fields | {"form": instance.form}
        values: dict[str, Any] = {c: form_value(instance, lb) for c, lb in target.columns.items()}
        for column, field in target.instance_columns.items():
            value = originator if field == "originator" else instance_value(instance, field)
            values[column] = value
        return values

    async def _originator(
        self, conn: Conn, target: InboundSettings, instance: Imported
    ) -> str | None:
        if target.originator_by == "userid" or instance.originator is None:
            return instance.originator
        params = {"user_id": instance.originator}
        row = await (await conn.execute(QUERIES["inbound_person"], params)).fetchone()
        return None if row is None else row[target.originator_by]

    async def _refusal(self, instance: Imported, error: psycopg.Error) -> ImportRefused:
        """Why the business row was refused, naming the component and column if one is to
        blame (each value is cast to its column's type to find it)."""
        target = self.targets[instance.kind]
        detail = (error.diag.message_primary or str(error)).strip()
        where = f"instance {instance.instance_id} ({instance.kind})"
        if target.procedure is not None:
            return ImportRefused(f"{where}: {target.procedure} failed: {detail}")
        assert target.table is not None
        if error.sqlstate == "42P01":
            return ImportRefused(
                f"{where}: business table {target.table} does not exist", "no_business_table"
            )
        async with self.connection() as conn:
            for column, label in target.columns.items():
                value = form_value(instance, label)
                params = {"table": target.table, "column": column}
                row = await (await conn.execute(QUERIES["inbound_column_type"], params)).fetchone()
                if row is None or row["type"] is None:
                    return ImportRefused(
                        f"{where}: column {column} (for component {label!r}) does not exist "
                        f"in {target.table}"
                    )
                if value is None:
                    if error.sqlstate == "23502" and error.diag.column_name == column:
                        return ImportRefused(
                            f"{where}: component {label!r} is empty or missing, and column "
                            f"{column} of {target.table} is NOT NULL"
                        )
                    continue
                try:
                    async with conn.transaction():
                        cast = sql.SQL("SELECT CAST(%s AS {})").format(sql.SQL(row["type"]))
                        await conn.execute(cast, [value])
                except psycopg.Error as exc:
                    reason = (exc.diag.message_primary or str(exc)).strip()
                    return ImportRefused(
                        f"{where}: component {label!r} = {value[:80]!r} does not fit column "
                        f"{column} ({row['type']}) of {target.table}: {reason}"
                    )
        return ImportRefused(f"{where}: writing {target.table} failed: {detail}")

    async def park(
        self, item: ImportItem, instance: Imported, now: datetime,
        calls: Sequence[CallRecord], error: ImportRefused,
    ) -> None:  # fmt: skip
        params = _round(instance, now, state="invalid", error=("inbound_refused", error.message))
        async with self.transaction() as conn:
            row = await (await conn.execute(QUERIES["insert_inbound_approval"], params)).fetchone()
            await conn.execute(QUERIES["drop_inbound"], {"instance_id": item.instance_id})
            if row is not None:
                line = history_line(int(row["id"]), to_state="invalid", message=error.message)
                await self.calls(conn, int(row["id"]), now, calls, line)


def _round(
    instance: Imported, now: datetime, *, state: str, error: tuple[str, str] | None
) -> dict[str, Any]:
    code, message = error or (None, None)
    return {
        "kind": instance.kind,
        "business_key": instance.instance_id,
        "state": state,
        "process_code": instance.process_code,
        "originator": instance.originator,
        "form_values": jsonb(instance.form),
        "instance_id": instance.instance_id,
        "business_id": instance.business_id,
        "created_at": instance.created_at,
        "next_poll_at": None,
        "error_code": code,
        "error_message": message,
        "now": now,
    }


async def _target_problems(conn: Conn, kind: str, target: InboundSettings) -> list[str]:
    where = f"[kinds.{kind}.inbound]"
    if target.procedure is not None:
        schema, _, name = target.procedure.rpartition(".")
        params = {"name": name, "schema": schema or None}
        row = await (await conn.execute(QUERIES["inbound_procedure_exists"], params)).fetchone()
        ok = row is not None and row["present"]
        return [] if ok else [f"{where} procedure {target.procedure} does not exist"]
    assert target.table is not None and target.key_column is not None
    params = {"table": target.table}
    row = await (await conn.execute(QUERIES["inbound_table_exists"], params)).fetchone()
    if row is None or not row["present"]:
        return [f"{where} table {target.table} does not exist (or syncd's role cannot see it)"]
    problems = []
    for column in (target.key_column, *target.columns, *target.instance_columns):
        query = QUERIES["inbound_column_type"]
        found = await (await conn.execute(query, params | {"column": column})).fetchone()
        if found is None:
            problems.append(f"{where} table {target.table} has no column {column}")
    return problems


async def queue_ids(
    conn: Conn, kind: str, process_code: str, ids: Sequence[str], source: str, now: datetime
) -> int:
    """Queue the ids syncd neither knows nor has queued (on ``conn``); how many were new."""
    params = {"kind": kind, "process_code": process_code, "source": source, "now": now}
    cursor = await conn.execute(QUERIES["queue_inbound"], params | {"instance_ids": list(ids)})
    return max(cursor.rowcount, 0)
