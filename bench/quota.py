"""Quota: the sustained create rate under DingTalk's 20 requests/s per API, and throttling.

``python -m bench.quota --backlog 1000 --runs 3`` runs, each on a fresh database and a
simulator limiting every API to 20 requests per second (sliding one-second window, as
DingTalk counts): 1 and 3 replicas of ``syncd run`` sharing one PostgreSQL at
``rate_per_second = 20`` (the default), alternating the order of the two from run to
run. It reports the sustained create rate (creates between the 10th and the 90th
percentile of the run, divided by the time between them) as a share of the limit, the
creates DingTalk refused with the QPS code, and the tightest spacing DingTalk saw: the
shortest time spanned by 21 consecutive creates (over 1 s means no window held more
than 20) and the calls syncd's pacer sent again for waking late (``pacing_slot_retaken``
in the daemons' logs).

The neighbour phase (``--neighbour 5``): from the 200th written approval, another program
creates instances with the same app at a steady 5/s for ``--neighbour-seconds``, never
backing off, so syncd is throttled and must settle on what is left. The per-second
curve of accepted and throttled creates of syncd and of the neighbour goes into the
result (and ``bench.plots``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import APP_KEY, APP_SECRET, Bench, bench, log, save, wait_until
from syncd.dingtalk import endpoints
from syncd.dingtalk.calls import error_of, send
from syncd.dingtalk.client import build_http_client
from syncd.dingtalk.models import CreateInstanceRequest
from syncd.dingtalk.models import FormComponentValue as Value

LIMIT = 20
WRITTEN = "SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL"
NEIGHBOUR_REQUEST = CreateInstanceRequest(
    process_code="PROC-SIM-LEAVE",
    originator_user_id="u1",
    dept_id=-1,
    form_component_values=[
        Value(name="请假类型", value="年假"),
        Value(name='["开始时间","结束时间"]', value='["2025-01-01","2025-01-02"]'),
        Value(name="天数", value="1"),
    ],
)


class Neighbour(threading.Thread):
    """Another program on the same app: creates at a steady rate, never backing off."""

    def __init__(self, sim_url: str, rate: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.sim_url, self.rate, self.seconds = sim_url, rate, seconds
        self.accepted: list[float] = []
        self.throttled: list[float] = []
        self.ids: set[str] = set()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        http = build_http_client(APP_KEY, APP_SECRET, base_url=self.sim_url)
        body = NEIGHBOUR_REQUEST.to_wire()
        start = time.monotonic()
        async with http:
            for n in range(int(self.rate * self.seconds)):
                await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
                response = await send(http, endpoints.CREATE, json=body)
                if error_of(response) is None:
                    self.accepted.append(time.time())
                    self.ids.add(response.json()["instanceId"])
                else:
                    self.throttled.append(time.time())


def min_span(times: list[float], calls: int = LIMIT + 1) -> float | None:
    """The shortest time ``calls`` consecutive calls spanned."""
    if len(times) < calls:
        return None
    return min(b - a for a, b in zip(times, times[calls - 1 :], strict=False))


def per_second(times: list[float], start: float, seconds: int) -> list[int]:
    counts = Counter(int(t - start) for t in times if t >= start)
    return [counts.get(s, 0) for s in range(seconds)]


def retaken(b: Bench) -> int:
    """Calls the daemons' pacers sent again for waking late (their logs)."""
    return sum(
        path.read_text(errors="replace").count("pacing_slot_retaken")
        for path in Path(b.work).glob("*.log")
    )


def phase(
    replicas: int, rate: float, backlog: int, neighbour: float = 0.0, seconds: float = 60.0
) -> dict[str, Any]:
    other: Neighbour | None = None
    with bench() as b:
        b.submit(backlog)
        sim, sim_url = b.simulator(rule_delay=0.0, qps=LIMIT)
        daemons = [
            b.daemon(b.config(sim_url, name=f"replica-{n}", rate=rate), name=f"replica-{n}")
            for n in range(replicas)
        ]
        if neighbour:
            wait_until(lambda: b.sql(WRITTEN)[0][0] >= 200, timeout=120, every=0.2)
            other = Neighbour(sim_url, neighbour, seconds)
            other.start()
        wait_until(lambda: b.sql(WRITTEN)[0][0] >= backlog, timeout=backlog / 5 + 60, every=1.0)
        if other is not None:
            other.join()
        [(written,)] = b.sql(WRITTEN)
        throttled_at = [
            float(t)
            for (t,) in b.sql(
                "SELECT extract(epoch FROM at) FROM syncd.approval_event "
                "WHERE event_type = 'call' AND code LIKE 'Forbidden.AccessDenied.Qps%%' "
                "ORDER BY at"
            )
        ]
        per_replica = dict(
            b.sql(
                "SELECT actor, count(*) FROM syncd.approval_event "
                "WHERE event_type = 'transition' AND to_state = 'running' GROUP BY actor"
            )
        )
        for daemon in daemons:
            daemon.stop()
        stats = b.sim_stats(sim)
        slots_retaken = retaken(b)
    ours_ids = other.ids if other is not None else set()
    created = sorted(i["created"] for i in stats["instances"] if i["id"] not in ours_ids)
    lo, hi = created[len(created) // 10], created[(len(created) * 9) // 10]
    sustained = (len(created) * 8 // 10) / (hi - lo)
    create_calls = stats["calls"].get("workflow.create", 0)
    neighbour_calls = len(other.accepted) + len(other.throttled) if other is not None else 0
    start, seconds_run = created[0], int(created[-1] - created[0]) + 1
    result: dict[str, Any] = {
        "replicas": replicas,
        "rate_per_second_setting": rate,
        "approvals_written": int(written),
        "instances": len(created),
        "sustained_creates_per_second": sustained,
        "share_of_limit": sustained / LIMIT,
        "create_calls": create_calls,
        "throttled_creates": create_calls - neighbour_calls - len(created),
        "throttled_calls_recorded_by_syncd": len(throttled_at),
        "min_span_of_21_creates": min_span(created),
        "slots_retaken": slots_retaken,
        "creates_per_replica": per_replica,
        "simulator_calls": stats["calls"],
        "create_times": [round(t - created[0], 3) for t in created],
        "load_average": list(os.getloadavg()),
    }
    if other is not None:
        result["neighbour"] = {
            "rate": neighbour,
            "seconds": seconds,
            "accepted": len(other.accepted),
            "throttled": len(other.throttled),
            "curve": {
                "syncd_accepted": per_second(created, start, seconds_run),
                "syncd_throttled": per_second(throttled_at, start, seconds_run),
                "neighbour_accepted": per_second(other.accepted, start, seconds_run),
                "neighbour_throttled": per_second(other.throttled, start, seconds_run),
            },
        }
    span = result["min_span_of_21_creates"]
    beside = f" with a {neighbour}/s neighbour" if neighbour else ""
    log(
        f"{replicas} replica(s) at rate {rate}{beside}: "
        f"{sustained:.2f} creates/s ({100 * sustained / LIMIT:.1f}% of {LIMIT}), "
        f"{result['throttled_creates']} throttled, 21 creates spanned >= {span or 0:.3f} s, "
        f"{slots_retaken} slots retaken"
    )
    return result


def main() -> None:
    started = time.time()
    phases = []
    for run in range(args.runs):
        order = (1, 3) if run % 2 == 0 else (3, 1)
        for replicas in order:
            phases.append({"run": run + 1, **phase(replicas, args.rate, args.backlog)})
    neighbour_phases = (
        [
            {
                "run": run + 1,
                **phase(
                    replicas,
                    args.rate,
                    args.neighbour_backlog,
                    args.neighbour,
                    args.neighbour_seconds,
                ),
            }
            for run in range(args.neighbour_runs)
            for replicas in (1, 3)
        ]
        if args.neighbour
        else []
    )
    save(
        args.name,
        {
            "limit": LIMIT,
            "backlog": args.backlog,
            "runs": args.runs,
            "phases": phases,
            "neighbour_phases": neighbour_phases,
            "wall_seconds": time.time() - started,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1000, help="approvals per phase")
    parser.add_argument("--runs", type=int, default=3, help="runs of each replica count")
    parser.add_argument("--rate", type=float, default=20.0, help="rate_per_second")
    parser.add_argument("--neighbour", type=float, default=5.0, help="its creates/s; 0: none")
    parser.add_argument("--neighbour-seconds", type=float, default=60.0)
    parser.add_argument("--neighbour-backlog", type=int, default=1800)
    parser.add_argument("--neighbour-runs", type=int, default=1)
    parser.add_argument("--name", default="quota", help="result file name (bench/results)")
    args = parser.parse_args()
    main()
