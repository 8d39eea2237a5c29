"""The built-in demo world: one app, two departments, twelve people (job numbers, mobiles,
emails; one without a mobile, one departed), two templates."""

from __future__ import annotations

from typing import Any

_PEOPLE = [
    ("manager1", "王经理", [2]),
    ("manager2", "李经理", [3]),
    ("hr1", "陈人事", [2]),
    ("finance1", "赵财务", [3]),
    ("finance2", "钱财务", [3]),
    ("u1", "张三", [2]),
    ("u2", "李四", [2]),
    ("u3", "王五", [2]),
    ("u4", "赵六", [3]),
    ("u5", "孙七", [3]),
    ("u6", "周八", [3]),
    ("left1", "吴九", [2]),
]

DEFAULT_WORLD: dict[str, Any] = {
    "corp": {"corp_id": "dingsimcorp0001", "name": "示例科技有限公司"},
    "apps": [
        {
            "app_key": "dingsimappkey0001",
            "app_secret": "sim-app-secret-0001",
            "agent_id": 3000001,
            "name": "syncd demo",
        }
    ],
    "departments": [
        {"dept_id": 1, "name": "示例科技有限公司"},
        {"dept_id": 2, "name": "研发部", "parent_id": 1},
        {"dept_id": 3, "name": "财务部", "parent_id": 1},
    ],
    "users": [
        {
            "user_id": uid,
            "name": name,
            "dept_ids": depts,
            "active": uid != "left1",
            "activated": uid != "u4",  # has not activated DingTalk yet
            "job_number": f"E{n:04d}",
            "mobile": "" if uid == "u6" else f"1380000{n:04d}",  # u6 has no mobile
            "email": "" if uid == "u5" else f"{uid}@example.com",
        }
        for n, (uid, name, depts) in enumerate(_PEOPLE, start=1)
    ],
    "templates": [
        {
            "process_code": "PROC-SIM-LEAVE",
            "name": "请假",
            "form_uuid": "FORM-SIM-LEAVE",
            "components": [
                {
                    "type": "DDSelectField",
                    "label": "请假类型",
                    "required": True,
                    "options": ["年假", "事假", "病假"],
                },
                {"type": "DDDateRangeField", "label": ["开始时间", "结束时间"], "required": True},
                {"type": "NumberField", "label": "天数", "required": True},
                {"type": "TextareaField", "label": "请假事由"},
                {"type": "TextField", "label": "业务编号"},
            ],
            "flow": [
                {"name": "直属主管", "approvers": ["manager1"], "sign": "NONE"},
                {"name": "人事", "approvers": ["hr1"], "sign": "NONE"},
            ],
        },
        {
            "process_code": "PROC-SIM-EXPENSE",
            "name": "报销",
            "form_uuid": "FORM-SIM-EXPENSE",
            "components": [
                {"type": "MoneyField", "label": "金额（元）", "required": True},
                {
                    "type": "DDSelectField",
                    "label": "费用类型",
                    "required": True,
                    "options": ["差旅", "餐饮", "办公用品"],
                },
                {"type": "DDDateField", "label": "发生日期", "required": True},
                {"type": "TextareaField", "label": "说明"},
                {"type": "TextField", "label": "业务编号"},
                {
                    "type": "TableField",
                    "label": "明细",
                    "children": [
                        {"type": "TextField", "label": "项目", "required": True},
                        {"type": "MoneyField", "label": "金额", "required": True},
                    ],
                },
                {"type": "DDAttachment", "label": "附件"},
            ],
            "flow": [
                {"name": "主管", "approvers": ["manager1", "manager2"], "sign": "OR"},
                {"name": "财务会签", "approvers": ["finance1", "finance2"], "sign": "AND"},
            ],
            "cc": ["hr1"],
        },
    ],
    "rules": [
        {
            "process_code": "PROC-SIM-LEAVE",
            "field": "天数",
            "op": "le",
            "value": "3",
            "decision": "agree",
            "delay": 30,
            "remark": "同意",
        },
        {
            "process_code": "PROC-SIM-EXPENSE",
            "field": "金额（元）",
            "op": "gt",
            "value": "10000",
            "decision": "refuse",
            "delay": 20,
            "remark": "金额超出标准",
        },
        {
            "process_code": "PROC-SIM-EXPENSE",
            "field": "金额（元）",
            "op": "le",
            "value": "1000",
            "decision": "agree",
            "delay": 20,
            "remark": "同意",
        },
    ],
}
