"""The wire models accept every quirk of the contract (§14) and serialise requests exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from syncd.dingtalk.models import (
    ActionResponse,
    ApproverRule,
    CreateInstanceRequest,
    FormComponentValue,
    GetInstanceResponse,
    ListInstanceIdsResponse,
    SchemaResponse,
    TokenResponse,
    parse_time,
)

CST = timezone(timedelta(hours=8))


def test_create_request_serialises_camel_case_and_leaves_out_absent_fields() -> None:
    request = CreateInstanceRequest(
        process_code="PROC-X",
        originator_user_id="u1",
        dept_id=-1,
        form_component_values=[
            FormComponentValue(name="金额（元）", value="100"),
            FormComponentValue(name='["开始时间","结束时间"]', value='["2025-01-01","2025-01-02"]'),
        ],
        approvers=[ApproverRule(action_type="OR", user_ids=["u2", "u3"])],
        cc_list=["u4"],
    )
    assert request.to_wire() == {
        "processCode": "PROC-X",
        "originatorUserId": "u1",
        "deptId": -1,
        "formComponentValues": [
            {"name": "金额（元）", "value": "100"},
            {"name": '["开始时间","结束时间"]', "value": '["2025-01-01","2025-01-02"]'},
        ],
        "approvers": [{"actionType": "OR", "userIds": ["u2", "u3"]}],
        "ccList": ["u4"],
    }


def test_get_response_with_string_success_and_string_times() -> None:
    body = {
        "success": "true",
        "result": {
            "title": "t",
            "status": "COMPLETED",
            "result": "agree",
            "businessId": "2023",
            "originatorDeptId": -1,
            "createTime": "2022-08-31T11:52Z",
            "finishTime": "2022-08-31 12:00:05",
            "formComponentValues": [{"name": "a", "value": "1"}, {"name": "说明"}],
            "operationRecords": [{"userId": "u1", "date": "2022-08-31T11:52Z", "type": "X_NEW"}],
            "tasks": [{"taskId": 6176, "status": "COMPLETED", "result": "AGREE"}],
            "somethingNew": {"nested": True},
        },
    }
    instance = GetInstanceResponse.model_validate(body).result
    assert instance.is_approved and instance.is_finished
    assert instance.originator_dept_id == "-1"
    assert instance.create_time == datetime(2022, 8, 31, 11, 52, tzinfo=UTC)
    assert instance.finish_time == datetime(2022, 8, 31, 12, 0, 5, tzinfo=CST)
    assert instance.tasks[0].task_id == "6176"
    assert instance.form_component_values[1].value is None
    assert instance.operation_records[0].type == "X_NEW"


@pytest.mark.parametrize("result", ["", None, "  "])
def test_running_instance_has_no_result_whatever_the_encoding(result: str | None) -> None:
    body = {"success": True, "result": {"status": "running", "result": result, "finishTime": ""}}
    instance = GetInstanceResponse.model_validate(body).result
    assert instance.status == "RUNNING"
    assert instance.result is None and instance.finish_time is None
    assert not instance.is_finished


@pytest.mark.parametrize("status", ["NEW", "CANCELED", "TERMINATED", "SOMETHING_ELSE"])
def test_every_status_is_accepted(status: str) -> None:
    body = {"success": "true", "result": {"status": status}}
    assert GetInstanceResponse.model_validate(body).result.status == status


def test_null_lists_and_missing_fields_are_empty() -> None:
    body = {"success": "true", "result": {"tasks": None, "approverUserIds": None}}
    instance = GetInstanceResponse.model_validate(body).result
    assert instance.tasks == [] and instance.approver_user_ids == []


@pytest.mark.parametrize(("token", "cursor"), [("20", 20), (20, 20), ("", None), (None, None)])
def test_list_next_token_as_string_or_number(token: object, cursor: int | None) -> None:
    body = {"result": {"list": ["a", "b"], "nextToken": token}, "success": True}
    page = ListInstanceIdsResponse.model_validate(body).result
    assert page.ids == ["a", "b"] and page.next_cursor == cursor


@pytest.mark.parametrize("success", [True, "true", "TRUE"])
def test_action_response_success_as_bool_or_string(success: object) -> None:
    assert ActionResponse.model_validate({"result": True, "success": success}).success


def test_schema_with_children_options_and_unknown_props() -> None:
    body = {
        "result": {
            "formCode": "PROC-1",
            "status": "PUBLISHED",
            "gmtCreate": "1700000000000",
            "schemaContent": {
                "title": "请假",
                "items": [
                    {
                        "componentName": "DDSelectField",
                        "props": {
                            "id": "s1",
                            "label": "类型",
                            "required": "true",
                            "options": ["年假", {"key": "k", "value": "病假"}],
                            "tableViewMode": "table",
                        },
                    },
                    {
                        "componentName": "TableField",
                        "props": {"id": "t1", "label": "明细"},
                        "children": [{"componentName": "TextField", "props": {"label": "x"}}],
                    },
                ],
            },
        }
    }
    schema = SchemaResponse.model_validate(body).result
    select, table = schema.schema_content.items
    assert select.props.required and select.props.options == ["年假", "病假"]
    assert select.props.model_extra == {"tableViewMode": "table"}
    assert table.children[0].props.label == "x"
    assert schema.gmt_create == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1700000000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2022-08-31T11:52:00+08:00", datetime(2022, 8, 31, 11, 52, tzinfo=CST)),
        ("2022-08-31", datetime(2022, 8, 31, tzinfo=CST)),
        ("", None),
        (None, None),
    ],
)
def test_times_as_strings_or_epoch_numbers(raw: object, expected: datetime | None) -> None:
    assert parse_time(raw) == expected


def test_token_response() -> None:
    token = TokenResponse.model_validate_json('{"accessToken":"tok-1","expireIn":7200}')
    assert (token.access_token, token.expire_in) == ("tok-1", 7200)
