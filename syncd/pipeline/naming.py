"""How a row names people and its department, before the directory says who they are.

``Named`` is one value a kind reads for the originator, an approver, a cc or the
department, with what ``by`` says it is and where it came from. :func:`check_named`
(pure, at ingest and at submit) refuses a value that cannot be what ``by`` says, naming
the field, the source and the fix. :func:`masked` is how messages and logs show a mobile
or an email: enough to recognise, not the whole value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncd.people import NotAnIdentifier, normal

#: Where a translated value goes: ("originator" | "approvers" | "cc" | "dept_id", step, index).
Slot = tuple[str, int, int]

_WHAT = {
    "userid": "a DingTalk userId",
    "job_number": "a job number",
    "mobile": "a mobile number",
    "email": "an email address",
    "dept_id": "a department id",
    "name": "a department name",
}
_FIX = {
    "job_number": "write the person's job number (工号)",
    "mobile": "write a mobile number such as 13800138000 or +86 138-0013-8000",
    "email": "write an email address such as name@example.com",
}
_DIGITS = re.compile(r"\D")
_CODES = ("852", "853", "886", "86", "1", "44", "65", "81", "82", "60", "61", "49")


@dataclass(frozen=True)
class Named:
    """One person (or the department) as a row names them."""

    role: str  # "originator", "approvers step 2", "cc", "dept_id"
    by: str  # userid, job_number, mobile, email; for the department dept_id or name
    value: str  # as the row gave it
    source: str  # "payload path 'applicant'", "outbox column 'originator'", ...
    slot: Slot

    @property
    def shown(self) -> str:
        """The value as messages show it (a mobile or an email masked)."""
        return masked(self.by, self.value)

    @property
    def what(self) -> str:
        """What the value should be, in words ("a job number")."""
        return _WHAT.get(self.by, self.by)


def masked(by: str, value: str) -> str:
    """``value`` as a message may show it: a mobile as ``138****8000`` (with ``+86 `` when
    it carried a country code), an email as ``z***@example.com``; anything else as is."""
    text = value.strip()
    if by == "mobile":
        return _masked_mobile(text)
    if by == "email":
        local, at, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if at else f"{text[:1]}***"
    return text


def _masked_mobile(text: str) -> str:
    digits = _DIGITS.sub("", text)
    prefix = ""
    if text.startswith(("+", "00")):
        digits = digits[2:] if text.startswith("00") else digits
        code = next((c for c in _CODES if digits.startswith(c)), "")
        prefix, digits = (f"+{code} ", digits[len(code) :]) if code else ("+", digits)
    if len(digits) >= 8:
        return f"{prefix}{digits[:3]}****{digits[-4:]}"
    return prefix + "*" * max(len(digits) - 2, 1) + digits[-2:]


def check_named(named: Named) -> str | None:
    """Why ``named.value`` cannot be what ``named.by`` says (None when it can): the field,
    the source and the fix."""
    if named.by in _FIX:
        try:
            normal(named.by, named.value)  # type: ignore[arg-type]
        except NotAnIdentifier:
            what = f"{named.shown!r} is not" if named.value.strip() else "empty, not"
            return (
                f"{named.role}: {what} {named.what} ({named.source}); {_FIX[named.by]}, "
                f"or set by to what the value is"
            )
    if named.by == "name" and not all(part.strip() for part in named.value.split("/")):
        return (
            f"dept_id: {named.value!r} is not a department name or a path of names such as "
            f"'研发部/后端组' ({named.source}); write the department's name"
        )
    return None
