"""People named by job number, mobile or email become DingTalk userIds, at submit.

A kind may name the originator, approvers and cc by what the legacy system knows, and the
originator's department by name (:mod:`syncd.settings_kinds`). Before a create, every
such value is looked up in the synced directory (the ``PeopleDirectory`` port), and each
must name exactly one present person (one department): otherwise the round is parked
with its own code and a message naming the field, the source, who matched and the fix —
``person_unknown``, ``person_ambiguous``, ``person_departed``, ``department_unknown``,
``department_ambiguous``, and ``not_in_department`` when the directory knows that the
originator is not a member of the department given. A directory whose first full sync
has not finished parks nothing: the round waits (:class:`DirectoryNotReady`).

A mobile nobody present holds is asked of DingTalk once (by-mobile, then the user's
detail, saved in the directory), and the answer is remembered until the next full sync.
Messages show mobiles and emails masked (:func:`syncd.pipeline.naming.masked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.domain import CallRecord
from syncd.errors import SyncdError
from syncd.people import By, normal
from syncd.pipeline.calls import call
from syncd.pipeline.naming import Named, Slot
from syncd.pipeline.sources import Resolved
from syncd.ports import Clock
from syncd.ports.directory import DirectoryClient
from syncd.ports.lookup import (
    Holder,
    LookupObserver,
    NamedDepartment,
    NullLookupObserver,
    PeopleDirectory,
)

#: What a round waiting for the directory says in ``last_error_message``.
WAITING = "waiting for the directory's first full sync (syncd directory status)"
#: The longest a round waits before asking again whether the first full sync finished.
WAIT_CAP = 60.0
_WORDS = {"job_number": "job number", "mobile": "mobile", "email": "email"}


class LookupProblem(SyncdError):
    """A named person or department the directory does not translate into exactly one."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DirectoryNotReady(SyncdError):
    """No full sync of the directory has finished yet: look-ups would all fail."""


def directory_wait(waited: float, base: float) -> float:
    """Seconds a round waits for the first full sync: as long again as it has waited, at
    least ``base``, at most :data:`WAIT_CAP`."""
    return min(WAIT_CAP, max(base, waited))


@dataclass(frozen=True)
class Match:
    """How one look-up ended: ``found`` (``holder``), ``unknown``, ``ambiguous`` or
    ``departed`` (``holders`` says who)."""

    outcome: str
    holders: tuple[Holder, ...] = ()

    @property
    def holder(self) -> Holder:
        return self.holders[0]


def match(holders: Sequence[Holder]) -> Match:
    """The outcome of a look-up from who holds the value: exactly one present holder is
    found; several are ambiguous; only departed ones say departed; nobody is unknown."""
    present = tuple(h for h in holders if not h.departed)
    if len(present) == 1:
        return Match("found", present)
    if present:
        return Match("ambiguous", present)
    return Match("departed", tuple(holders)) if holders else Match("unknown")


def department_matches(value: str, candidates: Sequence[NamedDepartment]) -> list[NamedDepartment]:
    """The departments ``value`` names among those with its last name: any of them for a
    single name; for a path, those whose names from the top (root or not) are the path."""
    parts = tuple(part.strip() for part in value.strip().split("/"))
    if len(parts) == 1:
        return [c for c in candidates if c.path[-1:] == parts]
    return [c for c in candidates if c.complete and parts in (c.path, c.path[1:])]


def _path(dept: NamedDepartment) -> str:
    below_root = dept.path[1:] if dept.complete and len(dept.path) > 1 else dept.path
    return "/".join(below_root)


def _who(holders: Sequence[Holder]) -> str:
    return ", ".join(f"{h.user_id} ({h.name})" for h in holders)


def person_problem(named: Named, found: Match) -> LookupProblem:
    """The parking reason for a person look-up that did not find exactly one."""
    what = f"{_WORDS.get(named.by, named.by)} {named.shown} ({named.source})"
    if found.outcome == "ambiguous":
        return LookupProblem(
            "person_ambiguous",
            f"{named.role}: {len(found.holders)} people in the DingTalk directory have "
            f"{what}: {_who(found.holders)}; name them by what only one has (a job number "
            "or a userId), or correct the directory",
        )
    if found.outcome == "departed":
        return LookupProblem(
            "person_departed",
            f"{named.role}: only someone who has left the organisation had {what}: "
            f"{_who(found.holders)}; name someone present",
        )
    return LookupProblem(
        "person_unknown",
        f"{named.role}: nobody in the DingTalk directory has {what}; correct the value, or "
        "if they joined after the latest full sync, retry after the next one (syncd "
        "directory status)",
    )


def department_problem(named: Named, found: Sequence[NamedDepartment]) -> LookupProblem:
    if not found:
        return LookupProblem(
            "department_unknown",
            f"dept_id: no department in the DingTalk directory is named {named.value!r} "
            f"({named.source}); write its name, or its path of names from the top such as "
            "'研发部/后端组'",
        )
    listed = ", ".join(f"{_path(d)} ({d.dept_id})" for d in found)
    return LookupProblem(
        "department_ambiguous",
        f"dept_id: {len(found)} departments in the DingTalk directory are named "
        f"{named.value!r} ({named.source}): {listed}; write the path of names from the top "
        "to tell them apart",
    )


@dataclass
class _Found:
    """What the look-ups of one round found: answers by slot, and the history's words."""

    answers: dict[Slot, str | int]
    names: dict[str, str]
    lines: list[str]
    problems: list[LookupProblem]


class People:
    """Translates the people and department of a resolved request through the directory."""

    def __init__(
        self,
        directory: PeopleDirectory,
        contacts: DirectoryClient | None,
        clock: Clock,
        *,
        observer: LookupObserver | None = None,
    ) -> None:
        self.directory = directory
        self.contacts = contacts
        self.clock = clock
        self.observer = observer or NullLookupObserver()

    async def translate(self, resolved: Resolved, calls: list[CallRecord]) -> tuple[Resolved, str]:
        """``resolved`` with userIds and the department id in place, and how each was
        found (for the round's history). Raises :class:`LookupProblem` or
        :class:`DirectoryNotReady`; a by-mobile call's ``DingTalkError`` propagates."""
        looked_up = [n for n in resolved.named if n.by not in ("userid", "dept_id")]
        if await self.directory.last_full_sync() is None:
            for named in looked_up:
                self.observer.directory_lookup(named.by, "not_synced")
            raise DirectoryNotReady(WAITING)
        found = _Found({}, {}, [], [])
        for by in ("job_number", "mobile", "email"):
            group = [n for n in resolved.named if n.by == by]
            if group:
                await self._people(by, group, found, calls)
        for named in resolved.named:
            if named.by == "userid":
                found.lines.append(f"{named.role} userid {named.value}")
            elif named.by == "name":
                await self._department(named, found)
        if not found.problems:
            await self._check_member(resolved, found)
        if found.problems:
            first = found.problems[0]
            raise LookupProblem(first.code, "; ".join(p.message for p in found.problems))
        return resolved.translated(found.answers), "; ".join(found.lines)

    async def _people(
        self, by: By, group: list[Named], found: _Found, calls: list[CallRecord]
    ) -> None:
        normals = {n.slot: normal(by, n.value) for n in group}
        holders = await self.directory.holders(by, list(normals.values()))
        asked: dict[str, Holder | None] = {}
        for named in group:
            value = normals[named.slot]
            result = match(holders.get(value, []))
            outcome = result.outcome
            if by == "mobile" and outcome in ("unknown", "departed"):
                if value not in asked:
                    asked[value] = await self._ask_by_mobile(value, calls)
                if (holder := asked[value]) is not None:
                    result, outcome = Match("found", (holder,)), "by_mobile_api"
            self.observer.directory_lookup(by, outcome)
            if result.outcome != "found":
                found.problems.append(person_problem(named, result))
                continue
            who = result.holder
            found.answers[named.slot] = who.user_id
            found.names[who.user_id] = who.name
            how = " (asked DingTalk by mobile)" if outcome == "by_mobile_api" else ""
            found.lines.append(f"{named.role} {by} {named.shown} → {who.user_id} ({who.name}){how}")

    async def _ask_by_mobile(self, mobile: str, calls: list[CallRecord]) -> Holder | None:
        """Ask DingTalk who has this mobile, once until the next full sync."""
        if self.contacts is None or await self.directory.mobile_answer(mobile) is not None:
            return None  # asked since the latest full sync: a user found then is saved
        asked_at = self.clock.now()
        user_id = await call(
            calls,
            "user_by_mobile",
            "lookup",
            self.contacts.user_id_by_mobile(mobile),
            metered=False,
        )
        user = None
        if user_id is not None:
            user = await call(
                calls, "user_get", "lookup", self.contacts.user(user_id), metered=False
            )
        await self.directory.save_mobile_answer(mobile, user, asked_at)
        return Holder(user.user_id, user.name) if user is not None else None

    async def _department(self, named: Named, found: _Found) -> None:
        last = named.value.strip().split("/")[-1].strip()
        matches = department_matches(named.value, await self.directory.departments_named(last))
        outcome = "found" if len(matches) == 1 else "ambiguous" if matches else "unknown"
        self.observer.directory_lookup("name", outcome)
        if outcome != "found":
            found.problems.append(department_problem(named, matches))
            return
        found.answers[named.slot] = matches[0].dept_id
        found.lines.append(f"dept_id name {named.value} → {matches[0].dept_id}")

    async def _check_member(self, resolved: Resolved, found: _Found) -> None:
        """Where the directory knows, the originator must belong to the department."""
        dept = found.answers.get(("dept_id", 0, 0), resolved.dept_id)
        originator = found.answers.get(("originator", 0, 0))
        by_name = ("dept_id", 0, 0) in found.answers
        if dept in (None, -1) or (originator is None and not by_name):
            return
        user_id = str(originator if originator is not None else resolved.originator)
        if await self.directory.membership(user_id, int(dept)) is False:
            name = found.names.get(user_id)
            who = f"{user_id} ({name})" if name else user_id
            found.problems.append(
                LookupProblem(
                    "not_in_department",
                    f"dept_id: the originator {who} is not a member of department {dept} in "
                    "the DingTalk directory; name a department they belong to",
                )
            )
