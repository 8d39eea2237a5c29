"""``[kinds.<name>.attachments_back]``: a place is required and must fit its ``to``; a
table only in syncd's own PostgreSQL; bad config exits 2 naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.cli import main
from syncd.errors import ConfigError
from syncd.settings import settings_from_data

MYSQL = {"erp": {"dsn": "mysql://u:pw-123456@db/erp"}}


def data(back: dict[str, Any], **kind: Any) -> dict[str, Any]:
    return {"kinds": {"expense": {"process_code": "P", "attachments_back": back, **kind}}}


@given(
    to=st.sampled_from(["table", "directory"]),
    table=st.sampled_from([None, "app.expense_file", "expense_file", "a.b; drop"]),
    directory=st.sampled_from([None, "/var/lib/files", "relative/dir"]),
)
def test_a_place_must_fit_its_to(to: str, table: str | None, directory: str | None) -> None:
    back = {"to": to, "table": table, "directory": directory}
    back = {k: v for k, v in back.items() if v is not None}
    good_table = table == "app.expense_file" and directory is None
    good_dir = directory == "/var/lib/files" and table is None
    if (to == "table" and good_table) or (to == "directory" and good_dir):
        kind = settings_from_data(data(back)).kinds["expense"]
        assert kind.attachments_back is not None and kind.attachments_back.to == to
        return
    with pytest.raises(ConfigError) as info:
        settings_from_data(data(back))
    assert "attachments_back" in str(info.value)


def test_a_table_with_a_mysql_business_database_is_refused_naming_the_fix() -> None:
    back = {"to": "table", "table": "app.expense_file"}
    with pytest.raises(ConfigError) as info:
        settings_from_data({"databases": MYSQL, **data(back, database="erp")})
    assert "syncd's own PostgreSQL only" in str(info.value)
    assert 'use to = "directory"' in str(info.value)
    back = {"to": "directory", "directory": "/srv/files"}
    assert settings_from_data({"databases": MYSQL, **data(back, database="erp")})


def test_bad_config_exits_2(tmp_path: Any, capsys: Any) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[kinds.e]\nprocess_code = "P"\n[kinds.e.attachments_back]\nto = "table"\n')
    assert main(["--config", str(config), "config", "show"]) == 2
    assert 'needs table = "schema.name"' in capsys.readouterr().err


WRITE_BACK = {"table": "app.claim", "key_column": "key", "columns": {"status": "status"}}


@given(
    column=st.sampled_from([None, "file_links", "bad column"]),
    write_back=st.sampled_from([None, WRITE_BACK, {"procedure": "app.write_claim"}]),
    database=st.sampled_from([None, "erp"]),
)
def test_links_need_a_column_of_a_write_back_table_in_syncds_postgresql(
    column: str | None, write_back: dict[str, Any] | None, database: str | None
) -> None:
    back = {"to": "links"} | ({"column": column} if column else {})
    kind: dict[str, Any] = {"database": database} if database else {}
    if write_back:
        kind["write_back"] = write_back
    config = {"databases": MYSQL, **data(back, **kind)}
    if column == "file_links" and write_back is WRITE_BACK and database is None:
        found = settings_from_data(config).kinds["expense"].attachments_back
        assert found is not None and found.column == "file_links"
        return
    with pytest.raises(ConfigError) as info:
        settings_from_data(config)
    message = str(info.value)
    assert "attachments_back" in message
    if column is None:
        assert 'to = "links" needs column' in message
    elif column == "file_links":
        assert "write-back table" in message and 'use to = "directory"' in message


def test_a_column_means_nothing_elsewhere() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_data(data({"to": "directory", "directory": "/srv", "column": "x"}))
    assert 'column means nothing with to = "directory"' in str(info.value)


def test_since_is_a_date_or_a_time_utc_unless_it_says() -> None:
    def since(value: object) -> Any:
        back = {"to": "directory", "directory": "/srv", "since": value}
        found = settings_from_data(data(back)).kinds["expense"].attachments_back
        assert found is not None
        return found.since_at

    assert since("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    assert since(date(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)  # a TOML date
    assert since("2026-01-01T08:00:00+08:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert since("2026-01-01 08:00") == datetime(2026, 1, 1, 8, tzinfo=UTC)
    with pytest.raises(ConfigError) as info:
        since("yesterday")
    assert "since" in str(info.value)
