"""``syncd reconcile --since DURATION``: compare DingTalk's instances with syncd's approvals.

For each kind, list the template's instances started in the window and compare them
with ``syncd.approval``:

* an instance DingTalk finished that syncd still holds as running: read it and apply
  the outcome (final state and write-back, one transaction);
* an instance no approval owns that matches an approval whose create outcome is
  unknown (by the correlation field, else by form values): adopt it;
* an instance no approval owns that carries the key of an approval owning another
  instance: a duplicate from a lost create, reported for a person to terminate;
* an instance no approval owns and nothing matches: not syncd's (another system's);
* a running approval whose instance DingTalk does not list: read it; gone means a
  difference left for a person.

``--dry-run`` reads and reports, and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from syncd.commands.common import out, settings_from
from syncd.commands.operator import actor, parse_duration, table, when
from syncd.daemon import Daemon
from syncd.db.admin_store import AdminStore
from syncd.db.submit_store import PostgresSubmitStore
from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalRef, ApprovalState, CallRecord, SubmitItem
from syncd.errors import ConfigError, DingTalkError, DingTalkQuotaExhausted, SyncdError
from syncd.pipeline.apply import Apply
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.reconcile import matches
from syncd.settings_kinds import KindSettings

#: DingTalk lists instances at most this far back.
LONGEST = timedelta(days=365)
PURPOSE = "reconcile"
FINISHED_STATUSES = ("COMPLETED", "TERMINATED")

#: Finding categories, in report order; ``foreign`` is information, not a difference.
CATEGORIES = ("finished", "adopted", "duplicate", "missing", "error", "foreign")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "reconcile",
        help="compare DingTalk's instances with syncd's approvals, fix the differences",
        description="List each kind's DingTalk instances started in the last DURATION and "
        "compare them with syncd's approvals: apply outcomes syncd missed, adopt instances "
        "of lost creates, report duplicates, other systems' instances and instances "
        "DingTalk no longer has. Exit 0 when consistent or all fixed, 1 if differences "
        "remain.",
    )
    parser.add_argument(
        "--since", required=True, metavar="DURATION", help="window, e.g. 30m, 2h, 3d (max 365d)"
    )
    parser.add_argument("--kind", help="only this approval kind")
    parser.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    parser.set_defaults(handler=run)


class Progress:
    """One status line on a terminal, rewritten in place; silent when not a terminal."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.width = 0

    def show(self, text: str) -> None:
        if self.stream is None:
            return
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(text))

    def close(self) -> None:
        if self.stream is not None and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


@dataclass
class Finding:
    category: str
    text: str
    remains: bool


@dataclass
class KindReport:
    kind: str
    listed: int = 0
    ours: int = 0
    calls: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, category: str, text: str, *, remains: bool) -> None:
        self.findings.append(Finding(category, text, remains))

    @property
    def remaining(self) -> int:
        return sum(f.remains for f in self.findings)


def _name(ref: ApprovalRef | SubmitItem) -> str:
    return f"approval {ref.id} ({ref.kind} {ref.business_key} round {ref.round})"


def _correlation(value: str | None, kind: str) -> tuple[str, int] | None:
    """``syncd:{kind}/{key}/{round}`` → (key, round), for this kind only."""
    prefix = f"syncd:{kind}/"
    if not value or not value.startswith(prefix):
        return None
    key, _, number = value[len(prefix) :].rpartition("/")
    return (key, int(number)) if key and number.isdigit() else None


@dataclass
class Read:
    """One GET of an instance: the instance or the error, and the call it cost."""

    instance: ProcessInstance | None
    error: DingTalkError | None
    calls: list[CallRecord]


class Reconciler:
    """Compares one kind at a time; uses the daemon's client, stores and apply stage.

    Every DingTalk call is counted once in the monthly usage: with the approval it
    concerns when a store records a change (history and usage together), else as
    ``reconcile`` usage at the end of the kind.
    """

    def __init__(self, daemon: Daemon, *, dry_run: bool, progress: Progress) -> None:
        apply = daemon.stages["apply"]
        assert isinstance(apply, Apply)
        self.apply = apply
        self.client = daemon.client
        self.clock = daemon.clock
        self.control = daemon.control
        self.pauses = daemon.pauses
        self.quiet_after = timedelta(seconds=daemon.settings.polling.quiet_after)
        self.admin = AdminStore(daemon.pool, actor=daemon.owner)
        self.submits = PostgresSubmitStore(daemon.pool, actor=daemon.owner)
        self.track = daemon.cancel_store
        self.dry_run = dry_run
        self.progress = progress
        self.loose: list[CallRecord] = []

    async def run(self, kinds: dict[str, KindSettings], since: timedelta) -> list[KindReport]:
        now = self.clock.now()
        pause = await self.pauses.active(now)
        if pause is not None:
            until = f" until {when(pause.until)}" if pause.until else ""
            raise SyncdError(
                f"DingTalk calls are paused ({pause.reason}){until}; "
                "`syncd resume` first if the cause is fixed"
            )
        reports = []
        try:
            for name, kind in kinds.items():
                reports.append(await self.kind(name, kind, now - since))
        except DingTalkQuotaExhausted:
            await self.pauses.quota_exhausted(self.clock.now())
            raise
        finally:
            self.progress.close()
        return reports

    async def kind(self, name: str, kind: KindSettings, start: datetime) -> KindReport:
        report = KindReport(name)
        self.loose = []
        try:
            await self._compare(report, kind, start)
        finally:
            if self.loose:
                await self.control.add_usage(self.clock.now(), PURPOSE, len(self.loose))
        return report

    async def _list(self, report: KindReport, code: str, start: datetime, **kw: Any) -> list[str]:
        calls: list[CallRecord] = []
        try:
            return list(
                await call(calls, "list", PURPOSE, self.client.list_instance_ids(code, start, **kw))
            )
        finally:
            report.calls += len(calls)
            self.loose += calls

    async def _compare(self, report: KindReport, kind: KindSettings, start: datetime) -> None:
        code = kind.process_code
        self.progress.show(f"{report.kind}: listing DingTalk instances since {when(start)}")
        listed = await self._list(report, code, start)
        finished = set(await self._list(report, code, start, statuses=FINISHED_STATUSES))
        owners = await self.admin.approvals_by_instances(listed)
        report.listed, report.ours = len(listed), len(owners)
        decided = [
            owners[i]
            for i in listed
            if i in finished and i in owners and owners[i].state is ApprovalState.RUNNING
        ]
        for number, ref in enumerate(decided, 1):
            self.progress.show(f"{report.kind}: reading finished instance {number}/{len(decided)}")
            await self._settle(report, ref, await self._read(report, ref))
        orphans = [i for i in listed if i not in owners]
        unknowns = await self.admin.unknown_rounds(report.kind)
        for number, instance_id in enumerate(orphans, 1):
            self.progress.show(f"{report.kind}: reading unowned instance {number}/{len(orphans)}")
            await self._orphan(report, kind, await self._read(report, instance_id), unknowns)
        shown = set(listed)
        unlisted = [
            r
            for r in await self.admin.running_since(report.kind, code, start)
            if r.instance_id not in shown
        ]
        for number, ref in enumerate(unlisted, 1):
            self.progress.show(f"{report.kind}: reading unlisted instance {number}/{len(unlisted)}")
            read = await self._read(report, ref)
            if read.error is not None and not isinstance(read.error, DingTalkQuotaExhausted):
                self.loose += read.calls
                report.add(
                    "missing",
                    f"{_name(ref)} holds instance {ref.instance_id} as running, but DingTalk "
                    f"does not list it and cannot read it ({read.error}): check it in "
                    f"DingTalk; `syncd cancel {ref.kind} {ref.business_key}` if it should "
                    "not go on",
                    remains=True,
                )
            else:
                await self._settle(report, ref, read)

    async def _read(self, report: KindReport, target: ApprovalRef | str) -> Read:
        instance_id = target if isinstance(target, str) else target.instance_id
        assert instance_id is not None
        calls: list[CallRecord] = []
        try:
            instance = await call(calls, "get", PURPOSE, self.client.get_instance(instance_id))
        except DingTalkQuotaExhausted:
            self.loose += calls
            raise
        except DingTalkError as exc:
            return Read(None, exc, calls)
        finally:
            report.calls += len(calls)
        return Read(instance.model_copy(update={"instance_id": instance_id}), None, calls)

    async def _settle(self, report: KindReport, ref: ApprovalRef, read: Read) -> None:
        """Apply DingTalk's final word on a running approval's instance, if it has one."""
        final = final_from_instance(read.instance) if read.instance else None
        if read.instance is None or final is None or self.dry_run:
            self.loose += read.calls
        if read.error is not None:
            report.add(
                "error", f"instance {ref.instance_id}: cannot read it: {read.error}", remains=True
            )
        if read.instance is None or final is None:
            return
        said = f"{final.dingtalk_status} {final.dingtalk_result or ''}".strip()
        text = f"instance {ref.instance_id} is {said} in DingTalk but {_name(ref)} was running"
        if self.dry_run:
            report.add("finished", f"{text}: would apply {final.state}", remains=True)
            return
        tasks = tasks_from_instance(read.instance)
        if await self.apply.finish(ref, final, calls=read.calls, tasks=tasks, channel=PURPOSE):
            report.add("finished", f"{text}: applied, now {final.state}", remains=False)

    async def _orphan(
        self, report: KindReport, kind: KindSettings, read: Read, unknowns: list[SubmitItem]
    ) -> None:
        instance = read.instance
        if instance is None:
            self.loose += read.calls
            report.add("error", f"cannot read an unowned instance: {read.error}", remains=True)
            return
        match = next((u for u in unknowns if matches(u, kind, instance)), None)
        if match is not None:
            unknowns.remove(match)
            await self._adopt(report, match, instance, read.calls)
            return
        self.loose += read.calls
        values = {v.name: v.value for v in instance.form_component_values if v.name}
        field_value = values.get(kind.correlation_field) if kind.correlation_field else None
        carried = _correlation(field_value, report.kind)
        if carried is not None:
            await self._carried(report, instance, *carried)
            return
        report.add(
            "foreign",
            f"instance {instance.instance_id} (by {instance.originator_user_id or '?'}, "
            f"{instance.status}) matches no approval: not created by syncd",
            remains=False,
        )

    async def _carried(
        self, report: KindReport, instance: ProcessInstance, key: str, round_: int
    ) -> None:
        """An unowned instance carrying the key of an approval that is not waiting for it."""
        row = await self.admin.round_of(report.kind, key, round_)
        label = f"{report.kind} {key} round {round_}"
        carries = f"instance {instance.instance_id} carries the key of"
        if row is None:
            report.add(
                "foreign",
                f"{carries} {label}, which this database does not have "
                "(another syncd installation on the same DingTalk app?)",
                remains=False,
            )
            return
        owner = f"approval {row['id']} ({label})"
        if instance.status != "RUNNING":
            report.add(
                "duplicate",
                f"{carries} {owner} but is not its instance; already {instance.status}, "
                "so nothing to do",
                remains=False,
            )
        elif row["instance_id"]:
            report.add(
                "duplicate",
                f"{carries} {owner}, which owns instance {row['instance_id']}: a duplicate "
                "from a lost create; terminate it in DingTalk",
                remains=True,
            )
        else:
            report.add(
                "duplicate",
                f"{carries} {owner}, which is {row['state']} without an instance: check it "
                f"(`syncd show {report.kind} {key}`) before it is submitted again",
                remains=True,
            )

    async def _adopt(
        self,
        report: KindReport,
        item: SubmitItem,
        instance: ProcessInstance,
        calls: list[CallRecord],
    ) -> None:
        text = f"instance {instance.instance_id} is the lost create of {_name(item)}"
        if self.dry_run:
            self.loose += calls
            report.add("adopted", f"{text}: would adopt it", remains=True)
            return
        now = self.clock.now()
        adopted = await self.submits.record_created(
            item.id,
            instance_id=instance.instance_id,
            process_code=item.process_code or "",
            form_values=None,
            now=now,
            next_poll_at=now + self.quiet_after,
            created_at=instance.create_time,
            calls=calls,
        )
        if not adopted:
            self.loose += calls
            report.add("adopted", f"{text}, but it moved on meanwhile; run again", remains=True)
            return
        final = final_from_instance(instance)
        ref = await self.track.approval_by_id(item.id)
        done = "adopted"
        if final is not None and ref is not None:
            tasks = tasks_from_instance(instance)
            await self.apply.finish(ref, final, tasks=tasks, channel=PURPOSE)
            done = f"adopted, now {final.state}"
        report.add("adopted", f"{text}: {done}", remains=False)


async def run(args: argparse.Namespace) -> int:
    since = parse_duration(args.since)
    if since > LONGEST:
        raise ConfigError(f"--since {args.since}: DingTalk lists instances at most 365 days back")
    settings = settings_from(args)
    kinds = _kinds(settings.kinds, args.kind)
    settings = settings.model_copy(update={"replica_name": actor()})
    stream = sys.stderr if sys.stderr.isatty() else None
    async with Daemon(settings) as daemon:
        reconciler = Reconciler(daemon, dry_run=args.dry_run, progress=Progress(stream))
        reports = await reconciler.run(kinds, since)
    out(render(reports, dry_run=args.dry_run))
    return 1 if any(r.remaining for r in reports) else 0


def _kinds(configured: dict[str, KindSettings], only: str | None) -> dict[str, KindSettings]:
    if only is None:
        if not configured:
            raise ConfigError(
                "no approval kinds are configured ([kinds.<name>]); nothing to compare"
            )
        return dict(configured)
    if only not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise ConfigError(f"--kind {only!r} is not configured (configured kinds: {known})")
    return {only: configured[only]}


def render(reports: Sequence[KindReport], *, dry_run: bool) -> str:
    lines = []
    for report in reports:
        for finding in sorted(report.findings, key=lambda f: CATEGORIES.index(f.category)):
            mark = "!" if finding.remains else "-"
            lines.append(f"{mark} {report.kind}: {finding.text}")
    header = ["KIND", "LISTED", "OURS", *(c.upper() for c in CATEGORIES), "LEFT", "CALLS"]
    rows = []
    for report in reports:
        counts = Counter(f.category for f in report.findings)
        rows.append(
            [
                report.kind,
                str(report.listed),
                str(report.ours),
                *(str(counts[c]) for c in CATEGORIES),
                str(report.remaining),
                str(report.calls),
            ]
        )
    left = sum(r.remaining for r in reports)
    verdict = (
        "consistent"
        if not left
        else f"{left} difference(s) left" + (" (dry run)" if dry_run else "")
    )
    return "\n".join([*lines, *([""] if lines else []), table(header, rows), "", verdict])
