from __future__ import annotations

from syncd.pipeline.mapping import check_form
from syncd.settings_kinds import KindSettings

from .conftest import LEAVE_KIND


async def test_form_mapping_is_checked_against_the_template(env):
    good = KindSettings.model_validate(LEAVE_KIND)
    bad = KindSettings.model_validate(
        {
            **LEAVE_KIND,
            "correlation_field": "天数",
            "form": {
                "请假类型": {"value": "婚假"},
                "假期": "x",
                '["开始时间","结束时间"]': {"fields": ["a", "b"]},
            },
        }
    )
    async with env.daemon() as daemon:
        schema = await daemon.app.client.get_form_schema("PROC-SIM-LEAVE")
    assert check_form("leave", good, schema) == []
    problems = check_form("leave", bad, schema)
    assert any("'婚假' is not an option" in p for p in problems)
    assert any("form '假期': no such component" in p for p in problems)
    assert any("correlation_field '天数': needs a text component" in p for p in problems)
    assert any("'天数' is required by PROC-SIM-LEAVE but not mapped" in p for p in problems)
