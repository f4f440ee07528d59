"""Browser sessions: one DeviceSession row per sign-in, shared with the API, cookies and expiry."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent, EventType
from core.tokens import hash_token
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason
from tests.support.agents import CHROME_LINUX
from tests.support.auth import login, page_login, session_cookie


def test_page_login_creates_a_device_session_row_with_only_the_key_hash(web, user):
    response = page_login(web, user.email)
    assert response.status_code == 302 and response["Location"] == "/account"
    cookie = session_cookie(web)
    row = DeviceSession.objects.get(user=user)
    assert row.browser_key_hash == hash_token(cookie.value)
    assert cookie.value not in (row.browser_key_hash, row.browser_data)
    assert row.device_name == "Chrome on Linux" and row.user_agent == CHROME_LINUX
    assert AuditEvent.objects.filter(event=EventType.LOGIN_SUCCEEDED, session_id=row.pk).exists()


def test_cookie_attributes_without_stay_signed_in(web, user):
    response = page_login(web, user.email)
    cookie = response.cookies[app_settings.SESSION_COOKIE]
    assert app_settings.SESSION_COOKIE == "__Host-mca_session"  # Secure outside DEBUG
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # ends with the browser
    assert not cookie["domain"]
    row = DeviceSession.objects.get(user=user)
    assert abs((row.expires_at - row.created_at) - timedelta(days=7)) < timedelta(seconds=5)


def test_stay_signed_in_sets_a_persistent_cookie_and_30_days(web, user):
    response = page_login(web, user.email, remember=True)
    cookie = response.cookies[app_settings.SESSION_COOKIE]
    assert 30 * 86400 - 10 <= int(cookie["max-age"]) <= 30 * 86400
    row = DeviceSession.objects.get(user=user)
    assert row.remember_me
    assert abs((row.expires_at - row.created_at) - timedelta(days=30)) < timedelta(seconds=5)


def test_debug_over_http_drops_secure_and_the_host_prefix(web, user, settings):
    settings.SESSION_COOKIE_SECURE = False
    response = page_login(web, user.email)
    cookie = response.cookies["mca_session"]
    assert not cookie["secure"] and cookie["httponly"]


def test_sliding_expiry_extends_the_persistent_cookie(web, user):
    page_login(web, user.email, remember=True)
    row = DeviceSession.objects.get(user=user)
    old = timezone.now() - timedelta(days=2)
    DeviceSession.objects.filter(pk=row.pk).update(last_activity_at=old, expires_at=old + timedelta(days=30),
                                                   created_at=old)
    web.cookies.pop(app_settings.CACHE_COOKIE, None)
    response = web.get("/account/sessions")
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.expires_at > timezone.now() + timedelta(days=29, hours=23)
    assert int(response.cookies[app_settings.SESSION_COOKIE]["max-age"]) > 29 * 86400


def test_page_login_shows_up_in_the_api_sessions_list_and_the_other_way_round(web, user, api):
    page_login(web, user.email)
    tokens = login(api, user.email, deviceName="Phone")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    listed = api.get("/api/v1/auth/sessions/active").json()["sessions"]
    assert {s["deviceName"] for s in listed} == {"Chrome on Linux", "Phone"}
    page = web.get("/account/sessions")
    assert b"Phone" in page.content and b"Chrome on Linux" in page.content


def test_revoking_from_the_api_signs_the_browser_out(web, user, api):
    page_login(web, user.email)
    tokens = login(api, user.email)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.post("/api/v1/auth/sessions/revoke-others").status_code == 204
    response = web.get("/account/sessions")
    assert response.status_code == 302 and response["Location"].startswith("/login")
    assert response.cookies[app_settings.SESSION_COOKIE].value == ""  # the dead cookie is deleted


def test_a_forged_or_unknown_cookie_is_anonymous(web, user):
    web.cookies[app_settings.SESSION_COOKIE] = "x" * 43
    assert web.get("/account/sessions").status_code == 302
    web.cookies[app_settings.SESSION_COOKIE] = "<script>"
    assert web.get("/account").status_code == 302


def test_request_session_data_is_kept_in_the_row(signed_in, user):
    from django.test import RequestFactory

    from sessions_app.browser import BrowserState, SessionStore

    request = RequestFactory().get("/")
    request.COOKIES = {k: v.value for k, v in signed_in.cookies.items()}
    request.browser = BrowserState(request)
    store = SessionStore(request.browser.raw_key)
    store.request = request
    assert store.device_session.user == user
    assert store.get_expire_at_browser_close() is True
    store["theme"] = "dark"
    store.save()
    assert SessionStore(request.browser.raw_key)["theme"] == "dark"
    assert "dark" in DeviceSession.objects.get(user=user).browser_data
    assert SessionStore("x" * 43).load() == {}  # unknown key: empty, never created


def test_idle_timeout_revokes_on_next_page_use(web, user, settings):
    settings.SESSIONS = {"IDLE_TIMEOUT_MINUTES": 30}
    page_login(web, user.email)
    row = DeviceSession.objects.get(user=user)
    DeviceSession.objects.filter(pk=row.pk).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    web.cookies.pop(app_settings.CACHE_COOKIE, None)
    assert web.get("/account/sessions").status_code == 302
    row.refresh_from_db()
    assert row.revoked_reason == RevokeReason.IDLE_TIMEOUT
    assert AuditEvent.objects.filter(event=EventType.SESSION_REVOKED, session_id=row.pk,
                                     context__reason="idle_timeout").exists()


def test_idle_timeout_applies_to_bearer_and_refresh(api, user, settings):
    settings.SESSIONS = {"IDLE_TIMEOUT_MINUTES": 30}
    tokens = login(api, user.email)
    sid = tokens["session"]["id"]
    DeviceSession.objects.filter(pk=sid).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    response = api.get("/api/v1/auth/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_revoked"
    assert DeviceSession.objects.get(pk=sid).revoked_reason == RevokeReason.IDLE_TIMEOUT

    tokens = login(api, user.email)
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(
        last_activity_at=timezone.now() - timedelta(minutes=31))
    api.credentials()
    response = api.post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_revoked"
    assert DeviceSession.objects.get(pk=tokens["session"]["id"]).revoked_reason == RevokeReason.IDLE_TIMEOUT


def test_idle_timeout_off_by_default(api, user):
    tokens = login(api, user.email)
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(
        last_activity_at=timezone.now() - timedelta(days=3))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
    assert api.get("/api/v1/auth/me").status_code == 200
