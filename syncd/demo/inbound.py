"""Leave requests started in DingTalk: the demo starts a few as people would, through the
simulator's admin API (``POST /_sim/instances``, what the page's "Start in DingTalk" form
sends), and reads the rows syncd imported into ``app.leave_from_dingtalk``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import psycopg

from syncd.demo.legacy_app import app_queries
from syncd.demo.world import LEAVE_IN
from syncd.errors import SyncdError

#: Who starts a leave in DingTalk during every run, and what: one the rules approve, one
#: they refuse (more than five days).
STARTS: tuple[tuple[str, str, int, str], ...] = (
    ("u2", "年假", 2, "回老家看看"),
    ("u5", "事假", 7, "装修房子"),
)
#: Imported rows the live view lists.
SHOWN = 3


def start_forms(today: date) -> list[tuple[str, list[dict[str, str]]]]:
    """The people and forms of :data:`STARTS`, their leave starting two weeks after ``today``."""
    forms = []
    for user_id, leave_type, days, reason in STARTS:
        start = today + timedelta(days=14)
        period = [start.isoformat(), (start + timedelta(days=days - 1)).isoformat()]
        values = {
            "请假类型": leave_type,
            '["开始时间","结束时间"]': json.dumps(period),
            "天数": str(days),
            "请假事由": reason,
        }
        forms.append((user_id, [{"name": k, "value": v} for k, v in values.items()]))
    return forms


async def start_in_dingtalk(simulator_url: str, today: date) -> list[str]:
    """Start :data:`STARTS` on the simulator as their people; the new instances' ids."""
    started = []
    async with httpx.AsyncClient(base_url=simulator_url, timeout=10.0) as http:
        for user_id, form in start_forms(today):
            body = {"processCode": LEAVE_IN, "userId": user_id, "formComponentValues": form}
            response = await http.post("/_sim/instances", json=body)
            if response.status_code != 201:
                raise SyncdError(
                    f"the simulator refused a leave started in DingTalk: {response.text}"
                )
            started.append(str(response.json()["instanceId"]))
    return started


@dataclass(frozen=True)
class Imported:
    """One row syncd imported, as the live view shows it."""

    id: int
    applicant: str
    leave_type: str
    days: str
    outcome: str

    def line(self) -> str:
        return (
            f"    #{self.id} {self.applicant} {self.leave_type} {self.days} d"
            f" → {self.outcome or 'waiting for a decision'}"
        )


async def imported_rows(conn: psycopg.AsyncConnection[dict[str, Any]]) -> list[Imported]:
    """The latest rows of ``app.leave_from_dingtalk``, newest first."""
    cursor = await conn.execute(app_queries()["select_leave_from_dingtalk"], {"limit": SHOWN})
    return [
        Imported(
            row["id"],
            row["applicant"] or "?",
            row["leave_type"] or "?",
            f"{row['days']:g}" if row["days"] is not None else "?",
            row["approval_status"] or "",
        )
        for row in await cursor.fetchall()
    ]
