"""Metric values after real scenarios: each test has its own registry and database."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import syncd
from syncd.db.store import PostgresControlStore
from syncd.dingtalk.crypto import CallbackCrypto
from syncd.dingtalk.events import make_event
from syncd.domain import CHANNELS
from syncd.metrics.labels import DUTIES, OPEN_STATES, PURPOSES, STAGES, TARGET_LABELS, closed_set


async def scrape(daemon) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics through the daemon's app; samples by (name, labels)."""
    transport = httpx.ASGITransport(app=daemon.app.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def counted(registry: CollectorRegistry) -> Callable[..., float]:
    """``registry.get_sample_value``, with an absent sample read as 0."""
    return lambda name, labels=None: registry.get_sample_value(name, labels) or 0.0


def value(samples, name: str, **labels: str):
    return samples.get((name, frozenset(labels.items())))


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series carrying ``labels``."""
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_a_round_trip_shows_in_counters_histograms_and_scrape_time_gauges(env):
    registry = CollectorRegistry()
    settings = env.settings(events={"stream": False})
    env.submit_leave(days=2)
    refused = env.submit_leave(days=2)
    env.app_sql("INSERT INTO syncd.outbox (kind, business_key) VALUES ('no_such_kind', 'x1')")
    async with env.daemon(settings, registry=registry) as daemon:
        before = await scrape(daemon)
        assert value(before, "syncd_outbox_backlog", kind="leave") == 2
        assert value(before, "syncd_outbox_backlog", kind="unknown") == 1
        assert value(before, "syncd_database_up") == 1
        await daemon.drain()
        [(instance,)] = env.sql(
            "SELECT instance_id FROM syncd.approval WHERE business_key = %s", str(refused)
        )
        env.sim.refuse(instance, remark="no")
        await env.advance(120)  # the rule approves the other after 30 s; polling after 60 s
        await daemon.drain()
        after = await scrape(daemon)

    get = counted(registry)
    assert get("syncd_approvals_created_total", {"kind": "leave"}) == 2
    assert (
        get(
            "syncd_approvals_parked_total",
            {"kind": "unknown", "state": "invalid", "reason": "unknown_kind"},
        )
        == 1
    )
    finished = {"kind": "leave", "channel": "poll"}
    assert get("syncd_approvals_finished_total", {**finished, "state": "approved"}) == 1
    assert get("syncd_approvals_finished_total", {**finished, "state": "rejected"}) == 1
    assert get("syncd_events_received_total", {"channel": "poll"}) == 2
    assert get("syncd_events_received_total", {"channel": "stream"}) == 0
    assert get("syncd_stage_items_total", {"stage": "ingest"}) == 3
    assert get("syncd_create_latency_seconds_count", {"kind": "leave"}) == 2
    assert get("syncd_writeback_latency_seconds_count", {"kind": "leave"}) == 2
    assert get("syncd_dingtalk_calls_per_approval_count", {"kind": "leave"}) == 2
    assert get("syncd_dingtalk_calls_per_approval_sum", {"kind": "leave"}) >= 4  # create + get
    ok = {"outcome": "ok"}
    assert get("syncd_dingtalk_requests_total", {"call": "create", **ok}) == 2
    assert get("syncd_dingtalk_requests_total", {"call": "token", **ok}) == 1
    assert get("syncd_dingtalk_request_duration_seconds_count", {"call": "get", **ok}) >= 2
    build = {"version": syncd.__version__, "python": platform.python_version()}
    assert get("syncd_build_info", build) == 1

    assert value(after, "syncd_outbox_backlog", kind="leave") == 0
    assert value(after, "syncd_outbox_backlog_oldest_age_seconds", kind="leave") == 0
    assert value(after, "syncd_approvals", kind="unknown", state="invalid") == 1
    assert value(after, "syncd_approvals", kind="leave", state="running") == 0
    assert value(after, "syncd_writeback_backlog", kind="leave") == 0
    assert value(after, "syncd_outbox_quarantine", kind="leave") == 0
    assert value(after, "syncd_inbox_backlog", channel="stream") == 0
    assert value(after, "syncd_dingtalk_quota_used_calls", purpose="create") == 2
    assert value(after, "syncd_dingtalk_quota_used_calls", purpose="reconcile") == 0
    assert value(after, "syncd_dingtalk_quota_limit_calls") == 5000  # the default
    assert value(after, "syncd_dingtalk_quota_projected_calls") > 0
    assert value(after, "syncd_dingtalk_paused", reason="quota") == 0
    assert any(name == "syncd_build_info" for name, _ in after)
    assert_labels_closed(after, kinds={"leave"})
    assert set(daemon.app.stages) <= set(STAGES)


def assert_labels_closed(samples, kinds: set[str]) -> None:
    """No label is named like a target label, and every value of a syncd_ metric's label
    is in the closed set the operations guide lists for it."""
    outside = []
    for name, labels in samples:
        for label, got in labels:
            if label in TARGET_LABELS or label.startswith("__"):
                outside.append(f"{name}: label {label} collides with a target label")
            if not name.startswith("syncd_") or label == "le":
                continue
            closed = closed_set(name, label)
            if closed is None:
                outside.append(f"{name}: label {label} has no closed set")
            elif name == "syncd_build_info":
                continue
            elif got not in closed.values and not (label == "kind" and got in kinds):
                outside.append(f"{name}: {label}={got!r} is not in its closed set")
    assert outside == []


async def test_an_empty_database_shows_every_backlog_at_zero(env):
    registry = CollectorRegistry()
    async with env.daemon(registry=registry) as daemon:
        samples = await scrape(daemon)
    for name in ("syncd_outbox_backlog", "syncd_outbox_quarantine", "syncd_writeback_backlog"):
        assert value(samples, name, kind="leave") == 0
        assert value(samples, f"{name}_oldest_age_seconds", kind="leave") == 0
    for state in OPEN_STATES:
        assert value(samples, "syncd_approvals", kind="leave", state=state) == 0
        assert value(samples, "syncd_approvals_oldest_age_seconds", kind="leave", state=state) == 0
    for channel in CHANNELS:
        assert value(samples, "syncd_inbox_backlog", channel=channel) == 0
    for purpose in PURPOSES:
        assert value(samples, "syncd_dingtalk_quota_used_calls", purpose=purpose) == 0
    for duty in DUTIES:
        assert value(samples, "syncd_leader", duty=duty) == 0
    assert value(samples, "syncd_dingtalk_paused", reason="auth") == 0
    assert not any(labels and dict(labels).get("kind") == "unknown" for _, labels in samples)
    assert_labels_closed(samples, kinds={"leave"})


async def test_the_process_is_described_and_no_created_series_doubles_a_counter(env):
    registry = CollectorRegistry()
    env.submit_leave(days=1)
    async with env.daemon(registry=registry) as daemon:
        await daemon.drain()
        samples = await scrape(daemon)
    names = {name for name, _ in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert {"process_start_time_seconds", "python_info", "python_gc_collections_total"} <= names
    assert value(samples, "syncd_approvals_created_total", kind="leave") == 1
    assert sorted(name for name in names if name.endswith("_created")) == []
    assert_labels_closed(samples, kinds={"leave"})


async def test_a_cancel_is_counted_under_its_own_channel(env):
    """Cancels finish with channel="cancel": one before its create, one after it."""
    registry = CollectorRegistry()
    settings = env.settings(events={"stream": False})
    cancel = "INSERT INTO syncd.outbox (kind, business_key, action) VALUES ('leave', %s, 'cancel')"
    created = str(env.submit_leave(days=1))
    async with env.daemon(settings, registry=registry) as daemon:
        await daemon.drain()
        env.app_sql(cancel, created)
        env.app_sql(cancel, str(env.submit_leave(days=1)))  # never submitted
        env.clock.advance(20)  # past the guard before a fresh instance is revoked
        await daemon.drain()
    get = counted(registry)
    canceled = {"kind": "leave", "state": "canceled", "channel": "cancel"}
    assert get("syncd_approvals_finished_total", canceled) == 2
    assert get("syncd_approvals_finished_total", {**canceled, "channel": "other"}) == 0


async def test_throttling_and_the_quota_pause_are_counted_and_shown(env):
    registry = CollectorRegistry()
    settings = env.settings(events={"stream": False}, dingtalk={"monthly_quota": 4000})
    env.sim.faults.update(error_429_rate=1.0, endpoints=["workflow.create"])
    env.submit_leave(days=1)
    async with env.daemon(settings, registry=registry) as daemon:
        await daemon.drain()
        env.sim.faults.update(error_429_rate=0.0, monthly_quota=0)
        env.clock.advance(3600)  # past every retry delay
        await daemon.drain()
        samples = await scrape(daemon)
    get = counted(registry)
    assert get("syncd_dingtalk_throttled_total", {"call": "create"}) >= 1
    assert get("syncd_dingtalk_requests_total", {"call": "create", "outcome": "throttled"})
    assert total(registry, "syncd_dingtalk_requests_total", outcome="quota_exhausted") == 1
    assert value(samples, "syncd_dingtalk_paused", reason="quota") == 1
    assert value(samples, "syncd_dingtalk_quota_limit_calls") == 4000
    assert value(samples, "syncd_approvals", kind="leave", state="pending") == 1
    assert_labels_closed(samples, kinds={"leave"})


async def test_duplicate_events_are_counted_per_channel(env):
    registry = CollectorRegistry()
    event = make_event("callback", "bpms_task_change", {"processInstanceId": "i-1"}, "e-1")
    async with env.daemon(registry=registry) as daemon:
        assert await daemon.app.inbox.put(event) is True
        assert await daemon.app.inbox.put(event) is False
        samples = await scrape(daemon)
    get = counted(registry)
    assert get("syncd_events_received_total", {"channel": "callback"}) == 2
    assert get("syncd_events_duplicate_total", {"channel": "callback"}) == 1
    assert value(samples, "syncd_inbox_backlog", channel="callback") == 1
    assert value(samples, "syncd_inbox_backlog_oldest_age_seconds", channel="callback") >= 0


async def test_the_scrape_still_answers_when_the_database_is_gone(env):
    registry = CollectorRegistry()
    async with env.daemon(registry=registry) as daemon:
        await daemon.app.pool.close()
        samples = await scrape(daemon)
    assert value(samples, "syncd_database_up") == 0
    assert value(samples, "syncd_stage_runs_total", stage="ingest") is None
    assert not any(name == "syncd_outbox_backlog" for name, _ in samples)
    assert any(name == "syncd_build_info" for name, _ in samples)


async def test_leader_shows_which_periodic_job_turns_this_replica_holds(env):
    registry = CollectorRegistry()
    async with env.daemon(registry=registry) as daemon:
        now = env.clock.now()
        assert await daemon.app.control.claim_turn("sweep_failed", now, now + timedelta(minutes=5))
        other = PostgresControlStore(daemon.app.pool, actor="another-replica")
        assert await other.claim_turn("retention", now, now + timedelta(hours=1))
        samples = await scrape(daemon)
        env.clock.advance(600)  # the sweep turn has ended
        later = await scrape(daemon)
    assert value(samples, "syncd_leader", duty="sweep_failed") == 1
    assert value(samples, "syncd_leader", duty="retention") == 0
    assert value(samples, "syncd_leader", duty="callback_replay") == 0
    assert value(later, "syncd_leader", duty="sweep_failed") == 0


async def test_requests_that_get_no_answer_are_counted_too(env):
    """A create that times out (no HTTP answer at all) shows in the request counter."""
    registry = CollectorRegistry()
    simulator = httpx.ASGITransport(app=env.sim.app)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/workflow/processInstances" and request.method == "POST":
            raise httpx.ReadTimeout("no answer", request=request)
        return await simulator.handle_async_request(request)

    settings = env.settings(events={"stream": False})
    env.submit_leave(days=1)
    transport = httpx.MockTransport(handler)
    async with env.daemon(settings, registry=registry, transport=transport) as daemon:
        await daemon.drain()
    get = counted(registry)
    assert get("syncd_dingtalk_requests_total", {"call": "create", "outcome": "timeout"}) == 1
    assert get("syncd_dingtalk_requests_total", {"call": "token", "outcome": "ok"}) == 1
    assert env.sql("SELECT state FROM syncd.approval") == [("unknown",)]


async def test_callbacks_are_counted_stored_and_refused_by_reason(env):
    registry = CollectorRegistry()
    token, aes_key = "metrics-token-1", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    callback = {"enabled": True, "token": token, "aes_key": aes_key, "max_body_bytes": 2048}
    settings = env.settings(events={"stream": False, "callback": callback})
    crypto = CallbackCrypto(token, aes_key, settings.dingtalk.app_key)
    message = {"EventType": "bpms_task_change", "eventId": "e-1", "processInstanceId": "i-1"}
    encrypt = crypto.encrypt(json.dumps(message))
    stamp = str(int(env.clock.now().timestamp() * 1000))
    query = {"msg_signature": crypto.sign(stamp, "n1", encrypt), "timestamp": stamp, "nonce": "n1"}
    path = settings.events.callback.path
    async with env.daemon(settings, registry=registry) as daemon:
        transport = httpx.ASGITransport(app=daemon.app.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as http:
            assert (await http.post(path, params=query, json={"encrypt": encrypt})).is_success
            assert daemon.app.wake_back.is_set()  # the stored event wakes the way back
            replay = {**query, "msg_signature": query["msg_signature"].upper()}
            other = {**query, "msg_signature": "0" * 40}  # the cap comes before the signature
            statuses = [
                (await http.post(path, params=replay, json={"encrypt": encrypt})).status_code,
                (await http.post(path)).status_code,
                (await http.post(path, params=other, content=b" " * 4096)).status_code,
            ]
        samples = await scrape(daemon)
    assert statuses == [403, 400, 413]
    get = counted(registry)
    assert get("syncd_events_received_total", {"channel": "callback"}) == 1
    for reason in ("replayed", "missing_query", "body_too_large"):
        assert value(samples, "syncd_callbacks_rejected_total", reason=reason) == 1
    assert value(samples, "syncd_callbacks_rejected_total", reason="bad_signature") == 0
    assert_labels_closed(samples, kinds={"leave"})
