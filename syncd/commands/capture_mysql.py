"""``syncd capture … --database NAME``: the same commands on a MySQL/MariaDB business
database (docs/mysql.md); ``syncd.commands.capture`` hands over when ``--database`` is given."""

from __future__ import annotations

import argparse
from typing import Any

from syncd.commands.common import business_database, out
from syncd.db.mysql.url import require_driver


async def run(args: argparse.Namespace, action: str) -> int:
    database = business_database(args)
    require_driver()
    from syncd.db.mysql import capture
    from syncd.db.mysql.capture_ddl import MySQLCaptureSpec, events, trigger_name
    from syncd.db.mysql.migrations import opened

    async with opened(database) as engine:
        if action == "list":
            _print(await capture.list_captures(engine))
            return 0
        if action == "remove":
            await capture.remove(engine, args.kind, args.table)
            out(f"capture of kind {args.kind} removed from {args.table}")
            return 0
        spec = MySQLCaptureSpec(args.kind, args.table, args.key, args.when, args.cancel_when)
        if action == "sql":
            out(await capture.review(engine, spec, database.time_zone))
            return 0
        await capture.install(engine, spec, database.time_zone)
    names = ", ".join(trigger_name(spec.kind, e) for e in events(spec))
    out(f"capture triggers ({names}) installed on {args.table}")
    return 0


def _print(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out("no capture triggers installed")
    for row in rows:
        missing = row["missing"]
        state = f"  (TRIGGER MISSING: {', '.join(missing)}; re-run capture add)"
        out(
            f"{row['kind']}: {row['schema']}.{row['table']} key={row['key']}"
            f" when={row['when'] or 'on insert'}"
            + (f" cancel_when={row['cancel_when']}" if row["cancel_when"] else "")
            + (state if missing else "")
        )
