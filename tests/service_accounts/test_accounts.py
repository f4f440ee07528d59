"""Creating service accounts (command and service), rotating and deactivating them."""

import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Role
from audit.models import AuditEvent, EventType
from service_accounts import services
from service_accounts.models import ServiceClient
from tests.support.auth import introspect, obtain


def test_command_prints_one_json_line_and_stores_only_a_hash(db):
    out = io.StringIO()
    call_command("create_service_account", "reports-service", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert set(printed) == {"clientId", "clientSecret"}
    client = ServiceClient.objects.select_related("user").get(client_id=printed["clientId"])
    assert client.client_id.startswith("svc_") and client.name == "reports-service" and client.is_active
    secret = printed["clientSecret"]
    assert len(secret) >= 40  # 256 random bits, base64url
    assert client.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    # The plaintext is nowhere in the row, the account or the audit trail.
    row = json.dumps(list(ServiceClient.objects.values()), default=str)
    row += json.dumps(list(AuditEvent.objects.values()), default=str)
    assert secret not in row and secret[4:] not in row
    user = client.user
    assert user.role == Role.SERVICE and not user.has_usable_password() and user.name == "reports-service"
    event = AuditEvent.objects.get(event=EventType.SERVICE_ACCOUNT_CREATED)
    assert event.subject_id == user.pk and event.context["client_id"] == client.client_id
    assert event.context["via"] == "manage.py create_service_account"


def test_each_account_gets_its_own_id_and_secret(db):
    first, second = (services.service_account_create(name="svc") for _ in range(2))
    assert first.client.client_id != second.client.client_id
    assert first.client_secret != second.client_secret


@pytest.mark.parametrize("name", ["", "   ", "x" * 151])
def test_command_refuses_a_bad_name(db, name):
    with pytest.raises(CommandError):
        call_command("create_service_account", name, stdout=io.StringIO())
    assert not ServiceClient.objects.exists()


def test_rotation_invalidates_the_old_secret_and_its_tokens(api, account, service_api, service_token):
    old_secret = account.client_secret
    new_secret = services.service_account_rotate_secret(client=account.client, via="test")
    assert new_secret != old_secret
    assert obtain(api, account.client.client_id, old_secret).status_code == 401
    # A token issued with the old secret stops working at once (its secretVersion is outdated)...
    refused = introspect(service_api, service_token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    # ...and the new secret works.
    response = obtain(api, account.client.client_id, new_secret)
    assert response.status_code == 200
    fresh = response.json()["accessToken"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh}")
    assert introspect(api, fresh).json()["active"] is True
    assert introspect(api, service_token).json() == {"active": False}
    client = ServiceClient.objects.get(pk=account.client.pk)
    assert client.secret_version == 2 and client.rotated_at is not None
    assert client.secret_hash == hashlib.sha256(new_secret.encode()).hexdigest()
    event = AuditEvent.objects.get(event=EventType.SERVICE_ACCOUNT_SECRET_ROTATED)
    assert event.subject_id == account.client.user_id and event.context["version"] == 2


def test_deactivation_refuses_new_and_existing_tokens(api, account, service_api, service_token):
    services.service_account_set_active(client=account.client, is_active=False)
    assert introspect(service_api, service_token).status_code == 401
    response = obtain(api, account.client.client_id, account.client_secret)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_client"
    assert AuditEvent.objects.filter(event=EventType.SERVICE_ACCOUNT_UPDATED, context__is_active=False).count() == 1
    services.service_account_set_active(client=account.client, is_active=True)
    assert obtain(api, account.client.client_id, account.client_secret).status_code == 200


def test_a_disabled_account_user_is_refused_too(api, account, service_api, service_token):
    account.client.user.is_active = False
    account.client.user.save(update_fields=["is_active"])
    assert introspect(service_api, service_token).status_code == 401
    assert obtain(api, account.client.client_id, account.client_secret).status_code == 401


def test_a_service_account_cannot_log_in_with_a_password(api, account):
    response = api.post("/api/v1/auth/login", {"email": account.client.user.email, "password": ""}, format="json")
    assert response.status_code == 400
    response = api.post("/api/v1/auth/login", {"email": account.client.user.email, "password": "x" * 20},
                        format="json")
    assert response.status_code == 401
