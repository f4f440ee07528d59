"""The refresh grace path hands out a live refresh token, so it applies the checks of a refresh (user
active, idle timeout, organization session policy, anomaly policy); and switch-organization keeps the
grace window for a refresh that races it, so a session still has exactly one live refresh token."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from core.tokens import hash_token
from audit.models import AuditEvent, EventType
from orgs.models import Membership, Organization, OrgRole
from sessions_app.models import DeviceSession, RevokeReason, SealedWith, SpentRefreshToken
from sessions_app.services import sessions_cleanup
from tests.conftest import login

REFRESH = "/api/v1/auth/refresh"
SWITCH = "/api/v1/auth/switch-organization"
ME = "/api/v1/auth/me"


def refresh(token, **extra):
    return APIClient().post(REFRESH, {"refreshToken": token}, format="json", **extra)


def refreshed(token, **extra) -> dict:
    response = refresh(token, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, code) -> dict:
    assert response.status_code == 401, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body


def bearer(access_token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def session_of(pair) -> DeviceSession:
    return DeviceSession.objects.get(pk=pair["session"]["id"])


def refusal_reasons(session_id) -> list:
    return [e.context["reason"] for e in AuditEvent.objects.filter(event=EventType.TOKEN_REFRESH_FAILED,
                                                                    session_id=session_id)]


def replays(session_id) -> int:
    return AuditEvent.objects.filter(event=EventType.TOKEN_REFRESHED, session_id=session_id,
                                     context__replayed_within_grace=True).count()


# --- the checks of a refresh on the grace path ---------------------------------------------------------

def test_an_inactive_user_gets_no_pair_on_the_grace_path(tokens, user):
    refreshed(tokens["refreshToken"])
    # A bulk UPDATE: a deactivation saved through the model ends every session first (accounts/receivers.py);
    # this proves the grace path's own check for a row that is still alive.
    User.objects.filter(pk=user.pk).update(is_active=False)
    refused(refresh(tokens["refreshToken"]), "session_revoked")
    assert refusal_reasons(tokens["session"]["id"]) == ["user_inactive"]
    assert replays(tokens["session"]["id"]) == 0


def test_an_idle_session_gets_no_pair_on_the_grace_path(tokens, settings):
    settings.SESSIONS = {**settings.SESSIONS, "IDLE_TIMEOUT_MINUTES": 30}
    pair = refreshed(tokens["refreshToken"])
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(
        last_activity_at=timezone.now() - timedelta(minutes=31))
    refused(refresh(tokens["refreshToken"]), "session_revoked")
    session = session_of(pair)
    assert session.revoked_at is not None and session.revoked_reason == RevokeReason.IDLE_TIMEOUT
    assert refusal_reasons(session.pk) == ["idle_timeout"]
    refused(refresh(pair["refreshToken"]), "session_revoked")  # and the pair it would have replayed is dead


def test_a_session_past_its_organization_policy_gets_no_pair_on_the_grace_path(tokens, user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.MEMBER)
    DeviceSession.objects.filter(pk=tokens["session"]["id"]).update(active_organization=org)
    pair = refreshed(tokens["refreshToken"])
    org.max_session_lifetime_seconds = 3600
    org.save(update_fields=["max_session_lifetime_seconds"])
    DeviceSession.objects.filter(pk=pair["session"]["id"]).update(created_at=timezone.now() - timedelta(hours=2))
    refused(refresh(tokens["refreshToken"]), "session_expired")
    session = session_of(pair)
    assert session.revoked_reason == RevokeReason.ORGANIZATION_POLICY
    assert refusal_reasons(session.pk) == ["organization_max_lifetime"]


def test_a_replay_from_another_network_is_an_anomaly_like_a_refresh(tokens, settings):
    """A stolen spent token replayed from elsewhere within the window: with ANOMALY_ACTION=revoke the
    session ends, as it would for a refresh from there."""
    settings.SECURITY = {**settings.SECURITY, "ANOMALY_ACTION": "revoke"}
    refreshed(tokens["refreshToken"], REMOTE_ADDR="127.0.0.1")
    refused(refresh(tokens["refreshToken"], REMOTE_ADDR="203.0.113.9"), "session_revoked")
    session = DeviceSession.objects.get(pk=tokens["session"]["id"])
    assert session.revoked_at is not None
    assert refusal_reasons(session.pk) == ["anomaly"]
    assert AuditEvent.objects.filter(event=EventType.SESSION_ANOMALY, session_id=session.pk).count() == 1


def test_with_the_record_policy_a_replay_from_elsewhere_is_recorded_and_answered(tokens, settings):
    settings.SECURITY = {**settings.SECURITY, "ANOMALY_ACTION": "record"}
    pair = refreshed(tokens["refreshToken"], REMOTE_ADDR="127.0.0.1")
    again = refreshed(tokens["refreshToken"], REMOTE_ADDR="203.0.113.9")
    assert (again["accessToken"], again["refreshToken"]) == (pair["accessToken"], pair["refreshToken"])
    assert AuditEvent.objects.filter(event=EventType.SESSION_ANOMALY, session_id=pair["session"]["id"]).count() == 1


def test_a_clean_replay_still_gets_the_very_same_pair(tokens):
    pair = refreshed(tokens["refreshToken"])
    again = refreshed(tokens["refreshToken"])
    assert (again["accessToken"], again["refreshToken"]) == (pair["accessToken"], pair["refreshToken"])
    assert replays(pair["session"]["id"]) == 1 and refusal_reasons(pair["session"]["id"]) == []


# --- switch-organization and a racing refresh --------------------------------------------------------------

@pytest.fixture
def org(user):
    org = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=user, organization=org, role=OrgRole.ADMIN)
    return org


def switched(tokens, org) -> dict:
    response = bearer(tokens["accessToken"]).post(SWITCH, {"organizationId": str(org.pk)}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_refresh_after_a_switch_with_the_old_token_gets_the_switch_pair(tokens, org):
    switch = switched(tokens, org)
    racing = refreshed(tokens["refreshToken"])  # sent before the switch's answer arrived
    assert (racing["accessToken"], racing["refreshToken"]) == (switch["accessToken"], switch["refreshToken"])
    session = session_of(switch)
    assert session.is_alive() and session.refresh_secret_hash == hash_token(switch["refreshToken"])
    assert bearer(racing["accessToken"]).get(ME).status_code == 200
    assert replays(session.pk) == 1
    # The one live refresh token goes on; the old one's window ends once it is used, as after a refresh.
    nxt = refreshed(switch["refreshToken"])
    refused(refresh(tokens["refreshToken"]), "refresh_token_reused")
    assert session_of(nxt).revoked_reason == RevokeReason.REFRESH_TOKEN_REUSED


def test_the_switch_pair_is_kept_encrypted_and_erased_after_the_window(tokens, org, settings):
    switch = switched(tokens, org)
    spent = SpentRefreshToken.objects.get(token_hash=hash_token(tokens["refreshToken"]))
    assert spent.successor_sealed_with == SealedWith.KEY_ENCRYPTION_KEY and spent.successor_encrypted
    for secret in (switch["refreshToken"], switch["accessToken"]):
        assert secret not in spent.successor_encrypted
    sessions_cleanup()  # within the window: kept
    assert SpentRefreshToken.objects.get(pk=spent.pk).successor_encrypted == spent.successor_encrypted
    sessions_cleanup(now=timezone.now() + timedelta(seconds=settings.AUTH_REFRESH_GRACE_SECONDS + 1))
    assert SpentRefreshToken.objects.get(pk=spent.pk).successor_encrypted == ""


def test_after_the_window_the_token_spent_by_a_switch_is_reuse(tokens, org):
    switched(tokens, org)
    SpentRefreshToken.objects.filter(token_hash=hash_token(tokens["refreshToken"])).update(
        spent_at=timezone.now() - timedelta(seconds=11))
    refused(refresh(tokens["refreshToken"]), "refresh_token_reused")


def test_the_grace_checks_apply_to_a_replay_of_the_switch_pair_too(tokens, org, user):
    switched(tokens, org)
    # A bulk UPDATE: a deactivation saved through the model ends every session first (accounts/receivers.py);
    # this proves the grace path's own check for a row that is still alive.
    User.objects.filter(pk=user.pk).update(is_active=False)
    refused(refresh(tokens["refreshToken"]), "session_revoked")
    assert refusal_reasons(tokens["session"]["id"]) == ["user_inactive"]


def test_a_refresh_that_won_before_the_switch_converges_on_the_switch_pair(tokens, org):
    """The other order: the refresh spends R0 (answer Q), then the switch spends Q's token (answer P).
    Whichever answer the client keeps, and a retry of the lost refresh, all lead to P within the window:
    the session has one live refresh token, P's."""
    won = refreshed(tokens["refreshToken"])
    switch = switched(won, org)
    for token in (won["refreshToken"], tokens["refreshToken"]):
        again = refreshed(token)
        assert (again["accessToken"], again["refreshToken"]) == (switch["accessToken"], switch["refreshToken"])
    session = session_of(switch)
    assert session.is_alive() and session.refresh_secret_hash == hash_token(switch["refreshToken"])


def test_the_token_before_a_switched_one_has_its_own_window(tokens, org):
    """R0 (tagged: no row of its own) reaches the switch's pair through the switch's row of its successor,
    for as long as R0's own window lasts: from the refresh that spent it, not from the switch."""
    won = refreshed(tokens["refreshToken"])
    spent_at = session_of(won).refresh_rotated_at  # the refresh that spent R0
    switched(won, org)
    row = SpentRefreshToken.objects.get(token_hash=hash_token(won["refreshToken"]))
    assert row.predecessor_spent_at == spent_at
    SpentRefreshToken.objects.filter(pk=row.pk).update(predecessor_spent_at=timezone.now() - timedelta(seconds=11))
    refused(refresh(tokens["refreshToken"]), "refresh_token_reused")


def test_a_switch_long_after_the_last_refresh_keeps_no_way_back_for_the_token_before(tokens, org):
    won = refreshed(tokens["refreshToken"])
    DeviceSession.objects.filter(pk=won["session"]["id"]).update(
        refresh_rotated_at=timezone.now() - timedelta(seconds=11))
    switched(won, org)
    assert SpentRefreshToken.objects.get(token_hash=hash_token(won["refreshToken"])).predecessor_spent_at is None
    refused(refresh(tokens["refreshToken"]), "refresh_token_reused")


def test_without_a_grace_window_a_switch_keeps_no_pair(tokens, org, settings):
    settings.AUTH_REFRESH_GRACE_SECONDS = 0
    switched(tokens, org)
    assert SpentRefreshToken.objects.get(token_hash=hash_token(tokens["refreshToken"])).successor_encrypted == ""
    refused(refresh(tokens["refreshToken"]), "refresh_token_reused")


# --- the race itself, as concurrent HTTP requests on PostgreSQL ----------------------------------------

HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}


def _post(url, body, barrier, results, key, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={**HEADERS, **(headers or {})})
    barrier.wait()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            results[key] = (response.status, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        results[key] = (error.code, json.loads(error.read()))
    except Exception as error:  # noqa: BLE001 - reported by the assertion below
        results[key] = ("exception", repr(error))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_switch_and_refresh_racing_leave_one_live_refresh_token(live_server, api, user, org, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for round_ in range(4):
        tokens = login(api, user.email)
        barrier, results = threading.Barrier(3), {}
        calls = [(REFRESH, {"refreshToken": tokens["refreshToken"]}, "refresh-1", None),
                 (REFRESH, {"refreshToken": tokens["refreshToken"]}, "refresh-2", None),
                 (SWITCH, {"organizationId": str(org.pk)}, "switch",
                  {"Authorization": f"Bearer {tokens['accessToken']}"})]
        threads = [threading.Thread(target=_post, args=(live_server.url + path, body, barrier, results, key, hdrs))
                   for path, body, key, hdrs in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert {key: status for key, (status, _) in results.items()} == \
            {"refresh-1": 200, "refresh-2": 200, "switch": 200}, (round_, results)
        session = DeviceSession.objects.get(pk=tokens["session"]["id"])
        assert session.is_alive(), round_
        switch = results["switch"][1]
        assert session.refresh_secret_hash == hash_token(switch["refreshToken"])  # the one live token: the switch's
        for key in ("refresh-1", "refresh-2"):  # every answer the client might keep leads to it
            kept = results[key][1]["refreshToken"]
            if kept != switch["refreshToken"]:
                again = refreshed(kept)
                assert again["refreshToken"] == switch["refreshToken"], (round_, key)
        assert not AuditEvent.objects.filter(event=EventType.REFRESH_REUSE_DETECTED).exists()
