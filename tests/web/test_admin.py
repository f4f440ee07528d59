"""The Django admin for staff: sign-in through /login, users, sessions (revoke audited), audit events."""

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, EventType
from audit.services import audit_record
from sessions_app.models import DeviceSession, RevokeReason
from tests.factories import UserFactory
from tests.support.auth import page_login


def _staff():
    staff = UserFactory(is_staff=True, is_superuser=True, email="staff@example.com")
    client = Client()
    assert page_login(client, staff.email, next="/admin/")["Location"] == "/admin/"
    return staff, client


def test_admin_sign_in_goes_through_the_login_page():
    anonymous = Client()
    response = anonymous.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    followed = anonymous.get(response["Location"])
    assert followed.status_code == 302 and followed["Location"].startswith("/login?next=")
    staff, client = _staff()
    assert client.get("/admin/").status_code == 200


def test_non_staff_never_reach_the_admin(signed_in):
    response = signed_in.get("/admin/")
    assert response.status_code == 302
    assert signed_in.get(response["Location"]).status_code == 403
    assert signed_in.get("/admin/sessions_app/devicesession/").status_code == 302


def test_users_search_and_filters():
    staff, client = _staff()
    UserFactory(email="findme@example.com", email_verified_at=None)
    page = client.get("/admin/accounts/user/?q=findme").content.decode()
    assert "findme@example.com" in page and "user1" not in page
    assert client.get("/admin/accounts/user/?role__exact=user").status_code == 200
    assert client.get("/admin/accounts/user/?email_verified_at__isempty=1").status_code == 200


def test_sessions_admin_filters_and_revoke_action_is_audited():
    staff, client = _staff()
    member = UserFactory()
    page_login(Client(), member.email)
    row = DeviceSession.objects.get(user=member)
    page = client.get(f"/admin/sessions_app/devicesession/?active=yes&user__id__exact={member.pk}")
    assert page.status_code == 200 and member.email in page.content.decode()
    response = client.post("/admin/sessions_app/devicesession/", {"action": "revoke_sessions",
                                                                   "_selected_action": [str(row.pk)]})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.revoked_reason == RevokeReason.ADMIN
    event = AuditEvent.objects.get(event=EventType.SESSION_REVOKED, session_id=row.pk)
    assert event.actor_id == staff.pk and event.subject_id == member.pk
    detail = client.get(f"/admin/sessions_app/devicesession/{row.pk}/change/").content.decode()
    assert row.browser_key_hash not in detail  # no hashes, no session data
    assert client.post("/admin/sessions_app/devicesession/add/").status_code == 403


def test_audit_admin_filters_by_type_user_ip_and_date():
    staff, client = _staff()
    subject = UserFactory(email="subject@example.com")
    audit_record(event=EventType.LOGIN_FAILED, subject=subject, success=False)
    base = "/admin/audit/auditevent/"
    for query in ["?event__exact=auth.login.failed", "?user=subject@example.com", "?ip=127.0.0.1",
                  f"?created_at__year={timezone.now().year}", "?user=subject@example.com&event__exact=auth.login.failed"]:
        response = client.get(base + query)
        assert response.status_code == 200, query
        assert "?e=" not in response.get("Location", "")
    page = client.get(base + "?user=subject@example.com").content.decode()
    assert "auth.login.failed" in page
    assert client.get(base + "?ip=198.51.100.1").context["cl"].result_count == 0


@pytest.mark.skipif(not apps.is_installed("axes"), reason="the locked filter needs django-axes (issue 4)")
def test_users_locked_filter(settings):
    from axes.models import AccessAttempt

    staff, client = _staff()
    locked = UserFactory(email="locked@example.com")
    UserFactory(email="free@example.com")
    AccessAttempt.objects.create(username=locked.email, ip_address="203.0.113.5", user_agent="x",
                                 failures_since_start=settings.AXES_FAILURE_LIMIT, get_data="", post_data="")
    page = client.get("/admin/accounts/user/?locked=yes").content.decode()
    assert "locked@example.com" in page and "free@example.com" not in page
    page = client.get("/admin/accounts/user/?locked=no").content.decode()
    assert "locked@example.com" not in page and "free@example.com" in page
