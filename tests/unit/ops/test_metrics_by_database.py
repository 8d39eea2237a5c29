"""Metrics about a kind's business side are labelled by its database, from a closed set:
each configured ``[databases.<name>]``, ``syncd`` (syncd's own PostgreSQL) and ``other``.

The kind's database comes from the configuration (``[kinds.<kind>] database``), never
from what a row or a caller says; over generated configurations and generated calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from syncd.app import App
from syncd.metrics import Metrics, Sources
from syncd.metrics.labels import DATABASE_METRICS
from syncd.settings import settings_from_data

NAMES = st.from_regex(r"\A[a-z][a-z0-9_]{0,11}\Z").filter(lambda n: n not in ("syncd", "other"))
#: kind -> its database (None: syncd's own), over up to three declared databases.
CONFIGS = st.lists(NAMES, min_size=0, max_size=3, unique=True).flatmap(
    lambda dbs: st.tuples(
        st.just(dbs),
        st.dictionaries(
            st.from_regex(r"\A[a-z]{1,8}\Z"),
            st.sampled_from([None, *dbs]),
            min_size=1,
            max_size=4,
        ),
    )
)
CALLS = st.lists(
    st.tuples(
        st.sampled_from(["finished", "progress", "retried"]),
        st.text(max_size=10),  # any kind a caller names, configured or not
        st.booleans(),
    ),
    max_size=20,
)


def app_metrics(databases: list[str], kinds: dict[str, str | None]) -> Metrics:
    data: dict[str, Any] = {
        "databases": {name: {"dsn": f"mysql://syncd:pw@db:3306/{name}"} for name in databases},
        "kinds": {
            kind: {"process_code": "PROC-1", **({"database": db} if db else {})}
            for kind, db in kinds.items()
        },
    }
    return App(settings_from_data(data), registry=CollectorRegistry()).metrics


def database_values(metrics: Metrics) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            name = sample.name.removesuffix("_created")
            if "database" in sample.labels and not name.startswith("syncd_relay_"):
                found.setdefault(name, set()).add(sample.labels["database"])
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


@settings(max_examples=60, deadline=None)
@given(config=CONFIGS, calls=CALLS)
def test_the_database_label_is_the_kinds_configured_one_from_a_closed_set(config, calls):
    databases, kinds = config
    metrics = app_metrics(databases, kinds)
    closed = {"syncd", *databases}
    # Every series is there from the start, at 0.
    for name in ("syncd_writebacks_total", "syncd_progress_writes_total"):
        for database in closed:
            for outcome in ("done", "failed"):
                assert value(metrics, name, database=database, outcome=outcome) == 0.0
    expected: dict[tuple[str, str, str], float] = {}
    for call, kind, written in calls:
        if call == "finished":
            metrics.approval_finished(
                kind, "approved", "stream", written=written,
                seconds_since_decision=1.0, calls_spent=2,
            )  # fmt: skip
        elif call == "progress":
            metrics.progress_written(kind, written=written)
        else:
            metrics.writeback_retried(kind, written=written)
        name = "syncd_progress_writes_total" if call == "progress" else "syncd_writebacks_total"
        database = (kinds[kind] or "syncd") if kind in kinds else "other"
        key = (name, database, "done" if written else "failed")
        expected[key] = expected.get(key, 0.0) + 1
    for (name, database, outcome), count in expected.items():
        assert value(metrics, name, database=database, outcome=outcome) == count
    for name, seen in database_values(metrics).items():
        assert seen <= closed | {"other"}, name


@settings(max_examples=30, deadline=None)
@given(
    config=CONFIGS,
    rows=st.lists(
        st.tuples(st.one_of(st.none(), NAMES), st.integers(1, 50), st.floats(0, 1e6)),
        max_size=8,
    ),
)
async def test_the_outbox_waiting_per_database_is_closed_and_sums_the_rows(config, rows):
    databases, kinds = config
    metrics = app_metrics(databases, kinds)

    class Store:
        async def fetch_all(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            if name != "metrics_outbox_backlog":
                return []
            return [
                {"kind": "k", "database": db or "syncd", "items": n, "oldest_seconds": age}
                for db, n, age in rows
            ]

    now = datetime(2026, 5, 1, tzinfo=UTC)
    await metrics.refresh(Sources(now=now, actor="r1", store=Store()))
    closed = {"syncd", *databases}
    want: dict[str, list[float]] = {db: [0.0, 0.0] for db in closed}
    for db, n, age in rows:
        label = (db or "syncd") if (db or "syncd") in closed else "other"
        seen = want.setdefault(label, [0.0, 0.0])
        seen[0] += n
        seen[1] = max(seen[1], age)
    for db, (items, oldest) in want.items():
        assert value(metrics, "syncd_outbox_waiting", database=db) == items
        assert value(metrics, "syncd_outbox_waiting_oldest_age_seconds", database=db) == oldest
    assert set(database_values(metrics)) >= set(DATABASE_METRICS[2:])
    for name, labels in database_values(metrics).items():
        assert labels <= closed | {"other"}, name


@pytest.mark.parametrize("name", ["syncd", "other"])
def test_a_database_may_not_take_a_reserved_name(name):
    with pytest.raises(Exception, match="reserved"):
        app_metrics([name], {"leave": name})
