"""kill -9 while a daemon imports instances started in DingTalk, with a restart after each:
one business row per instance, none missed, each decided one's outcome written once.

People start expense claims in DingTalk (the simulator, ``sim.start``) at a steady pace
for an inbound kind whose business table is in PostgreSQL, while a real ``syncd run`` is
killed with ``kill -9`` at drawn moments and restarted. The simulator slows each GET and
the proxy each database packet, so kills land between an import's GET and its commit.
Start events get lost: Stream gives up on an event after its first unacknowledged push
(``max_redeliveries = 0``), so an event pushed to a daemon that dies before it acks it
is gone, and twice the Stream goes silent while instances start; those instances are
found by the listing duty (every 2 s here). Some instances are approved or refused
during the run, before or after their import. The business table has no unique
constraint: a second import would show as a second row.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.roles import DAEMON

from .conftest import FaultEnv
from .harness import APPLICANTS, Fleet, Proxy, Report, query, rng, timed

PROCESS = "PROC-SIM-EXPENSE"
KIND = "expense_in"
STARTS = 30
LEASE = 11.0
TABLE = f"""
CREATE TABLE app.expense_in (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dingtalk_instance text NOT NULL,  -- no unique constraint: a second import would show
    amount numeric, category text, spent_on date, note text,
    applicant text, serial text, requested_at timestamptz,
    status text, approved_by text, decided_at timestamptz
);
CREATE TABLE app.expense_writes (
    dingtalk_instance text NOT NULL, status text,
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE FUNCTION app.expense_audit() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF (NEW.status, NEW.approved_by, NEW.decided_at) IS DISTINCT FROM
       (OLD.status, OLD.approved_by, OLD.decided_at) THEN
        INSERT INTO app.expense_writes (dingtalk_instance, status)
        VALUES (NEW.dingtalk_instance, NEW.status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER expense_audit AFTER UPDATE ON app.expense_in
    FOR EACH ROW EXECUTE FUNCTION app.expense_audit();
GRANT SELECT, INSERT ON app.expense_in TO {DAEMON};
GRANT UPDATE (status, approved_by, decided_at) ON app.expense_in TO {DAEMON};
"""
EXTRA = f"""
[kinds.{KIND}]
direction = "inbound"
process_code = "{PROCESS}"
[kinds.{KIND}.inbound]
table = "app.expense_in"
key_column = "dingtalk_instance"
columns = {{ amount = "金额（元）", category = "费用类型", spent_on = "发生日期", note = "说明" }}
[kinds.{KIND}.inbound.instance_columns]
applicant = "originator"
serial = "business_id"
requested_at = "created_at"
[kinds.{KIND}.write_back]
table = "app.expense_in"
key_column = "dingtalk_instance"
columns = {{ status = "status", approved_by = "approver", decided_at = "finished_at" }}
"""


class People:
    """Claims started in DingTalk at a steady pace, some decided as the run goes on."""

    def __init__(self, env: FaultEnv, draw: Any) -> None:
        self.env, self.draw = env, draw
        self.started: list[str] = []
        self.decided: dict[str, str] = {}  # instance id -> approved / rejected
        self.during_silence = 0

    def start(self) -> str:
        draw = self.draw
        amount = f"{draw.randint(1, 99999)}.{draw.randint(0, 99):02d}"
        spent = f"2026-{draw.randint(1, 12):02d}-{draw.randint(1, 28):02d}"
        form = [
            {"name": "金额（元）", "value": amount},
            {"name": "费用类型", "value": draw.choice(["差旅", "餐饮", "办公用品"])},
            {"name": "发生日期", "value": spent},
        ]
        if draw.random() < 0.7:
            form.append({"name": "说明", "value": draw.choice(["出差 ✈ 上海", "客户餐", "笔 x3"])})
        user = APPLICANTS[len(self.started) % 6]  # the people of the default world
        instance_id = self.env.sim.start(PROCESS, user, form).instance_id
        self.started.append(instance_id)
        return instance_id

    def decide_one(self) -> None:
        """An approver decides a running claim: refuses it, or all approvers agree."""
        open_ = [i for i in self.started if i not in self.decided]
        if not open_:
            return
        instance_id = self.draw.choice(open_)
        sim = self.env.sim
        if self.draw.random() < 0.5:
            sim.refuse(instance_id, remark="缺发票")
        while sim.instance(instance_id).status == "RUNNING":
            sim.approve(instance_id, remark="同意")
        agreed = sim.instance(instance_id).result == "agree"
        self.decided[instance_id] = "approved" if agreed else "rejected"

    async def run(self, seconds: float) -> None:
        """``STARTS`` claims over ``seconds``; two silent spells of Stream, a few each."""
        pace = seconds / STARTS
        silent_at = {STARTS // 3, 2 * STARTS // 3}
        for n in range(STARTS):
            silent = n in silent_at
            if silent:
                self.env.sim.faults.update(stream_silent=True)
            self.start()
            if silent:
                self.during_silence += 1
                self.start()  # a second one in the same silence
                self.during_silence += 1
            if n >= 2 and self.draw.random() < 0.4:
                self.decide_one()
            await asyncio.sleep(pace)
            if silent:
                self.env.sim.faults.update(stream_silent=False)


async def importing(env: FaultEnv, since: float) -> int:
    """How many queued instances the running daemon (started at ``since``, a wall-clock
    time) holds a lease on: claimed, GET or commit not done."""
    rows = await query(
        env.admin_dsn,
        "SELECT count(*) FROM syncd.inbound_import "
        " WHERE lease_expires_at > now() AND lease_expires_at >= to_timestamp(%s) + %s::interval",
        (since, f"{LEASE} s"),
    )
    return int(rows[0][0])


async def kill_while_importing(
    env: FaultEnv, fleet: Fleet, people: asyncio.Task[None], report: Report, draw: Any
) -> None:
    """Kills at drawn moments while people start claims, each followed by a restart."""
    while not people.done():
        since = time.time()
        await asyncio.sleep(draw.uniform(1.5, 4.0))
        if people.done():
            break
        in_flight = await importing(env, since - 1)
        await fleet.kill("a")
        report.kills_submitting += in_flight > 0
        report.faults["imports_in_flight_at_kills"] += in_flight
        await fleet.start("a")


async def wait_imported(env: FaultEnv, people: People, within: float) -> None:
    """A business row for every claim started, every decided one's outcome written."""
    seen: list[tuple[Any, ...]] = []
    decided = list(people.decided)
    try:
        async with asyncio.timeout(within):
            while True:
                seen = await query(
                    env.admin_dsn,
                    "SELECT (SELECT count(*) FROM app.expense_in), "
                    "       (SELECT count(*) FROM syncd.inbound_import), "
                    "       (SELECT count(*) FROM syncd.approval WHERE kind = %s "
                    "           AND instance_id = ANY(%s) AND written_back_at IS NOT NULL)",
                    (KIND, decided),
                )
                if seen[0] == (len(people.started), 0, len(decided)):
                    return
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(
            f"not imported in {within} s (rows, queued, decided written): {seen}, "
            f"want {len(people.started)} rows, {len(decided)} decided"
        ) from None


def minute(at: datetime | None) -> datetime | None:
    return at and at.replace(second=0, microsecond=0)


async def check_rows(env: FaultEnv, people: People, report: Report) -> None:
    """One row and one round per instance, each column as DingTalk records the
    instance, each decided outcome written exactly once and nothing else written."""
    rows = await query(
        env.admin_dsn,
        "SELECT dingtalk_instance, amount, category, spent_on, note, applicant, serial, "
        "       requested_at, status, approved_by, decided_at, "
        "       (SELECT count(*) FROM app.expense_writes w "
        "         WHERE w.dingtalk_instance = e.dingtalk_instance) "
        "  FROM app.expense_in e",
    )
    by_instance: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        assert row[0] not in by_instance, f"two business rows for {row[0]}"
        by_instance[row[0]] = row
    assert sorted(by_instance) == sorted(people.started)
    rounds = await query(
        env.admin_dsn,
        "SELECT business_key, count(*), min(state), bool_and(instance_id = business_key) "
        "  FROM syncd.approval WHERE kind = %s GROUP BY business_key",
        (KIND,),
    )
    assert sorted(r[0] for r in rounds) == sorted(people.started)
    assert [r for r in rounds if r[1] != 1 or not r[3]] == [], "a second round"
    states = {r[0]: r[2] for r in rounds}
    for instance_id, row in by_instance.items():
        instance = env.sim.instance(instance_id)
        form = {f["name"]: f["value"] for f in instance.form}
        want = [
            Decimal(form["金额（元）"]),
            form["费用类型"],
            date.fromisoformat(form["发生日期"]),
            form.get("说明") or None,
            instance.originator,
            instance.business_id,
            minute(instance.create_time),
        ]
        got = [*row[1:7], minute(row[7])]
        assert got == want, f"{instance_id}: row {got}, DingTalk {want}"
        status, approver, decided_at, writes = row[8:]
        outcome = people.decided.get(instance_id)
        if outcome is None:
            assert (states[instance_id], status, writes) == ("running", None, 0), instance_id
            continue
        approver_want, _ = instance.last_decision()
        assert (status, writes) == (outcome, 1), f"{instance_id}: {status} x{writes}"
        assert states[instance_id] == outcome
        assert approver == approver_want
        assert minute(decided_at) == minute(instance.finish_time)
    sources = await query(
        env.admin_dsn,
        "SELECT substring(e.message from 'imported from DingTalk \\((\\w+)\\)'), count(*) "
        "  FROM syncd.approval_event e JOIN syncd.approval a ON a.id = e.approval_id "
        " WHERE a.kind = %s AND e.message LIKE 'imported from DingTalk%%' GROUP BY 1",
        (KIND,),
    )
    report.faults["imported_by"] = {source: int(n) for source, n in sources}
    acked = {a["processInstanceId"] for a in env.sim.log.acknowledged if a.get("type") == "start"}
    report.faults["start_events_lost"] = sum(1 for i in people.started if i not in acked)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_kill_9_while_importing_makes_one_row_per_instance(fault_env: FaultEnv) -> None:
    env = fault_env
    report = Report("kill -9 while importing instances started in DingTalk, restart after each")
    report.faults["imports_in_flight_at_kills"] = 0
    draw = rng()
    await query(env.app_dsn, TABLE)
    env.sim.world.stream.max_redeliveries = 0  # an unacknowledged push is lost
    env.sim.faults.update(
        latency={"distribution": "uniform", "mean_ms": 300, "spread_ms": 200},
        endpoints=["workflow.get"],
    )
    people = People(env, draw)
    async with Proxy("127.0.0.1", env.pg.port) as proxy:
        proxy.delay = 0.002
        fleet = env.fleet(proxy.dsn(env.dsn), lease=LEASE, extra=EXTRA)
        config = fleet.config.read_text(encoding="utf-8")
        config = config.replace(
            "failed_list_interval = 10\n", "failed_list_interval = 10\ninbound_list_interval = 2\n"
        )
        config = config.replace("batch_size = 25", "batch_size = 4")
        fleet.config.write_text(config, encoding="utf-8")
        async with timed(report):
            await fleet.start("a")
            starting = asyncio.create_task(people.run(24.0))
            await kill_while_importing(env, fleet, starting, report, draw)
            await starting
            killed = time.monotonic()
            await wait_imported(env, people, 40)
            report.faults["after_last_start_s"] = round(time.monotonic() - killed, 1)
            assert await fleet.stop("a") == 0
    report.kills = fleet.kills
    report.approvals = len(people.started)
    report.instances = len(env.sim.instances(process_code=PROCESS))
    report.approved = sum(1 for o in people.decided.values() if o == "approved")
    report.rejected = sum(1 for o in people.decided.values() if o == "rejected")
    report.faults.update(
        get_latency_ms="100-500",
        db_packet_delay_ms=2,
        started_while_stream_silent=people.during_silence,
    )
    await check_rows(env, people, report)
    report.invariants = "hold"
    report.emit()
    assert report.instances == STARTS + 2
    assert report.kills >= 4
    assert report.kills_submitting >= 1, "no kill landed while an import was in flight"
    assert report.faults["imported_by"].get("listing", 0) >= 1, "the listing found nothing"
