"""Form schemas of the configured templates, cached and refreshed on change."""

from __future__ import annotations

from dataclasses import dataclass

from syncd.dingtalk.models import FormSchema
from syncd.domain import CallRecord
from syncd.errors import DingTalkRejected
from syncd.pipeline.calls import call
from syncd.ports import ApprovalClient, Clock


@dataclass
class _Entry:
    schema: FormSchema
    fetched_at: float


class SchemaCache:
    """``get`` returns a schema no older than ``ttl`` seconds; ``forget`` drops one."""

    def __init__(self, client: ApprovalClient, clock: Clock, *, ttl: float = 600.0) -> None:
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
