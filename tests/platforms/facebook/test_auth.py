import hashlib
import hmac

import httpx

from app.platforms.facebook.auth import GraphAuth, appsecret_proof, hub_signature_256

TOKEN = "EAABsbCS1iHgBAKZC0token"
SECRET = "a1b2c3d4e5f6app-secret"
# Computed independently: echo -n TOKEN | openssl dgst -sha256 -hmac SECRET
PROOF = "aa09df2da1c053c845576831edda9c3d90d280407866f23a67df2696bac359a4"


def test_appsecret_proof_is_lowercase_hex_hmac_of_the_token_keyed_by_the_secret() -> None:
    by_hand = hmac.new(SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert appsecret_proof(TOKEN, SECRET) == by_hand == PROOF
    assert PROOF.lower() == PROOF and len(PROOF) == 64


def test_proof_depends_on_both_token_and_secret() -> None:
    assert appsecret_proof(TOKEN + "x", SECRET) != PROOF
    assert appsecret_proof(TOKEN, SECRET + "x") != PROOF


def test_auth_puts_token_in_header_and_proof_in_query() -> None:
    request = httpx.Request("GET", "https://graph.test/v18.0/123?fields=name")
    flow = GraphAuth(TOKEN, SECRET).auth_flow(request)
    signed = next(flow)
    assert signed.headers["Authorization"] == f"Bearer {TOKEN}"
    assert signed.url.params["appsecret_proof"] == PROOF
    assert signed.url.params["fields"] == "name"
    assert TOKEN not in str(signed.url)
    assert "access_token" not in signed.url.params


def test_auth_without_secret_sends_no_proof() -> None:
    request = httpx.Request("GET", "https://graph.test/v18.0/123")
    signed = next(GraphAuth(TOKEN, "").auth_flow(request))
    assert "appsecret_proof" not in signed.url.params
    assert TOKEN not in repr(GraphAuth(TOKEN, SECRET))


def test_webhook_signature_vector() -> None:
    body = b'{"object":"page"}'
    # echo -n '{"object":"page"}' | openssl dgst -sha256 -hmac SECRET
    expected = "8bc95927cd962a2950e778d1ae9afcbc10b4bdb6740549328513032fae1adf46"
    assert hub_signature_256(SECRET, body) == f"sha256={expected}"
