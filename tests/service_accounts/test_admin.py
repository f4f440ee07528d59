"""Staff create, rotate and (de)activate service accounts in the admin; the secret is shown once,
in the response itself, and never stored (not in the database, not in the message cookie)."""

import hashlib
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import AuditEvent, EventType
from service_accounts.models import ServiceClient
from tests.factories import UserFactory
from tests.support.auth import obtain

BASE = "/admin/service_accounts/serviceclient/"
SECRET = re.compile(r"secret (mcs_[A-Za-z0-9_\-]{43})")


@pytest.fixture
def staff(db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def shown_secret(response) -> str:
    found = SECRET.findall(response.content.decode())
    assert len(found) == 1, response.content.decode()[:2000]
    return found[0]


def assert_not_persisted(client, response, secret):
    assert "no-store" in response["Cache-Control"]
    cookie = response.cookies.get("messages")
    assert cookie is None or secret not in cookie.value and not cookie.value.strip('"')
    assert secret not in str(client.session.items())
    # The next page shows nothing again.
    assert secret not in client.get(BASE).content.decode()


def test_staff_create_a_service_account_and_see_the_secret_once(staff, api):
    client, user = staff
    assert client.get(BASE + "add/").status_code == 200
    response = client.post(BASE + "add/", {"name": "search-indexer"})
    assert response.status_code == 200
    secret = shown_secret(response)
    created = ServiceClient.objects.get(name="search-indexer")
    assert created.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert created.client_id in response.content.decode()
    assert_not_persisted(client, response, secret)
    event = AuditEvent.objects.get(event=EventType.SERVICE_ACCOUNT_CREATED)
    assert event.actor_id == user.pk and event.subject_id == created.user_id and event.context["via"] == "admin"
    assert obtain(api, created.client_id, secret).status_code == 200


def test_blank_name_is_refused(staff):
    client, _ = staff
    response = client.post(BASE + "add/", {"name": "   "})
    assert response.status_code == 200 and not ServiceClient.objects.exists()
    assert "errorlist" in response.content.decode()


def test_staff_rotate_a_secret(staff, api, account):
    client, user = staff
    response = client.post(BASE, {"action": "rotate_secret", "_selected_action": [account.client.pk]})
    assert response.status_code == 200
    secret = shown_secret(response)
    assert secret != account.client_secret
    assert_not_persisted(client, response, secret)
    assert obtain(api, account.client.client_id, account.client_secret).status_code == 401
    assert obtain(api, account.client.client_id, secret).status_code == 200
    event = AuditEvent.objects.get(event=EventType.SERVICE_ACCOUNT_SECRET_ROTATED)
    assert event.actor_id == user.pk and event.context["via"] == "admin"


def test_staff_deactivate_an_account(staff, api, account):
    client, user = staff
    page = client.get(f"{BASE}{account.client.pk}/change/").content.decode()
    assert account.client.secret_hash not in page
    response = client.post(f"{BASE}{account.client.pk}/change/", {})  # the is_active box unticked
    assert response.status_code == 302
    assert not ServiceClient.objects.get(pk=account.client.pk).is_active
    assert obtain(api, account.client.client_id, account.client_secret).status_code == 401
    event = AuditEvent.objects.get(event=EventType.SERVICE_ACCOUNT_UPDATED)
    assert event.actor_id == user.pk and event.context["is_active"] is False


def test_staff_without_the_permission_cannot_create_or_rotate(db, account):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_serviceclient"))
    client = Client()
    client.force_login(user)
    assert client.get(BASE).status_code == 200
    assert client.post(BASE + "add/", {"name": "x"}).status_code == 403
    client.post(BASE, {"action": "rotate_secret", "_selected_action": [account.client.pk]})
    assert ServiceClient.objects.get(pk=account.client.pk).secret_version == 1
    assert ServiceClient.objects.count() == 1


def test_non_staff_are_sent_to_the_login_page(db):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(BASE + "add/").status_code == 302
