"""Form schemas of the configured templates, cached and refreshed on change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from syncd.dingtalk.models import FormSchema
from syncd.domain import CallRecord
from syncd.errors import DingTalkRejected
from syncd.pipeline.calls import call
from syncd.pipeline.mapping import check_form, components_by_label
from syncd.ports import ApprovalClient, Clock
from syncd.settings_kinds import KindSettings


@dataclass
class _Entry:
    schema: FormSchema
    fetched_at: float


#: How long a template's form schema is used before it is read again. Each read is a
#: metered call (at ten minutes: up to 54 a working day per template, a tenth of a call
#: per approval at 8,000 a month); a changed template is found sooner anyway: a create
#: refused for its form drops the schema (``forget``) and the retry reads it afresh.
SCHEMA_TTL = 6 * 3600.0


class SchemaCache:
    """``get`` returns a schema no older than ``ttl`` seconds; ``forget`` drops one."""

    def __init__(self, client: ApprovalClient, clock: Clock, *, ttl: float = SCHEMA_TTL) -> None:
        self.client = client
        self.clock = clock
        self.ttl = ttl
        self._entries: dict[str, _Entry] = {}

    async def get(self, process_code: str, calls: list[CallRecord]) -> FormSchema:
        entry = self._entries.get(process_code)
        now = self.clock.monotonic()
        if entry is not None and now - entry.fetched_at < self.ttl:
            return entry.schema
        schema = await call(calls, "schema", "schema", self.client.get_form_schema(process_code))
        if schema.status and schema.status.upper() != "PUBLISHED":
            raise DingTalkRejected(
                f"template {process_code} is {schema.status}, not PUBLISHED; "
                "publish it in DingTalk or change process_code",
                code="processGetFailed",
            )
        self._entries[process_code] = _Entry(schema, now)
        return schema

    def forget(self, process_code: str) -> None:
        self._entries.pop(process_code, None)


async def check_forms(
    client: ApprovalClient, kinds: Mapping[str, KindSettings]
) -> AsyncIterator[tuple[str, list[str]]]:
    """Kind by kind, the problems of its form mapping against its DingTalk template (none:
    it fits); a template DingTalk refuses to give is a problem too (``syncd check``).
    Anything else DingTalk answers (credentials refused, unreachable, quota used up) says
    nothing about a template: it is raised."""
    for name, kind in kinds.items():
        try:
            schema = await client.get_form_schema(kind.process_code)
        except DingTalkRejected as exc:
            yield name, [f"[kinds.{name}] process_code {kind.process_code!r}: {exc}"]
            continue
        if kind.inbound is not None:  # inbound: the labels read must be the template's
            labels = components_by_label(schema)
            yield (
                name,
                [
                    f"[kinds.{name}.inbound] columns.{column} = {label!r}: no such component in "
                    f"{kind.process_code}"
                    for column, label in kind.inbound.columns.items()
                    if label not in labels
                ],
            )
            continue
        yield name, check_form(name, kind, schema)
