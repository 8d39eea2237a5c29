"""The daemon's configuration for the demo: two outbound kinds and an inbound one against
the simulator's templates.

It is the configuration an integrator would write in ``syncd.toml`` for these tables,
built in code because every address (database, simulator) is only known at run time.
"""

from __future__ import annotations

from typing import Any

from syncd.demo.world import EXPENSE, LEAVE, LEAVE_IN
from syncd.settings import Settings, settings_from_data
from syncd.simulator import World

STATUS_MAP = {"approved": "APPROVED", "rejected": "REJECTED", "canceled": "CANCELED"}
WRITE_BACK_COLUMNS = {
    "approval_status": "status",
    "instance_id": "instance_id",
    "decided_at": "finished_at",
}

KINDS: dict[str, dict[str, Any]] = {
    "leave": {
        "process_code": LEAVE,
        "originator": "applicant",
        "correlation_field": "业务编号",
        "form": {
            "请假类型": "leave_type",
            '["开始时间","结束时间"]': {"fields": ["start_date", "end_date"]},
            "天数": "days",
            "请假事由": {"template": "{reason}"},
        },
        "write_back": {
            "table": "app.leave_request",
            "key_column": "id",
            "columns": WRITE_BACK_COLUMNS,
            "status_map": STATUS_MAP,
        },
    },
    "expense": {
        "process_code": EXPENSE,
        "originator": "applicant",
        "correlation_field": "业务编号",
        "form": {
            "金额（元）": "amount",
            "费用类型": "category",
            "发生日期": "spent_on",
            "说明": {"template": "{note}"},
            "明细": {"field": "items", "columns": {"项目": "name", "金额": "amount"}},
        },
        "write_back": {
            "table": "app.expense_claim",
            "key_column": "id",
            "columns": WRITE_BACK_COLUMNS,
            "status_map": STATUS_MAP,
        },
    },
}

#: The expense claim's receipt (a bytea column) for the template's DDAttachment, uploaded
#: as the applicant before the create: only with the tables in syncd's PostgreSQL.
RECEIPTS: dict[str, Any] = {"附件": {"field": "receipt", "name_field": "receipt_name"}}

#: The inbound kind: leave requests started in DingTalk become rows of app.leave_from_dingtalk.
INBOUND = "leave_dingtalk"
INBOUND_TABLE = "app.leave_from_dingtalk"
INBOUND_KINDS: dict[str, dict[str, Any]] = {
    INBOUND: {
        "direction": "inbound",
        "process_code": LEAVE_IN,
        "inbound": {
            "table": INBOUND_TABLE,
            "key_column": "instance_id",
            "columns": {
                "leave_type": "请假类型",
                "period": '["开始时间","结束时间"]',
                "days": "天数",
                "reason": "请假事由",
            },
            "instance_columns": {
                "serial": "business_id",
                "applicant": "originator",
                "started_at": "created_at",
            },
        },
        "write_back": {
            "table": INBOUND_TABLE,
            "key_column": "instance_id",
            "columns": {"approval_status": "status", "decided_at": "finished_at"},
            "status_map": STATUS_MAP,
        },
    }
}

# Business table, key column and the condition that submits, per kind.
CAPTURES = {
    "leave": ("app.leave_request", "id", "NEW.status = 'submitted'"),
    "expense": ("app.expense_claim", "id", "NEW.status = 'submitted'"),
}


#: The business database's name in the demo's configuration (``[databases.legacy]``).
BUSINESS = "legacy"


def business_kinds() -> dict[str, dict[str, Any]]:
    """The kinds with their tables in the business database ``[databases.legacy]``."""
    kinds = {}
    for kind, options in KINDS.items():
        write_back = options["write_back"]
        table = write_back["table"].removeprefix("app.")
        kinds[kind] = {
            **options,
            "database": BUSINESS,
            "write_back": {**write_back, "table": table},
        }
    return kinds


def demo_settings(
    dsn: str, simulator_url: str, world: World, business_url: str | None = None
) -> Settings:
    """Settings for a daemon that talks to the simulator at ``simulator_url``; with
    ``business_url`` (a ``mysql://`` URL), the outbound kinds' tables are in that database,
    without the receipts or the inbound kind (both need the business tables in syncd's
    PostgreSQL).

    Each section is validated, but no ``SYNCD_*`` variable or config file is read: the
    demo must never reach a real database or tenant configured for this shell.
    """
    app = world.apps[0]
    return settings_from_data(
        {
            "database": {"dsn": dsn, "pool_max_size": 5},
            "dingtalk": {
                "app_key": app.app_key,
                "app_secret": app.app_secret,
                "agent_id": app.agent_id,  # the approval space query needs it
                "api_url": simulator_url,
                "oapi_url": simulator_url,
            },
            "events": {"stream": True},
            "http": {"host": "127.0.0.1", "port": 0},
            "pipeline": {"outbox_poll_interval": 1.0},
            # uploads name the applicant by the unionId the synced directory holds
            "directory": {"enabled": True},
            "kinds": _kinds() if business_url is None else business_kinds(),
            **({} if business_url is None else _databases(business_url)),
        }
    )


def _kinds() -> dict[str, dict[str, Any]]:
    """The kinds with their tables in syncd's PostgreSQL: receipts, and the inbound kind."""
    expense = {**KINDS["expense"], "attachments": RECEIPTS}
    return {**KINDS, "expense": expense, **INBOUND_KINDS}


def _databases(url: str) -> dict[str, Any]:
    return {"databases": {BUSINESS: {"dsn": url, "poll_min": 0.05, "poll_max": 0.5}}}
