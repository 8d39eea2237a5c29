"""``[kinds.<kind>.attachments]`` with ``table``: files joined by key, validated at load
(exit 2, the message naming the field), over generated shapes of the settings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.cli import main
from syncd.errors import ConfigError
from syncd.settings import settings_from_data

GOOD: dict[str, Any] = {
    "table": "app.receipt",
    "key_column": "claim_key",
    "name_column": "file_name",
    "content_column": "content",
}
OPTIONAL = {"type_column": "file_type", "order_column": "seq", "key": "claim.id"}


def load(source: dict[str, Any], **kind: Any) -> Any:
    data = {"kinds": {"expense": {"process_code": "P", "attachments": {"附件": source}, **kind}}}
    return settings_from_data(data)


@given(optional=st.dictionaries(st.sampled_from(sorted(OPTIONAL)), st.just(None)))
def test_a_table_source_loads_with_any_of_its_optional_columns(optional: dict[str, None]) -> None:
    source = {**GOOD, **{name: OPTIONAL[name] for name in optional}}
    loaded = load(source).kinds["expense"].attachments["附件"]
    assert loaded.table == "app.receipt" and loaded.field is None and loaded.required


@given(missing=st.sampled_from(["key_column", "name_column", "content_column"]))
def test_a_table_source_without_a_column_names_it(missing: str) -> None:
    source = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ConfigError, match=f"kinds.expense.attachments.附件.*set {missing}"):
        load(source)


@given(
    column=st.sampled_from(["key_column", "name_column", "content_column", "type_column"]),
    bad=st.sampled_from(["a b", "x;drop", "1st", "a.b", 'q"']),
)
def test_a_column_that_is_no_name_is_refused(column: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=f"{column} .* must be a column name"):
        load({**GOOD, column: bad})


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ({**GOOD, "field": "receipts"}, "set field .* or table"),
        ({"field": "receipts", "key_column": "k"}, "key_column is for table"),
        ({**GOOD, "name_field": "n"}, "name_field is for field"),
        ({**GOOD, "table": "a.b.c"}, "must be name or schema.name"),
        ({}, "set field .* or table"),
    ],
)
def test_shapes_that_mean_nothing_are_refused(source: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        load(source)


def test_files_from_a_table_with_a_mysql_business_database_exit_2(tmp_path, capsys) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        '[databases.erp]\ndsn = "mysql://syncd:pw@db:3306/erp"\n'
        '[kinds.expense]\nprocess_code = "P"\ndatabase = "erp"\n'
        '[kinds.expense.attachments."附件"]\ntable = "receipt"\nkey_column = "k"\n'
        'name_column = "n"\ncontent_column = "c"\n'
    )
    assert main(["--config", str(config), "config", "show"]) == 2
    err = capsys.readouterr().err
    assert "kinds.expense" in err and "files from a table are read from syncd's own" in err
