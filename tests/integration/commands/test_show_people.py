"""``syncd show`` of a round whose people were named by job number, mobile and email: the
userId the create was sent with, and how each person was found."""

from __future__ import annotations

import json

from tests.integration.pipeline.test_people_lookup import KIND, fill_directory, submit

from .conftest import config_data


async def test_show_names_the_user_id_sent_and_how_people_were_found(world, cli):
    settings = world.settings(kinds={"people": KIND})
    async with world.daemon(settings) as daemon:
        await fill_directory(world, daemon)
        submit(world, "r1")
        await daemon.drain()
    cli.configure(config_data(world.daemon_dsn, kinds={"people": KIND}))
    code, out, _ = await cli("show", "people", "r1")
    assert code == 0
    assert "  originator        e0006  (sent as userId u1)  attempts 1" in out
    assert "note  originator job_number e0006 → u1 (张三); approvers step 1 mobile" in out
    assert "call user_by_mobile ok" in out and "call user_get ok" in out
    code, out, _ = await cli("show", "people", "r1", "--json")
    [data] = json.loads(out)
    assert (data["originator"], data["originator_user_id"]) == (" e0006 ", "u1")
