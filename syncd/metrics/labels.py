"""The closed sets metric label values come from, and the functions that keep them closed.

A value outside its set becomes ``unknown`` (kinds) or ``other`` (everything else), so a
label never carries an id, a user, a process code or a raw DingTalk code. Channels come
from :data:`syncd.domain.CHANNELS`, calls and outcomes from :mod:`syncd.dingtalk.endpoints`.
:func:`closed_sets` lists every set with the metrics it labels; the operations guide
lists the same (a test compares), and no label is named like one Prometheus or its
Operator gives every target (:data:`TARGET_LABELS`, a test checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from syncd import quota
from syncd.dingtalk.callback import REASONS as CALLBACK_REASONS
from syncd.dingtalk.endpoints import ENDPOINTS, OUTCOMES
from syncd.dingtalk.events import CONTACT_EVENTS
from syncd.domain import CHANNELS, ApprovalState
from syncd.ports.directory import SYNC_OUTCOMES

#: Label names a scrape adds to every series of a target (Prometheus: ``job``,
#: ``instance``; the Prometheus Operator's PodMonitor and ServiceMonitor: the rest). A
#: metric label with such a name is renamed ``exported_<name>`` when scraped.
TARGET_LABELS = frozenset(
    {
        "job",
        "instance",
        "namespace",
        "pod",
        "container",
        "service",
        "endpoint",
        "node",
        "prometheus",
        "prometheus_replica",
    }
)

#: The stages the runner runs (``App.stages``; a test compares).
STAGES = (
    "ingest", "submit", "reconcile", "cancel", "comment", "apply", "writeback", "poll",
    "inbound",
    "attach_back",
)  # fmt: skip
#: Where a final outcome came from: an event channel, the reconciler (which found it in
#: DingTalk's list, `syncd reconcile` too) or a cancel (requested by the application or
#: ``syncd cancel``, or a revoke DingTalk refused because the instance had ended).
FINISH_CHANNELS = (*CHANNELS, "reconcile", "cancel")
#: The states ``syncd_approvals`` counts: open and parked (final ones grow forever).
OPEN_STATES = ("pending", "submitting", "unknown", "running", "invalid", "dead")
#: The periodic jobs replicas take turns at (``syncd_leader``).
DUTIES = (
    "sweep_failed",
    "retention",
    "callback_replay",
    "directory_sync",
    "directory_forget",
    "ledger_retention",
    "inbound_list",
)
#: Why DingTalk calls were spent (``syncd.usage.purpose``; a test scans the code for them).
PURPOSES = (
    "create",
    "confirm",
    "poll",
    "reconcile",
    "cancel",
    "comment",
    "schema",
    "failed_list",
    "lookup",
    "attach",
    "import",  # reading an instance started in DingTalk to import it (inbound kinds)
    "inbound_list",  # listing inbound kinds' instance ids (the safety net, backfill)
    "attach_back",
)
#: Calls recorded in ``syncd.usage`` that DingTalk's monthly quota exempts: see
#: :data:`syncd.quota.EXEMPT_PURPOSES`.
EXEMPT_PURPOSES = quota.EXEMPT_PURPOSES
#: How a run of the directory's full sync ended (``syncd_directory_syncs_total``).
DIRECTORY_SYNC_OUTCOMES = SYNC_OUTCOMES
#: The directory's users (``syncd_directory_users``).
DIRECTORY_USER_STATES = ("present", "departed")
POOL_STATES = ("open", "idle")
#: How an instance of an inbound kind left the import queue, or why it stayed.
INBOUND_OUTCOMES = ("imported", "known", "parked", "deferred")
CALLS = tuple(endpoint.name for endpoint in ENDPOINTS)

#: syncd's own reasons for parking a row (ingest and submit), beside exception classes.
PARK_REASONS = frozenset(
    {
        "unknown_kind",
        "empty_key",
        "unknown_action",
        "still_running",
        "bad_payload",
        "nothing_to_cancel",
        "nothing_to_comment",  # a comment row for a key never submitted
        "bad_comment",  # a comment row syncd cannot send (kept failed in syncd.comment)
        "not_created",
        "invalid",
        "key_too_long",
        "internal_error",
        "wrong_database",  # a row relayed from a database its kind does not name
        "inbound_kind",  # a submit row for an inbound kind (its approvals start in DingTalk)
    }
)
#: Why the database refused an outbox row, by SQLSTATE class (quarantine reasons).
QUARANTINE_REASONS = {
    "22": "data_exception",
    "23": "integrity_violation",
    "54": "program_limit",
    "XX": "internal_error",
}
PAUSE_REASONS = frozenset({"quota", "auth"})
#: Look-ups of people and departments in the directory (``syncd_directory_lookups_total``):
#: what was looked up, how it ended, and the parking reasons they give.
LOOKUP_BYS = ("job_number", "mobile", "email", "name")
LOOKUP_OUTCOMES = ("found", "unknown", "ambiguous", "departed", "not_synced", "by_mobile_api")
LOOKUP_REASONS = frozenset(
    {
        "bad_identifier",
        "person_unknown",
        "person_ambiguous",
        "person_departed",
        "department_unknown",
        "department_ambiguous",
        "not_in_department",
    }
)
OTHER = "other"
#: ``database``: syncd's own PostgreSQL (as in the DBA views), beside each configured
#: ``[databases.<name>]``.
SYNCD_DATABASE = "syncd"
#: How a write into a business row ended (``syncd_writebacks_total``,
#: ``syncd_progress_writes_total``).
WRITE_OUTCOMES = ("done", "failed")
#: How a file fetched back ended (``syncd_attachments_back_total``): its bytes stored, only
#: its link written, or recorded as failed.
ATTACH_BACK_OUTCOMES = ("fetched", "linked", "failed")
#: The metrics labelled by the database of a kind's business side (the configured ones
#: and ``syncd``; the relay's metrics take only the databases it relays).
DATABASE_METRICS = (
    "syncd_writebacks_total",
    "syncd_progress_writes_total",
    "syncd_outbox_waiting",
    "syncd_outbox_waiting_oldest_age_seconds",
)


#: syncd's exception classes, ``SyncdError`` and every subclass of it wherever defined
#: (``tests/unit/ops/test_metric_labels.py`` imports every module and compares): named
#: here, not found by walking the subclasses, which would see only the modules imported
#: so far.
ERROR_CLASSES = frozenset(
    {
        "SyncdError",
        "ConfigError",
        "MigrationError",
        "StoreError",
        "ClaimLost",
        "CaptureError",
        "WriteBackError",
        "CallbackCryptoError",
        "DatabaseUnreachable",
        "MappingError",
        "LookupProblem",
        "DirectoryNotReady",
        "AttachmentProblem",
        "ImportRefused",
        "BackfillBusy",
        "DingTalkError",
        "DingTalkAuthError",
        "DingTalkQuotaExhausted",
        "DingTalkThrottled",
        "DingTalkTransient",
        "DingTalkRejected",
        "DingTalkNotSent",
        "DingTalkOutcomeUnknown",
    }
)


@dataclass(frozen=True)
class ClosedSet:
    """The values a label takes on ``metrics`` (none named: every other metric with it)."""

    label: str
    values: frozenset[str]
    metrics: tuple[str, ...] = ()


def _with_other(*values: Iterable[str]) -> frozenset[str]:
    return frozenset({OTHER}.union(*values))


def closed_sets() -> tuple[ClosedSet, ...]:
    """Every label's closed set; ``kind`` also takes each configured kind, and
    ``version``/``python`` are the running versions."""
    states = (state.value for state in ApprovalState)
    return (
        ClosedSet("stage", _with_other(STAGES)),
        ClosedSet("error_class", _with_other(ERROR_CLASSES)),
        ClosedSet("kind", frozenset({"unknown"})),
        ClosedSet(
            "state",
            frozenset(OPEN_STATES),
            ("syncd_approvals", "syncd_approvals_oldest_age_seconds"),
        ),
        ClosedSet("state", frozenset(POOL_STATES), ("syncd_db_pool_connections",)),
        ClosedSet("state", _with_other(states)),
        ClosedSet("channel", _with_other(FINISH_CHANNELS), ("syncd_approvals_finished_total",)),
        ClosedSet("channel", _with_other(CHANNELS)),
        ClosedSet(
            "reason",
            _with_other(PARK_REASONS, LOOKUP_REASONS, ERROR_CLASSES),
            ("syncd_approvals_parked_total",),
        ),
        ClosedSet(
            "reason",
            _with_other(QUARANTINE_REASONS.values()),
            ("syncd_outbox_quarantined_total",),
        ),
        ClosedSet("reason", _with_other(CALLBACK_REASONS), ("syncd_callbacks_rejected_total",)),
        ClosedSet("reason", _with_other(PAUSE_REASONS), ("syncd_dingtalk_paused",)),
        ClosedSet("call", frozenset(CALLS)),
        ClosedSet("outcome", frozenset(OUTCOMES)),
        ClosedSet("outcome", frozenset(DIRECTORY_SYNC_OUTCOMES), ("syncd_directory_syncs_total",)),
        ClosedSet("state", frozenset(DIRECTORY_USER_STATES), ("syncd_directory_users",)),
        ClosedSet("purpose", _with_other(PURPOSES)),
        ClosedSet("duty", _with_other(DUTIES)),
        ClosedSet("by", frozenset(LOOKUP_BYS), ("syncd_directory_lookups_total",)),
        ClosedSet("outcome", frozenset(LOOKUP_OUTCOMES), ("syncd_directory_lookups_total",)),
        ClosedSet("event_type", _with_other(CONTACT_EVENTS)),
        ClosedSet("version", frozenset(), ("syncd_build_info",)),
        ClosedSet("python", frozenset(), ("syncd_build_info",)),
        # The relay's metrics: the configured business databases (syncd/metrics/relay.py).
        ClosedSet("database", frozenset()),
        # ... and the business side's: those and syncd's own PostgreSQL.
        ClosedSet("database", _with_other([SYNCD_DATABASE]), DATABASE_METRICS),
        ClosedSet("outcome", frozenset(WRITE_OUTCOMES), DATABASE_METRICS[:2]),
        # Inbound kinds' imports (syncd/metrics/inbound.py).
        ClosedSet("outcome", frozenset(INBOUND_OUTCOMES), ("syncd_inbound_imports_total",)),
        ClosedSet("outcome", frozenset(ATTACH_BACK_OUTCOMES), ("syncd_attachments_back_total",)),
    )


def closed_set(metric: str, label: str) -> ClosedSet | None:
    """The set ``label`` takes on ``metric`` (a sample's name: ``_bucket``, ``_count`` and
    ``_sum`` belong to their histogram)."""
    names = {metric} | {metric.removesuffix(s) for s in ("_bucket", "_count", "_sum")}
    sets = [s for s in closed_sets() if s.label == label]
    specific = [s for s in sets if names & set(s.metrics)]
    general = [s for s in sets if not s.metrics]
    return next(iter(specific or general), None)


def _within(values: Iterable[str]) -> Callable[[str], str]:
    """The label of a raw value: itself when in ``values``, else ``other``."""
    closed = frozenset(values)

    def label(value: str) -> str:
        return value if value in closed else OTHER

    return label


class Labels:
    """Maps raw values onto their closed label sets (the kinds are the configured ones)."""

    stage = staticmethod(_within(STAGES))
    error_class = staticmethod(_within(ERROR_CLASSES))
    reason = staticmethod(_within(PARK_REASONS | LOOKUP_REASONS | ERROR_CLASSES))
    channel = staticmethod(_within(CHANNELS))
    finish_channel = staticmethod(_within(FINISH_CHANNELS))
    state = staticmethod(_within(state.value for state in ApprovalState))
    callback_reason = staticmethod(_within(CALLBACK_REASONS))
    pause_reason = staticmethod(_within(PAUSE_REASONS))
    purpose = staticmethod(_within(PURPOSES))
    duty = staticmethod(_within(DUTIES))
    event_type = staticmethod(_within(CONTACT_EVENTS))

    def __init__(
        self,
        kinds: Iterable[str] = (),
        databases: Iterable[str] = (),
        kind_databases: Mapping[str, str | None] | None = None,
    ) -> None:
        """``databases``: the configured ``[databases.<name>]``; ``kind_databases``: each
        kind's ``[kinds.<kind>] database`` (None: syncd's own PostgreSQL)."""
        self.kinds = tuple(sorted(kinds))
        self._kinds = frozenset(self.kinds)
        self._kind_databases = {
            kind: name or SYNCD_DATABASE for kind, name in (kind_databases or {}).items()
        }
        #: The closed set of ``database``: ``syncd`` and the configured databases.
        self.databases = tuple(sorted({SYNCD_DATABASE, *databases}))
        self._databases = frozenset(self.databases)

    def kind(self, value: object) -> str:
        return value if isinstance(value, str) and value in self._kinds else "unknown"

    def database(self, value: object) -> str:
        """A database's label: ``syncd``, a configured name, else ``other``."""
        if value is None:
            return SYNCD_DATABASE
        return value if isinstance(value, str) and value in self._databases else OTHER

    def kind_database(self, kind: str) -> str:
        """The database that holds a kind's business side, from the configuration
        (``syncd`` for a kind without ``database``, ``other`` for a kind not configured)."""
        if kind in self._kind_databases:
            return self.database(self._kind_databases[kind])
        return SYNCD_DATABASE if kind in self._kinds else OTHER

    @staticmethod
    def quarantine_reason(sqlstate: str) -> str:
        return QUARANTINE_REASONS.get(sqlstate[:2], OTHER)
