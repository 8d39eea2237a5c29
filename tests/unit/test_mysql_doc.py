"""docs/mysql.md shows the grants syncd's MySQL user gets in the tests."""

from __future__ import annotations

from pathlib import Path

from syncd.db.mysql.grants import footprint_grants, write_back_grants
from syncd.settings_kinds import WriteBackSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "mysql.md").read_text(encoding="utf-8")


def test_the_documented_grants_are_the_ones_syncd_needs():
    account = "'syncd'@'%'"
    table = WriteBackSettings(
        table="expense_claim",
        key_column="id",
        columns={"approval_status": "status", "decided_at": "finished_at", "approver": "approver"},
    )
    procedure = WriteBackSettings(procedure="erp.on_expense_result")
    for statement in [
        *footprint_grants(account),
        *write_back_grants(account, table),
        *write_back_grants(account, procedure),
    ]:
        assert f"{statement};" in DOC
