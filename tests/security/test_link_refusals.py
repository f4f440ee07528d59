"""Every refused unlock or "this wasn't me" link is audited (issue 14, "every refusal audited"): against
the account it was mailed to when the token is known (each time), flood-controlled when nobody is known;
a refusal changes nothing."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from audit.services import audit_refusals_flush
from security.models import SecurityTokenPurpose
from security.services import security_token_issue
from sessions_app.models import DeviceSession
from tests.conftest import login

UNLOCK = "/api/v1/auth/unlock"
NOT_ME = "/api/v1/auth/not-me"
CASES = [(UNLOCK, SecurityTokenPurpose.UNLOCK, EventType.UNLOCK_FAILED),
         (NOT_ME, SecurityTokenPurpose.NOT_ME, EventType.NOT_ME_FAILED)]


@pytest.fixture
def hour_windows(settings):
    settings.AUDIT = {**settings.AUDIT, "FLOOD_WINDOW_SECONDS": 3600}


def issue(user, purpose, ttl=timedelta(hours=1)):
    return security_token_issue(user=user, purpose=purpose, ttl=ttl)


@pytest.mark.parametrize("path, purpose, event", CASES)
def test_a_used_link_is_refused_and_audited_against_its_account(api, user, path, purpose, event):
    raw = issue(user, purpose)
    assert api.post(path, {"token": raw}, format="json").status_code in (200, 204)
    again = api.post(path, {"token": raw}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    row = AuditEvent.objects.get(event=event)
    assert row.success is False and row.subject_id == user.pk and row.context["reason"] == "invalid_token"


@pytest.mark.parametrize("path, purpose, event", CASES)
def test_an_expired_link_changes_nothing_and_is_audited(api, user, path, purpose, event):
    session = login(api, user.email)["session"]
    raw = issue(user, purpose, ttl=timedelta(seconds=-1))
    response = api.post(path, {"token": raw}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "token_expired"
    assert AuditEvent.objects.filter(event=event, subject_id=user.pk, success=False).count() == 1
    assert DeviceSession.objects.get(pk=session["id"]).revoked_at is None  # "this wasn't me" did nothing
    user.refresh_from_db()
    assert user.has_usable_password()


@pytest.mark.parametrize("path, purpose, event", CASES)
def test_unknown_tokens_are_audited_without_flooding_the_trail(api, path, purpose, event, hour_windows):
    for i in range(50):
        assert api.post(path, {"token": f"garbage-{i}"}, format="json").status_code == 400
    assert AuditEvent.objects.filter(event=event).count() == 1  # the first in full, the rest counted
    audit_refusals_flush(now=timezone.now() + timedelta(hours=2))
    summary = [r for r in AuditEvent.objects.filter(event=EventType.AUDIT_REFUSALS_COUNTED)
               if r.context["event"] == event]
    assert sum(r.context["count"] for r in summary) == 49


@pytest.mark.parametrize("page, purpose, event", [("/account/unlock", SecurityTokenPurpose.UNLOCK,
                                                   EventType.UNLOCK_FAILED),
                                                  ("/account/not-me", SecurityTokenPurpose.NOT_ME,
                                                   EventType.NOT_ME_FAILED)])
def test_the_pages_audit_the_same_refusal(user, page, purpose, event):
    raw = issue(user, purpose, ttl=timedelta(seconds=-1))
    response = Client().post(page, {"token": raw})
    assert response.status_code == 400
    assert AuditEvent.objects.filter(event=event, subject_id=user.pk, success=False).count() == 1
