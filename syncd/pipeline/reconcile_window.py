"""Compare DingTalk's instances of a time window with syncd's approvals (``syncd reconcile``).

For each kind, list the template's instances started in the window and compare them
with ``syncd.approval``:

* an instance DingTalk finished that syncd still holds as running: read it and apply
  the outcome (final state and write-back, one transaction);
* an instance no approval owns that matches an approval whose create outcome is
  unknown (by the correlation field, else by form values): adopt it, as the
  :class:`~syncd.pipeline.reconcile.Reconcile` stage does;
* an instance no approval owns that carries the key of an approval owning another
  instance: a duplicate from a lost create, reported for a person to terminate;
* an instance no approval owns and nothing matches: not syncd's (another system's);
* a running approval whose instance DingTalk does not list: read it; gone means a
  difference left for a person.

With ``dry_run`` it reads and reports, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from syncd.dingtalk.models import ProcessInstance
from syncd.domain import ApprovalRef, ApprovalState, CallRecord, SubmitItem
from syncd.errors import DingTalkError, DingTalkQuotaExhausted
from syncd.pipeline.apply import Apply
from syncd.pipeline.calls import call
from syncd.pipeline.outcomes import final_from_instance, tasks_from_instance
from syncd.pipeline.pauses import Pauses
from syncd.pipeline.reconcile import finish_adopted, matches, record_adoption
from syncd.ports import ApprovalClient, Clock, ControlStore, ReconcileLookup, SubmitStore
from syncd.settings_kinds import KindSettings

PURPOSE = "reconcile"
FINISHED_STATUSES = ("COMPLETED", "TERMINATED")

#: Finding categories, in report order; ``foreign`` is information, not a difference.
CATEGORIES = ("finished", "adopted", "duplicate", "missing", "error", "foreign")


class ReconcileProgress(Protocol):
    """Told where a comparison is, for a status line."""

    def listing(self, kind: str, since: datetime) -> None:
        """Listing a kind's DingTalk instances started since ``since``."""
        ...

    def reading(self, kind: str, which: str, number: int, total: int) -> None:
        """Reading the ``number``-th of ``total`` instances (``which``: finished,
        unowned, unlisted)."""
        ...


@dataclass
class Finding:
    category: str
    text: str
    remains: bool


@dataclass
class KindReport:
    """What one kind's comparison found, and the DingTalk calls it spent."""

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


class ReconcileWindow:
    """Compares one kind at a time and fixes what it can (unless ``dry_run``).

    Every DingTalk call is counted once in the monthly usage: with the approval it
    concerns when a store records a change (history and usage together), else as
    ``reconcile`` usage at the end of the kind. An exhausted quota pauses DingTalk calls
    cluster-wide and ends the comparison (``DingTalkQuotaExhausted``).
    """

    def __init__(
        self,
        client: ApprovalClient,
        lookup: ReconcileLookup,
        submits: SubmitStore,
        control: ControlStore,
        pauses: Pauses,
        apply: Apply,
        clock: Clock,
        *,
        quiet_after: timedelta,
        dry_run: bool,
        progress: ReconcileProgress,
    ) -> None:
        self.client = client
        self.lookup = lookup
        self.submits = submits
        self.control = control
        self.pauses = pauses
        self.apply = apply
        self.clock = clock
        self.quiet_after = quiet_after
        self.dry_run = dry_run
        self.progress = progress
        self.loose: list[CallRecord] = []

    async def run(self, kinds: dict[str, KindSettings], since: timedelta) -> list[KindReport]:
        """Compare each kind's instances started in the last ``since``."""
        start = self.clock.now() - since
        reports = []
        try:
            for name, kind in kinds.items():
                reports.append(await self.kind(name, kind, start))
        except DingTalkQuotaExhausted:
            await self.pauses.quota_exhausted(self.clock.now())
            raise
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
        self.progress.listing(report.kind, start)
        listed = await self._list(report, code, start)
        finished = set(await self._list(report, code, start, statuses=FINISHED_STATUSES))
        owners = await self.lookup.approvals_by_instances(listed)
        report.listed, report.ours = len(listed), len(owners)
        decided = [
            owners[i]
            for i in listed
            if i in finished and i in owners and owners[i].state is ApprovalState.RUNNING
        ]
        for number, ref in enumerate(decided, 1):
            self.progress.reading(report.kind, "finished", number, len(decided))
            await self._settle(report, ref, await self._read(report, ref))
        orphans = [i for i in listed if i not in owners]
        unknowns = await self.lookup.unknown_rounds(report.kind)
        for number, instance_id in enumerate(orphans, 1):
            self.progress.reading(report.kind, "unowned", number, len(orphans))
            await self._orphan(report, kind, await self._read(report, instance_id), unknowns)
        shown = set(listed)
        unlisted = [
            r
            for r in await self.lookup.running_since(report.kind, code, start)
            if r.instance_id not in shown
        ]
        for number, ref in enumerate(unlisted, 1):
            self.progress.reading(report.kind, "unlisted", number, len(unlisted))
            await self._unlisted(report, ref, await self._read(report, ref))

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

    async def _unlisted(self, report: KindReport, ref: ApprovalRef, read: Read) -> None:
        """A running approval whose instance DingTalk did not list."""
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
            await self._adopt(report, kind, match, instance, read.calls)
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
        owner = await self.lookup.round_of(report.kind, key, round_)
        label = f"{report.kind} {key} round {round_}"
        carries = f"instance {instance.instance_id} carries the key of"
        if owner is None:
            report.add(
                "foreign",
                f"{carries} {label}, which this database does not have "
                "(another syncd installation on the same DingTalk app?)",
                remains=False,
            )
            return
        name = f"approval {owner.id} ({label})"
        if instance.status != "RUNNING":
            report.add(
                "duplicate",
                f"{carries} {name} but is not its instance; already {instance.status}, "
                "so nothing to do",
                remains=False,
            )
        elif owner.instance_id:
            report.add(
                "duplicate",
                f"{carries} {name}, which owns instance {owner.instance_id}: a duplicate "
                "from a lost create; terminate it in DingTalk",
                remains=True,
            )
        else:
            report.add(
                "duplicate",
                f"{carries} {name}, which is {owner.state} without an instance: check it "
                f"(`syncd show {report.kind} {key}`) before it is submitted again",
                remains=True,
            )

    async def _adopt(
        self,
        report: KindReport,
        kind: KindSettings,
        item: SubmitItem,
        instance: ProcessInstance,
        calls: list[CallRecord],
    ) -> None:
        text = f"instance {instance.instance_id} is the lost create of {_name(item)}"
        if self.dry_run:
            self.loose += calls
            report.add("adopted", f"{text}: would adopt it", remains=True)
            return
        adopted = await record_adoption(
            self.submits,
            item,
            instance,
            calls,
            process_code=item.process_code or kind.process_code,
            now=self.clock.now(),
            quiet_after=self.quiet_after,
        )
        if not adopted:
            self.loose += calls
            report.add("adopted", f"{text}, but it moved on meanwhile; run again", remains=True)
            return
        final = await finish_adopted(self.apply, item, instance)
        done = "adopted" if final is None else f"adopted, now {final.state}"
        report.add("adopted", f"{text}: {done}", remains=False)
