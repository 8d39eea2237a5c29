"""A month of simulated life, in minutes: DingTalk calls per approval, by endpoint.

The daemon runs in process on an injected clock (:class:`syncd.testing.FakeClock`, shared
with the simulator), on an embedded PostgreSQL, with the simulator behind httpx's ASGI
transport: nothing waits for the wall clock. Over one DingTalk month (China time):

- ``--approvals`` leave requests are submitted at random moments of the working days
  (Monday to Friday, 9:00 to 18:00);
- each of the template's two approval nodes is decided by a person hours later (drawn
  from a log-normal: median ``--decision-hours``), ``--refuse`` of them refused at the
  first node;
- events come back as HTTP callbacks into the daemon's own receiver; ``--lost`` of them
  are lost for good (neither pushed nor listed: only polling finds those outcomes), and
  the receiver is unreachable for ``--outage-hours`` once mid-month, so DingTalk lists
  that stretch's events as failed pushes for the sweeper;
- tokens expire every two hours; the poller, the failed-push sweep and the directory's
  full re-syncs run on their schedules (settings as shipped), the month's quota
  ``--quota``.

Every call is counted twice: by the simulator, per endpoint (what DingTalk would count),
and by syncd in ``syncd.usage``, per purpose. The result (``bench/results/<name>.json``)
holds the daily counts as raw samples.

    python -m bench.month                      # 8,000 approvals, a 10,000-call tenant
    python -m bench.month --approvals 800 --days 7 --name month-short
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.harness import APP_KEY, APP_SECRET, bench, log, save, summary
from syncd.app import App
from syncd.dingtalk.endpoints import ENDPOINTS
from syncd.dingtalk.pacing import MemoryPacer
from syncd.domain import DINGTALK_TZ
from syncd.runner import Runner
from syncd.settings import Settings
from syncd.simulator import Simulator, World
from syncd.simulator.events import Event, failed_item
from syncd.simulator.world import App as SimApp
from syncd.testing import FakeClock

TICK = 300.0  # the schedule's beat: the failed-push sweep's interval, a drain
CALLBACK = {
    "enabled": True,
    "token": "simtoken123",
    "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}
#: Endpoint name (syncd's label) by the simulator's name for it.
BY_API = {e.api: e.name for e in ENDPOINTS}
METERED = {e.name for e in ENDPOINTS if e.metered}
#: Purposes spent per approval (the rest is the month's fixed overhead or polling).
PER_APPROVAL = ("create", "confirm", "reconcile", "cancel", "comment", "lookup", "attach")
POLLING = ("poll", "inbound_list")


def submit_times(rng: random.Random, start: datetime, days: int, count: int) -> list[datetime]:
    """``count`` moments in the working hours of the working days from ``start``."""
    workdays = [
        start + timedelta(days=d) for d in range(days) if (start + timedelta(days=d)).weekday() < 5
    ]
    moments = [
        rng.choice(workdays) + timedelta(hours=9, seconds=rng.uniform(0, 9 * 3600))
        for _ in range(count)
    ]
    return sorted(moments)


class Month:
    def __init__(self, args: argparse.Namespace, dsn: str) -> None:
        self.args = args
        self.dsn = dsn
        self.rng = random.Random(args.seed)
        local = datetime(2026, 3, 1, tzinfo=DINGTALK_TZ)  # a month of 22 working days
        self.start = local
        self.end = local + timedelta(days=args.days)
        self.clock = FakeClock(local.astimezone(UTC))
        world = World.default().model_copy(deep=True)
        world.rules = []  # people decide, hours later
        world.limits.monthly_quota = args.quota or None
        world.faults.seed = args.seed
        self.sim = Simulator(world, clock=self.clock)
        self.loss: Counter[str] = Counter()
        self.outage = (
            local + timedelta(days=args.days // 2, hours=10),
            local + timedelta(days=args.days // 2, hours=10 + args.outage_hours),
        )
        self.scheduled: set[str] = set()
        self.decided: dict[str, datetime] = {}

    def settings(self) -> Settings:
        return Settings(
            database={"dsn": self.dsn},
            dingtalk={
                "app_key": APP_KEY,
                "app_secret": APP_SECRET,
                "monthly_quota": self.args.quota,
            },
            kinds={"leave": _leave_kind()},
            events={"stream": False, "callback": CALLBACK},
            directory={"enabled": self.args.directory},  # full re-syncs on their schedule
        )

    # --- DingTalk's side ------------------------------------------------------------------

    def lossy(self, push: Any) -> Any:
        """Wrap the simulator's push: some events lost for good, an outage's listed."""

        async def lossy_push(app: SimApp, event: Event, attempt: int = 0) -> None:
            if attempt == 0:
                now = self.clock.now()
                if self.rng.random() < self.args.lost:
                    self.loss[f"lost {event.event_type}"] += 1
                    return
                if self.outage[0] <= now < self.outage[1]:
                    # three pushes fail: DingTalk lists the event (contract §9.7)
                    self.sim.callbacks.failed.setdefault(app.app_key, []).append(failed_item(event))
                    self.loss["listed as failed"] += 1
                    return
            await push(app, event, attempt)

        return lossy_push

    def decide_new_instances(self) -> None:
        """Give each new instance's nodes their people's decisions, hours apart."""
        for instance in self.sim.instances():
            if instance.instance_id in self.scheduled:
                continue
            self.scheduled.add(instance.instance_id)
            self._next_decision(instance.instance_id, first=True)

    def _next_decision(self, instance_id: str, *, first: bool) -> None:
        hours = self.rng.lognormvariate(math.log(self.args.decision_hours), 1.0)
        delay = min(hours, 5 * 24) * 3600
        refuse = first and self.rng.random() < self.args.refuse

        async def decide() -> None:
            instance = self.sim.instance(instance_id)
            if instance.status != "RUNNING":
                return
            if refuse:
                self.sim.refuse(instance_id, remark="not now")
            else:
                self.sim.approve(instance_id)
            if instance.status == "RUNNING":
                self._next_decision(instance_id, first=False)
            else:
                self.decided[instance_id] = self.clock.now()

        self.sim.timeline.at(delay, f"decide {instance_id}", decide)

    def endpoint_calls(self) -> dict[str, int]:
        return {BY_API.get(api, api): n for api, n in sorted(self.sim.calls.items())}

    # --- the month ------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        args = self.args
        moments = submit_times(self.rng, self.start, args.days, args.approvals)
        self.sim.callbacks.push = self.lossy(self.sim.callbacks.push)  # type: ignore[method-assign]

        async def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        settings = self.settings()  # paced as shipped (15/s), on the simulated clock
        pacer = MemoryPacer(clock=self.clock, rate=settings.dingtalk.rate_per_second, sleep=sleep)
        app = App(
            settings,
            clock=self.clock,
            transport=httpx.ASGITransport(app=self.sim.app),
            pacer=pacer,
        )
        daily: list[dict[str, Any]] = []
        started = time.perf_counter()
        async with Runner(app) as daemon:
            receiver = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=daemon.app.http_app()), base_url="http://syncd"
            )
            self.sim.callbacks.set_client(receiver)
            self.sim.callbacks.set_url(APP_KEY, "http://syncd/dingtalk/callback")
            submitted, day_start = 0, self.clock.now()
            before = Counter(self.endpoint_calls())
            while self.clock.now() < self.end:
                now = self.clock.now()
                due = 0
                while submitted + due < len(moments) and moments[submitted + due] <= now:
                    due += 1
                if due:
                    self._submit(due)
                    submitted += due
                await daemon.drain()
                self.decide_new_instances()
                await daemon.sweep(backoff=TICK)
                if daemon.app.directory_schedule is not None:
                    await daemon.app.directory_schedule.run_due()  # the duty's tick, in line
                await self.sim.advance(TICK)
                if self.clock.now() - day_start >= timedelta(days=1):
                    after = Counter(self.endpoint_calls())
                    day = {
                        "day": day_start.astimezone(DINGTALK_TZ).date().isoformat(),
                        "submitted": submitted,
                        "calls": dict(after - before),
                        **self._states(),
                    }
                    daily.append(day)
                    log(f"{day['day']}: {submitted} submitted, calls {dict(after - before)}")
                    before, day_start = after, self.clock.now()
            # the month's figures as they stood at its end (a drain now would spend the
            # next month's polling budget, and its pacing moves the clock)
            usage = await daemon.app.control.usage(self.end - timedelta(seconds=1))
            calls = self.endpoint_calls()
            await receiver.aclose()
        return self._result(daily, usage, calls, time.perf_counter() - started)

    def _delays(self) -> list[float]:
        """Seconds from each decision in DingTalk to its outcome written back, this month."""
        from bench.harness import sql

        rows = sql(
            self.dsn,
            "SELECT instance_id, written_back_at FROM syncd.approval "
            "WHERE written_back_at IS NOT NULL",
        )
        written = {str(i): at for i, at in rows}
        return sorted(
            (written[i] - at).total_seconds() for i, at in self.decided.items() if i in written
        )

    def _submit(self, count: int) -> None:
        from bench.harness import sql

        sql(
            self.dsn,
            "INSERT INTO app.leave_request (applicant, days, reason, status) "
            "SELECT 'u' || (1 + g %% 6), 1 + g %% 3, 'rest ' || g, 'submitted' "
            "FROM generate_series(1, %s) g",
            (count,),
        )

    def _states(self) -> dict[str, Any]:
        from bench.harness import sql

        rows = sql(self.dsn, "SELECT state, count(*) FROM syncd.approval GROUP BY state")
        states = {str(s): int(n) for s, n in rows}
        finished_in_dingtalk = sum(
            1 for i in self.sim.instances() if i.status in ("COMPLETED", "TERMINATED")
        )
        final = sum(n for s, n in states.items() if s in ("approved", "rejected", "canceled"))
        return {
            "states": states,
            "final_in_dingtalk": finished_in_dingtalk,
            "final_in_syncd": final,
            "outcomes_not_yet_known": finished_in_dingtalk - final,
        }

    def _result(
        self, daily: list[dict[str, Any]], usage: dict[str, int], calls: dict[str, int], wall: float
    ) -> dict[str, Any]:
        args = self.args
        delays = self._delays()
        approvals = int(self._states()["states"].get("running", 0)) + sum(
            n for s, n in self._states()["states"].items() if s != "running"
        )
        per_approval = sum(usage.get(p, 0) for p in PER_APPROVAL)
        polling = sum(usage.get(p, 0) for p in POLLING)
        overhead = {p: n for p, n in usage.items() if p not in (*PER_APPROVAL, *POLLING)}
        metered = sum(n for e, n in calls.items() if e in METERED)
        return {
            "parameters": {
                "approvals": args.approvals,
                "days": args.days,
                "decision_hours_median": args.decision_hours,
                "refused_share": args.refuse,
                "events_lost_share": args.lost,
                "outage_hours": args.outage_hours,
                "directory": args.directory,
                "quota": args.quota,
                "seed": args.seed,
                "events": "HTTP callbacks (in process); Stream mode has no failed-push sweep",
                "polling": self.settings().polling.model_dump(),
            },
            "wall_seconds": wall,
            "approvals": approvals,
            "calls_by_endpoint": calls,
            "metered_endpoints": sorted(METERED),
            "per_approval_purposes": list(PER_APPROVAL),
            "metered_calls": metered,
            "usage_by_purpose": dict(sorted(usage.items())),
            "per_approval_calls": per_approval,
            "per_approval": per_approval / approvals if approvals else None,
            "polling_calls": polling,
            "fixed_overhead": overhead,
            "fixed_overhead_calls": sum(overhead.values()),
            "token_calls": calls.get("token", 0),
            "events_lost_or_listed": dict(self.loss),
            "end": self._states(),
            "decision_to_written": {
                **summary(delays),
                "over_an_hour": sum(1 for d in delays if d > 3600),
                "seconds": [round(d, 1) for d in delays],
            },
            "daily": daily,
        }


def _leave_kind() -> dict[str, Any]:
    from syncd.demo.config import KINDS

    return dict(KINDS["leave"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--approvals", type=int, default=8000)
    parser.add_argument("--days", type=int, default=31, help="length of the month")
    parser.add_argument("--decision-hours", type=float, default=2.0, help="median per node")
    parser.add_argument("--refuse", type=float, default=0.05)
    parser.add_argument("--lost", type=float, default=0.03, help="share of events lost")
    parser.add_argument("--outage-hours", type=float, default=1.0)
    parser.add_argument("--quota", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--name", default="month")
    parser.add_argument(
        "--no-directory", dest="directory", action="store_false", help="no directory syncs"
    )
    args = parser.parse_args()
    with bench() as b:
        result = asyncio.run(Month(args, b.dsn).run())
    save(args.name, result)
    log(
        f"{result['approvals']} approvals: {result['per_approval']:.3f} calls each; "
        f"polling {result['polling_calls']}; overhead {result['fixed_overhead']}; "
        f"metered {result['metered_calls']} of {args.quota}; {result['wall_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
