"""The key numbers of ``bench/results/*.json`` as Markdown tables: ``python -m bench.report``.

``bench/RESULTS.md`` quotes these tables; run this after the benchmarks to refresh them.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.plots import load


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def throughput(name: str) -> list[str]:
    data = load(name)
    if data is None:
        return []
    lines = [
        f"**{name}** (backlog {data['backlog']:,}, wall time {data['wall_seconds']:.0f} s)",
        "",
        row(
            "",
            "approvals/s",
            "seconds",
            "CPU ms/approval (own process)",
            "PostgreSQL CPU s",
            "simulator CPU s",
            "statements/approval",
            "commits/approval",
            "peak RSS MiB",
        ),
        row(*["---"] * 9),
    ]
    for label, key, cpu, rss in (
        ("syncd", "syncd", "daemon_cpu_ms_per_approval", "daemon_peak_rss_mib"),
        ("Procrastinate baseline", "baseline", "worker_cpu_ms_per_approval", "worker_peak_rss_mib"),
    ):
        r = data.get(key)
        if r is None:
            continue
        lines.append(
            row(
                label,
                f"{r['approvals_per_second']:.1f}",
                f"{r['seconds']:.1f}",
                f"{r[cpu]:.2f}",
                f"{r['postgres_cpu_seconds']:.1f}",
                f"{r.get('simulator_cpu_seconds', float('nan')):.1f}",
                f"{r['statements_per_approval']:.1f}",
                f"{r['commits_per_approval']:.1f}",
                f"{r[rss]:.0f}" if r.get(rss) is not None else "",
            )
        )
    if "ratio_syncd_to_baseline" in data:
        lines += ["", f"syncd/baseline throughput ratio: **{data['ratio_syncd_to_baseline']:.2f}**"]
    return [*lines, ""]


def latency() -> list[str]:
    data = load("latency")
    if data is None:
        return []
    lines = [
        f"**latency** ({data['count']} approvals per channel at "
        f"{data['rate_per_second']:g}/s, wall time {data['wall_seconds']:.0f} s)",
        "",
        row("", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"),
        row(*["---"] * 6),
    ]
    for channel in ("stream", "callback"):
        for key, label in (
            ("outbox_to_create_ms", f"outbox commit → create ({channel} run)"),
            ("decision_to_written_ms", f"decision → row written, via {channel}"),
        ):
            s = data[channel][key]
            lines.append(
                row(
                    label,
                    s["n"],
                    f"{s['p50']:.1f}",
                    f"{s['p90']:.1f}",
                    f"{s['p99']:.1f}",
                    f"{s['max']:.1f}",
                )
            )
    return [*lines, ""]


def quota() -> list[str]:
    data = load("quota")
    if data is None:
        return []
    lines = [
        f"**quota** (limit {data['limit']}/s per API, {data['backlog']} approvals per phase, "
        f"wall time {data['wall_seconds']:.0f} s)",
        "",
        row(
            "replicas",
            "rate_per_second",
            "sustained creates/s",
            "share of limit",
            "throttled creates",
            "creates per replica",
        ),
        row(*["---"] * 6),
    ]
    for p in data["phases"]:
        per = ", ".join(str(v) for _, v in sorted(p["creates_per_replica"].items()))
        lines.append(
            row(
                p["replicas"],
                f"{p['rate_per_second_setting']:g}",
                f"{p['sustained_creates_per_second']:.2f}",
                f"{100 * p['share_of_limit']:.0f}%",
                p["throttled_creates"],
                per,
            )
        )
    return [*lines, ""]


def left_of_limit(neighbour: float) -> str:
    return f"{20 - neighbour:g}/s"


def quota_runs(name: str = "quota") -> list[str]:
    """Medians and ranges over repeated runs, and the neighbour phases (if any)."""
    data = load(name)
    if data is None or "runs" not in data:
        return []
    lines = [
        f"**{name}**: medians (min–max) over {data['runs']} run(s) per replica count",
        "",
        row("replicas", "creates/s", "share of limit", "throttled", "min span of 21", "retaken"),
        row(*["---"] * 6),
    ]
    for replicas in sorted({p["replicas"] for p in data["phases"]}):
        runs = [p for p in data["phases"] if p["replicas"] == replicas]

        def spread(key: str, fmt: str, runs: list[dict[str, Any]] = runs) -> str:
            values = sorted(float(p[key] or 0) for p in runs)
            mid = statistics.median(values)
            return f"{mid:{fmt}} ({values[0]:{fmt}}–{values[-1]:{fmt}})"

        lines.append(
            row(
                replicas,
                spread("sustained_creates_per_second", ".2f"),
                spread("share_of_limit", ".3f"),
                spread("throttled_creates", ".0f"),
                spread("min_span_of_21_creates", ".3f"),
                spread("slots_retaken", ".0f"),
            )
        )
    for p in data.get("neighbour_phases", []):
        n, curve = p["neighbour"], p["neighbour"]["curve"]
        on = [i for i, v in enumerate(curve["neighbour_accepted"]) if v]
        # from 10 s after the neighbour started until it stopped: the settled share
        settled = [curve["syncd_accepted"][i] for i in on if i >= on[0] + 10] if on else []
        lines += [
            "",
            f"neighbour {n['rate']:g}/s for {n['seconds']:g} s, {p['replicas']} replica(s): "
            f"syncd throttled {p['throttled_creates']} times, the neighbour {n['throttled']}; "
            f"syncd {statistics.mean(settled or [0]):.1f}/s on average while the neighbour ran "
            f"(from its 10th second; {left_of_limit(n['rate'])} left)",
        ]
    return [*lines, ""]


def scale() -> list[str]:
    data = load("scale")
    if data is None:
        return []
    lines = [
        f"**scale** ({data['history']:,} approvals of history, {data['database_size']}, "
        f"generated in {data['history_seconds']:.0f} s; wall time {data['wall_seconds']:.0f} s)",
        "",
        row("backlog", "seconds", "written", "RSS start MiB", "RSS end MiB", "RSS peak MiB"),
        row(*["---"] * 6),
    ]
    for key in ("small", "large"):
        r = data[key]
        lines.append(
            row(
                f"{r['backlog']:,}",
                f"{r['seconds']:.0f}",
                f"{r['approvals_written']:,}",
                f"{r['rss_start_mib']:.0f}",
                f"{r['rss_end_mib']:.0f}",
                f"{r['rss_peak_mib']:.0f}",
            )
        )
    lines += ["", row("claim", "backlog", "calls", "mean ms", "max ms"), row(*["---"] * 5)]
    for key in ("small", "large"):
        for c in data[key]["claims"]:
            lines.append(
                row(
                    c["stage"],
                    f"{data[key]['backlog']:,}",
                    c["calls"],
                    f"{c['mean_ms']:.3f}",
                    f"{c['max_ms']:.3f}",
                )
            )
    return [*lines, ""]


def main() -> None:
    lines: list[str] = []
    for name in (
        "throughput-10000",
        "throughput-100000",
        "final-2000",
        "nagle-2000",
        "lanes-2000",
        "after-2000",
        "before-2000",
    ):
        lines += throughput(name)
    lines += latency() + quota() + quota_runs() + scale()
    print("\n".join(lines))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
