"""Latency at low load: outbox commit → create call, and decision → business row written.

``python -m bench.latency --count 120 --rate 2`` runs ``syncd run`` (default settings:
LISTEN/NOTIFY wake-ups, pacing at 15 calls/s) and commits one business row every
``1/rate`` seconds. The simulator's rule agrees one second after each node starts.

* outbox commit → create: the outbox row's ``created_at`` (its single-statement
  transaction commits within a millisecond of it) to the moment the simulator received
  the create (its own record, same machine clock);
* decision → written: the simulator's decision time to ``written_back_at`` of the
  approval (the transaction that writes the business row), once with events over Stream
  and once over HTTP callbacks (Stream off).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.harness import Bench, bench, log, save, summary, wait_until
from syncd.embedded import free_port


def phase(b: Bench, channel: str, count: int, rate: float) -> dict[str, Any]:
    http_port = free_port()
    callback_url = f"http://127.0.0.1:{http_port}/dingtalk/callback"
    sim, sim_url = b.simulator(
        rule_delay=1.0, qps=None, callback_url=callback_url if channel == "callback" else None
    )
    config = b.config(
        sim_url,
        name=f"syncd-{channel}",
        stream=channel == "stream",
        callback=channel == "callback",
        http_port=http_port,
    )
    [(before,)] = b.sql("SELECT coalesce(max(id), 0) FROM syncd.approval")
    daemon = b.daemon(config, name=f"syncd-{channel}")
    time.sleep(2.0)  # Stream connected, LISTEN in place
    for _ in range(count):
        b.submit(1)
        time.sleep(1.0 / rate)
    query = (
        f"SELECT count(*) FROM syncd.approval WHERE id > {int(before)} "
        "AND written_back_at IS NOT NULL"
    )
    wait_until(lambda: b.sql(query)[0][0] >= count, timeout=120)
    rows = b.sql(
        "SELECT instance_id, extract(epoch FROM captured_at), extract(epoch FROM written_back_at) "
        "FROM syncd.approval WHERE id > %s AND instance_id IS NOT NULL",
        (before,),
    )
    daemon.stop()
    stats = Bench.sim_stats(sim)
    instances = {i["id"]: i for i in stats["instances"]}
    to_create, to_written = [], []
    for instance_id, captured, written in rows:
        sim_instance = instances.get(instance_id)
        if sim_instance is None:
            continue
        to_create.append(1000 * (sim_instance["created"] - float(captured)))
        if written is not None and sim_instance["finished"] is not None:
            to_written.append(1000 * (float(written) - sim_instance["finished"]))
    result = {
        "approvals": len(rows),
        "outbox_to_create_ms": summary(to_create),
        "decision_to_written_ms": summary(to_written),
        "raw_outbox_to_create_ms": to_create,
        "raw_decision_to_written_ms": to_written,
        "simulator_calls": stats["calls"],
    }
    log(
        f"{channel}: outbox→create p50 {result['outbox_to_create_ms']['p50']:.1f} ms "
        f"p99 {result['outbox_to_create_ms']['p99']:.1f} ms; decision→written p50 "
        f"{result['decision_to_written_ms']['p50']:.1f} ms "
        f"p99 {result['decision_to_written_ms']['p99']:.1f} ms"
    )
    return result


def main() -> None:
    started = time.time()
    with bench() as b:
        result: dict[str, Any] = {"count": args.count, "rate_per_second": args.rate}
        for channel in ("stream", "callback"):
            result[channel] = phase(b, channel, args.count, args.rate)
    result["wall_seconds"] = time.time() - started
    save("latency", result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=120, help="business rows per channel")
    parser.add_argument("--rate", type=float, default=2.0, help="rows per second")
    args = parser.parse_args()
    main()
