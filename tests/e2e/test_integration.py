"""The integration kit end to end: provider and example resource service in separate processes.

A user signs in through the SDK (mana_auth.Client) and calls the example, which verifies the token
locally; forged, expired, wrong-audience and revoked tokens are refused; a service account made with
the management command gets a service token and introspects. Tests run in file order: the last one
stops the provider to show local verification does not need it.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

import mana_auth
from mana_auth import _http

pytestmark = pytest.mark.e2e


def get(server_or_url, path: str, token: str | None = None) -> _http.Response:
    base = getattr(server_or_url, "url", server_or_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _http.send("GET", base + path, headers=headers, timeout=10)


def post(url: str, body: dict, token: str | None = None) -> _http.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _http.send("POST", url, json=body, headers=headers, timeout=10)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def refused(response: _http.Response) -> bool:
    return response.status == 401 and response.error()[0] == "invalid_token" \
        and response.headers.get("www-authenticate", "").startswith("Bearer")


@pytest.fixture(scope="module")
def user_client(provider, example, world):
    # The token goes to the provider's origin and, named here, the example resource service's only.
    client = mana_auth.Client(provider.url, token_origins=[example.url])
    client.login(world["user_email"], world["password"], device_name="e2e")
    return client


def test_user_logs_in_through_the_sdk_and_calls_the_example(user_client, example, world):
    response = user_client.request("GET", example.url + "/hello")
    assert response.status == 200, response.text
    body = response.json()
    assert body["hello"] == body["email"] == world["user_email"]
    assert body["sub"] == world["user"] and body["role"] == "user" and body["sessionId"]
    assert get(example, "/hello").status == 401  # no token


def test_the_example_verifies_locally_without_calling_the_provider(user_client, example, provider):
    token = user_client.access_token()
    assert get(example, "/hello", token).status == 200  # JWKS fetched (once) by now
    before = provider.server.access_lines()
    for _ in range(20):
        assert get(example, "/hello", token).status == 200
    assert provider.server.access_lines() == before  # 20 verified requests, not one provider request
    jwks_fetches = [line for line in before if "/api/v1/auth/jwks" in line]
    assert len(jwks_fetches) >= 1


def test_roles(provider, example, world, user_client):
    assert get(example, "/admin-only", user_client.access_token()).status == 403
    admin = mana_auth.Client(provider.url, token_origins=[example.url])
    admin.login(world["admin_email"], world["password"])
    response = admin.request("GET", example.url + "/admin-only")
    assert response.status == 200 and response.json()["role"] == "admin"


def test_forged_tokens_are_refused(provider, example, user_client):
    genuine = user_client.access_token()
    kid = json.loads(base64.urlsafe_b64decode(genuine.split(".")[0] + "==="))["kid"]
    claims = claims_of(genuine)
    own_key = OKPKey.generate_key("Ed25519")
    # Our own key under the provider's kid: the signature does not verify.
    same_kid = jwt.encode({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}, claims, own_key, algorithms=["EdDSA"])
    assert refused(get(example, "/hello", same_kid))
    # Our own key under a kid of our own (and a jku pointing at "our" keys, which must be ignored).
    own_kid = jwt.encode({"alg": "EdDSA", "kid": "attacker", "typ": "at+jwt", "jku": "http://127.0.0.1:9/jwks"},
                         claims, own_key, algorithms=["EdDSA"])
    assert refused(get(example, "/hello", own_kid))
    # Tampered claims under the genuine signature (role upgraded to admin).
    header, _, signature = genuine.split(".")
    upgraded = base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode()).rstrip(b"=").decode()
    assert refused(get(example, "/admin-only", f"{header}.{upgraded}.{signature}"))
    # alg none.
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    assert refused(get(example, "/hello", f"{none_header}.{genuine.split('.')[1]}."))


def test_expired_and_wrong_audience_tokens_signed_by_the_provider_are_refused(example, world):
    assert claims_of(world["expired"])["exp"] < time.time()
    assert refused(get(example, "/hello", world["expired"]))
    assert claims_of(world["foreignAudience"])["aud"] == "some-other-service"
    assert refused(get(example, "/hello", world["foreignAudience"]))


def test_revocation_is_seen_by_the_checking_endpoint(provider, example, world):
    client = mana_auth.Client(provider.url)
    client.login(world["user_email"], world["password"], device_name="to-revoke")
    token = client.access_token()
    assert get(example, "/hello", token).status == 200
    other = mana_auth.Client(provider.url)  # a live session: the revocation-checking endpoint admits it
    other.login(world["user_email"], world["password"], device_name="stays")
    assert get(example, "/sensitive", other.access_token()).status == 200
    client.logout()
    # Local verification alone accepts the token until exp, by design...
    assert get(example, "/hello", token).status == 200
    # ...the endpoint with the revocation check asks the provider and refuses it.
    assert refused(get(example, "/sensitive", token))
    assert get(example, "/sensitive", other.access_token()).status == 200


def test_service_account_gets_a_token_and_introspects(provider, example, user_client, world):
    creds = provider.create_service_account("e2e-reporting")
    assert creds["clientId"].startswith("svc_") and creds["clientSecret"]
    wrong = post(provider.url + "/api/v1/auth/service-token", {**creds, "clientSecret": "mcs_nope"})
    assert wrong.status == 401 and wrong.error()[0] == "invalid_client"
    response = post(provider.url + "/api/v1/auth/service-token", creds)
    assert response.status == 200 and "no-store" in response.headers["cache-control"]
    body = response.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 900
    service_token = body["accessToken"]
    assert claims_of(service_token)["role"] == "service" and "sid" not in claims_of(service_token)

    user_token = user_client.access_token()
    answer = post(provider.url + "/api/v1/auth/introspect", {"token": user_token}, service_token)
    assert answer.status == 200 and "no-store" in answer.headers["cache-control"]
    assert answer.json() == {"active": True, **claims_of(user_token)}
    assert answer.json()["sub"] == world["user"]
    for dead in (world["expired"], world["foreignAudience"], "not-a-token"):
        assert post(provider.url + "/api/v1/auth/introspect", {"token": dead}, service_token).json() == {"active": False}
    # Only services may introspect.
    denied = post(provider.url + "/api/v1/auth/introspect", {"token": user_token}, user_token)
    assert denied.status == 403 and denied.error()[0] == "permission_denied"
    # The library verifies service tokens too; the example sees a service principal.
    seen = get(example, "/hello", service_token)
    assert seen.status == 200 and seen.json()["role"] == "service" and seen.json()["sessionId"] is None
    assert seen.json()["sub"] == claims_of(service_token)["sub"]


def test_with_the_provider_down_local_verification_still_works(provider, example, user_client):
    """Last: stop the provider. Tokens still verify from the cached JWKS; the revocation check,
    which needs the provider, fails closed with 503 rather than 401 (the client keeps its session)."""
    token = user_client.access_token()
    # Warm this token's introspection-free path, then take the provider away.
    assert get(example, "/hello", token).status == 200
    provider.server.stop()
    with pytest.raises(mana_auth.TransportError):
        _http.send("GET", provider.url + "/api/v1/auth/jwks", timeout=2)
    assert get(example, "/hello", token).status == 200
    # This token was never introspected (no cached answer), so the check must ask, and fails closed.
    response = get(example, "/sensitive", token)
    assert response.status == 503 and response.error()[0] == "auth_unavailable"
