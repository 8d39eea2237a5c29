"""``direction = "inbound"``: what an inbound kind needs, and what it refuses by name."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.cli import main
from syncd.errors import ConfigError
from syncd.settings import load_settings
from syncd.settings_inbound import OUTBOUND_ONLY

BASE = """
[database]
dsn = "postgresql://syncd@db/app"

[dingtalk]
app_key = "dingkey"
app_secret = "secret"

[kinds.leave_in]
direction = "inbound"
process_code = "PROC-LEAVE"
{extra}

[kinds.leave_in.inbound]
table = "app.leave_request"
key_column = "dingtalk_instance"
columns = {{ days = "天数", reason = "请假事由" }}
instance_columns = {{ applicant = "originator" }}
originator_by = "job_number"
"""

#: A value of each outbound-only setting, as TOML.
VALUES = {
    "originator": '"applicant"',
    "dept_id": "{ value = 1 }",
    "form": '{ "天数" = "days" }',
    "approvers": '[{ users = ["u1"] }]',
    "cc": '{ users = ["u1"] }',
    "correlation_field": '"编号"',
    "on_resubmit": '"supersede"',
    "attachments": '{ "附件" = { field = "files" } }',
}


def load(tmp_path, text):
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return load_settings(path)


def test_an_inbound_kind_loads(tmp_path):
    kind = load(tmp_path, BASE.format(extra="")).kinds["leave_in"]
    assert kind.direction == "inbound" and kind.inbound is not None
    assert kind.inbound.columns == {"days": "天数", "reason": "请假事由"}
    assert kind.uses_directory  # the originator's job number comes from the directory


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(OUTBOUND_ONLY))
def test_outbound_only_settings_are_refused_by_name(tmp_path, name):
    text = BASE.format(extra=f"{name} = {VALUES[name]}")
    with pytest.raises(ConfigError, match=f"{name} means nothing for an inbound kind"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('key_column = "dingtalk_instance"\n', "", "needs table and key_column"),
        ('table = "app.leave_request"', 'table = "app.leave; drop"', "must be name or schema.name"),
        ('applicant = "originator"', 'days = "title"', "column 'days' is mapped twice"),
        ('applicant = "originator"', 'applicant = "salary"', "instance_columns.applicant"),
        ('originator_by = "job_number"', 'originator_by = "name"', "originator_by"),
        ('direction = "inbound"', 'direction = "outbound"', "add direction"),
        ('direction = "inbound"', 'direction = "sideways"', "direction"),
    ],
)
def test_bad_inbound_settings_name_the_field(tmp_path, old, new, expected):
    text = BASE.format(extra="")
    assert old in text
    with pytest.raises(ConfigError, match=expected):
        load(tmp_path, text.replace(old, new, 1))


def test_an_inbound_kind_in_another_database_is_refused(tmp_path):
    text = BASE.format(extra='database = "erp"') + (
        '\n[databases.erp]\ndsn = "mysql://u:p@erp/erp"\n'
    )
    with pytest.raises(ConfigError, match="syncd's own PostgreSQL only"):
        load(tmp_path, text)


def test_two_inbound_kinds_of_one_template_are_refused(tmp_path):
    second = BASE.split("[dingtalk]")[1].split("\n", 4)[4].replace("leave_in", "leave_two")
    with pytest.raises(ConfigError, match=r"already imported by kinds\.leave_in"):
        load(tmp_path, BASE.format(extra="") + second.format(extra=""))


def test_config_show_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "syncd.toml"
    path.write_text(BASE.format(extra='form = { "天数" = "days" }'))
    assert main(["config", "show", "--config", str(path)]) == 2
    assert "form means nothing for an inbound kind" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "leave", "--since", "2026-01-01"], "not an inbound kind"),
        (["--kind", "leave_in", "--since", "2000-01-01"], "last 365 days"),
        (["--kind", "leave_in", "--since", "2026-01-01", "--window-days", "121"], "1 to 120"),
    ],
)
def test_backfill_refuses_what_it_cannot_list(tmp_path, capsys, args, expected):
    path = tmp_path / "syncd.toml"
    path.write_text(BASE.format(extra=""))
    assert main(["backfill", "--config", str(path), *args]) == 2
    assert expected in capsys.readouterr().err
