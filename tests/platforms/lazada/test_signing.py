"""Lazada's two published signing examples, and the signing `httpx.Auth`."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import respx

from app.platforms.lazada.auth import LazadaAuth, push_signature, sign, verify_push


def test_api_sign_matches_lazadas_worked_example() -> None:
    # LZ-DOC-108069: secret "helloworld", string
    # /order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000
    params = {
        "timestamp": "1517820392000",
        "order_id": "1234",
        "app_key": "123456",
        "sign_method": "sha256",
        "access_token": "test",
    }
    assert (
        sign("/order/get", params, "helloworld")
        == "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
    )


def test_push_signature_matches_lazadas_worked_example() -> None:
    body = b'{"seller_id":"1234567", "message_type":0, "data":{...}..}'
    expected = "f3d2ca947f16a50b577c036adecd18bec126ea19cadedd59816e255d3b6104ab"
    assert push_signature("123456", "3412gyo124goi3124", body) == expected
    assert verify_push("123456", "3412gyo124goi3124", body, expected.upper())
    assert not verify_push("123456", "3412gyo124goi3124", body + b" ", expected)
    assert not verify_push("123456", "3412gyo124goi3124", body, None)


def test_sign_ignores_the_sign_parameter_and_empty_values() -> None:
    params = {"b": "2", "a": "1"}
    assert sign("/x", params, "s") == sign("/x", {**params, "sign": "OLD", "c": ""}, "s")
    assert sign("/x", params, "s") != sign("/y", params, "s")


@respx.mock
async def test_auth_adds_system_parameters_and_resigns_every_attempt() -> None:
    route = respx.get("https://api.lazada.co.th/rest/orders/get").mock(
        return_value=httpx.Response(200, json={"code": "0"})
    )
    clock = iter(["1000", "2000"])
    auth = LazadaAuth("123456", "secret", "/orders/get", "tok", clock=lambda: next(clock))
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            await client.get(
                "https://api.lazada.co.th/rest/orders/get", params={"limit": "100"}, auth=auth
            )
    stamps = []
    for call in route.calls:
        query = dict(call.request.url.params)
        assert query["app_key"] == "123456"
        assert query["sign_method"] == "sha256"
        assert query["access_token"] == "tok"
        given = query.pop("sign")
        assert given == sign("/orders/get", query, "secret")
        assert given == given.upper()
        stamps.append(query["timestamp"])
    assert stamps == ["1000", "2000"]


@respx.mock
async def test_post_body_parameters_are_signed_and_no_token_without_one() -> None:
    route = respx.post("https://auth.lazada.com/rest/auth/token/refresh").mock(
        return_value=httpx.Response(200, json={"code": "0"})
    )
    auth = LazadaAuth("123456", "secret", "/auth/token/refresh", clock=lambda: "1517820392000")
    async with httpx.AsyncClient() as client:
        await client.post(
            "https://auth.lazada.com/rest/auth/token/refresh",
            data={"refresh_token": "r-1"},
            auth=auth,
        )
    request = route.calls.last.request
    query = dict(request.url.params)
    assert "access_token" not in query
    assert "refresh_token" not in query  # stays in the body, out of URLs and access logs
    body = dict(parse_qsl(request.content.decode()))
    assert body == {"refresh_token": "r-1"}
    given = query.pop("sign")
    assert given == sign("/auth/token/refresh", {**query, **body}, "secret")
