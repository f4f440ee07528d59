"""core.prepared.PreparedQuery: the hot-path lookups compiled once give exactly what the queryset gives."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.prepared import PreparedQuery
from orgs.models import Membership, Organization
from sessions_app.models import DeviceSession
from sessions_app.selectors import session_by_browser_key_hash, session_by_refresh_hash, session_for_claims
from sessions_app.services import session_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FIELDS = [field.attname for field in DeviceSession._meta.concrete_fields]


def plain(**lookup):
    return DeviceSession.objects.select_related("user", "active_organization").filter(**lookup).first()


def same_row(prepared, reference):
    assert type(prepared) is DeviceSession and prepared.pk == reference.pk
    for name in FIELDS:
        if name != "browser_data":
            assert getattr(prepared, name) == getattr(reference, name), name
    assert prepared.user == reference.user
    for field in type(reference.user)._meta.concrete_fields:
        assert getattr(prepared.user, field.attname) == getattr(reference.user, field.attname), field.attname
    assert prepared.active_organization == reference.active_organization


def test_by_id_refresh_and_browser_key_are_the_querysets_rows_in_one_statement():
    user = UserFactory()
    organization = Organization.objects.create(name="Acme", idle_timeout_seconds=3600)
    Membership.objects.create(user=user, organization=organization, role="admin")
    pair = session_create(user=user)
    DeviceSession.objects.filter(pk=pair.session.pk).update(active_organization=organization,
                                                            browser_key_hash="k" * 64, browser_data='{"a": 1}')
    reference = plain(pk=pair.session.pk)

    with CaptureQueriesContext(connection) as queries:
        by_id = session_for_claims({"sid": str(pair.session.pk), "sub": str(user.pk)})
        assert by_id.user.email == user.email and by_id.active_organization.idle_timeout_seconds == 3600
    assert len(queries) == 1  # the user and the organization came with the row
    same_row(by_id, reference)
    same_row(session_by_refresh_hash(reference.refresh_token_hash), reference)
    by_key = session_by_browser_key_hash("k" * 64)
    same_row(by_key, reference)
    assert by_key.active_org_role == "admin" and by_key.browser_data == '{"a": 1}'

    with CaptureQueriesContext(connection) as queries:
        assert by_id.browser_data == '{"a": 1}'  # left out of the bearer lookup, loaded when asked for
    assert len(queries) == 1


def test_a_missing_row_or_another_users_token_is_none():
    user = UserFactory()
    pair = session_create(user=user)
    assert session_for_claims({"sid": str(uuid.uuid4()), "sub": str(user.pk)}) is None
    assert session_for_claims({"sid": str(pair.session.pk), "sub": str(uuid.uuid4())}) is None
    assert session_for_claims({"sid": "not-a-uuid", "sub": str(user.pk)}) is None
    assert session_by_refresh_hash("0" * 64) is None
    assert session_by_browser_key_hash("0" * 64) is None


def test_a_session_without_organization_has_none_cached():
    user = UserFactory()
    token_hash = plain(pk=session_create(user=user).session.pk).refresh_token_hash
    with CaptureQueriesContext(connection) as queries:
        row = session_by_refresh_hash(token_hash)
        assert row.active_organization is None
    assert len(queries) == 1


def test_the_placeholder_must_occur_once():
    both = PreparedQuery(lambda value: DeviceSession.objects.filter(device_id=value, device_name=value),
                         field="device_id", sentinel="prepared:twice")
    with pytest.raises(ValueError, match="exactly once"):
        both.first("x")
