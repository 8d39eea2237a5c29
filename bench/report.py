"""The key numbers of ``bench/results/*.json`` as Markdown tables: ``python -m bench.report``.

``bench/RESULTS.md`` quotes these tables; run this after the benchmarks to refresh them.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.plots import load
from bench.throughput import summarise


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def figure(summary: dict[str, Any], key: str, digits: int) -> str:
    """A figure as its median with the range over the runs: ``281.8 (266.0–290.1)``."""
    f = summary.get(key)
    if f is None or not f["samples"]:
        return ""
    if len(f["samples"]) == 1:
        return f"{f['median']:.{digits}f}"
    return f"{f['median']:.{digits}f} ({f['min']:.{digits}f}–{f['max']:.{digits}f})"


def throughput(name: str) -> list[str]:
    data = load(name)
    if data is None:
        return []
    if "summary" not in data:
        data = repeated(data)
    summary = data["summary"]
    runs = data["runs_per_system"]
    order = " ".join("S" if system == "syncd" else "B" for _, system in data["order"])
    how = (
        f"{runs} runs of each system, each on a fresh database, in the order {order}; "
        "median (min–max)"
        if "rounds" not in data
        else "one run of each, syncd then the baseline on the same database"
    )
    lines = [
        f"**{name}** (backlog {data['backlog']:,}; {how}; wall time "
        f"{data['wall_seconds'] / 60:.0f} min)",
        "",
        row(
            "",
            "approvals/s",
            "CPU ms/approval (own process)",
            "PostgreSQL CPU ms/approval",
            "simulator CPU ms/approval",
            "statements/approval",
            "commits/approval",
            "peak RSS MiB",
        ),
        row(*["---"] * 8),
    ]
    for label, key, cpu, rss in (
        ("syncd", "syncd", "daemon_cpu_ms_per_approval", "daemon_peak_rss_mib"),
        ("Procrastinate baseline", "baseline", "worker_cpu_ms_per_approval", "worker_peak_rss_mib"),
    ):
        sm = summary.get(key)
        if sm is None:
            continue
        lines.append(
            row(
                label,
                figure(sm, "approvals_per_second", 1),
                figure(sm, cpu, 2),
                figure(sm, "postgres_cpu_ms_per_approval", 2),
                figure(sm, "simulator_cpu_ms_per_approval", 2),
                figure(sm, "statements_per_approval", 1),
                figure(sm, "commits_per_approval", 1),
                figure(sm, rss, 0),
            )
        )
    if "ratio_syncd_to_baseline" in summary:
        ratio = summary["ratio_syncd_to_baseline"]
        noise = (
            "too few runs to tell the noise"
            if runs < 3
            else "the two systems' ranges overlap: the difference is inside the noise"
            if summary["throughput_inside_noise"]
            else "the ranges do not overlap: the difference is outside the noise"
        )
        lines += [
            "",
            f"syncd/baseline throughput ratio: **{ratio['median']:.2f}** (range "
            f"{ratio['min']:.2f}–{ratio['max']:.2f} over the rounds' ratios); {noise}.",
        ]
    lines += ["", *start_rates(data), "", *dips(data)]
    return lines


def dips(data: dict[str, Any], long: float = 0.2, near: float = 1.5) -> list[str]:
    """Per run: the seconds written at under half the run's median rate, how many of them
    lie within ``near`` seconds of a simulator garbage collection of ``long`` seconds or
    more, and those collections (runs that know their ``t0`` only)."""
    lines = [
        row(
            "run",
            "approvals/s",
            "seconds under half the median rate",
            f"of them within {near} s of a simulator collection ≥ {long} s",
            "such collections (their total)",
            "longest collection",
        ),
        row(*["---"] * 6),
    ]
    seen: dict[str, int] = {}
    for run in data["runs"]:
        if "t0" not in run:
            continue
        counts = {p["second"]: p["count"] for p in run["timeline"]["written"]}
        seconds = range(5, max(counts) - 5)  # not the start's ramp nor the end's tail
        median = statistics.median(counts.get(s, 0) for s in seconds)
        slow = [s for s in seconds if counts.get(s, 0) < median / 2]
        pauses = [(at - run["t0"], took) for at, took, _ in run["simulator_gc_pauses"]]
        longs = [(at, took) for at, took in pauses if took >= long]
        on_one = [s for s in slow if any(at - near <= s <= at + took + near for at, took in longs)]
        seen[run["system"]] = seen.get(run["system"], 0) + 1
        lines.append(
            row(
                f"{run['system']} {seen[run['system']]}",
                f"{run['approvals_per_second']:.1f}",
                f"{len(slow)} of {len(seconds)}",
                len(on_one),
                f"{len(longs)} ({sum(took for _, took in longs):.1f} s)",
                f"{max((took for _, took in pauses), default=0.0):.2f} s",
            )
        )
    return [*lines, ""] if len(lines) > 2 else []


def start_rates(data: dict[str, Any]) -> list[str]:
    """Each run's rate in its first 20 s against the rest (a slow start shows here)."""
    cells = []
    for run in data["runs"]:
        written = run["timeline"]["written"]
        first = sum(p["count"] for p in written if p["second"] < 20)
        rest = [p for p in written if p["second"] >= 20]
        if not rest:
            continue
        later = sum(p["count"] for p in rest) / len(rest)
        cells.append(f"{run['system']} {first / 20:.0f}/s then {later:.0f}/s")
    return ["First 20 s against the rest, run by run: " + "; ".join(cells) + "."] if cells else []


def repeated(data: dict[str, Any]) -> dict[str, Any]:
    """A result file from before runs were repeated (one run of each system, syncd first,
    on one database) in the shape of one with rounds: one round, its figures its own."""
    runs = []
    for system in ("syncd", "baseline"):
        if system in data:
            run = {"round": 0, "system": system, **data[system]}
            for part in ("postgres", "simulator"):
                if f"{part}_cpu_seconds" in run:
                    run[f"{part}_cpu_ms_per_approval"] = (
                        1000 * run[f"{part}_cpu_seconds"] / max(1, run["approvals"])
                    )
            runs.append(run)
    return {
        **data,
        "rounds": 1,
        "runs": runs,
        "runs_per_system": 1,
        "order": [(0, r["system"]) for r in runs],
        "summary": summarise(runs),
    }


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


# --- the monthly quota (bench/month.py) -------------------------------------------------


def month(name: str = "month") -> list[str]:
    """Calls per approval by endpoint and purpose over a simulated month."""
    data = load(name)
    if data is None:
        return []
    p, end = data["parameters"], data["end"]
    approvals = data["approvals"]
    lines = [
        f"**month** ({approvals} approvals over {p['days']} days, decisions after a median "
        f"of {p['decision_hours_median']:g} h per node, {100 * p['events_lost_share']:g}% of "
        f"events lost, a {p['outage_hours']:g} h receiver outage, quota {p['quota']}; "
        f"wall time {data['wall_seconds']:.0f} s)",
        "",
        row("endpoint", "calls", "per approval", "metered"),
        row(*["---"] * 4),
    ]
    metered = data.get("metered_endpoints", [])
    for endpoint, calls in sorted(data["calls_by_endpoint"].items(), key=lambda kv: -kv[1]):
        shown = "yes" if not metered or endpoint in metered else "no"
        lines.append(row(endpoint, calls, f"{calls / approvals:.3f}", shown))
    lines += [
        "",
        row("syncd purpose", "calls", "counted as"),
        row(*["---"] * 3),
    ]
    for purpose, calls in data["usage_by_purpose"].items():
        what = (
            "per approval"
            if purpose in data.get("per_approval_purposes", ["create"])
            else "polling budget"
            if purpose in ("poll", "inbound_list")
            else "fixed overhead, exempt"
            if purpose == "directory"
            else "fixed monthly overhead"
        )
        lines.append(row(purpose, calls, what))
    overhead = data["fixed_overhead"]
    counted = {k: v for k, v in overhead.items() if k != "directory"}  # contact calls: exempt
    delays = data["decision_to_written"]
    lines += [
        "",
        f"calls per approval: **{data['per_approval']:.3f}**; polling "
        f"{data['polling_calls']} calls (its budget: what the quota leaves, at most "
        f"{p['polling']['monthly_budget']}); fixed overhead counted by the quota "
        f"**{sum(counted.values())}** calls "
        f"({', '.join(f'{k} {v}' for k, v in counted.items()) or 'none'}), not counted: "
        f"directory {overhead.get('directory', 0)}, tokens {data['token_calls']}; metered "
        f"in all **{data['metered_calls']} of {p['quota']}**. Decision to outcome written "
        f"back: p50 {delays['p50']:.0f} s, p99 {delays['p99'] / 3600:.1f} h, max "
        f"{delays['max'] / 3600:.1f} h, {delays['over_an_hour']} over an hour (events lost, "
        f"found by polling); at the month's end {end['outcomes_not_yet_known']} outcomes "
        "decided in DingTalk were not yet known to syncd.",
        "",
    ]
    return lines


#: What a ``bench.cpu`` A/B reports per side: the result's key, its label, its digits.
CPU_FIGURES = (
    ("approval_updates", "rows of syncd.approval updated per approval", 1),
    ("wal_bytes_per_approval", "WAL bytes per approval", 0),
    ("toplevel_statements_per_approval", "statements per approval (top level)", 2),
    ("db_exec_ms_per_approval", "PostgreSQL execution ms", 2),
    ("postgres_cpu_ms_per_approval", "PostgreSQL CPU ms", 2),
    ("daemon_cpu_ms_per_approval", "daemon CPU ms", 2),
    ("approvals_per_second", "approvals/s", 0),
)


def cpu_pairs(pairs: list[tuple[str, str, str]]) -> list[str]:
    """``bench.cpu`` A/Bs (``PREFIX-old-N``, ``PREFIX-new-N`` in ``results/``): each side's
    median and range per figure; ``pairs`` names each side (prefix, before, after)."""
    lines = ["", "bench.cpu A/B runs", ""]
    lines += [row("runs", *(label for _, label, _ in CPU_FIGURES)), row(*["---"] * 8)]
    for prefix, before, after in pairs:
        for side, label in (("old", before), ("new", after)):
            runs = [d for n in range(1, 9) if (d := load(f"{prefix}-{side}-{n}")) is not None]
            for d in runs:
                d["approval_updates"] = d["rows_written_per_approval"]["syncd.approval"][1]
            cells = []
            for key, _, digits in CPU_FIGURES:
                values = [float(d[key]) for d in runs]
                cells.append(
                    f"{statistics.median(values):,.{digits}f} "
                    f"({min(values):,.{digits}f}–{max(values):,.{digits}f})"
                    if values
                    else ""
                )
            lines.append(row(f"{label} (`{prefix}-{side}-*`, {len(runs)})", *cells))
    return lines


def main() -> None:
    lines: list[str] = []
    for name in (
        "throughput-10000",
        # the simulator's heap frozen, so it never stops for a full collection (section 1)
        "throughput-10000-frozen",
        "throughput-100000-frozen",
        "throughput-10000-rows",  # after the approval's rewrites were cut (section 1)
        # the same comparison started three other ways (bench/RESULTS.md, section 1)
        "throughput-10000-fresh",
        "throughput-10000-settled-empty",
        "throughput-10000-notasks",
        "throughput-100000",
        "throughput-100000-fresh",  # the earlier one-run comparison, fresh databases
        "final-2000",
        "nagle-2000",
        "lanes-2000",
        "after-2000",
        "before-2000",
    ):
        lines += throughput(name)
    lines += latency() + quota() + quota_runs() + quota_runs("quota-together") + scale()
    lines += month()
    lines += cpu_pairs(  # bench/RESULTS.md, section 8: the approval's rewrites
        [
            ("fold2", "before 1 (`b53b954`)", "1: the finish marks written back (`c6ff5e6`)"),
            ("touch", "before 2 (`c6ff5e6`)", "2: no touch before a finish (`f45c792`)"),
            ("group", "before 3 (`f45c792`)", "3: creates recorded together (`d0e6dc3`)"),
            ("net", "`b53b954`, again", "1–3 (`d0e6dc3`)"),
            ("slots", "`bd0c010`", "slots reserved together (`36e88a1`, reverted)"),
            ("slots2", "`bd0c010`, again", "the same, again"),
        ]
    )
    print("\n".join(lines))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
