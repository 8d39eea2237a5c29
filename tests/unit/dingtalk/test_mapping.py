"""The error table: every DingTalk answer maps to what the caller must do next."""

from __future__ import annotations

import json

import pytest

from syncd.dingtalk.mapping import error_from_response, for_create
from syncd.errors import (
    DingTalkAuthError,
    DingTalkError,
    DingTalkOutcomeUnknown,
    DingTalkQuotaExhausted,
    DingTalkRejected,
    DingTalkThrottled,
    DingTalkTransient,
)


def _new(status: int, code: str, message: str = "m") -> tuple[int, bytes]:
    body = {"code": code, "requestid": "R1", "message": message}
    return status, json.dumps(body).encode()


CASES: list[tuple[int, bytes, type[DingTalkError]]] = [
    (*_new(400, "InvalidAuthentication"), DingTalkAuthError),
    (*_new(400, "AuthenticationFailed.MissingParameter"), DingTalkAuthError),
    (*_new(400, "invalidClientIdOrSecret"), DingTalkAuthError),
    (*_new(401, "whatever"), DingTalkAuthError),
    (*_new(401, "authFailed"), DingTalkAuthError),
    (*_new(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied"), DingTalkAuthError),
    (*_new(403, "Forbidden.AccessDenied.IpNotInWhiteList"), DingTalkAuthError),
    (*_new(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"), DingTalkThrottled),
    (*_new(403, "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"), DingTalkThrottled),
    (*_new(403, "Forbidden.AccessDenied.QpsLimitForApi"), DingTalkThrottled),
    (*_new(403, "Forbidden.AccessDenied.ApiCountLimitForOrg"), DingTalkQuotaExhausted),
    (*_new(429, "Forbidden.AccessDenied.ApiCountLimitForOrg"), DingTalkQuotaExhausted),
    (*_new(429, "system.busy"), DingTalkThrottled),
    (*_new(429, "systemBusy"), DingTalkThrottled),
    (*_new(400, "autoflowLikeTriggerRateLimited"), DingTalkThrottled),
    (*_new(400, "processCodeError"), DingTalkRejected),
    (*_new(400, "formConverterError", "表单数据校验失败"), DingTalkRejected),
    (*_new(400, "processInstanceNotExist"), DingTalkRejected),
    (*_new(400, "benefitStatusInvalid"), DingTalkRejected),
    (*_new(400, "internalError"), DingTalkTransient),
    (*_new(400, "sysErrror"), DingTalkTransient),
    (*_new(500, "systemError"), DingTalkTransient),
    (502, b"<html>bad gateway</html>", DingTalkTransient),
    (503, b"", DingTalkTransient),
    (403, b"<html>blocked</html>", DingTalkThrottled),
    (200, b'{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"}', DingTalkThrottled),
    (200, b'{"errcode":404,"errmsg":"\xe8\xaf\xb7\xe6\xb1\x82"}', DingTalkRejected),
    (
        200,
        b'{"errcode":88,"sub_code":"40014","sub_msg":"bad token","errmsg":"x"}',
        DingTalkAuthError,
    ),
    (200, b'{"errcode":40096,"errmsg":"bad key"}', DingTalkAuthError),
    (200, b'{"errcode":90018,"errmsg":"qps"}', DingTalkThrottled),
    (200, b'{"errcode":90002,"errmsg":"api limit"}', DingTalkThrottled),
    (200, b'{"errcode":90020,"errmsg":"quota"}', DingTalkQuotaExhausted),
    (200, b'{"errcode":-1,"errmsg":"busy"}', DingTalkTransient),
]


@pytest.mark.parametrize(("status", "body", "expected"), CASES)
def test_error_table(status: int, body: bytes, expected: type[DingTalkError]) -> None:
    error = error_from_response(status, {}, body)
    assert type(error) is expected


@pytest.mark.parametrize(
    "body", [b'{"instanceId":"x"}', b'{"errcode":0,"errmsg":"ok"}', b'{"result":true}']
)
def test_successes(body: bytes) -> None:
    assert error_from_response(200, {}, body) is None


def _error(status: int, code: str, message: str = "m") -> DingTalkError | None:
    status, body = _new(status, code, message)
    return error_from_response(status, {}, body)


def test_rejection_keeps_dingtalk_code_message_and_request_id() -> None:
    error = _error(400, "processCodeError", "模板已被删除")
    assert isinstance(error, DingTalkRejected)
    assert (error.code, error.message, error.request_id, error.http_status) == (
        "processCodeError",
        "模板已被删除",
        "R1",
        400,
    )


def test_request_id_header_when_body_has_none() -> None:
    body = b'{"code":"systemError","message":"m"}'
    error = error_from_response(500, {"x-acs-request-id": "H1"}, body)
    assert error is not None and error.request_id == "H1"


def test_throttle_delays() -> None:
    qps = _error(403, "Forbidden.AccessDenied.QpsLimitForApi")
    qpm = _error(403, "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi")
    told = error_from_response(429, {"retry-after": "7"}, b'{"code":"system.busy"}')
    ban = error_from_response(200, {}, b'{"status":1111,"wait":5}')
    delays = [e.retry_after for e in (qps, qpm, told, ban) if isinstance(e, DingTalkThrottled)]
    assert delays == [1.0, 60.0, 7.0, 300.0]


def test_create_turns_server_failures_into_outcome_unknown() -> None:
    server = _error(500, "systemError")
    throttled = _error(403, "Forbidden.AccessDenied.QpsLimitForApi")
    rejected = _error(400, "processCodeError")
    assert server is not None and throttled is not None and rejected is not None
    assert isinstance(for_create(server), DingTalkOutcomeUnknown)
    assert for_create(throttled) is throttled
    assert for_create(rejected) is rejected
