"""Quota: the sustained create rate under DingTalk's 20 requests/s per API, and throttling.

``python -m bench.quota --backlog 600`` runs, each on a fresh database and simulator
limiting every API to 20 requests per second (sliding one-second window, as DingTalk):
1 and 3 replicas of ``syncd run`` sharing one PostgreSQL, with syncd's default pacing
(``rate_per_second = 15``) and at the highest rate syncd allows (20). It reports the
sustained create rate (creates between the 10th and the 90th percentile of the run,
divided by the time between them) as a share of the limit, and the creates DingTalk
refused with the QPS code.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.harness import bench, log, save, wait_until

LIMIT = 20


def phase(replicas: int, rate: float, backlog: int) -> dict[str, Any]:
    with bench() as b:
        b.submit(backlog)
        sim, sim_url = b.simulator(rule_delay=0.0, qps=LIMIT)
        daemons = [
            b.daemon(b.config(sim_url, name=f"replica-{n}", rate=rate), name=f"replica-{n}")
            for n in range(replicas)
        ]
        query = "SELECT count(*) FROM syncd.approval WHERE written_back_at IS NOT NULL"
        wait_until(lambda: b.sql(query)[0][0] >= backlog, timeout=backlog / 5 + 60, every=1.0)
        [(written,)] = b.sql(query)
        [(throttled_recorded,)] = b.sql(
            "SELECT count(*) FROM syncd.approval_event "
            "WHERE event_type = 'call' AND code LIKE 'Forbidden.AccessDenied.Qps%%'"
        )
        per_replica = dict(
            b.sql(
                "SELECT actor, count(*) FROM syncd.approval_event "
                "WHERE event_type = 'transition' AND to_state = 'running' GROUP BY actor"
            )
        )
        for daemon in daemons:
            daemon.stop()
        stats = b.sim_stats(sim)
    created = sorted(i["created"] for i in stats["instances"])
    lo, hi = created[len(created) // 10], created[(len(created) * 9) // 10]
    sustained = (len(created) * 8 // 10) / (hi - lo)
    create_calls = stats["calls"].get("workflow.create", 0)
    result = {
        "replicas": replicas,
        "rate_per_second_setting": rate,
        "approvals_written": int(written),
        "instances": len(created),
        "sustained_creates_per_second": sustained,
        "share_of_limit": sustained / LIMIT,
        "create_calls": create_calls,
        "throttled_creates": create_calls - len(created),
        "throttled_calls_recorded_by_syncd": int(throttled_recorded),
        "creates_per_replica": per_replica,
        "simulator_calls": stats["calls"],
        "create_times": [round(t - created[0], 3) for t in created],
    }
    log(
        f"{replicas} replica(s) at rate {rate}: {sustained:.2f} creates/s "
        f"({100 * sustained / LIMIT:.0f}% of {LIMIT}), {result['throttled_creates']} throttled"
    )
    return result


def main() -> None:
    started = time.time()
    phases = [phase(replicas, rate, args.backlog) for rate in (15.0, 20.0) for replicas in (1, 3)]
    save(
        "quota",
        {
            "limit": LIMIT,
            "backlog": args.backlog,
            "phases": phases,
            "wall_seconds": time.time() - started,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=600, help="approvals per phase")
    args = parser.parse_args()
    main()
