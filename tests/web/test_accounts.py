"""Several accounts in one browser: add, list, switch without a password, sign one out, a limit."""

from audit.models import AuditEvent, EventType
from sessions_app.app_settings import app_settings
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import UserFactory
from tests.support.auth import page_login


def _me(client):
    return client.get("/api/v1/auth/session").json()["user"]["email"]


def test_add_a_second_account_and_switch(signed_in, user):
    second = UserFactory()
    assert "Add another account" in signed_in.get("/login?add=1").content.decode()
    response = page_login(signed_in, second.email, add="1")
    assert response.status_code == 302
    assert _me(signed_in) == second.email
    page = signed_in.get("/accounts").content.decode()
    assert user.email in page and second.email in page and f"Switch to {user.email}" in page
    first_row = DeviceSession.objects.get(user=user)
    assert DeviceSession.objects.get(user=second).revoked_at is None and first_row.revoked_at is None
    assert app_settings.ACCOUNTS_COOKIE in signed_in.cookies

    switched = signed_in.post("/accounts/switch", {"session": str(first_row.pk)})
    assert switched.status_code == 302
    assert _me(signed_in) == user.email  # no password asked
    event = AuditEvent.objects.get(event=EventType.ACCOUNT_SWITCHED)
    assert event.actor_id == user.pk and event.context["from_user"] == str(second.pk)
    assert event.session_id == first_row.pk


def test_switching_to_a_session_not_in_this_browser_is_404(signed_in, user):
    stranger = UserFactory()
    from django.test import Client

    page_login(Client(), stranger.email)
    theirs = DeviceSession.objects.get(user=stranger)
    assert signed_in.post("/accounts/switch", {"session": str(theirs.pk)}).status_code == 404
    assert _me(signed_in) == user.email
    assert signed_in.post("/accounts/switch", {"session": "not-a-uuid"}).status_code == 404


def test_sign_one_account_out(signed_in, user):
    second = UserFactory()
    page_login(signed_in, second.email, add="1")
    first_row = DeviceSession.objects.get(user=user)
    assert signed_in.post("/accounts/sign-out", {"session": str(first_row.pk)})["Location"] == "/accounts"
    first_row.refresh_from_db()
    assert first_row.revoked_reason == RevokeReason.LOGOUT
    assert _me(signed_in) == second.email
    assert user.email not in signed_in.get("/accounts").content.decode()


def test_logout_of_the_active_account_hands_over_to_the_next(signed_in, user):
    second = UserFactory()
    page_login(signed_in, second.email, add="1")
    response = signed_in.post("/logout")
    assert response["Location"] == "/account"
    assert _me(signed_in) == user.email
    assert DeviceSession.objects.get(user=second).revoked_reason == RevokeReason.LOGOUT
    assert AuditEvent.objects.filter(event=EventType.ACCOUNT_SWITCHED, context__reason="signed_out").exists()
    assert signed_in.post("/logout")["Location"] == "/login"
    assert signed_in.get("/api/v1/auth/session").status_code == 401


def test_at_most_max_accounts(signed_in, settings):
    settings.SESSIONS = {"MAX_BROWSER_ACCOUNTS": 2}
    page_login(signed_in, UserFactory().email, add="1")
    third = UserFactory()
    page = page_login(signed_in, third.email, add="1")
    assert page.status_code == 200 and "signed in to 2 accounts" in page.content.decode()
    assert not DeviceSession.objects.filter(user=third).exists()
    assert "At most 2 accounts" in signed_in.get("/accounts").content.decode()


def test_signing_in_again_as_the_same_user_replaces_the_session(signed_in, user):
    old = DeviceSession.objects.get(user=user)
    page_login(signed_in, user.email, add="1")
    old.refresh_from_db()
    assert old.revoked_reason == RevokeReason.DEVICE_REPLACED
    assert DeviceSession.objects.alive().filter(user=user).count() == 1
    assert app_settings.ACCOUNTS_COOKIE not in signed_in.cookies or not signed_in.cookies[
        app_settings.ACCOUNTS_COOKIE].value


def test_a_revoked_other_account_drops_out_of_the_list(signed_in, user, api):
    second = UserFactory()
    page_login(signed_in, second.email, add="1")
    DeviceSession.objects.filter(user=user).update(revoked_at=DeviceSession.objects.get(user=user).created_at)
    page = signed_in.get("/accounts").content.decode()
    assert user.email not in page


def test_accounts_cookie_is_persistent_only_when_every_account_stays_signed_in(web, user):
    page_login(web, user.email)  # not "stay signed in"
    response = page_login(web, UserFactory().email, add="1")
    assert response.cookies[app_settings.ACCOUNTS_COOKIE]["max-age"] == ""  # ends with the browser

    other = UserFactory()
    from django.test import Client

    client = Client()
    page_login(client, user.email, remember=True)
    response = page_login(client, other.email, add="1", remember=True)
    assert int(response.cookies[app_settings.ACCOUNTS_COOKIE]["max-age"]) > 29 * 86400
