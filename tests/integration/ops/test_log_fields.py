"""Every JSON log line about one approval names it the same way: ``approval_id``, ``kind``
and ``business_key``; every line about one outbox row: ``outbox_id``, ``kind`` and
``business_key``. A drain through retries, a lost create, parked rows, outcomes and a
failed write-back writes them all."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from syncd.logging import JsonFormatter, RedactingHandler

APPROVAL = ("approval_id", "kind", "business_key")
OUTBOX = ("outbox_id", "kind", "business_key")


@contextmanager
def json_lines() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines syncd logs meanwhile (every level), parsed."""
    stream, lines = io.StringIO(), list[dict[str, Any]]()
    handler = RedactingHandler(stream, [])
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines += [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_every_line_about_an_approval_or_outbox_row_names_it(env):
    settings = env.settings(events={"stream": False})
    keys = [env.submit_leave(days=d) for d in (1, 2, 3)]
    env.app_sql("INSERT INTO syncd.outbox (kind, business_key) VALUES ('no_such_kind', 'x1')")
    env.app_sql("INSERT INTO syncd.outbox (kind, business_key, payload) VALUES ('leave', 'b', '1')")
    with json_lines() as lines:
        async with env.daemon(settings) as daemon:
            env.sim.faults.update(error_5xx_rate=1.0, endpoints=["workflow.create"])
            await daemon.drain()  # every create fails (500: unknown outcome)
            env.sim.faults.update(error_5xx_rate=0.0, create_response_lost_rate=1.0)
            env.clock.advance(3600)
            await daemon.drain()  # none was created: again, and the answers are lost
            env.sim.faults.update(create_response_lost_rate=0.0)
            env.clock.advance(3600)
            await daemon.drain()
            env.app_sql("DELETE FROM app.leave_request WHERE id = %s", keys[0])
            [(instance,)] = env.sql(
                "SELECT instance_id FROM syncd.approval WHERE business_key = %s", str(keys[1])
            )
            env.sim.refuse(instance, remark="no")
            await env.advance(120)
            await daemon.drain()  # outcomes; one business row is gone
            await env.advance(600)
            await daemon.drain()  # its write-back is retried, and fails again
    actions = {line.get("action") for line in lines}
    expected = {"push_unknown", "reconcile_retry", "reconcile_adopted", "ingest_invalid"}
    assert expected | {"writeback_done", "writeback_failed"} <= actions
    assert any(line["message"] == "write-back retried" for line in lines)
    unnamed = [
        line
        for line in lines
        if ("approval_id" in line and not all(line.get(f) for f in APPROVAL))
        or ("outbox_id" in line and not all(line.get(f) for f in OUTBOX))
        or ("business_key" in line and not ("approval_id" in line or "outbox_id" in line))
    ]
    assert unnamed == []
    named = [line for line in lines if "approval_id" in line]
    assert {line["business_key"] for line in named} >= {str(k) for k in keys}
