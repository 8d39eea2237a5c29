"""``syncd status``, ``syncd show`` and ``syncd resume``: where things stand, one approval's
whole story, and lifting a DingTalk pause."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from syncd.commands import approvals
from syncd.commands.common import database_dsn, out, settings_from
from syncd.commands.operator import actor, age, table, to_json, utcnow, when
from syncd.commands.status_business import business_backlogs, database_attention, database_lines
from syncd.db.admin_store import AdminStore, Row, open_pool
from syncd.db.store import PostgresControlStore, usage_month
from syncd.domain import PARKED, ApprovalState
from syncd.errors import ConfigError, SyncdError
from syncd.metrics.labels import EXEMPT_PURPOSES
from syncd.pipeline.pauses import Pause, Pauses
from syncd.pipeline.repair import not_found
from syncd.quota import PollingBudget, counted, projected
from syncd.settings import Settings

#: The same threshold as the ``syncd.stuck`` view.
STUCK_AFTER = timedelta(minutes=15)
_WAITING = ("pending", "unknown")
_STATE_ORDER = [s.value for s in ApprovalState]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser(
        "status",
        help="approvals by kind and state, what needs attention, DingTalk quota use",
        description="Approvals per kind and state, the oldest waiting one, parked, unwritten "
        "and stuck approvals, this month's DingTalk calls against the quota, and whether "
        "calls are paused. Exit 0 when it could read, unless --check.",
    )
    status.add_argument("--kind", help="only this approval kind")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when something needs attention (parked, quarantined, unwritten, "
        "live status refused, stuck, paused, this month's calls projected past the quota)",
    )
    status.add_argument("--dsn", help="database (default: database.dsn)")
    status.set_defaults(handler=run_status)

    show = sub.add_parser(
        "show",
        help="one business key's approvals: every round, its history and its tasks",
        description="Every round of one business key (KIND KEY), or one round (KIND KEY "
        "--round N, or an approval ID): state, instance, attempts, errors, milestones, the "
        "history of transitions, DingTalk calls and operators' notes, and who did what in "
        "DingTalk. Exit 1 when there is no such approval.",
    )
    approvals.add_arguments(show, many=False, default_round="every round")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--dsn", help="database (default: database.dsn)")
    show.set_defaults(handler=run_show)

    resume = sub.add_parser(
        "resume",
        help="resume DingTalk calls paused by an exhausted quota or refused credentials",
        description="Clear the cluster-wide DingTalk pause at once instead of waiting for "
        "the next month (quota) or the next credential check (auth).",
    )
    resume.add_argument("--dsn", help="database (default: database.dsn)")
    resume.set_defaults(handler=run_resume)


# --- status ---------------------------------------------------------------------------


async def run_status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    now = utcnow()
    async with open_pool(database_dsn(args)) as pool:
        admin = AdminStore(pool, actor=actor())
        control = PostgresControlStore(pool, actor=actor())
        rows = await admin.status(args.kind, now - STUCK_AFTER)
        backlog = await admin.outbox_backlog(args.kind)
        quarantine = await admin.quarantine(args.kind)
        usage = await control.usage(now)
        pause = await Pauses(control).active(now)
    report = status_report(
        rows, backlog, usage, pause, settings, now, only=args.kind, quarantine=quarantine
    )
    report["databases"] = await business_backlogs(settings, now)
    report["attention"] += database_attention(report["databases"], STUCK_AFTER)
    out(to_json(report) if args.json else render_status(report, now))
    return 1 if args.check and report["attention"] else 0


def status_report(
    rows: list[Row],
    backlog: list[Row],
    usage: dict[str, int],
    pause: Pause | None,
    settings: Settings,
    now: datetime,
    *,
    only: str | None = None,
    quarantine: Sequence[Row] = (),
) -> dict[str, Any]:
    names = {r["kind"] for r in rows} | {b["kind"] for b in backlog} | set(settings.kinds)
    names |= {q["kind"] for q in quarantine}
    kinds: dict[str, dict[str, Any]] = {}
    for name in sorted(n for n in names if only is None or n == only):
        mine = [r for r in rows if r["kind"] == name]
        waiting = [r for r in mine if r["state"] in _WAITING]
        oldest = min(waiting, key=lambda r: r["oldest_captured_at"], default=None)
        outbox = next((b for b in backlog if b["kind"] == name), None)
        held = next((q for q in quarantine if q["kind"] == name), None)
        kinds[name] = {
            "configured": name in settings.kinds,
            "states": {
                r["state"]: {"count": r["approvals"], "oldest_captured_at": r["oldest_captured_at"]}
                for r in sorted(mine, key=lambda r: _state_rank(r["state"]))
            },
            "oldest_waiting": None
            if oldest is None
            else {
                "state": oldest["state"],
                "captured_at": oldest["oldest_captured_at"],
                "age_seconds": int((now - oldest["oldest_captured_at"]).total_seconds()),
            },
            "parked": sum(r["approvals"] for r in mine if r["state"] in PARKED),
            "superseded": sum(r["superseded"] for r in mine),
            "unwritten": sum(r["unwritten"] for r in mine),
            "progress_unwritten": sum(r["progress_unwritten"] for r in mine),
            "stuck": sum(r["stuck"] for r in mine),
            "outbox_waiting": outbox["waiting"] if outbox else 0,
            "outbox_oldest_at": outbox["oldest_at"] if outbox else None,
            "quarantined": held["quarantined"] if held else 0,
            "calls_spent": sum(r["calls_spent"] for r in mine),
        }
    dt = settings.dingtalk
    polling = PollingBudget.of(settings)
    total = counted(usage)  # the contact calls are recorded but exempt (contract §15.1)
    report: dict[str, Any] = {
        "kinds": kinds,
        "dingtalk": {
            "month": usage_month(now).strftime("%Y-%m"),
            "calls": dict(sorted(usage.items())),
            "total": total,
            # at the month's rate so far, as syncd_dingtalk_quota_projected_calls
            "projected": round(projected(total, now)),
            "monthly_quota": dt.monthly_quota,
            "polling_budget": polling.budget(usage, now),
            "polling_budget_configured": settings.polling.monthly_budget,
            "paused": None if pause is None else {"reason": pause.reason, "until": pause.until},
        },
    }
    report["attention"] = _attention(kinds, pause) + _quota_attention(report["dingtalk"])
    return report


def _quota_attention(d: dict[str, Any]) -> list[str]:
    quota = d["monthly_quota"]
    if not quota or d["projected"] <= quota:
        return []
    return [
        f"DingTalk calls in {d['month']} project to {d['projected']} by the month's end, "
        f"over the monthly quota of {quota}: polling already holds back; see which "
        "purpose grows (`syncd status`), or raise dingtalk.monthly_quota if the tenant's "
        "quota is higher"
    ]


def _state_rank(state: str) -> int:
    return _STATE_ORDER.index(state) if state in _STATE_ORDER else len(_STATE_ORDER)


def _attention(kinds: dict[str, dict[str, Any]], pause: Pause | None) -> list[str]:
    notes: list[str] = []
    for name, k in kinds.items():
        if k["parked"]:
            notes.append(
                f"{name}: {k['parked']} parked (invalid or dead; SELECT * FROM syncd.parked): "
                f"fix the cause, then `syncd retry --kind {name} --all-parked`; "
                f"or close those that should never be sent: `syncd dismiss ID ... --reason ...`"
            )
        if k["superseded"]:
            notes.append(
                f"{name}: {k['superseded']} of the parked were replaced by a newer round of "
                f"their key and cannot be retried: `syncd dismiss --kind {name} --superseded "
                "--reason ...` closes them"
            )
        if k["quarantined"]:
            notes.append(
                f"{name}: {k['quarantined']} outbox rows quarantined: the database refused "
                "to store them (SELECT * FROM syncd.quarantined); fix the cause, then "
                "`syncd retry --quarantined`"
            )
        if k["unwritten"]:
            notes.append(
                f"{name}: {k['unwritten']} finished but not written back "
                f"(SELECT * FROM syncd.unwritten): fix the cause, then "
                f"`syncd replay --kind {name} --unwritten`"
            )
        if k["progress_unwritten"]:
            notes.append(
                f"{name}: {k['progress_unwritten']} live-status writes refused by the "
                "business table (SELECT * FROM syncd.progress_unwritten): fix the cause; "
                "syncd retries them"
            )
        if k["stuck"]:
            notes.append(
                f"{name}: {k['stuck']} still without a DingTalk instance after "
                f"{age(STUCK_AFTER)} (SELECT * FROM syncd.stuck): is the daemon running?"
            )
    if pause is not None:
        until = f" until {when(pause.until)}" if pause.until else ""
        notes.append(
            f"DingTalk calls are paused ({pause.reason}){until}: "
            "`syncd resume` once the cause is fixed"
        )
    return notes


def render_status(report: dict[str, Any], now: datetime) -> str:
    rows: list[list[str]] = []
    for name, k in report["kinds"].items():
        if not k["states"]:
            rows.append([name, "-", "0", "-"])
        for state, s in k["states"].items():
            rows.append([name, state, str(s["count"]), age(now - s["oldest_captured_at"])])
    parts = [table(["KIND", "STATE", "COUNT", "OLDEST"], rows) if rows else "no approvals yet"]
    lines: list[str] = []
    for name, k in report["kinds"].items():
        if k["oldest_waiting"]:
            w = k["oldest_waiting"]
            lines.append(
                f"{name}: oldest waiting is {w['state']} for {age(now - w['captured_at'])}"
            )
        if k["outbox_waiting"]:
            lines.append(
                f"{name}: {k['outbox_waiting']} outbox rows not ingested yet "
                f"(oldest {age(now - k['outbox_oldest_at'])})"
            )
        if not k["configured"]:
            lines.append(f"{name}: not in the configuration ([kinds.{name}])")
    lines += database_lines(report.get("databases", {}))
    if lines:
        parts.append("\n".join(lines))
    parts.append(_render_dingtalk(report["dingtalk"]))
    attention = report["attention"]
    parts.append(
        "needs attention:\n" + "\n".join(f"  {a}" for a in attention)
        if attention
        else "nothing needs attention"
    )
    return "\n\n".join(parts)


def _render_dingtalk(d: dict[str, Any]) -> str:
    quota = d["monthly_quota"]
    used = f"{d['total']} (no monthly quota)"
    projection = f"projected to the month's end: {d['projected']}"
    if quota:
        used = f"{d['total']} of {quota} ({100 * d['total'] / quota:.1f}%)"
        projection += f" ({100 * d['projected'] / quota:.0f}% of the quota)"
    calls = d["calls"].items()
    purposes = ", ".join(f"{p} {n}" for p, n in calls if p not in EXEMPT_PURPOSES)
    lines = [f"DingTalk calls in {d['month']}: {used}" + (f": {purposes}" if purposes else "")]
    exempt = ", ".join(f"{p} {n}" for p, n in calls if p in EXEMPT_PURPOSES)
    if exempt:
        lines.append(f"not counted against the quota (contact calls): {exempt}")
    lines.append(projection)
    budget = f"{d['polling_budget']} budgeted calls"
    if d["polling_budget"] < d["polling_budget_configured"]:
        budget += f" (what the quota leaves; {d['polling_budget_configured']} configured)"
    lines.append(f"polling: {d['calls'].get('poll', 0)} of {budget}")
    paused = d["paused"]
    if paused:
        until = f" until {when(paused['until'])}" if paused["until"] else ""
        lines.append(f"DingTalk calls: paused ({paused['reason']}){until}")
    else:
        lines.append("DingTalk calls: not paused")
    return "\n".join(lines)


# --- show -----------------------------------------------------------------------------


async def run_show(args: argparse.Namespace) -> int:
    which = approvals.which_of(args, "show", many=False)
    if which is None:
        raise ConfigError("show: name the approval: KIND KEY [--round N], or ID")
    async with open_pool(database_dsn(args)) as pool:
        admin = AdminStore(pool, actor=actor())
        if which.ids:
            found = (await admin.briefs(which.ids)).get(which.ids[0])
            if found is None:
                raise SyncdError(f"approval {which.ids[0]} does not exist")
            rounds = await admin.rounds(found.kind, found.business_key, found.round)
        else:
            assert which.kind is not None and which.key is not None
            rounds = await admin.rounds(which.kind, which.key, which.round)
    if not rounds:
        raise SyncdError(not_found(which))
    out(to_json(rounds) if args.json else "\n\n".join(render_round(r) for r in rounds))
    return 0


_MILESTONES = (
    ("captured", "captured_at"),
    ("submitted", "submitted_at"),
    ("instance created", "instance_created_at"),
    ("finished", "finished_at"),
    ("written back", "written_back_at"),
)


def render_round(r: Row) -> str:
    head = (
        f"{r['kind']} {r['business_key']} round {r['round']} "
        f"(approval {r['id']}, outbox row {r['outbox_id'] or '-'}): {r['state']}"
    )
    lines = [head]
    dingtalk = " ".join(x for x in (r["dingtalk_status"], r["dingtalk_result"]) if x)
    lines.append(
        f"  instance         {r['instance_id'] or '-'}  process {r['process_code'] or '-'}"
        + (f"  DingTalk says {dingtalk}" if dingtalk else "")
    )
    originator = r["originator"] or "-"
    if r.get("originator_user_id") and r["originator_user_id"] != r["originator"]:
        originator += f" (sent as userId {r['originator_user_id']})"
    lines.append(
        f"  originator       {originator}  attempts {r['attempts']}  "
        f"calls spent {r['calls_spent']}  write-back attempts {r['writeback_attempts']}"
    )
    if r["last_error_code"] or r["last_error_message"]:
        lines.append(f"  error            {r['last_error_code']}: {r['last_error_message']}")
    if r["cancel_requested_at"]:
        lines.append(f"  cancel requested {when(r['cancel_requested_at'])}")
    if r["state"] in ("pending", "unknown"):
        lines.append(f"  next attempt     {when(r['next_attempt_at'])}")
    for label, column in _MILESTONES:
        if r[column] is not None:
            lines.append(f"  {label:<16} {when(r[column])}")
    lines.append("  history:")
    lines += [f"    {_history_line(h)}" for h in r["history"]] or ["    (none)"]
    if r["tasks"]:
        lines.append("  tasks and operations in DingTalk:")
        lines += [f"    {_task_line(t)}" for t in r["tasks"]]
    return "\n".join(lines)


def _history_line(h: Row) -> str:
    if h["event_type"] == "transition":
        what = f"{h['from_state'] or '(new)'} -> {h['to_state']}"
    elif h["event_type"] == "call":
        status = h["code"] or (str(h["http_status"]) if h["http_status"] else "ok")
        what = f"call {h['endpoint']} {status} {h['duration_ms']} ms"
    else:
        what = "note"
    message = f"  {h['message']}" if h["message"] else ""
    return f"{when(h['at'])}  {what}{message}  [{h['actor'] or '-'}]"


def _task_line(t: Row) -> str:
    moment = when(t["finished_at"] or t["started_at"])
    what = " ".join(x for x in (t["operation"], t["status"], t["result"]) if x)
    node = f" at node {t['activity_id']}" if t["activity_id"] else ""
    remark = f"  remark: {t['remark']}" if t["remark"] else ""
    return f"{moment}  {t['record_type']:<9} {t['user_id'] or '-'}{node}  {what}{remark}"


# --- resume ---------------------------------------------------------------------------


async def run_resume(args: argparse.Namespace) -> int:
    now = utcnow()
    async with open_pool(database_dsn(args)) as pool:
        pauses = Pauses(PostgresControlStore(pool, actor=actor()))
        pause = await pauses.active(now)
        await pauses.resume()
    if pause is None:
        out("DingTalk calls were not paused; nothing to do")
        return 0
    until = f" until {when(pause.until)}" if pause.until else ""
    out(f"DingTalk calls resumed (they were paused: {pause.reason}{until})")
    if pause.reason == "quota":
        out("if DingTalk's monthly quota is still used up, the next call pauses them again")
    return 0
