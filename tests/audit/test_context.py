"""The JSON context of an audit row: JSON-safe, models reduced to references, secrets masked."""

import uuid

from audit.models import AuditEvent, EventType
from audit.services import MASK, audit_record
from tests.factories import UserFactory


def test_secret_keys_are_masked_at_any_depth(db):
    row = audit_record(
        event=EventType.LOGIN_FAILED,
        password="hunter2-hunter2",
        newPassword="n3w-password-value",
        refresh_token="mrt_secret_refresh",
        refreshToken="mrt_secret_refresh_2",
        client_secret="cs_value",
        api_key="ak_value",
        Authorization="Bearer abc.def.ghi",
        nested={"inner": {"token": "t0k3n-value", "safe": "visible"}},
        items=[{"secret": "s3cr3t-value"}, "plain"],
        reason="invalid_credentials",
        email="a@example.com",
        empty_token=None,
    )
    stored = AuditEvent.objects.get(pk=row.pk).context
    for key in ("password", "newPassword", "refresh_token", "refreshToken", "client_secret", "api_key",
                "Authorization"):
        assert stored[key] == MASK, key
    assert stored["nested"] == {"inner": {"token": MASK, "safe": "visible"}}
    assert stored["items"] == [{"secret": MASK}, "plain"]
    assert stored["reason"] == "invalid_credentials" and stored["email"] == "a@example.com"
    assert stored["empty_token"] is None  # nothing to hide: shows that no token was given
    text = str(stored)
    for secret in ("hunter2", "n3w-password", "mrt_secret", "cs_value", "ak_value", "abc.def", "t0k3n", "s3cr3t"):
        assert secret not in text


def test_values_are_made_json_safe(db):
    user = UserFactory()
    some_id = uuid.uuid4()
    row = audit_record(event=EventType.PROFILE_UPDATED, actor=user, target=user, ref=some_id, tags={"a"},
                       when=object.__new__(object))
    stored = AuditEvent.objects.get(pk=row.pk).context
    assert stored["target"] == {"app": "accounts", "model": "user", "pk": str(user.pk)}
    assert stored["ref"] == str(some_id) and stored["tags"] == ["a"]
    assert isinstance(stored["when"], str)
    assert user.email not in str(stored)  # a model becomes a reference, not its fields


def test_row_fields(db, rf):
    user = UserFactory()
    request = rf.post("/x", HTTP_USER_AGENT="UA/1", REMOTE_ADDR="192.0.2.9")
    session_id = uuid.uuid4()
    row = audit_record(event=EventType.SESSION_REVOKED, request=request, actor=None, subject=user,
                       session=session_id, reason="admin")
    row = AuditEvent.objects.get(pk=row.pk)
    assert (row.event, row.actor_id, row.subject_id, row.session_id, row.ip_address, row.user_agent, row.success) == (
        EventType.SESSION_REVOKED, None, user.pk, session_id, "192.0.2.9", "UA/1", True)
    assert row.created_at is not None
