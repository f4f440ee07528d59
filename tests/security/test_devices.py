"""New sign-in mail, "this wasn't me", and refresh anomalies."""

from django.core import mail

from audit.models import AuditEvent, EventType
from sessions_app.models import DeviceSession
from tests.support.agents import CHROME_WINDOWS, FIREFOX_LINUX
from tests.support.auth import login, login_attempt
from tests.support.mail import last_mail_to, link_token


def sign_ins_mailed(user):
    return [m for m in mail.outbox if user.email in m.to and "New sign-in" in m.subject]


def test_first_login_sends_no_alert_and_a_known_device_or_network_none_either(api, user, password):
    login(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS)
    login(api, user.email, password, ip="198.51.100.99", ua=CHROME_WINDOWS)  # same /24
    login(api, user.email, password, ip="203.0.113.5", ua=CHROME_WINDOWS)  # known device
    login(api, user.email, password, ip="198.51.100.10", ua=FIREFOX_LINUX)  # known network
    assert sign_ins_mailed(user) == []


def test_new_device_and_network_mails_an_alert_with_details(api, user, password, settings):
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS)
    login_attempt(api, user.email, password, ip="203.0.113.5", ua=FIREFOX_LINUX, deviceName="Work laptop")
    message = last_mail_to(user.email)
    assert message.subject == "New sign-in to your account"
    for part in ("Firefox 121", "Linux", "Work laptop", "203.0.113.5", "https://auth.example.com/account/sessions",
                 "https://auth.example.com/account/not-me?token="):
        assert part in message.body, part
    row = AuditEvent.objects.get(event=EventType.NEW_DEVICE_LOGIN)
    assert row.actor_id == user.pk and row.context["network"] == "203.0.113.0/24"


def test_alert_can_be_switched_off(api, user, password, settings):
    settings.SECURITY = {**settings.SECURITY, "NEW_DEVICE_ALERT": False}
    login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS)
    login_attempt(api, user.email, password, ip="203.0.113.5", ua=FIREFOX_LINUX)
    assert sign_ins_mailed(user) == []


def test_not_me_revokes_every_session_disables_the_password_and_starts_a_reset(api, user, password):
    mine = login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS).json()
    theirs = login_attempt(api, user.email, password, ip="203.0.113.5", ua=FIREFOX_LINUX).json()
    raw = link_token(sign_ins_mailed(user)[-1])
    response = api.post("/api/v1/auth/not-me", {"token": raw}, format="json")
    assert response.status_code == 204
    assert not DeviceSession.objects.alive().filter(user=user).exists()
    for pair in (mine, theirs):
        refreshed = api.post("/api/v1/auth/refresh", {"refreshToken": pair["refreshToken"]}, format="json")
        assert refreshed.status_code == 401
    assert login_attempt(api, user.email, password, ip="203.0.113.5", ua=FIREFOX_LINUX).status_code == 401
    reset = last_mail_to(user.email)
    assert "reset-password?token=" in reset.body
    assert AuditEvent.objects.filter(event=EventType.NOT_ME_REPORTED, actor_id=user.pk).exists()
    again = api.post("/api/v1/auth/not-me", {"token": raw}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"


def refresh(api, token, ip, ua):
    return api.post("/api/v1/auth/refresh", {"refreshToken": token}, format="json", REMOTE_ADDR=ip,
                    HTTP_USER_AGENT=ua)


def test_refresh_from_another_network_is_recorded_once(api, user, password):
    pair = login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS).json()
    same = refresh(api, pair["refreshToken"], "198.51.100.200", CHROME_WINDOWS)  # same /24: nothing
    assert same.status_code == 200 and not AuditEvent.objects.filter(event=EventType.SESSION_ANOMALY).exists()
    moved = refresh(api, same.json()["refreshToken"], "203.0.113.5", CHROME_WINDOWS)
    assert moved.status_code == 200  # the default policy records
    row = AuditEvent.objects.get(event=EventType.SESSION_ANOMALY)
    assert row.context["changes"] == ["network"] and row.context["new_network"] == "203.0.113.0/24"
    assert row.subject_id == user.pk and not row.success
    refresh(api, moved.json()["refreshToken"], "203.0.113.6", CHROME_WINDOWS)  # the session now lives there
    assert AuditEvent.objects.filter(event=EventType.SESSION_ANOMALY).count() == 1


def test_ipv6_networks_are_48s(api, user, password):
    pair = login_attempt(api, user.email, password, ip="2001:db8:1:2::1", ua=CHROME_WINDOWS).json()
    same = refresh(api, pair["refreshToken"], "2001:db8:1:ffff::9", CHROME_WINDOWS)
    assert not AuditEvent.objects.filter(event=EventType.SESSION_ANOMALY).exists()
    refresh(api, same.json()["refreshToken"], "2001:db8:2::1", CHROME_WINDOWS)
    assert AuditEvent.objects.get(event=EventType.SESSION_ANOMALY).context["new_network"] == "2001:db8:2::/48"


def test_user_agent_family_change_is_recorded(api, user, password):
    pair = login_attempt(api, user.email, password, ua=CHROME_WINDOWS).json()
    refresh(api, pair["refreshToken"], "127.0.0.1", FIREFOX_LINUX)
    row = AuditEvent.objects.get(event=EventType.SESSION_ANOMALY)
    assert row.context["changes"] == ["user_agent_family"]
    assert (row.context["old_agent_family"], row.context["new_agent_family"]) == ("Chrome/Windows", "Firefox/Linux")


def test_revoke_policy_signs_the_session_out(api, user, password, settings):
    settings.SECURITY = {**settings.SECURITY, "ANOMALY_ACTION": "revoke"}
    pair = login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS).json()
    response = refresh(api, pair["refreshToken"], "203.0.113.5", CHROME_WINDOWS)
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_revoked"
    session = DeviceSession.objects.get()
    assert session.revoked_at is not None and session.revoked_reason == "suspicious_refresh"


def test_refresh_anomaly_is_a_verdict_that_writes_nothing(api, user, password, settings, rf):
    """security.devices.refresh_anomaly only judges; sessions_app applies the verdict
    (session_anomaly_apply, revoking with RevokeReason.SUSPICIOUS_REFRESH: the test above)."""
    from security.devices import refresh_anomaly

    settings.SECURITY = {**settings.SECURITY, "ANOMALY_ACTION": "revoke"}
    login_attempt(api, user.email, password, ip="198.51.100.10", ua=CHROME_WINDOWS)
    session, rows = DeviceSession.objects.get(), AuditEvent.objects.count()
    verdict = refresh_anomaly(session=session, request=rf.post("/", REMOTE_ADDR="203.0.113.5",
                                                                HTTP_USER_AGENT=FIREFOX_LINUX))
    assert verdict.changes == ("user_agent_family", "network") and verdict.revoke
    assert (verdict.old_network, verdict.new_network) == ("198.51.100.0/24", "203.0.113.0/24")
    assert (verdict.ip_address, verdict.user_agent) == ("203.0.113.5", FIREFOX_LINUX)
    stored = DeviceSession.objects.get()
    assert stored.revoked_at is None and stored.ip_address == "198.51.100.10" and stored.user_agent == CHROME_WINDOWS
    assert AuditEvent.objects.count() == rows
    same_place = rf.post("/", REMOTE_ADDR="198.51.100.77", HTTP_USER_AGENT=CHROME_WINDOWS)
    assert refresh_anomaly(session=stored, request=same_place) is None
    assert refresh_anomaly(session=stored, request=None) is None
