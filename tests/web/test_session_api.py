"""GET /api/v1/auth/session and /token with the browser cookie, the cookie cache, CSRF, revocation."""

import pytest
from django.test import Client

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from sessions_app import cookie_cache
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession
from tests.support.auth import cache_cookie, login, page_login


def _fresh_cache(client):
    """A DB-path request issues the cookie cache."""
    client.cookies.pop(app_settings.CACHE_COOKIE, None)
    response = client.get("/api/v1/auth/session")
    assert response.status_code == 200
    assert cache_cookie(client).value
    return response


def test_session_with_the_cookie(signed_in, user):
    response = signed_in.get("/api/v1/auth/session")
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": str(user.pk), "email": user.email, "name": user.name, "role": "user",
                            "emailVerified": True, "createdAt": body["user"]["createdAt"]}
    row = DeviceSession.objects.get(user=user)
    assert body["session"]["id"] == str(row.pk) and body["session"]["current"] is True
    assert set(body["session"]) == {"id", "deviceId", "deviceName", "ipAddress", "userAgent", "createdAt",
                                    "lastActivityAt", "expiresAt", "rememberMe", "amr", "current"}
    assert "no-store" in response["Cache-Control"]


def test_session_with_bearer_keeps_working(api, user):
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    body = api.get("/api/v1/auth/session").json()
    assert body["session"]["id"] == tokens["session"]["id"] and body["user"]["email"] == user.email


def test_session_without_credentials_is_401_in_the_envelope(web):
    response = web.get("/api/v1/auth/session")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_cache_hit_makes_zero_queries_and_the_same_json(signed_in, django_assert_num_queries):
    db_body = _fresh_cache(signed_in).content
    with django_assert_num_queries(0):
        hit = signed_in.get("/api/v1/auth/session")
    assert hit.status_code == 200
    assert hit.content == db_body  # byte for byte what the view renders from the database
    assert "no-store" in hit["Cache-Control"] and hit["Content-Type"] == "application/json"
    assert app_settings.CACHE_COOKIE not in hit.cookies  # nothing re-issued on a hit


def test_cache_hit_sends_the_same_headers_as_the_view(signed_in):
    db = _fresh_cache(signed_in)
    hit = signed_in.get("/api/v1/auth/session")
    for header in ["Content-Type", "Cache-Control", "Vary", "X-Frame-Options", "Allow"]:
        assert hit[header] == db[header], header


def test_account_page_only_needing_the_user_makes_zero_queries(signed_in, user, django_assert_num_queries):
    _fresh_cache(signed_in)
    with django_assert_num_queries(0):
        response = signed_in.get("/account")
    assert response.status_code == 200 and user.email.encode() in response.content


def test_stale_cache_falls_back_to_the_database_and_is_reissued(signed_in, settings):
    _fresh_cache(signed_in)
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 300}
    signed_in.cookies[app_settings.CACHE_COOKIE] = "not-a-jwe"
    response = signed_in.get("/api/v1/auth/session")
    assert response.status_code == 200  # never a sign-out
    assert cookie_cache.snapshot_decode(response.cookies[app_settings.CACHE_COOKIE].value,
                                        key_hash=__import__("core.tokens").tokens.hash_token(
                                            signed_in.cookies[app_settings.SESSION_COOKIE].value))


def test_expired_snapshot_is_not_used(signed_in, user, django_assert_num_queries):
    import time

    from core.tokens import hash_token

    _fresh_cache(signed_in)
    token = cache_cookie(signed_in).value
    key_hash = hash_token(signed_in.cookies[app_settings.SESSION_COOKIE].value)
    assert cookie_cache.snapshot_decode(token, key_hash=key_hash) is not None
    assert cookie_cache.snapshot_decode(token, key_hash=key_hash, now=time.time() + 301) is None
    assert cookie_cache.snapshot_decode(token, key_hash="0" * 64) is None  # bound to its session cookie


def test_cache_snapshot_of_another_session_cookie_is_ignored(web, user):
    from tests.factories import UserFactory

    other = UserFactory()
    second = Client()
    page_login(web, user.email)
    page_login(second, other.email)
    _fresh_cache(second)
    web.cookies[app_settings.CACHE_COOKIE] = cache_cookie(second).value  # someone else's snapshot
    assert web.get("/api/v1/auth/session").json()["user"]["email"] == user.email


def test_cache_off_always_uses_the_database(signed_in, settings, django_assert_max_num_queries):
    settings.SESSIONS = {"COOKIE_CACHE_SECONDS": 0}
    signed_in.cookies.pop(app_settings.CACHE_COOKIE, None)
    response = signed_in.get("/api/v1/auth/session")
    assert response.status_code == 200 and app_settings.CACHE_COOKIE not in response.cookies


def test_logout_through_the_api_with_the_cookie_needs_csrf(web, user):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.get("/login")  # sets the csrf cookie
    token = csrf_client.cookies[_csrf_name()].value
    response = csrf_client.post("/login", {"email": user.email, "password": "Correct-Horse-Battery-42",
                                           "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    refused = csrf_client.post("/api/v1/auth/logout", content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    token = csrf_client.cookies[_csrf_name()].value
    ok = csrf_client.post("/api/v1/auth/logout", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 204
    assert DeviceSession.objects.get(user=user).revoked_at is not None
    assert ok.cookies[app_settings.SESSION_COOKIE].value == ""


def _csrf_name():
    from django.conf import settings

    return settings.CSRF_COOKIE_NAME


def test_bearer_requests_ignore_csrf(api, user):
    tokens = login(api, user.email)
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/v1/auth/logout", HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}",
                           content_type="application/json")
    assert response.status_code == 204


def test_token_is_minted_for_the_browser_session(signed_in, user):
    response = signed_in.get("/api/v1/auth/token")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    claims = access_token_verify(body["accessToken"])
    assert claims["sid"] == str(DeviceSession.objects.get(user=user).pk) and claims["sub"] == str(user.pk)
    assert body["expiresIn"] == 900


def test_token_needs_the_cookie(web, api, user):
    assert web.get("/api/v1/auth/token").status_code == 401
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.get("/api/v1/auth/token").status_code == 401


@pytest.mark.redis
def test_revoking_a_session_beats_a_fresh_cache_with_one_cache_lookup(signed_in, user, api,
                                                                        django_assert_num_queries):
    _fresh_cache(signed_in)
    row = DeviceSession.objects.get(user=user)
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.delete(f"/api/v1/auth/sessions/{row.pk}").status_code == 204
    response = signed_in.get("/api/v1/auth/session")
    assert response.status_code == 401


@pytest.mark.redis
def test_revoke_all_beats_a_fresh_cache(signed_in, user, api):
    _fresh_cache(signed_in)
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.post("/api/v1/auth/sessions/revoke-others").status_code == 204
    assert signed_in.get("/api/v1/auth/session").status_code == 401
    assert signed_in.get("/account").status_code == 302


@pytest.mark.redis
def test_revocation_check_is_a_single_cache_lookup(signed_in, monkeypatch, django_assert_num_queries):
    _fresh_cache(signed_in)
    client, conn = cookie_cache._redis(), cookie_cache._marks_connection()
    commands = []
    for target, name in ((client, "execute_command"), (conn, "send_command")):
        original = getattr(target, name)
        monkeypatch.setattr(target, name, lambda *args, _original=original, **kw:
                            commands.append(args[0]) or _original(*args, **kw))
    with django_assert_num_queries(0):
        assert signed_in.get("/api/v1/auth/session").status_code == 200
    assert commands == ["MGET"]


def test_without_redis_a_revoked_session_answers_until_the_cache_is_stale(signed_in, user, settings, api):
    settings.SESSIONS = {"REVOCATION_CHECK": False}
    _fresh_cache(signed_in)
    row = DeviceSession.objects.get(user=user)
    DeviceSession.objects.filter(pk=row.pk).update(revoked_at=row.created_at)
    assert signed_in.get("/api/v1/auth/session").status_code == 200  # bounded by the TTL (documented)
    signed_in.cookies.pop(app_settings.CACHE_COOKIE)
    assert signed_in.get("/api/v1/auth/session").status_code == 401


def test_profile_change_reissues_the_snapshot(signed_in, user):
    _fresh_cache(signed_in)
    signed_in.post("/account/profile", {"name": "New Name"})
    assert signed_in.get("/api/v1/auth/session").json()["user"]["name"] == "New Name"
    assert AuditEvent.objects.filter(event=EventType.PROFILE_UPDATED, actor=user).exists()
