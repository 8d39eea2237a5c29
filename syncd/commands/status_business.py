"""``syncd status`` on business databases: each relayed outbox's rows not relayed yet."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from syncd.app_relay import relay_databases
from syncd.commands.operator import age
from syncd.settings import Settings


async def business_backlogs(settings: Settings, now: datetime) -> dict[str, Any]:
    """Per business database whose outbox is relayed: its rows not relayed yet, or why
    they could not be counted."""
    names = relay_databases(settings)
    if not names:
        return {}
    from syncd.db.business import outbox_backlogs

    found = await outbox_backlogs(settings, names)
    for entry in found.values():
        oldest = entry.get("oldest_at")
        entry["age_seconds"] = None if oldest is None else int((now - oldest).total_seconds())
    return found


def database_attention(databases: dict[str, Any], too_long: timedelta) -> list[str]:
    """What needs attention: a database syncd cannot reach, or rows waiting ``too_long``."""
    notes = []
    for name, entry in databases.items():
        if "error" in entry:
            notes.append(f"business database {name}: {entry['error']}")
        elif (entry["age_seconds"] or 0) > too_long.total_seconds():
            notes.append(
                f"business database {name}: {entry['waiting']} outbox rows not relayed, the "
                f"oldest for {age(timedelta(seconds=entry['age_seconds']))}: is the daemon "
                "running?"
            )
    return notes


def database_lines(databases: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in databases.items():
        if "error" in entry:
            lines.append(f"business database {name}: cannot count its outbox ({entry['error']})")
        elif entry["waiting"]:
            lines.append(
                f"business database {name}: {entry['waiting']} outbox rows not relayed yet "
                f"(oldest {age(timedelta(seconds=entry['age_seconds'] or 0))})"
            )
    return lines
