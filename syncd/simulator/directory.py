"""The simulated organisation: the contact APIs' answers (contract §15) and the
contact-change events its changes emit (§16).

It reads and changes the world's own ``departments`` and ``users``, so the approval side
sees the same people: a person who leaves (``active = false``) can no longer start or
approve, and the contact APIs no longer find them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from syncd.ports import Clock
from syncd.simulator.responses import OapiError
from syncd.simulator.state import ms
from syncd.simulator.world import Department, User, World, check_directory

USER_ADD = "user_add_org"
USER_MODIFY = "user_modify_org"
USER_LEAVE = "user_leave_org"
USER_ACTIVE = "user_active_org"
DEPT_CREATE = "org_dept_create"
DEPT_MODIFY = "org_dept_modify"
DEPT_REMOVE = "org_dept_remove"
#: The contact-change events the simulator emits (contract §16.1).
CONTACT_EVENTS = (
    USER_ADD,
    USER_MODIFY,
    USER_LEAVE,
    USER_ACTIVE,
    DEPT_CREATE,
    DEPT_MODIFY,
    DEPT_REMOVE,
)

MAX_PAGE = 100  # v2/user/list: 1 ≤ size ≤ 100 (§15.6)
MAX_CURSOR = 100_000
_MOBILE = re.compile(r"^\+?[0-9][0-9-]{3,14}$")
#: The fields of a person ``modify_user`` may change, and their ``diffInfo`` key.
_DIFF_KEYS = {
    "name": "name",
    "email": "email",
    "job_number": "jobNumber",
    "title": "title",
    "mobile": "mobile",
}

Emit = Callable[[str, dict[str, Any]], None]


def _dept_missing(dept_id: object) -> OapiError:
    return OapiError(60003, f"部门不存在或已删除: {dept_id}")


def _user_missing() -> OapiError:
    return OapiError(60121, "找不到该用户")


def union_id(user: User) -> str:
    """The person's unionid: the world's ``union_id``, else a stable one derived from the
    userid (real ones are opaque 26-28 character strings)."""
    if user.union_id:
        return user.union_id
    return "sim" + user.user_id.encode().hex()[:24].ljust(24, "0")


class Directory:
    """The contact reads and the admin's changes; every change emits its event."""

    def __init__(self, world: World, clock: Clock, emit: Emit) -> None:
        self.world = world
        self.clock = clock
        self._emit = emit

    # reads (contract §15) -------------------------------------------------------------

    def _present(self) -> list[User]:
        return [u for u in self.world.users if u.active]

    def _dept(self, dept_id: int) -> Department:
        dept = self.world.department(dept_id)
        if dept is None:
            raise _dept_missing(dept_id)
        return dept

    def person(self, user_id: str) -> User:
        """A present person; 60121 for an unknown or departed userid (§15.8)."""
        user = self.world.user(user_id)
        if user is None or not user.active:
            raise _user_missing()
        return user

    def subdepartments(self, dept_id: int) -> list[dict[str, Any]]:
        """``v2/department/listsub``: the direct children, one level, no paging."""
        self._dept(dept_id)
        return [
            _dept_brief(d)
            for d in sorted(self.world.departments, key=lambda d: d.dept_id)
            if d.parent_id == dept_id and d.dept_id != 1
        ]

    def department(self, dept_id: int) -> dict[str, Any]:
        """``v2/department/get``."""
        dept = self._dept(dept_id)
        direct = [u for u in self._present() if dept_id in u.dept_ids]
        return _dept_brief(dept) | {
            "owning_member_count": len(direct),
            "member_count": len([u for u in self._present() if self._under(u, dept_id)]),
            "order": dept.dept_id,
            "hide_dept": False,
            "outer_dept": False,
        }

    def _under(self, user: User, dept_id: int) -> bool:
        for own in user.dept_ids:
            current = self.world.department(own)
            while current is not None:
                if current.dept_id == dept_id:
                    return True
                parent = current.parent_id
                current = self.world.department(parent) if parent is not None else None
        return False

    def members(self, dept_id: int) -> list[User]:
        """The present direct members of a department, in the department's order."""
        self._dept(dept_id)
        return [u for u in self._present() if dept_id in u.dept_ids]

    def member_page(self, dept_id: int, cursor: int, size: int) -> dict[str, Any]:
        """``v2/user/list``: ``cursor`` is an offset; ``next_cursor`` only with more."""
        if not 1 <= size <= MAX_PAGE or not 0 <= cursor <= MAX_CURSOR:
            raise OapiError(40035, "不合法的参数")
        members = self.members(dept_id)
        page = members[cursor : cursor + size]
        more = cursor + size < len(members)
        result: dict[str, Any] = {"has_more": more, "list": [_listed(u, dept_id) for u in page]}
        if more:
            result["next_cursor"] = cursor + size
        return result

    def user_detail(self, user_id: str) -> dict[str, Any]:
        """``v2/user/get``."""
        user = self.person(user_id)
        return _detail(user)

    def by_mobile(self, mobile: str) -> str:
        """``v2/user/getbymobile``: departed people are not found (§15.9)."""
        if not _MOBILE.match(mobile):
            raise OapiError(40104, "无效的手机号")
        wanted = _digits(mobile)
        for user in self._present():
            if user.mobile and _digits(user.mobile) == wanted:
                return user.user_id
        raise _user_missing()

    # changes (contract §16): each emits its event -------------------------------------

    def _event(self, event_type: str, **ids: Any) -> None:
        data: dict[str, Any] = {"timeStamp": str(ms(self.clock.now())), **ids}
        if "deptId" in ids:
            data.pop("timeStamp")  # department events carry the ids only (§16.3)
        self._emit(event_type, data)

    def _check(self, users: list[User], departments: list[Department] | None = None) -> None:
        departments = self.world.departments if departments is None else departments
        known = {d.dept_id for d in departments}
        try:
            check_directory(departments, users)
            for user in users:
                if user.active and not set(user.dept_ids) <= known:
                    raise ValueError(f"user {user.user_id}: unknown department")
        except ValueError as exc:
            raise DirectoryError(str(exc)) from exc

    def add_user(self, user: User) -> User:
        """A person joins (or rejoins under the same userid): ``user_add_org``."""
        old = self.world.user(user.user_id)
        if old is not None and old.active:
            raise DirectoryError(f"user {user.user_id} is already in the organisation")
        users = [u for u in self.world.users if u.user_id != user.user_id] + [user]
        self._check(users)
        self.world.users[:] = users
        self._event(USER_ADD, userId=[user.user_id])
        return user

    def modify_user(self, user_id: str, /, **changes: Any) -> User:
        """Change a present person's fields or departments: ``user_modify_org``; their
        activating DingTalk (``activated`` alone, to true): ``user_active_org``."""
        user = self._known_user(user_id)
        unknown = set(changes) - {*_DIFF_KEYS, "dept_ids", "activated", "state_code"}
        if unknown:
            raise DirectoryError(f"cannot change {', '.join(sorted(unknown))} of a user")
        changed = user.model_copy(update=changes)
        changed = User.model_validate(changed.model_dump())
        users = [changed if u.user_id == user_id else u for u in self.world.users]
        self._check(users)
        self.world.users[:] = users
        if set(changes) == {"activated"} and changed.activated and not user.activated:
            self._emit(USER_ACTIVE, {"userId": [user_id]})  # ids only (§16.3)
            return changed
        prev = {k: getattr(user, f) for f, k in _DIFF_KEYS.items() if f in changes}
        curr = {k: getattr(changed, f) for f, k in _DIFF_KEYS.items() if f in changes}
        diff = {"prev": prev, "curr": curr, "userid": user_id}
        self._event(USER_MODIFY, userId=[user_id], diffInfo=diff)
        return changed

    def remove_user(self, user_id: str) -> None:
        """A person leaves: ``user_leave_org``; kept in the world as departed."""
        user = self._known_user(user_id)
        user.active = False
        self._event(USER_LEAVE, userId=[user_id])

    def _known_user(self, user_id: str) -> User:
        user = self.world.user(user_id)
        if user is None or not user.active:
            raise DirectoryError(f"no user {user_id} in the organisation")
        return user

    def add_department(self, dept: Department) -> Department:
        """``org_dept_create``."""
        if self.world.department(dept.dept_id) is not None:
            raise DirectoryError(f"department {dept.dept_id} exists")
        departments = [*self.world.departments, dept]
        self._check(self.world.users, departments)
        self.world.departments[:] = departments
        self._event(DEPT_CREATE, deptId=[dept.dept_id])
        return dept

    def modify_department(
        self, dept_id: int, *, name: str | None = None, parent_id: int | None = None
    ) -> Department:
        """Rename or move a department: ``org_dept_modify``."""
        old = self.world.department(dept_id)
        if old is None:
            raise DirectoryError(f"no department {dept_id}")
        if dept_id == 1 and parent_id is not None:
            raise DirectoryError("the root department cannot be moved")
        update: dict[str, Any] = {"name": name or old.name}
        if parent_id is not None:
            update["parent_id"] = parent_id
        new = old.model_copy(update=update)
        departments = [new if d.dept_id == dept_id else d for d in self.world.departments]
        self._check(self.world.users, departments)
        self.world.departments[:] = departments
        self._event(DEPT_MODIFY, deptId=[dept_id])
        return new

    def remove_department(self, dept_id: int) -> None:
        """``org_dept_remove``; like DingTalk, only an empty leaf other than the root."""
        if self.world.department(dept_id) is None:
            raise DirectoryError(f"no department {dept_id}")
        if dept_id == 1:
            raise DirectoryError("the root department cannot be removed")
        if any(d.parent_id == dept_id for d in self.world.departments):
            raise DirectoryError(f"department {dept_id} has sub-departments")
        if any(dept_id in u.dept_ids for u in self._present()):
            raise DirectoryError(f"department {dept_id} has members")
        self.world.departments[:] = [d for d in self.world.departments if d.dept_id != dept_id]
        self._event(DEPT_REMOVE, deptId=[dept_id])


class DirectoryError(ValueError):
    """A change the organisation refuses (the admin API answers 400 with it)."""


def _digits(mobile: str) -> str:
    digits = re.sub(r"[^0-9]", "", mobile)
    return digits[2:] if mobile.startswith("+86") else digits


def _dept_brief(dept: Department) -> dict[str, Any]:
    brief: dict[str, Any] = {
        "auto_add_user": False,
        "create_dept_group": False,
        "dept_id": dept.dept_id,
        "name": dept.name,
    }
    if dept.dept_id != 1 and dept.parent_id is not None:
        brief["parent_id"] = dept.parent_id
    return brief


def _contact(user: User) -> dict[str, Any]:
    """Fields common to list items and the detail; no mobile key without a mobile."""
    fields: dict[str, Any] = {
        "active": user.activated,
        "admin": False,
        "avatar": "",
        "boss": False,
        "dept_id_list": list(user.dept_ids),
        "email": user.email,
        "exclusive_account": False,
        "hide_mobile": False,
        "job_number": user.job_number,
        "name": user.name,
        "org_email": "",
        "remark": "",
        "telephone": "",
        "title": user.title,
        "unionid": union_id(user),
        "userid": user.user_id,
        "work_place": "",
    }
    if user.mobile:
        fields |= {"mobile": user.mobile, "state_code": user.state_code}
    return dict(sorted(fields.items()))


def _listed(user: User, dept_id: int) -> dict[str, Any]:
    return _contact(user) | {"dept_order": _order(user, dept_id), "leader": False}


def _order(user: User, dept_id: int) -> int:
    # real orders reach 1.8e17, beyond 2**53 (§15.8): so do these
    return 176_220_178_909_140_512 + dept_id * 1_000 + len(user.user_id)


def _detail(user: User) -> dict[str, Any]:
    return _contact(user) | {
        "dept_order_list": [{"dept_id": d, "order": _order(user, d)} for d in user.dept_ids],
        "leader_in_dept": [{"dept_id": d, "leader": False} for d in user.dept_ids],
        "real_authed": True,
        "role_list": [],
        "senior": False,
        "union_emp_ext": {},
    }
