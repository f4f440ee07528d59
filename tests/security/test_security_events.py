"""GET /api/v1/auth/me/security-events: the caller's own activity, newest first, paginated, no secrets."""

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from accounts.models import User
from audit.models import AuditEvent, EventType
from audit.services import audit_record
from tests.factories import UserFactory
from tests.support.auth import login, login_attempt

URL = "/api/v1/auth/me/security-events"


def test_own_events_newest_first_without_secrets(api, authed, user, password):
    login_attempt(api, user.email, "Wrong-Password-123456", ip="203.0.113.9")
    other = UserFactory()
    login(api, other.email)
    authed.post("/api/v1/auth/change-password", {"currentPassword": password, "newPassword": "Brand-New-Phrase-2024"},
                format="json")
    body = authed.get(URL).json()
    events = [e["event"] for e in body["events"]]
    assert events[0] == EventType.PASSWORD_CHANGED and EventType.LOGIN_SUCCEEDED in events
    failed = next(e for e in body["events"] if e["event"] == EventType.LOGIN_FAILED)
    assert failed["ipAddress"] == "203.0.113.9" and failed["success"] is False
    assert failed["details"] == {"reason": "invalid_credentials"}  # not the typed email, not other context
    ours = AuditEvent.objects.filter(subject_id=user.pk) | AuditEvent.objects.filter(actor_id=user.pk)
    assert len(events) == ours.count()
    assert all(str(other.pk) not in str(e) for e in body["events"])
    text = str(body)
    assert "Brand-New-Phrase" not in text and "prev_hash" not in text and "row_hash" not in text


def test_pagination(authed, user):
    for _ in range(5):
        audit_record(event=EventType.REAUTHENTICATED, actor=user)
    first = authed.get(URL, {"pageSize": 2}).json()
    second = authed.get(URL, {"pageSize": 2, "page": 2}).json()
    assert len(first["events"]) == 2 and first["hasNext"] and first["page"] == 1
    assert {e["id"] for e in first["events"]}.isdisjoint({e["id"] for e in second["events"]})
    assert first["events"][0]["id"] > second["events"][0]["id"]
    bad = authed.get(URL, {"pageSize": 1000})
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["pageSize"]
    assert authed.get(URL, {"page": "x"}).status_code == 400


def test_needs_authentication(api):
    assert api.get(URL).status_code == 401


def test_admin_actions_on_users_are_audited(user):
    staff = UserFactory(is_staff=True)
    LogEntry.objects.log_actions(user_id=staff.pk, queryset=[user], action_flag=CHANGE,
                                 change_message=[{"changed": {"fields": ["Is active"]}}], single_object=True)
    row = AuditEvent.objects.get(event=EventType.ADMIN_ACTION)
    assert (row.actor_id, row.subject_id) == (staff.pk, user.pk)
    assert row.context["action"] == "change" and row.context["object_model"] == User._meta.label
    assert ContentType.objects.get_for_model(User)


def test_admin_bulk_deletion_is_audited_per_object():
    """Django logs a multi-object admin deletion with one bulk insert (no post_save): the site-wide
    "delete selected" action audits each object itself."""
    from django.contrib import admin
    from django.test import RequestFactory

    from security.admin import audited_delete_selected

    staff = UserFactory(is_staff=True, is_superuser=True)
    victims = [UserFactory() for _ in range(2)]
    request = RequestFactory().post("/admin/accounts/user/", {"post": "yes"})
    request.user = staff
    request._messages = type("Messages", (), {"add": lambda *args, **kwargs: None})()
    assert admin.site.get_action("delete_selected") is audited_delete_selected
    audited_delete_selected(admin.site._registry[User], request, User.objects.filter(pk__in=[v.pk for v in victims]))
    assert not User.objects.filter(pk__in=[v.pk for v in victims]).exists()
    rows = AuditEvent.objects.filter(event=EventType.ADMIN_ACTION, context__action="delete")
    assert sorted(str(r.subject_id) for r in rows) == sorted(str(v.pk) for v in victims)
    assert all(r.actor_id == staff.pk and r.context["object_model"] == User._meta.label for r in rows)
