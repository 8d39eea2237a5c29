"""Access tokens and authentication errors (contract §1, §2, §8)."""

from __future__ import annotations

APP = {"appKey": "dingsimappkey0001", "appSecret": "sim-app-secret-0001"}
GET = "/v1.0/workflow/processInstances"


async def test_token_success_shape_and_headers(client) -> None:
    r = await client.post("/v1.0/oauth2/accessToken", json=APP)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"accessToken", "expireIn"}
    assert body["expireIn"] == 7200
    assert r.headers["content-type"] == "application/json;charset=utf-8"
    assert r.headers["server"] == "DingTalk/1.0.0"
    assert r.headers["x-acs-request-id"]


async def test_same_token_within_validity_new_after_expiry(client, clock, sim, api) -> None:
    first = (await client.post("/v1.0/oauth2/accessToken", json=APP)).json()["accessToken"]
    clock.advance(7000)
    again = (await client.post("/v1.0/oauth2/accessToken", json=APP)).json()["accessToken"]
    assert again == first
    clock.advance(7000)  # still valid: the second fetch extended it
    assert (await api.get("nope")).json()["code"] == "processInstanceNotExist"
    clock.advance(300)
    r = await client.get(
        GET, params={"processInstanceId": "x"}, headers={"x-acs-dingtalk-access-token": first}
    )
    api.error(r, 400, "InvalidAuthentication")
    fresh = (await client.post("/v1.0/oauth2/accessToken", json=APP)).json()["accessToken"]
    assert fresh != first


async def test_wrong_secret(client, api) -> None:
    r = await client.post("/v1.0/oauth2/accessToken", json={**APP, "appSecret": "x"})
    api.error(r, 400, "invalidClientIdOrSecret")
    r = await client.post("/v1.0/oauth2/accessToken", json={**APP, "appKey": "nope"})
    api.error(r, 400, "invalidClientIdOrSecret")


async def test_form_body_is_rejected(client) -> None:
    r = await client.post("/v1.0/oauth2/accessToken", data=APP)
    assert r.status_code == 400
    assert r.json()["message"] == "body is mandatory for this action"


async def test_missing_token_header(client, api, token) -> None:
    r = await client.get(GET, params={"processInstanceId": "x"})
    api.error(r, 400, "AuthenticationFailed.MissingParameter")
    r = await client.get(GET, params={"processInstanceId": "x", "access_token": token})
    api.error(r, 400, "AuthenticationFailed.MissingParameter")
    r = await client.get(
        GET, params={"processInstanceId": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    api.error(r, 400, "AuthenticationFailed.MissingParameter")


async def test_bad_and_quoted_token(client, api, token) -> None:
    for bad in ("garbage", f'"{token}"'):
        r = await client.get(
            GET, params={"processInstanceId": "x"}, headers={"x-acs-dingtalk-access-token": bad}
        )
        api.error(r, 400, "InvalidAuthentication")
        assert r.json()["message"] == "不合法的access_token"


async def test_expire_tokens_through_admin(client, api) -> None:
    await client.post("/_sim/tokens/expire")
    api.error(await api.get("x"), 400, "InvalidAuthentication")


async def test_old_gettoken(client) -> None:
    r = await client.get(
        "https://oapi.dingtalk.com/gettoken",
        params={"appkey": APP["appKey"], "appsecret": APP["appSecret"]},
    )
    body = r.json()
    assert r.status_code == 200 and body["errcode"] == 0 and body["errmsg"] == "ok"
    assert body["expires_in"] == 7200 and body["access_token"]
    r = await client.get("/gettoken", params={"appkey": APP["appKey"], "appsecret": "bad"})
    assert r.status_code == 200 and r.json()["errcode"] == 40096
    r = await client.get("/gettoken")
    assert r.json()["errcode"] == 40035


async def test_unknown_paths(client) -> None:
    r = await client.get("/nothing/here")
    assert r.status_code == 200 and r.json()["errcode"] == 404
    r = await client.post("/topapi/processinstance/create")
    assert r.json()["errcode"] == 22
    r = await client.get("/v1.0/nothing")
    assert r.status_code == 404
