"""The audit trail is read-only in the Django admin: staff see the list and a row, nobody adds,
edits or deletes."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import AuditEvent, EventType
from audit.services import audit_record
from tests.factories import UserFactory

LIST = "/admin/audit/auditevent/"


@pytest.fixture
def row(db):
    subject = UserFactory(email="subject@example.com")
    return audit_record(event=EventType.LOGIN_FAILED, subject=subject, success=False, reason="invalid_credentials")


def _client(**flags):
    user = UserFactory(is_staff=True, **flags)
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def superuser_client(db):
    return _client(is_superuser=True)[0]


@pytest.fixture
def viewer_client(db):
    client, user = _client()
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    return client


@pytest.mark.parametrize("who", ["superuser_client", "viewer_client"])
def test_staff_can_view_the_list_and_a_row(request, row, who):
    client = request.getfixturevalue(who)
    r = client.get(LIST)
    assert r.status_code == 200
    assert EventType.LOGIN_FAILED.value in r.content.decode()
    r = client.get(f"{LIST}{row.pk}/change/")
    assert r.status_code == 200
    page = r.content.decode()
    assert "invalid_credentials" in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page  # rendered read-only
    assert r.context["has_change_permission"] is False
    assert client.get(f"{LIST}?q=subject@example.com").status_code == 200


@pytest.mark.parametrize("who", ["superuser_client", "viewer_client"])
def test_nobody_adds_edits_or_deletes(request, row, who):
    client = request.getfixturevalue(who)
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}add/", {"event": EventType.LOGIN_SUCCEEDED, "context": "{}"}).status_code == 403
    assert client.post(f"{LIST}{row.pk}/change/", {"event": EventType.LOGIN_SUCCEEDED, "success": "on",
                                                    "context": "{}"}).status_code == 403
    assert client.get(f"{LIST}{row.pk}/delete/").status_code == 403
    assert client.post(f"{LIST}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    r = client.post(LIST, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert r.status_code in (200, 302)
    assert AuditEvent.objects.filter(pk=row.pk, event=EventType.LOGIN_FAILED, success=False).exists()
    assert AuditEvent.objects.count() == 1


def test_staff_without_the_view_permission_and_anonymous_users_see_nothing(row):
    client, _ = _client()
    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{row.pk}/change/").status_code == 403
    r = Client().get(LIST)
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
