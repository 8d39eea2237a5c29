"""The workflow endpoints' logic: create, get, list ids, terminate, comment, schema."""

from __future__ import annotations

import itertools
import random
import string
from datetime import timedelta
from typing import Any

from syncd.ports import Clock
from syncd.simulator.files import MAX_COMMENT_FILES
from syncd.simulator.forms import FormError, Lookups, validate_form
from syncd.simulator.progress import Engine
from syncd.simulator.responses import ApiError
from syncd.simulator.state import FlowNode, Instance, get_result, ms
from syncd.simulator.storage import Storage
from syncd.simulator.world import Template, World

_ID_ALPHABET = string.ascii_letters + string.digits
_SIGNS = {"AND", "OR", "NONE"}
_STATUSES = {"RUNNING", "TERMINATED", "COMPLETED"}


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _require_str(body: dict[str, Any], key: str, code: str, message: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _bad(code, message)
    return value


def _int_field(body: dict[str, Any], key: str, code: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(code, f"{key}参数错误")
    return value


class Workflow:
    """Instances of one simulated corp and the rules of the workflow API."""

    def __init__(
        self, world: World, clock: Clock, engine: Engine, rng: random.Random, storage: Storage
    ) -> None:
        self.world = world
        self.storage = storage
        self.clock = clock
        self.engine = engine
        self.rng = rng
        self.instances: dict[str, Instance] = {}
        # businessId: yyyyMMddHHmm + 9 digits (contract A7.1), counted from a seeded start
        self._serial = itertools.count(rng.randrange(10**9))

    # create -----------------------------------------------------------------------------

    def _template(self, process_code: str) -> Template:
        template = self.world.template(process_code)
        if template is None:
            raise _bad("processCodeError", "获取审批模板失败或者模板已被删除")
        if template.status != "PUBLISHED":
            raise _bad("processGetFailed", "获取审批流程失败，模板已停用")
        return template

    def _active_user(self, user_id: object, code: str = "processInstanceInvalidParameter") -> str:
        user = self.world.user(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise _bad(code, f"用户不存在：{user_id}")
        if not user.active:
            raise _bad("invalidParameter", f"用户已离职：{user_id}")
        return user.user_id

    def _dept(self, originator: str, body: dict[str, Any]) -> tuple[int, str]:
        dept_id = body.get("deptId")
        if dept_id is None:
            if not body.get("approvers"):
                raise _bad("invalidParameter", "deptId不能为空")
            dept_id = -1
        if isinstance(dept_id, bool) or not isinstance(dept_id, int):
            raise _bad("processInstanceInvalidParameter", "deptId参数错误")
        if dept_id == -1:
            root = next((d for d in self.world.departments if d.parent_id is None), None)
            return -1, root.name if root else self.world.corp.name
        dept = self.world.department(dept_id)
        user = self.world.user(originator)
        if dept is None or user is None or dept_id not in user.dept_ids:
            raise _bad("processInstanceInvalidParameter", f"发起人不在部门{dept_id}中")
        return dept_id, dept.name

    def _flow(self, template: Template, body: dict[str, Any]) -> tuple[list[FlowNode], list[str]]:
        approvers = body.get("approvers")
        if not approvers:
            nodes = [
                FlowNode(n.activity_id or f"node_{i + 1}", n.name, list(n.approvers), n.sign)
                for i, n in enumerate(template.flow)
            ]
            return nodes, list(template.cc)
        if not isinstance(approvers, list) or len(approvers) > 20:
            raise _bad("processInstanceInvalidParameter", "approvers参数错误")
        nodes = []
        for i, item in enumerate(approvers):
            action = item.get("actionType", "NONE") if isinstance(item, dict) else None
            users = item.get("userIds") if isinstance(item, dict) else None
            if action not in _SIGNS or not isinstance(users, list) or not users:
                raise _bad("processInstanceInvalidParameter", "approvers参数错误")
            checked = [self._active_user(u) for u in users]
            nodes.append(FlowNode(f"api_node_{i + 1}", "审批人", checked, action))
        cc = body.get("ccList") or []
        if not isinstance(cc, list) or len(cc) > 50:
            raise _bad("processInstanceInvalidParameter", "ccList参数错误")
        return nodes, [self._active_user(u) for u in cc]

    def _form(
        self, template: Template, body: dict[str, Any], originator: str
    ) -> tuple[list[dict[str, str]], list[str]]:
        """The checked form values, and the ids of the files its DDAttachments name."""
        values = body.get("formComponentValues")
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise _bad("invalidParameter", "formComponentValues不能为空")
        files: list[str] = []

        def attachment(value: str) -> None:
            files.extend(f.file_id for f in self.storage.attachment_value(value, originator))

        lookups = Lookups(
            users={u.user_id for u in self.world.users if u.active},
            departments={d.dept_id for d in self.world.departments} | {-1},
            instances=self.instances,
            attachment=attachment,
        )
        try:
            return validate_form(template, values, lookups), files
        except FormError as exc:
            raise _bad(exc.code, str(exc)) from exc

    def _new_id(self) -> str:
        while (new := "".join(self.rng.choices(_ID_ALPHABET, k=24))) in self.instances:
            continue
        return new

    def create(self, app_key: str, body: dict[str, Any]) -> Instance:
        """Validate a create request (§3.1) and start the instance."""
        template = self._template(
            _require_str(body, "processCode", "processCodeError", "processCode不能为空")
        )
        originator = self._active_user(body.get("originatorUserId"))
        dept_id, dept_name = self._dept(originator, body)
        app = self.world.app(app_key)
        agent = body.get("microappAgentId")
        if agent is not None and app is not None and agent != app.agent_id:
            raise _bad("invalidAgentId", "agentId不合法")
        if body.get("bizDetailPageUrl"):
            raise _bad("benefitStatusInvalid", "未开通OA高级版，无法使用该功能")
        nodes, cc = self._flow(template, body)
        form, files = self._form(template, body, originator)
        now = self.clock.now()
        user = self.world.user(originator)
        instance = Instance(
            instance_id=self._new_id(),
            process_code=template.process_code,
            title=f"{user.name if user else originator}提交的{template.name}",
            business_id=now.strftime("%Y%m%d%H%M") + f"{next(self._serial) % 10**9:09d}",
            originator=originator,
            dept_id=dept_id,
            dept_name=dept_name,
            app_key=app_key,
            biz_category_id=template.biz_category_id,
            create_time=now,
            form=form,
            nodes=nodes,
            cc=cc,
            from_api_approvers=bool(body.get("approvers")),
            corp_id=self.world.corp.corp_id,
            in_client=not app_key,
            files=files,
        )
        self.instances[instance.instance_id] = instance
        self.engine.start(instance)
        return instance

    # read -------------------------------------------------------------------------------

    def get(self, instance_id: str | None, base_url: str) -> dict[str, Any]:
        """GET one instance (§4.1); ``base_url``: where the caller reached the simulator."""
        if not instance_id:
            raise _bad("processInstanceIdError", "processInstanceId不能为空")
        instance = self.instances.get(instance_id)
        if instance is None:
            raise _bad("processInstanceNotExist", "审批实例不存在")
        return {"success": "true", "result": get_result(instance, base_url)}

    def _window(self, body: dict[str, Any]) -> tuple[int, int]:
        start = _int_field(body, "startTime", "invalidInstanceListIdsStartTime", required=True)
        end = _int_field(body, "endTime", "invalidEndTime", required=False)
        assert start is not None
        now = self.clock.now()
        day_ms = int(timedelta(days=1).total_seconds() * 1000)
        if end is None:
            if start < ms(now) - 120 * day_ms:
                raise _bad("invalidInstanceListIdsStartTime", "startTime不能早于当前时间120天")
            return start, ms(now)
        if end < start or end - start > 120 * day_ms:
            raise _bad("invalidEndTime", "endTime不合法，时间跨度不能超过120天")
        if start < ms(now) - 365 * day_ms:
            raise _bad("invalidInstanceListIdsStartTime", "startTime不能早于当前时间365天")
        return start, end

    def _list_filters(self, body: dict[str, Any]) -> tuple[set[str] | None, set[str] | None]:
        users, statuses = body.get("userIds"), body.get("statuses")
        if users is not None and (not isinstance(users, list) or len(users) > 10):
            raise _bad("invalidUserIds", "userIds最多10个")
        if statuses is not None and (
            not isinstance(statuses, list) or not set(statuses) <= _STATUSES
        ):
            raise _bad("invalidParameter", "statuses参数错误")
        return (set(users) if users else None), (set(statuses) if statuses else None)

    def list_ids(self, body: dict[str, Any]) -> dict[str, Any]:
        """List instance ids (§5.1): window and page-size rules, string nextToken."""
        code = body.get("processCode")
        if not isinstance(code, str) or self.world.template(code) is None:
            raise _bad("invalidProcessCode", "processCode不合法")
        start, end = self._window(body)
        token = _int_field(body, "nextToken", "invalidNextToken", required=True)
        size = _int_field(body, "maxResults", "invalidMaxResults", required=True)
        assert token is not None and size is not None
        if token < 0 or token >= 10_000:
            raise _bad("invalidNextToken", "nextToken不合法")
        if not 1 <= size <= 20:
            raise _bad("invalidMaxResults", "maxResults最大为20")
        users, statuses = self._list_filters(body)
        ids = [
            i.instance_id
            for i in sorted(self.instances.values(), key=lambda i: i.create_time)
            if i.process_code == code
            and start <= ms(i.create_time) <= end
            and (users is None or i.originator in users)
            and (statuses is None or i.status in statuses)
        ][:10_000]
        result: dict[str, Any] = {"list": ids[token : token + size]}
        if token + size < len(ids):
            result["nextToken"] = str(token + size)
        return {"result": result, "success": True}

    # change -----------------------------------------------------------------------------

    def _existing(self, body: dict[str, Any]) -> Instance:
        instance_id = _require_str(
            body, "processInstanceId", "invalidInstanceId", "processInstanceId不能为空"
        )
        instance = self.instances.get(instance_id)
        if instance is None:
            raise _bad("aflowProcessInstNotExist", "审批实例不存在")
        return instance

    def _known_user(self, user_id: object, code: str) -> str:
        if not isinstance(user_id, str) or not user_id:
            raise _bad(code, "用户id不能为空")
        if self.world.user(user_id) is None:
            raise _bad("userNotExist", "用户不存在")
        return user_id

    def terminate(self, body: dict[str, Any]) -> dict[str, Any]:
        """Revoke (§6.1): not within 15 s, only RUNNING, operator must be the originator."""
        instance = self._existing(body)
        is_system = body.get("isSystem", False)
        if not isinstance(is_system, bool):
            raise _bad("invalidInstanceTerminateIsSystem", "isSystem参数错误")
        remark = body.get("remark") or ""
        if not isinstance(remark, str) or len(remark) > 1024:
            raise _bad("invalidParameter", "remark参数错误")
        operator = body.get("operatingUserId")
        if not is_system:
            code = "invalidInstanceTerminateOperatingUserId"
            operator = self._known_user(operator, code)
            if operator != instance.originator:
                raise _bad(code, "操作人必须是发起人")
            template = self.world.template(instance.process_code)
            if template is not None and not template.allow_revoke:
                raise _bad("internalError", "审批系统错误")
        age = (self.clock.now() - instance.create_time).total_seconds()
        if instance.status != "RUNNING" or age < 15:
            raise _bad("aflowProcessInstStatusException", "审批实例状态异常")
        who = operator if isinstance(operator, str) and operator else instance.originator
        self.engine.terminate(instance, who, remark)
        return {"result": True, "success": True}

    def comment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a comment (§6.2) as an ADD_REMARK operation record."""
        instance = self._existing(body)
        text = body.get("text")
        if not isinstance(text, str) or not text or len(text) > 1024:
            raise _bad("invalidInstanceCommentText", "评论内容不合法")
        user = self._known_user(body.get("commentUserId"), "invalidInstanceCommentUserId")
        files = body.get("file") or {}
        if not isinstance(files, dict):
            raise _bad("invalidParameter", "file参数错误")
        photos = files.get("photos") or []
        if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
            raise _bad("invalidParameter", "file.photos参数错误")
        attached = []
        if files.get("attachments"):
            try:
                found = self.storage.attached(files["attachments"], user, MAX_COMMENT_FILES)
            except ValueError as exc:
                raise _bad("invalidParameter", f"file.attachments参数错误：{exc}") from exc
            attached = [f.attachment() for f in found]
        self.engine.comment(instance, user, text, attached, photos)
        return {"result": True, "success": True}

    def comment_files(self, instance: Instance) -> list[str]:
        """The ids of the files attached to the instance's comments."""
        return [a["fileId"] for r in instance.records for a in r.attachments]
