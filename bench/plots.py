"""PNG plots from the JSON results in ``bench/results/``: ``python -m bench.plots``.

Draws whatever results exist: latency distributions, throughput over time (syncd and
the baseline, and before/after the apply fix), create rate under the QPS limit, and
daemon memory over time at two backlog sizes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.harness import RESULTS, log


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def cdf(ax: Any, values: list[float], label: str) -> None:
    ordered = sorted(values)
    if not ordered:
        return
    ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
    ax.step(ordered, ys, where="post", label=label)


def save(fig: Any, name: str) -> None:
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"wrote {path}")


def latency() -> None:
    data = load("latency")
    if data is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for channel in ("stream", "callback"):
        cdf(left, data[channel]["raw_outbox_to_create_ms"], f"{channel} run")
        cdf(right, data[channel]["raw_decision_to_written_ms"], f"via {channel}")
    left.set_title("outbox commit → create call (LISTEN/NOTIFY)")
    right.set_title("decision in the simulator → business row written")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log scale)")
        ax.set_ylabel("share of approvals")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Latency at low load ({data['rate_per_second']:.0f} approvals/s)")
    save(fig, "latency")


def per_second(timeline: list[dict[str, int]]) -> tuple[list[int], list[int]]:
    return [p["second"] for p in timeline], [p["count"] for p in timeline]


def throughput(name: str, title: str) -> None:
    data = load(name)
    if data is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    syncd = data["syncd"]["timeline"]
    for stage in ("ingested", "created", "written"):
        xs, ys = per_second(syncd[stage])
        left.plot(xs, ys, label=f"syncd {stage}", lw=1)
    if "baseline" in data:
        xs, ys = per_second(data["baseline"]["timeline"]["written"])
        left.plot(xs, ys, label="baseline written", lw=1, color="black")
    left.set_title("per second")
    left.set_ylabel("approvals per second")
    for label, result in (("syncd", data["syncd"]), ("baseline", data.get("baseline"))):
        if result is None:
            continue
        xs, ys = per_second(result["timeline"]["written"])
        total, cumulative = 0, []
        for y in ys:
            total += y
            cumulative.append(total)
        right.plot(xs, cumulative, label=f"{label} ({result['approvals_per_second']:.0f}/s)")
    right.set_title("business rows written, cumulative")
    right.set_ylabel("approvals")
    for ax in (left, right):
        ax.set_xlabel("seconds since start")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    save(fig, name)


def before_after() -> None:
    before, after = load("before-2000"), load("after-2000")
    if before is None or after is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    runs = [("before the fixes", before), ("batched apply", after)]
    lanes, nagle, final = load("lanes-2000"), load("nagle-2000"), load("final-2000")
    if lanes is not None:
        runs.append(("+ lanes + one-round-trip inbox", lanes))
    if nagle is not None:
        runs.append(("+ Stream bursts, set-based apply, Nagle off, two loops", nagle))
    if final is not None:
        runs.append(("+ fewer statements, batched finish, sniffio (final)", final))
    for label, data in runs:
        xs, ys = per_second(data["syncd"]["timeline"]["written"])
        rate = data["syncd"]["approvals_per_second"]
        ax.plot(xs, ys, label=f"{label} ({rate:.0f}/s)")
    ax.set_title("syncd, 2,000 backlog: business rows written per second")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("approvals per second")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, "before-after")


def quota() -> None:
    data = load("quota")
    if data is None:
        return
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for phase in data["phases"]:
        counts = Counter(int(t) for t in phase["create_times"])
        xs = list(range(max(counts) + 1))
        label = (
            f"{phase['replicas']} replica(s), rate {phase['rate_per_second_setting']:.0f}: "
            f"{phase['sustained_creates_per_second']:.1f}/s, {phase['throttled_creates']} throttled"
        )
        ax.plot(xs, [counts.get(x, 0) for x in xs], label=label, lw=1)
    ax.axhline(data["limit"], color="red", ls="--", label=f"limit {data['limit']}/s")
    ax.set_title("Creates per second under the simulator's QPS limit")
    ax.set_xlabel("seconds since the first create")
    ax.set_ylabel("creates per second")
    ax.set_ylim(0, data["limit"] + 5)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    save(fig, "quota")


def quota_neighbour(name: str = "quota") -> None:
    """Per-second accepted and throttled creates of syncd and a neighbour on the same app."""
    data = load(name)
    phases = (data or {}).get("neighbour_phases") or []
    if not phases:
        return
    fig, axes = plt.subplots(len(phases), 1, figsize=(9, 3.2 * len(phases)), squeeze=False)
    for ax, phase in zip(axes[:, 0], phases, strict=True):
        curve = phase["neighbour"]["curve"]
        xs = list(range(len(curve["syncd_accepted"])))
        ax.plot(xs, curve["syncd_accepted"], label="syncd accepted", lw=1.2)
        ax.plot(xs, curve["neighbour_accepted"], label="neighbour accepted", lw=1)
        pairs = zip(curve["syncd_accepted"], curve["neighbour_accepted"], strict=True)
        total = [a + b for a, b in pairs]
        ax.plot(xs, total, label="together", lw=0.8, color="grey")
        ax.bar(xs, curve["syncd_throttled"], label="syncd throttled", color="red", width=0.8)
        ax.axhline(20, color="red", ls="--", lw=0.8)
        ax.set_title(
            f"{phase['replicas']} replica(s), rate {phase['rate_per_second_setting']:.0f}, "
            f"neighbour {phase['neighbour']['rate']:g}/s"
        )
        ax.set_xlabel("seconds since syncd's first create")
        ax.set_ylabel("creates per second")
        ax.set_ylim(0, 25)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    save(fig, f"{name}-neighbour")


def scale() -> None:
    data = load("scale")
    if data is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key in ("small", "large"):
        run = data[key]
        xs = [s["t"] for s in run["samples"]]
        ys = [s["rss_mib"] for s in run["samples"]]
        ax.plot(xs, ys, label=f"backlog {run['backlog']:,} ({run['approvals_written']:,} written)")
    ax.set_title(f"Daemon RSS with {data['history']:,} approvals of history")
    ax.set_xlabel("seconds since the daemon started")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, "scale-memory")


def main() -> None:
    latency()
    throughput(
        "throughput-10000", "Throughput, 10,000 backlog: syncd and the Procrastinate baseline"
    )
    throughput(
        "throughput-100000", "Throughput, 100,000 backlog: syncd and the Procrastinate baseline"
    )
    before_after()
    quota()
    quota_neighbour()
    scale()


if __name__ == "__main__":
    Path(RESULTS).mkdir(exist_ok=True)
    main()
