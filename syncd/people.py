"""People and departments of the DingTalk directory, and how a legacy system names them.

A legacy row names a person by a DingTalk userId, a job number (工号), a mobile number or
an email (:data:`By`). Each is compared in a normal form (:func:`normal`), the same on
both sides: what the directory stores for a user and what a row says. The forms are:

- ``userid``: the text, trimmed.
- ``job_number``: trimmed, upper-cased (``e1001`` and ``E1001`` are one job number).
- ``email``: trimmed, lower-cased (the directory holds ``email`` and ``org_email``).
- ``mobile``: ``+<country code><number>``, digits only. Spaces, dashes, dots and
  parentheses are dropped; ``+CC`` or ``00CC`` gives the country code, otherwise the
  default one (DingTalk's ``state_code``, ``86`` by default) is put in front; a ``0``
  trunk prefix is dropped. So ``138 0013 8000``, ``+86 138-0013-8000`` and
  ``008613800138000`` are all ``+8613800138000``.

A departed user's matching values are not kept: only :func:`match_hash` of each, so that
a look-up can still say "departed" instead of "unknown".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from syncd.domain import ApprovalRef

By = Literal["userid", "job_number", "mobile", "email"]
BYS: tuple[By, ...] = get_args(By)
#: How a kind names a department: DingTalk's id, or its name (or path of names from the
#: top: ``研发部/后端组``).
DeptBy = Literal["dept_id", "name"]

DEFAULT_COUNTRY_CODE = "86"
_MOBILE_JUNK = re.compile(r"[\s\-.()/]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
#: Calling codes are 1 to 3 digits; the ones DingTalk users have most, longest first.
_COUNTRY_CODES = ("852", "853", "886", "86", "1", "44", "65", "81", "82", "60", "61", "49")


class NotAnIdentifier(ValueError):
    """A value that cannot name anyone by the chosen ``by`` (e.g. an email without ``@``)."""


def normal_mobile(value: str, state_code: str | None = None) -> str:
    """A mobile number as ``+<country code><digits>``; :class:`NotAnIdentifier` if it is
    not one. ``state_code`` is the country code to assume when the number has none."""
    text = _MOBILE_JUNK.sub("", value.strip())
    country = (state_code or DEFAULT_COUNTRY_CODE).lstrip("+").lstrip("0") or DEFAULT_COUNTRY_CODE
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    else:
        national = text[1:] if text.startswith("0") else text
        digits = country + national
    if not digits.isdigit() or not 7 <= len(digits) <= 17 or not digits.isascii():
        raise NotAnIdentifier(f"{value!r} is not a mobile number")
    return "+" + digits


def normal(by: By, value: str) -> str:
    """``value`` in the normal form of ``by`` (see the module's docs)."""
    text = value.strip()
    if not text:
        raise NotAnIdentifier(f"an empty {by}")
    if by == "mobile":
        return normal_mobile(text)
    if by == "email":
        if not _EMAIL.match(text):
            raise NotAnIdentifier(f"{value!r} is not an email address")
        return text.lower()
    if by == "job_number":
        return text.upper()
    return text


def match_hash(by: By, normal_value: str) -> str:
    """What is kept of a departed user's matching value: a hash of ``by`` and the value."""
    return hashlib.sha256(f"{by}:{normal_value}".encode()).hexdigest()


@dataclass(frozen=True)
class DirectoryUser:
    """One person as the directory keeps them (only what matching and display need)."""

    user_id: str
    name: str
    union_id: str | None = None
    job_number: str | None = None
    mobile: str | None = None  # normal form
    email: str | None = None  # normal form
    org_email: str | None = None  # normal form
    dept_ids: tuple[int, ...] = ()
    activated: bool = True  # has activated DingTalk

    def keys(self) -> dict[By, list[str]]:
        """The normal values this user is found by."""
        found: dict[By, list[str]] = {"userid": [self.user_id]}
        if self.job_number:
            found["job_number"] = [self.job_number]
        if self.mobile:
            found["mobile"] = [self.mobile]
        emails = [e for e in (self.email, self.org_email) if e]
        if emails:
            found["email"] = list(dict.fromkeys(emails))
        return found

    def hashes(self) -> list[str]:
        """:func:`match_hash` of every value this user is found by (userid excluded)."""
        keys = self.keys()
        return sorted(match_hash(by, v) for by in BYS if by != "userid" for v in keys.get(by, []))


@dataclass(frozen=True)
class DirectoryDepartment:
    """One department: its id, name and parent (none for the root, 1)."""

    dept_id: int
    name: str
    parent_id: int | None = None


@dataclass(frozen=True)
class UserPage:
    """One page of a department's direct members (``v2/user/list``)."""

    users: list[DirectoryUser] = field(default_factory=list)
    next_cursor: int | None = None  # None: the last page


# --- contact-change events (what their reads found, stored at once) ----------------------


@dataclass(frozen=True)
class DirectoryChanges:
    """What a batch of contact-change events told, after reading DingTalk again.

    ``users`` and ``departments`` were read present at ``read_at``; ``gone`` are users no
    longer there and ``removed`` departments no longer there, each as of its time (the
    read's, or the event's own for a leave or a removal, which need no read).
    """

    read_at: datetime
    users: tuple[DirectoryUser, ...] = ()
    departments: tuple[DirectoryDepartment, ...] = ()
    gone: tuple[tuple[str, datetime], ...] = ()
    removed: tuple[tuple[int, datetime], ...] = ()


PersonRole = Literal["originator", "approver"]


@dataclass(frozen=True)
class PersonLeft:
    """An unfinished approval whose originator, or the holder of one of its running
    tasks, has left the organisation (noted in its history)."""

    approval: ApprovalRef
    user_id: str
    role: PersonRole
    message: str
