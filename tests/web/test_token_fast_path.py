"""GET /api/v1/auth/token answered from the cookie-cache snapshot (sessions_app.middleware): zero
queries, the same token as the view, and never a stale organization or user where it matters."""

import time

import pytest
from django.conf import settings as django_settings
from django.test import Client

from identity.services.tokens import access_token_verify
from orgs.models import Membership, Organization, OrgRole
from sessions_app import cookie_cache
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.support import auth
from tests.support.agents import CHROME_LINUX
from tests.support.auth import cache_cookie, login, page_login

TOKEN = "/api/v1/auth/token"
SWITCH = "/api/v1/auth/switch-organization"
CLAIMS = {"iss", "aud", "sub", "email", "role", "sid", "iat", "exp", "jti", "amr"}


def _browser(user):
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    client.get("/login")  # the CSRF cookie, for the switches below
    assert page_login(client, user.email).status_code == 302
    return client


def _fresh_cache(client):
    client.cookies.pop(app_settings.CACHE_COOKIE, None)
    assert client.get("/api/v1/auth/session").status_code == 200
    assert cache_cookie(client).value


def _switch(client, org):
    csrf = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    r = client.post(SWITCH, {"organizationId": str(org.pk) if org else None}, content_type="application/json",
                    HTTP_X_CSRFTOKEN=csrf)
    assert r.status_code == 200, r.content


def _claims(response):
    assert response.status_code == 200, response.content
    return access_token_verify(response.json()["accessToken"])


def test_a_fresh_snapshot_mints_the_token_without_a_query(signed_in, user, django_assert_num_queries, settings):
    # Not counted here: the signing-key generation check, at most one query per interval and process
    # (tests/identity/test_key_generation.py).
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    _fresh_cache(signed_in)
    with django_assert_num_queries(0):
        hit = signed_in.get(TOKEN)
    claims = _claims(hit)
    assert set(claims) == CLAIMS
    row = DeviceSession.objects.get(user=user)
    assert (claims["sub"], claims["sid"], claims["email"], claims["role"]) == (str(user.pk), str(row.pk),
                                                                                user.email, "user")
    # 900 less the snapshot's age (a token from a snapshot ends no later than one minted at its issue).
    assert 890 <= hit.json()["expiresIn"] <= 900 and set(hit.json()) == {"accessToken", "expiresIn"}
    assert app_settings.CACHE_COOKIE not in hit.cookies  # nothing re-issued on a hit


def test_the_fast_path_answers_like_the_view(signed_in):
    signed_in.cookies.pop(app_settings.CACHE_COOKIE, None)
    view = signed_in.get(TOKEN)  # no snapshot: the DRF view (and a snapshot is issued)
    hit = signed_in.get(TOKEN)
    for header in ["Content-Type", "Cache-Control", "Vary", "X-Frame-Options", "Allow", "Expires"]:
        assert (header in hit) == (header in view), header
        if header != "Expires":
            assert hit[header] == view[header], header
    assert "no-store" in hit["Cache-Control"]
    assert set(_claims(hit)) == set(_claims(view))
    assert {k: v for k, v in _claims(hit).items() if k not in ("iat", "exp", "jti")} == \
        {k: v for k, v in _claims(view).items() if k not in ("iat", "exp", "jti")}
    assert "Content-Security-Policy" in hit


def test_each_hit_is_a_new_token(signed_in):
    _fresh_cache(signed_in)
    first, second = _claims(signed_in.get(TOKEN)), _claims(signed_in.get(TOKEN))
    assert first["jti"] != second["jti"]


def test_a_bearer_header_or_no_cookie_never_takes_the_fast_path(signed_in, user, api,
                                                                 django_assert_max_num_queries):
    _fresh_cache(signed_in)
    browser_sid = str(DeviceSession.objects.get(user=user).pk)
    tokens = login(api, user.email)
    with django_assert_max_num_queries(50) as queries:
        r = signed_in.get(TOKEN, HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert len(queries) > 0  # the view, not the snapshot
    assert _claims(r)["sid"] == browser_sid  # GET token is for the browser's cookie only
    assert Client().get(TOKEN).status_code == 401


def test_a_snapshot_of_another_session_cookie_is_not_used(user):
    first, second = _browser(user), _browser(user)
    _fresh_cache(first)
    second.cookies[app_settings.CACHE_COOKIE] = cache_cookie(first).value
    claims = _claims(second.get(TOKEN))  # the view, from the second browser's own row
    assert claims["sid"] != _claims(first.get(TOKEN))["sid"]


def test_the_active_organization_is_in_the_fast_token(user, django_assert_num_queries, settings):
    # Not counted here: the signing-key generation check, at most one query per interval and process
    # (tests/identity/test_key_generation.py).
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.ADMIN)
    browser = _browser(user)
    _switch(browser, org)
    _fresh_cache(browser)
    with django_assert_num_queries(0):
        hit = browser.get(TOKEN)
    claims = _claims(hit)
    assert (claims["org"], claims["orgRole"]) == (str(org.pk), "admin")
    _switch(browser, None)  # leaving, in this browser: the very next token has no organization
    assert "org" not in _claims(browser.get(TOKEN))


def test_a_membership_that_ended_is_dropped_by_the_view(user):
    org = Organization.objects.create(name="Acme", slug="acme")
    membership = Membership.objects.create(user=user, organization=org, role=OrgRole.MEMBER)
    browser = _browser(user)
    _switch(browser, org)
    membership.delete()
    browser.cookies.pop(app_settings.CACHE_COOKIE, None)
    claims = _claims(browser.get(TOKEN))
    assert "org" not in claims and "orgRole" not in claims
    # ...and the snapshot issued by that request carries none either.
    assert "org" not in _claims(browser.get(TOKEN))


@pytest.mark.redis
def test_removal_from_the_organization_drops_org_at_once(user):
    owner = UserFactory()
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=owner, organization=org, role=OrgRole.OWNER)
    Membership.objects.create(user=user, organization=org, role=OrgRole.MEMBER)
    browser = _browser(user)
    _switch(browser, org)
    _fresh_cache(browser)
    assert _claims(browser.get(TOKEN))["org"] == str(org.pk)
    owner_api = auth.signed_in(owner)
    assert owner_api.delete(f"/api/v1/orgs/{org.pk}/members/{user.pk}").status_code == 204
    claims = _claims(browser.get(TOKEN))  # the snapshot is still fresh: the mark sends it to the database
    assert "org" not in claims


@pytest.mark.redis
def test_a_role_change_reaches_the_next_token_at_once(user):
    owner = UserFactory()
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=owner, organization=org, role=OrgRole.OWNER)
    Membership.objects.create(user=user, organization=org, role=OrgRole.ADMIN)
    browser = _browser(user)
    _switch(browser, org)
    _fresh_cache(browser)
    assert _claims(browser.get(TOKEN))["orgRole"] == "admin"
    r = auth.signed_in(owner).patch(f"/api/v1/orgs/{org.pk}/members/{user.pk}", {"role": "member"}, format="json")
    assert r.status_code == 200
    assert _claims(browser.get(TOKEN))["orgRole"] == "member"


@pytest.mark.redis
def test_a_switch_made_with_a_bearer_token_reaches_the_browser_at_once(user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.MEMBER)
    browser = _browser(user)
    _fresh_cache(browser)
    # A web app holding a token of this very browser session switches through the API.
    access = browser.get(TOKEN).json()["accessToken"]
    r = Client().post(SWITCH, {"organizationId": str(org.pk)}, content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {access}")
    assert r.status_code == 200, r.content
    assert _claims(browser.get(TOKEN))["org"] == str(org.pk)


@pytest.mark.redis
def test_an_email_or_role_change_elsewhere_reaches_the_next_token_at_once(signed_in, user):
    _fresh_cache(signed_in)
    user.role = "admin"
    user.email = "renamed@example.com"
    user.save(update_fields=["role", "email"])
    claims = _claims(signed_in.get(TOKEN))
    assert (claims["role"], claims["email"]) == ("admin", "renamed@example.com")


@pytest.mark.redis
def test_deactivation_elsewhere_stops_the_fast_path_at_once(signed_in, user):
    _fresh_cache(signed_in)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert signed_in.get(TOKEN).status_code == 401


@pytest.mark.redis
def test_a_revoked_session_gets_no_token_from_a_fresh_snapshot(signed_in, user, api):
    _fresh_cache(signed_in)
    row = DeviceSession.objects.get(user=user)
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.delete(f"/api/v1/auth/sessions/{row.pk}").status_code == 204
    assert signed_in.get(TOKEN).status_code == 401


@pytest.mark.redis
def test_a_stricter_policy_reaches_live_snapshots_at_once(user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.OWNER)
    browser = _browser(user)
    _switch(browser, org)
    _fresh_cache(browser)
    row = DeviceSession.objects.get(user=user)
    DeviceSession.objects.filter(pk=row.pk).update(created_at=row.created_at.replace(year=2000))
    org.max_session_lifetime_seconds = 3600
    org.save(update_fields=["max_session_lifetime_seconds"])
    assert browser.get(TOKEN).status_code == 401  # the policy, judged on the row, ended the session


def test_without_redis_a_change_elsewhere_waits_at_most_the_ttl(signed_in, user, settings):
    settings.SESSIONS = {"REVOCATION_CHECK": False}
    _fresh_cache(signed_in)
    user.role = "admin"
    user.save(update_fields=["role"])
    assert _claims(signed_in.get(TOKEN))["role"] == "user"  # bounded by the TTL (documented)
    signed_in.cookies.pop(app_settings.CACHE_COOKIE)  # what going stale does
    assert _claims(signed_in.get(TOKEN))["role"] == "admin"


def test_an_organization_idle_timeout_caps_the_snapshot(user):
    org = Organization.objects.create(name="Acme", slug="acme", idle_timeout_seconds=600,
                                      max_session_lifetime_seconds=86400)
    Membership.objects.create(user=user, organization=org, role=OrgRole.MEMBER)
    browser = _browser(user)
    _switch(browser, org)
    _fresh_cache(browser)
    row = DeviceSession.objects.get(user=user)
    payload = cookie_cache.snapshot_decode(cache_cookie(browser).value, key_hash=row.browser_key_hash)
    # Half the idle timeout: activity on hits is not recorded, so the row is seen again in time.
    assert payload["exp"] - payload["iat"] <= 300 + 1
    assert payload["org"] == {"id": str(org.pk), "role": "member"}
    org.idle_timeout_seconds = 120
    org.save(update_fields=["idle_timeout_seconds"])
    browser.cookies.pop(app_settings.CACHE_COOKIE)
    assert browser.get("/api/v1/auth/session").status_code == 200
    payload = cookie_cache.snapshot_decode(cache_cookie(browser).value, key_hash=row.browser_key_hash)
    assert payload["exp"] - payload["iat"] <= 60 + 1
    assert cookie_cache.snapshot_decode(cache_cookie(browser).value, key_hash=row.browser_key_hash,
                                        now=time.time() + 61) is None


def test_over_the_api_rate_limit_the_view_answers_429(signed_in, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "3/m"}}
    _fresh_cache(signed_in)
    statuses = [signed_in.get(TOKEN).status_code for _ in range(5)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    r = signed_in.get(TOKEN)
    assert r.json()["error"]["code"] == "rate_limited" and int(r["Retry-After"]) >= 1


@pytest.mark.parametrize("path", ["/api/v1/auth/session", TOKEN])
def test_with_redis_unreachable_a_hit_asks_the_database_instead(signed_in, settings, path,
                                                                django_assert_max_num_queries):
    _fresh_cache(signed_in)
    settings.SESSIONS = {"REVOCATION_CHECK": True}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with django_assert_max_num_queries(50) as queries:
        response = signed_in.get(path)
    assert response.status_code == 200  # never a 500, never a sign-out
    assert len(queries) > 0  # the database decided, not the snapshot


def test_each_decode_is_a_new_payload_though_decryption_is_memoised(signed_in, user):
    _fresh_cache(signed_in)
    token = cache_cookie(signed_in).value
    key_hash = DeviceSession.objects.get(user=user).browser_key_hash
    first = cookie_cache.snapshot_decode(token, key_hash=key_hash)
    first["user"]["role"] = "admin"  # a caller scribbling on its copy
    assert cookie_cache.snapshot_decode(token, key_hash=key_hash)["user"]["role"] == "user"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert cookie_cache.snapshot_decode(tampered, key_hash=key_hash) is None
    assert cookie_cache.snapshot_decode(tampered, key_hash=key_hash) is None
