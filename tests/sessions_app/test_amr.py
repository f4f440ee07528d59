"""How the user signed in (RFC 8176 ``amr``) is a property of the device session: set when it opens,
carried by every access token minted for it (login, refresh, GET token from the view and from the
cookie-cache snapshot) and by the Session object."""

from django.test import Client
from rest_framework.test import APIClient

from identity.services.tokens import access_token_verify
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession
from sessions_app.services import session_access_token_issue, session_create, session_refresh
from tests.factories import UserFactory
from tests.support.agents import CHROME_LINUX
from tests.support.auth import bearer, login, page_login

MFA_AMR = ["pwd", "otp", "mfa"]


def test_a_password_login_says_pwd_in_the_token_and_the_session(db):
    user = UserFactory()
    pair = login(APIClient(), user.email)
    assert access_token_verify(pair["accessToken"])["amr"] == ["pwd"]
    assert pair["session"]["amr"] == ["pwd"]
    assert DeviceSession.objects.get(pk=pair["session"]["id"]).amr == ["pwd"]
    listed = bearer(pair["accessToken"]).get("/api/v1/auth/sessions/active").json()["sessions"]
    assert [s["amr"] for s in listed] == [["pwd"]]


def test_a_refresh_keeps_the_sessions_amr(db):
    user = UserFactory()
    pair = session_create(user=user, amr=MFA_AMR)
    refreshed = session_refresh(raw_token=pair.refresh_token)
    assert access_token_verify(pair.access_token)["amr"] == MFA_AMR
    assert access_token_verify(refreshed.access_token)["amr"] == MFA_AMR
    assert access_token_verify(session_access_token_issue(refreshed.session).token)["amr"] == MFA_AMR


def test_get_token_carries_amr_from_the_view_and_from_the_snapshot(db):
    user = UserFactory()
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    assert page_login(client, user.email).status_code == 302
    DeviceSession.objects.filter(user=user).update(amr=MFA_AMR)
    client.cookies.pop(app_settings.CACHE_COOKIE, None)
    from_view = client.get("/api/v1/auth/token")  # no snapshot: the view, which issues one
    assert app_settings.CACHE_COOKIE in from_view.cookies
    from_snapshot = client.get("/api/v1/auth/token")
    session = client.get("/api/v1/auth/session").json()["session"]
    assert access_token_verify(from_view.json()["accessToken"])["amr"] == MFA_AMR
    assert access_token_verify(from_snapshot.json()["accessToken"])["amr"] == MFA_AMR
    assert session["amr"] == MFA_AMR
