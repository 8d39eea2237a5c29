"""The contract suite's MySQL/MariaDB rigs: ``MySQLTarget`` over a table mapping and over
a stored procedure, in a business database of the test's own.

The application's user owns the database: it makes the business table (with an audit
trigger that counts the writes and refuses them while ``biz_closed`` has a row, after
counting), runs ``syncd migrate --database`` (syncd's footprint) and, for the procedure
rig, the procedure. syncd's user gets only the grants docs/mysql.md asks of a DBA. The
server's time zone is not UTC (``tests.mysql.SERVER_TIME_ZONE``); syncd's session is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.db.mysql import migrations, target
from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.db.mysql.url import MySQLDatabase
from syncd.db.store import Conn
from syncd.ports import BusinessTarget
from syncd.settings_kinds import WriteBackSettings
from tests.mysql import MySQLDb, mysql_run

KIND = "request"

BUSINESS_SQL = [
    """CREATE TABLE biz_request (
        id BIGINT PRIMARY KEY, status VARCHAR(32), dingtalk_status TEXT, result TEXT,
        approver TEXT, remark TEXT, decided_at DATETIME(6), instance_id TEXT, business_id TEXT,
        syncd_round INT, syncd_seq BIGINT, waiting_at TEXT, waiting_for TEXT, problem TEXT,
        link TEXT, pc_link TEXT, mobile_link TEXT, changed_at DATETIME(6), comments JSON,
        last_comment TEXT
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE biz_writes (n BIGINT AUTO_INCREMENT PRIMARY KEY, id BIGINT, round INT,
        status VARCHAR(32), seq BIGINT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "CREATE TABLE biz_closed (reason TEXT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    """CREATE TRIGGER biz_request_written AFTER UPDATE ON biz_request FOR EACH ROW
    BEGIN
        DECLARE why TEXT;
        INSERT INTO biz_writes (id, round, status, seq)
        VALUES (NEW.id, NEW.syncd_round, NEW.status, NEW.syncd_seq);
        SET why = (SELECT reason FROM biz_closed LIMIT 1);
        IF why IS NOT NULL THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = why;
        END IF;
    END""",
]

#: The application's procedure: the same columns from the outcome (its status mapped as
#: the table rig's status_map maps it), refusing a missing row. Times come as UTC ISO
#: 8601 with microseconds (``CAST(LEFT(…, 26) AS DATETIME(6))``).
PROCEDURE_SQL = [
    """CREATE FUNCTION biz_text(doc JSON, path VARCHAR(100)) RETURNS TEXT CHARSET utf8mb4
        DETERMINISTIC
        RETURN IF(COALESCE(JSON_TYPE(JSON_EXTRACT(doc, path)), 'NULL') = 'NULL', NULL,
                  JSON_UNQUOTE(JSON_EXTRACT(doc, path)))""",
    """CREATE PROCEDURE biz_record_outcome(business_key VARCHAR(255), outcome JSON)
    BEGIN
        DECLARE state TEXT DEFAULT biz_text(outcome, '$.status');
        DECLARE missing TEXT DEFAULT CONCAT('no request ', business_key);
        UPDATE biz_request
           SET status = CASE state WHEN 'running' THEN 'IN_APPROVAL'
                                   WHEN 'invalid' THEN 'NOT_SUBMITTED'
                                   WHEN 'dead' THEN 'FAILED' ELSE UPPER(state) END,
               dingtalk_status = biz_text(outcome, '$.dingtalk_status'),
               result = biz_text(outcome, '$.result'),
               approver = biz_text(outcome, '$.approver'),
               remark = biz_text(outcome, '$.remark'),
               decided_at = CAST(LEFT(biz_text(outcome, '$.finished_at'), 26) AS DATETIME(6)),
               instance_id = biz_text(outcome, '$.instance_id'),
               business_id = biz_text(outcome, '$.business_id'),
               syncd_round = CAST(biz_text(outcome, '$.round') AS SIGNED),
               syncd_seq = CAST(biz_text(outcome, '$.seq') AS SIGNED),
               waiting_at = biz_text(outcome, '$.current_node'),
               waiting_for = (SELECT NULLIF(GROUP_CONCAT(a ORDER BY n SEPARATOR ','), '')
                                FROM JSON_TABLE(outcome, '$.pending_approvers[*]'
                                     COLUMNS (n FOR ORDINALITY, a TEXT PATH '$')) AS p),
               problem = biz_text(outcome, '$.reason'),
               link = biz_text(outcome, '$.url'),
               pc_link = biz_text(outcome, '$.pc_url'),
               mobile_link = biz_text(outcome, '$.mobile_url'),
               changed_at = CAST(LEFT(biz_text(outcome, '$.state_changed_at'), 26)
                                 AS DATETIME(6)),
               comments = JSON_EXTRACT(outcome, '$.comments'),
               last_comment = biz_text(outcome, '$.last_comment')
         WHERE id = CAST(business_key AS SIGNED);
        IF ROW_COUNT() = 0 THEN
            SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = missing;
        END IF;
    END""",
]

SELECT_ROW = (
    "SELECT status, dingtalk_status, result, approver, remark, decided_at, instance_id, "
    "business_id, syncd_round, syncd_seq, waiting_at, waiting_for, problem, link, pc_link, "
    "mobile_link, changed_at FROM biz_request WHERE id = %s"
)


def capture_sql(when: str, cancel_when: str) -> str:
    """A capture trigger as ``syncd capture add --database`` is to install it: the
    conditions fire when they *become* true, and nothing syncd's sessions write
    (``@syncd_writing_back``) is captured."""
    old_when, old_cancel = (c.replace("NEW.", "OLD.") for c in (when, cancel_when))
    row = "NEW.id, 'submit', JSON_OBJECT('id', NEW.id, 'status', NEW.status)"
    return f"""CREATE TRIGGER syncd_capture_{KIND} AFTER UPDATE ON biz_request FOR EACH ROW
    BEGIN
        IF @syncd_writing_back IS NULL THEN
            IF ({cancel_when}) AND NOT COALESCE({old_cancel}, FALSE) THEN
                INSERT INTO syncd_outbox (kind, business_key, action, payload)
                VALUES ('{KIND}', NEW.id, 'cancel', JSON_OBJECT('id', NEW.id));
            ELSEIF ({when}) AND NOT COALESCE({old_when}, FALSE) THEN
                INSERT INTO syncd_outbox (kind, business_key, action, payload)
                VALUES ('{KIND}', {row});
            END IF;
        END IF;
    END"""


def _said(c: str) -> str:
    code = ord(c)
    if code >= 0x10000:
        return "?"
    if (code < 0x20 and c not in "\t\n\r") or 0x7F <= code <= 0x9F:
        return f"\\{code:04X}"
    return c


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    """DATETIME values as syncd wrote them: UTC (its session's zone)."""
    return {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for k, v in row.items()}


@dataclass
class MySQLRig:
    """A ``MySQLTarget`` in the business database of ``db``."""

    db: MySQLDb
    write_back: dict[str, Any]
    procedure_sql: list[str] = field(default_factory=list)
    name: str = field(init=False)
    engine: AsyncEngine | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.name = self.write_back.get("procedure") or self.write_back["table"]
        for statement in [*BUSINESS_SQL, *self.procedure_sql]:
            mysql_run(self.db.app, statement)

    def database(self) -> MySQLDatabase:
        return MySQLDatabase("erp", self.db.daemon)

    async def targets(self) -> Mapping[str, BusinessTarget[Conn]]:
        async with migrations.opened(MySQLDatabase("erp", self.db.app)) as owner:
            await migrations.apply(owner, "erp")
        config = WriteBackSettings(**self.write_back)
        self.db.grant(
            *footprint_grants(self.db.daemon_account),
            *write_back_grants(self.db.daemon_account, config),
        )
        targets, self.engine = await target.build(self.database(), {KIND: config})
        return targets

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.dispose()

    def add_row(self, key: int) -> None:
        mysql_run(self.db.app, "INSERT INTO biz_request (id) VALUES (%s)", key)

    def remove_row(self, key: int) -> None:
        mysql_run(self.db.app, "DELETE FROM biz_request WHERE id = %s", key)

    def row(self, key: int) -> dict[str, Any] | None:
        rows = mysql_run(self.db.admin, SELECT_ROW, key)
        return _utc(rows[0]) if rows else None

    def writes(self, key: int) -> list[tuple[int, str]]:
        return [(round_, status) for round_, _, status in self.versions(key)]

    def versions(self, key: int) -> list[tuple[int, int, str]]:
        query = "SELECT round, seq, status FROM biz_writes WHERE id = %s ORDER BY n"
        rows = mysql_run(self.db.admin, query, key)
        return [(r["round"], r["seq"], r["status"]) for r in rows]

    def refuse(self, reason: str | None) -> None:
        mysql_run(self.db.app, "DELETE FROM biz_closed")
        if reason is not None:
            mysql_run(self.db.app, "INSERT INTO biz_closed VALUES (%s)", reason)

    def said(self, reason: str) -> str:
        """A SIGNAL's message as MariaDB sends it: in utf8mb3, so a character beyond the
        Basic Multilingual Plane (an emoji) arrives as ``?``, and control characters
        (but tab, line feed and carriage return) as ``\\XXXX``, their code in hex."""
        return "".join(_said(c) for c in reason)

    async def capture(self, when: str, cancel_when: str) -> None:
        mysql_run(self.db.app, capture_sql(when, cancel_when))

    def set_status(self, key: int, status: str) -> None:
        mysql_run(self.db.app, "UPDATE biz_request SET status = %s WHERE id = %s", status, key)

    def captured(self) -> list[tuple[str, str]]:
        rows = mysql_run(self.db.admin, "SELECT business_key, action FROM syncd_outbox ORDER BY id")
        return [(r["business_key"], r["action"]) for r in rows]

    def comments(self, key: int) -> tuple[Any, str | None]:
        query = "SELECT comments, last_comment FROM biz_request WHERE id = %s"
        [row] = mysql_run(self.db.admin, query, key)
        raw = row["comments"]
        return (None if raw is None else json.loads(raw)), row["last_comment"]
