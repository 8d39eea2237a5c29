"""``syncd dismiss``: a parked round closed for good, with a reason in its history; status
checks, the parked view and the gauge behind the parked-rows alert stop counting it,
and nothing retries it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .test_repair import approval, history, superseded


async def parked_gauge(daemon) -> dict[str, float]:
    """``syncd_approvals`` of the parked states, as Prometheus would scrape them."""
    transport = httpx.ASGITransport(app=daemon.app.http_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://syncd") as http:
        text = (await http.get("/metrics")).text
    return {
        s.labels["state"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "syncd_approvals" and s.labels["state"] in ("invalid", "dead")
    }


async def test_a_superseded_round_is_dismissed_and_stops_counting(world, cli):
    key = await superseded(world)
    old_id = approval(world, key, 1)[0]
    code, out, _ = await cli("status", "--check")
    assert code == 1 and "leave: 1 parked" in out
    assert "1 of the parked were replaced by a newer round" in out
    assert "`syncd dismiss --kind leave --superseded --reason ...`" in out
    code, out, _ = await cli("retry", str(old_id))
    assert code == 1 and f"`syncd dismiss {old_id} --reason ...` closes this one" in out

    # KIND KEY names the latest round, which is running: refused, nothing changes.
    code, out, _ = await cli("dismiss", "leave", str(key), "--reason", "replaced")
    assert code == 1 and "round 2) is running, not invalid or dead" in out
    code, out, _ = await cli(
        "dismiss", "leave", str(key), "--round", "1", "--reason", "replaced by round 2"
    )
    assert code == 0, out
    assert f"approval {old_id} (leave {key} round 1): invalid -> dismissed (was " in out
    assert "dismissed 1, already dismissed 0, refused 0" in out
    event = history(world, old_id)[-1]
    assert event[:3] == ("transition", "invalid", "dismissed")
    assert event[3].startswith("dismissed by an operator: replaced by round 2 (was ")
    assert event[4].startswith("cli:")

    code, out, _ = await cli("status", "--check")
    assert code == 0 and "nothing needs attention" in out
    assert world.sql("SELECT count(*) FROM syncd.parked") == [(0,)]
    async with world.daemon() as daemon:
        assert await parked_gauge(daemon) == {"invalid": 0.0, "dead": 0.0}
        await world.advance(3600)
        await daemon.drain()
    assert approval(world, key, 1)[1] == "dismissed"

    code, out, _ = await cli("retry", str(old_id))
    assert code == 1 and "was dismissed (`syncd show leave" in out
    assert "a new outbox row for the key starts a new round" in out
    code, out, _ = await cli("retry", "--kind", "leave", "--all-parked")
    assert code == 0 and "no parked approvals of kind leave; nothing to retry" in out
    lines = len(history(world, old_id))
    code, out, _ = await cli("dismiss", str(old_id), "--reason", "again")
    assert code == 0 and "was already dismissed" in out
    assert len(history(world, old_id)) == lines
    code, out, _ = await cli("show", str(old_id))
    assert code == 0 and f"leave {key} round 1 (approval {old_id}" in out
    assert "invalid -> dismissed  dismissed by an operator: replaced by round 2" in out


async def test_every_superseded_round_of_a_kind_at_once(world, cli):
    first, second = await superseded(world), await superseded(world)
    lone = world.submit_leave(applicant="left1")
    async with world.daemon() as daemon:
        await daemon.drain()
    code, out, _ = await cli(
        "dismiss", "--kind", "leave", "--superseded", "--reason", "resubmitted by the app"
    )
    assert code == 0 and "dismissed 2, already dismissed 0, refused 0" in out
    assert [approval(world, k, 1)[1] for k in (first, second)] == ["dismissed", "dismissed"]
    assert approval(world, lone)[1] == "invalid"  # parked, but not replaced: stays
    code, out, _ = await cli("dismiss", "--kind", "leave", "--superseded", "--reason", "x")
    assert code == 0 and "replaced by a newer round; nothing to dismiss" in out
    code, out, _ = await cli(
        "dismiss", "--kind", "leave", "--all-parked", "--state", "invalid", "--reason", "gone"
    )
    assert code == 0 and "dismissed 1," in out and approval(world, lone)[1] == "dismissed"


async def test_dismiss_needs_a_reason_and_a_parked_round(world, cli):
    code, _, err = await cli("dismiss", "1")
    assert code == 2 and "--reason" in err
    code, _, err = await cli("dismiss", "1", "--reason", "  ")
    assert code == 2 and "--reason must say why" in err
    code, _, err = await cli("dismiss", "--reason", "why")
    assert code == 2 and "or --kind KIND --all-parked or --superseded" in err
    key = world.submit_leave(days=3)
    async with world.daemon() as daemon:
        await daemon.drain()
    running = approval(world, key)[0]
    code, out, _ = await cli("dismiss", str(running), "424242", "--reason", "why")
    assert code == 1
    assert f"refused: approval {running} (leave {key} round 1) is running" in out
    assert "refused: approval 424242 does not exist" in out
    assert approval(world, key)[1] == "running"
