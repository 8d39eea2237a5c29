"""Capture triggers in a MySQL/MariaDB business database: names and DDL, pure, no I/O.

A capture of ``kind`` on a table is two triggers, one per event (MySQL has no trigger
for several events): ``syncd_capture_<kind>_insert`` (AFTER INSERT) and, when a
condition is given, ``syncd_capture_<kind>_update`` (AFTER UPDATE). Each inserts into
``syncd_outbox`` the submit row, then the cancel row, when its condition *becomes*
true: on INSERT when it holds for ``NEW``; on UPDATE when it holds for ``NEW`` and did
not for ``OLD`` (the condition, written over ``NEW``, is rewritten over ``OLD``). Both
skip sessions that set ``@syncd_writing_back`` (syncd's write-backs).

The triggers run as :data:`DEFINER`, a locked account that may only insert into the
outbox and read (and fire triggers on) the captured tables: whatever the table owner's
code a condition calls with invoker's rights, it gets nothing worth stealing. The
payload is ``JSON_OBJECT`` over every column, with the types JSON cannot carry made
explicit (:func:`json_value`). A first line ``-- syncd capture {json}`` in each body
records what was asked, so ``capture list`` can show it again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from syncd.db.capture_ddl import CaptureSpec
from syncd.errors import CaptureError

#: The account every capture trigger runs as (locked: nobody logs in as it).
DEFINER = "'syncd_capture'@'localhost'"
MARKER = "-- syncd capture "
PREFIX = "syncd_capture_"
EVENTS = ("insert", "update")
#: The longest business key the outbox takes; a longer one becomes '' (parked as invalid).
KEY_LENGTH = 255
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRY = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
}


#: What ``capture add --database`` was asked: the same as on PostgreSQL (the table as
#: ``name`` or ``db.name``; the conditions over ``NEW``).
MySQLCaptureSpec = CaptureSpec


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # information_schema.COLUMNS.DATA_TYPE, lower case


@dataclass(frozen=True)
class CaptureTable:
    """The captured table as found: its database, name, columns, the outbox's database."""

    schema: str
    table: str
    columns: tuple[Column, ...]
    outbox_schema: str

    @property
    def qualified(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """A SQL string literal that reads the same whatever ``NO_BACKSLASH_ESCAPES`` says."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def trigger_name(kind: str, event: str) -> str:
    return f"{PREFIX}{kind}_{event}"


# --- conditions -----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    | (?P<ident>`(?:[^`]|``)*`)
    | (?P<comment>--|\#|/\*)
    | (?P<word>[A-Za-z_$\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(option: str, condition: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(condition):
        match = _TOKEN.match(condition, position)
        if match is None:  # an unterminated quote
            raise CaptureError(f"{option} {condition!r}: a quote is not closed")
        kind = match.lastgroup or "other"
        tokens.append((kind, match.group()))
        position = match.end()
    return tokens


def check_shape(option: str, condition: str) -> None:
    """One expression: no statement separator, no comment, parentheses balanced."""
    depth = 0
    for kind, text in _tokens(option, condition):
        if kind == "comment":
            raise CaptureError(f"{option} {condition!r}: write the condition without comments")
        if text == ";":
            raise CaptureError(f"{option} {condition!r}: one expression, without ';'")
        depth += {"(": 1, ")": -1}.get(text, 0) if kind == "other" else 0
        if depth < 0:
            break
    if depth != 0:
        raise CaptureError(f"{option} {condition!r}: its parentheses do not balance")
    if not condition.strip():
        raise CaptureError(f"{option} is empty")


def over_old(condition: str) -> str:
    """The condition with every ``NEW.`` (outside quotes) made ``OLD.``."""
    tokens = _tokens("condition", condition)
    out: list[str] = []
    for i, (kind, text) in enumerate(tokens):
        after = next((t for k, t in tokens[i + 1 :] if not t.isspace()), "")
        before = next((t for k, t in reversed(tokens[:i]) if not t.isspace()), "")
        if kind == "word" and text.upper() == "NEW" and after == "." and before != ".":
            text = "OLD"
        out.append(text)
    return "".join(out)


# --- the payload ----------------------------------------------------------------------


def json_value(column: Column, row: str, zone: str) -> str:
    """``row.column`` as the payload carries it.

    DATETIME: ISO 8601 with ``zone`` (the application's, ``[databases.<name>]
    time_zone``); TIMESTAMP: ISO 8601 in UTC (the instant, whatever the writer's session
    zone); BIT: a number; binary strings and BLOBs: base64; geometry: WKT; the rest as
    JSON_OBJECT gives them (DECIMAL a JSON number, ENUM and SET strings, JSON as JSON,
    BOOLEAN 0 or 1).
    """
    value = f"{row}.{quote(column.name)}"
    if column.data_type == "datetime":
        return f"CONCAT(REPLACE(CAST({value} AS CHAR), ' ', 'T'), {literal(zone)})"
    if column.data_type == "timestamp":
        utc = (
            f"TIMESTAMPADD(MICROSECOND, ROUND(UNIX_TIMESTAMP({value}) * 1000000), "
            "CAST('1970-01-01 00:00:00' AS DATETIME(6)))"
        )
        return (
            f"IF({value} IS NULL, NULL, CONCAT(REPLACE(CAST({utc} AS CHAR), ' ', 'T'), '+00:00'))"
        )
    if column.data_type == "bit":
        return f"({value} + 0)"
    if column.data_type in _BINARY:
        return f"REPLACE(TO_BASE64({value}), CHAR(10), '')"
    if column.data_type in _GEOMETRY:
        return f"ST_AsText({value})"
    return value


def payload(table: CaptureTable, zone: str) -> str:
    pairs = ", ".join(f"{literal(c.name)}, {json_value(c, 'NEW', zone)}" for c in table.columns)
    return f"JSON_OBJECT({pairs})"


def business_key(key: str) -> str:
    value = f"CAST(NEW.{quote(key)} AS CHAR)"
    return f"IF(CHAR_LENGTH({value}) > {KEY_LENGTH}, '', COALESCE({value}, ''))"


# --- the triggers ---------------------------------------------------------------------


def metadata(spec: MySQLCaptureSpec, key: str) -> str:
    data = {"kind": spec.kind, "key": key, "when": spec.when, "cancel_when": spec.cancel_when}
    return MARKER + json.dumps(data, ensure_ascii=False)


def parse_metadata(body: str) -> dict[str, str | None] | None:
    """What a capture trigger's first line records, or None (not one of syncd's)."""
    for line in body.splitlines():
        line = line.strip()
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except ValueError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _insert(spec: MySQLCaptureSpec, table: CaptureTable, key: str, action: str, zone: str) -> str:
    return (
        f"INSERT INTO {quote(table.outbox_schema)}.`syncd_outbox` "
        "(kind, business_key, action, payload)\n"
        f"      VALUES ({literal(spec.kind)}, {business_key(key)}, {literal(action)},\n"
        f"              {payload(table, zone)});"
    )


def trigger_ddl(
    spec: MySQLCaptureSpec, table: CaptureTable, key: str, event: str, zone: str
) -> str:
    """``CREATE TRIGGER`` of one event."""
    branches = []
    for action, condition in (("submit", spec.when), ("cancel", spec.cancel_when)):
        if condition is None:
            if action == "cancel" or event == "update":
                continue
            test = "TRUE"  # no --when: every INSERT, no UPDATE
        else:
            test = f"({condition}) IS TRUE"
            if event == "update":
                test += f" AND ({over_old(condition)}) IS NOT TRUE"
        branches.append(
            f"  IF {test} THEN\n    {_insert(spec, table, key, action, zone)}\n  END IF;"
        )
    body = "\n".join(branches)
    return (
        f"CREATE DEFINER = {DEFINER} TRIGGER "
        f"{quote(table.schema)}.{quote(trigger_name(spec.kind, event))}\n"
        f"AFTER {event.upper()} ON {table.qualified} FOR EACH ROW\n"
        f"BEGIN\n  {metadata(spec, key)}\n"
        "  IF @syncd_writing_back IS NULL THEN\n"
        f"{body}\n  END IF;\nEND"
    )


def events(spec: MySQLCaptureSpec) -> tuple[str, ...]:
    """The events captured: INSERT always, UPDATE when a condition can become true."""
    return EVENTS if (spec.when or spec.cancel_when) else ("insert",)


def drop_ddl(schema: str, kind: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {quote(schema)}.{quote(trigger_name(kind, e))}" for e in EVENTS
    ]


def definer_ddl(table: CaptureTable) -> list[str]:
    """The definer account and exactly the grants its triggers need."""
    return [
        f"CREATE USER IF NOT EXISTS {DEFINER} ACCOUNT LOCK",
        f"GRANT INSERT ON {quote(table.outbox_schema)}.`syncd_outbox` TO {DEFINER}",
        f"GRANT SELECT, TRIGGER ON {table.qualified} TO {DEFINER}",
    ]


def build_ddl(spec: MySQLCaptureSpec, table: CaptureTable, key: str, zone: str) -> list[str]:
    """The whole script ``capture add`` runs, in order."""
    return [
        *definer_ddl(table),
        *drop_ddl(table.schema, spec.kind),
        *(trigger_ddl(spec, table, key, e, zone) for e in events(spec)),
    ]


def script(statements: list[str]) -> str:
    """The statements as one script the ``mysql`` client runs (``DELIMITER`` for bodies)."""
    parts = []
    for statement in statements:
        if "BEGIN\n" in statement:
            parts.append(f"DELIMITER //\n{statement} //\nDELIMITER ;")
        else:
            parts.append(f"{statement};")
    return "\n\n".join(parts) + "\n"
